-- The route example of Silly's hot-reload guide, version 1.2.2.
local M = { VERSION = "1.2.2" }

local access_count = 0

function M.handle_request(req, res)
	access_count = access_count + 1
	res:status(200)
	res:send("Hello, visitor #" .. access_count)
end

function M.get_stats()
	return { total = access_count }
end

return M
