-- The cases of Silly's own test/testpatch.lua (vendored source), each
-- switched by relup's join instead of silly.patch. Module sources and the
-- values asserted are Silly's; the hand-written fix-ups Silly's cases need
-- after patching (re-pointing the timer's upvalue in case 3, joining `b` by
-- hand in case 4) are left out: the join must make them unnecessary.
-- Case 3's timer runs on a fake clock here; under a real Silly process in
-- test/runtime/lua/silly-join.test.ts.
local H = require "harness"

local function switch(M1, base, src)
	local report = H.relup(M1, base, src)
	return report
end

H.case("case1 closure, new global", function()
	local M1, base = H.boot([[
	local testup1 = 3
	local M = {}
	local function testfn2()
		testup1 = testup1 + 2
	end
	local function testfn3()
		return function()
			testfn2()
			testfn2()
		end
	end
	local testfn2 = testfn3()
	function M.testfn2()
		testfn2()
		return testup1
	end
	return M
	]])
	H.eq(M1.testfn2(), 7, "old module")
	H.eq(M1.testfn2(), 11, "old module")
	switch(M1, base, [[
	step = 3
	local testup1 = 3
	local M = {}
	local function testfn2()
		testup1 = testup1 + step
	end
	local function testfn3()
		step = step + 1
		return function()
			testfn2()
			testfn2()
		end
	end
	local testfn2 = testfn3()
	function M.testfn2()
		testfn2()
		return testup1
	end
	return M
	]])
	H.eq(step, 4, "the new chunk's global moved to the live globals")
	H.eq(M1.testfn2(), 19, "new module")
	H.eq(M1.testfn2(), 27, "new module")
	step = nil
end)

H.case("case2 closure, new local", function()
	local M1, base = H.boot([[
	local testup1 = 3
	local M = {}
	local function testfn2()
		testup1 = testup1 + 2
	end
	local function testfn3()
		return function()
			testfn2()
			testfn2()
		end
	end
	local testfn2 = testfn3()
	function M.testfn2()
		testfn2()
		return testup1
	end
	return M
	]])
	H.eq(M1.testfn2(), 7, "old module")
	H.eq(M1.testfn2(), 11, "old module")
	local report = switch(M1, base, [[
	local step = 3
	local testup1 = 3
	local M = {}
	local function testfn2()
		testup1 = testup1 + step
	end
	local function testfn3()
		step = step + 1
		return function()
			testfn2()
			testfn2()
		end
	end
	local testfn2 = testfn3()
	function M.testfn2()
		testfn2()
		return testup1
	end
	return M
	]])
	local absent = H.has_absent(report, "step")
	H.truthy(absent, "step reported absent (Silly: $.testfn2.testfn2.testfn2.step)")
	H.eq(absent.path, "testfn2.testfn2.testfn2.step", "its path")
	H.eq(absent.value, 4, "its initial value")
	H.eq(M1.testfn2(), 19, "new module")
	H.eq(M1.testfn2(), 27, "new module")
end)

H.case("case3 timer", function()
	local pending = {}
	_G.time = {
		after = function(_, fn)
			pending[#pending + 1] = fn
		end,
	}
	local function elapse()
		local fns = pending
		pending = {}
		for _, fn in ipairs(fns) do
			fn()
		end
	end
	local M1, base = H.boot([[
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
	]])
	M1.timer_foo()
	elapse()
	H.eq(M1.get_foo(), "hello", "old timer")
	local report = switch(M1, base, [[
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
	]])
	H.eq(#report.absent, 0, "nothing absent (Silly: nil)")
	elapse() -- the tick queued by the old code
	elapse()
	H.eq(M1.get_foo(), "world", "new timer")
	M1.stop()
	elapse()
	H.eq(#pending, 0, "stopped")
	_G.time = nil
end)

H.case("case4 shared local newly used", function()
	local M1, base = H.boot([[
	local M = {}
	local a,b = 3,4
	function M.foo()
		a = a + 1
		return a
	end
	function M.foo2()
		b = b + 2
		return b
	end
	function M.bar()
		return a, b
	end
	return M
	]])
	H.eq(M1.foo(), 4, "old foo")
	H.eq(M1.foo2(), 6, "old foo2")
	local a, b = M1.bar()
	H.eq(a, 4, "old bar")
	H.eq(b, 6, "old bar")
	local report = switch(M1, base, [[
	local M = {}
	local a,b = 0,0
	function M.foo()
		a = a + 1
		b = b + 1
		return a,b
	end
	function M.foo2()
		 b = b + 3
		 return b
	end
	function M.bar()
		return a, b
	end
	return M
	]])
	H.eq(#report.absent, 0, "nothing absent: foo's b is the live b (Silly reports $.foo.b and joins it by hand)")
	a, b = M1.foo()
	H.eq(a, 5, "new foo")
	H.eq(b, 7, "new foo")
	H.eq(M1.foo2(), 10, "new foo2")
	a, b = M1.bar()
	H.eq(a, 5, "new bar")
	H.eq(b, 10, "new bar")
end)

H.case("case5 function gains globals", function()
	local M1, base = H.boot([[
	local M = {}
	function M.foo()
	end
	return M
	]])
	switch(M1, base, [[
	local M = {}
	bar = 3
	function M.foo()
		bar = bar + 1
	end
	return M
	]])
	H.eq(_ENV.bar, 3, "global variable")
	M1.foo()
	H.eq(_ENV.bar, 4, "global variable")
	bar = nil
end)

H.run(arg)
