// The Erlang runtime under load (issue 10, "Speed"): an Erlang node serving
// the Erlang demo (examples/erlang: the seed-002 TCP service and the game's
// players gen_server) under the Node.js bench's kind of load — a rate stream
// of requests plus long-lived connections (bench/erlang-load-generator.js, a
// separate process) — through upgrade + rollback rounds done three ways:
//
//   - relup apply + rollback (in place, the agent in the node);
//   - OTP's own release_handler on a release_handler-managed copy of the
//     same app (bench/erlang-release-handler-bench.js): install_release up
//     and back down, and what a failing code_change does there;
//   - a restart on the other release (what people do without hot upgrades,
//     and what release_handler does when an upgrade fails).
//
// Counts failed requests and dropped connections, and reports the suspension
// window of every group (with where its time goes: the journal's steps inside
// the window, and the rest) and the whole transaction's time.
//
//   node bench/erlang-bench.js [--quick] [--rate=N] [--long-lived=N] [--rounds=N]
//                              [--scenarios=relup,release_handler,restart]
// (after `npm run build`; needs erl and erlc). Everything listens on
// 127.0.0.1; every child process is stopped at the end, by pid.
import { fork } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { CLI, REPO, alive, freePort, onCleanup, round, sleep, summary } from './lib.js';
import { erlangAvailable, startErlangNode } from '../dist/runtime/erlang/erlang-driver.js';
import { Connection } from '../dist/client/connection.js';

const GENERATOR = fileURLToPath(new URL('./erlang-load-generator.js', import.meta.url));
const load1 = () => loadavg().map((x) => round(x, 2));

/** The goals of issue 10's "Speed". */
export const GOALS = { failed: 0, dropped: 0, suspensionP99Ms: 5 };

