/**
 * `relup status` prints a node that omits `servers` and `timers` (the
 * status schema allows it; an Erlang node's sockets and timers belong to its
 * own processes, so the agent reports neither) instead of crashing on them.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { startErlangNode, type ErlangNode } from '../../../src/runtime/erlang/erlang-driver.js';
import { statusResultSchema } from '../../../src/protocol/status-result.js';
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

describe.runIf(ok)('relup status against an Erlang node', { timeout: 60_000 }, () => {
  it('prints the text status of a node that reports no servers or timers', async () => {
    const dir = await confProject();
    const socket = join(dir, 'node.sock');
    const node = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket, stateDir: join(dir, 'state') });
    nodes.push(node);
    const c = await Connection.open({ kind: 'unix', path: socket });
    const raw = (await c.request('status', {})) as Record<string, unknown>;
    c.close();
    expect(raw['servers']).toBeUndefined();
    expect(raw['timers']).toBeUndefined();
    expect(statusResultSchema.safeParse(raw).success).toBe(true);

    const text = await runCli(['status', '--target', socket], dir);
    // Before the fix: TypeError: Cannot read properties of undefined (reading 'length'), exit 2.
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain('conf 1.0.0');
    expect(text.stdout).toMatch(/counter\s+module counter/);
    expect(text.stdout).toContain('boot');
    expect(text.stdout).not.toContain('timers:');
  });
});
