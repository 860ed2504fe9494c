-- relup.join: switch a live Lua module table to a new version's code while
-- keeping its state, by joining the new functions' upvalues to the live
-- upvalues (debug.upvalueid / debug.upvaluejoin).
--
-- Why not silly.patch: it matches upvalues function by function and name by
-- name, so a function that is new in the new version (or that did not use a
-- local before) keeps a fresh copy of the local the other functions share,
-- and nobody is told. Here every *local variable* of the new version (one
-- upvalue id, however many functions share it) is matched once to a local of
-- the live version, and every function that uses it is joined to the live
-- one. See docs/runtime-lua.md, "The join".
--
-- Pure Lua 5.4/5.5, no Silly: unit-tested with plain lua5.4.

local type = type
local pairs = pairs
local next = next
local rawget = rawget
local rawset = rawset
local tostring = tostring
local sort = table.sort
local concat = table.concat
local getupvalue = debug.getupvalue
local setupvalue = debug.setupvalue
local upvalueid = debug.upvalueid
local upvaluejoin = debug.upvaluejoin
local getinfo = debug.getinfo

local M = {}

-- Keys of a table in a stable order (strings and numbers first, by value),
-- so paths and reports are the same on every run.
local function sorted_keys(t)
	local keys = {}
	for k in next, t do
		keys[#keys + 1] = k
	end
	sort(keys, function(a, b)
		local ta, tb = type(a), type(b)
		if ta ~= tb then
			return ta < tb
		end
		if ta == "string" or ta == "number" then
			return a < b
		end
		return tostring(a) < tostring(b)
	end)
	return keys
end
M.sorted_keys = sorted_keys

-- A function belongs to the module when it was compiled from one of its
-- chunks; functions from elsewhere (Silly, other modules, C) are data.
local function owner_test(chunks)
	return function(fn)
		if type(fn) ~= "function" then
			return false
		end
		local info = getinfo(fn, "S")
		return info.what ~= "C" and chunks[info.source] == true
	end
end
M.owner_test = owner_test

-- Every local variable reachable from the module's functions, one entry per
-- upvalue id: its name, every (function, index) that refers to it, and
-- every path it was reached by (`field.upvalue.upvalue`).
local function collect(mod, owns)
	local cells = {}
	local order = {}
	local seen = {}
	local function visit(fn, path)
		if seen[fn] then
			return
		end
		seen[fn] = path
		local i = 1
		while true do
			local name, val = getupvalue(fn, i)
			if name == nil then
				break
			end
			if name == "" then
				name = "?" .. i
			end
			local id = upvalueid(fn, i)
			local cell = cells[id]
			if not cell then
				cell = { id = id, name = name, fn = fn, idx = i, refs = {}, paths = {} }
				cells[id] = cell
				order[#order + 1] = cell
			end
			local p = path .. "." .. name
			cell.refs[#cell.refs + 1] = { fn, i }
			cell.paths[#cell.paths + 1] = p
			if owns(val) then
				visit(val, p)
			end
			i = i + 1
		end
	end
	for _, k in pairs(sorted_keys(mod)) do
		local v = rawget(mod, k)
		if type(k) == "string" and owns(v) then
			visit(v, k)
		end
	end
	return { cells = cells, order = order, functions = seen }
end
M.collect = collect

local function cell_value(cell)
	local _, v = getupvalue(cell.fn, cell.idx)
	return v
end
M.cell_value = cell_value

-- A readable, JSON-able rendering of a value for reports.
local function describe(v, depth)
	local t = type(v)
	if t == "nil" or t == "boolean" or t == "number" or t == "string" then
		return v
	end
	if t == "table" and (depth or 0) < 2 then
		local out, n = {}, 0
		for _, k in pairs(sorted_keys(v)) do
			n = n + 1
			if n > 20 then
				out["…"] = "more"
				break
			end
			out[tostring(k)] = describe(rawget(v, k), (depth or 0) + 1)
		end
		return out
	end
	return "<" .. t .. ">"
end
M.describe = describe

local function deep_equal(a, b, seen)
	if a == b then
		return true
	end
	if type(a) ~= "table" or type(b) ~= "table" then
		return false
	end
	seen = seen or {}
	if seen[a] == b then
		return true
	end
	seen[a] = b
	for k, v in next, a do
		if not deep_equal(v, rawget(b, k), seen) then
			return false
		end
	end
	for k in next, b do
		if rawget(a, k) == nil then
			return false
		end
	end
	return true
end
M.deep_equal = deep_equal

-- A copy of a module table's data fields as loaded: the base of the
-- three-way merge of fields at the next switch (see `fields` below).
local function copy_data(v, seen)
	if type(v) ~= "table" then
		return v
	end
	seen = seen or {}
	if seen[v] then
		return seen[v]
	end
	local c = {}
	seen[v] = c
	for k, x in next, v do
		c[copy_data(k, seen)] = copy_data(x, seen)
	end
	return c
end

function M.base_fields(mod)
	local base = {}
	for k, v in next, mod do
		if type(v) ~= "function" then
			base[k] = copy_data(v)
		end
	end
	return base
end

-- Which live local each new local joins: first by a path they share (the
-- same function reaching the same name), else by name when the live module
-- has exactly one local of that name. Returns matches and the unmatched.
local function match(live, new)
	local by_path = {}
	local by_name = {}
	for _, cell in pairs(live.order) do
		for _, p in pairs(cell.paths) do
			if by_path[p] == nil then
				by_path[p] = cell
			end
		end
		local same = by_name[cell.name]
		if same == nil then
			by_name[cell.name] = cell
		elseif same ~= cell then
			by_name[cell.name] = false -- two live locals share the name: ambiguous
		end
	end
	local pairs_, absent = {}, {}
	for _, cell in pairs(new.order) do
		local found
		for _, p in pairs(cell.paths) do
			found = by_path[p]
			if found then
				break
			end
		end
		if not found then
			found = by_name[cell.name] or nil
		end
		if found then
			pairs_[#pairs_ + 1] = { new = cell, live = found }
		else
			absent[#absent + 1] = cell
		end
	end
	return pairs_, absent
end

--[[
Switch the live module table `live` to the code of `new` (a module table
loaded aside from the same file's new version).

opts:
  chunks   set of chunk names (`source` of debug.getinfo) of this module,
           old and new: functions from them are code, everything else data
  base     M.base_fields(live) taken when the live version was loaded; data
           fields the running code never changed follow the new code
           (VERSION), fields it changed keep their live value
  env      the table the new chunk was loaded with (its globals go to
           `genv`, and its functions' _ENV is pointed at `genv`)
  genv     the live global table (default _G)
  skip     tables never walked when replacing function references (other
           modules' tables, _G)

Returns a report and an undo function. The undo puts back every function,
field, cell value and reference this call changed; data the new code
changes later is the snapshot's business (relup.snapshot).
]]
function M.switch(live, new, opts)
	opts = opts or {}
	local owns = owner_test(opts.chunks or {})
	local genv = opts.genv or _G
	local base = opts.base or {}
	local skip = opts.skip or M.other_modules(live)

	local undo = {}
	local function record(fn)
		undo[#undo + 1] = fn
	end

	local live_cells = collect(live, owns)
	local new_cells = collect(new, owns)
	local matched, unmatched = match(live_cells, new_cells)

	-- `initial`: what the new version's top level set each joined local to
	-- (by name), handed to migrations, which may merge new defaults in.
	local report = { absent = {}, joined = {}, typeChanged = {}, initial = {}, fields = { updated = {}, kept = {}, added = {}, removed = {} }, references = 0 }
	-- Old function → its new version: what references held elsewhere must reach.
	local successor = {}

	for _, pair in pairs(matched) do
		local nc, lc = pair.new, pair.live
		local live_val = cell_value(lc)
		local new_val = cell_value(nc)
		for _, ref in pairs(nc.refs) do
			upvaluejoin(ref[1], ref[2], lc.fn, lc.idx)
		end
		report.joined[#report.joined + 1] = nc.paths[1]
		if report.initial[nc.name] == nil then
			report.initial[nc.name] = new_val
		end
		if owns(new_val) and owns(live_val) then
			-- A local holding the module's own function (a `local function`,
			-- a forward-declared timer callback): the shared variable now holds
			-- the new function, so old closures and timers that call through
			-- the variable reach the new code (the guide's "indirect
			-- invocation", without writing it by hand).
			setupvalue(lc.fn, lc.idx, new_val)
			successor[live_val] = new_val
			record(function()
				setupvalue(lc.fn, lc.idx, live_val)
			end)
		elseif live_val ~= nil and new_val ~= nil and type(live_val) ~= type(new_val) and not (owns(new_val) or owns(live_val)) then
			-- silly.patch asserts here; a changed shape is what migrations are for.
			report.typeChanged[#report.typeChanged + 1] = { path = nc.paths[1], live = type(live_val), new = type(new_val) }
		end
	end
	for _, cell in pairs(unmatched) do
		local v = cell_value(cell)
		if v == new then
			-- The module's own table (`M.add_exp(…)` inside a function that
			-- did not use M before): it is the live table from now on.
			setupvalue(cell.fn, cell.idx, live)
		elseif cell.name == "_ENV" then
			-- The new chunk's globals table: point it at the live globals below.
			if v ~= opts.env then
				report.absent[#report.absent + 1] = { path = cell.paths[1], name = cell.name, value = describe(v) }
			end
		else
			-- New locals keep the value the new version initialised them to; reported like silly's `absent`.
			report.absent[#report.absent + 1] = { path = cell.paths[1], name = cell.name, value = describe(v) }
		end
	end
	sort(report.joined)

	-- _ENV of new functions: the staging table the chunk ran in becomes the
	-- live global table, and the globals the chunk defined move there.
	if opts.env ~= nil then
		for _, cell in pairs(new_cells.order) do
			if cell.name == "_ENV" and cell_value(cell) == opts.env then
				setupvalue(cell.fn, cell.idx, genv)
			end
		end
		for _, k in pairs(sorted_keys(opts.env)) do
			local v = rawget(opts.env, k)
			local old = rawget(genv, k)
			-- Silly's rule: a global the node already has keeps its value,
			-- functions are replaced by the new code's.
			if old == nil or type(v) == "function" then
				rawset(genv, k, v)
				record(function()
					rawset(genv, k, old)
				end)
			end
		end
	end

	-- Fields of the module table. Functions are the new code. Data fields
	-- are a three-way merge with the fields as the live version was loaded:
	-- a field the running code never changed follows the new code (VERSION
	-- becomes the new version's), one it changed is state and keeps its value.
	local before = {}
	for k, v in next, live do
		before[k] = v
	end
	record(function()
		for k in next, live do
			if before[k] == nil then
				rawset(live, k, nil)
			end
		end
		for k, v in next, before do
			rawset(live, k, v)
		end
	end)
	for _, k in pairs(sorted_keys(new)) do
		local v = rawget(new, k)
		local old = rawget(live, k)
		if type(v) == "function" then
			if type(old) == "function" and old ~= v then
				successor[old] = v
			end
			rawset(live, k, v)
		elseif old == nil then
			rawset(live, k, v)
			report.fields.added[#report.fields.added + 1] = tostring(k)
			report.absent[#report.absent + 1] = { path = "M." .. tostring(k), name = tostring(k), value = describe(v) }
		elseif base[k] ~= nil and not deep_equal(old, base[k]) then
			report.fields.kept[#report.fields.kept + 1] = tostring(k)
		elseif not deep_equal(old, v) then
			rawset(live, k, v)
			report.fields.updated[#report.fields.updated + 1] = tostring(k)
		end
	end
	for _, k in pairs(sorted_keys(before)) do
		if rawget(new, k) == nil then
			local old = before[k]
			if type(old) == "function" or base[k] == nil or deep_equal(old, base[k]) then
				rawset(live, k, nil)
				report.fields.removed[#report.fields.removed + 1] = tostring(k)
			end
		end
	end

	-- References to old functions kept in the module's data (a router's
	-- table of handlers, a dispatch map) now name the new functions, so they
	-- do not keep running the old code.
	local walked = { [live] = true }
	for t in pairs(skip) do
		walked[t] = true
	end
	walked[genv] = true
	local function walk(t)
		if walked[t] then
			return
		end
		walked[t] = true
		for _, k in pairs(sorted_keys(t)) do
			local v = rawget(t, k)
			local nv = successor[v]
			if nv ~= nil then
				rawset(t, k, nv)
				report.references = report.references + 1
				record(function()
					rawset(t, k, v)
				end)
			elseif type(v) == "table" then
				walk(v)
			end
		end
	end
	for _, k in pairs(sorted_keys(live)) do
		local v = rawget(live, k)
		if type(v) == "table" then
			walk(v)
		end
	end
	for _, cell in pairs(live_cells.order) do
		local v = cell_value(cell)
		if type(v) == "table" then
			walk(v)
		end
	end

	local undone = false
	return report, function()
		-- Idempotent: a rollback may be retried.
		if undone then
			return
		end
		undone = true
		for i = #undo, 1, -1 do
			undo[i]()
		end
	end
end

-- Tables a walk must not enter: every loaded module but `mod` (each module
-- is switched, snapshotted and restored on its own) and the registry tables.
function M.other_modules(mod)
	local skip = { [package.loaded] = true, [_G] = true }
	for _, v in next, package.loaded do
		if type(v) == "table" and v ~= mod then
			skip[v] = true
		end
	end
	return skip
end

-- Paths of the report's absent locals, for messages.
function M.absent_paths(report)
	local out = {}
	for _, a in pairs(report.absent) do
		out[#out + 1] = a.path
	end
	return concat(out, ", ")
end

return M
