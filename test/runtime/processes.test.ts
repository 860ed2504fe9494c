import { describe, expect, test } from 'vitest';
import { GenServer, type ProcessHost } from '../../src/runtime/node/gen-server.js';
import { compileModule, type ModuleVersion } from '../../src/runtime/node/module-version.js';
import { isRuntimeError } from '../../src/runtime/node/runtime-error.js';
import { boot, sleep, until } from './helpers/demo-node.js';
import { imageFromFiles, planScript } from './helpers/release-image.js';

/** A process module that records every message it handles, in order. */
const RECORDER = `
exports.init = (args) => ({ seen: [], label: args?.label ?? 'none' });
exports.handleCall = async (msg, state) => {
  if (msg.sleep) await new Promise((r) => setTimeout(r, msg.sleep));
  if (msg.fail) throw new Error('handler failed on purpose');
  state.seen.push(msg.n);
  return { reply: msg.n, state };
};
exports.handleCast = (msg, state) => {
  if (msg.fail) throw new Error('cast failed on purpose');
  state.seen.push(msg.n);
  return state;
};
`;

function recorder(): { process: GenServer; version: ModuleVersion; castErrors: unknown[] } {
  const version = compileModule({ name: 'rec', releaseName: 't', release: '1.0.0', file: 'rec.js', hash: 'x', source: RECORDER, makeApi: () => ({}) });
  const castErrors: unknown[] = [];
  const host: ProcessHost = { current: () => version, castFailed: (_p, e) => castErrors.push(e) };
  const init = version.exports['init'] as (a: unknown) => unknown;
  return { process: new GenServer(host, 'rec', 'rec', undefined, init(undefined)), version, castErrors };
}

const seen = (p: GenServer) => (p.state as { seen: number[] }).seen;

describe('processes (gen_server)', () => {
  test('calls and casts sent while suspended are handled after resume, in order, exactly once', async () => {
    const { process } = recorder();
    await process.call({ n: 0 });
    await process.suspend(100);
    const replies: Promise<unknown>[] = [];
    for (let n = 1; n <= 20; n++) {
      if (n % 3 === 0) process.cast({ n });
      else replies.push(process.call({ n }));
    }
    await sleep(20);
    expect(seen(process)).toEqual([0]);
    expect(process.mailboxSize).toBe(20);
    process.resume();
    expect(await Promise.all(replies)).toEqual([1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20]);
    await until(() => process.mailboxSize === 0 && !process.handling);
    expect(seen(process)).toEqual(Array.from({ length: 21 }, (_, i) => i));
  });

  test('suspend waits for the message being handled (the safe point)', async () => {
    const { process } = recorder();
    const slow = process.call({ n: 1, sleep: 40 });
    await sleep(5);
    expect(process.handling).toBe(true);
    const t0 = performance.now();
    await process.suspend(1000);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    expect(await slow).toBe(1);
    expect(process.handling).toBe(false);
    const queued = process.call({ n: 2 });
    await sleep(10);
    expect(seen(process)).toEqual([1]);
    process.resume();
    expect(await queued).toBe(2);
  });

  test('a suspend that times out fails, un-suspends, and loses nothing', async () => {
    const { process } = recorder();
    const slow = process.call({ n: 1, sleep: 150 });
    await sleep(5);
    const later = process.call({ n: 2 });
    const error = await process.suspend(30).catch((e: unknown) => e);
    expect(isRuntimeError(error, 'suspend-timeout')).toBe(true);
    expect(process.suspended).toBe(false);
    expect(await slow).toBe(1);
    expect(await later).toBe(2);
    expect(seen(process)).toEqual([1, 2]);
  });

  test('a handler that throws rejects the call; the state stays and the process keeps running', async () => {
    const { process, castErrors } = recorder();
    await process.call({ n: 1 });
    const stateBefore = process.state;
    await expect(process.call({ n: 2, fail: true })).rejects.toThrow('handler failed on purpose');
    process.cast({ n: 3, fail: true });
    expect(await process.call({ n: 4 })).toBe(4);
    expect(process.state).toBe(stateBefore);
    expect(seen(process)).toEqual([1, 4]);
    expect(castErrors).toHaveLength(1);
  });

  test('messages sent during an upgrade wait (held at the node, then in order) and are handled once after it', async () => {
    const v1 = imageFromFiles({
      'release.yaml': 'name: t\nversion: 1.0.0\nruntime: node\nmodules:\n  rec: { file: rec.js }\nprocesses:\n  rec: { module: rec }\n',
      'rec.js': RECORDER,
    });
    const v2 = imageFromFiles({
      'release.yaml': 'name: t\nversion: 1.0.1\nruntime: node\nmodules:\n  rec: { file: rec.js, exports: [slowMigration] }\nprocesses:\n  rec: { module: rec }\n',
      'rec.js': `${RECORDER}\nexports.slowMigration = async (state) => { await new Promise((r) => setTimeout(r, 80)); state.label = 'migrated'; };\n`,
    });
    const appup = 'version: 1.0.1\nup:\n  - from: 1.0.0\n    instructions:\n      - update: rec\n        migration: slowMigration\ndown:\n  - to: 1.0.0\n    instructions:\n      - update: rec\n';
    const { node } = await boot(v1);
    const applying = node.applyScript(planScript(v1, v2, appup, '1.0.1'), v2);
    await until(() => node.status().processes[0]!.suspended);
    const replies = [node.call('rec', { n: 1 }), node.call('rec', { n: 2 })];
    node.cast('rec', { n: 3 });
    replies.push(node.call('rec', { n: 4 }));
    // Past the point of no return outside work is held at the node's entry rather than queued in the mailbox.
    expect(node.status().processes[0]).toMatchObject({ suspended: true });
    expect(node.status().upgrading).toBe(true);
    const outcome = await applying;
    expect(outcome.status, outcome.message).toBe('committed');
    expect(await Promise.all(replies)).toEqual([1, 2, 4]);
    expect(node.states().processes['rec']).toEqual({ seen: [1, 2, 3, 4], label: 'migrated' });
    expect(outcome.groups[0]!.suspensionMs).toBeGreaterThanOrEqual(70);
  });
});
