-- The conformance app's counter at 1.3.0 (test/conformance/harness.ts), a Lua process
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
		return "1.3.0"
	elseif op == "state" then
		return state
	elseif op == "sleep" then
		-- Outside an upgrade a call may wait: the caller's task sleeps, the process stays busy.
		time.sleep(msg.ms)
		return "slept"
	end
	error("unknown call " .. tostring(op))
end

-- A slow migration: the window in which the suite kills clients and nodes. A Lua
-- transaction never yields (docs/runtime-lua.md), so the wait is a busy one: nothing
-- else runs on the node meanwhile, and requests are answered when it ends.
function M.slow(state, info)
	local stop = os.clock() + info.extra.sleepMs / 1000
	while os.clock() < stop do
	end
	return state
end

return M
