-- The conformance app's counter at 1.2.0 (test/conformance/harness.ts), a Lua process
-- module: init(args) gives the state, handle_call(msg, state) answers (reply, new state).
local time = require "silly.time"

local M = {}

function M.init()
	return { count = 0, step = 1 }
end

function M.handle_call(msg, state)
	local op = msg.op
	if op == "incr" then
		state.count = state.count + state.step
		return state.count, state
	elseif op == "get" then
		return state.count
	elseif op == "version" then
		return "1.2.0"
	elseif op == "state" then
		return state
	elseif op == "sleep" then
		-- Outside an upgrade a call may wait: the caller's task sleeps, the process stays busy.
		time.sleep(msg.ms)
		return "slept"
	end
	error("unknown call " .. tostring(op))
end

-- Changes the state it was given, then fails: the upgrade must roll back with the state byte-identical.
function M.crash(state)
	state.count = -1
	error("migration crashed at count " .. state.count)
end

return M
