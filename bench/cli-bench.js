// Whole-process times of the CLI (issue: `relup --help` < 150 ms,
// `relup plan 1.2.2 1.2.3` < 500 ms, `relup apply` of a one-module change on a
// warm node < 200 ms): wall time from spawn to exit of `node dist/cli/main.js …`,
// median over several runs after one unmeasured warm-up run (hyperfine's method,
// without hyperfine).
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Connection } from '../dist/client/connection.js';
import { CLI, REPO, assertRunning, median, onCleanup, round, sleep, waitGone } from './lib.js';

/** Wall time of one run, in ms; rejects on a non-zero exit. */
function timeOnce(args, cwd) {
  assertRunning();
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
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

async function timeRuns(args, cwd, runs) {
  await timeOnce(args, cwd); // warm-up: file cache
  const times = [];
  for (let i = 0; i < runs; i++) times.push(await timeOnce(args, cwd));
  return times;
}

const stats = (times, goalMs) => {
  const m = median(times);
  const out = { runs: times.length, medianMs: round(m, 1), minMs: round(Math.min(...times), 1), maxMs: round(Math.max(...times), 1) };
  return goalMs === undefined ? out : { ...out, goalMs, met: m < goalMs };
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
    const applies = [];
    const rollbacks = [];
    for (let i = 0; i < runs; i++) {
      applies.push(await timeOnce(up, dir));
      rollbacks.push(await timeOnce(down, dir));
    }
    return { applies, rollbacks };
  } finally {
    await stop();
    unregister();
  }
}

export async function runCliBench({ quick = false } = {}) {
  const runs = quick ? 3 : 15;
  const help = await timeRuns(['--help'], REPO, runs);
  const planTimes = await timeRuns(['plan', '1.2.2', '1.2.3'], REPO, runs);
  const { applies, rollbacks } = await applyTimes(quick ? 2 : 10);
  return {
    method: 'wall time from spawn to exit of `node dist/cli/main.js …`; median after one unmeasured warm-up run',
    help: { command: 'relup --help', ...stats(help, 150) },
    plan: { command: 'relup plan 1.2.2 1.2.3 (the demo)', ...stats(planTimes, 500) },
    apply: { command: 'relup apply --target <socket> --to 1.0.1 (one module changed, warm node)', ...stats(applies, 200) },
    rollback: { command: 'relup rollback --target <socket> (the same change, down)', ...stats(rollbacks, 200) },
    nodeStartup: { command: 'node -e 0 (the floor: Node.js itself)', ...stats(await floor(runs)) },
  };
}

/** How long Node.js takes to start and exit doing nothing, for scale. */
async function floor(runs) {
  const times = [];
  for (let i = 0; i <= runs; i++) {
    assertRunning();
    const t0 = process.hrtime.bigint();
    await new Promise((resolve, reject) => spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).on('close', resolve).on('error', reject));
    if (i > 0) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times;
}
