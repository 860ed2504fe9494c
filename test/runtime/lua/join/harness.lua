-- Helpers for the join's unit tests (plain lua5.4, no Silly).
-- package.path is set by the runner to find relup.* and silly.patch.

local join = require "relup.join"
local loader = require "relup.loader"
local snapshot = require "relup.snapshot"

local H = {}

local cases, order = {}, {}
function H.case(name, fn)
	cases[name] = fn
	order[#order + 1] = name
end

-- `lua5.4 file.lua` lists the cases; `lua5.4 file.lua NAME` runs one.
function H.run(args)
	local name = args[1]
	if name == nil then
		for _, n in ipairs(order) do
			print(n)
		end
		return
	end
	local fn = cases[name]
	if not fn then
		io.stderr:write("no case " .. name .. "\n")
		os.exit(2)
	end
	local ok, err = xpcall(fn, debug.traceback)
	if not ok then
		io.stderr:write(tostring(err) .. "\n")
		os.exit(1)
	end
	print("ok " .. name)
end

function H.eq(actual, expected, what)
	if actual ~= expected then
		error(string.format("%s: expected %s, got %s", what, tostring(expected), tostring(actual)), 2)
	end
end

function H.truthy(v, what)
	if not v then
		error(what, 2)
	end
end

local FILE = "mod.lua"
H.CHUNKS = { [loader.chunkname(FILE)] = true }

-- Version 1 of a module, as the node boots it.
function H.boot(src)
	local mod = assert(loader.compile(src, FILE, _G, false))
	return mod, join.base_fields(mod)
end

-- relup's switch: the new version compiled aside, then joined.
function H.relup(live, base, src)
	local new, env = assert(loader.compile(src, FILE, _G, true))
	local report, undo = join.switch(live, new, { chunks = H.CHUNKS, env = env, base = base })
	return report, undo, new
end

-- The guide's procedure with plain silly.patch (hotfix_*.lua of the guide).
function H.patch(live, src)
	local patch = require "silly.patch"
	local new = assert(load(src, "@" .. FILE, "t", _ENV))()
	local P = patch.new()
	local up_old = P:collectupval(live)
	local up_new = P:collectupval(new)
	local absent = P:join(up_new, up_old)
	for name, fn in pairs(new) do
		if type(fn) == "function" then
			live[name] = fn
		end
	end
	return absent, up_old, up_new
end

function H.has_absent(report, name)
	for _, a in ipairs(report.absent) do
		if a.name == name then
			return a
		end
	end
	return nil
end

-- A deterministic text of a module's whole state: fields, shared locals and
-- every table under them, by value and by identity (tables are numbered in
-- the order first met), so "byte-identical" can be asserted.
function H.dump(mod)
	local snap = snapshot.take(mod, { chunks = H.CHUNKS })
	local ids, n = {}, 0
	local out = {}
	local function v2s(v)
		local t = type(v)
		if t == "table" then
			if not ids[v] then
				n = n + 1
				ids[v] = n
			end
			return "T" .. ids[v]
		elseif t == "string" then
			return string.format("%q", v)
		elseif t == "function" then
			local info = debug.getinfo(v, "S")
			return "F" .. info.source .. ":" .. info.linedefined
		end
		return tostring(v)
	end
	local function dump_table(t)
		local lines = {}
		for _, k in ipairs(join.sorted_keys(t)) do
			lines[#lines + 1] = v2s(k) .. "=" .. v2s(rawget(t, k))
		end
		return "{" .. table.concat(lines, ",") .. "}"
	end
	-- Cells sorted by where they are declared, then everything walked
	-- breadth-first from the module and the cells, so numbering is stable.
	local cells = {}
	for _, c in pairs(snap.cells) do
		local name = debug.getupvalue(c.fn, c.idx)
		cells[#cells + 1] = { key = name, value = c.value }
	end
	-- By name; locals sharing a name are told apart by their values' text.
	table.sort(cells, function(a, b)
		if a.key ~= b.key then
			return a.key < b.key
		end
		return tostring(a.value) < tostring(b.value)
	end)
	local queue, head, done = { mod }, 1, {}
	v2s(mod)
	local cell_lines = {}
	for _, c in ipairs(cells) do
		cell_lines[#cell_lines + 1] = c.key .. "=" .. v2s(c.value)
		if type(c.value) == "table" and snap.tables[c.value] then
			queue[#queue + 1] = c.value
		end
	end
	while queue[head] do
		local t = queue[head]
		head = head + 1
		if not done[t] then
			done[t] = true
			out[#out + 1] = v2s(t) .. dump_table(t)
			for _, k in ipairs(join.sorted_keys(t)) do
				local v = rawget(t, k)
				if type(v) == "table" and snap.tables[v] then
					queue[#queue + 1] = v
				end
			end
		end
	end
	return table.concat(cell_lines, "\n") .. "\n" .. table.concat(out, "\n")
end

-- A file of the repository (RELUP_REPO is set by the runner).
function H.read(path)
	local f = assert(io.open(assert(os.getenv("RELUP_REPO"), "RELUP_REPO not set") .. "/" .. path, "rb"))
	local s = f:read("a")
	f:close()
	return s
end

-- A fake response object like Silly's HTTP one.
function H.res()
	local r = {}
	function r:status(code)
		self.code = code
	end
	function r:send(body)
		self.body = body
	end
	return r
end

return H
