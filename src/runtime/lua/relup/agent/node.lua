-- relup.agent.node: the release a Lua node runs: its modules (live module
-- tables, their files, hashes and chunk names), how they are booted, and
-- what `status`, `states` and `invoke` see.
--
-- A module of a Lua release is a file returning its module table. The node
-- loads it once (at boot or when an upgrade adds it) into package.loaded, so
-- `require "route"` anywhere in the application gets the live table: an
-- upgrade changes that table in place and every caller sees the new code.

local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local tostring = tostring
local sort = table.sort

local join = require "relup.join"
local loader = require "relup.loader"
local bundle = require "relup.agent.bundle"
local release_yaml = require "relup.agent.release_yaml"
local processes = require "relup.agent.processes"

local M = {}

-- The release described by `files` (path → bytes): release.yaml parsed and
-- every module's hash computed. Returns image or nil, message.
function M.image(files, origin)
	local text = files["release.yaml"]
	if not text then
		return nil, (origin or "the release") .. " has no release.yaml"
	end
	local rel, err = release_yaml.release(text, (origin and origin .. ":" or "") .. "release.yaml")
	if not rel then
		return nil, err
	end
	for _, m in ipairs(rel.modules) do
		local src = files[m.file]
		if not src then
			return nil, "module " .. m.name .. ": " .. m.file .. " is not in the release"
		end
		m.hash = bundle.sha256_hex(src)
	end
	rel.hash = bundle.release_hash(files)
	return { release = rel, files = files }
end

local function module_spec(image, name)
	for _, m in ipairs(image.release.modules) do
		if m.name == name then
			return m
		end
	end
	return nil
end
M.module_spec = module_spec

--[[
Boot `image` into this Lua state: every module loaded (a module may
require another of the release at its top level, in any order), then
start.main's `start()` called. Returns node or nil, message.
]]
function M.boot(image, config)
	local node = {
		name = image.release.name,
		release = image.release,
		image = image,
		modules = {},
		config = config or {},
		genv = _G,
	}
	local loading = {}
	local function load_module(name)
		local spec = module_spec(image, name)
		if loading[name] then
			error("module " .. name .. " requires itself through a cycle at load time", 0)
		end
		loading[name] = true
		local mod, err = loader.compile(image.files[spec.file], spec.file, node.genv, false)
		loading[name] = nil
		if not mod then
			error(err, 0)
		end
		node.modules[name] = { name = name, file = spec.file, hash = spec.hash, version = image.release.version, live = mod, chunk = loader.chunkname(spec.file), base = join.base_fields(mod) }
		package.loaded[name] = mod
		return mod
	end
	-- A searcher for the release's modules, so top-level requires between
	-- them work in any order; it is consulted before the file searchers.
	local searcher = function(name)
		local current = node.image
		if not module_spec(current, name) then
			return "\n\tno module '" .. name .. "' in release " .. current.release.version
		end
		return function()
			return load_module(name)
		end
	end
	table.insert(package.searchers, 2, searcher)
	node.searcher = searcher
	for _, spec in ipairs(image.release.modules) do
		if package.loaded[spec.name] ~= nil and not node.modules[spec.name] then
			return nil, "module " .. spec.name .. " of the release has the name of a module already loaded (" .. spec.name .. "): rename it"
		end
		if not node.modules[spec.name] then
			local ok, err = pcall(require, spec.name)
			if not ok then
				return nil, "boot of " .. image.release.name .. " " .. image.release.version .. " failed: " .. tostring(err)
			end
		end
	end
	-- Processes start on the booted code, before start.main runs.
	local pok, perr = processes.boot(node, image.release.processes)
	if not pok then
		return nil, "boot of " .. image.release.name .. " " .. image.release.version .. " failed: " .. perr
	end
	local main = image.release.start and image.release.start.main
	if main ~= nil then
		local record = node.modules[main]
		if not record then
			return nil, "start.main of " .. image.release.name .. " " .. image.release.version .. " must name one of its modules, got " .. tostring(main)
		end
		if type(record.live.start) == "function" then
			local ok, err = pcall(record.live.start, node.config)
			if not ok then
				return nil, "start() of " .. main .. " failed: " .. tostring(err)
			end
		end
	end
	return node
end

function M.module_list(node)
	local out = {}
	for name, m in pairs(node.modules) do
		out[#out + 1] = { name = name, hash = m.hash, version = m.version }
	end
	sort(out, function(a, b)
		return a.name < b.name
	end)
	return out
end

-- A JSON-able deep copy of every module's state: its data fields and the
-- locals its functions share, by name (`states` op, tests, check --live).
function M.states(node)
	local json = require "relup.agent.json"
	local modules = json.object()
	for name, m in pairs(node.modules) do
		local owns = join.owner_test({ [m.chunk] = true })
		local cells = join.collect(m.live, owns)
		local state = json.object()
		for _, cell in ipairs(cells.order) do
			local v = join.cell_value(cell)
			if type(v) ~= "function" and cell.name ~= "_ENV" and state[cell.name] == nil then
				state[cell.name] = M.plain(v, 0, join.other_modules(m.live))
			end
		end
		for k, v in pairs(m.live) do
			if type(v) ~= "function" and type(k) == "string" then
				state["M." .. k] = M.plain(v, 0, {})
			end
		end
		modules[name] = state
	end
	local procs = json.object()
	for name, p in pairs(node.processes or {}) do
		procs[name] = M.plain(p.state, 0, {})
	end
	return { modules = modules, processes = procs }
end

-- A plain copy of data: tables by value (cycles and other modules cut), functions and userdata named.
-- JSON's null is a table sentinel in Silly: kept as is, or it would be copied into an empty object
-- (required on first use, as in M.states).
local null
function M.plain(v, depth, skip)
	null = null or require("relup.agent.json").null
	local t = type(v)
	if v == null then
		return v
	elseif t == "table" then
		if depth > 20 or skip[v] then
			return "<table>"
		end
		local out = {}
		for k, x in pairs(v) do
			out[type(k) == "number" and k or tostring(k)] = M.plain(x, depth + 1, skip)
		end
		return out
	elseif t == "function" or t == "userdata" or t == "thread" then
		return "<" .. t .. ">"
	end
	return v
end

return M
