// The Lua runtime under load (issue 11, "Speed"): a Silly node serving the
// demo (examples/silly) to long-lived connections through one upgrade and one
// rollback done by relup, side by side with the same change pushed the way
// Silly users do it today: a hand-written hot-fix script (the guide's
// silly.patch procedure plus its migrations) run with `INJECT` through
// Silly's console. Counts failed requests and dropped connections, and times
// the change on the node and end to end.
//
//   node bench/silly-bench.js [--connections=N] [--settle-ms=N]
// (after `npm run build`; Silly is built into .cache/silly if needed).
// Everything listens on 127.0.0.1; every child process is stopped at the end.
import { chmod, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { CLI, REPO, freePort, median, onCleanup, round, sleep, summary } from './lib.js';
import { buildSilly } from '../dist/runtime/lua/silly-build.js';
import { startSillyNode } from '../dist/runtime/lua/silly-node.js';

let CONNECTIONS = 20;
let SETTLE_MS = 500;
let ROUNDS = 3;

/** Long-lived connections, each sending the next request as soon as the last is answered. */
function load(port, connections) {
  const stats = { sent: 0, ok: 0, failed: 0, dropped: 0, latencies: [] };
  let stopping = false;
  const workers = Array.from({ length: connections }, (_, i) =>
    new Promise((done) => {
      const socket = connect(port, '127.0.0.1');
      let buffer = '';
      let t0 = 0;
      const send = () => {
        if (stopping) {
          socket.end();
          return;
        }
        stats.sent += 1;
        t0 = performance.now();
        socket.write(`${JSON.stringify({ op: 'route', name: `c${i}` })}\n`);
      };
      socket.on('connect', send);
      socket.on('data', (chunk) => {
        buffer += chunk.toString('utf8');
        let n;
        while ((n = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, n);
          buffer = buffer.slice(n + 1);
          stats.latencies.push(performance.now() - t0);
          try {
            const r = JSON.parse(line);
            if (r.status === 200) stats.ok += 1;
            else stats.failed += 1;
          } catch {
            stats.failed += 1;
          }
          send();
        }
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (!stopping) stats.dropped += 1;
        done();
      });
    }),
  );
  return {
    stats,
    async stop() {
      stopping = true;
      await Promise.race([Promise.all(workers), sleep(3000)]);
    },
  };
}

async function relupScenario(silly, dir) {
  const secret = randomBytes(32).toString('base64');
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, secret, { mode: 0o600 });
  await chmod(secretFile, 0o600);
  const apiPort = await freePort();
  const node = await startSillyNode({ silly, release: join(dir, 'releases', '1.2.2'), stateDir: join(dir, 'state'), listen: { host: '127.0.0.1', port: 0 }, secretFile, config: { port: apiPort } });
  onCleanup(() => node.kill());
  const env = { RELUP_SECRET: secret, NO_COLOR: '1' };
  const cli = async (args) => {
    const t0 = performance.now();
    const r = await execa('node', [CLI, ...args, '--target', node.address, '--json'], { cwd: dir, env, reject: false });
    const wall = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`relup ${args.join(' ')} failed: ${r.stderr}`);
    return { wall, outcome: JSON.parse(r.stdout) };
  };
  const l = load(apiPort, CONNECTIONS);
  const started = performance.now();
  const changes = [];
  try {
    await sleep(SETTLE_MS);
    for (let i = 0; i < ROUNDS; i++) {
      const up = await cli(['apply', '--to', '1.2.3']);
      await sleep(SETTLE_MS);
      const down = await cli(['rollback']);
      await sleep(SETTLE_MS);
      // nodeMs: the whole apply on the node (bundle decoded and verified, then the transaction);
      // txMs: the transaction's steps (stage … commit); holdMs: point of no return → end, when nothing else runs.
      const tx = (o) => o.journal.reduce((sum, j) => sum + j.durationMs, 0);
      changes.push({ upNodeMs: up.outcome.durationMs, upTxMs: tx(up.outcome), upHoldMs: up.outcome.holdMs, upWallMs: up.wall, downNodeMs: down.outcome.durationMs, downTxMs: tx(down.outcome), downHoldMs: down.outcome.holdMs, downWallMs: down.wall });
    }
  } finally {
    await l.stop();
    await node.stop();
  }
  return { seconds: (performance.now() - started) / 1000, load: { ...l.stats, latencies: undefined, latencyMs: summary(l.stats.latencies) }, changes };
}

