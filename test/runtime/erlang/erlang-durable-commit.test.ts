/**
 * The commit is durable or it did not happen (docs/runtime-node.md, "The
 * state directory"; the Node.js host's recordCommit): installing the bundle
 * and writing the history naming the new release are part of the `commit`
 * step, so a write that fails rolls the upgrade back in place
 * (`state-write-failed`), and memory, status and history.json agree on what
 * runs and what a restart boots. Writes fail on a real Erlang node through
 * RELUP_FAULTS=write:<what>:<how>. The bundle's bytes are written and
 * fsynced before the point of no return (a temp file in releases/; the
 * commit only renames it): a disk that cannot take them refuses the upgrade
 * (`bundle-prepare`), and no temp file outlives the apply or a restart.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { startErlangNode, type ErlangNode } from '../../../src/runtime/erlang/erlang-driver.js';
import { runCli } from '../../helpers/run-cli.js';
import { erlangGate } from './erlang-gate.js';
import { confProject } from './conf-project.js';

const ok = await erlangGate('Erlang runtime tests (test/runtime/erlang)');

const nodes: ErlangNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    n.child.kill('SIGKILL');
    await n.child;
  }
});

/** Boot 1.0.0; with `restart`, boot it once cleanly, then start it again on its state directory with `env` (a fault in the boot's own bundle install would stop the first boot). */
async function boot(dir: string, env: Record<string, string> = {}, restart = false) {
  const socket = join(dir, 'node.sock');
  if (restart) {
    const first = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket, stateDir: join(dir, 'state') });
    first.child.kill('SIGTERM');
    await first.child;
  }
  const node = await startErlangNode({ ...(restart ? {} : { release: join(dir, 'releases', '1.0.0') }), socket, stateDir: join(dir, 'state'), env });
  nodes.push(node);
  const c = await Connection.open({ kind: 'unix', path: socket });
  return { node, socket, c };
}

/** Temp files in the state directory and its releases/ (a write cut short, a prepared bundle never renamed). */
async function tempFiles(dir: string): Promise<string[]> {
  const state = join(dir, 'state');
  return [...(await readdir(state)), ...(await readdir(join(state, 'releases')))].filter((n) => n.includes('.tmp'));
}

type Status = { version: string; permanent: string; previous: string[]; installed: string[]; historyProblem?: string; history: { op: string; status: string }[] };

/** A node restarted on 1.0.0 with RELUP_FAULTS=`fault`, its counter moved `incrs` times, then `relup apply --to 1.1.0` (exit 1 expected). */
async function applyUnderFault(fault: string, incrs: number) {
  const dir = await confProject();
  const { node, socket, c } = await boot(dir, { RELUP_FAULTS: fault }, true);
  for (let i = 0; i < incrs; i++) await c.request('call', { process: 'counter', message: { op: 'incr' } });
  const before = await c.request('states', {});
  const r = await runCli(['apply', '--target', socket, '--to', '1.1.0', '--json'], dir);
  expect(r.exitCode, r.stdout + r.stderr).toBe(1);
  return { dir, node, socket, c, before, out: JSON.parse(r.stdout) };
}

/** 1.0.0 runs with the state it had, and status and history.json say so, with the apply recorded as `outcome`. */
async function expectStillOnOld(dir: string, c: Connection, before: unknown, outcome: string): Promise<Status> {
  expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');
  expect(await c.request('states', {})).toEqual(before);
  const status = (await c.request('status', {})) as Status;
  expect(status).toMatchObject({ version: '1.0.0', permanent: '1.0.0', previous: [], installed: ['1.0.0'] });
  expect(status.history.at(-1)).toMatchObject({ op: 'apply', status: outcome });
  const history = JSON.parse(await readFile(join(dir, 'state', 'history.json'), 'utf8'));
  expect(history).toMatchObject({ current: '1.0.0', permanent: '1.0.0' });
  expect(Object.keys(history.installed)).toEqual(['1.0.0']);
  return status;
}

