// Memory across upgrades (issue: "memory across 1,000 upgrades").
//
// relup: one real node process (`node --expose-gc dist/cli/main.js node start`)
// runs a release with one ~100 KB module and a process. Each cycle is an
// upgrade to a new version with new code (1.0.0 → 1.0.N, planned here and sent
// over the control socket with the bundle, as `relup apply` does) and the
// rollback to 1.0.0 through the down path. The node's heap after forced GCs
// and its RSS are read at cycles 10, 100 and 1,000 (`invoke` of the module's
// `memory()` probe, which runs gc() in the node).
//
// Beside it, the ES-module approach: `import()` of a rewritten ~100 KB module
// file with a query string, in its own `node --expose-gc` process
// (bench/esm-reimport-child.js).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { Connection } from '../dist/client/connection.js';
import { plan } from '../dist/planner/plan.js';
import { bundleBytes } from '../dist/release/bundle-bytes.js';
import { appup, image } from './mem-release.js';
import { CLI, REPO, assertRunning, onCleanup, round, sleep, waitGone } from './lib.js';

const ESM_CHILD = fileURLToPath(new URL('./esm-reimport-child.js', import.meta.url));
const RUNTIME_CHILD = fileURLToPath(new URL('./runtime-memory-child.js', import.meta.url));
const MB = 1024 * 1024;

const mb = (bytes) => round(bytes / MB, 2);

function describe(points, checkpoints, unitsPerCycle) {
  const at = (c) => points.find((p) => p.cycle === c);
  const first = at(checkpoints[0]);
  const last = at(checkpoints.at(-1));
  const span = last.cycle - first.cycle;
  return {
    points: points.map((p) => ({ cycle: p.cycle, heapMb: mb(p.heapUsed), heapTotalMb: mb(p.heapTotal), rssMb: mb(p.rss), externalMb: mb(p.external) })),
    from: first.cycle,
    to: last.cycle,
    heapGrowthMb: mb(last.heapUsed - first.heapUsed),
    rssGrowthMb: mb(last.rss - first.rss),
    heapPerReloadKb: span > 0 ? round((last.heapUsed - first.heapUsed) / (span * unitsPerCycle) / 1024, 2) : null,
    rssPerReloadKb: span > 0 ? round((last.rss - first.rss) / (span * unitsPerCycle) / 1024, 2) : null,
  };
}

async function relupMemory(cycles, checkpoints, log, nodeFlags = []) {
  assertRunning();
  const tmp = await mkdtemp(join(tmpdir(), 'relup-bench-mem-'));
  const base = image('1.0.0', 0);
  const dir0 = join(tmp, 'releases', '1.0.0');
  await mkdir(dir0, { recursive: true });
  for (const [path, bytes] of base.files) await writeFile(join(dir0, path), bytes);
  const socket = join(tmp, 'node.sock');
  const node = execa(process.execPath, ['--expose-gc', ...nodeFlags, CLI, 'node', 'start', '--release', dir0, '--socket', socket, '--state-dir', join(tmp, 'state'), '--port', '0'], { cwd: REPO, reject: false, stdin: 'ignore', all: true, env: { NO_COLOR: '1' } });
  let output = '';
  node.all?.on('data', (d) => (output = (output + d.toString()).slice(-4000)));
  let connection;
  const stop = async () => {
    connection?.close();
    if (node.exitCode === null) node.kill('SIGTERM');
    await Promise.race([node, sleep(5000)]);
    if (node.exitCode === null) node.kill('SIGKILL');
    await waitGone([node.pid], 2000);
    await rm(tmp, { recursive: true, force: true });
  };
  const unregister = onCleanup(stop);
  try {
    for (let i = 0; ; i++) {
      try {
        connection = await Connection.open({ kind: 'unix', path: socket }, { timeoutMs: 1000 });
        break;
      } catch (e) {
        if (i > 300 || node.exitCode !== null) throw new Error(`memory bench node did not start: ${e.message}\n${output}`);
        await sleep(20);
      }
    }
    const baseBundle = (await bundleBytes(base.release, base.files)).bytes.toString('base64');
    const memory = async (cycle) => ({ cycle, ...(await connection.request('invoke', { module: 'big', function: 'memory', args: [] })) });
    const apply = async (from, to, appups, bundle) => {
      const planned = plan({ from, to, appups });
      if (planned.script === undefined) throw new Error(`memory bench plan ${from.version} → ${to.version}: ${JSON.stringify(planned.diagnostics)}`);
      const outcome = await connection.request('apply', { script: planned.script, bundle, permanent: true });
      if (outcome.status !== 'committed') throw new Error(`memory bench apply ${from.version} → ${to.version}: ${outcome.status} ${outcome.message}`);
      return outcome;
    };
    const points = [await memory(0)];
    const started = performance.now();
    let applyMs = 0;
    for (let c = 1; c <= cycles; c++) {
      assertRunning();
      const version = `1.0.${c}`;
      const next = image(version, c);
      const appups = appup(version);
      const bundle = (await bundleBytes(next.release, next.files)).bytes.toString('base64');
      const t0 = performance.now();
      await apply(base.release, next.release, appups, bundle);
      const up = await connection.request('call', { process: 'worker', message: 3 });
      await apply(next.release, base.release, appups, baseBundle);
      applyMs += performance.now() - t0;
      const down = await connection.request('call', { process: 'worker', message: 3 });
      if (up !== 4 * c || down !== 0) throw new Error(`memory bench cycle ${c}: the worker answered ${up} on 1.0.${c} and ${down} on 1.0.0`);
      if (checkpoints.includes(c)) {
        points.push(await memory(c));
        log(`    relup node${nodeFlags.length ? ` (${nodeFlags.join(' ')})` : ''} cycle ${c}: heap ${mb(points.at(-1).heapUsed)} MB, rss ${mb(points.at(-1).rss)} MB`);
      }
    }
    const states = await connection.request('states', {});
    const status = await connection.request('status', {});
    if (states.modules.big.upgrades !== 2 * cycles) throw new Error(`memory bench: module state counted ${states.modules.big.upgrades} migrations, expected ${2 * cycles}`);
    return {
      cycles,
      applies: 2 * cycles,
      nodeFlags: ['--expose-gc', ...nodeFlags],
      definition: 'one cycle = upgrade 1.0.0 → 1.0.N (new ~100 KB code) + rollback to 1.0.0; both over the control socket with the bundle',
      moduleBytes: base.files.get('big.js').length,
      seconds: round((performance.now() - started) / 1000, 1),
      medianishApplyMs: round(applyMs / (2 * cycles), 2),
      stateAfter: { upgradesCounted: states.modules.big.upgrades, expected: 2 * cycles },
      nodeHistory: { previousReleases: status.previous.length },
      ...describe(points, checkpoints, 2),
    };
  } finally {
    await stop();
    unregister();
  }
}

