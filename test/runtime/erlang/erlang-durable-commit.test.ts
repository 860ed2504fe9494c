/**
 * The commit is durable or it did not happen (docs/runtime-node.md, "The
 * state directory"; the Node.js host's recordCommit): installing the bundle
 * and writing the history naming the new release are part of the `commit`
 * step, so a write that fails rolls the upgrade back in place
 * (`state-write-failed`), and memory, status and history.json agree on what
 * runs and what a restart boots. Writes fail on a real Erlang node through
 * RELUP_FAULTS=write:<what>:<how>.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { erlangAvailable, startErlangNode, type ErlangNode } from '../../../src/runtime/erlang/erlang-driver.js';
import { runCli } from '../../helpers/run-cli.js';
import { runtimeGate } from '../../helpers/runtimes.js';
import { confProject } from './conf-project.js';

const ok = await runtimeGate('erlang', 'Erlang runtime tests (test/runtime/erlang)', async () => {
  const a = await erlangAvailable();
  return a.ok ? { ok: true } : a;
});

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

type Status = { version: string; permanent: string; previous: string[]; installed: string[]; historyProblem?: string; history: { op: string; status: string }[] };

describe.runIf(ok)('Erlang nodes: a durable commit', { timeout: 120_000 }, () => {
  it.each([
    ['write:history-commit:enospc', 'the history write fails before anything is written'],
    ['write:history-commit:eio-after', 'the new history is renamed into place, then the write reports EIO'],
    ['write:bundle:enospc', 'the bundle cannot be installed'],
  ])('%s (%s) rolls the upgrade back in place with state-write-failed; memory, status and disk agree', async (fault) => {
    const dir = await confProject();
    const { node, socket, c } = await boot(dir, { RELUP_FAULTS: fault }, true);
    for (let i = 0; i < 3; i++) await c.request('call', { process: 'counter', message: { op: 'incr' } });
    const before = await c.request('states', {});

    const r = await runCli(['apply', '--target', socket, '--to', '1.1.0', '--json'], dir);
    expect(r.exitCode, r.stdout + r.stderr).toBe(1);
    const out = JSON.parse(r.stdout);
    // Before the fix: committed, with the history or bundle silently missing (status said 1.1.0, a restart booted 1.0.0).
    expect(out).toMatchObject({ status: 'rolled-back', version: '1.0.0', permanent: '1.0.0', previous: [], failure: { code: 'state-write-failed', step: { op: 'commit' } } });
    expect(out.rollback).toMatchObject({ complete: true });

    // Memory: the old code and the old state run.
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');
    expect(await c.request('states', {})).toEqual(before);
    const status = (await c.request('status', {})) as Status;
    expect(status).toMatchObject({ version: '1.0.0', permanent: '1.0.0', previous: [], installed: ['1.0.0'] });
    expect(status.history.at(-1)).toMatchObject({ op: 'apply', status: 'rolled-back' });
    // Disk: the same.
    const history = JSON.parse(await readFile(join(dir, 'state', 'history.json'), 'utf8'));
    expect(history).toMatchObject({ current: '1.0.0', permanent: '1.0.0' });
    expect(Object.keys(history.installed)).toEqual(['1.0.0']);
    if (fault.startsWith('write:bundle')) expect(existsSync(join(dir, 'state', 'releases', 'conf-1.1.0.tar.gz'))).toBe(false);
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
