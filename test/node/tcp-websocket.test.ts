import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { runCli } from '../helpers/run-cli.js';
import { testdir, writeTree } from '../helpers/testdir.js';

/**
 * Issue 12 item 3 on a real `relup node start` process: a raw TCP connection
 * (relup.listenTcp) and a WebSocket (relup.listen with websocket handlers)
 * stay open through a live upgrade and a rollback; after each, their next
 * message reaches the current code, and their per-connection state (module
 * state keyed by connection id) was migrated up and back.
 */
const release = (version: string) => `name: sockets
version: ${version}
runtime: node
start:
  main: chat
modules:
  chat:
    file: chat.js
    exports: [initialState, start, http, wsOpen, wsMessage, wsClose, tcpOpen, tcpData, tcpClose${version === '1.0.1' ? ', tagSessions' : ''}]
`;

const chat = (tag: string, migration = '') => `
exports.initialState = () => ({ sessions: {}, closed: 0 });
exports.start = () => {
  relup.listen({ port: relup.config.port ?? 0, handler: 'http', websocket: { onOpen: 'wsOpen', onMessage: 'wsMessage', onClose: 'wsClose' } });
  relup.listenTcp({ port: 0, host: '127.0.0.1', onConnection: 'tcpOpen', onData: 'tcpData', onClose: 'tcpClose' });
};
exports.http = () => ({ status: 200, json: { sessions: Object.keys(relup.state.sessions).length, closed: relup.state.closed } });
const answer = (id, text) => {
  const s = relup.state.sessions[id];
  s.n += 1;
  return '${tag} ' + s.n + ' ' + text + (s.tag === undefined ? '' : ' ' + s.tag);
};
exports.wsOpen = (ws) => { relup.state.sessions[ws.id] = { n: 0 }; };
exports.wsMessage = (ws, data) => { ws.send(answer(ws.id, data)); };
exports.wsClose = (ws) => { delete relup.state.sessions[ws.id]; relup.state.closed += 1; };
exports.tcpOpen = (c) => { relup.state.sessions[c.id] = { n: 0 }; };
exports.tcpData = (c, bytes) => { c.write(answer(c.id, Buffer.from(bytes).toString('utf8').trim()) + '\\n'); };
exports.tcpClose = (c) => { delete relup.state.sessions[c.id]; relup.state.closed += 1; };
${migration}
`;

const TAG = `exports.tagSessions = (state, info) => {
  for (const s of Object.values(state.sessions)) {
    if (info.direction === 'up') s.tag = 'migrated';
    else delete s.tag;
  }
};`;

const APPUP = `version: 1.0.1
up:
  - from: 1.0.0
    instructions:
      - update: chat
        migration: tagSessions
down:
  - to: 1.0.0
    instructions:
      - update: chat
        migration: tagSessions
`;

interface WsClient {
  send(data: string): void;
  close(): void;
  on(event: 'message', f: (data: Buffer) => void): void;
  on(event: 'open', f: () => void): void;
  on(event: 'close', f: () => void): void;
  on(event: 'error', f: (e: Error) => void): void;
}
const WebSocket = createRequire(import.meta.url)('ws') as { WebSocket: new (url: string) => WsClient };

/** Messages in arrival order, and a way to wait for the next one. */
function inbox(): { push: (m: string) => void; next: () => Promise<string> } {
  const queued: string[] = [];
  const waiting: ((m: string) => void)[] = [];
  return {
    push: (m) => (waiting.length > 0 ? waiting.shift()!(m) : queued.push(m)),
    next: () => (queued.length > 0 ? Promise.resolve(queued.shift()!) : new Promise((r) => waiting.push(r))),
  };
}

