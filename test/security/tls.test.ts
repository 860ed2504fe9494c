import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/client/connection.js';
import { CLI } from '../helpers/repo-paths.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { testdir } from '../helpers/testdir.js';
import { until } from '../runtime/helpers/demo-node.js';
import { SECRET, tcpNode } from './tcp-node.js';

/**
 * Confidentiality for remote nodes (issue 9 item 6): the TCP control channel
 * inside TLS 1.3 (node:tls), with the challenge and sealed frames on top.
 * Certificates are made with the openssl command line, as an operator would.
 */
async function certificate(dir: string, name = 'tls'): Promise<{ cert: string; key: string; fingerprint: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=relup-test-node', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  await chmod(key, 0o600);
  return { cert, key, fingerprint: new X509Certificate(await readFile(cert)).fingerprint256 };
}

const relays: Server[] = [];
afterEach(() => {
  for (const r of relays.splice(0)) r.close();
});

/** A TCP relay that records every byte the client sends, and can flip one byte of the stream after `flipAfter` bytes. */
async function recordingRelay(port: number, flipAfter?: number) {
  const seen: Buffer[] = [];
  let count = 0;
  const server = createServer((client: Socket) => {
    const node = createConnection({ host: '127.0.0.1', port });
    node.on('error', () => client.destroy());
    client.on('error', () => node.destroy());
    node.on('close', () => client.destroy());
    client.on('close', () => node.destroy());
    client.on('data', (chunk: Buffer) => {
      const copy = Buffer.from(chunk);
      if (flipAfter !== undefined && count <= flipAfter && count + copy.length > flipAfter) copy[flipAfter - count]! ^= 0x01;
      count += copy.length;
      seen.push(copy);
      node.write(copy);
    });
    node.pipe(client);
  });
  relays.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, seen: () => Buffer.concat(seen) };
}

const MARKER = 'confidential-marker-5b1e';

