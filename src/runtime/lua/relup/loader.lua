-- relup.loader: compile a Lua module's source aside, without touching the
-- running node. Used at boot and by the `stage` step.
--
-- The chunk runs in a staging table whose reads fall through to the live
-- globals and whose writes stay in it, so a new version's top level cannot
-- change the node before the point of no return (the switch moves its
-- globals over, see relup.join).

local type = type
local load = load
local pcall = pcall
local setmetatable = setmetatable
local tostring = tostring

local M = {}

-- The chunk name of a module file: "@route.lua" makes errors read
-- "route.lua:12: …", and every version of the file shares it, which is how
-- the join tells the module's own functions from everyone else's.
function M.chunkname(file)
	return "@" .. file
end

--[[
Compile `source` and run its top level; it must return the module table.
genv: the live global table. staged: true to run it in a staging table.
Returns mod, env (the staging table or genv), or nil, message.
]]
function M.compile(source, file, genv, staged)
	local env = genv
	if staged then
		env = setmetatable({}, { __index = genv })
	end
	local chunk, err = load(source, M.chunkname(file), "t", env)
	if not chunk then
		return nil, err
	end
	local ok, mod = pcall(chunk)
	if not ok then
		return nil, tostring(mod)
	end
	if type(mod) ~= "table" then
		return nil, file .. ": a relup Lua module must return its module table (local M = {} … return M), got " .. type(mod)
	end
	return mod, env
end

return M
