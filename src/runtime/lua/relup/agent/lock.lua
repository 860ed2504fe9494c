-- relup.agent.lock: one node per state directory. The lock file
-- `<state_dir>/node.lock` has the format of src/fs/directory-lock.ts
-- ({pid, started, host, since}), so Node.js and Lua nodes (and relup's
-- tools) read each other's locks. Created complete and exclusively (written
-- aside, then hard-linked into place with `ln`, which fails if it exists);
-- a lock whose holder is gone (even after SIGKILL: its pid is dead, or was
-- reused by another process) is stale and taken over.

local open = io.open
local tostring = tostring

local json = require "relup.agent.json"

local M = {}

local function read(path)
	local f = open(path, "rb")
	if not f then
		return nil
	end
	local s = f:read("a")
	f:close()
	return s
end

local function quote(s)
	return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Fields of /proc/<pid>/stat from field 3 (state) on, or nil.
local function stat_fields(pid)
	local stat = read("/proc/" .. tostring(pid) .. "/stat")
	local after = stat and stat:match("%) (.*)$")
	if not after then
		return nil
	end
	local fields = {}
	for f in after:gmatch("%S+") do
		fields[#fields + 1] = f
	end
	return fields
end

-- Start time of a pid in clock ticks since boot (field 22 of /proc/<pid>/stat), or nil.
local function started_of(pid)
	local stat = read("/proc/" .. tostring(pid) .. "/stat")
	if not stat then
		return nil
	end
	local after = stat:match("%) (.*)$")
	if not after then
		return nil
	end
	local fields = {}
	for f in after:gmatch("%S+") do
		fields[#fields + 1] = f
	end
	-- `after` starts at field 3 (state): field 22 is its 20th.
	return fields[20]
end

local function hostname()
	local h = read("/proc/sys/kernel/hostname")
	return h and (h:gsub("%s+$", "")) or "localhost"
end

local function alive(holder, me)
	if holder.host ~= me.host then
		return true -- another host's holder cannot be checked from here
	end
	if holder.pid == me.pid then
		return false -- an earlier process with our pid
	end
	local started = started_of(holder.pid)
	if started == nil then
		return false
	end
	return holder.started == nil or holder.started == json.null or holder.started == started
end

--[[
Take the lock of `dir` for process `pid`. Returns a release function, or
nil, "state-dir-locked: …" naming the live holder.
]]
function M.take(dir, pid, since)
	local path = dir .. "/node.lock"
	local me = { pid = pid, started = started_of(pid) or json.null, host = hostname(), since = since }
	local text = json.encode(me) .. "\n"
	for _ = 1, 5 do
		local temp = dir .. "/.node.lock." .. tostring(pid) .. ".lua.tmp"
		local f = open(temp, "wb")
		if not f then
			return nil, "cannot write in the state directory " .. dir
		end
		f:write(text)
		f:close()
		local linked = os.execute("ln " .. quote(temp) .. " " .. quote(path) .. " 2>/dev/null")
		os.remove(temp)
		if linked then
			return function()
				if read(path) == text then
					os.remove(path)
				end
			end
		end
		local content = read(path)
		if content then
			local holder = json.decode(content)
			-- `relup node start` takes the lock for the Silly process it starts: its parent's lock is ours.
			local parent = stat_fields(pid)
			parent = parent and tonumber(parent[2])
			if type(holder) == "table" and holder.pid == parent and holder.host == me.host and alive(holder, me) then
				return function() end
			end
			if type(holder) == "table" and math.type(holder.pid) == "integer" and alive(holder, me) then
				return nil, "state-dir-locked: the state directory " .. dir .. " is in use by another relup node (pid " .. holder.pid .. ", since " .. tostring(holder.since) .. "); stop that node first (kill " .. holder.pid .. "), or use another state directory"
			end
			-- Stale: remove it if it is still the lock we judged, then try again.
			if read(path) == content then
				os.remove(path)
			end
		end
	end
	return nil, "state-dir-locked: cannot take the lock " .. path .. ": it keeps changing"
end

return M
