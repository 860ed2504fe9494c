-- relup.agent.transaction: the relup script evaluator of a Lua node, with
-- the rules of every relup runtime (src/runtime/node/transaction.ts):
-- checks before the point of no return change nothing; every change after
-- it registers its undo *before* it is made; a failure undoes every step
-- done, in reverse; the journal and the events say what happened, and a
-- rollback is never claimed that did not happen.
--
-- Peculiar to Lua: one Lua state runs the whole node and nothing yields
-- inside a step, so from the point of no return to the end no other Lua
-- code runs at all (that is the "hold" of outside work, for free). A step
-- runs in its own coroutine under a count hook: past the deadline the hook
-- raises, and a step that tries to wait (a migration calling time.sleep or
-- reading a socket) fails instead of letting other code see half an upgrade.

local type = type
local error = error
local pcall = pcall
local tostring = tostring
local cocreate = coroutine.create
local coresume = coroutine.resume
local costatus = coroutine.status
local sethook = debug.sethook

local M = {}

local PRE = { verify_release = true, check_version = true, stage = true, check_function = true, check_process = true }
M.PRE = PRE

-- An error a step raises on purpose: error(M.fail(code, message)).
function M.fail(code, message, hint)
	return { relup_code = code, message = message, hint = hint }
end

local function code_of(e)
	if type(e) == "table" and e.relup_code then
		return e.relup_code, e.message
	end
	return "module-error", tostring(e)
end
M.code_of = code_of

function M.target(step)
	local op = step.op
	if op == "verify_release" or op == "commit" then
		return step.version
	elseif op == "check_version" then
		return step.expect
	elseif op == "point_of_no_return" then
		return ""
	elseif op == "check_function" or op == "migrate" or op == "apply" then
		return step.module .. "." .. step["function"]
	elseif step.module then
		return step.module
	end
	return step.process or ""
end

-- The script's ordering rules, checked before anything runs.
function M.shape_problem(steps, pnr)
	local at = steps[pnr + 1]
	if not at or at.op ~= "point_of_no_return" then
		return "pointOfNoReturn (" .. tostring(pnr) .. ") does not index the point_of_no_return step"
	end
	local commits = 0
	for i, step in ipairs(steps) do
		local idx = i - 1
		if idx < pnr and not PRE[step.op] then
			return "step " .. idx .. " (" .. step.op .. ") changes the node but comes before the point of no return"
		end
		if idx > pnr and (PRE[step.op] or step.op == "point_of_no_return") then
			return "step " .. idx .. " (" .. step.op .. ") is a check but comes after the point of no return"
		end
		if step.op == "commit" then
			commits = commits + 1
		end
	end
	if #steps > pnr + 1 and (commits ~= 1 or steps[#steps].op ~= "commit") then
		return "the last step must be the only commit"
	end
	return nil
end

local DEADLINE = {}

-- Runs fn in a coroutine of its own and says whether it ran to its end
-- (true) or tried to wait (false: the coroutine is closed). Replaced by the
-- agent with one that uses Silly's tasks (agent.lua), so that a step that
-- waits leaves nothing registered with Silly's scheduler.
local function plain_spawn(fn, hook)
	local co = cocreate(fn)
	sethook(co, hook, "", 1000)
	local ok, err = coresume(co)
	if not ok then
		error(err, 0)
	end
	if costatus(co) ~= "dead" then
		coroutine.close(co)
		return false
	end
	return true
end
M.plain_spawn = plain_spawn

-- Run fn(...) so that it may not wait and dies at the deadline.
local function guarded(spawn, now, deadline_at, fn, ...)
	local args = table.pack(...)
	local result
	local hook = function()
		if now() > deadline_at then
			error(DEADLINE, 0)
		end
	end
	local finished = spawn(function()
		result = table.pack(pcall(fn, table.unpack(args, 1, args.n)))
	end, hook)
	if not finished then
		return false, M.fail("step-yielded", "the step tried to wait (time.sleep, a socket read, a channel…): on a Lua node, steps and migrations run to the end without waiting, so that nothing else runs in the middle of an upgrade", "make the migration synchronous")
	end
	if result == nil then
		-- The deadline hook fired after fn returned, outside its pcall.
		return false, M.fail("deadline", "the transaction's deadline passed during this step", "raise deadlineMs")
	end
	local ok, err = result[1], result[2]
	if not ok then
		if err == DEADLINE then
			return false, M.fail("deadline", "the transaction's deadline passed during this step", "raise deadlineMs, or find the step that hangs in the journal")
		end
		return false, err
	end
	return true
end

