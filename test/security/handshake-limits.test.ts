import { mkdir } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connectTarget } from '../../src/cli/connect.js';
import { Connection } from '../../src/client/connection.js';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { ControlServer } from '../../src/runtime/node-host/control-server.js';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';
import { SECRET, tcpNode } from './tcp-node.js';

/**
 * Issue 9 item 5: peers that never authenticate cannot lock the operator
 * out, cannot make the node buffer more than a small handshake frame, cannot
 * hold a socket past the handshake deadline, and a trickle of bytes is not
 * activity. Plain sockets and a hand-written frame reader, independent of the
 * code under test.
 */
process.env['RELUP_LIMITS_TEST_SECRET'] = SECRET.toString();
const operator = (port: number) => connectTarget({ config: { targets: { n: { host: '127.0.0.1', port, secretEnv: 'RELUP_LIMITS_TEST_SECRET' } } }, baseDir: '/', file: undefined }, 'n');

const sockets: Socket[] = [];
const unixNodes: { host: NodeHost; server: ControlServer }[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const { host, server } of unixNodes.splice(0)) {
    await server.close();
    await host.stop();
  }
});

function frame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** A peer on a plain socket: what it received (frames), and whether the node closed it. */
async function peer(where: { host: string; port: number } | { path: string }) {
  const sock = createConnection(where as never);
  sockets.push(sock);
  await new Promise((r, j) => sock.once('connect', r).once('error', j));
  let buf = Buffer.alloc(0);
  const frames: Record<string, unknown>[] = [];
  let closed = false;
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const n = buf.readUInt32BE(0);
      const body = buf.subarray(4, 4 + n);
      buf = buf.subarray(4 + n);
      try {
        frames.push(JSON.parse(body.toString()) as Record<string, unknown>);
      } catch {
        frames.push({ sealed: true });
      }
    }
  });
  sock.on('error', () => undefined);
  sock.on('close', () => (closed = true));
  return {
    sock,
    frames,
    closed: () => closed,
    send: (m: unknown) => sock.write(frame(m)),
    /** Wait (at most `ms`) until the node closed this socket. */
    async waitClosed(ms: number): Promise<boolean> {
      for (let i = 0; i < ms / 20 && !closed; i++) await new Promise((r) => setTimeout(r, 20));
      return closed;
    },
  };
}

async function unixNode(options: { idleTimeoutMs?: number; handshakeTimeoutMs?: number } = {}) {
  const dir = await testdir();
  await mkdir(join(dir, 'run'), { mode: 0o700 });
  const host = await NodeHost.start({ release: join(DEMO_RELEASES, '1.2.2'), stateDir: join(dir, 'state'), config: { port: 0, tickMs: 3_600_000 } });
  const socket = join(dir, 'run', 'node.sock');
  const server = await ControlServer.listen(host, { socket, ...options });
  unixNodes.push({ host, server });
  return { socket };
}

const hello = { type: 'hello', protocol: PROTOCOL_VERSION, client: 'peer' };

describe('unauthenticated peers cannot lock the operator out (issue 9 item 5)', { timeout: 40_000 }, () => {
  it('serves the operator while 40 peers sit in the handshake, some silent and some after their hello', async () => {
    const { port } = await tcpNode();
    for (let i = 0; i < 40; i++) {
      const p = await peer({ host: '127.0.0.1', port });
      if (i % 2 === 0) p.send(hello);
    }
    const c = await operator(port);
    expect(await c.request('status', {})).toMatchObject({ version: '1.2.2' });
    c.close();
  });

  it('still limits established connections, counting only authenticated ones', async () => {
    const { port } = await tcpNode({ maxConnections: 2 });
    for (let i = 0; i < 5; i++) (await peer({ host: '127.0.0.1', port })).send(hello);
    const a = await operator(port);
    const b = await operator(port);
    await expect(operator(port)).rejects.toMatchObject({ code: 'too_many_connections' });
    b.close();
    await new Promise((r) => setTimeout(r, 100));
    const c = await operator(port);
    expect(await c.request('status', {})).toMatchObject({ version: '1.2.2' });
    a.close();
    c.close();
  });

  it('refuses a frame over 4 KiB before authentication, from its header alone', async () => {
    const { port } = await tcpNode();
    const first = await peer({ host: '127.0.0.1', port });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(60 * 1024 * 1024);
    first.sock.write(header);
    expect(await first.waitClosed(5000)).toBe(true);
    expect(first.frames[0]).toMatchObject({ type: 'error', code: 'bad_frame' });

    const afterHello = await peer({ host: '127.0.0.1', port });
    afterHello.send(hello);
    afterHello.send({ type: 'auth', nonce: 'x'.repeat(5000), proof: 'y' });
    expect(await afterHello.waitClosed(5000)).toBe(true);
    expect(afterHello.frames.map((f) => f['code'] ?? f['type'])).toEqual(['hello', 'bad_frame']);
  });

  it('closes a connection that does not finish its handshake in time, on TCP and on the Unix socket', async () => {
    const { port } = await tcpNode({ handshakeTimeoutMs: 300, idleTimeoutMs: 60_000 });
    const stalled = await peer({ host: '127.0.0.1', port });
    stalled.send(hello);
    expect(await stalled.waitClosed(10_000)).toBe(true);
    expect(stalled.frames.map((f) => f['code'] ?? f['type'])).toEqual(['hello', 'handshake_timeout']);

    const { socket } = await unixNode({ handshakeTimeoutMs: 300, idleTimeoutMs: 60_000 });
    const silent = await peer({ path: socket });
    expect(await silent.waitClosed(10_000)).toBe(true);
    expect(silent.frames.map((f) => f['code'])).toEqual(['handshake_timeout']);
  });

  it('counts frames, not bytes, for the idle timeout: a byte every 100 ms does not keep a socket open', async () => {
    const { socket } = await unixNode({ idleTimeoutMs: 500 });
    const trickle = await peer({ path: socket });
    trickle.send(hello);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1000);
    trickle.sock.write(header);
    const drip = setInterval(() => trickle.sock.write('x'), 100);
    try {
      expect(await trickle.waitClosed(10_000)).toBe(true);
    } finally {
      clearInterval(drip);
    }
    expect(trickle.frames.map((f) => f['code'] ?? f['type'])).toEqual(['hello', 'idle_timeout']);

    // A client that sends a frame now and then is not idle.
    const busy = await Connection.open({ kind: 'unix', path: socket });
    for (let i = 0; i < 8; i++) {
      await busy.request('status', {});
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await busy.request('status', {})).toMatchObject({ version: '1.2.2' });
    busy.close();
  });
});