// The hand-written hot-fix, as the guide writes it: load the new file aside,
// silly.patch collect/join, copy the functions, then migrate by hand through
// the upvalue tree. (collectupval fails on the VERSION field, so the script,
// like a careful user, collects the functions only and copies VERSION itself.)
function hotfixScript(fromDir, toDir, direction) {
  const migrate = direction === 'up'
    ? `
for k, v in pairs(up_new.config.get.upvals.settings.val) do
  local live = up_old.config.get.upvals.settings.val
  if live[k] == nil then live[k] = v end
end
for _, p in pairs(up_old.game.add_player.upvals.player_data.val) do
  if p.level == nil then p.level = 1; p.exp = 0 end
end`
    : `
local live = up_old.config.get.upvals.settings.val
live.enable_cache = nil; live.cache_ttl = nil
for _, p in pairs(up_old.game.add_player.upvals.player_data.val) do p.level = nil; p.exp = nil end`;
  return `
local patch = require "silly.patch"
local hrtime = require("silly.perf").hrtime
local t0 = hrtime()
local up_old, up_new = {}, {}
for _, name in ipairs({ "config", "game", "route" }) do
  local live = require(name)
  local new = assert(loadfile("${toDir}/" .. name .. ".lua", "bt", _ENV))()
  local fo, fn = {}, {}
  for k, v in pairs(live) do if type(v) == "function" then fo[k] = v end end
  for k, v in pairs(new) do if type(v) == "function" then fn[k] = v end end
  local P = patch.new()
  up_old[name] = P:collectupval(fo)
  up_new[name] = P:collectupval(fn)
  P:join(up_new[name], up_old[name])
  for k, v in pairs(fn) do live[k] = v end
  live.VERSION = new.VERSION
end
${migrate}
local f = assert(io.open("${toDir}/../hotfix-ms.txt", "w"))
f:write(string.format("%.3f", (hrtime() - t0) / 1e6))
f:close()
`;
}

async function injectScenario(silly, dir) {
  const apiPort = await freePort();
  const consolePort = await freePort();
  const main = join(dir, 'inject-main.lua');
  await writeFile(
    main,
    `package.path = "${dir}/releases/1.2.2/?.lua;" .. package.path
require("silly.console")({ addr = "127.0.0.1:${consolePort}" })
require("tcp_api").start({ port = ${apiPort} })
print("inject-node ready")
io.stdout:flush()
`,
  );
  await writeFile(join(dir, 'hotfix-up.lua'), hotfixScript(join(dir, 'releases', '1.2.2'), join(dir, 'releases', '1.2.3'), 'up'));
  await writeFile(join(dir, 'hotfix-down.lua'), hotfixScript(join(dir, 'releases', '1.2.3'), join(dir, 'releases', '1.2.2'), 'down'));
  const child = execa(silly, [main], { reject: false, buffer: false, stdin: 'ignore' });
  onCleanup(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const until = Date.now() + 10_000;
  while (!out.includes('inject-node ready')) {
    if (Date.now() > until) throw new Error(`the inject node did not start:\n${out}`);
    await sleep(20);
  }
  await sleep(200);
  const inject = (file) =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const s = connect(consolePort, '127.0.0.1');
      let text = '';
      let answered = false;
      s.on('data', (d) => {
        text += d;
        if (!answered && /Inject file:\S+ (.*)\n/.test(text)) {
          answered = true;
          const wall = performance.now() - t0;
          s.end('quit\n');
          const m = /Inject file:\S+ (.*)\n/.exec(text);
          if (m[1].trim() !== 'Success') return reject(new Error(`inject failed: ${m[1]}`));
          readFile(join(dir, 'releases', 'hotfix-ms.txt'), 'utf8').then((t) => resolve({ wall, nodeMs: Number(t) }), reject);
        }
      });
      s.on('error', reject);
      s.write(`inject ${join(dir, file)}\n`);
    });
  const l = load(apiPort, CONNECTIONS);
  const started = performance.now();
  const changes = [];
  try {
    await sleep(SETTLE_MS);
    for (let i = 0; i < ROUNDS; i++) {
      const up = await inject('hotfix-up.lua');
      await sleep(SETTLE_MS);
      const down = await inject('hotfix-down.lua');
      await sleep(SETTLE_MS);
      changes.push({ upNodeMs: up.nodeMs, upWallMs: up.wall, downNodeMs: down.nodeMs, downWallMs: down.wall });
    }
  } finally {
    await l.stop();
    child.kill('SIGINT');
    await Promise.race([child, sleep(3000)]);
    child.kill('SIGKILL');
  }
  return { seconds: (performance.now() - started) / 1000, load: { ...l.stats, latencies: undefined, latencyMs: summary(l.stats.latencies) }, changes };
}

