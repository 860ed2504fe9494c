-- relup.agent.processes: agent-owned processes of a Lua node, OTP's
-- gen_server done the Lua way. A process is a name, a module of the release
-- (with `init(args)` and `handle_call(msg, state)`) and a state table the
-- agent keeps. Calls (the protocol's `call` op) are handled one at a time,
-- in arrival order; a caller that finds the process busy, suspended or with
-- callers ahead of it waits in its mailbox (a FIFO of waiting Silly tasks).
--
-- Why the agent owns the state: an upgrade can then suspend the process
-- between two calls, snapshot its state, hand it to the appup's migration
-- (`migration(state, info)` returns the new state) and put it back exactly
-- on rollback, as a Node.js or Erlang node does.

local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local tostring = tostring

local M = {}

-- A deep copy of plain data (tables by value; functions and userdata by reference).
local function copy(v, seen)
	if type(v) ~= "table" then
		return v
	end
	seen = seen or {}
	if seen[v] then
		return seen[v]
	end
	local out = {}
	seen[v] = out
	for k, x in pairs(v) do
		out[copy(k, seen)] = copy(x, seen)
	end
	return setmetatable(out, getmetatable(v))
end
M.copy = copy

local function module_of(node, p)
	local record = node.modules[p.module]
	return record and record.live
end

-- Start process `spec` ({name, module, args}) on the node's current code. Returns true or nil, message.
function M.start(node, spec)
	local mod = node.modules[spec.module] and node.modules[spec.module].live
	if type(mod) ~= "table" or type(mod.init) ~= "function" or type(mod.handle_call) ~= "function" then
		return nil, "process " .. spec.name .. ": module " .. spec.module .. " must export init(args) and handle_call(msg, state)"
	end
	local ok, state = pcall(mod.init, spec.args)
	if not ok then
		return nil, "process " .. spec.name .. ": init failed: " .. tostring(state)
	end
	if type(state) ~= "table" then
		return nil, "process " .. spec.name .. ": init must return the state as a table, got " .. type(state)
	end
	node.processes[spec.name] = { name = spec.name, module = spec.module, args = spec.args, state = state, mailbox = {}, busy = false, suspended = false }
	return true
end

-- Every process of the release, in name order. Returns true or nil, message.
function M.boot(node, specs)
	node.processes = {}
	for _, spec in ipairs(specs or {}) do
		local ok, err = M.start(node, spec)
		if not ok then
			return nil, err
		end
	end
	return true
end

-- Let the next waiting caller in, unless the process is held.
local function next_caller(p)
	if p.busy or p.suspended then
		return
	end
	local t = table.remove(p.mailbox, 1)
	if t then
		p.busy = true -- reserved for it: no caller may overtake the queue
		require("silly.task").wakeup(t)
	end
end

--[[
Handle one call in the calling Silly task. Returns reply or nil, message.
The reply is handle_call's first result; its second, when not nil, is the
process's new state.
]]
function M.call(node, name, msg)
	local p = node.processes and node.processes[name]
	if not p then
		return nil, "no process " .. tostring(name) .. " on this node"
	end
	if p.busy or p.suspended or #p.mailbox > 0 then
		local task = require "silly.task"
		local waited = p
		p.mailbox[#p.mailbox + 1] = task.running()
		task.wait()
		-- next_caller marked the process busy for this caller.
		p = node.processes[name]
		if p ~= waited then
			-- An upgrade stopped (or restarted) it meanwhile: this caller, and the next, are told.
			waited.busy = false
			next_caller(waited)
			return nil, "process " .. tostring(name) .. " was stopped by an upgrade while the call waited"
		end
	end
	p.busy = true
	local mod = module_of(node, p)
	local ok, reply, state = pcall(mod.handle_call, msg, p.state)
	p.busy = false
	if ok and state ~= nil then
		if type(state) ~= "table" then
			ok, reply = false, "handle_call returned a " .. type(state) .. " as the new state (a table or nil)"
		else
			p.state = state
		end
	end
	next_caller(p)
	if not ok then
		return nil, "process " .. name .. ": " .. tostring(reply)
	end
	return reply
end

-- Stop taking calls (new callers wait in the mailbox). A process in the middle of a call is not idle.
function M.hold(p)
	p.suspended = true
end

-- Take calls again; the callers that waited go first, in order.
function M.release(p)
	p.suspended = false
	next_caller(p)
end

function M.status(node)
	local out = {}
	for name, p in pairs(node.processes or {}) do
		out[#out + 1] = { name = name, module = p.module, suspended = p.suspended, mailbox = #p.mailbox, handling = p.busy }
	end
	table.sort(out, function(a, b)
		return a.name < b.name
	end)
	return out
end

return M
