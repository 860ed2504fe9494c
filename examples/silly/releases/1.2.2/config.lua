-- The config example of Silly's hot-reload guide, version 1.2.2.
local M = { VERSION = "1.2.2" }

local settings = {
	max_connections = 1000,
	timeout = 30,
	log_level = "INFO",
}

function M.get(key)
	return settings[key]
end

function M.set(key, value)
	settings[key] = value
end

function M.get_all()
	return settings
end

return M
