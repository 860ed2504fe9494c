// Issue 12 item 5: 1,000 open WebSockets and 1,000 raw TCP connections
// through a live upgrade and a rollback of a real `relup node start` process.
// Every connection keeps sending numbered messages the whole time; the node
// answers each one with the version that handled it. Reported: connections
// dropped (must be 0), messages lost (sent but never answered, must be 0),
// answers per version, and the node's own figures for the two transactions.
//
// Run alone: node bench/connections-bench.js [--quick]   (after npm run build)
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { CLI, onCleanup, round, sleep } from './lib.js';

const { WebSocket } = createRequire(import.meta.url)('ws');

const release = (version) => `name: sockets
version: ${version}
runtime: node
start:
  main: echo
modules:
  echo:
    file: echo.js
`;
// Per-connection state is module state keyed by connection id: runtime-owned, migrated, snapshotted.
const echo = (tag) => `
exports.initialState = () => ({ seen: {} });
exports.start = () => {
  relup.listen({ host: '127.0.0.1', port: 0, handler: 'http', websocket: { onOpen: 'open', onMessage: 'message', onClose: 'close' } });
  relup.listenTcp({ host: '127.0.0.1', port: 0, onConnection: 'open', onData: 'data', onClose: 'close' });
};
exports.http = () => ({ status: 200, body: 'ok' });
exports.open = (c) => { relup.state.seen[c.id] = 0; };
exports.close = (c) => { delete relup.state.seen[c.id]; };
exports.message = (ws, text) => { relup.state.seen[ws.id] += 1; ws.send('${tag} ' + text); };
exports.data = (conn, bytes) => {
  const lines = Buffer.from(bytes).toString('utf8').split('\\n').filter(Boolean);
  for (const line of lines) { relup.state.seen[conn.id] += 1; conn.write('${tag} ' + line + '\\n'); }
};
`;
const APPUP = 'version: 1.0.1\nup:\n  - from: 1.0.0\n    instructions:\n      - update: echo\ndown:\n  - to: 1.0.0\n    instructions:\n      - update: echo\n';

