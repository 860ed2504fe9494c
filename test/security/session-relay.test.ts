import { randomBytes } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Connection } from '../../src/client/connection.js';
import { CLI } from '../helpers/repo-paths.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { until } from '../runtime/helpers/demo-node.js';
import { connectTarget } from '../../src/cli/connect.js';
import { SECRET, tcpNode } from './tcp-node.js';

// The relay splits and writes frames itself, independent of the code under test.
function frameOf(body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}
const encodeBody = (m: unknown) => Buffer.from(JSON.stringify(m));
const encodeFrame = (m: unknown) => frameOf(encodeBody(m));
function splitter(): (chunk: Buffer) => Buffer[] {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    const out: Buffer[] = [];
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const n = buf.readUInt32BE(0);
      out.push(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
    }
    return out;
  };
}

/**
 * Issue 9 item 6: a relay that does not know the secret forwards the
 * handshake between a real client and a real node, then tampers with the
 * session. Every tampering must end the connection with nothing executed.
 */
type Tamper = (ctx: { toNode: (b: Buffer) => void; toClient: (b: Buffer) => void; dir: 'c2n' | 'n2c'; index: number; frame: Buffer; held: Buffer[] }) => void;

const relays: Server[] = [];
afterEach(() => {
  for (const r of relays.splice(0)) r.close();
});

/** A TCP proxy that forwards whole frames both ways and lets `tamper` decide about each one (index counts frames per direction, from 0). */
async function relay(nodePort: number, tamper: Tamper): Promise<{ port: number; closedByNode: Promise<void> }> {
  let nodeClosed!: () => void;
  const closedByNode = new Promise<void>((r) => (nodeClosed = r));
  const server = createServer((client: Socket) => {
    const node = createConnection({ host: '127.0.0.1', port: nodePort });
    node.on('close', () => {
      nodeClosed();
      client.destroy();
    });
    client.on('close', () => node.destroy());
    node.on('error', () => undefined);
    client.on('error', () => undefined);
    const held: Buffer[] = [];
    const toNode = (b: Buffer) => void (node.destroyed || node.write(b));
    const toClient = (b: Buffer) => void (client.destroyed || client.write(b));
    const pipe = (from: Socket, dir: 'c2n' | 'n2c') => {
      const split = splitter();
      let index = 0;
      from.on('data', (chunk: Buffer) => {
        for (const body of split(chunk)) tamper({ toNode, toClient, dir, index: index++, frame: frameOf(body), held });
      });
    };
    pipe(client, 'c2n');
    pipe(node, 'n2c');
  });
  relays.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, closedByNode };
}

const forward: Tamper = ({ dir, frame, toNode, toClient }) => (dir === 'c2n' ? toNode(frame) : toClient(frame));
const SET_TIMEOUT = { type: 'request', id: 99, op: 'invoke', params: { module: 'config', function: 'set', args: ['timeout', 4242] } };

process.env['RELUP_RELAY_TEST_SECRET'] = SECRET.toString();
function connect(port: number): Promise<Connection> {
  return connectTarget({ config: { targets: { n: { host: '127.0.0.1', port, secretEnv: 'RELUP_RELAY_TEST_SECRET' } } }, baseDir: '/', file: undefined }, 'n');
}

