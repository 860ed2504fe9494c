// Upgrade under load versus a restart and versus PM2 (issue: "upgrade under load").
//
// The same workload (bench/load-generator.js, a separate process) runs against
// three ways of moving the demo service 1.2.2 → 1.2.3 and back, several times:
//
//   relup    one `relup node start` child; `relup apply --to 1.2.3` and
//            `relup rollback` (the real CLI) over its control socket;
//   restart  what users do without relup: stop the node (SIGTERM), start it on
//            the other release (a fresh state directory: the state is gone);
//   pm2      the same service under PM2 in cluster mode (bench/pm2-app.cjs,
//            2 workers), switched with `pm2 reload --update-env`.
//
// For each: a quiet baseline window, then each step's window (from the moment
// the step starts until `postMs` after it ended), with latency, failures,
// dropped long-lived connections, and an exact check of the state after each
// step (load paused, nothing in flight, then the service's counters against
// what it acknowledged). For relup, the suspension window of each group, from
// the node's journal.
import { fork } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { Connection } from '../dist/client/connection.js';
import { CLI, REPO, assertRunning, freePort, nowMs, onCleanup, pidsWithEnv, ratio, round, sleep, summary, waitGone } from './lib.js';

const RELEASE = { '1.2.2': join(REPO, 'releases', '1.2.2'), '1.2.3': join(REPO, 'releases', '1.2.3') };
const GENERATOR = fileURLToPath(new URL('./load-generator.js', import.meta.url));
const PM2_APP = fileURLToPath(new URL('./pm2-app.cjs', import.meta.url));
const PM2_BIN = join(REPO, 'node_modules', 'pm2', 'bin', 'pm2');
const PM2_NAME = 'relup-bench-demo';

export function loadSettings({ quick, overrides = {} }) {
  const base = quick
    ? { rate: 500, longLived: 200, poolConnections: 16, rounds: 1, openSpreadMs: 300, warmupMs: 300, baselineMs: 1000, gapMs: 200, postMs: 400, pm2Instances: 2, bigStatePlayers: 10_000 }
    : { rate: 2000, longLived: 1000, poolConnections: 32, rounds: 3, openSpreadMs: 1000, warmupMs: 3000, baselineMs: 10_000, gapMs: 2000, postMs: 2000, pm2Instances: 2, bigStatePlayers: 10_000 };
  return { ...base, ...overrides };
}

// ---- helpers -------------------------------------------------------------------

function httpGet(port, path, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, text: '' }));
    req.end();
  });
}