export async function runConnectionsBench({ quick = false, log = () => undefined } = {}) {
  const count = quick ? 200 : 1000;
  const dir = await mkdtemp(join(tmpdir(), 'relup-conn-bench-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  for (const [v, tag] of [['1.0.0', 'v1'], ['1.0.1', 'v2']]) {
    await mkdir(join(dir, 'releases', v), { recursive: true });
    await writeFile(join(dir, 'releases', v, 'release.yaml'), release(v));
    await writeFile(join(dir, 'releases', v, 'echo.js'), echo(tag));
  }
  await mkdir(join(dir, 'appups'));
  await writeFile(join(dir, 'appups', '1.0.1.yaml'), APPUP);
  await mkdir(join(dir, 'run'), { mode: 0o700 });
  const socket = join(dir, 'run', 'node.sock');
  const node = execa('node', [CLI, 'node', 'start', '--release', 'releases/1.0.0', '--socket', socket, '--state-dir', join(dir, 'state')], { cwd: dir, reject: false, stdin: 'ignore' });
  onCleanup(async () => {
    node.kill('SIGTERM');
    await node;
  });
  const cli = async (...args) => {
    const r = await execa('node', [CLI, ...args, '--json'], { cwd: dir, reject: false, stdin: 'ignore' });
    if (r.exitCode !== 0) throw new Error(`relup ${args[0]} failed: ${r.stderr || r.stdout}`);
    return JSON.parse(r.stdout);
  };
  let status;
  for (let i = 0; ; i++) {
    const r = await execa('node', [CLI, 'status', '--target', socket, '--json'], { cwd: dir, reject: false, stdin: 'ignore' });
    if (r.exitCode === 0) {
      status = JSON.parse(r.stdout);
      break;
    }
    if (i > 100) throw new Error(`the node did not start: ${r.stderr}`);
    await sleep(100);
  }
  const httpPort = status.servers.find((s) => s.handler === 'http').port;
  const tcpPort = status.servers.find((s) => s.handler === 'data').port;

  // Each client: sends message n, waits for its answer, sends n+1 (one in flight per connection).
  const stats = { sent: 0, answered: 0, dropped: 0, byVersion: { v1: 0, v2: 0 }, openedWs: 0, openedTcp: 0 };
  const clients = [];
  let running = true;
  const pace = quick ? 20 : 100; // ms between a connection's messages
  const openWs = () =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/`);
      let n = 0;
      const next = () => {
        if (!running) return;
        stats.sent += 1;
        ws.send(String(++n));
      };
      ws.on('open', () => {
        stats.openedWs += 1;
        resolve({ close: () => ws.close(), pending: () => 0 });
        next();
      });
      ws.on('message', (data) => {
        const [tag] = data.toString().split(' ');
        stats.answered += 1;
        stats.byVersion[tag] = (stats.byVersion[tag] ?? 0) + 1;
        setTimeout(next, pace);
      });
      ws.on('close', () => {
        if (running) stats.dropped += 1;
      });
      ws.on('error', reject);
    });
  const openTcp = () =>
    new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: tcpPort });
      let n = 0;
      let buffered = '';
      const next = () => {
        if (!running) return;
        stats.sent += 1;
        s.write(`${++n}\n`);
      };
      s.on('connect', () => {
        stats.openedTcp += 1;
        resolve({ close: () => s.end() });
        next();
      });
      s.on('data', (d) => {
        buffered += d.toString();
        for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
          const [tag] = buffered.slice(0, i).split(' ');
          buffered = buffered.slice(i + 1);
          stats.answered += 1;
          stats.byVersion[tag] = (stats.byVersion[tag] ?? 0) + 1;
          setTimeout(next, pace);
        }
      });
      s.on('close', () => {
        if (running) stats.dropped += 1;
      });
      s.on('error', reject);
    });
  for (let i = 0; i < count; i += 50) {
    clients.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => openWs()))));
    clients.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => openTcp()))));
  }
  log(`  ${stats.openedWs} WebSockets and ${stats.openedTcp} TCP connections open, each sending a message every ${pace} ms`);
  await sleep(quick ? 300 : 1000);
  const up = await cli('apply', '--target', socket, '--to', '1.0.1');
  await sleep(quick ? 300 : 1000);
  const down = await cli('rollback', '--target', socket);
  await sleep(quick ? 300 : 1000);
  running = false;
  // In flight: every connection has at most one message waiting for its answer.
  await sleep(500);
  const lost = stats.sent - stats.answered;
  for (const c of clients) c.close();
  const result = {
    webSockets: stats.openedWs,
    tcpConnections: stats.openedTcp,
    messagesSent: stats.sent,
    messagesAnswered: stats.answered,
    messagesLost: lost,
    connectionsDropped: stats.dropped,
    answeredBy: stats.byVersion,
    upgrade: { status: up.status, durationMs: round(up.durationMs), holdMs: round(up.holdMs) },
    rollback: { status: down.status, durationMs: round(down.durationMs), holdMs: round(down.holdMs) },
  };
  log(`  sent ${stats.sent}, answered ${stats.answered}, lost ${lost}, connections dropped ${stats.dropped}; answers by version ${JSON.stringify(stats.byVersion)}`);
  log(`  upgrade ${up.status} in ${round(up.durationMs)} ms (outside work held ${round(up.holdMs)} ms); rollback ${down.status} in ${round(down.durationMs)} ms (held ${round(down.holdMs)} ms)`);
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { runCleanups } = await import('./lib.js');
  try {
    console.log(JSON.stringify(await runConnectionsBench({ quick: process.argv.includes('--quick'), log: (l) => console.log(l) }), null, 2));
  } finally {
    await runCleanups();
  }
}
