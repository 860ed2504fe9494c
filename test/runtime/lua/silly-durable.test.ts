import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runCli } from '../../helpers/run-cli.js';
import { luaGate, sillyBinary } from './lua-env.js';
import { SECRET, apiClient, open, sillyProject, startNode, type Project } from './silly-fixture.js';

/**
 * A Lua node's releases as the Node.js host defines them (docs/runtime-node.md
 * "Current, permanent, previous; rollback"): `previous` is the installed
 * releases older than the running one, a rollback only goes back; and the
 * commit is durable or did not happen: installing the bundle and writing the
 * history are part of the commit step, so a failed write rolls the upgrade
 * back in place and memory, status and history.json agree.
 */
const found = await sillyBinary();
const ready = await luaGate('the Lua node durability tests (test/runtime/lua/silly-durable.test.ts)', found.missing);
const silly = found.binary!;
const env = { RELUP_SECRET: SECRET };

interface Status {
  version: string;
  permanent: string;
  previous: string[];
  installed: string[];
  history: { op: string; status: string; to: string }[];
}

async function statusOf(target: string): Promise<Status> {
  const c = await open(target);
  try {
    return (await c.request('status', {})) as Status;
  } finally {
    c.close();
  }
}

async function diskHistory(project: Project): Promise<{ current: string; permanent: string; installed: Record<string, string>; events: { op: string; status: string }[] }> {
  return JSON.parse(await readFile(join(project.stateDir, 'history.json'), 'utf8'));
}

/** After a failed commit: the node, its status, its disk and a restart all say 1.2.2, with the players intact. */
async function allOnOldRelease(project: Project, target: string, apiPort: number, stop: () => Promise<unknown>): Promise<void> {
  const s = await statusOf(target);
  expect(s).toMatchObject({ version: '1.2.2', permanent: '1.2.2', previous: [], installed: ['1.2.2'] });
  const api = await apiClient(apiPort);
  expect(await api.ask({ op: 'versions' })).toEqual({ route: '1.2.2', game: '1.2.2', config: '1.2.2' });
  expect(await api.ask({ op: 'player', id: 1 })).toEqual({ name: 'ann', score: 7 });
  api.close();
  const disk = await diskHistory(project);
  expect(disk).toMatchObject({ current: '1.2.2', permanent: '1.2.2' });
  expect(Object.keys(disk.installed)).toEqual(['1.2.2']);
  expect(disk.events.map((e) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'apply:rolled-back']);
  await stop();
  const again = await startNode(silly, project);
  expect(await statusOf(again.target)).toMatchObject({ version: '1.2.2', permanent: '1.2.2' });
}

