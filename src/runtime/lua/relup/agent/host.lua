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

local function iso_now(clock_ms)
	local ms = clock_ms()
	return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. format(".%03dZ", ms % 1000)
end

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
			local ok, werr = write_atomic(bundle_path(image.release.name, image.release.version), bytes)
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
	local ok, werr = M.write_history(host)
	if not ok then
		return nil, werr
	end
	return host
end

function M.write_history(host)
	return write_atomic(host.state_dir .. "/history.json", json.encode(host.history) .. "\n")
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
		processes = json.array(),
		upgrading = host.busy,
		permanent = host.history.permanent,
		previous = json.array(previous_of(host.history)),
		installed = json.array(installed_of(host.history)),
		history = json.array(events),
		-- Optional in the protocol; present (empty: the agent owns no servers or timers) because `relup status` prints them.
		servers = json.array(),
		timers = json.array(),
		stateDir = host.state_dir,
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
Apply `params` ({script, bundle (base64), dryRun, permanent, deadlineMs}).
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
	local attempt = not params.dryRun
	if attempt then
		-- Recorded before anything changes, so an attempt cut short by a crash is in the history.
		record_event(host.history, { at = iso_now(host.now_ms), op = "apply", from = script.from.version, to = script.to.version, status = "started" })
		M.write_history(host)
	end
	local report = { absent = {}, absent_values = {}, type_changed = {}, migrated = {}, now = now }
	local performer = steps.new(node, script, image, report)
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
		local ok, werr = write_atomic(host.bundle_path(image.release.name, image.release.version), gz)
		if not ok then
			result.rollback = { complete = false, undone = 0, problems = { { message = "installing the bundle failed: " .. tostring(werr) .. "; a restart boots the previous permanent release" } } }
		end
	end
	if attempt then
		local last = host.history.events[#host.history.events]
		if last and last.op == "apply" and last.status == "started" then
			table.remove(host.history.events)
		end
	end
	local version = node.release.version
	local groups = json.array()
	for _, g in ipairs(script.groups or {}) do
		groups[#groups + 1] = { id = g.id, modules = json.array(g.modules), processes = json.array(), suspensionMs = json.null, migrated = { modules = json.array(report.migrated[g.id] or {}), processes = json.array() } }
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
		M.write_history(host)
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

function M.make_permanent(host, version)
	local node = host.node
	if host.history.installed[version] == nil or not read_file(host.bundle_path(node.release.name, version)) then
		return nil, node.release.name .. " " .. version .. " is not installed on this node; apply it first"
	end
	record_event(host.history, { at = iso_now(host.now_ms), op = "make_permanent", to = version, status = "ok" }, { permanent = version })
	M.write_history(host)
	return { permanent = version }
end

return M