export function settingsFor(quick, overrides = {}) {
  const base = quick
    ? { rate: 500, longLived: 200, pool: 8, rounds: 2, settleMs: 1000, openSpreadMs: 300 }
    : { rate: 2000, longLived: 1000, pool: 16, rounds: 5, settleMs: 2000, openSpreadMs: 1000 };
  // failing: also an upgrade whose code_change raises (relup rolls back in place; release_handler restarts the node).
  return { failing: true, ...base, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
}

/**
 * Start the load generator (a separate process) against 127.0.0.1:port.
 * `reconnect`: reopen closed connections (a restart on the same port).
 */
export async function startLoad(port, settings, { reconnect = false, maxDurationMs = 600_000, prefix = '' } = {}) {
  const child = fork(GENERATOR, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const forget = onCleanup(async () => {
    if (alive(child.pid)) child.kill('SIGKILL');
  });
  const message = (type) =>
    new Promise((resolve, reject) => {
      const on = (m) => {
        if (m.type === type) {
          child.off('message', on);
          resolve(m);
        }
      };
      child.on('message', on);
      child.once('exit', (code) => reject(new Error(`the load generator exited (${code}) before '${type}'`)));
    });
  const started = message('started');
  child.send({ cmd: 'start', config: { port, rate: settings.rate, pool: settings.pool, longLived: settings.longLived, openSpreadMs: settings.openSpreadMs, reconnect, maxDurationMs, prefix } });
  await started;
  // The load generator stands for clients on other machines: with generatorNice it yields the CPU to the service.
  if (settings.generatorNice) setPriority(child.pid, settings.generatorNice);
  return {
    pid: child.pid,
    async stop() {
      const report = message('report');
      child.send({ cmd: 'stop' });
      const r = await report;
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
      forget();
      return r;
    },
  };
}

/** The figures of a load report: counts, latency, and the requests started inside the given windows [from, to]. */
export function loadFigures(report, windows = []) {
  const c = report.counters;
  const inWindows = [];
  for (let i = 0; i < report.starts.length; i++) {
    const t = report.starts[i];
    if (windows.some(([a, b]) => t >= a && t <= b)) inWindows.push(report.latencies[i]);
  }
  return {
    requests: c.rateSent + c.longSent,
    answered: c.rateOk + c.longOk,
    failed: c.rateFailed + c.longFailed,
    rateSent: c.rateSent,
    longSent: c.longSent,
    longLivedOpened: c.longLivedOpen,
    droppedLongLived: report.drops.filter((d) => d.stream === 'long').length,
    droppedPool: report.drops.filter((d) => d.stream === 'rate').length,
    lostOrDoubledScores: c.wrongScores,
    reconnects: c.reconnects,
    firstFailures: report.failures.slice(0, 5).map((f) => `${f.stream}: ${f.reason}`),
    latencyMs: summary(report.latencies),
    duringChangesLatencyMs: summary(inWindows),
  };
}

async function boot(dir, version, stateDir, port, env) {
  const socket = join(dir, `${version}-${Date.now()}.sock`);
  const node = await startErlangNode({ release: join(dir, 'releases', version), socket, stateDir, config: { port }, env });
  const forget = onCleanup(async () => {
    if (alive(node.pid)) node.child.kill('SIGKILL');
    await node.child;
  });
  const c = await Connection.open({ kind: 'unix', path: socket });
  const bound = await c.request('invoke', { module: 'chat_server', function: 'port', args: [] });
  c.close();
  return {
    node,
    port: bound,
    socket,
    async stop() {
      node.child.kill('SIGTERM');
      await node.child;
      forget();
    },
  };
}

/**
 * Where a suspension window's time goes: the journal's steps from the
 * group's `suspend` to the last step (the commit), by step, and the rest —
 * between steps (events sent to the client, the evaluator's bookkeeping,
 * waiting for a scheduler) and after the last step (resuming).
 */
export function windowBreakdown(outcome) {
  const out = [];
  for (const g of outcome.groups ?? []) {
    if (typeof g.suspensionMs !== 'number') continue;
    const first = outcome.journal.findIndex((j) => j.op === 'suspend' && g.processes.includes(j.target));
    if (first < 0) continue;
    const steps = {};
    let inSteps = 0;
    for (const j of outcome.journal.slice(first)) {
      // The commit's target is the version: one key for both directions.
      const key = j.op === 'commit' ? 'commit (durable writes)' : `${j.op} ${j.target}`.trim();
      steps[key] = (steps[key] ?? 0) + j.durationMs;
      inSteps += j.durationMs;
    }
    out.push({ group: g.id, windowMs: g.suspensionMs, steps, outsideStepsMs: g.suspensionMs - inSteps });
  }
  return out;
}

/** p50 / p99 / max of every part of a list of breakdowns. */
export function breakdownSummary(breakdowns) {
  const keys = [...new Set(breakdowns.flatMap((b) => Object.keys(b.steps)))];
  const parts = { window: summary(breakdowns.map((b) => b.windowMs)) };
  for (const k of keys) parts[k] = summary(breakdowns.map((b) => b.steps[k] ?? 0));
  parts['outside the steps'] = summary(breakdowns.map((b) => b.outsideStepsMs));
  return parts;
}

async function relupCli(dir, socket, args, { exitCode = 0 } = {}) {
  const t0 = performance.timeOrigin + performance.now();
  const r = await execa('node', [CLI, ...args, '--target', socket, '--json'], { cwd: dir, env: { NO_COLOR: '1' }, reject: false });
  const t1 = performance.timeOrigin + performance.now();
  if (r.exitCode !== exitCode) throw new Error(`relup ${args.join(' ')} failed (exit ${r.exitCode}): ${r.stderr}${r.stdout}`);
  const json = JSON.parse(r.stdout);
  const outcome = json.hops?.at(-1)?.outcome ?? json;
  // The transaction ended when the answer left the node: within the CLI's run, at most its exit time.
  return { wallMs: t1 - t0, outcome, window: [t1 - outcome.durationMs - 200, t1] };
}

/** relup: apply 1.1.0, roll back to 1.0.0, `rounds` times, in place, under load. */
export async function relupScenario(dir, settings, { env, expectVariant } = {}) {
  const port = await freePort();
  const node = await boot(dir, '1.0.0', join(dir, 'state-relup'), port, env);
  const gen = await startLoad(node.port, settings);
  const changes = [];
  const started = performance.now();
  let report;
  try {
    await sleep(settings.settleMs);
    for (let i = 0; i < settings.rounds; i++) {
      for (const args of [['apply', '--to', '1.1.0'], ['rollback']]) {
        const loadBefore = load1();
        const r = await relupCli(dir, node.socket, args);
        if (r.outcome.status !== 'committed') throw new Error(`relup ${args.join(' ')}: ${r.outcome.status}: ${r.outcome.message}`);
        if (changes.length === 0 && expectVariant !== undefined && expectVariant !== 'as-is') {
          // bench/erlang-window-bench.js: the changed copy of the agent is the code that ran (relup_txn is loaded by the first apply), or the figures mean nothing.
          const c = await Connection.open({ kind: 'unix', path: node.socket });
          const ran = await c.request('invoke', { module: 'relup_txn', function: 'bench_variant', args: [] }).catch((e) => String(e));
          c.close();
          if (ran !== expectVariant) throw new Error(`the node runs agent variant ${ran}, not ${expectVariant}`);
        }
        changes.push({ change: args[0] === 'apply' ? 'up' : 'down', loadAverage: loadBefore, nodeMs: r.outcome.durationMs, holdMs: r.outcome.holdMs, wallMs: r.wallMs, window: r.window, breakdown: windowBreakdown(r.outcome), journal: r.outcome.journal.map((j) => [j.op, j.target, round(j.durationMs, 3)]) });
        await sleep(settings.settleMs);
      }
    }
  } finally {
    report = await gen.stop();
  }
  // An upgrade that fails after its point of no return (1.2.0: game:code_change/3 raises), under a fresh load (its figures apart).
  let failedUpgrade = null;
  try {
    if (settings.failing) {
      const g2 = await startLoad(node.port, settings, { prefix: 'f' });
      let r2;
      let window;
      try {
        await sleep(settings.settleMs);
        const r = await relupCli(dir, node.socket, ['apply', '--to', '1.2.0'], { exitCode: 1 });
        window = r.window;
        failedUpgrade = { status: r.outcome.status, message: r.outcome.message, nodeMs: r.outcome.durationMs, windows: (r.outcome.groups ?? []).map((g) => g.suspensionMs).filter((x) => typeof x === 'number'), rollback: r.outcome.rollback };
        await sleep(settings.settleMs);
      } finally {
        r2 = await g2.stop();
      }
      failedUpgrade.load = loadFigures(r2, window ? [window] : []);
      failedUpgrade.summary = `${failedUpgrade.status} in place in ${ms(failedUpgrade.nodeMs)} ms: ${failedUpgrade.load.droppedLongLived} connections dropped, ${failedUpgrade.load.failed} requests failed, ${failedUpgrade.load.lostOrDoubledScores} scores lost`;
    }
  } finally {
    await node.stop();
  }
  const breakdowns = changes.flatMap((c) => c.breakdown);
  return {
    seconds: (performance.now() - started) / 1000,
    failedUpgrade,
    load: loadFigures(report, changes.map((c) => c.window)),
    windows: summary(breakdowns.map((b) => b.windowMs)),
    breakdown: breakdownSummary(breakdowns),
    transactionMs: { up: summary(changes.filter((c) => c.change === 'up').map((c) => c.nodeMs)), down: summary(changes.filter((c) => c.change === 'down').map((c) => c.nodeMs)) },
    changes: changes.map(({ window, ...c }) => c),
  };
}

/** The same change by restart: stop the node, start it on the other release on the same port (the clients reconnect; the state is gone). */
export async function restartScenario(dir, settings) {
  const port = await freePort();
  let current = await boot(dir, '1.0.0', join(dir, 'state-restart-a'), port);
  const gen = await startLoad(port, settings, { reconnect: true });
  const changes = [];
  const started = performance.now();
  let report;
  try {
    await sleep(settings.settleMs);
    for (let i = 0; i < settings.rounds * 2; i++) {
      const t0 = performance.timeOrigin + performance.now();
      await current.stop();
      const version = i % 2 === 0 ? '1.1.0' : '1.0.0';
      current = await boot(dir, version, join(dir, `state-restart-${i}`), port);
      const t1 = performance.timeOrigin + performance.now();
      changes.push({ restartMs: t1 - t0, window: [t0, t1] });
      await sleep(settings.settleMs);
    }
  } finally {
    report = await gen.stop();
    await current.stop();
  }
  return { seconds: (performance.now() - started) / 1000, load: loadFigures(report, changes.map((c) => c.window)), restartMs: summary(changes.map((c) => c.restartMs)) };
}

/**
 * releases/1.2.0 and appups/1.2.0.yaml in the bench's copy of the demo:
 * 1.1.0 with a game:code_change/3 that raises going up (the same 1.2.0 the
 * release_handler scenario builds), reached from 1.0.0 by 1.1.0's instructions.
 */
export async function prepareFailingRelease(work) {
  const { failingGame } = await import('./erlang-release-handler-bench.js');
  const to = join(work, 'releases', '1.2.0');
  await cp(join(work, 'releases', '1.1.0'), to, { recursive: true });
  await writeFile(join(to, 'game.erl'), failingGame(await readFile(join(to, 'game.erl'), 'utf8')));
  const yaml = await readFile(join(to, 'release.yaml'), 'utf8');
  if (!/^version: 1\.1\.0$/m.test(yaml)) throw new Error('examples/erlang/releases/1.1.0/release.yaml changed: no `version: 1.1.0` line');
  await writeFile(join(to, 'release.yaml'), yaml.replace(/^version: 1\.1\.0$/m, 'version: 1.2.0'));
  const appup = await readFile(join(work, 'appups', '1.1.0.yaml'), 'utf8');
  if (!/^version: 1\.1\.0$/m.test(appup)) throw new Error('examples/erlang/appups/1.1.0.yaml changed: no `version: 1.1.0` line');
  await writeFile(join(work, 'appups', '1.2.0.yaml'), appup.replace(/^version: 1\.1\.0$/m, 'version: 1.2.0'));
}

function row(name, r, extra) {
  return { scenario: name, requests: r.load.requests, failed: r.load.failed, droppedLongLived: r.load.droppedLongLived, lostOrDoubledScores: r.load.lostOrDoubledScores, latencyP99Ms: r.load.latencyMs.p99, latencyMaxMs: r.load.latencyMs.max, ...extra };
}

const ms = (x) => (x === null || x === undefined ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** Markdown lines: the three ways side by side, beside the goals. */
export function erlangSummaryLines(result) {
  const s = result.settings;
  const out = [`### Erlang node under load (${s.rate} req/s + ${s.longLived} long-lived connections at 1 msg/s; ${s.rounds} round(s) of 1.0.0 → 1.1.0 → 1.0.0; OTP ${result.otp}; load average ${result.loadAverageAtStart.join(', ')} at start, ${(result.loadAverageAtEnd ?? []).join(', ')} at end)`, ''];
  out.push('| | failed requests (goal 0) | dropped long-lived connections (goal 0) | scores seen lost or doubled | suspension window p50 / p99 / max ms (goal p99 ≤ 5) | change time p50 ms | latency p99 / max ms |', '|---|---|---|---|---|---|---|');
  for (const r of result.rows) {
    out.push(`| ${r.scenario} | ${r.failed} | ${r.droppedLongLived} | ${r.lostOrDoubledScores} | ${r.suspension ?? '–'} | ${r.changeMs ?? '–'} | ${ms(r.latencyP99Ms)} / ${ms(r.latencyMaxMs)} |`);
  }
  const fr = result.relup?.failedUpgrade;
  const fh = result.releaseHandler?.failedUpgrade;
  if (fr || fh) {
    out.push('', 'An upgrade that fails after its point of no return (1.2.0: 1.1.0 with a game:code_change/3 that raises), from 1.0.0, under the same load (fresh players):', '');
    out.push('| | outcome | failed requests | dropped long-lived connections | scores seen lost or doubled | latency max ms | back in service |', '|---|---|---|---|---|---|---|');
    if (fr) out.push(`| relup apply --to 1.2.0 | ${fr.status} in ${ms(fr.nodeMs)} ms (game suspended ${fr.windows.map(ms).join(', ')} ms) | ${fr.load.failed} | ${fr.load.droppedLongLived} | ${fr.load.lostOrDoubledScores} | ${ms(fr.load.latencyMs.max)} | never out |`);
    if (fh) out.push(`| release_handler:install_release("1.2.0") | ${fh.installResult?.slice(0, 40) ?? '–'}…, then ${fh.how} | ${fh.load.failed} | ${fh.load.droppedLongLived} | ${fh.load.lostOrDoubledScores} | ${ms(fh.load.latencyMs.max)} | ${fh.backInServiceMs === null ? '–' : `${ms(fh.backInServiceMs)} ms after install_release`} |`);
    if (fr && fr.status !== 'rolled-back') out.push('', `relup's outcome: ${fr.message.slice(0, 400)}${fr.message.length > 400 ? '…' : ''}`);
  }
  const b = result.relup?.breakdown;
  if (b) {
    out.push('', `relup suspension window (${b.window.count} windows), where the time goes (the journal's steps inside the window; "outside the steps" is the evaluator between steps and the resume), p50 / p99 / max ms:`, '');
    out.push('| part | p50 | p99 | max |', '|---|---|---|---|');
    for (const [k, v] of Object.entries(b)) out.push(`| ${k} | ${ms(v.p50)} | ${ms(v.p99)} | ${ms(v.max)} |`);
  }
  const rh = result.releaseHandler;
  if (rh?.steps) out.push('', `release_handler: systools build of 3 releases ${ms(rh.buildMs)} ms; unpack_release ${ms(rh.steps[0].ms)} ms; the game gen_server's suspension timed with a receive trace of its sys suspend/resume messages.`);
  for (const n of result.notes ?? []) out.push('', n);
  return out;
}

export async function runErlangBench({ quick = false, log = () => undefined, overrides = {}, scenarios = ['relup', 'release_handler', 'restart'] } = {}) {
  const settings = settingsFor(quick, overrides);
  const available = await erlangAvailable();
  if (!available.ok) throw new Error(`${available.reason}; install: ${available.install}`);
  const work = await mkdtemp(join(tmpdir(), 'relup-erlang-bench-'));
  const result = { otp: available.version, settings, loadAverageAtStart: load1(), rows: [], notes: [] };
  try {
    await cp(join(REPO, 'examples', 'erlang'), work, { recursive: true });
    await prepareFailingRelease(work);
    if (scenarios.includes('relup')) {
      log(`erlang: relup apply + rollback under load (load average ${load1().join(', ')})`);
      const relup = await relupScenario(work, settings);
      result.relup = relup;
      const w = relup.windows;
      result.rows.push(row('relup apply + rollback (in place)', relup, { suspension: `${ms(w.p50)} / ${ms(w.p99)} / ${ms(w.max)}`, suspensionP99Ms: w.p99, changeMs: `${ms(relup.transactionMs.up.p50)} up, ${ms(relup.transactionMs.down.p50)} down (node)`, }));
    }
    if (scenarios.includes('release_handler')) {
      log(`erlang: OTP release_handler install_release up + back down under load (load average ${load1().join(', ')})`);
      const { releaseHandlerScenario } = await import('./erlang-release-handler-bench.js');
      try {
        const rh = await releaseHandlerScenario(work, settings, { log, startLoad, loadFigures });
        result.releaseHandler = rh;
        const w = rh.suspendMs;
        result.rows.push(row('OTP release_handler install_release (up, back down)', rh, { suspension: w ? `${ms(w.p50)} / ${ms(w.p99)} / ${ms(w.max)}` : '–', suspensionP99Ms: w?.p99 ?? null, changeMs: `${ms(rh.installMs.up.p50)} up, ${ms(rh.installMs.down.p50)} down (install_release)` }));
      } catch (e) {
        // An honest partial result: say where it stopped.
        result.releaseHandler = { error: String(e?.stack ?? e) };
        result.notes.push(`**release_handler scenario failed**: ${String(e?.message ?? e).split('\n')[0]}`);
      }
    }
    if (scenarios.includes('restart')) {
      log(`erlang: restart on the other release under load (load average ${load1().join(', ')})`);
      const restart = await restartScenario(work, settings);
      result.restart = restart;
      result.rows.push(row('restart on the other release (same port)', restart, { changeMs: `${ms(restart.restartMs.p50)} (stop + start)` }));
    }
    result.loadAverageAtEnd = load1();
    result.goals = {
      failed: { goal: 0, value: result.relup?.load.failed ?? null, met: result.relup ? result.relup.load.failed === 0 : null },
      dropped: { goal: 0, value: result.relup?.load.droppedLongLived ?? null, met: result.relup ? result.relup.load.droppedLongLived === 0 : null },
      suspensionP99Ms: { goal: GOALS.suspensionP99Ms, value: result.relup?.windows.p99 ?? null, met: result.relup ? result.relup.windows.p99 <= GOALS.suspensionP99Ms : null },
    };
    if (result.relup?.failedUpgrade) {
      result.goals.inPlaceRollback = { goal: 'rolled-back', value: result.relup.failedUpgrade.status, met: result.relup.failedUpgrade.status === 'rolled-back', releaseHandler: result.releaseHandler?.failedUpgrade?.summary ?? null };
    }
    result.summary = erlangSummaryLines(result);
    for (const line of result.summary) log(`  ${line}`);
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && process.argv[1].endsWith('erlang-bench.js')) {
  const argv = process.argv.slice(2);
  const opt = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const num = (name) => (opt(name) === undefined ? undefined : Number(opt(name)));
  const { runCleanups } = await import('./lib.js');
  try {
    const result = await runErlangBench({
      quick: argv.includes('--quick'),
      log: (l) => process.stderr.write(`${l}\n`),
      overrides: { rate: num('rate'), longLived: num('long-lived'), rounds: num('rounds'), settleMs: num('settle-ms') },
      scenarios: opt('scenarios')?.split(','),
    });
    if (argv.includes('--json')) console.log(JSON.stringify(result, null, 2));
  } finally {
    await runCleanups();
  }
}