describe('a relay between a real client and a real node (issue 9 item 6)', { timeout: 30_000 }, () => {
  it('forwards an untouched session: status and calls work through it', async () => {
    const { port } = await tcpNode();
    const r = await relay(port, forward);
    const c = await connect(r.port);
    expect(await c.request('status', {})).toMatchObject({ version: '1.2.2' });
    expect(await c.request('invoke', { module: 'config', function: 'get', args: ['timeout'] })).toBe(30);
    c.close();
  });

  for (const [name, injected] of [
    ['a plain request', () => encodeFrame(SET_TIMEOUT)],
    ['a request with a made-up tag', () => frameOf(Buffer.concat([encodeBody(SET_TIMEOUT), randomBytes(32)]))],
  ] as const) {
    it(`refuses ${name} injected after the handshake: connection closed, nothing executed`, async () => {
      const { port, host } = await tcpNode();
      const r = await relay(port, (ctx) => {
        forward(ctx);
        // Right after the node's auth_ok has reached the client, the relay speaks for the client.
        if (ctx.dir === 'n2c' && ctx.index === 1) ctx.toNode(injected());
      });
      const c = await connect(r.port);
      // Give the injected request every chance to land before looking.
      const closed = await Promise.race([r.closedByNode.then(() => true), new Promise<boolean>((done) => setTimeout(() => done(false), 5000))]);
      expect(await host.node.invoke('config', 'get', ['timeout'])).toBe(30);
      expect(closed).toBe(true);
      await expect(c.request('status', {})).rejects.toMatchObject({ code: expect.stringMatching(/not_authenticated|connection_closed/) });
    });
  }

  it('refuses a replayed request: it runs once, then the connection closes', async () => {
    const { port, host } = await tcpNode();
    const r = await relay(port, (ctx) => {
      forward(ctx);
      // The client's 4th frame (hello, auth, add_player, add_score) is sent twice.
      if (ctx.dir === 'c2n' && ctx.index === 3) ctx.toNode(ctx.frame);
    });
    const c = await connect(r.port);
    await c.request('call', { process: 'game', message: { type: 'add_player', id: 'p', name: 'P' } });
    const score = c.request('call', { process: 'game', message: { type: 'add_score', id: 'p', points: 5 } }).catch((e: unknown) => e);
    await r.closedByNode;
    await score;
    expect(await host.node.call('game', { type: 'get_player', id: 'p' })).toEqual({ name: 'P', score: 5 });
  });

  it('refuses reordered requests: neither runs', async () => {
    const { port, host } = await tcpNode();
    const r = await relay(port, (ctx) => {
      if (ctx.dir === 'c2n' && ctx.index === 2) return void ctx.held.push(ctx.frame);
      forward(ctx);
      if (ctx.dir === 'c2n' && ctx.index === 3) ctx.toNode(ctx.held.pop()!);
    });
    const c = await connect(r.port);
    const a = c.request('invoke', { module: 'config', function: 'set', args: ['timeout', 41] });
    const b = c.request('invoke', { module: 'config', function: 'set', args: ['log_level', 'DEBUG'] });
    const settled = Promise.allSettled([a, b]);
    await r.closedByNode;
    expect((await settled).map((x) => x.status)).toEqual(['rejected', 'rejected']);
    expect(await host.node.invoke('config', 'getAll', [])).toMatchObject({ timeout: 30, log_level: 'INFO' });
  });

  it('refuses a dropped frame: the next one does not verify and does not run', async () => {
    const { port, host } = await tcpNode();
    const r = await relay(port, (ctx) => {
      if (ctx.dir === 'c2n' && ctx.index === 2) return;
      forward(ctx);
    });
    const c = await connect(r.port);
    const a = c.request('invoke', { module: 'config', function: 'set', args: ['timeout', 41] });
    const b = c.request('invoke', { module: 'config', function: 'set', args: ['log_level', 'DEBUG'] });
    const settled = Promise.allSettled([a, b]);
    await r.closedByNode;
    expect((await settled).map((x) => x.status)).toEqual(['rejected', 'rejected']);
    expect(await host.node.invoke('config', 'getAll', [])).toMatchObject({ timeout: 30, log_level: 'INFO' });
  });

  it("refuses a node frame reflected back to the node", async () => {
    const { port } = await tcpNode();
    const r = await relay(port, (ctx) => {
      forward(ctx);
      if (ctx.dir === 'n2c' && ctx.index === 2) ctx.toNode(ctx.frame);
    });
    const c = await connect(r.port);
    await c.request('status', {});
    await r.closedByNode;
    await expect(c.request('status', {})).rejects.toBeTruthy();
  });

  it('makes the client refuse a result injected by the relay, and never deliver it', async () => {
    const { port } = await tcpNode();
    let injected = false;
    const r = await relay(port, (ctx) => {
      // Hold the node's real answer; answer for it.
      if (ctx.dir === 'n2c' && ctx.index === 2) {
        injected = true;
        return ctx.toClient(encodeFrame({ type: 'result', id: 1, result: { version: '6.6.6' } }));
      }
      forward(ctx);
    });
    const c = await connect(r.port);
    await expect(c.request('status', {})).rejects.toMatchObject({ code: 'not_authenticated' });
    expect(injected).toBe(true);
  });

  it('a relup node process and the relup CLI: the request injected after the handshake never lands', async () => {
    const dir = await demoCopy();
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    await writeFile(join(dir, 'run', 'secret'), `${SECRET.toString()}\n`, { mode: 0o600 });
    const node = execa('node', [CLI, 'node', 'start', '--release', 'releases/1.2.2', '--socket', 'run/n.sock', '--state-dir', 'state', '--port', '0', '--listen', '0', '--secret-file', 'run/secret'], { cwd: dir, reject: false, all: true, env: { NO_COLOR: '1' } });
    let out = '';
    node.all?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await until(() => /control over TCP: 127\.0\.0\.1:\d+/.test(out), 15_000);
      const port = Number(/control over TCP: 127\.0\.0\.1:(\d+)/.exec(out)![1]);
      let injected = false;
      const r = await relay(port, (ctx) => {
        forward(ctx);
        if (ctx.dir === 'n2c' && ctx.index === 1) {
          injected = true;
          ctx.toNode(encodeFrame(SET_TIMEOUT));
        }
      });
      await writeFile(join(dir, 'relup.config.yaml'), `targets:\n  via-relay:\n    host: 127.0.0.1\n    port: ${r.port}\n    secretFile: run/secret\n  direct:\n    socket: run/n.sock\n`);
      const through = await runCli(['status', '--target', 'via-relay'], dir);
      expect(injected).toBe(true);
      const direct = await connect(port);
      expect(await direct.request('invoke', { module: 'config', function: 'get', args: ['timeout'] })).toBe(30);
      direct.close();
      expect(through.exitCode).toBe(1);
    } finally {
      node.kill('SIGTERM');
      await node;
    }
  });
});
