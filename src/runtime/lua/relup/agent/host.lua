-- relup.agent.host: what must outlive a Lua node's process, kept in its
-- state directory exactly as the Node.js host keeps it (history.json and
-- releases/<name>-<version>.tar.gz): the release history, written
-- atomically; the bundles of every release it ran; a restart boots the
-- permanent release. And the apply around the transaction: one at a time
-- (`busy`), the bundle verified before anything, the attempt recorded
-- before anything changes, the outcome recorded after.

local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local open = io.open
local format = string.format

local json = require "relup.agent.json"
local bundle = require "relup.agent.bundle"
local nodelib = require "relup.agent.node"
local steps = require "relup.agent.steps"
local tx = require "relup.agent.transaction"
local lock = require "relup.agent.lock"
local signature = require "relup.agent.signature"
local processes = require "relup.agent.processes"

local M = {}

local MAX_EVENTS = 500
local DEFAULT_DEADLINE_MS = 30000

local function shell_quote(s)
	return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_file(path)
	local f = open(path, "rb")
	if not f then
		return nil
	end
	local s = f:read("a")
	f:close()
	return s
end
M.read_file = read_file

-- Written to a temporary file beside it, then renamed over it: a crash
-- leaves the old file or the new one, never half of one.
local function write_atomic(path, data)
	local dir, base = path:match("^(.*)/([^/]+)$")
	local tmp = dir .. "/." .. base .. ".relup-lua.tmp"
	local f, err = open(tmp, "wb")
	if not f then
		return nil, err
	end
	local ok, werr = f:write(data)
	if not ok then
		f:close()
		os.remove(tmp)
		return nil, werr
	end
	f:flush()
	f:close()
	local rok, rerr = os.rename(tmp, path)
	if not rok then
		return nil, rerr
	end
	return true
end
M.write_atomic = write_atomic

-- ISO 8601 in UTC with milliseconds, as the Node.js host writes times (Date.prototype.toISOString).
local function iso_at(ms)
	ms = math.floor(ms)
	return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. format(".%03dZ", ms % 1000)
end

local function iso_now(clock_ms)
	return iso_at(clock_ms())
end

-- At most 7 days, as the protocol bounds it (src/protocol/messages.ts).
local MAX_SOAK_MS = 604800000

-- Semantic versions compared by precedence (semver.org §11), enough for release versions.
local function parse_version(v)
	local core, pre = v:match("^(%d+%.%d+%.%d+)%-?([^+]*)")
	if not core then
		return nil
	end
	local a, b, c = core:match("^(%d+)%.(%d+)%.(%d+)$")
	return { tonumber(a), tonumber(b), tonumber(c), pre ~= "" and pre or nil }
end

