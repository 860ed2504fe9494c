import { connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { FrameDecoder, encodeFrame } from '../../../src/protocol/framing.js';
import { applyOutcomeSchema } from '../../../src/protocol/apply-outcome.js';
import { statusResultSchema } from '../../../src/protocol/status-result.js';
import { CLI } from '../../helpers/repo-paths.js';
import { runCli } from '../../helpers/run-cli.js';
import { luaGate, sillyBinary } from './lua-env.js';
import { SECRET, apiClient, open, sillyProject, startNode } from './silly-fixture.js';

/**
 * A real Silly process running the relup agent, driven by the real relup
 * client and CLI over real sockets: upgrade and rollback of the guide's
 * examples with one connection kept open, a failing migration, the
 * handshake's refusals, a client and a node killed mid-upgrade, busy.
 */
const found = await sillyBinary();
const ready = await luaGate('the Silly node tests (test/runtime/lua/silly-node.test.ts)', found.missing);
const silly = found.binary!;
const env = { RELUP_SECRET: SECRET };

describe.runIf(ready)('a Lua node on Silly', { timeout: 60_000 }, () => {
  test('apply 1.2.3 and roll back: state survives, the open connection answers with the new code, then the old', async () => {
    const project = await sillyProject();
    const { target, apiPort } = await startNode(silly, project, { version: '1.2.2' });
    const api = await apiClient(apiPort);
    await api.ask({ op: 'route' });
    await api.ask({ op: 'route' });
    await api.ask({ op: 'add_player', id: 1, name: 'ann' });
    await api.ask({ op: 'add_score', id: 1, points: 50 });
    await api.ask({ op: 'config_set', key: 'timeout', value: 60 });

    const conn = await open(target);
    const events: Record<string, unknown>[] = [];
    const { stepEventSchema } = await import('../../../src/protocol/apply-outcome.js');
    // The outcome and the events follow the protocol's schemas, like every runtime's.
    const plan = await runCli(['plan', '1.2.2', '1.2.3', '--json'], project.dir);
    const packed = await runCli(['release', 'pack', '1.2.3', '--out-dir', 'out'], project.dir);
    expect(packed.exitCode, packed.stderr).toBe(0);
    const bundle = (await readFile(join(project.dir, 'out', 'silly-demo-1.2.3.tar.gz'))).toString('base64');
    const outcome = await conn.request('apply', { script: JSON.parse(plan.stdout), bundle }, (e) => events.push(e));
    expect(applyOutcomeSchema.safeParse(outcome).error).toBeUndefined();
    expect(outcome).toMatchObject({ status: 'committed', version: '1.2.3', permanent: '1.2.3', previous: ['1.2.2'], absent: { route: ['get_stats.error_count'], config: ['set.validators'] } });
    expect(events.length).toBeGreaterThan(17);
    for (const e of events) expect(stepEventSchema.safeParse(e).error).toBeUndefined();
    const status0 = await conn.request('status', {});
    expect(statusResultSchema.safeParse(status0).error).toBeUndefined();
    expect(status0).toMatchObject({ version: '1.2.3', installed: ['1.2.3', '1.2.2'], previous: ['1.2.2'] });
    conn.close();

    expect(await api.ask({ op: 'versions' })).toEqual({ route: '1.2.3', game: '1.2.3', config: '1.2.3' });
    expect(await api.ask({ op: 'route' })).toEqual({ status: 400, body: 'Error: name is required' });
    expect(await api.ask({ op: 'route', name: 'bob' })).toEqual({ status: 200, body: 'Hello, bob (visitor #4)' });
    expect(await api.ask({ op: 'stats' })).toEqual({ total: 4, errors: 1 });
    expect(await api.ask({ op: 'player', id: 1 })).toEqual({ name: 'ann', score: 50, level: 1, exp: 0 });
    // add_exp is new in 1.2.3 and must see the live players.
    expect(await api.ask({ op: 'add_score', id: 1, points: 1000 })).toEqual({ name: 'ann', score: 1050, level: 2, exp: 0 });
    expect(await api.ask({ op: 'config_all' })).toEqual({ max_connections: 1000, timeout: 60, log_level: 'INFO', enable_cache: true, cache_ttl: 300 });
    expect((await api.ask({ op: 'config_set', key: 'timeout', value: -1 })).ok).toBe(false);

    const down = await runCli(['rollback', '--target', target, '--json'], project.dir, env);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(await api.ask({ op: 'versions' })).toEqual({ route: '1.2.2', game: '1.2.2', config: '1.2.2' });
    expect(await api.ask({ op: 'route' })).toEqual({ status: 200, body: 'Hello, visitor #5' });
    expect(await api.ask({ op: 'player', id: 1 })).toEqual({ name: 'ann', score: 1050 });
    expect(await api.ask({ op: 'config_all' })).toEqual({ max_connections: 1000, timeout: 60, log_level: 'INFO' });
    api.close();

    const status = await runCli(['status', '--target', target, '--json'], project.dir, env);
    const s = JSON.parse(status.stdout);
    expect(s.version).toBe('1.2.2');
    expect(s.history.map((e: { op: string; status: string }) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'apply:committed', 'apply:committed']);
  });

  test('a migration that throws rolls back with byte-identical state', async () => {
    const project = await sillyProject();
    const { target, apiPort } = await startNode(silly, project, { version: '1.2.2' });
    const api = await apiClient(apiPort);
    await api.ask({ op: 'add_player', id: 1, name: 'ann' });
    await api.ask({ op: 'add_player', id: 2, name: 'bob' });
    await api.ask({ op: 'add_score', id: 2, points: 320 });
    expect((await runCli(['apply', '--target', target, '--to', '1.2.3'], project.dir, env)).exitCode).toBe(0);
    await api.ask({ op: 'route', name: 'cy' });

    const conn = await open(target);
    const before = JSON.stringify(await conn.request('states', {}));
    const failed = await runCli(['apply', '--target', target, '--to', '1.2.4', '--json'], project.dir, env);
    expect(failed.exitCode).toBe(1);
    const outcome = JSON.parse(failed.stdout);
    const o = outcome.outcome ?? outcome;
    expect(o.status).toBe('rolled-back');
    expect(o.failure.code).toBe('module-error');
    expect(o.failure.step.op).toBe('migrate');
    expect(o.rollback.complete).toBe(true);
    const after = JSON.stringify(await conn.request('states', {}));
    expect(after).toBe(before);
    expect(await api.ask({ op: 'player', id: 2 })).toEqual({ name: 'bob', score: 320, level: 1, exp: 0 });
    expect(await api.ask({ op: 'versions' })).toEqual({ route: '1.2.3', game: '1.2.3', config: '1.2.3' });
    const status = (await conn.request('status', {})) as { version: string; history: { status: string; failedStep?: string }[] };
    expect(status.version).toBe('1.2.3');
    expect(status.history.at(-1)).toMatchObject({ status: 'rolled-back' });
    conn.close();
    api.close();
  });

  test('a wrong secret and a replayed handshake are refused', async () => {
    const project = await sillyProject();
    const { target } = await startNode(silly, project, { version: '1.2.2' });
    await expect(open(target, 'not-the-secret-0123456789abcdef')).rejects.toMatchObject({ code: 'not_authenticated' });

    // Record a good handshake, then replay the client's frames on a new connection.
    const [host, port] = target.split(':');
    const session = await rawHandshake(host!, Number(port), async (hello) => {
      const { createHmac, randomBytes } = await import('node:crypto');
      const clientNonce = randomBytes(32).toString('base64');
      const proof = createHmac('sha256', SECRET).update(`relup-auth-v1\n${hello.nonce}\n${clientNonce}`).digest('base64');
      return { type: 'auth', nonce: clientNonce, proof };
    });
    expect(session.answer.type).toBe('auth_ok');
    const replay = await rawHandshake(host!, Number(port), async () => session.auth);
    expect(replay.answer).toMatchObject({ type: 'error', code: 'not_authenticated' });
  });

  test('hostile frames: an oversized handshake frame, and a sealed frame with a bad tag, close the connection', async () => {
    const project = await sillyProject();
    const { target } = await startNode(silly, project, { version: '1.2.2' });
    const [host, port] = target.split(':');
    // A handshake frame may be 4 KiB at most: refused as soon as its header arrives.
    const big = await rawExchange(host!, Number(port), [Buffer.from([0, 1, 0, 0])]);
    expect(big.frames[0]).toMatchObject({ type: 'error', code: 'bad_frame' });
    expect(big.closed).toBe(true);
    // After a good handshake, a request whose tag is wrong (an injected frame) ends the session.
    const { createHmac, randomBytes } = await import('node:crypto');
    const { frameOf } = await import('../../../src/protocol/framing.js');
    const socket = connect(Number(port), host!);
    const decoder = new FrameDecoder();
    const bodies: Buffer[] = [];
    let closed = false;
    socket.on('data', (c) => {
      decoder.feed(c);
      for (let b = decoder.next(); b !== undefined; b = decoder.next()) bodies.push(b);
    });
    socket.on('close', () => (closed = true));
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write(encodeFrame({ type: 'hello', protocol: 2, client: 'tamper-test' }));
    await waitFor(() => bodies.length >= 1);
    const hello = JSON.parse(bodies[0]!.toString()) as { nonce: string };
    const clientNonce = randomBytes(32).toString('base64');
    socket.write(encodeFrame({ type: 'auth', nonce: clientNonce, proof: createHmac('sha256', SECRET).update(`relup-auth-v1\n${hello.nonce}\n${clientNonce}`).digest('base64') }));
    await waitFor(() => bodies.length >= 2);
    expect(JSON.parse(bodies[1]!.toString()).type).toBe('auth_ok');
    const json = Buffer.from(JSON.stringify({ type: 'request', id: 1, op: 'status', params: {} }));
    socket.write(frameOf(Buffer.concat([json, randomBytes(32)])));
    await waitFor(() => closed);
    // The node's last word is sealed; it is not a status result.
    expect(bodies.slice(2).some((b) => b.toString().includes('"result"'))).toBe(false);
  });

  test('an idle control connection is closed; an active one is not', async () => {
    const project = await sillyProject();
    const { target } = await startNode(silly, project, { version: '1.2.2', idleTimeoutMs: 400 });
    const idle = await open(target);
    const busy = await open(target);
    for (let i = 0; i < 8; i++) {
      await busy.request('status', {});
      await new Promise((r) => setTimeout(r, 100));
    }
    await expect(idle.request('status', {})).rejects.toBeDefined();
    expect(((await busy.request('status', {})) as { version: string }).version).toBe('1.2.2');
    idle.close();
    busy.close();
  });

  test('a client killed mid-upgrade: the node finishes on its own', async () => {
    const project = await sillyProject();
    // Step 3 (stage config) waits, so the client can be killed while the node applies.
    const { target, node } = await startNode(silly, project, { version: '1.2.2', env: { RELUP_FAULTS: '3:pause=1500' } });
    const client = execa('node', [CLI, 'apply', '--target', target, '--to', '1.2.3'], { cwd: project.dir, env: { ...env, NO_COLOR: '1' }, reject: false });
    await waitFor(() => node.output().includes('RELUP_FAULTS: step 3'));
    client.kill('SIGKILL');
    await client;
    const conn = await open(target);
    await waitFor(async () => ((await conn.request('status', {})) as { upgrading: boolean }).upgrading === false);
    const status = (await conn.request('status', {})) as { version: string; permanent: string; history: { op: string; status: string }[] };
    expect(status.version).toBe('1.2.3');
    expect(status.permanent).toBe('1.2.3');
    expect(status.history.at(-1)).toMatchObject({ op: 'apply', status: 'committed' });
    conn.close();
  });

  test('a node killed and restarted boots its permanent release; an upgrade cut short is recorded as interrupted', async () => {
    const project = await sillyProject();
    const first = await startNode(silly, project, { version: '1.2.2' });
    expect((await runCli(['apply', '--target', first.target, '--to', '1.2.3'], project.dir, env)).exitCode).toBe(0);
    await first.node.kill();

    // Restarted without a release, and killed at step index 5 of 1.2.3 → 1.2.4 (switch game, after the point of no return).
    const second = await startNode(silly, project, { env: { RELUP_FAULTS: '5:exit' } });
    const conn = await open(second.target);
    expect(((await conn.request('status', {})) as { version: string }).version).toBe('1.2.3');
    conn.close();
    const killed = await runCli(['apply', '--target', second.target, '--to', '1.2.4'], project.dir, env);
    expect(killed.exitCode).not.toBe(0);
    expect(second.node.output()).toContain('RELUP_FAULTS: step 5 (switch game): the node dies now');
    await second.node.exited;

    const third = await startNode(silly, project);
    const conn3 = await open(third.target);
    const status = (await conn3.request('status', {})) as { version: string; permanent: string; history: { op: string; status: string; to: string }[] };
    expect(status.version).toBe('1.2.3');
    expect(status.permanent).toBe('1.2.3');
    const tail = status.history.slice(-3).map((e) => `${e.op}:${e.status}:${e.to}`);
    expect(tail).toEqual(['boot:booted:1.2.3', 'apply:interrupted:1.2.4', 'boot:booted:1.2.3']);
    conn3.close();
    const history = JSON.parse(await readFile(join(project.stateDir, 'history.json'), 'utf8'));
    expect(history.permanent).toBe('1.2.3');
  });

  test('with a public key, only signed bundles are booted and applied', async () => {
    const project = await sillyProject();
    expect((await runCli(['keys', 'generate'], project.dir)).exitCode).toBe(0);
    for (const v of ['1.2.2', '1.2.3']) {
      expect((await runCli(['release', 'pack', v], project.dir)).exitCode).toBe(0);
      const signed = await runCli(['release', 'sign', v, '--key', 'keys/relup.key'], project.dir);
      expect(signed.exitCode, signed.stderr).toBe(0);
    }
    const { startSillyNode } = await import('../../../src/runtime/lua/silly-node.js');
    const base = { silly, stateDir: project.stateDir, listen: { host: '127.0.0.1', port: 0 }, secretFile: project.secretFile, publicKeyFile: join(project.dir, 'keys', 'relup.pub') };
    // A release directory is not signed: refused before boot.
    await expect(startSillyNode({ ...base, release: join(project.dir, 'releases', '1.2.2') })).rejects.toThrow(/only accepts signed bundles/);
    const node = await startSillyNode({ ...base, release: join(project.dir, 'releases', 'silly-demo-1.2.2.tar.gz') });
    try {
      const target = node.address;
      // 1.2.3's signed bundle is uploaded; 1.2.4 has no bundle, so the client packs an unsigned one.
      const up = await runCli(['apply', '--target', target, '--to', '1.2.3', '--json'], project.dir, env);
      expect(up.exitCode, up.stderr).toBe(0);
      const refused = await runCli(['apply', '--target', target, '--to', '1.2.4', '--json'], project.dir, env);
      expect(refused.exitCode).toBe(1);
      expect(JSON.parse(refused.stdout)).toMatchObject({ status: 'refused', version: '1.2.3', failure: { code: 'bundle-invalid' } });
    } finally {
      await node.kill();
    }
  });

  test('a step that hangs past the deadline is stopped and rolled back; a migration that tries to wait is refused', async () => {
    const project = await sillyProject();
    // Step index 10 of 1.2.2 → 1.2.3 (step 11 as the CLI numbers them) is `switch game`, after the point of no return: it loops forever.
    const { target, apiPort } = await startNode(silly, project, { version: '1.2.2', env: { RELUP_FAULTS: '10:hang' } });
    const api = await apiClient(apiPort);
    await api.ask({ op: 'add_player', id: 1, name: 'ann' });
    const conn = await open(target);
    const before = JSON.stringify(await conn.request('states', {}));
    const hung = await runCli(['apply', '--target', target, '--to', '1.2.3', '--deadline', '500', '--json'], project.dir, env);
    expect(hung.exitCode).toBe(1);
    expect(JSON.parse(hung.stdout)).toMatchObject({ status: 'rolled-back', version: '1.2.2', failure: { code: 'deadline', step: { index: 11, op: 'switch', target: 'game' } }, rollback: { complete: true } });
    expect(JSON.stringify(await conn.request('states', {}))).toBe(before);
    // The node still serves: the loop was cut by the deadline, not the process.
    expect(await api.ask({ op: 'versions' })).toEqual({ route: '1.2.2', game: '1.2.2', config: '1.2.2' });
    api.close();
    conn.close();

    // A migration that sleeps would let other code see half an upgrade: it fails the step, and everything is undone.
    const game = join(project.dir, 'releases', '1.2.3', 'game.lua');
    const { readFile: rf, writeFile: wf } = await import('node:fs/promises');
    const source = await rf(game, 'utf8');
    await wf(game, source.replace('function M.add_levels(info)\n', 'function M.add_levels(info)\n\trequire("silly.time").sleep(10)\n'));
    const project2 = { ...project, stateDir: join(project.dir, 'state2') };
    const second = await startNode(silly, project2, { version: '1.2.2' });
    const waited = await runCli(['apply', '--target', second.target, '--to', '1.2.3', '--json'], project.dir, env);
    expect(waited.exitCode).toBe(1);
    expect(JSON.parse(waited.stdout)).toMatchObject({ status: 'rolled-back', version: '1.2.2', failure: { code: 'step-yielded', step: { op: 'migrate' } }, rollback: { complete: true } });
    // The abandoned wait's timer fires later and must find nothing of the agent to resume: the node keeps working.
    await new Promise((r) => setTimeout(r, 200));
    const api2 = await apiClient(second.apiPort);
    expect(await api2.ask({ op: 'versions' })).toEqual({ route: '1.2.2', game: '1.2.2', config: '1.2.2' });
    const again = await runCli(['apply', '--target', second.target, '--to', '1.2.3', '--json'], project.dir, env);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: 'rolled-back', failure: { code: 'step-yielded' } });
    expect(await api2.ask({ op: 'route', name: 'x' })).toEqual({ status: 200, body: 'Hello, visitor #1' });
    api2.close();
  });

  test('a release applied with --no-permanent does not survive a restart', async () => {
    const project = await sillyProject();
    const first = await startNode(silly, project, { version: '1.2.2' });
    const up = await runCli(['apply', '--target', first.target, '--to', '1.2.3', '--no-permanent', '--json'], project.dir, env);
    expect(JSON.parse(up.stdout)).toMatchObject({ status: 'committed', version: '1.2.3', permanent: '1.2.2' });
    await first.node.stop();
    const again = await startNode(silly, project);
    expect(again.node.notice).toContain('booting the permanent release 1.2.2');
    const conn = await open(again.target);
    expect(await conn.request('status', {})).toMatchObject({ version: '1.2.2', permanent: '1.2.2', installed: ['1.2.3', '1.2.2'] });
    conn.close();
  });

  test('invoke answers what the function returns: nothing is null (a health check reads it), not an empty object', async () => {
    const project = await sillyProject();
    const { target } = await startNode(silly, project, { version: '1.2.2' });
    const conn = await open(target);
    expect(await conn.request('invoke', { module: 'config', function: 'get', args: ['no_such_key'] })).toBeNull();
    expect(await conn.request('invoke', { module: 'config', function: 'get', args: ['timeout'] })).toBe(30);
    conn.close();
  });

  test('a second node on the same state directory is refused, naming the first', async () => {
    const project = await sillyProject();
    const first = await startNode(silly, project, { version: '1.2.2' });
    await expect(startNode(silly, project, { version: '1.2.2' })).rejects.toThrow(new RegExp(`state-dir-locked: .*pid ${first.node.pid}`));
    const conn = await open(first.target);
    expect(((await conn.request('status', {})) as { version: string }).version).toBe('1.2.2');
    conn.close();
  });

  test('concurrent applies: the second gets busy, status still answers', async () => {
    const project = await sillyProject();
    const { target, node } = await startNode(silly, project, { version: '1.2.2', env: { RELUP_FAULTS: '3:pause=1500' } });
    const first = execa('node', [CLI, 'apply', '--target', target, '--to', '1.2.3'], { cwd: project.dir, env: { ...env, NO_COLOR: '1' }, reject: false });
    await waitFor(() => node.output().includes('RELUP_FAULTS: step 3'));
    const conn = await open(target);
    expect(((await conn.request('status', {})) as { upgrading: boolean }).upgrading).toBe(true);
    const second = await runCli(['apply', '--target', target, '--to', '1.2.3'], project.dir, env);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain('already applying');
    // The protocol's code: busy is answered before anything of the request is looked at.
    await expect(conn.request('apply', { script: {}, bundle: '' })).rejects.toMatchObject({ code: 'busy' });
    const r = await first;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(((await conn.request('status', {})) as { version: string }).version).toBe('1.2.3');
    conn.close();
  });

  test('relup node start boots a lua release in Silly; apply --dry-run changes nothing; SIGTERM stops it', async () => {
    const project = await sillyProject();
    const { freePort } = await import('../../../src/runtime/lua/silly-node.js');
    const port = await freePort();
    const child = execa('node', [CLI, 'node', 'start', '--release', 'releases/1.2.2', '--listen', `127.0.0.1:${port}`, '--secret-file', 'secret', '--state-dir', 'state', '--port', String(await freePort())], {
      cwd: project.dir,
      env: { SILLY: silly, NO_COLOR: '1' },
      reject: false,
      stdin: 'ignore',
    });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(() => out.includes('control over TCP'));
      expect(out).toContain('booting silly-demo 1.2.2');
      const target = `127.0.0.1:${port}`;
      const dry = await runCli(['apply', '--target', target, '--to', '1.2.3', '--dry-run', '--json'], project.dir, env);
      expect(dry.exitCode, dry.stderr).toBe(0);
      expect(JSON.parse(dry.stdout).status).toBe('dry-run');
      const s = JSON.parse((await runCli(['status', '--target', target, '--json'], project.dir, env)).stdout);
      expect(s).toMatchObject({ version: '1.2.2', permanent: '1.2.2', upgrading: false });
      expect(s.history.map((e: { op: string }) => e.op)).toEqual(['boot']);
    } finally {
      child.kill('SIGTERM');
    }
    const r = await child;
    expect(r.exitCode).toBe(0);
    expect(out).toContain('stopped');
  });

  test('relup check compiles every Lua module: a syntax error is a located diagnostic', async () => {
    const project = await sillyProject();
    const file = join(project.dir, 'releases', '1.2.3', 'route.lua');
    await import('node:fs/promises').then(async (fs) => fs.writeFile(file, (await fs.readFile(file, 'utf8')).replace('res:status(400)', 'res:status(400')));
    const r = await runCli(['check', '--json'], project.dir);
    expect(r.exitCode).toBe(1);
    const diagnostics = JSON.parse(r.stdout).diagnostics as { code: string; file: string; line: number }[];
    const d = diagnostics.find((x) => x.code === 'module-compile-error');
    expect(d).toMatchObject({ file: expect.stringContaining('releases/1.2.3/route.lua'), line: expect.any(Number) });
  });
});

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Send raw bytes; collect the plain frames the node answers until it closes (or 3 s pass). */
async function rawExchange(host: string, port: number, chunks: Buffer[]): Promise<{ frames: Record<string, unknown>[]; closed: boolean }> {
  const socket = connect(port, host);
  const decoder = new FrameDecoder();
  const frames: Record<string, unknown>[] = [];
  let closed = false;
  socket.on('data', (chunk) => {
    decoder.feed(chunk);
    for (let body = decoder.next(); body !== undefined; body = decoder.next()) frames.push(JSON.parse(body.toString('utf8')));
  });
  socket.on('error', () => undefined);
  const done = new Promise<void>((r) => socket.once('close', () => ((closed = true), r())));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  for (const c of chunks) socket.write(c);
  await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
  socket.destroy();
  return { frames, closed };
}

/** A handshake by hand: hello, then the auth `makeAuth` returns; resolves with the node's answer to it. */
async function rawHandshake(host: string, port: number, makeAuth: (hello: { nonce: string }) => Promise<Record<string, unknown>>): Promise<{ auth: Record<string, unknown>; answer: Record<string, unknown> }> {
  const socket = connect(port, host);
  const decoder = new FrameDecoder();
  const frames: Record<string, unknown>[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (chunk) => {
    decoder.feed(chunk);
    for (let body = decoder.next(); body !== undefined; body = decoder.next()) frames.push(JSON.parse(body.toString('utf8')));
    wake?.();
  });
  const next = async (): Promise<Record<string, unknown>> => {
    while (frames.length === 0) await new Promise<void>((r) => (wake = r));
    return frames.shift()!;
  };
  await new Promise<void>((r) => socket.once('connect', () => r()));
  socket.write(encodeFrame({ type: 'hello', protocol: 2, client: 'replay-test' }));
  const hello = (await next()) as { nonce: string };
  const auth = await makeAuth(hello);
  socket.write(encodeFrame(auth));
  const answer = await next();
  socket.destroy();
  return { auth, answer };
}
