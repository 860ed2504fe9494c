import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/client/connection.js';
import { connectTarget } from '../../src/cli/connect.js';
import type { LoadedConfig } from '../../src/config/load-config.js';
import { clientProof, newNonce } from '../../src/protocol/auth.js';
import { encodeFrame, FrameDecoder } from '../../src/protocol/framing.js';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { rawClient as rawTcp } from '../protocol/raw-client.js';
import { ControlServer, FailureTracker } from '../../src/runtime/node-host/control-server.js';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';

const SECRET = Buffer.from('correct horse battery staple 42');
const open: { host: NodeHost; servers: ControlServer[] }[] = [];
afterEach(async () => {
  for (const { host, servers } of open.splice(0)) {
    for (const s of servers) await s.close();
    await host.stop();
  }
});

async function tcpNode() {
  const dir = await testdir();
  const host = await NodeHost.start({ release: join(DEMO_RELEASES, '1.2.2'), stateDir: join(dir, 'state'), config: { port: 0, tickMs: 3_600_000 } });
  const server = await ControlServer.listenTcp(host, { host: '127.0.0.1', port: 0, secret: SECRET });
  open.push({ host, servers: [server] });
  return { port: server.address()!.port, dir };
}

const target = (port: number, secretEnv: string): LoadedConfig => ({ config: { targets: { n: { host: '127.0.0.1', port, secretEnv } } }, baseDir: '/', file: undefined });

const rawClient = (port: number) => rawTcp({ host: '127.0.0.1', port });

describe('TCP control channel', { timeout: 30_000 }, () => {
  it('serves a client that knows the secret, which never crosses the wire', async () => {
    const { port } = await tcpNode();
    process.env['RELUP_TEST_SECRET'] = SECRET.toString();
    const c = await connectTarget(target(port, 'RELUP_TEST_SECRET'), 'n');
    expect(((await c.request('status', {})) as { version: string }).version).toBe('1.2.2');
    c.close();

    const raw = await rawClient(port);
    const hello = await raw.handshake(SECRET);
    expect(hello).toMatchObject({ auth: 'challenge', nonce: expect.any(String), protocol: PROTOCOL_VERSION });
    raw.send({ type: 'request', id: 1, op: 'status', params: {} });
    expect(await raw.next()).toMatchObject({ type: 'result', id: 1 });
    expect(Buffer.concat(raw.sent).includes(SECRET)).toBe(false);
    raw.end();
  });

  it('rejects a wrong secret, a request before authenticating, and a replayed handshake', async () => {
    const { port } = await tcpNode();
    process.env['RELUP_WRONG'] = 'not the secret at all, sorry';
    await expect(connectTarget(target(port, 'RELUP_WRONG'), 'n')).rejects.toMatchObject({ code: 'not_authenticated' });
    await expect(Connection.open({ kind: 'tcp', host: '127.0.0.1', port })).rejects.toMatchObject({ code: 'not_authenticated' });

    const early = await rawClient(port);
    early.send({ type: 'hello', protocol: PROTOCOL_VERSION, client: 't' });
    await early.next();
    early.send({ type: 'request', id: 1, op: 'status', params: {} });
    expect(await early.next()).toMatchObject({ type: 'error', code: 'not_authenticated' });

    // Record a successful handshake, then replay its auth frame on a new connection.
    const first = await rawClient(port);
    first.send({ type: 'hello', protocol: PROTOCOL_VERSION, client: 't' });
    const h1 = await first.next();
    const cn = newNonce();
    const recorded = { type: 'auth', nonce: cn, proof: clientProof(SECRET, h1['nonce'] as string, cn) };
    first.send(recorded);
    expect(await first.next()).toMatchObject({ type: 'auth_ok' });
    first.end();
    const replay = await rawClient(port);
    replay.send({ type: 'hello', protocol: PROTOCOL_VERSION, client: 't' });
    const h2 = await replay.next();
    expect(h2['nonce']).not.toBe(h1['nonce']);
    replay.send(recorded);
    expect(await replay.next()).toMatchObject({ type: 'error', code: 'not_authenticated' });
  });

  it('slows repeated failures from one address, and forgets them after a success', () => {
    const t = new FailureTracker();
    expect([t.failed('a'), t.failed('a'), t.failed('a'), t.failed('b')]).toEqual([100, 200, 400, 100]);
    for (let i = 0; i < 10; i++) t.failed('a');
    expect(t.failed('a')).toBe(5000);
    t.succeeded('a');
    expect(t.failed('a')).toBe(100);
  });

  it('makes the client check the node proves the secret too', async () => {
    // An impostor that accepts any proof.
    const server = createServer((s) => {
      const d = new FrameDecoder();
      s.on('data', (c: Buffer) => {
        for (const m of d.push(c) as Record<string, unknown>[]) {
          if (m['type'] === 'hello') s.write(encodeFrame({ type: 'hello', protocol: PROTOCOL_VERSION, node: { name: 'x', version: '1.0.0', runtime: 'node' }, auth: 'challenge', nonce: newNonce() }));
          if (m['type'] === 'auth') s.write(encodeFrame({ type: 'auth_ok', proof: Buffer.alloc(32).toString('base64') }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    process.env['RELUP_TEST_SECRET'] = SECRET.toString();
    await expect(connectTarget(target(port, 'RELUP_TEST_SECRET'), 'n')).rejects.toThrow(/could not prove it knows the secret/);
    server.close();
  });

  it('refuses a secret shorter than 16 bytes', async () => {
    const dir = await testdir();
    await mkdir(join(dir, 'state'));
    const host = await NodeHost.start({ release: join(DEMO_RELEASES, '1.2.2'), stateDir: join(dir, 'state'), config: { port: 0 } });
    open.push({ host, servers: [] });
    await expect(ControlServer.listenTcp(host, { host: '127.0.0.1', port: 0, secret: Buffer.from('short') })).rejects.toThrow(/at least 16/);
  });
});
