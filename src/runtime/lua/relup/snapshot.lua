-- relup.snapshot: the state of a Lua module, taken before an upgrade touches
-- it and put back exactly on rollback.
--
-- A module's state is its module table, the locals its functions share
-- (upvalue cells) and every table reachable from them. The snapshot keeps,
-- for every such table, a shallow copy of its raw contents, and for every
-- cell its value. Restoring writes the contents back *into the same tables*
-- (rather than swapping in copies), so every other reference to a player
-- record, a settings table or a router still sees the restored data: after
-- a rollback the state is identical, object identity included.
--
-- Pure Lua 5.4/5.5, no Silly.

local type = type
local next = next
local rawget = rawget
local rawset = rawset
local getupvalue = debug.getupvalue
local setupvalue = debug.setupvalue
local upvalueid = debug.upvalueid

local join = require "relup.join"

local M = {}

--[[
Take a snapshot of module table `mod`.
opts.chunks: the module's chunk names (its functions are walked for their
             upvalues; other functions are values, kept by reference)
opts.skip:   tables not to enter (other modules, _G); default: every other
             loaded module
]]
function M.take(mod, opts)
	opts = opts or {}
	local owns = join.owner_test(opts.chunks or {})
	local skip = opts.skip or join.other_modules(mod)
	local tables = {}
	local cells = {}
	local ncells = 0
	local seen_fn = {}

	local visit_table, visit_value
	local function visit_fn(fn)
		if seen_fn[fn] or not owns(fn) then
			return
		end
		seen_fn[fn] = true
		local i = 1
		while true do
			local name, v = getupvalue(fn, i)
			if name == nil then
				break
			end
			local id = upvalueid(fn, i)
			if cells[id] == nil then
				ncells = ncells + 1
				cells[id] = { fn = fn, idx = i, value = v }
			end
			visit_value(v)
			i = i + 1
		end
	end
	function visit_value(v)
		local t = type(v)
		if t == "table" then
			visit_table(v)
		elseif t == "function" then
			visit_fn(v)
		end
	end
	function visit_table(t)
		if tables[t] or (skip[t] and t ~= mod) then
			return
		end
		local copy = {}
		tables[t] = copy
		for k, v in next, t do
			copy[k] = v
		end
		for k, v in next, copy do
			visit_value(k)
			visit_value(v)
		end
	end

	visit_table(mod)
	return { tables = tables, cells = cells, ncells = ncells }
end

-- Put every table's contents and every cell's value back as they were.
function M.restore(snap)
	for t, copy in next, snap.tables do
		local extra = {}
		for k in next, t do
			if rawget(copy, k) == nil then
				extra[#extra + 1] = k
			end
		end
		for _, k in next, extra do
			rawset(t, k, nil)
		end
		for k, v in next, copy do
			rawset(t, k, v)
		end
	end
	for _, c in next, snap.cells do
		setupvalue(c.fn, c.idx, c.value)
	end
end

return M
