-- Each weakness of silly.patch named in issue 11, as one scenario with the
-- checks a user expects. Every scenario runs twice: with relup's join it
-- must pass; with the guide's procedure on plain silly.patch the same
-- checks must fail, which proves the scenario really tests the weakness.
local H = require "harness"
local join = require "relup.join"
local snapshot = require "relup.snapshot"

-- An upgrader: (live, base, new source) → upgrade report-ish.
local upgraders = {
	relup = function(live, base, src)
		local report = H.relup(live, base, src)
		return report
	end,
	patch = function(live, _, src)
		local absent = H.patch(live, src)
		return { absent = absent }
	end,
}

local scenarios = {}

-- The guide's game example without its VERSION field, so that silly.patch
-- fails for the weakness under test and not on VERSION (tested on its own).
local function game_source(version)
	local src = H.read("examples/silly/releases/" .. version .. "/game.lua")
	return (src:gsub('local M = { VERSION = "[^"]*" }', "local M = {}"))
end

-- Split state: a function new in the new version keeps a fresh copy of the
-- local the other functions share (the guide's own game example: add_exp).
scenarios["split state (new function)"] = function(upgrade)
	local v1 = game_source("1.2.2")
	local v2 = game_source("1.2.3")
	local game, base = H.boot(v1)
	game.add_player(1, "ann")
	upgrade(game, base, v2)
	game.add_levels({ extra = {} })
	game.add_score(1, 1000)
	H.eq(game.get_player(1).level, 2, "add_exp levels up the live player")
end

-- Split state: a function that did not use a local before.
scenarios["split state (local newly used)"] = function(upgrade)
	local game, base = H.boot([[
		local M = {}
		local hits = 0
		function M.hit() hits = hits + 1 end
		function M.report() return "n/a" end
		return M
	]])
	game.hit()
	game.hit()
	local report = upgrade(game, base, [[
		local M = {}
		local hits = 0
		function M.hit() hits = hits + 1 end
		function M.report() return hits end
		return M
	]])
	H.eq(game.report(), 2, "report reads the live counter")
	game.hit()
	H.eq(game.report(), 3, "one counter after the upgrade")
end

-- A new local used only by new code is reported with its initial value;
-- silly.patch does not report add_exp's locals at all.
scenarios["new locals reported absent"] = function(upgrade)
	local m, base = H.boot([[
		local M = {}
		local n = 0
		function M.inc() n = n + 1 end
		return M
	]])
	local report = upgrade(m, base, [[
		local M = {}
		local n = 0
		local limit = 10
		function M.inc() n = n + 1 end
		function M.capped() return math.min(n, limit) end
		return M
	]])
	local found
	for _, a in ipairs(report.absent) do
		if type(a) == "table" and a.name == "limit" then
			found = a
		end
	end
	H.truthy(found, "limit (new in a new function) reported absent")
	H.eq(found.value, 10, "with its initial value")
end

-- collectupval fails on a non-function field (VERSION), and the guide's copy
-- loop leaves VERSION at the old value.
scenarios["VERSION field"] = function(upgrade)
	local m, base = H.boot([[
		local M = { VERSION = "1.2.2", limit = 5 }
		function M.get() return M.limit end
		return M
	]])
	m.limit = 7 -- changed at run time: state, must survive
	local ok, err = pcall(upgrade, m, base, [[
		local M = { VERSION = "1.2.3", limit = 5, mode = "fast" }
		function M.get() return M.limit end
		return M
	]])
	H.truthy(ok, "the upgrade does not fail on data fields: " .. tostring(err))
	H.eq(m.VERSION, "1.2.3", "VERSION follows the code")
	H.eq(m.limit, 7, "a field changed at run time keeps its value")
	H.eq(m.mode, "fast", "a new field arrives")
end

-- A timer that captured the old function keeps running the old code.
scenarios["timer reaches new code"] = function(upgrade)
	local pending = {}
	_G.after = function(fn)
		pending[#pending + 1] = fn
	end
	local m, base = H.boot([[
		local M = {}
		local ticks = {}
		local tick
		function tick()
			ticks[#ticks + 1] = "old"
			after(tick)
		end
		function M.start() after(tick) end
		function M.ticks() return ticks end
		return M
	]])
	m.start()
	local function run()
		local fns = pending
		pending = {}
		for _, fn in ipairs(fns) do
			fn()
		end
	end
	run()
	upgrade(m, base, [[
		local M = {}
		local ticks = {}
		local tick
		function tick()
			ticks[#ticks + 1] = "new"
			after(tick)
		end
		function M.start() after(tick) end
		function M.ticks() return ticks end
		return M
	]])
	run() -- the callback queued before the upgrade: the old function, once
	run()
	run()
	local t = m.ticks()
	H.eq(#t, 4, "ticks")
	H.eq(t[4], "new", "the timer runs the new code after one old tick")
	_G.after = nil
end

-- A router table holding the module's functions keeps calling the old ones.
scenarios["router reaches new code"] = function(upgrade)
	local m, base = H.boot([[
		local M = {}
		local routes = {}
		function M.hello() return "v1" end
		routes["/hello"] = M.hello
		function M.dispatch(path) return routes[path]() end
		return M
	]])
	H.eq(m.dispatch("/hello"), "v1", "before")
	upgrade(m, base, [[
		local M = {}
		local routes = {}
		function M.hello() return "v2" end
		routes["/hello"] = M.hello
		function M.dispatch(path) return routes[path]() end
		return M
	]])
	H.eq(m.dispatch("/hello"), "v2", "the live router calls the new handler")
end

-- A state local that changes type trips silly.patch's assertion.
scenarios["local changes type"] = function(upgrade)
	local m, base = H.boot([[
		local M = {}
		local limit = 10
		function M.get() return limit end
		return M
	]])
	local ok, err = pcall(upgrade, m, base, [[
		local M = {}
		local limit = { max = 10 }
		function M.get() return type(limit) == "table" and limit.max or limit end
		function M.migrate() if type(limit) == "number" then limit = { max = limit } end end
		return M
	]])
	H.truthy(ok, "the switch does not assert: " .. tostring(err))
	m.migrate()
	H.eq(m.get(), 10, "the migration reshaped the live value")
end

-- The guide's backup-based rollback restores functions but not data a
-- migration changed. Here: the rollback is relup's (undo + snapshot) or the
-- guide's (backup of functions).
local rollbacks = {
	relup = function(m, base, src, migrate)
		local snap = snapshot.take(m, { chunks = H.CHUNKS })
		local _, undo = H.relup(m, base, src)
		local ok = pcall(migrate, m)
		if not ok then
			undo()
			snapshot.restore(snap)
		end
	end,
	patch = function(m, _, src, migrate)
		local backup = {}
		for name, fn in pairs(m) do
			backup[name] = fn
		end
		local ok = pcall(function()
			H.patch(m, src)
			migrate(m)
		end)
		if not ok then
			for name, fn in pairs(backup) do
				m[name] = fn
			end
		end
	end,
}
local function rollback_scenario(rollback)
	local v1 = game_source("1.2.2")
	local v2 = game_source("1.2.3")
	local game, base = H.boot(v1)
	game.add_player(1, "ann")
	game.add_score(1, 40)
	local before = H.dump(game)
	rollback(game, base, v2, function(m)
		m.add_levels({ extra = {} })
		error("the migration fails after changing data")
	end)
	H.eq(H.dump(game), before, "data back as it was")
	H.eq(game.get_player(1).level, nil, "no level left by the failed migration")
end

local names = {}
for name in pairs(scenarios) do
	names[#names + 1] = name
end
table.sort(names)
for _, name in ipairs(names) do
	H.case(name .. ": relup passes", function()
		scenarios[name](upgraders.relup)
	end)
	H.case(name .. ": silly.patch fails", function()
		local ok = pcall(scenarios[name], upgraders.patch)
		H.eq(ok, false, "the same checks with plain silly.patch fail")
	end)
end
H.case("rollback restores data: relup passes", function()
	rollback_scenario(rollbacks.relup)
end)
H.case("rollback restores data: silly.patch fails", function()
	H.eq(pcall(rollback_scenario, rollbacks.patch), false, "the guide's backup rollback leaves migrated data")
end)

H.run(arg)
