// A live upgrade of a big release (issue 14 item 4): 1,000 modules, 100 of them
// changed, 1,000 processes (one per module, so each changed module has a process
// to suspend and migrate: 100 suspend groups). A real node process
// (`relup node start`, the bundled CLI) is upgraded and rolled back over its
// control socket with the bundle, as `relup apply` does. Reported: bundle size,
// pack time, the apply request as the client sees it, the node's transaction,
// staging (the stage steps), what is neither (upload, unpack, verify, the fsynced
// bundle and history writes), every group's suspension window, and the hold.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseAppup } from '../dist/appup/parse-appup.js';
import { Connection } from '../dist/client/connection.js';
import { plan } from '../dist/planner/plan.js';
import { bundleBytes } from '../dist/release/bundle-bytes.js';
import { releaseFromFiles } from '../dist/release/release-from-files.js';
import { CLI, REPO, assertRunning, median, onCleanup, round, sleep, summary, waitGone } from './lib.js';

const name = (i) => `m${String(i).padStart(4, '0')}`;

function moduleSource(i, version) {
  // ~1.5 KB of code per module: a gen_server with a little state and a migration each way.
  const helpers = Array.from({ length: 12 }, (_, k) => `function h${k}(x) { return (x * ${k + 3} + ${i}) % 1009; }`).join('\n');
  return `// ${name(i)} @ ${version}
${helpers}
exports.init = () => ({ n: 0, items: [${Array.from({ length: 8 }, (_, k) => `{ id: ${k}, v: h${k}(${k}) }`).join(', ')}] });
exports.handleCall = (msg, state) => { state.n += typeof msg === 'number' ? msg : 1; return { reply: state.n, state }; };
exports.handleCast = (msg, state) => state;
exports.up = (state) => { state.version = 2; return state; };
exports.down = (state) => { delete state.version; return state; };
`;
}

export function bigRelease(version, { modules = 1000, changedEvery = 10 } = {}) {
  const files = new Map();
  const lines = [`name: big\nversion: ${version}\nruntime: node\nmodules:`];
  for (let i = 0; i < modules; i++) {
    const changed = version !== '1.0.0' && i % changedEvery === 0;
    files.set(`${name(i)}.js`, Buffer.from(moduleSource(i, changed ? version : '1.0.0')));
    lines.push(`  ${name(i)}: { file: ${name(i)}.js, exports: [init, handleCall, handleCast, up, down] }`);
  }
  lines.push('processes:');
  for (let i = 0; i < modules; i++) lines.push(`  p${name(i)}: { module: ${name(i)} }`);
  files.set('release.yaml', Buffer.from(`${lines.join('\n')}\n`));
  const parsed = releaseFromFiles({ files, kind: 'dir', origin: `big-${version}` }, `big-${version}`);
  if (parsed.value === undefined) throw new Error(`big release ${version}: ${JSON.stringify(parsed.diagnostics.slice(0, 3))}`);
  return { release: parsed.value, files };
}

function bigAppup(version, { modules = 1000, changedEvery = 10 } = {}) {
  const changed = Array.from({ length: modules }, (_, i) => i).filter((i) => i % changedEvery === 0);
  const instr = (migration) => changed.map((i) => `      - update: ${name(i)}\n        migration: ${migration}`).join('\n');
  const yaml = `version: ${version}\nup:\n  - from: 1.0.0\n    instructions:\n${instr('up')}\ndown:\n  - to: 1.0.0\n    instructions:\n${instr('down')}\n`;
  const parsed = parseAppup(yaml, `appups/${version}.yaml`);
  if (parsed.value === undefined) throw new Error(`big appup: ${JSON.stringify(parsed.diagnostics.slice(0, 3))}`);
  return new Map([[version, parsed.value]]);
}

