-- relup.agent.server: the control socket of a Lua node (docs/protocol.md,
-- protocol 2) on Silly's TCP. Silly has no Unix-socket listener, so the
-- agent listens on TCP only, on loopback unless told otherwise, and every
-- connection must pass the HMAC challenge; every frame after it is sealed
-- (bound to the session by an HMAC tag with a per-direction counter).

local type = type
local pairs = pairs
local pcall = pcall
local tostring = tostring
local pack = string.pack
local unpack = string.unpack

local tcp = require "silly.net.tcp"
local time = require "silly.time"
local task = require "silly.task"
local errno = require "silly.errno"
local json = require "relup.agent.json"
local session = require "relup.agent.session"
local host = require "relup.agent.host"
local nodelib = require "relup.agent.node"
local processes = require "relup.agent.processes"

local M = {}

M.PROTOCOL = 2
local HANDSHAKE_FRAME_LIMIT = 4096
local FRAME_LIMIT = 64 * 1024 * 1024
local HANDSHAKE_MS = 5000
local DEFAULT_IDLE_MS = 5 * 60 * 1000
local MAX_CONNECTIONS = 16
local AUTH_FAILURE_DELAY_MS = 200

--[[
Serve the control protocol for `h` (a relup.agent.host).
opts: listen ("127.0.0.1:7070"), secret (bytes), env, idle_ms (close a
connection that sends no frame for this long while none of its requests runs)
Returns the listener or nil, message.
]]
function M.listen(h, opts)
	local secret = opts.secret
	if type(secret) ~= "string" or #secret == 0 then
		return nil, "the Lua agent requires a shared secret (secret or secret_file): its TCP control socket is always authenticated"
	end
	local open_count = 0
	local IDLE_MS = opts.idle_ms or DEFAULT_IDLE_MS

	local function serve(conn)
		local sealed = nil -- the session once authenticated
		local closed = false
		local function send(msg)
			if closed then
				return
			end
			local body = json.encode(msg)
			if sealed then
				body = sealed.seal(body)
			end
			conn:write(pack(">I4", #body) .. body)
		end
		local function close()
			if not closed then
				closed = true
				conn:close()
			end
		end
		local function fail(code, message)
			send({ type = "error", id = json.null, code = code, message = message })
			close()
		end
		local function read_frame(limit, timeout)
			local header, err = conn:read(4, timeout)
			if not header then
				return nil, err
			end
			local n = unpack(">I4", header)
			if n > limit then
				return nil, "oversized"
			end
			if n == 0 then
				return ""
			end
			return conn:read(n, timeout)
		end

		-- Handshake: hello, then auth, within a hard deadline, in small frames.
		local deadline = time.after(HANDSHAKE_MS, function()
			if not sealed and not closed then
				fail("handshake_timeout", "the handshake did not complete within " .. HANDSHAKE_MS .. " ms")
			end
		end)
		local raw, err = read_frame(HANDSHAKE_FRAME_LIMIT, HANDSHAKE_MS)
		if not raw then
			if err == "oversized" then
				fail("bad_frame", "a handshake frame is limited to " .. HANDSHAKE_FRAME_LIMIT .. " bytes")
			end
			return close()
		end
		local hello = json.decode(raw)
		if type(hello) ~= "table" or hello.type ~= "hello" then
			return fail("bad_message", "the first frame must be the client's hello")
		end
		if hello.protocol ~= M.PROTOCOL then
			return fail("protocol_mismatch", "this node speaks protocol " .. M.PROTOCOL .. ", the client " .. tostring(hello.protocol))
		end
		local node_nonce = session.nonce()
		local release = h.node.release
		send({ type = "hello", protocol = M.PROTOCOL, node = { name = release.name, version = release.version, runtime = "lua" }, auth = "challenge", nonce = node_nonce })
		raw, err = read_frame(HANDSHAKE_FRAME_LIMIT, HANDSHAKE_MS)
		if not raw then
			return close()
		end
		local auth = json.decode(raw)
		if type(auth) ~= "table" or auth.type ~= "auth" or type(auth.nonce) ~= "string" or type(auth.proof) ~= "string" or #auth.nonce > 200 or #auth.proof > 200 then
			time.sleep(AUTH_FAILURE_DELAY_MS)
			return fail("not_authenticated", "authenticate first: this node requires the shared secret")
		end
		local expected = session.client_proof(secret, node_nonce, auth.nonce)
		if not session.equal(expected, auth.proof) then
			-- Slows down guessing; the proof was compared in constant time.
			time.sleep(AUTH_FAILURE_DELAY_MS)
			return fail("not_authenticated", "wrong proof: the client does not hold this node's secret")
		end
		if closed then
			return
		end
		time.cancel(deadline)
		send({ type = "auth_ok", proof = session.node_proof(secret, node_nonce, auth.nonce) })
		sealed = session.node(session.key(secret, node_nonce, auth.nonce))

		local running = 0
		while not closed do
			raw, err = read_frame(FRAME_LIMIT, running == 0 and IDLE_MS or nil)
			if not raw then
				if err == "oversized" then
					return fail("bad_frame", "a frame is limited to " .. FRAME_LIMIT .. " bytes")
				end
				if running == 0 and err == errno.TIMEDOUT then
					return fail("idle_timeout", "nothing was received for " .. IDLE_MS .. " ms")
				end
				return close()
			end
			local body, why = sealed.open(raw)
			if not body then
				return fail("not_authenticated", why .. ": the frame was injected, replayed, reordered, altered or reflected")
			end
			local req = json.decode(body)
			if type(req) ~= "table" or req.type ~= "request" or math.type(req.id) ~= "integer" or req.id < 1 or type(req.op) ~= "string" then
				send({ type = "error", id = json.null, code = "bad_message", message = "expected {type:\"request\", id, op, params}" })
			else
				running = running + 1
				task.fork(function()
					M.handle(h, req, send, opts)
					running = running - 1
				end)
			end
		end
	end

	local listener, lerr = tcp.listen({
		addr = opts.listen,
		accept = function(conn)
			if open_count >= MAX_CONNECTIONS then
				local body = json.encode({ type = "error", id = json.null, code = "too_many_connections", message = "the node's limit of " .. MAX_CONNECTIONS .. " connections is reached" })
				conn:write(pack(">I4", #body) .. body)
				conn:close()
				return
			end
			open_count = open_count + 1
			local ok, e = pcall(serve, conn)
			open_count = open_count - 1
			if not ok then
				io.stderr:write("relup agent: connection failed: " .. tostring(e) .. "\n")
				pcall(conn.close, conn)
			end
		end,
	})
	if not listener then
		return nil, "cannot listen on " .. tostring(opts.listen) .. ": " .. tostring(lerr)
	end
	return listener
end

function M.handle(h, req, send, opts)
	local id = req.id
	local params = req.params
	if params == nil or params == json.null then
		params = {}
	end
	local function result(r)
		send({ type = "result", id = id, result = r })
	end
	local function err(code, message)
		send({ type = "error", id = id, code = code, message = message })
	end
	local op = req.op
	if type(params) ~= "table" then
		return err("bad_request", "params must be an object")
	end
	if op == "status" then
		return result(host.status(h))
	elseif op == "apply" then
		if type(params.script) ~= "table" or type(params.bundle) ~= "string" then
			return err("bad_request", "apply needs {script, bundle}")
		end
		local problem = host.apply_params_problem(params)
		if problem then
			return err("bad_request", problem)
		end
		local ok, outcome, code, message = pcall(host.apply, h, params, function(ev)
			send({ type = "event", id = id, event = ev })
		end, opts.env)
		if not ok then
			return err("internal", "the agent failed: " .. tostring(outcome))
		end
		if outcome == nil then
			return err(code, message)
		end
		return result(outcome)
	elseif op == "make_permanent" then
		if type(params.version) ~= "string" then
			return err("bad_request", "make_permanent needs {version}")
		end
		local r, message = host.make_permanent(h, params.version)
		if not r then
			-- A failed write is the node's trouble, not the request's (the protocol's `internal`).
			return err(message:match("^state%-write%-failed: ") and "internal" or "bad_request", message)
		end
		return result(r)
	elseif op == "states" then
		return result(nodelib.states(h.node))
	elseif op == "invoke" then
		local record = type(params.module) == "string" and h.node.modules[params.module]
		local f = record and record.live[params["function"]]
		if type(f) ~= "function" then
			return err("bad_request", "no function " .. tostring(params.module) .. "." .. tostring(params["function"]) .. " in the running release")
		end
		local args = params.args or {}
		local ok, r = pcall(f, table.unpack(args))
		if not ok then
			return err("call_failed", tostring(r))
		end
		if r == nil then
			r = json.null
		end
		return result(nodelib.plain(r, 0, {}))
	elseif op == "call" then
		if type(params.process) ~= "string" then
			return err("bad_request", "call needs {process, message}")
		end
		local message = params.message
		if message == json.null then
			message = nil
		end
		local r, message_err = processes.call(h.node, params.process, message)
		if r == nil and message_err then
			return err("call_failed", message_err)
		end
		if r == nil then
			r = json.null
		end
		return result(nodelib.plain(r, 0, {}))
	end
	return err("unknown_op", "unknown op " .. op)
end

return M
