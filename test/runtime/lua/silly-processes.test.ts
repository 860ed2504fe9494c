import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { runCli } from '../../helpers/run-cli.js';
import { testdir } from '../../helpers/testdir.js';
import { cliTarget, openNode, type RunningNode } from '../../conformance/harness.js';
import { luaRuntime } from '../../conformance/runtimes/lua.js';
import { luaGate, sillyBinary } from './lua-env.js';

/**
 * What is peculiar to a Lua node's processes (the shared semantics are the
 * conformance suite's): the transaction never waits, so the agent holds a
 * process and waits for the call it is handling BEFORE the transaction; a
 * failing handle_call fails only that call.
 */
const found = await sillyBinary();
const ready = await luaGate('the Lua process tests (test/runtime/lua/silly-processes.test.ts)', found.missing);

const nodes: RunningNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.kill().catch(() => undefined)));
});

async function conf() {
  const dir = await testdir();
  await luaRuntime.writeProject(dir);
  await mkdir(join(dir, 'run'), { recursive: true, mode: 0o700 });
  const node = await luaRuntime.startNode({ projectDir: dir, version: '1.0.0', socket: join(dir, 'run', 'unused.sock'), stateDir: join(dir, 'state') });
  nodes.push(node);
  return { dir, node, c: await openNode(node), ...cliTarget(node) };
}

describe.runIf(ready)('processes on a Lua node', { timeout: 60_000 }, () => {
  test('an upgrade waits for the call a process is handling, then migrates the state that call left', async () => {
    const t = await conf();
    await t.c.request('call', { process: 'counter', message: { op: 'incr' } });
    // The process is busy in a call that waits (time.sleep) when the apply arrives.
    let slept = false;
    const sleeping = t.c.request('call', { process: 'counter', message: { op: 'sleep', ms: 4000 } }).then((r) => ((slept = true), r));
    const up = await runCli(['apply', '--to', '1.1.0', '--target', t.target, '--json'], t.dir, t.env);
    expect(slept).toBe(true);
    const history = ((await t.c.request('status', {})) as { history: { op: string; status: string }[] }).history;
    expect(history.at(-1)).toMatchObject({ op: 'apply', status: 'committed' });
    expect(up.exitCode, up.stderr).toBe(0);
    expect(JSON.parse(up.stdout)).toMatchObject({ status: 'committed', groups: [{ processes: ['counter'], migrated: { processes: ['counter'] } }] });
    // The call finished on the code it started in, before the switch.
    expect(await sleeping).toBe('slept');
    expect(((await t.c.request('states', {})) as { processes: Record<string, unknown> }).processes['counter']).toEqual({ count: 1, step: 1 });
    expect(await t.c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.1.0');
    t.c.close();
  });

  test('a failing handle_call fails that call only; the process keeps serving; an unknown process is call_failed', async () => {
    const t = await conf();
    await expect(t.c.request('call', { process: 'counter', message: { op: 'nope' } })).rejects.toMatchObject({ code: 'call_failed' });
    expect(await t.c.request('call', { process: 'counter', message: { op: 'incr' } })).toBe(1);
    await expect(t.c.request('call', { process: 'nobody', message: {} })).rejects.toMatchObject({ code: 'call_failed' });
    const s = (await t.c.request('status', {})) as { processes: unknown[] };
    expect(s.processes).toEqual([{ name: 'counter', module: 'counter', suspended: false, mailbox: 0, handling: false }]);
    t.c.close();
  });
});