async function waitHttp(port, timeoutMs, alive = () => true) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await httpGet(port, '/version');
    if (r.status === 200) return r.text;
    if (!alive() || Date.now() > until) throw new Error(`the service on 127.0.0.1:${port} did not answer within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** CPU time (ms) a process has used so far, from /proc (Linux); null elsewhere. */
async function cpuMs(pid) {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, USER_HZ = 100
  } catch {
    return null;
  }
}
const cpuOf = async (pids) => (await Promise.all(pids.map(cpuMs))).reduce((a, b) => (a ?? 0) + (b ?? 0), 0);

/** `relup node start` as a child process, on a fixed port (so the port survives a restart). */
async function startRelupNode({ release, socket, stateDir, port }) {
  assertRunning();
  const child = execa(process.execPath, [CLI, 'node', 'start', '--release', release, '--socket', socket, '--state-dir', stateDir, '--port', String(port), '--set', 'tickMs=1000'], {
    cwd: REPO,
    reject: false,
    stdin: 'ignore',
    all: true,
    env: { NO_COLOR: '1' },
  });
  let output = '';
  child.all?.on('data', (d) => (output = (output + d.toString()).slice(-4000)));
  let unregister = () => {};
  const stop = async () => {
    unregister();
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await Promise.race([child, sleep(5000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
    await Promise.race([child, sleep(2000)]);
  };
  unregister = onCleanup(stop);
  try {
    await waitHttp(port, 15_000, () => child.exitCode === null);
    for (let i = 0; ; i++) {
      try {
        (await Connection.open({ kind: 'unix', path: socket }, { timeoutMs: 1000 })).close();
        break;
      } catch (e) {
        if (i > 100) throw e;
        await sleep(20);
      }
    }
  } catch (e) {
    await stop();
    throw new Error(`relup node start on ${release} failed: ${e.message}\n${output}`);
  }
  return { child, pid: child.pid, stop, output: () => output };
}

// ---- the three services ------------------------------------------------------------

async function relupService(port, tmp) {
  const socket = join(tmp, 'node.sock');
  const node = await startRelupNode({ release: RELEASE['1.2.2'], socket, stateDir: join(tmp, 'state'), port });
  return {
    pids: async () => [node.pid],
    async step(direction) {
      const args = direction === 'up' ? ['apply', '--target', socket, '--to', '1.2.3', '--json'] : ['rollback', '--target', socket, '--json'];
      const r = await execa(process.execPath, [CLI, ...args], { cwd: REPO, reject: false, env: { NO_COLOR: '1' }, timeout: 60_000 });
      let outcome;
      try {
        outcome = JSON.parse(r.stdout);
      } catch {
        throw new Error(`relup ${args[0]} printed no JSON (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
      }
      if (r.exitCode !== 0 || outcome.status !== 'committed') throw new Error(`relup ${args[0]} did not commit (exit ${r.exitCode}): ${outcome.message}`);
      return {
        command: `relup ${args.join(' ')}`,
        status: outcome.status,
        version: outcome.version,
        nodeDurationMs: round(outcome.durationMs, 3),
        // Every request, timer tick and control call that arrives from the point of no return to the end waits (the node's hold).
        holdMs: outcome.holdMs === undefined || outcome.holdMs === null ? null : round(outcome.holdMs, 3),
        journal: outcome.journal.map((j) => `${j.index} ${j.op} ${j.target ?? ''} ${j.status} ${round(j.durationMs, 3)} ms`.replace(/\s+/g, ' ')),
        groups: outcome.groups.map((g) => ({ id: g.id, modules: g.modules, processes: g.processes, suspensionMs: g.suspensionMs === null ? null : round(g.suspensionMs, 3) })),
      };
    },
    async journal() {
      const c = await Connection.open({ kind: 'unix', path: socket });
      try {
        const status = await c.request('status', {});
        return status.history.filter((e) => e.op === 'apply').map((e) => ({ at: e.at, from: e.from, to: e.to, status: e.status, durationMs: e.durationMs, suspensionMs: e.suspensionMs }));
      } finally {
        c.close();
      }
    },
    stop: () => node.stop(),
  };
}

async function restartService(port, tmp) {
  const socket = join(tmp, 'node.sock');
  let node = await startRelupNode({ release: RELEASE['1.2.2'], socket, stateDir: join(tmp, 'state-0'), port });
  let n = 0;
  const pids = [node.pid];
  return {
    pids: async () => [node.pid],
    allPids: () => pids,
    async step(direction) {
      const to = direction === 'up' ? '1.2.3' : '1.2.2';
      const t0 = nowMs();
      await node.stop();
      const stopped = nowMs();
      n += 1;
      // A fresh state directory: otherwise the node would boot its permanent release, whatever --release says.
      node = await startRelupNode({ release: RELEASE[to], socket, stateDir: join(tmp, `state-${n}`), port });
      pids.push(node.pid);
      const version = await waitHttp(port, 15_000);
      return { command: `SIGTERM, then relup node start --release releases/${to}`, version, stopMs: round(stopped - t0, 1), downtimeMs: round(nowMs() - t0, 1) };
    },
    stop: () => node.stop(),
  };
}

