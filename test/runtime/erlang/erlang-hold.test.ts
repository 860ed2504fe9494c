/**
 * Outside work is held from the point of no return until the transaction
 * settles, as on a Node.js node (docs/runtime-node.md, "The upgrade
 * transaction"): a `call` or `invoke` through the control socket that
 * arrives mid-upgrade waits at the agent's entry and then runs on whatever
 * the outcome left, so a rollback never erases an answer already given. What
 * the agent cannot hold (plain processes, the application's own sockets) is
 * in docs/runtime-erlang.md.
 */
import { readFile } from 'node:fs/promises';
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

type Outcome = { status: string; version: string; holdMs: number | null; journal: { op: string; status: string }[] };
type Event = { index: number; op: string; status: string };

describe.runIf(ok)('Erlang nodes: outside work is held past the point of no return', { timeout: 120_000 }, () => {
  it('an invoke sent after the switch runs only once the upgrade rolled back, on the restored code', async () => {
    const dir = await confProject();
    const plan = JSON.parse((await runCli(['plan', '1.0.0', '1.1.0', '--json'], dir)).stdout) as { steps: { op: string }[] };
    const migrate = plan.steps.findIndex((s) => s.op === 'migrate');
    expect(migrate).toBeGreaterThan(0);
    expect((await runCli(['release', 'pack', 'releases/1.1.0', '--out-dir', 'out'], dir)).exitCode).toBe(0);
    const bundle = (await readFile(join(dir, 'out', 'conf-1.1.0.tar.gz'))).toString('base64');

    // The migration (after the switch) hangs until the deadline: the upgrade then rolls back to 1.0.0.
    const socket = join(dir, 'node.sock');
    const node = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket, stateDir: join(dir, 'state'), env: { RELUP_FAULTS: `${migrate}:hang` } });
    nodes.push(node);
    const c = await Connection.open({ kind: 'unix', path: socket });
    const other = await Connection.open({ kind: 'unix', path: socket });

    // counter:handle_call(version) answers the version of the code that runs it: the code current when the invoke runs.
    const version = { module: 'counter', function: 'handle_call', args: [{ op: 'version' }, null, {}] };
    expect(await other.request('invoke', version)).toEqual(['reply', '1.0.0', {}]);

    let sent: Promise<unknown> | undefined;
    const outcome = (await c.request('apply', { script: plan, bundle, deadlineMs: 2_000 }, (e) => {
      const event = e as unknown as Event;
      // Sent once the new code is current: without the hold it ran at once, on 1.1.0's code, which the rollback then took away.
      if (event.op === 'switch' && event.status === 'ok') sent = other.request('invoke', version);
    })) as Outcome;
    expect(outcome).toMatchObject({ status: 'rolled-back', version: '1.0.0' });
    expect(sent).toBeDefined();
    expect(await sent).toEqual(['reply', '1.0.0', {}]);
    expect(typeof outcome.holdMs).toBe('number');
    // status is never held; it answered throughout.
    expect(await other.request('status', {})).toMatchObject({ version: '1.0.0', upgrading: false });
    c.close();
    other.close();
  });

  // Each control request runs in its own Erlang process, so concurrent requests may be answered in either order (docs/runtime-erlang.md).
  it('held calls are answered once each after a commit, on the new release', async () => {
    const dir = await confProject();
    const plan = JSON.parse((await runCli(['plan', '1.0.0', '1.1.0', '--json'], dir)).stdout) as { steps: { op: string }[] };
    expect((await runCli(['release', 'pack', 'releases/1.1.0', '--out-dir', 'out'], dir)).exitCode).toBe(0);
    const bundle = (await readFile(join(dir, 'out', 'conf-1.1.0.tar.gz'))).toString('base64');
    const socket = join(dir, 'node.sock');
    const node = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket, stateDir: join(dir, 'state') });
    nodes.push(node);
    const c = await Connection.open({ kind: 'unix', path: socket });
    const other = await Connection.open({ kind: 'unix', path: socket });
    const version = { module: 'counter', function: 'handle_call', args: [{ op: 'version' }, null, {}] };
    const replies: unknown[] = [];
    const sent: Promise<unknown>[] = [];
    const outcome = (await c.request('apply', { script: plan, bundle }, (e) => {
      const event = e as unknown as Event;
      if (event.op === 'switch' && event.status === 'ok') {
        for (let i = 0; i < 3; i++) sent.push(other.request('invoke', version).then((r) => replies.push([i, r])));
      }
    })) as Outcome;
    expect(outcome).toMatchObject({ status: 'committed', version: '1.1.0' });
    await Promise.all(sent);
    expect([...replies].sort((a, b) => (a as [number])[0] - (b as [number])[0])).toEqual([0, 1, 2].map((i) => [i, ['reply', '1.1.0', {}]]));
    c.close();
    other.close();
  });
});
