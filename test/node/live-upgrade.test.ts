import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/repo-paths.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { HttpClient, until } from '../runtime/helpers/demo-node.js';

const nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

async function demoNode(dir: string, set: Record<string, unknown> = {}): Promise<NodeProcess> {
  const node = await startNodeProcess(dir, { release: 'releases/1.2.2', set });
  nodes.push(node);
  return node;
}

/** Make a 1.2.3 migration of the demo slow (async, so the node keeps serving while it waits) or failing. */
async function editGame(dir: string, edit: (text: string) => string): Promise<void> {
  const file = join(dir, 'releases', '1.2.3', 'game.js');
  await writeFile(file, edit(await readFile(file, 'utf8')));
}
const slowAddLevels = (ms: number) => (t: string) => t.replace('exports.addLevels = (state, info) => {', `exports.addLevels = async (state, info) => {\n  await new Promise((r) => setTimeout(r, ${ms}));`);

describe('a node process upgraded over its control socket', { timeout: 60_000 }, () => {
  it('runs the three Silly examples live: state kept, new behaviour on, the connection survives, and back', async () => {
    const dir = await demoCopy();
    const node = await demoNode(dir);
    const http = new HttpClient(node.port);
    const first = await http.get('/hello?name=ada');
    expect(first.text).toBe('Hello, visitor #1');
    await http.post('/players', { id: 'p1', name: 'Ada' });
    await http.post('/players/p1/score', { points: 250 });
    await http.send('PUT', '/config/timeout', { value: 90 });
    expect((await http.get('/hello')).status).toBe(200);

    const up = await runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--json'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    const outcome = JSON.parse(up.stdout);
    expect(outcome).toMatchObject({ status: 'committed', version: '1.2.3', permanent: '1.2.3', absent: { route: ['errorCount'] } });
    expect(outcome.groups.find((g: { modules: string[] }) => g.modules.includes('game')).suspensionMs).toBeGreaterThan(0);

    const hello = await http.get('/hello?name=grace');
    expect(hello.text).toBe('Hello, grace (visitor #3)');
    expect(hello.socket).toBe(first.socket);
    expect((await http.get('/hello')).status).toBe(400);
    expect((await http.get('/stats')).json).toEqual({ total: 4, errors: 1 });
    expect((await http.get('/players/p1')).json).toEqual({ name: 'Ada', score: 250, level: 1, exp: 0 });
    expect((await http.get('/config')).json).toEqual({ max_connections: 1000, timeout: 90, log_level: 'INFO', enable_cache: true, cache_ttl: 300 });
    expect((await http.send('PUT', '/config/timeout', { value: -1 })).status).toBe(400);

    const down = await runCli(['rollback', '--target', node.socket], dir);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(down.stdout).toContain('committed: downgraded demo 1.2.3 → 1.2.2');
    const after = await http.get('/hello');
    expect(after.text).toBe('Hello, visitor #5');
    expect(after.socket).toBe(first.socket);
    expect((await http.get('/stats')).json).toEqual({ total: 5 });
    expect((await http.get('/players/p1')).json).toEqual({ name: 'Ada', score: 250 });
    expect((await http.get('/config')).json).toEqual({ max_connections: 1000, timeout: 90, log_level: 'INFO' });

    const status = JSON.parse((await runCli(['status', '--target', node.socket, '--json'], dir)).stdout);
    expect(status).toMatchObject({ version: '1.2.2', permanent: '1.2.2', previous: [], installed: ['1.2.3', '1.2.2'], upgrading: false });
    expect(status.history.map((e: { op: string; status: string }) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'apply:committed', 'apply:committed']);
    expect(status.processes).toEqual([expect.objectContaining({ name: 'game', suspended: false, mailbox: 0 })]);
  });

  it('rolls back a migration that throws: still 1.2.2, byte-identical state, nothing suspended, still serving', async () => {
    const dir = await demoCopy();
    await editGame(dir, (t) => t.replace('exports.addLevels = (state, info) => {', 'exports.addLevels = (state, info) => {\n  throw new Error("boom in addLevels");'));
    // No game-clock ticks: the states before and after are compared byte for byte.
    const node = await demoNode(dir, { tickMs: 3_600_000 });
    const http = new HttpClient(node.port);
    await http.post('/players', { id: 'p1', name: 'Ada' });
    await http.get('/hello?name=x');
    const c = await node.connect();
    const before = JSON.stringify(await c.request('states', {}));

    const r = await runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const outcome = JSON.parse(r.stdout);
    expect(outcome).toMatchObject({ status: 'rolled-back', version: '1.2.2', rollback: { complete: true } });
    expect(outcome.failure.step).toMatchObject({ op: 'migrate', target: expect.stringContaining('game') });
    expect(outcome.failure.message).toContain('boom in addLevels');

    expect(JSON.stringify(await c.request('states', {}))).toBe(before);
    const status = (await c.request('status', {})) as { version: string; processes: { suspended: boolean }[]; history: { status: string }[] };
    expect(status.version).toBe('1.2.2');
    expect(status.processes.every((p) => !p.suspended)).toBe(true);
    expect(status.history.at(-1)!.status).toBe('rolled-back');
    expect((await http.get('/hello')).text).toBe('Hello, visitor #2');
    c.close();
  });

  it('finishes an upgrade on its own when the client is killed mid-way', async () => {
    const dir = await demoCopy();
    await editGame(dir, slowAddLevels(1500));
    // No game-clock ticks: they would add experience and blur the state this test checks.
    const node = await demoNode(dir, { tickMs: 3_600_000 });
    const http = new HttpClient(node.port);
    await http.post('/players', { id: 'p1', name: 'Ada' });
    const client = execa('node', [CLI, 'apply', '--target', node.socket, '--to', '1.2.3'], { cwd: dir, reject: false, env: { NO_COLOR: '1' } });
    let out = '';
    client.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.includes('suspend game'), 10_000);
    // While the game process is suspended, a call waits in its mailbox instead of failing.
    const waiting = http.get('/players/p1');
    client.kill('SIGKILL');
    await client;
    const reply = await waiting;
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ name: 'Ada', score: 0, level: 1, exp: 0 });
    const c = await node.connect();
    await until(async () => !((await c.request('status', {})) as { upgrading: boolean }).upgrading, 10_000);
    const status = (await c.request('status', {})) as { version: string; processes: { suspended: boolean }[]; history: { status: string }[] };
    expect(status.version).toBe('1.2.3');
    expect(status.history.at(-1)!.status).toBe('committed');
    expect(status.processes.every((p) => !p.suspended)).toBe(true);
    c.close();
  });

  it('answers a second concurrent apply with busy, and status meanwhile', async () => {
    const dir = await demoCopy();
    // The node holds step index 11 (suspend game) until it gets SIGUSR2: the upgrade is certainly running meanwhile.
    const node = await startNodeProcess(dir, { release: 'releases/1.2.2', env: { RELUP_FAULTS: '11:pause=30000' } });
    nodes.push(node);
    const first = runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--json'], dir);
    await until(() => node.output().includes('paused'), 20_000);
    const second = await runCli(['apply', '--target', node.socket, '--to', '1.2.3'], dir);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain('already applying');
    expect(second.stderr).toContain('hint:');
    const s = JSON.parse((await runCli(['status', '--target', node.socket, '--json'], dir)).stdout);
    expect(s).toMatchObject({ upgrading: true, version: '1.2.2' });
    node.child.kill('SIGUSR2');
    const a = await first;
    expect(JSON.parse(a.stdout).status).toBe('committed');
  });

  it('boots its permanent release after a restart, and the old one after --no-permanent', async () => {
    const dir = await demoCopy();
    const first = await demoNode(dir);
    expect((await runCli(['apply', '--target', first.socket, '--to', '1.2.3'], dir)).exitCode).toBe(0);
    expect(await first.stop()).toBe(0);
    nodes.splice(nodes.indexOf(first), 1);

    const second = await demoNode(dir);
    expect(second.output()).toContain('booting the permanent release 1.2.3');
    const s = JSON.parse((await runCli(['status', '--target', second.socket, '--json'], dir)).stdout);
    expect(s).toMatchObject({ version: '1.2.3', permanent: '1.2.3' });

    expect((await runCli(['rollback', '--target', second.socket, '--no-permanent'], dir)).exitCode).toBe(0);
    expect(await second.stop()).toBe(0);
    nodes.splice(nodes.indexOf(second), 1);
    const third = await demoNode(dir);
    const t = JSON.parse((await runCli(['status', '--target', third.socket, '--json'], dir)).stdout);
    expect(t).toMatchObject({ version: '1.2.3', permanent: '1.2.3' });
  });

  it('refuses to apply the version it runs as a no-op, and a dry run changes nothing', async () => {
    const dir = await demoCopy();
    const node = await demoNode(dir);
    const same = await runCli(['apply', '--target', node.socket, '--to', '1.2.2'], dir);
    expect(same.exitCode).toBe(0);
    expect(same.stdout).toContain('already runs 1.2.2');
    const dry = await runCli(['apply', '--target', node.socket, '--dry-run', '--json'], dir);
    expect(JSON.parse(dry.stdout)).toMatchObject({ status: 'dry-run', version: '1.2.2' });
  });
});

describe('relup check --live', { timeout: 60_000 }, () => {
  it('passes on the demo with a fixture and catches a down migration that loses data', async () => {
    const dir = await demoCopy();
    const fixture = join(dir, 'fixture.json');
    await writeFile(fixture, await readFile(join(import.meta.dirname, '..', 'fixtures', 'demo-state.json')));
    const ok = await runCli(['check', '--live', '--fixture', 'fixture.json'], dir);
    expect(ok.exitCode, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain('state identical after the round trip');

    await editGame(dir, (t) => t.replace('    delete player.exp;', '    delete player.exp;\n    delete player.score;'));
    const bad = await runCli(['check', '--live', '--fixture', 'fixture.json', '--json'], dir);
    expect(bad.exitCode).toBe(1);
    const report = JSON.parse(bad.stdout);
    expect(report.live[0]).toMatchObject({ from: '1.2.2', to: '1.2.3', ok: false, up: 'committed', down: 'committed' });
    expect(report.live[0].differences).toContain('processes.game.players.p1.score: 250 → (missing)');
    expect(report.diagnostics.map((d: { code: string }) => d.code)).toContain('live-roundtrip-state-differs');
  });
});
