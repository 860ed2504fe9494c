-- relup.agent.steps: how each step of a relup script is performed on a Lua
-- node, and undone (the node's StepPerformer).
--
-- Rollback rules, each with its reason:
-- - Every undo is registered *before* its change, so a step that fails half
--   way is undone as far as it got.
-- - A module's state (its table, the locals its functions share and every
--   table under them) is snapshotted right before the first step that
--   changes it, and restored *in place*: the same tables get their old
--   contents back, so every reference held elsewhere sees the old state and
--   a migration that mutated data and then threw leaves no trace.
-- - Old code is restored by putting the old functions back into the live
--   module table and the locals that held functions (relup.join's undo): the
--   old functions were never dropped, their upvalues never changed.
-- - Nothing needs resuming inside the transaction: no other Lua code runs
--   between the point of no return and its end (see transaction.lua); the
--   processes the host held before it take calls again once it has settled.
-- - A process's state is copied before its migration and the copy put back
--   on rollback: the agent owns that table, nothing else refers to it.
-- - An `apply` has effects outside the node's books; its undo is nothing.

local type = type
local pairs = pairs
local ipairs = ipairs
local error = error
local tostring = tostring
local unpack = table.unpack

local join = require "relup.join"
local loader = require "relup.loader"
local snapshot = require "relup.snapshot"
local json = require "relup.agent.json"
local nodelib = require "relup.agent.node"
local tx = require "relup.agent.transaction"
local processes = require "relup.agent.processes"

local fail = tx.fail

local M = {}

--[[
A performer for one transaction: `node` the running node, `script` the
parsed script, `image` the incoming release (verified bundle), `report`
collects absent locals and migrations for the outcome.
]]
function M.new(node, script, image, report)
	local staged = {} -- module → { mod, env, spec, chunk, base }
	local snapshots = {} -- module → snapshot
	local join_reports = {} -- module → the join's report (initial values for migrations)
	local verified, version_checked = false, false
	local previous_release = nil

	local function raise(code, message, hint)
		error(fail(code, message, hint), 0)
	end

	local function chunks_of(name)
		local set = {}
		local live = node.modules[name]
		if live then
			set[live.chunk] = true
		end
		if staged[name] then
			set[staged[name].chunk] = true
		end
		return set
	end

	local function snapshot_module(name)
		if snapshots[name] == nil and node.modules[name] then
			snapshots[name] = snapshot.take(node.modules[name].live, { chunks = chunks_of(name) })
		end
	end

	local function restore_module(name)
		if snapshots[name] then
			snapshot.restore(snapshots[name])
		end
	end

	-- The incoming release's code of `name`: staged, or the running code when it did not change.
	local function to_code(name)
		if staged[name] then
			return staged[name].mod
		end
		local spec = nodelib.module_spec(image, name)
		local live = node.modules[name]
		if spec and live and live.hash == spec.hash then
			return live.live
		end
		raise("invalid-script", "module \"" .. name .. "\" of release " .. image.release.version .. " is " .. (spec and "not staged" or "not in that release"), "plan the script again (relup plan)")
	end

	local function fn_of(mod, module, fname, which)
		local f = mod and mod[fname]
		if type(f) ~= "function" then
			raise("missing-function", module .. "." .. fname .. " is not a function of the " .. which .. " code", "export it from the module table (M." .. fname .. " = function …), or fix the appup")
		end
		return f
	end

	local function process_spec(name)
		for _, spec in ipairs(image.release.processes or {}) do
			if spec.name == name then
				return spec
			end
		end
		return nil
	end

	local function check_rest()
		local fail_at = function(i, message)
			raise("invalid-script", "step " .. i .. ": " .. message, "plan the script again (relup plan)")
		end
		if not verified then
			fail_at(script.pointOfNoReturn, "no verify_release step checks release " .. script.to.version .. " before the point of no return")
		end
		if not version_checked then
			fail_at(script.pointOfNoReturn, "no check_version step guards that the node runs " .. script.from.version)
		end
		local modules = {}
		for name in pairs(node.modules) do
			modules[name] = true
		end
		local procs = {}
		for name in pairs(node.processes) do
			procs[name] = true
		end
		for i = script.pointOfNoReturn + 2, #script.steps do
			local step = script.steps[i]
			local idx = i - 1
			local op = step.op
			if op == "start" then
				if not process_spec(step.process) then
					fail_at(idx, "start " .. tostring(step.process) .. ": release " .. image.release.version .. " declares no such process")
				end
				procs[step.process] = true
			elseif op == "stop" or op == "suspend" or op == "resume" or op == "restart" then
				if not procs[step.process] then
					fail_at(idx, op .. " " .. tostring(step.process) .. ": no such process runs")
				end
				if op == "stop" then
					procs[step.process] = nil
				end
			elseif op == "switch" then
				if not staged[step.module] then
					fail_at(idx, "switch " .. step.module .. ": the module was not staged")
				end
				if step.kind == "add" and modules[step.module] then
					fail_at(idx, "add " .. step.module .. ": the module is already loaded")
				end
				if step.kind ~= "add" and not modules[step.module] then
					fail_at(idx, step.kind .. " " .. step.module .. ": the module is not loaded")
				end
				modules[step.module] = true
			elseif op == "migrate" then
				local code = step.release == "from" and (node.modules[step.module] and node.modules[step.module].live) or to_code(step.module)
				fn_of(code, step.module, step["function"], step.release)
				for _, name in ipairs(step.processes or {}) do
					if not procs[name] then
						fail_at(idx, "migrate " .. step.module .. ": process " .. tostring(name) .. " does not run")
					end
				end
			elseif op == "apply" then
				fn_of(to_code(step.module), step.module, step["function"], "to")
			elseif op == "delete" then
				if not modules[step.module] then
					fail_at(idx, "delete " .. step.module .. ": the module is not loaded")
				end
				modules[step.module] = nil
			elseif op == "commit" then
				if step.version ~= script.to.version or step.version ~= image.release.version then
					fail_at(idx, "commit " .. step.version .. ": the script goes to " .. script.to.version .. " with release " .. image.release.version)
				end
			elseif op ~= "purge" then
				fail_at(idx, op .. " is not allowed after the point of no return")
			end
		end
	end

	local P = {}

	-- Before the point of no return: may fail, changes nothing.
	function P.check(step)
		local op = step.op
		if op == "verify_release" then
			if image.release.version ~= step.version then
				raise("version-mismatch", "the release given is " .. image.release.version .. ", the script installs " .. step.version, "give the node release " .. step.version)
			end
			if image.release.hash ~= step.hash then
				raise("hash-mismatch", "release " .. step.version .. " hashes to " .. image.release.hash:sub(1, 12) .. "…, the script expects " .. step.hash:sub(1, 12) .. "…: its files differ from the release the script was planned from", "plan the script again from this bundle (relup plan)")
			end
			if image.release.name ~= node.release.name then
				raise("wrong-release", "the node runs \"" .. node.release.name .. "\" but the release given is \"" .. image.release.name .. "\"")
			end
			verified = verified or (step.version == script.to.version and step.hash == script.to.hash)
		elseif op == "check_version" then
			if node.release.version ~= step.expect then
				raise("version-mismatch", "the node runs " .. node.release.name .. "@" .. node.release.version .. "; this script upgrades from " .. step.expect .. " only", "plan from " .. node.release.version .. ": relup plan --from " .. node.release.version .. " --to " .. script.to.version)
			end
			version_checked = version_checked or step.expect == script.from.version
		elseif op == "stage" then
			local spec = nodelib.module_spec(image, step.module)
			if not spec then
				raise("invalid-script", "stage " .. step.module .. ": release " .. image.release.version .. " has no such module")
			end
			if spec.hash ~= step.hash then
				raise("hash-mismatch", "module " .. step.module .. " hashes to " .. spec.hash:sub(1, 12) .. "…, the script expects " .. step.hash:sub(1, 12) .. "…")
			end
			-- Compiled and run in a staging table: its top level changes nothing live.
			local mod, env = loader.compile(image.files[spec.file], spec.file, node.genv, true)
			if not mod then
				raise("compile-error", env, "fix the module and build a new release")
			end
			staged[step.module] = { mod = mod, env = env, spec = spec, chunk = loader.chunkname(spec.file), base = join.base_fields(mod) }
		elseif op == "check_function" then
			local code = step.release == "from" and (node.modules[step.module] and node.modules[step.module].live) or to_code(step.module)
			fn_of(code, step.module, step["function"], step.release)
		elseif op == "check_process" then
			if not node.processes[step.process] then
				raise("unknown-process", "process " .. tostring(step.process) .. " does not run on this node", "plan the script again (relup plan) against the release the node runs")
			end
		elseif op == "point_of_no_return" then
			check_rest()
			-- From here to the end no other Lua code runs: the window outside work waits.
			report.held_at = report.now()
		else
			raise("invalid-script", op .. " is not a check")
		end
	end

	local function switch(step, ctx)
		local name = step.module
		local next_code = staged[name]
		local record = node.modules[name]
		if record == nil then
			-- A module new in this release: a fresh live table gets its fields.
			local live = {}
			local rep, undo = nil, nil
			ctx.on_undo("remove module " .. name, function()
				if undo then
					undo()
				end
				node.modules[name] = nil
				package.loaded[name] = nil
			end)
			rep, undo = join.switch(live, next_code.mod, { chunks = chunks_of(name), env = next_code.env, base = {}, genv = node.genv })
			node.modules[name] = { name = name, file = next_code.spec.file, hash = next_code.spec.hash, version = image.release.version, live = live, chunk = next_code.chunk, base = next_code.base }
			package.loaded[name] = live
			join_reports[name] = rep
			return
		end
		snapshot_module(name)
		local old = { file = record.file, hash = record.hash, version = record.version, chunk = record.chunk, base = record.base }
		local undo
		ctx.on_undo("restore " .. name .. "'s code and state", function()
			if undo then
				undo()
			end
			restore_module(name)
			for k, v in pairs(old) do
				record[k] = v
			end
		end)
		local rep
		rep, undo = join.switch(record.live, next_code.mod, { chunks = chunks_of(name), env = next_code.env, base = record.base, genv = node.genv })
		join_reports[name] = rep
		record.file, record.hash, record.version, record.chunk, record.base = next_code.spec.file, next_code.spec.hash, image.release.version, next_code.chunk, next_code.base
		local absent = {}
		for _, a in ipairs(rep.absent) do
			absent[#absent + 1] = a.path
		end
		if #absent > 0 then
			report.absent[name] = absent
			report.absent_values[name] = rep.absent
		end
		if #rep.typeChanged > 0 then
			report.type_changed[name] = rep.typeChanged
		end
	end

	local function migrate(step, ctx)
		local name = step.module
		local code = step.release == "from" and node.modules[name].live or to_code(name)
		local f = fn_of(code, name, step["function"], step.release)
		snapshot_module(name)
		ctx.on_undo("restore " .. name .. "'s state", function()
			restore_module(name)
		end)
		local extra = step.extra
		if extra == nil or extra == json.null then
			extra = {}
		end
		local rep = join_reports[name]
		local info = {
			direction = step.direction,
			from = script.from.version,
			to = script.to.version,
			version = step.version,
			extra = extra,
			target = "module",
			-- What the new version's top level set its locals to (by name): new defaults to merge.
			initial = rep and rep.initial or {},
		}
		local names = step.processes or {}
		if #names == 0 then
			f(info)
			local list = report.migrated[step.group] or {}
			list[#list + 1] = name
			report.migrated[step.group] = list
			return
		end
		-- Process migrations, as on every runtime: migration(state, info) returns the new state
		-- (nil: the state it was given, changed in place). A copy of each state is kept first, and
		-- put back on rollback, so a migration that changed the state and then failed leaves no trace.
		info.target = "process"
		for _, pname in ipairs(names) do
			local p = node.processes[pname]
			local kept = processes.copy(p.state)
			ctx.on_undo("restore process " .. pname .. "'s state", function()
				p.state = kept
			end)
			if ctx.injected == "crash" then
				-- A drill (RELUP_FAULTS <i>:crash): the process dies mid-migration, its state gone.
				p.state = nil
				raise("process-crashed", "process " .. pname .. " crashed during its migration (RELUP_FAULTS)")
			end
			info.process = pname
			local new = f(p.state, info)
			if new ~= nil and type(new) ~= "table" then
				raise("migration-failed", name .. "." .. step["function"] .. " returned a " .. type(new) .. " as process " .. pname .. "'s state (a table, or nil to keep the one it changed)")
			end
			p.state = new or p.state
			local list = report.migrated_processes[step.group] or {}
			list[#list + 1] = pname
			report.migrated_processes[step.group] = list
		end
	end

	-- Processes: the host stopped them taking calls before the transaction (host.lua); nothing
	-- else runs until it ends, so suspend and resume only mark the window the outcome reports.
	local function suspend(step, ctx)
		local p = node.processes[step.process]
		ctx.on_undo("suspend " .. step.process .. ": resumed after the transaction")
		processes.hold(p)
		local g = report.suspension[step.group] or {}
		g.at = g.at or report.now()
		report.suspension[step.group] = g
	end

	local function resume(step, ctx)
		ctx.on_undo("resume " .. step.process .. ": nothing to undo")
		local g = report.suspension[step.group]
		if g and g.at then
			g.ms = report.now() - g.at
		end
	end

	local function start_process(step, ctx)
		local name = step.process
		ctx.on_undo("stop " .. name .. " again", function()
			node.processes[name] = nil
		end)
		local ok, err = processes.start(node, process_spec(name))
		if not ok then
			raise("process-start-failed", err)
		end
	end

	local function stop_process(step, ctx)
		local name = step.process
		local p = node.processes[name]
		ctx.on_undo("run " .. name .. " again", function()
			node.processes[name] = p
		end)
		node.processes[name] = nil
	end

	function P.perform(step, ctx)
		local op = step.op
		if op == "switch" then
			return switch(step, ctx)
		elseif op == "migrate" then
			return migrate(step, ctx)
		elseif op == "suspend" then
			return suspend(step, ctx)
		elseif op == "resume" then
			return resume(step, ctx)
		elseif op == "start" then
			return start_process(step, ctx)
		elseif op == "stop" then
			return stop_process(step, ctx)
		elseif op == "restart" then
			stop_process(step, ctx)
			return start_process(step, ctx)
		elseif op == "apply" then
			ctx.on_undo(step.module .. "." .. step["function"] .. " was applied: its effects cannot be undone")
			local f = fn_of(to_code(step.module), step.module, step["function"], "to")
			f(unpack(step.args or {}))
		elseif op == "delete" then
			local name = step.module
			local record = node.modules[name]
			ctx.on_undo("load " .. name .. " again", function()
				node.modules[name] = record
				package.loaded[name] = record.live
			end)
			node.modules[name] = nil
			package.loaded[name] = nil
		elseif op == "purge" then
			-- Old code is garbage once nothing refers to it; the undo log
			-- holds it until the transaction settles.
			ctx.on_undo("purge of " .. step.module .. ": nothing to undo")
		elseif op == "commit" then
			previous_release = { release = node.release, image = node.image }
			ctx.on_undo("restore the running release", function()
				node.release = previous_release.release
				node.image = previous_release.image
			end)
			node.release = image.release
			node.image = image
		else
			raise("invalid-script", op .. " cannot be performed after the point of no return")
		end
	end

	function P.settle()
		if report.held_at then
			report.released_at = report.now()
		end
		staged, snapshots, join_reports = {}, {}, {}
		return {}
	end

	return P
end

return M