export async function runBigReleaseBench({ quick = false, log = () => {} } = {}) {
  assertRunning();
  const rounds = quick ? 1 : 3;
  const tmp = await mkdtemp(join(tmpdir(), 'relup-bench-big-'));
  const base = bigRelease('1.0.0');
  const next = bigRelease('1.0.1');
  const appups = bigAppup('1.0.1');
  const dir0 = join(tmp, 'releases', '1.0.0');
  await mkdir(dir0, { recursive: true });
  for (const [path, bytes] of base.files) await writeFile(join(dir0, path), bytes);
  const socket = join(tmp, 'node.sock');
  const node = execa(process.execPath, [CLI, 'node', 'start', '--release', dir0, '--socket', socket, '--state-dir', join(tmp, 'state'), '--port', '0'], { cwd: REPO, reject: false, stdin: 'ignore', all: true, env: { NO_COLOR: '1' } });
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
        if (i > 1500 || node.exitCode !== null) throw new Error(`the big-release node did not start: ${e.message}\n${output}`);
        await sleep(20);
      }
    }
    const t0 = performance.now();
    const upBundle = (await bundleBytes(next.release, next.files)).bytes;
    const packMs = performance.now() - t0;
    const downBundle = (await bundleBytes(base.release, base.files)).bytes;
    const up = plan({ from: base.release, to: next.release, appups }).script;
    const down = plan({ from: next.release, to: base.release, appups }).script;
    if (up === undefined || down === undefined) throw new Error('the big release does not plan');
    const samples = [];
    for (let r = 0; r < rounds; r++) {
      for (const [script, bytes] of [[up, upBundle], [down, downBundle]]) {
        assertRunning();
        const s = performance.now();
        const outcome = await connection.request('apply', { script, bundle: bytes.toString('base64'), permanent: true });
        const requestMs = performance.now() - s;
        if (outcome.status !== 'committed') throw new Error(`big release ${script.direction}: ${outcome.status} ${outcome.message}`);
        const windows = outcome.groups.map((g) => g.suspensionMs).filter((x) => x !== null);
        const stagingMs = outcome.journal.filter((j) => j.op === 'stage').reduce((n, j) => n + j.durationMs, 0);
        // Where the transaction's time went, by kind of step (the floor, docs/performance.md).
        const byOp = {};
        for (const j of outcome.journal) byOp[j.op] = round((byOp[j.op] ?? 0) + j.durationMs, 2);
        samples.push({ direction: script.direction, requestMs, transactionMs: outcome.durationMs, stagingMs, outsideMs: requestMs - outcome.durationMs, holdMs: outcome.holdMs, windows, byOp });
        log(`    big release ${script.direction}: request ${round(requestMs, 1)} ms, transaction ${round(outcome.durationMs, 1)} ms (staging ${round(stagingMs, 1)}), ${windows.length} windows, max ${round(Math.max(...windows), 2)} ms, hold ${round(outcome.holdMs, 1)} ms; by step: ${Object.entries(samples.at(-1).byOp).sort((a, b) => b[1] - a[1]).slice(0, 5).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      }
    }
    const answer = await connection.request('call', { process: 'pm0000', message: 1 });
    if (typeof answer !== 'number') throw new Error(`pm0000 answered ${JSON.stringify(answer)}`);
    const ups = samples.filter((s) => s.direction === 'up');
    const med = (k, list = samples) => round(median(list.map((s) => s[k])), 1);
    const allWindows = samples.flatMap((s) => s.windows);
    const maxWindow = Math.max(...allWindows);
    return {
      release: { modules: base.release.modules.length, changed: up.groups.filter((g) => g.processes.length > 0).length, processes: base.release.processes.length, steps: up.steps.length, groups: up.groups.length },
      bundleBytes: upBundle.length,
      packMs: round(packMs, 1),
      transitions: samples.length,
      requestMs: med('requestMs'),
      transactionMs: med('transactionMs'),
      transactionUpMs: med('transactionMs', ups),
      stagingMs: med('stagingMs'),
      outsideTransactionMs: med('outsideMs'),
      holdMs: med('holdMs'),
      windowsMs: summary(allWindows),
      stepTimeByOpMs: samples.map((x) => ({ direction: x.direction, ...x.byOp })),
      goals: {
        transactionUnder100Ms: { goal: 100, value: med('transactionMs'), met: med('transactionMs') < 100 },
        noWindowOver10Ms: { goal: 10, value: round(maxWindow, 2), met: maxWindow <= 10 },
      },
    };
  } finally {
    await stop();
    unregister();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await runBigReleaseBench({ quick: process.argv.includes('--quick'), log: (l) => process.stdout.write(`${l}\n`) });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
