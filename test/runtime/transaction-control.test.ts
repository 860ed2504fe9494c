import { describe, expect, test } from 'vitest';
import { isRuntimeError } from '../../src/runtime/node/runtime-error.js';
import { boot, until } from './helpers/demo-node.js';
import { demoImage, imageFromFiles, patchedDemo, planScript } from './helpers/release-image.js';

const v122 = demoImage('1.2.2');
const v123 = demoImage('1.2.3');
/** 1.2.3 whose game migration takes a while, so a test can look at the node mid-transaction. */
const slow123 = imageFromFiles(
  patchedDemo('1.2.3', { 'game.js': (t) => t.replace('exports.addLevels = (state, info) => {', 'exports.addLevels = async (state, info) => {\n  await new Promise((r) => setTimeout(r, 150));') }),
);

describe('one transaction at a time', () => {
  test('a second apply is rejected at once with busy; status, HTTP and queued calls keep working', async () => {
    const { node, http } = await boot(v122);
    await http.post('/players', { id: 'p1', name: 'Ann' });
    const first = node.applyScript(planScript(v122, slow123), slow123);
    await until(() => node.status().processes[0]!.suspended);

    const t0 = performance.now();
    const second = await node.applyScript(planScript(v122, v123), v123).catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(isRuntimeError(second, 'busy')).toBe(true);
    expect((second as Error).message).toContain('1.2.2 → 1.2.3');

    const status = node.status();
    expect(status).toMatchObject({ version: '1.2.2', upgrading: true, processes: [{ name: 'game', suspended: true }] });
    expect(JSON.parse(JSON.stringify(status))).toEqual(status);
    // The route is not suspended: requests are served during the transaction; a game call waits for the resume.
    expect((await http.get('/hello?name=x')).status).toBe(200);
    const player = node.call('game', { type: 'get_player', id: 'p1' });

    const outcome = await first;
    expect(outcome.status).toBe('committed');
    expect(await player).toEqual({ name: 'Ann', score: 0, level: 1, exp: 0 });
    expect(node.status().upgrading).toBe(false);
    expect(outcome.groups.find((g) => g.processes.includes('game'))!.suspensionMs).toBeGreaterThanOrEqual(140);
  });

  test('applying the release already running is a no-op that says so', async () => {
    const { node } = await boot(v122);
    expect((await node.applyScript(planScript(v122, v123), v123)).status).toBe('committed');
    const again = await node.applyScript(planScript(v122, v123), v123);
    expect(again).toMatchObject({ status: 'noop', ok: true, version: '1.2.3', journal: [] });
    expect(again.message).toContain('already runs 1.2.3');
  });

  test('a dry run runs the checks only', async () => {
    const { node } = await boot(v122);
    const before = JSON.stringify(node.states());
    const script = planScript(v122, v123);
    const outcome = await node.applyScript(script, v123, { dryRun: true });
    expect(outcome.status).toBe('dry-run');
    expect(outcome.journal.map((j) => j.op)).toEqual(script.steps.slice(0, script.pointOfNoReturn + 1).map((s) => s.op));
    expect(node.version).toBe('1.2.2');
    expect(JSON.stringify(node.states())).toBe(before);
  });

  test('the version guard, the release hash and the script schema are checked before anything changes', async () => {
    const { node } = await boot(v122);
    const script = planScript(v122, v123);

    const wrongFrom = structuredClone(script);
    wrongFrom.steps[1] = { op: 'check_version', expect: '1.2.1', reason: 'r' };
    expect((await node.applyScript(wrongFrom, v123)).failure).toMatchObject({ code: 'version-mismatch', step: { index: 1, op: 'check_version' } });

    const tampered = imageFromFiles(patchedDemo('1.2.3', { 'config.js': (t) => `${t}// tampered\n` }));
    const outcome = await node.applyScript(script, tampered);
    expect(outcome).toMatchObject({ status: 'refused', failure: { code: 'hash-mismatch', step: { index: 0, op: 'verify_release' } } });

    const invalid = await node.applyScript({ ...script, steps: [{ op: 'explode' }] }, v123);
    expect(invalid).toMatchObject({ status: 'refused', failure: { code: 'invalid-script' } });
    expect(node.version).toBe('1.2.2');
    expect(node.status().upgrading).toBe(false);
  });

  test('the overall deadline rolls back a transaction that takes too long', async () => {
    const { node } = await boot(v122);
    const before = JSON.stringify(node.states());
    const outcome = await node.applyScript(planScript(v122, slow123), slow123, { deadlineMs: 60 });
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.failure).toMatchObject({ code: 'deadline', step: { op: 'migrate', target: 'game.addLevels' } });
    expect(JSON.stringify(node.states())).toBe(before);
    expect(node.status().processes[0]!.suspended).toBe(false);
  });
});

describe('guards a script cannot skip', () => {
  test('a script without verify_release or check_version is refused at the point of no return', async () => {
    const { node } = await boot(v122);
    const script = planScript(v122, v123);
    for (const op of ['verify_release', 'check_version'] as const) {
      const unguarded = structuredClone(script);
      unguarded.steps = unguarded.steps.filter((s) => s.op !== op);
      unguarded.pointOfNoReturn -= 1;
      const outcome = await node.applyScript(unguarded, v123);
      expect(outcome).toMatchObject({ status: 'refused', failure: { code: 'invalid-script', step: { op: 'point_of_no_return' } } });
      expect(outcome.failure!.message).toContain(op);
    }
    expect(node.version).toBe('1.2.2');
  });
});

test('the node is busy from the very first step event', async () => {
  const { node } = await boot(v122);
  const seen: { upgrading: boolean; busy: boolean }[] = [];
  const outcome = await node.applyScript(planScript(v122, v123), v123, {
    onEvent: (e) => {
      if (e.index !== 0 || e.status !== 'start') return;
      const again = node.applyScript(planScript(v122, v123), v123);
      again.catch(() => undefined);
      seen.push({ upgrading: node.status().upgrading, busy: false });
      void again.catch((err: unknown) => {
        seen[0]!.busy = isRuntimeError(err, 'busy');
      });
    },
  });
  expect(outcome.status).toBe('committed');
  expect(seen).toEqual([{ upgrading: true, busy: true }]);
});