describe.runIf(ready)('a Lua node: previous releases and a durable commit', { timeout: 60_000 }, () => {
  test('previous is the installed releases older than the running one; a second rollback with nothing older is refused', async () => {
    const project = await sillyProject();
    const { target } = await startNode(silly, project, { version: '1.2.2' });
    expect((await runCli(['apply', '--target', target, '--to', '1.2.3'], project.dir, env)).exitCode).toBe(0);
    expect(await statusOf(target)).toMatchObject({ version: '1.2.3', previous: ['1.2.2'], installed: ['1.2.3', '1.2.2'] });

    const down = await runCli(['rollback', '--target', target, '--json'], project.dir, env);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toMatchObject({ status: 'committed', version: '1.2.2', previous: [] });
    // 1.2.3 stays installed, but it is newer: not a rollback target.
    expect(await statusOf(target)).toMatchObject({ version: '1.2.2', permanent: '1.2.2', previous: [], installed: ['1.2.3', '1.2.2'] });

    const again = await runCli(['rollback', '--target', target, '--json'], project.dir, env);
    expect(again.exitCode).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: 'refused', failure: { code: 'no-older-release' } });
    const s = await statusOf(target);
    expect(s).toMatchObject({ version: '1.2.2', permanent: '1.2.2' });
    expect(s.history.map((e) => `${e.op}:${e.status}:${e.to}`)).toEqual(['boot:booted:1.2.2', 'apply:committed:1.2.3', 'apply:committed:1.2.2']);
    // A rollback --to a newer release is refused too: that is an apply.
    const newer = await runCli(['rollback', '--target', target, '--to', '1.2.3', '--json'], project.dir, env);
    expect(newer.exitCode).not.toBe(0);
    expect((await statusOf(target)).version).toBe('1.2.2');
  });

  test('a bundle that cannot be installed at commit rolls the upgrade back in place (state-write-failed)', async () => {
    const project = await sillyProject();
    const node = await startNode(silly, project, { version: '1.2.2' });
    const api = await apiClient(node.apiPort);
    await api.ask({ op: 'add_player', id: 1, name: 'ann' });
    await api.ask({ op: 'add_score', id: 1, points: 7 });
    api.close();
    // A real failing write: the bundle's path is taken by a non-empty directory, so the rename onto it fails.
    const blocked = join(project.stateDir, 'releases', 'silly-demo-1.2.3.tar.gz');
    await mkdir(join(blocked, 'x'), { recursive: true });
    const r = await runCli(['apply', '--target', node.target, '--to', '1.2.3', '--json'], project.dir, env);
    expect(r.exitCode).toBe(1);
    const o = JSON.parse(r.stdout);
    expect(o).toMatchObject({ status: 'rolled-back', version: '1.2.2', permanent: '1.2.2', failure: { code: 'state-write-failed', step: { op: 'commit' } }, rollback: { complete: true } });
    await rm(blocked, { recursive: true });
    await allOnOldRelease(project, node.target, node.apiPort, () => node.node.stop());
  });

  for (const fault of ['write:history-commit:enospc', 'write:history-commit:eio-after', 'write:history-commit:eio']) {
    test(`${fault} at commit rolls the upgrade back in place: memory, status and disk agree`, async () => {
      const project = await sillyProject();
      const node = await startNode(silly, project, { version: '1.2.2', env: { RELUP_FAULTS: fault } });
      const api = await apiClient(node.apiPort);
      await api.ask({ op: 'add_player', id: 1, name: 'ann' });
      await api.ask({ op: 'add_score', id: 1, points: 7 });
      api.close();
      const r = await runCli(['apply', '--target', node.target, '--to', '1.2.3', '--json'], project.dir, env);
      expect(r.exitCode).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ status: 'rolled-back', version: '1.2.2', failure: { code: 'state-write-failed', step: { op: 'commit' } }, rollback: { complete: true } });
      // The bundle the failed commit installed is removed with it.
      expect(await readdir(join(project.stateDir, 'releases'))).toEqual(['silly-demo-1.2.2.tar.gz']);
      await allOnOldRelease(project, node.target, node.apiPort, () => node.node.stop());
    });
  }

  test('an attempt whose started record cannot be written is refused and changes nothing', async () => {
    const project = await sillyProject();
    const node = await startNode(silly, project, { version: '1.2.2', env: { RELUP_FAULTS: 'write:history-started:enospc' } });
    const r = await runCli(['apply', '--target', node.target, '--to', '1.2.3', '--json'], project.dir, env);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'refused', version: '1.2.2', failure: { code: 'state-write-failed' } });
    expect(await statusOf(node.target)).toMatchObject({ version: '1.2.2', permanent: '1.2.2' });
    expect((await diskHistory(project)).events.map((e) => e.op)).toEqual(['boot']);
  });

  test('a bad RELUP_FAULTS write spec stops the node at start, naming the forms it takes', async () => {
    const project = await sillyProject();
    await expect(startNode(silly, project, { version: '1.2.2', env: { RELUP_FAULTS: 'write:history:full' } })).rejects.toThrow(/write:<history-boot/);
  });
});