/**
 * Run both scenarios; returns the figures (rows: one per scenario, medians
 * over the rounds). `npm run bench` calls it as its `silly` section.
 */
export async function runSillyBench({ quick = false, log = () => undefined, connections, rounds, settleMs } = {}) {
  CONNECTIONS = connections ?? (quick ? 10 : 20);
  ROUNDS = rounds ?? (quick ? 1 : 3);
  SETTLE_MS = settleMs ?? (quick ? 300 : 500);
  const tree = await buildSilly(REPO, log);
  if (tree === undefined) throw new Error('no vendored Silly to build (../shared/vendor)');
  const work = await mkdtemp(join(tmpdir(), 'relup-silly-bench-'));
  try {
    await cp(join(REPO, 'examples', 'silly'), work, { recursive: true });
    log('silly: relup apply + rollback under load');
    const relup = await relupScenario(tree.binary, work);
    log('silly: hand-written INJECT through the console under load');
    const inject = await injectScenario(tree.binary, work);
    const med = (xs) => round(median(xs), 3);
    const row = (name, r) => ({
      scenario: name,
      requests: r.load.sent,
      failed: r.load.failed,
      dropped: r.load.dropped,
      latencyP99Ms: r.load.latencyMs.p99,
      seconds: round(r.seconds, 1),
      requestsPerSecond: Math.round(r.load.sent / r.seconds),
      upNodeMs: med(r.changes.map((c) => c.upNodeMs)),
      upTxMs: med(r.changes.map((c) => c.upTxMs ?? c.upNodeMs)),
      upHoldMs: med(r.changes.map((c) => c.upHoldMs ?? c.upNodeMs)),
      downNodeMs: med(r.changes.map((c) => c.downNodeMs)),
      downTxMs: med(r.changes.map((c) => c.downTxMs ?? c.downNodeMs)),
      upWallMs: med(r.changes.map((c) => c.upWallMs)),
      downWallMs: med(r.changes.map((c) => c.downWallMs)),
    });
    const rows = [row('relup apply + rollback', relup), row('hand-written INJECT (silly.patch)', inject)];
    for (const r of rows) {
      log(`  ${r.scenario}: ${r.requests} requests (${r.requestsPerSecond}/s), ${r.failed} failed, ${r.dropped} dropped; up ${r.upTxMs} ms (transaction), down ${r.downTxMs} ms; end to end up ${r.upWallMs} ms`);
    }
    return { connections: CONNECTIONS, rounds: ROUNDS, rows, txRatio: round(rows[0].upTxMs / rows[1].upTxMs, 2), relup, inject };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && process.argv[1].endsWith('silly-bench.js')) {
  const argv = process.argv.slice(2);
  const opt = (name) => {
    const v = argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
    return v === undefined ? undefined : Number(v);
  };
  const result = await runSillyBench({ quick: argv.includes('--quick'), log: (l) => process.stderr.write(`${l}\n`), connections: opt('connections'), rounds: opt('rounds'), settleMs: opt('settle-ms') });
  console.table(result.rows);
  console.log(JSON.stringify({ connections: result.connections, rounds: result.rounds, txRatio: result.txRatio, rows: result.rows }, null, 2));
}
