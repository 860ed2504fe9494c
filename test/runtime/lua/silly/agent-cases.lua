-- Unit tests of the agent's pieces that need Silly's C modules (HMAC,
-- gzip, JSON), run inside a real Silly process by agent.test.ts; and
-- Silly's testpatch case 3 (a real timer) switched by relup's join.
-- Prints "ok <case>" or "not ok <case>: <error>" per case, then exits.
local silly = require "silly"
local time = require "silly.time"
local task = require "silly.task"

local cases, order = {}, {}
local function case(name, fn)
	cases[name] = fn
	order[#order + 1] = name
end
local function eq(a, b, what)
	if a ~= b then
		error(string.format("%s: expected %s, got %s", what, tostring(b), tostring(a)), 2)
	end
end
local function hex(s)
	return (s:gsub(".", function(c)
		return string.format("%02x", c:byte())
	end))
end

case("session key and tags match docs/protocol.md's worked example", function()
	local session = require "relup.agent.session"
	local secret = "correct horse battery staple 42"
	local nn = "bm9kZS1ub25jZS0wMDAwMDAwMDAwMDAwMDAwMDAwMA=="
	local cn = "Y2xpZW50LW5vbmNlLTAwMDAwMDAwMDAwMDAwMDAwMDA="
	local k = session.key(secret, nn, cn)
	eq(hex(k), "fcb21986d9872f4f18d7cc898dcb5a75ed6bbf5e73f9654722336d4fec0970e6", "K")
	eq(hex(session.tag(k, "c2n", 0, '{"type":"request","id":1,"op":"status","params":{}}')), "67a8a01a9bf78895faada30effc53e38f77e649ea782f9fac73721f40a81e5ce", "c2n tag")
	eq(hex(session.tag(k, "n2c", 0, '{"type":"result","id":1,"result":null}')), "9c5561c5491c16974932fdf0f054878287a9faa04657760931d8b1f154d8c61a", "n2c tag")
	-- The node side: its first frame verifies; a replayed or reflected one does not.
	local s = session.node(k)
	local frame = '{"type":"request","id":1,"op":"status","params":{}}' .. session.tag(k, "c2n", 0, '{"type":"request","id":1,"op":"status","params":{}}')
	eq(s.open(frame) ~= nil, true, "first c2n frame opens")
	eq(s.open(frame), nil, "the same frame replayed does not")
	local reflected = s.seal('{"type":"result","id":1,"result":null}')
	eq(session.node(k).open(reflected), nil, "a node frame reflected back does not")
	eq(#session.nonce(), 44, "a nonce is base64 of 32 bytes")
	eq(session.nonce() ~= session.nonce(), true, "nonces differ")
end)

case("constant-time equal", function()
	local session = require "relup.agent.session"
	eq(session.equal("abc", "abc"), true, "equal")
	eq(session.equal("abc", "abd"), false, "differ")
	eq(session.equal("abc", "ab"), false, "lengths differ")
end)

local function tar_entry(path, data, kind)
	local h = path .. string.rep("\0", 100 - #path)
	h = h .. "0000644\0" .. "0000000\0" .. "0000000\0" .. string.format("%011o\0", #data) .. string.format("%011o\0", 0)
	h = h .. "        " .. (kind or "0") .. string.rep("\0", 100) .. "ustar\0" .. "00"
	h = h .. string.rep("\0", 512 - #h)
	local pad = (512 - #data % 512) % 512
	return h .. data .. string.rep("\0", pad)
end
local function targz(entries)
	local gzip = require "silly.compress.gzip"
	local t = {}
	for _, e in ipairs(entries) do
		t[#t + 1] = tar_entry(e[1], e[2], e[3])
	end
	t[#t + 1] = string.rep("\0", 1024)
	return gzip.compress(table.concat(t))
end

case("bundles with hostile entries are refused", function()
	local bundle = require "relup.agent.bundle"
	local function refused(entries, what)
		local r, err = bundle.read(targz(entries))
		eq(r, nil, what)
		return err
	end
	refused({ { "manifest.json", "{}" }, { "../evil.lua", "x" } }, "a .. path")
	refused({ { "manifest.json", "{}" }, { "/etc/passwd", "x" } }, "an absolute path")
	refused({ { "manifest.json", "{}" }, { "link.lua", "", "2" } }, "a symbolic link")
	refused({ { "manifest.json", "{}" }, { "a.lua", "x" }, { "./a.lua", "y" } }, "a repeated path")
	eq(bundle.read("not gzip"), nil, "not gzip")
end)

case("a bundle whose file differs from its manifest is refused; a good one reads", function()
	local bundle = require "relup.agent.bundle"
	local json = require "relup.agent.json"
	local files = { ["release.yaml"] = "name: x\nversion: 1.0.0\nruntime: lua\nmodules: {}\n", ["m.lua"] = "return {}\n" }
	local list = {}
	for _, p in ipairs({ "m.lua", "release.yaml" }) do
		list[#list + 1] = { path = p, size = #files[p], sha256 = bundle.sha256_hex(files[p]) }
	end
	local manifest = { format = 1, name = "x", version = "1.0.0", runtime = "lua", releaseHash = bundle.release_hash(files), files = list }
	local good = targz({ { "manifest.json", json.encode(manifest) }, { "m.lua", files["m.lua"] }, { "release.yaml", files["release.yaml"] } })
	local r, err = bundle.read(good)
	eq(err, nil, "good bundle")
	eq(r.hash, manifest.releaseHash, "release hash")
	local bad = targz({ { "manifest.json", json.encode(manifest) }, { "m.lua", "return { evil = true }\n" }, { "release.yaml", files["release.yaml"] } })
	eq(bundle.read(bad), nil, "altered file")
end)

case("release.yaml reader: the documented layout, and refusals with a line", function()
	local ry = require "relup.agent.release_yaml"
	local rel, err = ry.release([[
# comment
name: silly-demo
version: "1.2.3"
runtime: lua
start:
  main: tcp_api   # trailing comment
modules:
  route:
    file: route.lua
    exports: [handle_request, get_stats]
  tcp_api:
    file: 'tcp_api.lua'
    deps:
      - route
]])
	eq(err, nil, "parses")
	eq(rel.version, "1.2.3", "quoted version")
	eq(rel.start.main, "tcp_api", "start.main")
	eq(#rel.modules, 2, "two modules")
	eq(rel.modules[1].name, "route", "sorted")
	eq(rel.modules[1].exports[2], "get_stats", "flow list")
	eq(rel.modules[2].deps[1], "route", "block list")
	local _, e2 = ry.release("name: x\nversion: 1.0.0\nruntime: lua\nmodules:\n  a:\n    file: |\n      a.lua\n")
	eq(e2 ~= nil and e2:match(":6:") ~= nil, true, "block scalar refused at its line: " .. tostring(e2))
	local _, e3 = ry.release("name: x\nversion: 1.0.0\nruntime: node\n")
	eq(e3 ~= nil, true, "another runtime refused")
	local r4 = ry.release("name: x\nversion: 1.0.0\nruntime: lua\nprocesses:\n  p:\n    module: a\n    args: { n: 1 }\n")
	eq(r4.processes[1].name .. ":" .. r4.processes[1].module .. ":" .. tostring(r4.processes[1].args.n), "p:a:1", "processes read")
	local _, e5 = ry.release("name: x\nversion: 1.0.0\nruntime: lua\nprocesses:\n  p:\n    args: 1\n")
	eq(e5 ~= nil, true, "a process without a module refused")
end)

case("json: objects and arrays as marked, numbers and escapes", function()
	local json = require "relup.agent.json"
	eq(json.encode({ a = json.array(), b = json.object(), c = { 1, 2 }, d = "x\n\"", e = 1.5, f = 3, g = json.null }), '{"a":[],"b":{},"c":[1,2],"d":"x\\n\\"","e":1.5,"f":3,"g":null}', "encode")
	local v = json.decode('{"a":[1,{"b":null}]}')
	eq(v.a[2].b, json.null, "null decodes to json.null")
	eq(select(2, json.decode("{")) ~= nil, true, "bad JSON is nil, message")
end)

-- Silly's test/testpatch.lua case 3, with real timers, switched by relup's
-- join: no hand-written re-pointing of the timer's upvalue is needed.
case("testpatch case3: a running timer reaches the new code", function()
	local join = require "relup.join"
	local loader = require "relup.loader"
	local M1 = assert(loader.compile([[
	local time = require "silly.time"
	local M = {}
	local foo
	local timer_foo
	function timer_foo()
		foo = "hello"
		time.after(100, timer_foo)
	end
	function M.timer_foo()
		timer_foo()
		foo = "bar"
	end
	function M.get_foo()
		return foo
	end
	return M
	]], "case3.lua", _G, false))
	local base = join.base_fields(M1)
	M1.timer_foo()
	time.sleep(1000)
	eq(M1.get_foo(), "hello", "old timer")
	local M2, env = assert(loader.compile([[
	local time = require "silly.time"
	local M = {}
	local foo
	local timer_foo
	function timer_foo()
		if not timer_foo then
			return
		end
		foo = "world"
		time.after(500, timer_foo)
	end
	function M.timer_foo()
		timer_foo()
		foo = "bar"
	end
	function M.get_foo()
		return foo
	end
	function M.stop()
		timer_foo = nil
	end
	return M
	]], "case3.lua", _G, true))
	local report = join.switch(M1, M2, { chunks = { ["@case3.lua"] = true }, env = env, base = base })
	eq(#report.absent, 0, "nothing absent")
	time.sleep(1000)
	eq(M1.get_foo(), "world", "new timer")
	M1.stop()
end)

task.fork(function()
	local failed = 0
	for _, name in ipairs(order) do
		local ok, err = xpcall(cases[name], debug.traceback)
		if ok then
			print("ok " .. name)
		else
			failed = failed + 1
			print("not ok " .. name .. ": " .. tostring(err))
		end
	end
	io.stdout:flush()
	silly.exit(failed == 0 and 0 or 1)
end)