async function pm2Service(port, tmp, settings) {
  const home = join(tmp, 'pm2');
  const env = (release) => ({ PM2_HOME: home, RELUP_BENCH_PORT: String(port), RELUP_BENCH_RELEASE: release, NO_COLOR: '1' });
  const pm2 = (args, release = RELEASE['1.2.2']) => execa(process.execPath, [PM2_BIN, ...args], { cwd: REPO, env: env(release), reject: false, timeout: 60_000, stdin: 'ignore' });
  // PM2's daemon and its workers all carry our PM2_HOME in their environment.
  const ours = () => pidsWithEnv(`PM2_HOME=${home}`).filter((pid) => pid !== process.pid);
  const seen = new Set();
  const remember = () => {
    const list = ours();
    for (const pid of list) seen.add(pid);
    return list;
  };
  const kill = async () => {
    // `pm2 kill` with no daemon would spawn one to kill it: only when ours run.
    if (remember().length > 0) await pm2(['kill']);
    for (const pid of await waitGone([...seen, ...ours()], 3000)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await waitGone([...seen], 2000);
  };
  assertRunning();
  // From here on PM2's daemon may exist: kill it whatever happens (Ctrl-C included).
  const unregister = onCleanup(kill);
  // kill-timeout 3000: the app exits by itself within 2.5 s of SIGINT (bench/pm2-app.cjs).
  const started = await pm2(['start', PM2_APP, '--name', PM2_NAME, '-i', String(settings.pm2Instances), '--wait-ready', '--listen-timeout', '10000', '--kill-timeout', '3000']);
  try {
    if (started.exitCode !== 0) throw new Error(`pm2 start failed (exit ${started.exitCode}): ${started.stderr || started.stdout}`);
    await waitHttp(port, 20_000);
    remember();
  } catch (e) {
    unregister();
    await kill();
    throw e;
  }
  const version = JSON.parse(await readFile(join(REPO, 'node_modules', 'pm2', 'package.json'), 'utf8')).version;
  return {
    pm2Version: version,
    pids: async () => remember(),
    allPids: () => [...seen],
    async step(direction) {
      const to = direction === 'up' ? '1.2.3' : '1.2.2';
      const r = await pm2(['reload', PM2_NAME, '--update-env'], RELEASE[to]);
      if (r.exitCode !== 0) throw new Error(`pm2 reload failed (exit ${r.exitCode}): ${r.stderr || r.stdout}`);
      const endedAt = nowMs();
      const list = remember();
      return { command: `pm2 reload ${PM2_NAME} --update-env (RELUP_BENCH_RELEASE=releases/${to})`, endedAt, processes: list.length };
    },
    stop: async () => {
      unregister();
      await kill();
    },
  };
}

// ---- the generator process ----------------------------------------------------------

function startGenerator() {
  assertRunning();
  const child = fork(GENERATOR, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map();
  let failure;
  child.on('message', (msg) => {
    if (msg.type === 'error') failure = new Error(`load generator: ${msg.message}`);
    const key = msg.type === 'checkpoint' ? `checkpoint:${msg.id}` : msg.type === 'error' ? [...waiting.keys()][0] : msg.type;
    const w = waiting.get(key);
    if (w) {
      waiting.delete(key);
      if (failure) w.reject(failure);
      else w.resolve(msg);
    }
  });
  child.on('exit', (code) => {
    for (const w of waiting.values()) w.reject(failure ?? new Error(`load generator exited (${code})`));
    waiting.clear();
  });
  child.on('error', (e) => {
    failure ??= new Error(`load generator: ${e.message}`);
    for (const w of waiting.values()) w.reject(failure);
    waiting.clear();
  });
  let ids = 0;
  const ask = (message, answer, timeoutMs) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(answer);
        reject(new Error(`load generator: no ${answer} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(answer, { resolve: (m) => (clearTimeout(timer), resolve(m)), reject: (e) => (clearTimeout(timer), reject(e)) });
      if (!child.connected) {
        waiting.get(answer).reject(failure ?? new Error('load generator is gone'));
        waiting.delete(answer);
        return;
      }
      child.send(message, (e) => {
        if (e && waiting.has(answer)) {
          waiting.get(answer).reject(e);
          waiting.delete(answer);
        }
      });
    });
  return {
    pid: child.pid,
    start: (config) => ask({ type: 'start', config }, 'started', 30_000),
    checkpoint: async () => {
      const id = ++ids;
      return (await ask({ type: 'checkpoint', id }, `checkpoint:${id}`, 30_000)).result;
    },
    stop: async (windows) => (await ask({ type: 'stop', windows }, 'report', 60_000)).report,
    kill: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

// ---- one scenario ---------------------------------------------------------------------

/**
 * Create `count` extra players (ids x0…) over keep-alive HTTP, 16 at a time,
 * before the load starts: the `relup-10k` scenario's game state holds 10,000
 * players (these plus the long-lived connections' own), so its suspension
 * window is measured against ten times the state (issue 14 item 1).
 */
async function preloadPlayers(port, count) {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const post = (id) =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ id, name: `bulk ${id}` });
      const req = request({ host: '127.0.0.1', port, path: '/players', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 || res.statusCode === 201 ? resolve() : reject(new Error(`POST /players ${id}: ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  try {
    for (let i = 0; i < count; i += 16) await Promise.all(Array.from({ length: Math.min(16, count - i) }, (_, k) => post(`x${i + k}`)));
  } finally {
    agent.destroy();
  }
}

const SERVICES = {
  relup: relupService,
  'relup-10k': async (port, tmp, settings) => {
    const service = await relupService(port, tmp);
    await preloadPlayers(port, Math.max(0, settings.bigStatePlayers - settings.longLived));
    return service;
  },
  restart: restartService,
  pm2: pm2Service,
};

async function runScenario(kind, settings, log) {
  const t0 = nowMs();
  const tmp = await mkdtemp(join(tmpdir(), `relup-bench-${kind}-`));
  const port = await freePort();
  let service;
  let gen;
  const cleanup = async () => {
    gen?.kill();
    await service?.stop();
    await rm(tmp, { recursive: true, force: true });
  };
  const unregister = onCleanup(cleanup);
  try {
    service = await SERVICES[kind](port, tmp, settings);
    gen = startGenerator();
    const rounds = settings.rounds;
    const maxDurationMs = settings.warmupMs + settings.baselineMs + rounds * 2 * (settings.gapMs + settings.postMs + 15_000) + 60_000;
    await gen.start({ origin: `http://127.0.0.1:${port}`, rate: settings.rate, longLived: settings.longLived, poolConnections: settings.poolConnections, openSpreadMs: settings.openSpreadMs, maxDurationMs });
    await sleep(settings.warmupMs);
    const checkpoints = [{ after: 'warm-up', ...(await gen.checkpoint()) }];

    const pids = await service.pids();
    const cpu0 = { service: await cpuOf(pids), generator: await cpuMs(gen.pid) };
    const b0 = nowMs();
    await sleep(settings.baselineMs);
    const b1 = nowMs();
    const cpu1 = { service: await cpuOf(pids), generator: await cpuMs(gen.pid) };
    const baselineCpu = { servicePercentOfCore: round(((cpu1.service - cpu0.service) / (b1 - b0)) * 100, 1), generatorPercentOfCore: cpu0.generator === null ? null : round(((cpu1.generator - cpu0.generator) / (b1 - b0)) * 100, 1), serviceProcesses: pids.length };
    checkpoints.push({ after: 'baseline', ...(await gen.checkpoint()) });

    const steps = [];
    for (let r = 1; r <= rounds; r++) {
      for (const direction of ['up', 'down']) {
        await sleep(settings.gapMs);
        const startedAt = nowMs();
        const { endedAt: reported, ...info } = await service.step(direction);
        const endedAt = reported ?? nowMs();
        await sleep(settings.postMs);
        const checkpoint = await gen.checkpoint();
        const step = { round: r, direction, to: direction === 'up' ? '1.2.3' : '1.2.2', startedAt, endedAt, stepMs: round(endedAt - startedAt, 1), ...info, checkpoint };
        steps.push(step);
        log(`    ${kind} round ${r} ${direction}: ${step.stepMs} ms, state ${checkpoint.exact ? 'exact' : 'NOT exact'} (versions ${checkpoint.versions.join(', ')})`);
      }
    }
    const journal = service.journal ? await service.journal() : undefined;
    const stepInterval = (s) => [s.startedAt, s.endedAt + settings.postMs];
    const windows = [
      { name: 'run', intervals: [[0, 1e15]] },
      { name: 'baseline', intervals: [[b0, b1]] },
      { name: 'steps', intervals: steps.map(stepInterval) },
      ...steps.map((s, i) => ({ name: `step ${i + 1}`, intervals: [stepInterval(s)], sliceMs: 100 })),
    ];
    if (journal) {
      // Requests in flight while the node ran each transaction (history `at` is written just after it, ms resolution).
      windows.push({ name: 'transactions', mode: 'overlap', intervals: journal.map((e) => [Date.parse(e.at) - e.durationMs - 20, Date.parse(e.at) + 5]) });
    }
    const report = await gen.stop(windows);
    const genPid = gen.pid;
    gen = undefined;
    const allPids = service.allPids?.() ?? pids;
    const pm2Version = service.pm2Version;
    await service.stop();
    service = undefined;
    const strays = await waitGone([...allPids, genPid], 3000);
    return { seconds: round((nowMs() - t0) / 1000, 1), ...(pm2Version === undefined ? {} : { pm2Version }), ...summarise(kind, settings, { baselineCpu, checkpoints, steps, journal, report, strays }) };
  } finally {
    await cleanup();
    unregister();
  }
}

function summarise(kind, settings, { baselineCpu, checkpoints, steps, journal, report, strays }) {
  const win = (name) => report.windows.find((w) => w.name === name);
  const final = steps.at(-1)?.checkpoint ?? checkpoints.at(-1);
  const prev = (i) => (i === 0 ? checkpoints.at(-1) : steps[i - 1].checkpoint);
  const perStep = steps.map((s, i) => {
    const w = win(`step ${i + 1}`);
    const before = prev(i);
    const cp = s.checkpoint;
    const { checkpoint: _cp, startedAt: _a, endedAt: _b, ...rest } = s;
    return {
      ...rest,
      window: { seconds: w.seconds, sent: w.all.sent, failed: w.all.failed, p50: w.all.p50, p99: w.all.p99, max: w.all.max, droppedLongLived: w.droppedLongLived, failuresByReason: w.failuresByReason },
      // Every 100 ms of the window from the step's start: requests started, failed, and the slowest answer.
      timeline: w.timeline.map((t) => `${t.atMs} ms: ${t.sent} sent, ${t.failed} failed, max ${t.maxMs} ms`),
      state: {
        exact: cp.exact,
        versions: cp.versions,
        helloMissing: cp.hello.missing,
        helloLostThisStep: cp.hello.missing - before.hello.missing,
        playersExact: `${cp.players.exact}/${cp.players.checked}`,
        pointsLostThisStep: cp.players.lostPoints - before.players.lostPoints,
        scoreMessagesLostThisStep: cp.players.lostMessages - before.players.lostMessages,
        playersLostThisStep: cp.players.lostPlayers - before.players.lostPlayers,
        mismatchPoints: cp.players.mismatchPoints,
        wrongAnswers: cp.wrongAnswers,
        stillInFlight: cp.stillInFlight,
      },
    };
  });
  const suspensions = [];
  if (journal) for (const e of journal) for (const ms of Object.values(e.suspensionMs ?? {})) if (ms !== null) suspensions.push(ms);
  const holds = steps.map((s) => s.holdMs).filter((x) => typeof x === 'number');
  const stepsWin = win('steps');
  const base = win('baseline');
  const disruption = {
    failedRequests: stepsWin.all.failed,
    failedRequestsWholeRun: win('run').all.failed,
    droppedConnections: report.drops.longLived,
    lostUpdates: final.hello.missing + final.players.lostMessages,
    lostHelloCounts: final.hello.missing,
    lostScoreMessages: final.players.lostMessages,
    lostPoints: final.players.lostPoints,
    lostPlayers: final.players.lostPlayers,
    worstLatencyMs: stepsWin.all.max,
  };
  return {
    kind,
    settings,
    achieved: {
      baselineRatePerSec: base.rate.ratePerSec,
      baselineLongLivedPerSec: base.long.ratePerSec,
      rateSkipped: report.counters.rateSkipped,
      longLivedSkipped: report.counters.longSkipped,
      generator: report.generator,
      cpu: baselineCpu,
    },
    baseline: base,
    steps: stepsWin,
    transactions: win('transactions') ?? null,
    perStep,
    suspension: journal ? { groupsWindows: suspensions.length, ...summary(suspensions), journal } : null,
    hold: holds.length > 0 ? { ...summary(holds), values: holds } : null,
    // How much longer the node-wide hold lasted than the suspension window it wraps (issue 14: within 1 ms).
    holdOverWindow: holds.length > 0 ? summary(steps.filter((st) => typeof st.holdMs === 'number' && st.groups?.some((g) => g.suspensionMs !== null)).map((st) => st.holdMs - Math.max(...st.groups.filter((g) => g.suspensionMs !== null).map((g) => g.suspensionMs)))) : null,
    stateExact: steps.every((s) => s.checkpoint.exact) && checkpoints.every((c) => c.exact),
    finalState: final,
    disruption,
    connections: { connects: report.connects, drops: report.drops, connectErrors: report.connectErrors },
    counters: report.counters,
    checkpoints,
    strayProcesses: strays,
  };
}

export async function runLoadBench({ quick = false, overrides = {}, scenarios = ['relup', 'relup-10k', 'restart', 'pm2'], log = () => {} } = {}) {
  const settings = loadSettings({ quick, overrides });
  const out = { settings, scenarios: {} };
  for (const kind of scenarios) {
    assertRunning();
    log(`  load: ${kind} (${settings.rate} req/s + ${settings.longLived} long-lived connections, ${settings.rounds} round(s))`);
    try {
      out.scenarios[kind] = await runScenario(kind, settings, log);
      log(`    ${kind}: ${out.scenarios[kind].seconds} s`);
    } catch (e) {
      assertRunning(); // interrupted: stop here, start nothing more
      // One alternative failing (PM2 missing, a port taken) must not lose the others' figures.
      log(`    ${kind} FAILED: ${e.message}`);
      out.failed = { ...out.failed, [kind]: e.message };
    }
  }
  const r = out.scenarios.relup?.disruption;
  out.ratios = {};
  for (const other of ['restart', 'pm2']) {
    const o = out.scenarios[other]?.disruption;
    if (!r || !o) continue;
    out.ratios[`relup/${other}`] = Object.fromEntries(['failedRequests', 'droppedConnections', 'lostUpdates', 'worstLatencyMs'].map((k) => [k, { relup: r[k], [other]: o[k], ratio: ratio(r[k], o[k]) }]));
  }
  const s = out.scenarios.relup?.suspension;
  const h = out.scenarios.relup?.hold;
  const big = out.scenarios['relup-10k']?.suspension;
  const over = out.scenarios.relup?.holdOverWindow;
  out.goals = out.scenarios.relup
    ? {
        // Issue 14: p99 ≤ 5 ms and max ≤ 10 ms with 1,000 players; p99 ≤ 10 ms with 10,000; the hold within 1 ms of the window.
        suspensionP99Ms: { goal: 5, value: s?.p99 ?? null, met: s?.p99 !== null && s?.p99 <= 5 },
        suspensionMaxMs: { goal: 10, value: s?.max ?? null, met: s?.max !== null && s?.max <= 10 },
        ...(big ? { suspension10kP99Ms: { goal: 10, value: big.p99, met: big.p99 !== null && big.p99 <= 10 } } : {}),
        ...(over ? { holdOverWindowMaxMs: { goal: 1, value: over.max, met: over.max !== null && over.max <= 1 } } : {}),
        // Not a goal of the issue: the same bounds applied to the node-wide hold (every outside request waits during it).
        holdP99Ms: { goal: 5, value: h?.p99 ?? null, met: h !== null && h !== undefined && h.p99 <= 5 },
        holdMaxMs: { goal: 20, value: h?.max ?? null, met: h !== null && h !== undefined && h.max <= 20 },
        failedRequests: { goal: 0, value: r.failedRequests, met: r.failedRequests === 0 },
        droppedConnections: { goal: 0, value: r.droppedConnections, met: r.droppedConnections === 0 },
        stateExact: { goal: true, value: out.scenarios.relup.stateExact, met: out.scenarios.relup.stateExact },
      }
    : {};
  return out;
}
