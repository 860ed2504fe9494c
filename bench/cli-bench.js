// Whole-process times of the CLI as shipped (package.json bin: the esbuild
// bundle's launcher, dist/cli/bundle/relup.js), as ratios to `node -e 0`
// measured side by side: every run of a command is paired with a run of
// `node -e 0` right before it, so both see the same machine (absolute times
// drift on a shared machine). Issue 14's goals: `--help` ≤ 1.5×, `plan` on
// the demo ≤ 2×, `apply` of a one-module change to a warm node ≤ 2.5×,
// `status` ≤ 2×. Median over the runs, after one unmeasured warm-up pair.
//
// The warm-up pair also writes the CLI's V8 code cache for the command
// (src/cli/code-cache.ts), so the figures judged are those of every run after
// the first; `planFirstRun` is the first run after a build: each of its runs
// starts from an empty cache directory (RELUP_CODE_CACHE_DIR) and writes it.
// RELUP_BENCH_CLI=<launcher> measures another build of the CLI (a before/after
// comparison against a copy of an older dist/cli/bundle/ kept beside it).
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Connection } from '../dist/client/connection.js';
import { CLI as SHIPPED_CLI, REPO, assertRunning, median, onCleanup, round, sleep, waitGone } from './lib.js';

const CLI = process.env.RELUP_BENCH_CLI ?? SHIPPED_CLI;

/** Wall time of one run of `node <argv>`, in ms; rejects on a non-zero exit. */
function timeOnce(args, cwd, argv = [CLI, ...args], env = {}) {
  assertRunning();
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, argv, { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`relup ${args.join(' ')} exited ${code}: ${err.trim()}`));
    });
  });
}

const NODE_E_0 = ['-e', '0'];

/** `runs` pairs (node -e 0, then the command), after one unmeasured pair (file cache). */
async function pairedRuns(args, cwd, runs, between = async () => {}) {
  const floor = [];
  const times = [];
  for (let i = 0; i <= runs; i++) {
    const f = await timeOnce([], cwd, NODE_E_0);
    const t = await timeOnce(args, cwd);
    await between();
    if (i > 0) {
      floor.push(f);
      times.push(t);
    }
  }
  return { floor, times };
}

const stats = (command, { floor, times }, goalRatio) => {
  const m = median(times);
  const f = median(floor);
  const ratio = round(m / f, 2);
  return { command, runs: times.length, medianMs: round(m, 1), minMs: round(Math.min(...times), 1), maxMs: round(Math.max(...times), 1), nodeMedianMs: round(f, 1), ratio, goalRatio, met: goalRatio === null ? null : ratio <= goalRatio };
};

/** A project with demo 1.0.0 and 1.0.1 that differ in one module (route.js), and its appup. */
async function oneModuleProject(dir) {
  for (const version of ['1.0.0', '1.0.1']) {
    const to = join(dir, 'releases', version);
    await cp(join(REPO, 'releases', '1.2.2'), to, { recursive: true });
    const yaml = await readFile(join(to, 'release.yaml'), 'utf8');
    await writeFile(join(to, 'release.yaml'), yaml.replace(/^version: .*$/m, `version: ${version}`));
  }
  const route = join(dir, 'releases', '1.0.1', 'route.js');
  await writeFile(route, `${await readFile(route, 'utf8')}\n// 1.0.1: a one-line change of one module.\n`);
  await mkdir(join(dir, 'appups'));
  await writeFile(join(dir, 'appups', '1.0.1.yaml'), 'version: 1.0.1\nup:\n  - from: 1.0.0\n    instructions:\n      - update: route\ndown:\n  - to: 1.0.0\n    instructions:\n      - update: route\n');
}

async function applyTimes(runs) {
  assertRunning();
  const dir = await mkdtemp(join(tmpdir(), 'relup-bench-cli-'));
  await oneModuleProject(dir);
  const socket = join(dir, 'node.sock');
  const node = execa(process.execPath, [CLI, 'node', 'start', '--release', join(dir, 'releases', '1.0.0'), '--socket', socket, '--state-dir', join(dir, 'state'), '--port', '0'], { cwd: dir, reject: false, stdin: 'ignore', all: true, env: { NO_COLOR: '1' } });
  let output = '';
  node.all?.on('data', (d) => (output = (output + d.toString()).slice(-4000)));
  const stop = async () => {
    if (node.exitCode === null) node.kill('SIGTERM');
    await Promise.race([node, sleep(5000)]);
    if (node.exitCode === null) node.kill('SIGKILL');
    await waitGone([node.pid], 2000);
    await rm(dir, { recursive: true, force: true });
  };
  const unregister = onCleanup(stop);
  try {
    for (let i = 0; ; i++) {
      try {
        (await Connection.open({ kind: 'unix', path: socket }, { timeoutMs: 1000 })).close();
        break;
      } catch (e) {
        if (i > 300 || node.exitCode !== null) throw new Error(`the CLI bench node did not start: ${e.message}\n${output}`);
        await sleep(20);
      }
    }
    const up = ['apply', '--target', socket, '--to', '1.0.1'];
    const down = ['rollback', '--target', socket];
    // Warm the node (and the file cache): one round trip before measuring.
    await timeOnce(up, dir);
    await timeOnce(down, dir);
    // Each apply is followed (unmeasured in the apply pair) by the rollback that makes the next apply possible.
    const applies = await pairedRuns(up, dir, runs, () => timeOnce(down, dir));
    const status = await pairedRuns(['status', '--target', socket], dir, runs);
    return { applies, status };
  } finally {
    await stop();
    unregister();
  }
}

/** Pairs like pairedRuns, each run of the command with a new, empty code cache directory: the first run after a build. */
async function firstRuns(args, cwd, runs) {
  const floor = [];
  const times = [];
  const dir = await mkdtemp(join(tmpdir(), 'relup-bench-cache-'));
  try {
    for (let i = 0; i < runs; i++) {
      floor.push(await timeOnce([], cwd, NODE_E_0));
      times.push(await timeOnce(args, cwd, [CLI, ...args], { RELUP_CODE_CACHE_DIR: join(dir, String(i)) }));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { floor, times };
}

export async function runCliBench({ quick = false } = {}) {
  const runs = quick ? 3 : 15;
  const help = await pairedRuns(['--help'], REPO, runs);
  const planTimes = await pairedRuns(['plan', '1.2.2', '1.2.3'], REPO, runs);
  const planFirst = await firstRuns(['plan', '1.2.2', '1.2.3'], REPO, quick ? 2 : 5);
  const { applies, status } = await applyTimes(quick ? 2 : 10);
  return {
    method: `wall time from spawn to exit of \`node ${CLI.slice(REPO.length)} …\` (package.json bin), each run paired with a run of \`node -e 0\` just before it; medians; ratio = command / node -e 0`,
    help: stats('relup --help', help, 1.5),
    plan: stats('relup plan 1.2.2 1.2.3 (the demo)', planTimes, 2),
    // No goal of its own: what the first run after a build pays to compile and write its cache.
    planFirstRun: stats('relup plan 1.2.2 1.2.3, first run after a build (empty code cache)', planFirst, null),
    apply: stats('relup apply --target <socket> --to 1.0.1 (one module changed, warm node)', applies, 2.5),
    status: stats('relup status --target <socket> (warm node)', status, 2),
  };
}
