import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pathMatches } from '../../src/client/live-check.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';

const nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

type D = { code: string };

async function edit(path: string, change: (text: string) => string): Promise<void> {
  await writeFile(path, change(await readFile(path, 'utf8')));
}

/** Both releases read their tick interval from a config key relup does not know, and tick fast. */
async function ownTimerKey(dir: string): Promise<void> {
  for (const v of ['1.2.2', '1.2.3']) await edit(join(dir, 'releases', v, 'http_api.js'), (t) => t.replace('relup.config.tickMs ?? 1000', 'relup.config.presenceMs ?? 5'));
}

/** 1.2.3's down migration loses every player's score. */
const lossyDown = (dir: string) => edit(join(dir, 'releases', '1.2.3', 'game.js'), (t) => t.replace('    delete player.exp;', '    delete player.exp;\n    delete player.score;'));

describe('relup check --live', { timeout: 90_000 }, () => {
  // Issue 8 item 4: the scratch node froze timers through the demo's own config key.
  it('stops time for an app whose timer is set from its own config key', async () => {
    const dir = await demoCopy();
    await ownTimerKey(dir);
    const r = await runCli(['check', '--live', '--json'], dir);
    const report = JSON.parse(r.stdout);
    expect(report.diagnostics.map((d: D) => d.code)).not.toContain('live-roundtrip-state-differs');
    expect(report.live[0]).toMatchObject({ ok: true, up: 'committed', down: 'committed', differences: [] });
    expect(r.exitCode).toBe(0);
  });

  // Issue 8 item 5: without a fixture only the initial state is compared; say so.
  it('says plainly when only the initial state was checked, and a captured fixture catches a lossy down migration', async () => {
    const dir = await demoCopy();
    await lossyDown(dir);
    const plain = await runCli(['check', '--live'], dir);
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout).toContain('initial state only');
    expect(plain.stdout).toMatch(/warning live-initial-state-only/);
    const plainJson = JSON.parse((await runCli(['check', '--live', '--json'], dir)).stdout);
    expect(plainJson.live[0].stateChecked).toBe('initial');

    // Real state from a running node, captured as a fixture.
    const node = await startNodeProcess(dir, { release: 'releases/1.2.2' });
    nodes.push(node);
    const c = await node.connect();
    await c.request('call', { process: 'game', message: { type: 'add_player', id: 'p1', name: 'Ada' } });
    await c.request('call', { process: 'game', message: { type: 'add_score', id: 'p1', points: 250 } });
    c.close();
    const captured = await runCli(['status', '--target', node.socket, '--states'], dir);
    expect(captured.exitCode, captured.stderr).toBe(0);
    const fixture = JSON.parse(captured.stdout);
    expect(fixture).toMatchObject({ release: '1.2.2', states: { processes: { game: { players: { p1: { name: 'Ada', score: 250 } } } } } });
    await writeFile(join(dir, 'fixture.json'), captured.stdout);

    const caught = await runCli(['check', '--live', '--fixture', 'fixture.json', '--json'], dir);
    expect(caught.exitCode).toBe(1);
    const report = JSON.parse(caught.stdout);
    expect(report.live[0]).toMatchObject({ ok: false, stateChecked: 'fixture' });
    expect(report.live[0].differences).toContain('processes.game.players.p1.score: 250 → (missing)');
    expect(report.diagnostics.map((d: D) => d.code)).toContain('live-roundtrip-state-differs');

    // Volatile fields can be ignored by path.
    await writeFile(join(dir, 'fixture.json'), JSON.stringify({ ...fixture, ignore: ['processes.game.players.*.score'] }));
    const ignored = await runCli(['check', '--live', '--fixture', 'fixture.json', '--json'], dir);
    expect(ignored.exitCode, ignored.stdout).toBe(0);
    expect(JSON.parse(ignored.stdout).live[0]).toMatchObject({ ok: true, ignored: 1, differences: [] });
  });

  it('status lists timers in text as --json does', async () => {
    const dir = await demoCopy();
    const node = await startNodeProcess(dir, { release: 'releases/1.2.2' });
    nodes.push(node);
    const text = await runCli(['status', '--target', node.socket], dir);
    const json = JSON.parse((await runCli(['status', '--target', node.socket, '--json'], dir)).stdout);
    expect(json.timers.length).toBeGreaterThan(0);
    expect(text.stdout).toContain('timers:');
    for (const t of json.timers) expect(text.stdout).toContain(`${t.module}.${t.fn}`);
    expect(text.stdout).toContain(`installed: ${json.installed.join(', ')}`);
    expect(text.stdout).toContain(`state directory: ${json.stateDir}`);
    for (const srv of json.servers) expect(text.stdout).toContain(`${srv.address}:${srv.port} → ${srv.module}.${srv.handler}`);
  });

  it('matches ignore paths by segment, with * for one segment', () => {
    expect(pathMatches('modules.presence', ['modules', 'presence', 'ticks'])).toBe(true);
    expect(pathMatches('processes.*.lastSeen', ['processes', 'rooms', 'lastSeen'])).toBe(true);
    expect(pathMatches('processes.*.lastSeen', ['processes', 'rooms', 'users'])).toBe(false);
    expect(pathMatches('modules.presence.ticks', ['modules', 'presence'])).toBe(false);
  });
});
