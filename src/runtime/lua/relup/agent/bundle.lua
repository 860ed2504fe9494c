-- relup.agent.bundle: read a release bundle (.tar.gz, docs/release.md) in
-- memory and verify it against its manifest, with the same refusals as the
-- TypeScript reader: no `..`, absolute paths, backslashes, control
-- characters, links, devices or repeated paths; every file's size and
-- sha256 as listed; the release hash recomputed.

local byte = string.byte
local sub = string.sub
local find = string.find
local format = string.format
local gmatch = string.gmatch
local tonumber = tonumber
local concat = table.concat
local sort = table.sort

local gzip = require "silly.compress.gzip"
local hash = require "silly.crypto.hash"
local json = require "relup.agent.json"

local M = {}

local BLOCK = 512

function M.sha256_hex(data)
	local d = hash.hash("sha256", data)
	return (d:gsub(".", function(c)
		return format("%02x", byte(c))
	end))
end

local function cstring(block, from, len)
	local s = sub(block, from, from + len - 1)
	local nul = find(s, "\0", 1, true)
	if nul then
		s = sub(s, 1, nul - 1)
	end
	return s
end

local function octal(block, from, len)
	local s = cstring(block, from, len):gsub("[ %z]", "")
	if s == "" then
		return 0
	end
	return tonumber(s, 8)
end

-- The path a tar entry names, normalised, or nil and why it is refused.
local function clean_path(raw, is_dir)
	local p = raw
	if sub(p, 1, 2) == "./" then
		p = sub(p, 3)
	end
	if is_dir and sub(p, -1) == "/" then
		p = sub(p, 1, -2)
	end
	if p == "" then
		return nil, "an empty path"
	end
	if find(p, "[%c\\]") then
		return nil, "a backslash or control character in " .. format("%q", raw)
	end
	if sub(p, 1, 1) == "/" or find(p, "^%a:") then
		return nil, "an absolute path " .. raw
	end
	for seg in gmatch(p .. "/", "([^/]*)/") do
		if seg == "" or seg == "." or seg == ".." then
			return nil, "a path with an empty, . or .. segment: " .. raw
		end
	end
	return p
end

local function pax_path(data)
	local path
	local i = 1
	while i <= #data do
		local sp = find(data, " ", i, true)
		if not sp then
			break
		end
		local len = tonumber(sub(data, i, sp - 1))
		if not len or len <= 0 then
			break
		end
		local record = sub(data, sp + 1, i + len - 2)
		local k, v = record:match("^([^=]+)=(.*)$")
		if k == "path" then
			path = v
		end
		i = i + len
	end
	return path
end

-- Files of a .tar.gz, path → bytes; or nil, message.
function M.untar(gz)
	local ok, tar = pcall(gzip.decompress, gz)
	if not ok or type(tar) ~= "string" then
		return nil, "the bundle is not gzip data"
	end
	local files, dirs = {}, {}
	local pos = 1
	local next_path
	while pos + BLOCK - 1 <= #tar do
		local h = sub(tar, pos, pos + BLOCK - 1)
		if not find(h, "[^%z]") then
			break -- end of archive
		end
		local size = octal(h, 125, 12)
		local kind = sub(h, 157, 157)
		if not size then
			return nil, "a tar header with a bad size"
		end
		local data = sub(tar, pos + BLOCK, pos + BLOCK + size - 1)
		if #data ~= size then
			return nil, "the archive is truncated"
		end
		pos = pos + BLOCK + ((size + BLOCK - 1) // BLOCK) * BLOCK
		if kind == "x" then
			next_path = pax_path(data)
		elseif kind == "0" or kind == "\0" or kind == "5" then
			local name = next_path
			next_path = nil
			if not name then
				name = cstring(h, 1, 100)
				local prefix = cstring(h, 346, 155)
				if sub(h, 258, 262) == "ustar" and prefix ~= "" then
					name = prefix .. "/" .. name
				end
			end
			local is_dir = kind == "5"
			local p, why = clean_path(name, is_dir)
			if not p then
				return nil, "the bundle holds " .. why
			end
			if files[p] or dirs[p] then
				return nil, "the bundle repeats the path " .. p
			end
			if is_dir then
				dirs[p] = true
			else
				files[p] = data
			end
		else
			return nil, format("the bundle holds an entry of tar type %q (only files and directories are allowed)", kind)
		end
	end
	for p in pairs(files) do
		local parent = p
		while true do
			parent = parent:match("^(.*)/[^/]*$")
			if not parent then
				break
			end
			if files[parent] then
				return nil, "the bundle makes " .. parent .. " both a file and a directory"
			end
		end
	end
	return files
end

-- The release hash of `files` (path → bytes), the bundle's own files left out.
function M.release_hash(files)
	local paths = {}
	for p in pairs(files) do
		if p ~= "manifest.json" and p ~= "manifest.sig" then
			paths[#paths + 1] = p
		end
	end
	sort(paths)
	local lines = {}
	for i, p in ipairs(paths) do
		lines[i] = M.sha256_hex(files[p]) .. "  " .. p .. "\n"
	end
	return M.sha256_hex(concat(lines))
end

--[[
Read and verify a bundle. Returns { manifest, files, hash } or nil, message.
]]
function M.read(gz)
	local files, err = M.untar(gz)
	if not files then
		return nil, err
	end
	local raw = files["manifest.json"]
	if not raw then
		return nil, "the bundle has no manifest.json"
	end
	local manifest, jerr = json.decode(raw)
	if type(manifest) ~= "table" then
		return nil, "manifest.json is not valid JSON: " .. tostring(jerr)
	end
	if manifest.format ~= 1 then
		return nil, "manifest.json has format " .. tostring(manifest.format) .. ", this node reads format 1"
	end
	for _, k in ipairs({ "name", "version", "runtime", "releaseHash" }) do
		if type(manifest[k]) ~= "string" then
			return nil, "manifest.json lacks " .. k
		end
	end
	if type(manifest.files) ~= "table" then
		return nil, "manifest.json lacks files"
	end
	local listed = {}
	for _, f in ipairs(manifest.files) do
		local data = files[f.path]
		if data == nil then
			return nil, "the manifest lists " .. tostring(f.path) .. " but the bundle does not hold it"
		end
		if #data ~= f.size or M.sha256_hex(data) ~= f.sha256 then
			return nil, tostring(f.path) .. " does not match its manifest entry (size or sha256): the bundle was altered"
		end
		listed[f.path] = true
	end
	for p in pairs(files) do
		if not listed[p] and p ~= "manifest.json" and p ~= "manifest.sig" then
			return nil, "the bundle holds " .. p .. ", which its manifest does not list"
		end
	end
	local h = M.release_hash(files)
	if h ~= manifest.releaseHash then
		return nil, "the bundle's files hash to " .. sub(h, 1, 12) .. "…, its manifest says " .. sub(manifest.releaseHash, 1, 12) .. "…"
	end
	local signature = files["manifest.sig"]
	files["manifest.json"] = nil
	files["manifest.sig"] = nil
	return { manifest = manifest, files = files, hash = h, manifest_bytes = raw, signature = signature }
end

return M