describe('TCP and WebSocket connections through upgrade and rollback', { timeout: 60_000 }, () => {
  let node: NodeProcess;
  let dir: string;
  let ws: WsClient;
  let tcp: Socket;
  const wsIn = inbox();
  const tcpIn = inbox();
  let closes = 0;

  beforeAll(async () => {
    // Kept for the whole suite (testdir() cleans up after each test).
    dir = await mkdtemp(join(tmpdir(), 'relup-sockets-'));
    await writeTree(dir, {
      'releases/1.0.0/release.yaml': release('1.0.0'),
      'releases/1.0.0/chat.js': chat('v1'),
      'releases/1.0.1/release.yaml': release('1.0.1'),
      'releases/1.0.1/chat.js': chat('v2', TAG),
      'appups/1.0.1.yaml': APPUP,
    });
    node = await startNodeProcess(dir, { release: 'releases/1.0.0' });
    const c = await node.connect();
    const status = (await c.request('status', {})) as { servers: { port: number; handler: string }[] };
    c.close();
    const tcpPort = status.servers.find((s) => s.handler === 'tcpData')!.port;
    ws = new WebSocket.WebSocket(`ws://127.0.0.1:${node.port}/chat`);
    ws.on('message', (d) => wsIn.push(d.toString()));
    ws.on('close', () => (closes += 1));
    await new Promise<void>((resolve, reject) => {
      ws.on('open', resolve);
      ws.on('error', reject);
    });
    tcp = connect({ host: '127.0.0.1', port: tcpPort });
    let buffered = '';
    tcp.on('data', (d) => {
      buffered += d.toString();
      for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
        tcpIn.push(buffered.slice(0, i));
        buffered = buffered.slice(i + 1);
      }
    });
    tcp.on('close', () => (closes += 1));
    await new Promise((r) => tcp.once('connect', r));
  });
  afterAll(async () => {
    ws?.close();
    tcp?.destroy();
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const exchange = async (text: string): Promise<[string, string]> => {
    ws.send(text);
    tcp.write(`${text}\n`);
    return [await wsIn.next(), await tcpIn.next()];
  };

  it('serves both on 1.0.0', async () => {
    expect(await exchange('a')).toEqual(['v1 1 a', 'v1 1 a']);
  });

  it('keeps both open through the upgrade: new code, migrated per-connection state', async () => {
    const up = await runCli(['apply', '--target', node.socket, '--to', '1.0.1', '--json'], dir);
    expect(up.exitCode, up.stderr + up.stdout).toBe(0);
    expect(JSON.parse(up.stdout)).toMatchObject({ status: 'committed', version: '1.0.1' });
    expect(await exchange('b')).toEqual(['v2 2 b migrated', 'v2 2 b migrated']);
  });

  it('keeps both open through the rollback: old code, state migrated back', async () => {
    const down = await runCli(['rollback', '--target', node.socket, '--json'], dir);
    expect(down.exitCode, down.stderr + down.stdout).toBe(0);
    expect(await exchange('c')).toEqual(['v1 3 c', 'v1 3 c']);
    expect(closes).toBe(0);
    expect(await (await fetch(`http://127.0.0.1:${node.port}/`)).json()).toEqual({ sessions: 2, closed: 0 });
  });

  it('runs the close handlers of the current code when clients leave', async () => {
    ws.close();
    tcp.end();
    for (let i = 0; i < 100; i++) {
      const seen = (await (await fetch(`http://127.0.0.1:${node.port}/`)).json()) as { closed: number };
      if (seen.closed === 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await (await fetch(`http://127.0.0.1:${node.port}/`)).json()).toEqual({ sessions: 0, closed: 2 });
  });

  it('refuses an upgrade request on a server without WebSocket handlers instead of answering it as a plain request', async () => {
    const plain = await testdir({ 'rel/release.yaml': 'name: plain\nversion: 1.0.0\nruntime: node\nstart:\n  main: web\nmodules:\n  web:\n    file: web.js\n', 'rel/web.js': "exports.start = () => { relup.listen({ port: 0, handler: 'h' }); };\nexports.h = () => ({ status: 200, body: 'plain' });\n" });
    const other = await startNodeProcess(plain, { release: 'rel' });
    try {
      const client = new WebSocket.WebSocket(`ws://127.0.0.1:${other.port}/`);
      const outcome = await new Promise<string>((resolve) => {
        client.on('open', () => resolve('open'));
        client.on('error', (e) => resolve(e.message));
      });
      expect(outcome).toContain('404');
    } finally {
      await other.stop();
    }
  });
});
