-- The conformance app's counter at 1.1.0 (test/conformance/harness.ts), a Lua process
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
		return "1.1.0"
	elseif op == "state" then
		return state
	elseif op == "sleep" then
		-- Outside an upgrade a call may wait: the caller's task sleeps, the process stays busy.
		time.sleep(msg.ms)
		return "slept"
	end
	error("unknown call " .. tostring(op))
end

-- Up from 1.0.0: every increment adds extra.step.
function M.addStep(state, info)
	state.step = info.extra.step
	return state
end

-- Down to 1.0.0: 1.0.0 counts by one.
function M.dropStep(state)
	state.step = nil
	return state
end

return M
