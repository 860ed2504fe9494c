-- relup.agent: make a Silly application a relup node. In its main script:
--
--   local agent = require "relup.agent"
--   local node = assert(agent.start {
--       release = "releases/demo-1.2.2.tar.gz", -- first start only (relup release pack)
--       state_dir = "/var/lib/demo/relup",      -- history and installed bundles
--       secret_file = "/etc/demo/relup.secret", -- shared with the relup CLI
--       listen = "127.0.0.1:7070",              -- loopback by default
--   })
--
-- It boots the permanent release (or `release` on a fresh state directory),
-- calls start(config) of the release's `start.main` module, and serves the
-- control protocol (docs/protocol.md) so `relup status/apply/rollback` work
-- against it. See docs/runtime-lua.md.

local type = type
local tostring = tostring

local time = require "silly.time"
local host = require "relup.agent.host"
local server = require "relup.agent.server"
local tx = require "relup.agent.transaction"

local M = {}

M.DEFAULT_LISTEN = "127.0.0.1:7070"

local function trim(s)
	return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--[[
Chaos drills and tests, as RELUP_FAULTS for Node.js nodes
(src/runtime/node-host/fault-injection.ts), for the kinds a Lua node can
honour: `throw`, `hang` (the deadline ends it), `exit` (the process dies
with SIGKILL as the step starts), `pause[=ms]` (the step waits first; only
before the point of no return, where the node may serve others; it writes
`RELUP_FAULTS: step <i> (<op> <target>) paused` to stderr). Indices are
0-based positions in the script's steps.
]]
-- Failing writes to the state directory, as for Node.js nodes: `write:<what>:<how>`
-- (host.lua's durable writes; <how> is enospc, eio or eio-after).
local WRITES = { ["history-boot"] = true, ["history-started"] = true, bundle = true, ["history-commit"] = true, ["history-outcome"] = true, ["history-permanent"] = true }
local KINDS = { throw = true, hang = true, crash = true, exit = true, pause = true }
local WRITE_HOW = { enospc = true, eio = true, ["eio-after"] = true }

local function parse_faults(spec)
	if spec == nil or spec == "" then
		return nil
	end
	local faults, writes = {}, {}
	for item in spec:gmatch("[^,]+") do
		local what, how = item:match("^%s*write:([%a-]+):([%a-]+)%s*$")
		if what then
			if not WRITES[what] or not WRITE_HOW[how] then
				return nil, nil, "RELUP_FAULTS: cannot read " .. item .. " (expected write:<history-boot|history-started|bundle|history-commit|history-outcome|history-permanent>:<enospc|eio|eio-after>)"
			end
			writes[what] = how
		else
			local index, kind, n = item:match("^%s*(%d+):(%a[%a-]*)=?(%d*)%s*$")
			if not index then
				return nil, nil, "RELUP_FAULTS: cannot read " .. item .. " (expected <step>:<throw|hang|crash|exit|pause[=ms]> or write:<what>:<how>)"
			end
			if not KINDS[kind] then
				return nil, nil, "RELUP_FAULTS: " .. item .. ": a Lua node knows the faults throw, hang, crash, exit and pause[=ms]"
			end
			faults[tonumber(index)] = { kind = kind, n = tonumber(n) }
		end
	end
	return function(index, step, before)
		local f = faults[index]
		if not f then
			return nil
		end
		local what = "step " .. index .. " (" .. step.op .. " " .. tx.target(step) .. ")"
		if f.kind == "throw" then
			error(tx.fail("injected", "RELUP_FAULTS: " .. what .. " failed on purpose"), 0)
		elseif f.kind == "hang" then
			return "hang"
		elseif f.kind == "crash" then
			-- A migrate step of processes makes them die mid-migration; any other step fails.
			if step.op ~= "migrate" or #(step.processes or {}) == 0 then
				error(tx.fail("injected", "RELUP_FAULTS: " .. what .. " crashed on purpose"), 0)
			end
			return "crash"
		elseif f.kind == "exit" then
			io.stderr:write("RELUP_FAULTS: " .. what .. ": the node dies now\n")
			io.stderr:flush()
			local silly = require "silly"
			os.execute("kill -KILL " .. tostring(silly.pid))
		elseif f.kind == "pause" then
			if before then
				io.stderr:write("RELUP_FAULTS: " .. what .. " paused\n")
				io.stderr:flush()
				time.sleep(f.n or 10000)
			else
				io.stderr:write("RELUP_FAULTS: " .. what .. ": a Lua node cannot pause after the point of no return (nothing may run in between); ignored\n")
			end
		end
		return nil
	end, writes
end

--[[
opts:
  release      a release bundle (.tar.gz), booted when state_dir is fresh
  state_dir    the node's state directory (created 0700)
  secret       the shared secret, or secret_file: a file holding it
  listen       "host:port" (default 127.0.0.1:7070)
  config       a table handed to start(config) of start.main
  idle_timeout_ms  close control connections idle this long (default 300000)
  public_key_file  accept only bundles signed by this ed25519 public key (PEM,
               from relup keys generate); checked with the openssl command
  faults       RELUP_FAULTS spec (default: the RELUP_FAULTS variable)
Returns { host = …, listen = "host:port", notice = "booting …" } or nil, message.
]]
function M.start(opts)
	opts = opts or {}
	if type(opts.state_dir) ~= "string" then
		return nil, "relup.agent.start: state_dir is required (where the history and installed bundles live)"
	end
	local secret = opts.secret
	if secret == nil and opts.secret_file then
		local f = io.open(opts.secret_file, "rb")
		if not f then
			return nil, "cannot read the secret file " .. opts.secret_file
		end
		secret = f:read("a")
		f:close()
	end
	if type(secret) ~= "string" or trim(secret) == "" then
		return nil, "relup.agent.start: a secret (secret or secret_file) is required: the agent's TCP control socket always authenticates"
	end
	secret = trim(secret)
	if #secret < 16 then
		return nil, "the secret is " .. #secret .. " bytes; at least 16 are required (head -c 32 /dev/urandom | base64)"
	end
	local fault, write_faults, ferr = parse_faults(opts.faults or os.getenv("RELUP_FAULTS"))
	if ferr then
		return nil, ferr
	end
	local h, err = host.start({
		pid = require("silly").pid,
		state_dir = opts.state_dir,
		release = opts.release,
		public_key_file = opts.public_key_file,
		write_faults = write_faults,
		config = opts.config,
		now_ms = time.now,
	})
	if not h then
		return nil, err
	end
	local listen = opts.listen or M.DEFAULT_LISTEN
	-- Monotonic nanoseconds (silly.perf.hrtime), as fractional milliseconds: step durations are sub-millisecond.
	local hrtime = require("silly.perf").hrtime
	-- Each step runs as a Silly task of its own, created and resumed at once
	-- (what silly._start does), so that a step that tries to wait registers
	-- that task, not the agent's, with the scheduler; the task is then
	-- closed, and its stray wake-up finds a dead coroutine (Silly logs it)
	-- instead of resuming the agent in the middle of something else.
	local task = require "silly.task"
	local spawn = function(fn, hook)
		local t = task._create(fn)
		debug.sethook(t, hook, "", 1000)
		task._resume(t)
		-- A task that ran to its end went back to Silly's pool: clear its hook for its next user.
		debug.sethook(t)
		if task.status(t) ~= nil then
			coroutine.close(t)
			return false
		end
		return true
	end
	local env = {
		spawn = spawn,
		now = function()
			return hrtime() / 1e6
		end,
		pause = function()
			time.sleep(0)
		end,
		sleep = function(ms)
			time.sleep(ms)
		end,
		fault = fault,
	}
	local listener, lerr = server.listen(h, { listen = listen, secret = secret, env = env, idle_ms = opts.idle_timeout_ms })
	if not listener then
		return nil, lerr
	end
	return { host = h, listen = listen, notice = h.notice, listener = listener }
end

return M
