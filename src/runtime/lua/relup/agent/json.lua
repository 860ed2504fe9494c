-- relup.agent.json: JSON for the control protocol.
--
-- Decoding uses Silly's C decoder. Encoding is ours: a Lua table does not
-- say whether `{}` is an object or an array, and the protocol's answers
-- need both (`journal: []`, `absent: {}`), so tables can be marked with
-- `object()`/`array()`; unmarked tables are arrays when their keys are
-- exactly 1..n and objects otherwise (an unmarked empty table is an object).

local type = type
local next = next
local pairs = pairs
local tostring = tostring
local setmetatable = setmetatable
local getmetatable = getmetatable
local format = string.format
local gsub = string.gsub
local byte = string.byte
local concat = table.concat
local mathtype = math.type
local huge = math.huge

local cjson = require "silly.encoding.json"

local M = {}

local OBJECT = { __name = "json.object" }
local ARRAY = { __name = "json.array" }

M.null = cjson.null

function M.object(t)
	return setmetatable(t or {}, OBJECT)
end

function M.array(t)
	return setmetatable(t or {}, ARRAY)
end

local escapes = {
	['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
	["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
local function escape_char(c)
	return escapes[c] or format("\\u%04x", byte(c))
end

local function is_array(t)
	local mt = getmetatable(t)
	if mt == ARRAY then
		return true
	end
	if mt == OBJECT then
		return false
	end
	local n = 0
	for k in next, t do
		if mathtype(k) ~= "integer" or k < 1 then
			return false
		end
		n = n + 1
	end
	if n == 0 then
		return false
	end
	return t[n] ~= nil and #t == n
end

local function encode(v, out, depth)
	local t = type(v)
	if v == nil or v == M.null then
		out[#out + 1] = "null"
	elseif t == "boolean" then
		out[#out + 1] = v and "true" or "false"
	elseif t == "number" then
		if v ~= v or v == huge or v == -huge then
			out[#out + 1] = "null"
		elseif mathtype(v) == "integer" then
			out[#out + 1] = format("%d", v)
		elseif v == math.floor(v) and v > -1e15 and v < 1e15 then
			out[#out + 1] = format("%d", math.floor(v))
		else
			out[#out + 1] = format("%.17g", v)
		end
	elseif t == "string" then
		out[#out + 1] = '"' .. gsub(v, '[%c"\\]', escape_char) .. '"'
	elseif t == "table" then
		if depth > 100 then
			error("json: nested too deep (a cycle?)")
		end
		if is_array(v) then
			out[#out + 1] = "["
			for i = 1, #v do
				if i > 1 then
					out[#out + 1] = ","
				end
				encode(v[i], out, depth + 1)
			end
			out[#out + 1] = "]"
		else
			local keys = {}
			for k in pairs(v) do
				keys[#keys + 1] = tostring(k)
			end
			table.sort(keys)
			out[#out + 1] = "{"
			for i, k in pairs(keys) do
				if i > 1 then
					out[#out + 1] = ","
				end
				encode(k, out, depth + 1)
				out[#out + 1] = ":"
				local val = v[k]
				if val == nil then
					val = v[tonumber(k)]
				end
				encode(val, out, depth + 1)
			end
			out[#out + 1] = "}"
		end
	else
		out[#out + 1] = '"<' .. t .. '>"'
	end
end

function M.encode(v)
	local out = {}
	encode(v, out, 0)
	return concat(out)
end

-- Returns the value, or nil and a message.
function M.decode(s)
	local ok, v, err = pcall(cjson.decode, s)
	if not ok then
		return nil, tostring(v)
	end
	if v == nil then
		return nil, err or "invalid JSON"
	end
	return v
end

return M