/** A `node --expose-gc` child that prints one JSON line. */
async function gcChild(script, count, checkpoints) {
  assertRunning();
  const dir = await mkdtemp(join(tmpdir(), 'relup-bench-child-'));
  const child = execa(process.execPath, ['--expose-gc', script, String(count), checkpoints.join(','), dir], { cwd: REPO, reject: false, timeout: 600_000 });
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await waitGone([child.pid], 2000);
    await rm(dir, { recursive: true, force: true });
  };
  const unregister = onCleanup(stop);
  try {
    const r = await child;
    if (r.exitCode !== 0) throw new Error(`${script} failed (exit ${r.exitCode}): ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').at(-1));
  } finally {
    unregister();
    await stop();
  }
}

async function esmMemory(reloads, checkpoints) {
  const out = await gcChild(ESM_CHILD, reloads, checkpoints);
  return { reloads, definition: 'one reload = rewrite the ~100 KB file with new code + import(url?v=N)', moduleBytes: out.moduleBytes, seconds: round(out.seconds, 1), ...describe(out.points, checkpoints, 1) };
}

async function runtimeMemory(cycles, checkpoints) {
  const out = await gcChild(RUNTIME_CHILD, cycles, checkpoints);
  return { cycles, applies: 2 * cycles, definition: 'the same cycles with startNode in-process: the runtime without the control server and state directory', seconds: round(out.seconds, 1), ...describe(out.points, checkpoints, 2) };
}

/**
 * Issue 14's goals, over 10,000 cycles (`--long`): heap growth from cycle 100 to
 * the last < 2 MB, RSS growth < 10 MB, the node with its default flags. Shorter
 * runs are judged by the same bounds over their own span (from cycle 100, or
 * from 10 in a quick run).
 */
const HEAP_GOAL_MB = 2;
const RSS_GOAL_MB = 10;

export async function runMemoryBench({ quick = false, long = false, cycles, log = () => {} } = {}) {
  const n = cycles ?? (long ? 10_000 : quick ? 100 : 1000);
  const checkpoints = [10, 100, 250, 500, 1000, 2500, 5000, 7500, 10_000].filter((c) => c <= n);
  if (!checkpoints.includes(n)) checkpoints.push(n);
  const from = checkpoints.includes(100) && n > 100 ? 100 : checkpoints[0];
  // The children are independent and measure memory, not time: run them side by side. Full run: also
  // the same node with V8's young generation capped at its initial size, to show where RSS growth comes from.
  // The ES-module child is left out of long runs: it leaks by design (~1.4 MB per reload), 10,000 reloads would not fit.
  const [relup, runtime, esm, capped] = await Promise.all([
    relupMemory(n, checkpoints, log),
    runtimeMemory(n, checkpoints),
    long ? undefined : esmMemory(Math.min(n, 1000), checkpoints.filter((c) => c <= 1000)),
    quick || long ? undefined : relupMemory(n, checkpoints, log, ['--max-semi-space-size=8']),
  ]);
  const growth = (r, key) => {
    const a = r.points.find((p) => p.cycle === from);
    const b = r.points.find((p) => p.cycle === n);
    return round(b[key] - a[key], 2);
  };
  const heapGrowthMb = growth(relup, 'heapMb');
  const rssGrowthMb = growth(relup, 'rssMb');
  return {
    cycles: n,
    long,
    checkpoints,
    relup,
    ...(capped === undefined ? {} : { relupSemiSpace8: capped }),
    runtimeOnly: runtime,
    ...(esm === undefined ? {} : { esmReimport: esm }),
    goal: {
      heapGoalMb: HEAP_GOAL_MB,
      rssGoalMb: RSS_GOAL_MB,
      from,
      to: n,
      heapGrowthMb,
      rssGrowthMb,
      met: heapGrowthMb < HEAP_GOAL_MB,
      rssMet: rssGrowthMb < RSS_GOAL_MB,
      ...(capped === undefined ? {} : { rssGrowthSemiSpace8Mb: growth(capped, 'rssMb'), rssSemiSpace8Met: growth(capped, 'rssMb') < RSS_GOAL_MB }),
    },
  };
}