local function version_lt(x, y)
	local a, b = parse_version(x), parse_version(y)
	for i = 1, 3 do
		if a[i] ~= b[i] then
			return a[i] < b[i]
		end
	end
	if a[4] == b[4] then
		return false
	end
	if a[4] == nil or b[4] == nil then
		return a[4] ~= nil -- a pre-release sorts before its release
	end
	local pa, pb = {}, {}
	for id in a[4]:gmatch("[^.]+") do
		pa[#pa + 1] = id
	end
	for id in b[4]:gmatch("[^.]+") do
		pb[#pb + 1] = id
	end
	for i = 1, math.max(#pa, #pb) do
		local ia, ib = pa[i], pb[i]
		if ia == nil then
			return true
		elseif ib == nil then
			return false
		elseif ia ~= ib then
			local na, nb = tonumber(ia), tonumber(ib)
			if na and nb then
				return na < nb
			elseif na or nb then
				return na ~= nil
			end
			return ia < ib
		end
	end
	return false
end

-- Every installed release, newest first.
local function installed_of(history)
	local out = {}
	for v in pairs(history.installed) do
		if parse_version(v) then
			out[#out + 1] = v
		end
	end
	table.sort(out, function(a, b)
		return version_lt(b, a)
	end)
	return out
end

-- Installed releases older than the running one, newest first: where a rollback can go.
local function previous_of(history)
	local out = {}
	for _, v in ipairs(installed_of(history)) do
		if parse_version(history.current) and version_lt(v, history.current) then
			out[#out + 1] = v
		end
	end
	return out
end
M.version_lt = version_lt

-- The history (format 2, as a Node.js node writes it) after `event`.
local function record_event(history, event, change)
	if change and change.current then
		history.current = change.current
	end
	if change and change.permanent then
		history.permanent = change.permanent
	end
	if change and change.installed then
		history.installed[change.installed.version] = change.installed.hash
	end
	history.events[#history.events + 1] = event
	while #history.events > MAX_EVENTS do
		table.remove(history.events, 1)
	end
end

--[[
A durable write of the state directory, `what` naming it as RELUP_FAULTS'
`write:<what>:<how>` does (the Node.js host's DURABLE_WRITES): with a fault
configured for it, `enospc`/`eio` fail before anything is written and
`eio-after` writes, then reports a failure (the new content is already in
place: the hardest case for an undo).
]]
local function durable(host, what, path, data)
	local how = host.opts.write_faults and host.opts.write_faults[what]
	if how == "enospc" or how == "eio" then
		return nil, (how == "enospc" and "ENOSPC: no space left on device" or "EIO: i/o error") .. " (RELUP_FAULTS write:" .. what .. ":" .. how .. ")"
	end
	local ok, err = write_atomic(path, data)
	if ok and how == "eio-after" then
		return nil, "EIO: i/o error after the write (RELUP_FAULTS write:" .. what .. ":eio-after)"
	end
	return ok, err
end

function M.write_history(host, what)
	return durable(host, what or "history-outcome", host.state_dir .. "/history.json", json.encode(host.history) .. "\n")
end

-- Read and verify a bundle; with a public key configured, its signature too,
-- before any of its content is used.
local function read_bundle(opts, gz)
	local read, err = bundle.read(gz)
	if not read then
		return nil, err
	end
	if opts.public_key_file then
		local ok, serr = signature.verify(read.manifest_bytes, read.signature, opts.public_key_file, opts.state_dir)
		if not ok then
			return nil, serr
		end
	end
	return read
end

--[[
Start a host. opts: state_dir, release (a bundle, for a fresh state
directory), config, now_ms() (wall clock, ms), pid, public_key_file (accept
only bundles signed by this ed25519 key).
Returns host or nil, message.
]]
function M.start(opts)
	local state_dir = opts.state_dir
	os.execute("mkdir -p -m 700 " .. shell_quote(state_dir .. "/releases"))
	local host = { state_dir = state_dir, busy = false, opts = opts, now_ms = opts.now_ms }
	-- One node per state directory: two would interleave history writes and installs.
	local release_lock, lerr = lock.take(state_dir, opts.pid, iso_now(opts.now_ms))
	if not release_lock then
		return nil, lerr
	end
	host.release_lock = release_lock
	local function bundle_path(name, version)
		return state_dir .. "/releases/" .. name .. "-" .. version .. ".tar.gz"
	end
	host.bundle_path = bundle_path

	local history_text = read_file(state_dir .. "/history.json")
	local image, notice
	if history_text then
		local h = json.decode(history_text)
		if type(h) ~= "table" or (h.format ~= 1 and h.format ~= 2) or type(h.permanent) ~= "string" or type(h.name) ~= "string" then
			return nil, "history-corrupt: " .. state_dir .. "/history.json is not a valid relup history; move it aside to start fresh"
		end
		h.events = json.array(h.events or {})
		if h.format == 1 then
			-- Written before installed releases were recorded: the permanent one is what is known.
			h.format, h.installed, h.previous = 2, {}, nil
		end
		h.installed = json.object(h.installed or {})
		local gz = read_file(bundle_path(h.name, h.permanent))
		local read, err = gz and read_bundle(opts, gz)
		if not read then
			return nil, "the history in " .. state_dir .. " names " .. h.name .. " " .. h.permanent .. " as permanent, but its bundle is missing or does not verify (" .. tostring(err) .. ")"
		end
		image, err = nodelib.image(read.files, bundle_path(h.name, h.permanent))
		if not image then
			return nil, err
		end
		if h.installed[h.permanent] ~= nil and h.installed[h.permanent] ~= image.release.hash then
			return nil, "the installed bundle of " .. h.name .. " " .. h.permanent .. " hashes to " .. image.release.hash:sub(1, 12) .. "…, the history recorded " .. tostring(h.installed[h.permanent]):sub(1, 12) .. "…: it was replaced; restore it or move the state directory aside"
		end
		h.installed[h.permanent] = image.release.hash
		-- An attempt still `started` was cut short by the node's death.
		local last = h.events[#h.events]
		if last and last.op == "apply" and last.status == "started" then
			last.status = "interrupted"
			last.message = "the node stopped during this upgrade (killed or crashed); it restarted on its permanent release"
		end
		local from = h.current
		-- A restart boots the permanent release: an upgrade not made permanent does not survive it.
		record_event(h, { at = iso_now(host.now_ms), op = "boot", from = from, to = h.permanent, status = "booted" }, { current = h.permanent })
		host.history = h
		notice = "booting the permanent release " .. h.permanent .. " from " .. state_dir
	else
		if not opts.release then
			return nil, state_dir .. " holds no release yet: give the agent a release (directory or bundle) for the first start"
		end
		-- A bundle, so that what is installed is exactly what was verified
		-- (`relup release pack` makes one; `relup node start` packs for you).
		local gz = read_file(opts.release)
		if not gz then
			return nil, "cannot read the release bundle " .. opts.release .. " (a .tar.gz made by `relup release pack`)"
		end
		local read, err = read_bundle(opts, gz)
		if not read then
			return nil, opts.release .. ": " .. err
		end
		local files, bytes = read.files, gz
		image, err = nodelib.image(files, opts.release)
		if not image then
			return nil, err
		end
		if bytes then
			local ok, werr = durable(host, "bundle", bundle_path(image.release.name, image.release.version), bytes)
			if not ok then
				return nil, "cannot install the release bundle: " .. tostring(werr)
			end
		end
		host.history = {
			format = 2, name = image.release.name, current = image.release.version, permanent = image.release.version,
			installed = json.object({ [image.release.version] = image.release.hash }),
			events = json.array({ { at = iso_now(host.now_ms), op = "boot", to = image.release.version, status = "booted" } }),
		}
		notice = "booting " .. image.release.name .. " " .. image.release.version .. " from " .. opts.release
	end
	local node, err = nodelib.boot(image, opts.config)
	if not node then
		release_lock()
		return nil, err
	end
	host.node = node
	host.notice = notice
	local ok, werr = M.write_history(host, "history-boot")
	if not ok then
		return nil, "state-write-failed: cannot write " .. state_dir .. "/history.json: " .. tostring(werr) .. "; free space in " .. state_dir .. " (or fix the disk), then start the node again"
	end
	return host
end

-- The soak as `status` shows it; `overdue` once its deadline has passed with no verdict.
local function soak_status(host)
	local soak = host.soak
	if not soak then
		return nil
	end
	return { version = soak.version, startedAt = iso_at(soak.started_ms), deadline = iso_at(soak.deadline_ms), overdue = host.now_ms() > soak.deadline_ms }
end

function M.status(host)
	local node = host.node
	local events = {}
	local all = host.history.events
	for i = math.max(1, #all - 49), #all do
		events[#events + 1] = all[i]
	end
	return {
		name = node.release.name,
		version = node.release.version,
		hash = node.release.hash,
		modules = json.array(nodelib.module_list(node)),
		processes = json.array(processes.status(node)),
		upgrading = host.busy,
		permanent = host.history.permanent,
		previous = json.array(previous_of(host.history)),
		installed = json.array(installed_of(host.history)),
		history = json.array(events),
		-- Optional in the protocol; present (empty: the agent owns no servers or timers) because `relup status` prints them.
		servers = json.array(),
		timers = json.array(),
		stateDir = host.state_dir,
		historyProblem = host.history_problem,
		soak = soak_status(host),
	}
end

local function describe(result, script, version)
	local at = result.failure and result.failure.step
	local where = "the script"
	if at then
		where = "step " .. (at.index + 1) .. " (" .. at.op .. (at.target ~= "" and (" " .. at.target) or "") .. ")"
	end
	local ms = format("%d ms", math.floor(result.durationMs + 0.5))
	local why = result.failure and result.failure.message or "unknown"
	local s = result.status
	if s == "committed" then
		return (script.direction == "up" and "upgraded " or "downgraded ") .. script.name .. " " .. script.from.version .. " → " .. script.to.version .. " in " .. ms
	elseif s == "dry-run" then
		return "dry run: every check before the point of no return passed for " .. script.from.version .. " → " .. script.to.version .. "; nothing changed"
	elseif s == "refused" then
		return "refused before the point of no return: " .. where .. " failed: " .. why .. "; nothing changed, still on " .. version
	elseif s == "rolled-back" then
		return where .. " failed: " .. why .. "; rolled back to " .. version .. ": old code and state restored"
	end
	local problems = {}
	for _, p in ipairs(result.rollback and result.rollback.problems or {}) do
		problems[#problems + 1] = p.message
	end
	return where .. " failed: " .. why .. "; the rollback did NOT complete: " .. table.concat(problems, "; ")
end

local function outcome_base(host, script, started, now)
	return {
		name = host.node.release.name,
		from = script and script.from and script.from.version,
		to = script and script.to and script.to.version,
		direction = script and script.direction,
		journal = json.array(), groups = json.array(), absent = json.object(), holdMs = json.null,
		durationMs = now() - started,
		permanent = host.history.permanent, previous = json.array(previous_of(host.history)),
	}
end

local function refuse(host, script, started, now, code, message)
	local o = outcome_base(host, script, started, now)
	o.status, o.ok = "refused", false
	o.version = host.node.release.version
	o.failure = { code = code, message = message }
	o.message = "refused: " .. message .. "; nothing changed"
	return o
end

--[[
Why the apply params `params` must be refused although the request is well
formed (the protocol's `bad_request`, answered before anything happens), or
nil: `permanent` is a boolean; `soakMs` an integer number of ms from 1 to 7
days, and only with `permanent: false` (a release in soak is not permanent yet).
]]
function M.apply_params_problem(params)
	local permanent, soak_ms = params.permanent, params.soakMs
	if permanent ~= nil and type(permanent) ~= "boolean" then
		return "permanent must be true or false"
	end
	if soak_ms == nil then
		return nil
	end
	if math.type(soak_ms) == nil or soak_ms ~= math.floor(soak_ms) or soak_ms < 1 or soak_ms > MAX_SOAK_MS then
		return "soakMs must be an integer number of milliseconds from 1 to " .. MAX_SOAK_MS .. " (7 days)"
	end
	if permanent ~= false then
		return "soakMs needs permanent: false (a release in soak is not permanent yet)"
	end
	return nil
end

--[[
Apply `params` ({script, bundle (base64), dryRun, permanent, deadlineMs, soakMs};
checked by apply_params_problem first).
Returns the outcome, or nil, "busy", message. on_event(ev) streams step
events. `pause()` yields to let the node serve others (status, busy).
]]
function M.apply(host, params, on_event, env)
	if host.busy then
		return nil, "busy", "node " .. host.node.release.name .. " is already applying an upgrade; wait for it to finish (relup status shows it), then try again"
	end
	host.busy = true
	local ok, outcome = pcall(M.apply_exclusive, host, params, on_event, env)
	host.busy = false
	if not ok then
		error(outcome, 0)
	end
	return outcome
end

function M.apply_exclusive(host, params, on_event, env)
	local now = env.now
	local started = now()
	local script = params.script
	local node = host.node
	if type(script) ~= "table" or script.format ~= 1 or type(script.steps) ~= "table" or type(script.from) ~= "table" or type(script.to) ~= "table" then
		return refuse(host, type(script) == "table" and script or nil, started, now, "invalid-script", "the script is not a relup script of format 1")
	end
	local base64 = require "silly.encoding.base64"
	local gz = type(params.bundle) == "string" and base64.decode(params.bundle)
	local read, err = nil, "the bundle is not base64"
	if gz then
		read, err = read_bundle(host.opts, gz)
	end
	if not read then
		return refuse(host, script, started, now, "bundle-invalid", "the uploaded bundle does not verify: " .. tostring(err))
	end
	local image, ierr = nodelib.image(read.files, "uploaded bundle")
	if not image then
		return refuse(host, script, started, now, "bundle-invalid", "the uploaded bundle does not verify: " .. tostring(ierr))
	end
	-- As on every node: an upload whose release hash is not the one the script was planned
	-- for is refused as soon as it is read (the version guard comes after).
	if image.release.hash ~= script.to.hash then
		return refuse(host, script, started, now, "bundle-invalid", "the uploaded bundle is " .. image.release.name .. " " .. image.release.version .. " hashing to " .. image.release.hash:sub(1, 12) .. "…, but the script was planned for " .. tostring(script.to.version) .. " hashing to " .. tostring(script.to.hash):sub(1, 12) .. "…: plan again from the release you upload")
	end
	-- Let the node serve others while the upload is checked: status answers, a second apply gets busy.
	env.pause()
	if script.to.version == node.release.version and script.to.hash == node.release.hash then
		local o = outcome_base(host, script, started, now)
		o.status, o.ok, o.version = "noop", true, node.release.version
		o.message = "nothing to do: " .. node.release.name .. " already runs " .. node.release.version
		return o
	end
	if script.runtime ~= "lua" or script.name ~= node.release.name then
		return refuse(host, script, started, now, "wrong-release", "the script is for " .. tostring(script.name) .. " on " .. tostring(script.runtime) .. "; this node runs " .. node.release.name .. " on lua")
	end
	local recorded = host.history.installed[image.release.version]
	if image.release.name == node.release.name and recorded ~= nil then
		if recorded ~= image.release.hash then
			return refuse(host, script, started, now, "version-conflict", "this node already has a different " .. image.release.name .. " " .. image.release.version .. " installed (a rebuilt release is a new version: bump it)")
		end
	end
	-- The processes the script suspends stop taking calls now, and the node waits (yielding: before
	-- the point of no return others may run) until each finishes the call it is handling: the
	-- transaction itself never waits, so a process must be between two calls when it starts.
	local held = {}
	for _, step in ipairs(script.steps) do
		local p = step.op == "suspend" and not params.dryRun and node.processes[step.process]
		if p and not held[p] then
			held[p] = true
			processes.hold(p)
		end
	end
	local function release_held()
		for p in pairs(held) do
			-- A process the upgrade stopped is released too: its waiting callers are told (processes.call).
			processes.release(p)
		end
	end
	local wait_until = now() + (type(params.deadlineMs) == "number" and params.deadlineMs or DEFAULT_DEADLINE_MS)
	for p in pairs(held) do
		while p.busy and now() < wait_until do
			env.sleep(1)
		end
		if p.busy then
			release_held()
			return refuse(host, script, started, now, "deadline", "process " .. p.name .. " did not finish the call it was handling before the deadline")
		end
	end
	local attempt = not params.dryRun
	-- The events this attempt wrote ahead of its outcome (`started`, the commit): replaced by the outcome.
	local placeholders = {}
	if attempt then
		-- Recorded before anything changes, so an attempt cut short by a crash is in the history.
		local started_event = { at = iso_now(host.now_ms), op = "apply", from = script.from.version, to = script.to.version, status = "started" }
		record_event(host.history, started_event)
		local ok, werr = M.write_history(host, "history-started")
		if not ok then
			release_held()
			table.remove(host.history.events)
			return refuse(host, script, started, now, "state-write-failed", "cannot record the attempt in " .. host.state_dir .. "/history.json (" .. tostring(werr) .. "); free space in the state directory")
		end
		placeholders[started_event] = true
	end
	local report = { absent = {}, absent_values = {}, type_changed = {}, migrated = {}, migrated_processes = {}, suspension = {}, now = now }
	local performer = M.durable_commit(host, steps.new(node, script, image, report), {
		script = script, image = image, gz = gz, permanent = params.permanent ~= false, placeholders = placeholders, started = started, now = now,
	})
	local result = tx.run({
		steps = script.steps,
		pnr = script.pointOfNoReturn,
		dry_run = params.dryRun == true,
		deadline_ms = type(params.deadlineMs) == "number" and params.deadlineMs or DEFAULT_DEADLINE_MS,
		performer = performer,
		on_event = on_event,
		now = now,
		fault = env.fault,
		spawn = env.spawn,
	})
	-- Every process held for this attempt takes calls again; the callers that waited go first, in order.
	release_held()
	if result.status == "committed" then
		-- The outcome's `absent` names the new locals; their initial values and changed types go to the node's log.
		for name, list in pairs(report.absent_values) do
			for _, a in ipairs(list) do
				io.stderr:write("relup: " .. name .. ": new local " .. a.path .. " = " .. json.encode(a.value) .. " (absent before " .. script.to.version .. ")\n")
			end
		end
		for name, list in pairs(report.type_changed) do
			for _, t in ipairs(list) do
				io.stderr:write("relup: " .. name .. ": local " .. t.path .. " holds a " .. t.live .. " and " .. script.to.version .. " starts it as a " .. t.new .. ": its migration must reshape it\n")
			end
		end
	end
	if attempt then
		local kept = json.array()
		for _, e in ipairs(host.history.events) do
			if not placeholders[e] then
				kept[#kept + 1] = e
			end
		end
		host.history.events = kept
	end
	local version = node.release.version
	local groups = json.array()
	for _, g in ipairs(script.groups or {}) do
		local held = report.suspension[g.id]
		groups[#groups + 1] = {
			id = g.id, modules = json.array(g.modules), processes = json.array(g.processes or {}),
			suspensionMs = held and held.ms or json.null,
			migrated = { modules = json.array(report.migrated[g.id] or {}), processes = json.array(report.migrated_processes[g.id] or {}) },
		}
	end
	local absent = json.object()
	for name, list in pairs(report.absent) do
		absent[name] = json.array(list)
	end
	local message = describe(result, script, version)
	if result.status ~= "dry-run" then
		local event = {
			at = iso_now(host.now_ms), op = "apply", from = script.from.version, to = script.to.version, status = result.status, message = message,
			durationMs = math.floor(result.durationMs * 100 + 0.5) / 100, suspensionMs = json.object(),
		}
		local step = result.failure and result.failure.step
		if step then
			event.failedStep = ((step.index + 1) .. " " .. step.op .. " " .. step.target):gsub("%s+$", "")
		end
		local committed = result.status == "committed"
		record_event(host.history, event, committed and { current = version, permanent = params.permanent ~= false and version or nil, installed = { version = version, hash = node.release.hash } } or nil)
	end
	if attempt then
		-- Which release runs and which one a restart boots were settled durably by the
		-- transaction (the commit step, or its undo): a failure here loses figures only.
		local ok, werr = M.write_history(host, "history-outcome")
		host.history_problem = not ok and ("the outcome of the last apply could not be recorded in " .. host.state_dir .. "/history.json: " .. tostring(werr)) or nil
	end
	-- A committed apply ends any soak (the release in soak no longer runs, or runs again by a new
	-- decision); one asked with soakMs starts the new release's. A refused, rolled-back or dry-run
	-- apply leaves the soak as it was. Memory only: a restart boots the permanent release, which is
	-- never the one in soak.
	if result.status == "committed" then
		local soak_ms = params.soakMs and math.tointeger(params.soakMs)
		local at = host.now_ms()
		host.soak = soak_ms and { version = version, started_ms = at, deadline_ms = at + soak_ms } or nil
	end
	local journal = json.array()
	for i, j in ipairs(result.journal) do
		journal[i] = j
	end
	return {
		name = node.release.name, from = script.from.version, to = script.to.version, direction = script.direction,
		status = result.status, ok = result.status == "committed" or result.status == "dry-run", message = message, version = version,
		failure = result.failure, rollback = result.rollback and {
			complete = result.rollback.complete, undone = result.rollback.undone, problems = json.array(result.rollback.problems),
		} or nil,
		journal = journal, groups = groups, absent = absent,
		holdMs = (report.held_at and report.released_at) and (report.released_at - report.held_at) or json.null,
		durationMs = now() - started,
		permanent = host.history.permanent, previous = json.array(previous_of(host.history)),
	}
end

--[[
The durable half of the commit step, run inside it right after the node
switched its release in memory: install the bundle (unless that exact
release is installed already), then write the history naming the new
release. Each undo is registered before its write (rule 1), so if either
write fails the step fails and the transaction rolls the whole upgrade back
in place (`state-write-failed`): memory, status and history.json never
disagree about what runs and what a restart boots.
]]
function M.durable_commit(host, performer, a)
	local P = {}
	P.check = performer.check
	P.settle = performer.settle
	function P.perform(step, ctx)
		performer.perform(step, ctx)
		if step.op ~= "commit" then
			return
		end
		local release = a.image.release
		local path = host.bundle_path(release.name, release.version)
		local h = host.history
		if h.installed[release.version] == nil then
			ctx.on_undo("remove the bundle installed for " .. release.version, function()
				os.remove(path)
			end)
			local ok, werr = durable(host, "bundle", path, a.gz)
			if not ok then
				error(tx.fail("state-write-failed", "cannot install " .. path .. ": " .. tostring(werr), "free space in " .. host.state_dir .. " (or fix the disk), then apply again"), 0)
			end
		end
		local before = { current = h.current, permanent = h.permanent, installed = h.installed }
		local event = {
			at = iso_now(host.now_ms), op = "apply", from = a.script.from.version, to = a.script.to.version, status = "committed",
			message = "committed at step " .. (ctx.index + 1) .. " (commit)", durationMs = math.floor((a.now() - a.started) * 100 + 0.5) / 100,
		}
		ctx.on_undo("put the history back on the release that was running", function()
			h.current, h.permanent, h.installed = before.current, before.permanent, before.installed
			for i = #h.events, 1, -1 do
				if h.events[i] == event then
					table.remove(h.events, i)
				end
			end
			local ok, werr = M.write_history(host, "history-outcome")
			if not ok then
				error("cannot write " .. host.state_dir .. "/history.json back: " .. tostring(werr) .. "; it names " .. release.version .. ", which a restart would boot", 0)
			end
		end)
		local installed = json.object({})
		for v, hash in pairs(h.installed) do
			installed[v] = hash
		end
		h.installed = installed
		record_event(h, event, { current = release.version, permanent = a.permanent and release.version or nil, installed = { version = release.version, hash = release.hash } })
		a.placeholders[event] = true
		local ok, werr = M.write_history(host, "history-commit")
		if not ok then
			error(tx.fail("state-write-failed", "cannot record the commit in " .. host.state_dir .. "/history.json: " .. tostring(werr), "free space in " .. host.state_dir .. " (or fix the disk), then apply again"), 0)
		end
	end
	return P
end

function M.make_permanent(host, version)
	local node = host.node
	if host.history.installed[version] == nil or not read_file(host.bundle_path(node.release.name, version)) then
		return nil, node.release.name .. " " .. version .. " is not installed on this node; apply it first"
	end
	local h = host.history
	local before, n = h.permanent, #h.events
	record_event(h, { at = iso_now(host.now_ms), op = "make_permanent", to = version, status = "ok" }, { permanent = version })
	local ok, werr = M.write_history(host, "history-permanent")
	if not ok then
		-- Only what is on disk counts: the permanent release stays the one a restart would boot.
		h.permanent = before
		if #h.events > n then
			table.remove(h.events)
		end
		return nil, "state-write-failed: cannot record " .. version .. " as permanent in " .. host.state_dir .. "/history.json: " .. tostring(werr) .. "; the permanent release is still " .. before
	end
	-- Making the release in soak permanent is the soak's verdict: it passed. Another release made
	-- permanent is no verdict on it.
	if host.soak and host.soak.version == version then
		host.soak = nil
	end
	return { permanent = version }
end

return M