describe.runIf(ok)('Erlang nodes: a durable commit', { timeout: 120_000 }, () => {
  it.each([
    ['write:history-commit:enospc', 'the history write fails before anything is written'],
    ['write:history-commit:eio-after', 'the new history is renamed into place, then the write reports EIO'],
    ['write:bundle:enospc', 'the prepared bundle cannot be renamed into place'],
    ['write:bundle:eio-after', 'the prepared bundle is renamed into place, then the write reports EIO'],
  ])('%s (%s) rolls the upgrade back in place with state-write-failed; memory, status and disk agree', async (fault) => {
    const { dir, node, socket, c, before, out } = await applyUnderFault(fault, 3);
    // Before the fix: committed, with the history or bundle silently missing (status said 1.1.0, a restart booted 1.0.0).
    expect(out).toMatchObject({ status: 'rolled-back', version: '1.0.0', permanent: '1.0.0', previous: [], failure: { code: 'state-write-failed', step: { op: 'commit' } } });
    expect(out.rollback).toMatchObject({ complete: true });

    // Memory, status and disk: the old code and the old state.
    await expectStillOnOld(dir, c, before, 'rolled-back');
    if (fault === 'write:bundle:enospc') expect(existsSync(join(dir, 'state', 'releases', 'conf-1.1.0.tar.gz'))).toBe(false);
    // The prepared bundle was renamed or discarded: no temp file is left.
    expect(await tempFiles(dir)).toEqual([]);
    c.close();

    // A restart (without the fault) boots what status said.
    node.child.kill('SIGTERM');
    await node.child;
    const again = await startErlangNode({ socket, stateDir: join(dir, 'state') });
    nodes.push(again);
    const c2 = await Connection.open({ kind: 'unix', path: socket });
    expect(await c2.request('status', {})).toMatchObject({ version: '1.0.0', permanent: '1.0.0' });
    c2.close();
  });

  it.each([
    ['write:bundle-prepare:enospc', 'nothing is written'],
    ['write:bundle-prepare:eio', 'nothing is written'],
    ['write:bundle-prepare:eio-after', 'the temp file is written and synced, then the write reports EIO'],
  ])('%s (%s): a bundle that cannot be written before the point of no return refuses the upgrade; nothing changed, no temp file left', async (fault) => {
    const { dir, node, socket, c, before, out } = await applyUnderFault(fault, 2);
    expect(out).toMatchObject({ status: 'refused', version: '1.0.0', permanent: '1.0.0', previous: [], failure: { code: 'state-write-failed' }, journal: [] });
    expect(out.failure.message).toContain('conf-1.1.0.tar.gz');

    // Nothing changed: code, state, status, disk.
    const status = await expectStillOnOld(dir, c, before, 'refused');
    expect(status).toMatchObject({ upgrading: false });
    expect(status.historyProblem).toBeUndefined();
    expect(existsSync(join(dir, 'state', 'releases', 'conf-1.1.0.tar.gz'))).toBe(false);
    expect(await tempFiles(dir)).toEqual([]);
    c.close();

    // Without the fault, the same upgrade commits.
    node.child.kill('SIGTERM');
    await node.child;
    const again = await startErlangNode({ socket, stateDir: join(dir, 'state') });
    nodes.push(again);
    const applied = await runCli(['apply', '--target', socket, '--to', '1.1.0', '--json'], dir);
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    expect(JSON.parse(applied.stdout)).toMatchObject({ status: 'committed', version: '1.1.0' });
    expect(await tempFiles(dir)).toEqual([]);
  });

  it('the bundle and the history the commit writes are on disk (synced temp files) before the point of no return, and the commit renames them into place', async () => {
    const dir = await confProject();
    const { c, socket } = await boot(dir);
    const plan = JSON.parse((await runCli(['plan', '1.0.0', '1.1.0', '--json'], dir)).stdout) as { steps: { op: string }[] };
    expect((await runCli(['release', 'pack', 'releases/1.1.0', '--out-dir', 'out'], dir)).exitCode).toBe(0);
    const bytes = await readFile(join(dir, 'out', 'conf-1.1.0.tar.gz'));
    const releases = join(dir, 'state', 'releases');
    // Events reach the client while the node goes on: the counter is kept busy for 800 ms, so the suspend step after
    // the point of no return waits for it (its timeout is 2 s) and the files can be read before the commit.
    const busy = await Connection.open({ kind: 'unix', path: socket });
    const sleeping = busy.request('call', { process: 'counter', message: { op: 'sleep', ms: 800 } });
    await new Promise((r) => setTimeout(r, 100));
    let seen: unknown;
    type OnDisk = { current: string; permanent: string; installed: Record<string, string>; events: { op: string; status: string; to?: string }[] };
    let atPonr: { names: string[]; prepared: Buffer[]; history: OnDisk; historyTemps: OnDisk[] } | undefined;
    const outcome = (await c.request('apply', { script: plan, bundle: bytes.toString('base64') }, (e) => {
      const event = e as unknown as { op: string; status: string };
      if (event.op !== 'point_of_no_return' || event.status !== 'ok') return;
      try {
        const names = readdirSync(releases);
        const state = join(dir, 'state');
        const read = (n: string) => JSON.parse(readFileSync(join(state, n), 'utf8')) as OnDisk;
        atPonr = {
          names,
          prepared: names.filter((n) => n.startsWith('.conf-1.1.0.tar.gz.tmp')).map((n) => readFileSync(join(releases, n))),
          history: read('history.json'),
          historyTemps: readdirSync(state).filter((n) => n.startsWith('.history.json.tmp')).map(read),
        };
      } catch (e) {
        seen = e;
      }
    })) as { status: string };
    await sleeping;
    busy.close();
    expect(seen).toBeUndefined();
    expect(outcome.status).toBe('committed');
    // At the point of no return: the whole bundle under a temp name, not yet at its own.
    expect(atPonr?.names).not.toContain('conf-1.1.0.tar.gz');
    expect(atPonr?.prepared).toHaveLength(1);
    expect(atPonr!.prepared[0]!.equals(bytes)).toBe(true);
    // And the history the commit writes, synced under a temp name, while history.json still names 1.0.0 (before: no such file).
    expect(atPonr?.history).toMatchObject({ current: '1.0.0', permanent: '1.0.0' });
    expect(atPonr?.history.events.at(-1)).toMatchObject({ op: 'apply', status: 'started' });
    expect(atPonr?.historyTemps).toHaveLength(1);
    expect(atPonr!.historyTemps[0]).toMatchObject({ current: '1.1.0', permanent: '1.1.0' });
    expect(Object.keys(atPonr!.historyTemps[0]!.installed).sort()).toEqual(['1.0.0', '1.1.0']);
    // The commit record replaces the attempt's `started` record.
    expect(atPonr!.historyTemps[0]!.events.at(-1)).toMatchObject({ op: 'apply', status: 'committed', to: '1.1.0' });
    expect(atPonr!.historyTemps[0]!.events.filter((e) => e.status === 'started')).toEqual([]);
    // After the commit: in place, and the temp name is gone.
    expect((await readFile(join(releases, 'conf-1.1.0.tar.gz'))).equals(bytes)).toBe(true);
    expect(await tempFiles(dir)).toEqual([]);
    c.close();
  });

  it('a make_permanent between the prepare and the commit is kept: the commit then writes the history in full, not the prepared one', async () => {
    // The outcome record cannot be written, so history.json stays exactly as the commit step wrote it.
    const dir = await confProject();
    const { socket, c } = await boot(dir, { RELUP_FAULTS: 'write:history-outcome:enospc' });
    const busy = await Connection.open({ kind: 'unix', path: socket });
    const other = await Connection.open({ kind: 'unix', path: socket });
    const plan = JSON.parse((await runCli(['plan', '1.0.0', '1.1.0', '--json'], dir)).stdout) as { steps: { op: string }[] };
    expect((await runCli(['release', 'pack', 'releases/1.1.0', '--out-dir', 'out'], dir)).exitCode).toBe(0);
    const bundle = (await readFile(join(dir, 'out', 'conf-1.1.0.tar.gz'))).toString('base64');
    // The counter is busy for 800 ms: the suspend step waits for it (its timeout is 2 s), and meanwhile make_permanent
    // (not held by the point of no return: it only writes the history) is answered.
    const sleeping = busy.request('call', { process: 'counter', message: { op: 'sleep', ms: 800 } });
    await new Promise((r) => setTimeout(r, 100));
    let permanent: Promise<unknown> | undefined;
    const outcome = (await c.request('apply', { script: plan, bundle }, (e) => {
      const event = e as unknown as { op: string; status: string };
      if (event.op === 'suspend' && event.status === 'start' && permanent === undefined) permanent = other.request('make_permanent', { version: '1.0.0' });
    })) as { status: string };
    expect(outcome.status).toBe('committed');
    expect(await permanent).toMatchObject({ permanent: '1.0.0' });
    await sleeping;
    const history = JSON.parse(await readFile(join(dir, 'state', 'history.json'), 'utf8')) as { current: string; permanent: string; events: { op: string; status: string }[] };
    // The commit (which makes 1.1.0 permanent) came after make_permanent 1.0.0, and its record holds that event
    // (before the fix: the prepared history, computed before make_permanent, lost it).
    expect(history).toMatchObject({ current: '1.1.0', permanent: '1.1.0' });
    expect(history.events.slice(-2).map((e) => `${e.op}:${e.status}`)).toEqual(['make_permanent:ok', 'apply:committed']);
    const status = (await c.request('status', {})) as Status;
    expect(status).toMatchObject({ version: '1.1.0', permanent: '1.1.0' });
    // The unused prepared history was discarded.
    expect(await tempFiles(dir)).toEqual([]);
    for (const x of [c, busy, other]) x.close();
  });

  it('a dry run writes no bundle, and a restart removes the temp files a crash left in the state directory', async () => {
    const dir = await confProject();
    const { node, socket, c } = await boot(dir);
    const dry = await runCli(['apply', '--target', socket, '--to', '1.1.0', '--dry-run', '--json'], dir);
    expect(dry.exitCode, dry.stdout + dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ status: 'dry-run' });
    expect(await tempFiles(dir)).toEqual([]);
    expect(existsSync(join(dir, 'state', 'releases', 'conf-1.1.0.tar.gz'))).toBe(false);
    c.close();

    // A node killed between the prepare and the commit (or between write and rename) leaves such files.
    node.child.kill('SIGKILL');
    await node.child;
    const releases = join(dir, 'state', 'releases');
    await writeFile(join(releases, '.conf-1.1.0.tar.gz.tmp-4711'), 'a prepared bundle never renamed');
    await writeFile(join(releases, 'conf-1.1.0.tar.gz.tmp-4712'), 'a temp file named as earlier agents named them');
    await writeFile(join(dir, 'state', '.history.json.tmp-4713'), '{');
    const again = await startErlangNode({ socket, stateDir: join(dir, 'state') });
    nodes.push(again);
    const c2 = await Connection.open({ kind: 'unix', path: socket });
    expect(await c2.request('status', {})).toMatchObject({ version: '1.0.0', installed: ['1.0.0'] });
    expect(await tempFiles(dir)).toEqual([]);
    c2.close();
  });

  it('past the commit, an outcome record that cannot be written loses figures, never which release runs: status says so', async () => {
    const dir = await confProject();
    const { node, socket, c } = await boot(dir, { RELUP_FAULTS: 'write:history-outcome:enospc' });
    const r = await runCli(['apply', '--target', socket, '--to', '1.1.0', '--json'], dir);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'committed', version: '1.1.0', permanent: '1.1.0', previous: ['1.0.0'] });
    const status = (await c.request('status', {})) as Status;
    expect(status).toMatchObject({ version: '1.1.0', permanent: '1.1.0' });
    expect(status.historyProblem).toContain('outcome');
    // The commit record itself is on disk: the history names 1.1.0, and a restart boots it.
    const history = JSON.parse(await readFile(join(dir, 'state', 'history.json'), 'utf8'));
    expect(history).toMatchObject({ current: '1.1.0', permanent: '1.1.0' });
    expect(history.events.at(-1)).toMatchObject({ op: 'apply', status: 'committed' });
    c.close();
    node.child.kill('SIGTERM');
    await node.child;
    const again = await startErlangNode({ socket, stateDir: join(dir, 'state') });
    nodes.push(again);
    const c2 = await Connection.open({ kind: 'unix', path: socket });
    expect(await c2.request('status', {})).toMatchObject({ version: '1.1.0', permanent: '1.1.0' });
    c2.close();
  });

  it('a started record that cannot be written refuses the upgrade before anything changes', async () => {
    const dir = await confProject();
    const { socket, c } = await boot(dir, { RELUP_FAULTS: 'write:history-started:eio' });
    const r = await runCli(['apply', '--target', socket, '--to', '1.1.0', '--json'], dir);
    expect(r.exitCode, r.stdout + r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'refused', version: '1.0.0', failure: { code: 'state-write-failed' }, journal: [] });
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');
    expect(await c.request('status', {})).toMatchObject({ version: '1.0.0', upgrading: false });
    c.close();
  });

  it('an invalid write fault is refused at boot, naming the accepted form', async () => {
    const dir = await confProject();
    const failed = await boot(dir, { RELUP_FAULTS: 'write:history-commit:full' }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(failed?.message).toContain('write:<history-boot|');
  });
});