--[[
input: steps, pnr (0-based), dry_run, deadline_ms, performer, on_event,
       now() (ms, monotonic), fault(index, step) (optional: injected faults),
       spawn(fn, hook) (optional: how a step's coroutine is run, see plain_spawn)
performer: check(step, ctx), perform(step, ctx), settle(result) -> {problems}
Returns { status, failure, rollback, journal, durationMs }.
]]
function M.run(input)
	local now = input.now
	local started = now()
	local steps, pnr, performer = input.steps, input.pnr, input.performer
	local journal = {}
	local function emit(ev)
		if input.on_event then
			pcall(input.on_event, ev)
		end
	end
	local function finish(status, extra)
		local r = extra or {}
		r.status = status
		r.journal = journal
		r.durationMs = now() - started
		return r
	end
	local function settle(result)
		local ok, problems = pcall(performer.settle, result)
		if not ok then
			return { { message = "settling the transaction (" .. result .. ") failed: " .. tostring(problems) } }
		end
		local out = {}
		for _, p in ipairs(problems or {}) do
			out[#out + 1] = { message = p }
		end
		return out
	end
	local function with_problems(extra, problems)
		if #problems > 0 then
			extra.rollback = { complete = false, undone = 0, problems = problems }
		end
		return extra
	end

	local shape = M.shape_problem(steps, pnr)
	if shape then
		return finish("refused", with_problems({ failure = { code = "invalid-script", message = shape } }, settle("discarded")))
	end

	local deadline_at = started + input.deadline_ms
	local spawn = input.spawn or plain_spawn
	local undo_log = {}
	local last = input.dry_run and pnr or (#steps - 1)
	for index = 0, last do
		local step = steps[index + 1]
		local ref = { index = index, op = step.op, target = M.target(step) }
		local before = index <= pnr
		local entries = {}
		if not before then
			undo_log[#undo_log + 1] = { ref = ref, entries = entries }
		end
		local ctx = {
			index = index,
			remaining = function()
				return deadline_at - now()
			end,
			-- Register how to undo the change about to be made (before making it).
			on_undo = function(what, undo)
				if before then
					error(M.fail("invalid-script", "step " .. index .. " (" .. step.op .. ") tried to change the node before the point of no return"))
				end
				entries[#entries + 1] = { what = what, undo = undo }
			end,
		}
		emit({ index = index, op = step.op, target = ref.target, status = "start", durationMs = 0 })
		local t0 = now()
		local ok, err = true, nil
		local injected
		if input.fault then
			ok, injected = pcall(input.fault, index, step, before)
			err = injected
		end
		if ok then
			if now() > deadline_at then
				ok, err = false, M.fail("deadline", "the transaction's deadline of " .. input.deadline_ms .. " ms passed")
			elseif injected == "hang" then
				ok, err = guarded(spawn, now, deadline_at, function()
					while true do
					end
				end)
			else
				-- A `crash` drill is carried out by the step itself (a process dies mid-migration).
				ctx.injected = injected
				ok, err = guarded(spawn, now, deadline_at, before and performer.check or performer.perform, step, ctx)
			end
		end
		local duration = now() - t0
		if not ok then
			local code, message = code_of(err)
			local failure = { code = code, message = message, step = ref }
			journal[#journal + 1] = { index = index, op = step.op, target = ref.target, status = "failed", durationMs = duration, error = message }
			emit({ index = index, op = step.op, target = ref.target, status = "failed", durationMs = duration, error = message })
			if before then
				return finish("refused", with_problems({ failure = failure }, settle("discarded")))
			end
			local rollback = M.roll_back(undo_log, journal, emit, now)
			for _, p in ipairs(settle("rolled-back")) do
				rollback.problems[#rollback.problems + 1] = p
			end
			rollback.complete = #rollback.problems == 0
			return finish(rollback.complete and "rolled-back" or "rollback-failed", { failure = failure, rollback = rollback })
		end
		journal[#journal + 1] = { index = index, op = step.op, target = ref.target, status = "ok", durationMs = duration }
		emit({ index = index, op = step.op, target = ref.target, status = "ok", durationMs = duration })
	end
	if input.dry_run then
		return finish("dry-run", with_problems({}, settle("discarded")))
	end
	return finish("committed", with_problems({}, settle("committed")))
end

-- Undo every step done, last first; a failed undo is reported, never hidden.
function M.roll_back(undo_log, journal, emit, now)
	local problems, undone = {}, 0
	for i = #undo_log, 1, -1 do
		local ref, entries = undo_log[i].ref, undo_log[i].entries
		local t0 = now()
		local errors, notes = {}, {}
		for j = #entries, 1, -1 do
			local e = entries[j]
			if e.undo == nil then
				notes[#notes + 1] = e.what
			else
				local ok, err = pcall(e.undo)
				if not ok then
					local _, message = code_of(err)
					errors[#errors + 1] = e.what .. ": " .. message
				end
			end
		end
		local duration = now() - t0
		local note
		if #notes > 0 then
			note = table.concat(notes, "; ")
		elseif #entries == 0 then
			note = "nothing to undo"
		end
		local record
		for _, j in ipairs(journal) do
			if j.index == ref.index then
				record = j
			end
		end
		if #errors > 0 then
			local message = table.concat(errors, "; ")
			problems[#problems + 1] = { message = message, step = ref }
			if record then
				record.undo = { status = "undo-failed", durationMs = duration, error = message, note = note }
			end
			emit({ index = ref.index, op = ref.op, target = ref.target, status = "undo-failed", durationMs = duration, error = message, note = note })
		else
			undone = undone + 1
			if record then
				record.undo = { status = "undone", durationMs = duration, note = note }
			end
			emit({ index = ref.index, op = ref.op, target = ref.target, status = "undone", durationMs = duration, note = note })
		end
	end
	return { complete = #problems == 0, undone = undone, problems = problems }
end

return M
