-- The game example of Silly's hot-reload guide, version 1.2.3: level and
-- experience. `add_exp` is new: with silly.patch it would keep a fresh,
-- empty player_data; relup's join gives it the live one.
local M = { VERSION = "1.2.3" }

local player_data = {}

function M.add_player(id, name)
	player_data[id] = {
		name = name,
		score = 0,
		level = 1,
		exp = 0,
	}
end

function M.add_score(id, points)
	if player_data[id] then
		player_data[id].score = player_data[id].score + points
		local exp = math.floor(points / 10)
		M.add_exp(id, exp)
	end
end

function M.add_exp(id, exp)
	local player = player_data[id]
	if not player then
		return
	end
	player.exp = player.exp + exp
	while player.exp >= player.level * 100 do
		player.exp = player.exp - player.level * 100
		player.level = player.level + 1
	end
end

function M.get_player(id)
	return player_data[id]
end

-- Migration up (appup: update game, migration add_levels): existing players
-- gain level and experience. Its upvalue player_data is the live table.
function M.add_levels(info)
	local start = (info.extra and info.extra.start_level) or 1
	for _, player in pairs(player_data) do
		if player.level == nil then
			player.level = start
			player.exp = 0
		end
	end
end

-- Migration down (runs in this code before 1.2.2's is switched in).
function M.drop_levels(info)
	for _, player in pairs(player_data) do
		player.level = nil
		player.exp = nil
	end
end

return M
