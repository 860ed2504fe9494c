-- The game example of Silly's hot-reload guide, version 1.2.2.
local M = { VERSION = "1.2.2" }

local player_data = {}

function M.add_player(id, name)
	player_data[id] = {
		name = name,
		score = 0,
	}
end

function M.add_score(id, points)
	if player_data[id] then
		player_data[id].score = player_data[id].score + points
	end
end

function M.get_player(id)
	return player_data[id]
end

return M
