import { chmod, mkdir, stat } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/client/connection.js';
import { NodeError } from '../../src/errors/errors.js';
import { encodeFrame, FrameDecoder } from '../../src/protocol/framing.js';
import { ControlServer } from '../../src/runtime/node-host/control-server.js';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';

const open: { host: NodeHost; server: ControlServer }[] = [];
afterEach(async () => {
  for (const { host, server } of open.splice(0)) {
    await server.close();
    await host.stop();
  }
});

async function serve(options: { maxConnections?: number; idleTimeoutMs?: number; maxFrameBytes?: number } = {}) {
  const dir = await testdir();
  const run = join(dir, 'run');
  await mkdir(run, { mode: 0o700 });
  const host = await NodeHost.start({ release: join(DEMO_RELEASES, '1.2.2'), stateDir: join(dir, 'state'), config: { port: 0, tickMs: 3_600_000 } });
  const socket = join(run, 'node.sock');
  const server = await ControlServer.listen(host, { socket, ...options });
  open.push({ host, server });
  return { dir, socket, host };
}

/** A raw client: send frames (or bytes), read frames; no help from the Connection class. */
async function raw(path: string) {
  const sock: Socket = createConnection({ path });
  await new Promise((r) => sock.once('connect', r));
  const decoder = new FrameDecoder();
  const frames: unknown[] = [];
  let closed = false;
  sock.on('data', (c: Buffer) => frames.push(...decoder.push(c)));
  sock.on('close', () => (closed = true));
  const next = async (): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 200 && frames.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    return frames.shift() as Record<string, unknown>;
  };
  return { sock, next, closed: () => closed, send: (m: unknown) => sock.write(encodeFrame(m)) };
}

describe('control server', { timeout: 20_000 }, () => {
  it('creates the socket 0600 and refuses a directory others can write to', async () => {
    const { socket, dir, host } = await serve();
    expect((await stat(socket)).mode & 0o777).toBe(0o600);
    const open = join(dir, 'open');
    await mkdir(open);
    await chmod(open, 0o777);
    await expect(ControlServer.listen(host, { socket: join(open, 'x.sock') })).rejects.toThrow(/writable by others/);
    await expect(ControlServer.listen(host, { socket })).rejects.toThrow(/already listening/);
  });

  it('speaks hello, answers status and typed errors, and keeps request ids', async () => {
    const { socket } = await serve();
    const c = await raw(socket);
    c.send({ type: 'request', id: 1, op: 'status', params: {} });
    expect(await c.next()).toMatchObject({ type: 'error', id: null, code: 'bad_message' });
    const d = await raw(socket);
    d.send({ type: 'hello', protocol: 2, client: 'test' });
    expect(await d.next()).toMatchObject({ type: 'hello', protocol: 2, node: { name: 'demo', version: '1.2.2', runtime: 'node' }, auth: 'none' });
    d.send({ type: 'request', id: 7, op: 'status', params: {} });
    d.send({ type: 'request', id: 8, op: 'reboot', params: {} });
    d.send({ type: 'request', id: 9, op: 'apply', params: { script: {} } });
    const replies = [await d.next(), await d.next(), await d.next()];
    expect(replies.find((r) => r['id'] === 7)).toMatchObject({ type: 'result', result: { version: '1.2.2' } });
    expect(replies.find((r) => r['id'] === 8)).toMatchObject({ type: 'error', code: 'unknown_op' });
    expect(replies.find((r) => r['id'] === 9)).toMatchObject({ type: 'error', code: 'bad_request' });
  });

  it('refuses another protocol version, an oversized frame and invalid JSON, closing the connection', async () => {
    const { socket } = await serve({ maxFrameBytes: 1024 });
    const a = await raw(socket);
    a.send({ type: 'hello', protocol: 99, client: 'future' });
    expect(await a.next()).toMatchObject({ code: 'protocol_mismatch' });
    const b = await raw(socket);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(10_000_000);
    b.sock.write(header);
    expect(await b.next()).toMatchObject({ code: 'bad_frame' });
    const c = await raw(socket);
    const body = Buffer.from('{not json');
    const h = Buffer.alloc(4);
    h.writeUInt32BE(body.length);
    c.sock.write(Buffer.concat([h, body]));
    expect(await c.next()).toMatchObject({ code: 'bad_frame' });
    for (let i = 0; i < 100 && !c.closed(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(c.closed()).toBe(true);
  });

  it('limits concurrent connections and closes idle ones', async () => {
    const { socket } = await serve({ maxConnections: 2, idleTimeoutMs: 200 });
    const a = await Connection.open({ kind: 'unix', path: socket });
    const b = await Connection.open({ kind: 'unix', path: socket });
    await expect(Connection.open({ kind: 'unix', path: socket })).rejects.toMatchObject({ code: 'too_many_connections' });
    await new Promise((r) => setTimeout(r, 400));
    await expect(a.request('status', {})).rejects.toBeInstanceOf(NodeError);
    b.close();
    const c = await Connection.open({ kind: 'unix', path: socket });
    expect(((await c.request('status', {})) as { version: string }).version).toBe('1.2.2');
    c.close();
  });
});
