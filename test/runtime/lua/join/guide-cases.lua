-- The three examples of Silly's hot-reload guide (examples/silly), switched
-- up to 1.2.3 and back down to 1.2.2 by relup's join, state checked value by
-- value; and a failed migration rolled back byte for byte.
local H = require "harness"
local snapshot = require "relup.snapshot"

local function src(version, name)
	return H.read("examples/silly/releases/" .. version .. "/" .. name .. ".lua")
end

local function info(report, direction, extra)
	return { direction = direction, from = "1.2.2", to = "1.2.3", extra = extra or {}, initial = report.initial }
end

H.case("route up and down", function()
	local route, base = H.boot(src("1.2.2", "route"))
	for _ = 1, 3 do
		route.handle_request({ params = {} }, H.res())
	end
	local report = H.relup(route, base, src("1.2.3", "route"))
	H.eq(route.VERSION, "1.2.3", "VERSION follows the code")
	local absent = H.has_absent(report, "error_count")
	H.truthy(absent, "error_count reported absent")
	H.eq(absent.value, 0, "absent error_count's initial value")
	local res = H.res()
	route.handle_request({ params = {} }, res)
	H.eq(res.code, 400, "new behaviour: 400 without a name")
	res = H.res()
	route.handle_request({ params = { name = "ann" } }, res)
	H.eq(res.body, "Hello, ann (visitor #5)", "the access counter kept counting")
	local stats = route.get_stats()
	H.eq(stats.total, 5, "total")
	H.eq(stats.errors, 1, "errors")
	-- Down: 1.2.2's code, the live counter kept.
	local base2 = require("relup.join").base_fields(route)
	H.relup(route, base2, src("1.2.2", "route"))
	H.eq(route.VERSION, "1.2.2", "VERSION back")
	res = H.res()
	route.handle_request({ params = {} }, res)
	H.eq(res.body, "Hello, visitor #6", "old behaviour, counter kept")
	H.eq(route.get_stats().errors, nil, "no error counter in 1.2.2")
end)

H.case("game up and down", function()
	local game, base = H.boot(src("1.2.2", "game"))
	game.add_player(1, "ann")
	game.add_score(1, 50)
	game.add_player(2, "bob")
	local p1 = game.get_player(1)
	local report = H.relup(game, base, src("1.2.3", "game"))
	game.add_levels(info(report, "up", { start_level = 1 }))
	H.eq(game.get_player(1), p1, "the same player record")
	H.eq(p1.score, 50, "score kept")
	H.eq(p1.level, 1, "level migrated")
	H.eq(p1.exp, 0, "exp migrated")
	game.add_score(1, 1000)
	H.eq(p1.score, 1050, "score after")
	-- add_exp is new in 1.2.3: it must act on the live players.
	H.eq(p1.level, 2, "add_exp (a new function) sees the live players: level up")
	H.eq(p1.exp, 0, "exp after level-up")
	game.add_player(3, "cy")
	H.eq(game.get_player(3).level, 1, "new players get a level")
	-- Down: the down migration runs in 1.2.3's code, then 1.2.2's is switched in.
	game.drop_levels({ direction = "down", extra = {} })
	H.relup(game, require("relup.join").base_fields(game), src("1.2.2", "game"))
	H.eq(game.get_player(1).level, nil, "level dropped")
	H.eq(game.get_player(1).score, 1050, "score kept down")
	game.add_score(1, 10)
	H.eq(game.get_player(1).score, 1060, "1.2.2's add_score runs")
	H.eq(game.get_player(1).exp, nil, "no exp in 1.2.2")
end)

H.case("config up and down", function()
	local config, base = H.boot(src("1.2.2", "config"))
	config.set("timeout", 60)
	local report = H.relup(config, base, src("1.2.3", "config"))
	config.add_new_settings(info(report, "up"))
	H.eq(config.get("timeout"), 60, "a changed setting survives")
	H.eq(config.get("max_connections"), 1000, "an unchanged setting")
	H.eq(config.get("enable_cache"), true, "new key enable_cache")
	H.eq(config.get("cache_ttl"), 300, "new key cache_ttl")
	local ok = pcall(config.set, "timeout", -1)
	H.eq(ok, false, "validation is on")
	config.remove_new_settings({ direction = "down" })
	H.relup(config, require("relup.join").base_fields(config), src("1.2.2", "config"))
	H.eq(config.get("enable_cache"), nil, "new key gone down")
	H.eq(config.get("timeout"), 60, "changed setting kept down")
	config.set("timeout", -1)
	H.eq(config.get("timeout"), -1, "1.2.2 has no validation")
end)

H.case("a migration that throws rolls back byte-identical", function()
	local game, base = H.boot(src("1.2.2", "game"))
	game.add_player(1, "ann")
	game.add_score(1, 70)
	game.add_player(2, "bob")
	local before = H.dump(game)
	local handle = game.add_player
	local snap = snapshot.take(game, { chunks = H.CHUNKS })
	local report, undo = H.relup(game, base, src("1.2.3", "game"))
	game.add_levels(info(report, "up"))
	local ok = pcall(function()
		game.add_score(1, 500) -- the new code changes data…
		error("migration failed half-way") -- …then fails
	end)
	H.eq(ok, false, "the migration threw")
	H.truthy(game.get_player(1).level ~= nil, "data was changed before the failure")
	undo()
	snapshot.restore(snap)
	H.eq(game.add_player, handle, "old function back")
	H.eq(H.dump(game), before, "state byte-identical")
	game.add_score(1, 1)
	H.eq(game.get_player(1).score, 71, "old code runs on old data")
	H.eq(game.get_player(1).exp, nil, "no exp field")
end)

-- Old code must be collectable: 1,000 switches up and down, with snapshots
-- taken and dropped, leave the Lua heap where it was.
H.case("1000 switches do not grow memory", function()
	local join = require "relup.join"
	local v1, v2 = src("1.2.2", "game"), src("1.2.3", "game")
	local game, base = H.boot(v1)
	for i = 1, 50 do
		game.add_player(i, "p" .. i)
	end
	local function cycle()
		local snap = snapshot.take(game, { chunks = H.CHUNKS })
		H.relup(game, base, v2)
		game.add_levels({ extra = {} })
		game.drop_levels({})
		base = join.base_fields(game)
		H.relup(game, base, v1)
		base = join.base_fields(game)
		snap = nil
	end
	for _ = 1, 100 do
		cycle()
	end
	collectgarbage("collect")
	collectgarbage("collect")
	local after_warmup = collectgarbage("count")
	for _ = 1, 1000 do
		cycle()
	end
	collectgarbage("collect")
	collectgarbage("collect")
	local after = collectgarbage("count")
	-- A leak of even one closure per switch would be well over 100 KiB here.
	H.truthy(after - after_warmup < 64, string.format("heap grew from %.0f KiB to %.0f KiB over 1000 switches", after_warmup, after))
	H.eq(game.get_player(7).name, "p7", "state kept through 2000 switches")
end)

H.run(arg)