describe('TLS for the TCP control channel', { timeout: 60_000 }, () => {
  it('hides requests from the wire: a relay sees no JSON, while without TLS it does', async () => {
    const dir = await testdir();
    const tls = await certificate(dir);
    const plainNode = await tcpNode();
    const plainRelay = await recordingRelay(plainNode.port);
    const plain = await Connection.open({ kind: 'tcp', host: '127.0.0.1', port: plainRelay.port }, { secret: SECRET });
    await plain.request('invoke', { module: 'config', function: 'set', args: ['log_level', MARKER] });
    plain.close();
    expect(plainRelay.seen().includes(MARKER)).toBe(true);

    const tlsNode = await tcpNode({ tls: { cert: await readFile(tls.cert), key: await readFile(tls.key) } });
    const relay = await recordingRelay(tlsNode.port);
    const c = await Connection.open({ kind: 'tcp', host: '127.0.0.1', port: relay.port }, { secret: SECRET, tls: { ca: await readFile(tls.cert) } });
    expect(await c.request('invoke', { module: 'config', function: 'set', args: ['log_level', MARKER] })).toBeDefined();
    expect(await tlsNode.host.node.invoke('config', 'get', ['log_level'])).toBe(MARKER);
    c.close();
    const wire = relay.seen();
    expect(wire.length).toBeGreaterThan(0);
    expect(wire.includes(MARKER)).toBe(false);
    expect(wire.includes('"type"')).toBe(false);
  });

  it('trusts a pinned fingerprint, refuses another certificate, and fails on an altered byte', async () => {
    const dir = await testdir();
    const tls = await certificate(dir);
    const other = await certificate(dir, 'other');
    const node = await tcpNode({ tls: { cert: await readFile(tls.cert), key: await readFile(tls.key) } });
    const where = { kind: 'tcp' as const, host: '127.0.0.1', port: node.port };
    const pinned = await Connection.open(where, { secret: SECRET, tls: { fingerprint: tls.fingerprint } });
    expect(await pinned.request('status', {})).toMatchObject({ version: '1.2.2' });
    pinned.close();
    await expect(Connection.open(where, { secret: SECRET, tls: { fingerprint: other.fingerprint } })).rejects.toMatchObject({ code: 'not_authenticated' });
    await expect(Connection.open(where, { secret: SECRET, tls: { ca: await readFile(other.cert) } })).rejects.toMatchObject({ code: 'not_authenticated' });
    // A client that does not speak TLS gets nowhere.
    await expect(Connection.open(where, { secret: SECRET, timeoutMs: 2000 })).rejects.toBeTruthy();
    // TLS's own integrity: one flipped byte after the handshake ends the connection.
    const relay = await recordingRelay(node.port, 2000);
    const c = await Connection.open({ kind: 'tcp', host: '127.0.0.1', port: relay.port }, { secret: SECRET, tls: { ca: await readFile(tls.cert) } }).catch((e: unknown) => e);
    const outcome = c instanceof Connection ? await c.request('invoke', { module: 'config', function: 'set', args: ['timeout', 'x'.repeat(3000)] }).then(() => 'answered', () => 'refused') : 'refused';
    expect(outcome).toBe('refused');
    expect(await node.host.node.invoke('config', 'get', ['timeout'])).toBe(30);
  });

  it('relup node start --tls-cert/--tls-key serves a target configured with tls.ca or tls.fingerprint', async () => {
    const dir = await demoCopy();
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    const tls = await certificate(join(dir, 'run'));
    await writeFile(join(dir, 'run', 'secret'), `${SECRET.toString()}\n`, { mode: 0o600 });
    const node = execa('node', [CLI, 'node', 'start', '--release', 'releases/1.2.2', '--socket', 'run/n.sock', '--state-dir', 'state', '--port', '0', '--listen', '0', '--secret-file', 'run/secret', '--tls-cert', 'run/tls.crt', '--tls-key', 'run/tls.key'], { cwd: dir, reject: false, all: true, env: { NO_COLOR: '1' } });
    let out = '';
    node.all?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await until(() => /control over TCP: 127\.0\.0\.1:\d+ \(TLS 1\.3/.test(out), 15_000);
      const port = Number(/control over TCP: 127\.0\.0\.1:(\d+)/.exec(out)![1]);
      const config = (tlsYaml: string) => `defaultTarget: remote\ntargets:\n  remote:\n    host: 127.0.0.1\n    port: ${port}\n    secretFile: run/secret\n${tlsYaml}`;
      await writeFile(join(dir, 'relup.config.yaml'), config('    tls:\n      ca: run/tls.crt\n'));
      const byCa = await runCli(['status', '--json'], dir);
      expect(byCa.exitCode, byCa.stderr).toBe(0);
      expect(JSON.parse(byCa.stdout).version).toBe('1.2.2');
      await writeFile(join(dir, 'relup.config.yaml'), config(`    tls:\n      fingerprint: "${tls.fingerprint}"\n`));
      expect((await runCli(['status', '--json'], dir)).exitCode).toBe(0);
      await writeFile(join(dir, 'relup.config.yaml'), config(`    tls:\n      fingerprint: "${'AB:'.repeat(31)}AB"\n`));
      const wrong = await runCli(['status'], dir);
      expect(wrong.exitCode).toBe(1);
      expect(wrong.stderr).toContain('fingerprint');
    } finally {
      node.kill('SIGTERM');
      await node;
    }
  });

  it('relup node start refuses a TLS key others can read, and TLS options without --listen', async () => {
    const dir = await demoCopy();
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    await certificate(join(dir, 'run'));
    await writeFile(join(dir, 'run', 'secret'), `${SECRET.toString()}\n`, { mode: 0o600 });
    await chmod(join(dir, 'run', 'tls.key'), 0o644);
    const open = await runCli(['node', 'start', '--release', 'releases/1.2.2', '--socket', 'run/n.sock', '--listen', '0', '--secret-file', 'run/secret', '--tls-cert', 'run/tls.crt', '--tls-key', 'run/tls.key'], dir);
    expect(open.exitCode).toBe(2);
    expect(open.stderr).toContain('chmod 600');
    const noListen = await runCli(['node', 'start', '--release', 'releases/1.2.2', '--socket', 'run/n.sock', '--tls-cert', 'run/tls.crt', '--tls-key', 'run/tls.key'], dir);
    expect(noListen.exitCode).toBe(2);
    expect(noListen.stderr).toContain('--listen');
  });
});
