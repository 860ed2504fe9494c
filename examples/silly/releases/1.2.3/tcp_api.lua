-- The demo's TCP front: one JSON request per line, one JSON answer per
-- line, over connections that stay open across upgrades. It reaches the
-- route, game and config modules through their live module tables, so the
-- same open connection answers with the new code after an upgrade.
local tcp = require "silly.net.tcp"
local task = require "silly.task"
local json = require "silly.encoding.json"
local route = require "route"
local game = require "game"
local config = require "config"

local M = {}

local function response()
	local res = {}
	function res:status(code)
		self.code = code
	end
	function res:send(body)
		self.body = body
	end
	return res
end

-- One request; called through M on every line, so it is always the current code.
function M.handle(req)
	local op = req.op
	if op == "route" then
		local res = response()
		route.handle_request({ params = { name = req.name } }, res)
		return { status = res.code, body = res.body }
	elseif op == "stats" then
		return route.get_stats()
	elseif op == "add_player" then
		game.add_player(req.id, req.name)
		return { ok = true }
	elseif op == "add_score" then
		game.add_score(req.id, req.points)
		return game.get_player(req.id)
	elseif op == "player" then
		return game.get_player(req.id) or { missing = true }
	elseif op == "config_get" then
		return { value = config.get(req.key) }
	elseif op == "config_set" then
		local ok, err = pcall(config.set, req.key, req.value)
		return { ok = ok, error = (not ok) and tostring(err) or nil }
	elseif op == "config_all" then
		return config.get_all()
	elseif op == "versions" then
		return { route = route.VERSION, game = game.VERSION, config = config.VERSION }
	end
	return { error = "unknown op " .. tostring(op) }
end

local function serve(conn)
	while true do
		local line = conn:read("\n")
		if not line then
			return
		end
		local req = json.decode(line)
		local ok, answer = pcall(M.handle, type(req) == "table" and req or {})
		if not ok then
			answer = { error = tostring(answer) }
		end
		conn:write(json.encode(answer) .. "\n")
	end
end

-- start.main of the release: called once at boot with the node's config.
function M.start(cfg)
	local listener, err = tcp.listen({
		addr = (cfg and cfg.listen) or ("127.0.0.1:" .. ((cfg and cfg.port) or 7080)),
		accept = function(conn)
			serve(conn)
			conn:close()
		end,
	})
	if not listener then
		error("tcp_api cannot listen: " .. tostring(err))
	end
end

return M
