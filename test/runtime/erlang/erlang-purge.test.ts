/**
 * What is peculiar to Erlang (the rest is the conformance suite): at most
 * two versions of a module exist, and loading a third kills the processes
 * still in the oldest. relup never kills one: it names them before the
 * point of no return, and a rollback that cannot restore code without
 * killing one says so (rollback-failed), never `rolled-back`.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { startErlangNode, type ErlangNode } from '../../../src/runtime/erlang/erlang-driver.js';
import { runCli } from '../../helpers/run-cli.js';
import { erlangGate } from './erlang-gate.js';
import { testdir, type Tree } from '../../helpers/testdir.js';

const ok = await erlangGate('Erlang runtime tests (test/runtime/erlang)');

/** A plain process that loops with a local call: it never moves to new code by itself. */
const holder = (version: string, extra = '') => `-module(holder).
-export([start/0, version/0, ask/0, loop/1${extra === '' ? '' : ', fail/0'}]).
start() ->
    Pid = spawn(fun() -> loop(0) end),
    register(holder, Pid),
    ok.
version() -> <<"${version}">>.
%% Whether the holder process lives (answers), whatever code it runs.
ask() ->
    holder ! {get, self()},
    receive {n, N} -> N after 2000 -> <<"no answer">> end.
loop(N) ->
    receive
        {get, From} -> From ! {n, N}, loop(N + 1)
    end.
${extra}`;

const release = (version: string) => `name: stuck
version: ${version}
runtime: erlang
start:
  main: holder
modules:
  holder:
    file: holder.erl
    exports: [start, version, ask, loop${version === '1.3.0' ? ', fail' : ''}]
`;

const appup = (version: string, from: string, apply = '') => `version: ${version}
up:
  - from: ${from}
    instructions:
      - update: holder
${apply}down:
  - to: ${from}
    instructions:
      - update: holder
`;

const project: Tree = {
  'releases/1.0.0/holder.erl': holder('1.0.0'),
  'releases/1.0.0/release.yaml': release('1.0.0'),
  'releases/1.1.0/holder.erl': holder('1.1.0'),
  'releases/1.1.0/release.yaml': release('1.1.0'),
  'releases/1.2.0/holder.erl': holder('1.2.0'),
  'releases/1.2.0/release.yaml': release('1.2.0'),
  'releases/1.3.0/holder.erl': holder('1.3.0', 'fail() -> error(apply_failed).\n'),
  'releases/1.3.0/release.yaml': release('1.3.0'),
  'appups/1.1.0.yaml': appup('1.1.0', '1.0.0'),
  'appups/1.2.0.yaml': appup('1.2.0', '1.1.0'),
  'appups/1.3.0.yaml': appup('1.3.0', '1.0.0', '      - apply: { module: holder, function: fail, args: [] }\n'),
};

const nodes: ErlangNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    n.child.kill('SIGKILL');
    await n.child;
  }
});

async function boot(dir: string) {
  const socket = join(dir, 'node.sock');
  const node = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket, stateDir: join(dir, 'state') });
  nodes.push(node);
  const c = await Connection.open({ kind: 'unix', path: socket });
  return { socket, node, c, apply: async (to: string) => JSON.parse((await runCli(['apply', '--to', to, '--target', socket, '--json'], dir)).stdout) };
}

type Outcome = { status: string; message: string; version: string; failure?: { code: string; message: string }; rollback?: { complete: boolean; problems: { message: string }[] }; hops?: { outcome: Outcome }[] };
const last = (o: Outcome): Outcome => o.hops?.at(-1)?.outcome ?? o;

describe.runIf(ok)('Erlang nodes: purge rules', { timeout: 60_000 }, () => {
  it('creates its control socket with mode 0600', async () => {
    const dir = await testdir(project);
    const { socket, c } = await boot(dir);
    expect((await stat(socket)).mode & 0o777).toBe(0o600);
    c.close();
  });

  it('keeps old code a process still runs (nobody killed), says so, and refuses the next switch before the point of no return, naming the process', async () => {
    const dir = await testdir(project);
    const { c, apply } = await boot(dir);
    const up = last(await apply('1.1.0'));
    expect(up.status).toBe('committed');
    // The holder loops with a local call: it is still in 1.0.0's code, which a soft purge must leave alone.
    expect(up.message).toContain('stays loaded');
    expect(up.message).toContain('holder');
    const refused = last(await apply('1.2.0'));
    expect(refused).toMatchObject({ status: 'refused', version: '1.1.0', failure: { code: 'process-in-old-code' } });
    expect(refused.failure!.message).toContain('holder');
    // Nothing changed: the process lives and the module's current code is still 1.1.0's.
    expect(await c.request('invoke', { module: 'holder', function: 'version', args: [] })).toBe('1.1.0');
    expect(typeof (await c.request('invoke', { module: 'holder', function: 'ask', args: [] }))).toBe('number');
    const status = (await c.request('status', {})) as { version: string };
    expect(status.version).toBe('1.1.0');
    c.close();
  });

  it('reports rollback-failed, never rolled-back, when restoring code would kill a process; the process lives', async () => {
    const dir = await testdir(project);
    const { c, apply } = await boot(dir);
    const out = last(await apply('1.3.0'));
    expect(out.status).toBe('rollback-failed');
    expect(out.rollback?.complete).toBe(false);
    expect(out.rollback?.problems.map((p) => p.message).join(' ')).toContain('holder');
    expect(out.version).toBe('1.0.0');
    // Never killed: the holder still answers (it runs 1.0.0's loop), and its module's new code stayed current, as reported.
    expect(typeof (await c.request('invoke', { module: 'holder', function: 'ask', args: [] }))).toBe('number');
    expect(await c.request('invoke', { module: 'holder', function: 'version', args: [] })).toBe('1.3.0');
    c.close();
  });
});
