-- The route example of Silly's hot-reload guide, version 1.2.3: an error
-- counter (a new local: the join reports it absent, starting at 0) and a 400
-- for a request without a name.
local M = { VERSION = "1.2.3" }

local access_count = 0
local error_count = 0

function M.handle_request(req, res)
	access_count = access_count + 1
	if not req.params.name then
		error_count = error_count + 1
		res:status(400)
		res:send("Error: name is required")
		return
	end
	res:status(200)
	res:send("Hello, " .. req.params.name .. " (visitor #" .. access_count .. ")")
end

function M.get_stats()
	return {
		total = access_count,
		errors = error_count,
	}
end

return M
