// The Erlang runtime under load (issue 10, "Speed"): an Erlang node serving
// the Erlang demo (examples/erlang: the seed-002 TCP service and the game's
// players gen_server) to long-lived connections through upgrade + rollback
// rounds done by relup, side by side with the same change made by restarting
// the node on the new release (what a failed OTP release_handler upgrade
// does, and what people do without hot upgrades). Counts failed requests and
// dropped connections, and reports the suspension window of every group and
// the whole transaction's time.
//
//   node bench/erlang-bench.js [--connections=N] [--rounds=N] [--settle-ms=N] [--quick]
// (after `npm run build`; needs erl). Everything listens on 127.0.0.1; every
// child process is stopped at the end.
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { CLI, REPO, median, onCleanup, round, sleep, summary } from './lib.js';
import { erlangAvailable, startErlangNode } from '../dist/runtime/erlang/erlang-driver.js';
import { Connection } from '../dist/client/connection.js';

let CONNECTIONS = 20;
let SETTLE_MS = 500;
let ROUNDS = 3;

/**
 * Long-lived connections, each sending its next line as soon as the last is
 * answered: `score 1` (a call into the game gen_server, suspended during an
 * upgrade) and `ping` (the connection actor alone), alternately.
 */
function load(port, connections) {
  const stats = { sent: 0, ok: 0, failed: 0, dropped: 0, latencies: [] };
  let stopping = false;
  const workers = Array.from({ length: connections }, (_, i) =>
    new Promise((done) => {
      const socket = connect(port, '127.0.0.1');
      let buffer = '';
      let t0 = 0;
      let n = 0;
      let named = false;
      const send = () => {
        if (stopping) {
          socket.end();
          return;
        }
        t0 = performance.now();
        if (!named) {
          socket.write(`name c${i}\n`);
          return;
        }
        stats.sent += 1;
        n += 1;
        socket.write(n % 2 === 0 ? 'ping\n' : 'score 1\n');
      };
      socket.on('connect', send);
      socket.on('data', (chunk) => {
        buffer += chunk.toString('utf8');
        let k;
        while ((k = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, k);
          buffer = buffer.slice(k + 1);
          if (!named) {
            named = line === 'ok';
          } else {
            stats.latencies.push(performance.now() - t0);
            if (line.startsWith('pong') || line.startsWith('score')) stats.ok += 1;
            else stats.failed += 1;
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

async function boot(dir, version, stateDir) {
  const node = await startErlangNode({ release: join(dir, 'releases', version), socket: join(dir, `${version}.sock`), stateDir, config: { port: 0 } });
  onCleanup(async () => {
    node.child.kill('SIGKILL');
    await node.child;
  });
  const c = await Connection.open({ kind: 'unix', path: join(dir, `${version}.sock`) });
  const port = await c.request('invoke', { module: 'chat_server', function: 'port', args: [] });
  c.close();
  return { node, port, socket: join(dir, `${version}.sock`) };
}

async function relupScenario(dir) {
  const { node, port, socket } = await boot(dir, '1.0.0', join(dir, 'state-relup'));
  const cli = async (args) => {
    const t0 = performance.now();
    const r = await execa('node', [CLI, ...args, '--target', socket, '--json'], { cwd: dir, env: { NO_COLOR: '1' }, reject: false });
    const wall = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`relup ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    const json = JSON.parse(r.stdout);
    return { wall, outcome: json.hops?.at(-1)?.outcome ?? json };
  };
  const l = load(port, CONNECTIONS);
  const started = performance.now();
  const changes = [];
  try {
    await sleep(SETTLE_MS);
    for (let i = 0; i < ROUNDS; i++) {
      const up = await cli(['apply', '--to', '1.1.0']);
      await sleep(SETTLE_MS);
      const down = await cli(['rollback']);
      await sleep(SETTLE_MS);
      const windows = (o) => o.groups.map((g) => g.suspensionMs).filter((x) => typeof x === 'number');
      const slowest = (o) => [...o.journal].sort((a, b) => b.durationMs - a.durationMs).slice(0, 3).map((j) => `${j.op} ${j.target} ${round(j.durationMs, 2)}`);
      changes.push({ upSlowest: slowest(up.outcome), downSlowest: slowest(down.outcome), upNodeMs: up.outcome.durationMs, upWallMs: up.wall, upSuspensionMs: windows(up.outcome), downNodeMs: down.outcome.durationMs, downWallMs: down.wall, downSuspensionMs: windows(down.outcome) });
    }
  } finally {
    await l.stop();
    node.child.kill('SIGTERM');
    await node.child;
  }
  return { seconds: (performance.now() - started) / 1000, load: { ...l.stats, latencies: undefined, latencyMs: summary(l.stats.latencies) }, changes };
}

/** The same change by restart: stop the node, start it on the other release (new state, new port, every connection lost). */
async function restartScenario(dir) {
  let current = await boot(dir, '1.0.0', join(dir, 'state-restart-a'));
  let l = load(current.port, CONNECTIONS);
  const loads = [l];
  const started = performance.now();
  const changes = [];
  try {
    await sleep(SETTLE_MS);
    for (let i = 0; i < ROUNDS * 2; i++) {
      const t0 = performance.now();
      current.node.child.kill('SIGTERM');
      await current.node.child;
      const version = i % 2 === 0 ? '1.1.0' : '1.0.0';
      current = await boot(dir, version, join(dir, `state-restart-${i}`));
      changes.push({ restartMs: performance.now() - t0 });
      // Clients reconnect to the new node (a new port: the old one closed with the node).
      l = load(current.port, CONNECTIONS);
      loads.push(l);
      await sleep(SETTLE_MS);
    }
  } finally {
    for (const x of loads) await x.stop();
    current.node.child.kill('SIGTERM');
    await current.node.child;
  }
  const all = loads.map((x) => x.stats);
  const sum = (k) => all.reduce((s, x) => s + x[k], 0);
  return { seconds: (performance.now() - started) / 1000, load: { sent: sum('sent'), ok: sum('ok'), failed: sum('failed'), dropped: sum('dropped'), latencyMs: summary(all.flatMap((x) => x.latencies)) }, changes };
}

export async function runErlangBench({ quick = false, log = () => undefined, connections, rounds, settleMs } = {}) {
  CONNECTIONS = connections ?? (quick ? 10 : 20);
  ROUNDS = rounds ?? (quick ? 1 : 5);
  SETTLE_MS = settleMs ?? (quick ? 300 : 500);
  const available = await erlangAvailable();
  if (!available.ok) throw new Error(`${available.reason}; install: ${available.install}`);
  const work = await mkdtemp(join(tmpdir(), 'relup-erlang-bench-'));
  try {
    await cp(join(REPO, 'examples', 'erlang'), work, { recursive: true });
    log('erlang: relup apply + rollback under load');
    const relup = await relupScenario(work);
    log('erlang: restart on the other release under load');
    const restart = await restartScenario(work);
    const windows = relup.changes.flatMap((c) => [...c.upSuspensionMs, ...c.downSuspensionMs]);
    const med = (xs) => round(median(xs), 3);
    const rows = [
      { scenario: 'relup apply + rollback', requests: relup.load.sent, failed: relup.load.failed, dropped: relup.load.dropped, latencyP99Ms: relup.load.latencyMs.p99, suspensionP50Ms: summary(windows).p50, suspensionP99Ms: summary(windows).p99, suspensionMaxMs: summary(windows).max, upNodeMs: med(relup.changes.map((c) => c.upNodeMs)), downNodeMs: med(relup.changes.map((c) => c.downNodeMs)), upWallMs: med(relup.changes.map((c) => c.upWallMs)) },
      { scenario: 'restart on the new release', requests: restart.load.sent, failed: restart.load.failed, dropped: restart.load.dropped, latencyP99Ms: restart.load.latencyMs.p99, restartMs: med(restart.changes.map((c) => c.restartMs)) },
    ];
    for (const r of rows) log(`  ${r.scenario}: ${r.requests} requests, ${r.failed} failed, ${r.dropped} dropped${r.suspensionP99Ms === undefined ? `; restart ${r.restartMs} ms` : `; suspension p50 ${r.suspensionP50Ms} ms, p99 ${r.suspensionP99Ms} ms; transaction up ${r.upNodeMs} ms, down ${r.downNodeMs} ms`}`);
    log(`  slowest steps of each change: ${JSON.stringify(relup.changes.map((c) => [c.upSlowest, c.downSlowest]))}`);
    return { otp: available.version, connections: CONNECTIONS, rounds: ROUNDS, rows, relup, restart };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && process.argv[1].endsWith('erlang-bench.js')) {
  const argv = process.argv.slice(2);
  const opt = (name) => {
    const v = argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
    return v === undefined ? undefined : Number(v);
  };
  const result = await runErlangBench({ quick: argv.includes('--quick'), log: (l) => process.stderr.write(`${l}\n`), connections: opt('connections'), rounds: opt('rounds'), settleMs: opt('settle-ms') });
  console.table(result.rows);
  console.log(JSON.stringify({ otp: result.otp, connections: result.connections, rounds: result.rounds, rows: result.rows }, null, 2));
}
