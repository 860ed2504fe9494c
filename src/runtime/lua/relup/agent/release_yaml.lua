-- relup.agent.release_yaml: read a release's release.yaml inside the node.
--
-- relup's CLI reads release.yaml with a full YAML parser and refuses what is
-- wrong before a release ships; the agent only needs the same data back
-- (name, version, runtime, start, modules with their files). It reads the
-- block-style YAML that docs/release.md shows: nested mappings, block and
-- flow (`[a, b]`) sequences, flow mappings of scalars, plain and quoted
-- scalars, comments. Anything else is refused with its line, never guessed.

local find = string.find
local sub = string.sub
local match = string.match
local gsub = string.gsub

local M = {}

local function strip_comment(line)
	local quote
	for i = 1, #line do
		local c = sub(line, i, i)
		if quote then
			if c == quote then
				quote = nil
			end
		elseif c == '"' or c == "'" then
			quote = c
		elseif c == "#" and (i == 1 or find(sub(line, i - 1, i - 1), "%s")) then
			return sub(line, 1, i - 1)
		end
	end
	return line
end

local function split_flow(s, lineno)
	local items, depth, quote, start = {}, 0, nil, 1
	for i = 1, #s do
		local c = sub(s, i, i)
		if quote then
			if c == quote then
				quote = nil
			end
		elseif c == '"' or c == "'" then
			quote = c
		elseif c == "[" or c == "{" then
			depth = depth + 1
		elseif c == "]" or c == "}" then
			depth = depth - 1
		elseif c == "," and depth == 0 then
			items[#items + 1] = sub(s, start, i - 1)
			start = i + 1
		end
	end
	local last = sub(s, start)
	if match(last, "%S") then
		items[#items + 1] = last
	end
	return items
end

local scalar
function scalar(s, lineno)
	s = match(s, "^%s*(.-)%s*$")
	local q = sub(s, 1, 1)
	if q == '"' then
		local body = match(s, '^"(.*)"$')
		if not body then
			return nil, "an unterminated string"
		end
		body = gsub(body, '\\(.)', { n = "\n", t = "\t", ['"'] = '"', ["\\"] = "\\" })
		return body
	elseif q == "'" then
		local body = match(s, "^'(.*)'$")
		if not body then
			return nil, "an unterminated string"
		end
		return (gsub(body, "''", "'"))
	elseif q == "[" then
		local body = match(s, "^%[(.*)%]$")
		if not body then
			return nil, "an unterminated [ list"
		end
		local out = {}
		for _, item in ipairs(split_flow(body, lineno)) do
			local v, err = scalar(item, lineno)
			if err then
				return nil, err
			end
			out[#out + 1] = v
		end
		return out
	elseif q == "{" then
		local body = match(s, "^{(.*)}$")
		if not body then
			return nil, "an unterminated { mapping"
		end
		local out = {}
		for _, item in ipairs(split_flow(body, lineno)) do
			local k, v = match(item, "^%s*([^:]-)%s*:%s*(.-)%s*$")
			if not k then
				return nil, "a flow mapping entry without a key"
			end
			local val, err = scalar(v, lineno)
			if err then
				return nil, err
			end
			out[k] = val
		end
		return out
	elseif q == "|" or q == ">" or q == "&" or q == "*" or q == "!" then
		return nil, "YAML feature `" .. q .. "` (block scalars, anchors, tags) is not read by the Lua agent"
	end
	if s == "true" then
		return true
	elseif s == "false" then
		return false
	elseif s == "null" or s == "~" or s == "" then
		return nil
	elseif match(s, "^%-?%d+$") then
		return math.tointeger(tonumber(s))
	end
	return s
end

-- Parse `text`; returns the table, or nil and "file:line: message".
function M.parse(text, file)
	file = file or "release.yaml"
	local lines = {}
	local n = 0
	for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
		n = n + 1
		local line = gsub(strip_comment(raw), "%s+$", "")
		if match(line, "%S") then
			if find(line, "\t") and match(line, "^%s*\t") then
				return nil, file .. ":" .. n .. ": a tab in the indentation"
			end
			lines[#lines + 1] = { indent = #match(line, "^( *)"), text = match(line, "^ *(.*)$"), no = n }
		end
	end
	local i = 1
	local block
	local function fail(l, msg)
		error({ file .. ":" .. l.no .. ": " .. msg }, 0)
	end
	function block(indent)
		local l = lines[i]
		if not l or l.indent < indent then
			return nil
		end
		local seq = sub(l.text, 1, 2) == "- " or l.text == "-"
		local out = {}
		while lines[i] and lines[i].indent == l.indent do
			local cur = lines[i]
			if seq then
				if not (sub(cur.text, 1, 2) == "- " or cur.text == "-") then
					fail(cur, "a mapping key where a list item (- …) was expected")
				end
				local item = sub(cur.text, 3)
				i = i + 1
				if item == "" then
					out[#out + 1] = block(cur.indent + 1)
				else
					local v, err = scalar(item, cur.no)
					if err then
						fail(cur, err)
					end
					out[#out + 1] = v
				end
			else
				local k, rest = match(cur.text, '^([^:"\'%[{][^:]-)%s*:%s*(.*)$')
				if not k then
					k, rest = match(cur.text, '^"([^"]*)"%s*:%s*(.*)$')
				end
				if not k then
					fail(cur, "expected `key: value`")
				end
				i = i + 1
				if rest == "" then
					local nxt = lines[i]
					if nxt and nxt.indent > cur.indent then
						out[k] = block(nxt.indent)
					elseif nxt and nxt.indent == cur.indent and sub(nxt.text, 1, 2) == "- " then
						out[k] = block(nxt.indent)
					else
						out[k] = nil
					end
				else
					local v, err = scalar(rest, cur.no)
					if err then
						fail(cur, err)
					end
					out[k] = v
				end
			end
		end
		if lines[i] and lines[i].indent > indent and lines[i].indent ~= l.indent then
			fail(lines[i], "unexpected indentation")
		end
		return out
	end
	local ok, result = pcall(block, 0)
	if not ok then
		if type(result) == "table" then
			return nil, result[1]
		end
		return nil, file .. ": " .. tostring(result)
	end
	if lines[i] then
		return nil, file .. ":" .. lines[i].no .. ": unexpected indentation"
	end
	return result or {}
end

--[[
The release a release.yaml describes, as the agent uses it:
{ name, version, runtime, start = {…}, modules = { {name, file, deps, exports}… } }
sorted by module name; or nil, message.
]]
function M.release(text, file)
	local doc, err = M.parse(text, file)
	if not doc then
		return nil, err
	end
	file = file or "release.yaml"
	for _, k in ipairs({ "name", "version", "runtime" }) do
		if type(doc[k]) ~= "string" then
			return nil, file .. ": `" .. k .. "` is missing or not a string"
		end
	end
	if doc.runtime ~= "lua" then
		return nil, file .. ": runtime is " .. doc.runtime .. ", this is a Lua node"
	end
	local modules = {}
	for name, entry in pairs(doc.modules or {}) do
		if type(entry) ~= "table" or type(entry.file) ~= "string" then
			return nil, file .. ": module " .. tostring(name) .. " has no file"
		end
		modules[#modules + 1] = { name = name, file = entry.file, deps = entry.deps or {}, exports = entry.exports }
	end
	table.sort(modules, function(a, b)
		return a.name < b.name
	end)
	-- Agent-owned processes (relup.agent.processes): name → { module, args }.
	local processes = {}
	for name, entry in pairs(doc.processes or {}) do
		if type(entry) ~= "table" or type(entry.module) ~= "string" then
			return nil, file .. ": process " .. tostring(name) .. " names no module"
		end
		processes[#processes + 1] = { name = name, module = entry.module, args = entry.args }
	end
	table.sort(processes, function(a, b)
		return a.name < b.name
	end)
	return { name = doc.name, version = doc.version, runtime = doc.runtime, start = doc.start or {}, modules = modules, processes = processes }
end

return M
