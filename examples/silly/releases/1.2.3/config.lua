-- The config example of Silly's hot-reload guide, version 1.2.3: new keys
-- and validation. The live settings table is kept by the join; the
-- migration merges the new keys in without overwriting changed values.
local M = { VERSION = "1.2.3" }

local settings = {
	max_connections = 1000,
	timeout = 30,
	log_level = "INFO",
	enable_cache = true,
	cache_ttl = 300,
}

local validators = {
	max_connections = function(v)
		return type(v) == "number" and v > 0 and v <= 10000
	end,
	timeout = function(v)
		return type(v) == "number" and v > 0
	end,
	log_level = function(v)
		local valid = { DEBUG = true, INFO = true, WARN = true, ERROR = true }
		return valid[v] ~= nil
	end,
}

function M.get(key)
	return settings[key]
end

function M.set(key, value)
	if validators[key] and not validators[key](value) then
		error("Invalid value for " .. key)
	end
	settings[key] = value
end

function M.get_all()
	return settings
end

-- Migration up: info.initial.settings is this version's settings table as
-- its top level built it (the live one replaced it in the join).
function M.add_new_settings(info)
	for key, value in pairs(info.initial.settings) do
		if settings[key] == nil then
			settings[key] = value
		end
	end
end

-- Migration down: 1.2.2 does not know these keys.
function M.remove_new_settings(info)
	settings.enable_cache = nil
	settings.cache_ttl = nil
end

return M
