import { describe, expect, test } from 'vitest';
import type { StepEvent } from '../../src/runtime/node/relup-node.js';
import { boot, shapeOf, sleep, until } from './helpers/demo-node.js';
import { demoImage, planScript } from './helpers/release-image.js';

/**
 * The three examples of Silly's hot-reload guide (route counter, game
 * players, live config), run for real: the demo releases booted in-process,
 * driven over HTTP on loopback, upgraded with the planner's script and
 * downgraded again.
 */
describe('demo 1.2.2 → 1.2.3 → 1.2.2', () => {
  test('state, counters and behaviour across the upgrade and the downgrade', async () => {
    const v122 = demoImage('1.2.2');
    const v123 = demoImage('1.2.3');
    const { node, http } = await boot(v122);
    expect(node.version).toBe('1.2.2');

    // Example 1: the route's access counter.
    expect((await http.get('/hello?name=x')).text).toBe('Hello, visitor #1');
    expect((await http.get('/hello?name=x')).text).toBe('Hello, visitor #2');
    const noName122 = await http.get('/hello');
    expect(noName122.status).toBe(200);
    expect(noName122.text).toBe('Hello, visitor #3');
    // Example 2: players and scores.
    expect((await http.post('/players', { id: 'p1', name: 'Ann' })).status).toBe(201);
    expect((await http.post('/players', { id: 'p2', name: 'Bob' })).status).toBe(201);
    expect((await http.post('/players/p1/score', { points: 50 })).json).toEqual({ name: 'Ann', score: 50 });
    // Example 3: an operator changed a setting.
    expect((await http.put('/config/timeout', { value: 60 })).json).toEqual({ timeout: 60 });
    expect((await http.get('/config')).json).toEqual({ max_connections: 1000, timeout: 60, log_level: 'INFO' });
    const before = node.states();

    // Upgrade with the planner's script, with traffic running through it.
    const up = planScript(v122, v123);
    const events: StepEvent[] = [];
    const traffic = Array.from({ length: 40 }, () => http.get('/hello?name=t'));
    const applying = node.applyScript(up, v123, { onEvent: (e) => events.push(e) });
    const outcome = await applying;
    const replies = await Promise.all(traffic);

    expect(outcome.status, outcome.message).toBe('committed');
    expect(outcome.ok).toBe(true);
    expect(node.version).toBe('1.2.3');
    expect(replies.every((r) => r.status === 200)).toBe(true);
    // errorCount and the chat's seq are new in 1.2.3's state: given their initial value and reported as absent.
    expect(outcome.absent).toEqual({ chat: ['seq'], route: ['errorCount'] });
    const gameGroup = outcome.groups.find((g) => g.processes.includes('game'))!;
    expect(gameGroup.migrated.processes).toEqual(['game']);
    expect(gameGroup.suspensionMs).toBeGreaterThanOrEqual(0);
    expect(gameGroup.suspensionMs).toBeLessThan(100);
    expect(outcome.groups.find((g) => g.modules.includes('config'))!.migrated.modules).toEqual(['config']);
    // Every step journaled: a start and an ok event each, durations recorded.
    expect(outcome.journal.map((j) => j.op)).toEqual(up.steps.map((s) => s.op));
    expect(outcome.journal.every((j) => j.status === 'ok' && j.durationMs >= 0)).toBe(true);
    expect(events.filter((e) => e.status === 'start')).toHaveLength(up.steps.length);
    expect(events.filter((e) => e.status === 'ok')).toHaveLength(up.steps.length);

    // Route: the counter kept counting (3 + 40 traffic), errors start at 0, a missing name is now a 400.
    expect((await http.get('/stats')).json).toEqual({ total: 43, errors: 0 });
    expect((await http.get('/hello?name=y')).text).toBe('Hello, y (visitor #44)');
    const noName123 = await http.get('/hello');
    expect(noName123.status).toBe(400);
    expect(noName123.text).toBe('Error: name is required');
    expect((await http.get('/stats')).json).toEqual({ total: 45, errors: 1 });
    // Game: players kept their scores and gained level 1 / exp 0; the new code levels them up.
    expect((await http.get('/players/p1')).json).toEqual({ name: 'Ann', score: 50, level: 1, exp: 0 });
    expect((await http.get('/players/p2')).json).toEqual({ name: 'Bob', score: 0, level: 1, exp: 0 });
    expect((await http.post('/players/p1/score', { points: 1050 })).json).toEqual({ name: 'Ann', score: 1100, level: 2, exp: 5 });
    // Config: the changed value survived, the new keys appeared, validation is on.
    expect((await http.get('/config')).json).toEqual({ max_connections: 1000, timeout: 60, log_level: 'INFO', enable_cache: true, cache_ttl: 300 });
    expect((await http.put('/config/timeout', { value: -1 })).status).toBe(400);
    expect((await http.get('/version')).text).toBe('1.2.3');

    // Downgrade: 1.2.2 behaviour, state intact in exactly the pre-upgrade shape.
    const down = planScript(v123, v122);
    const back = await node.applyScript(down, v122);
    expect(back.status, back.message).toBe('committed');
    expect(node.version).toBe('1.2.2');
    expect(back.absent).toEqual({});
    const after = node.states();
    expect(shapeOf(after)).toEqual(shapeOf(before));
    expect(after.modules['route']).toEqual({ accessCount: 45 });
    expect(after.processes['game']).toMatchObject({ players: { p1: { name: 'Ann', score: 1100 }, p2: { name: 'Bob', score: 0 } } });
    expect((await http.get('/hello')).text).toBe('Hello, visitor #46');
    expect((await http.get('/stats')).json).toEqual({ total: 46 });
    expect((await http.get('/config')).json).toEqual({ max_connections: 1000, timeout: 60, log_level: 'INFO' });
    expect((await http.put('/config/timeout', { value: -1 })).status).toBe(200);
    expect(node.status()).toMatchObject({ version: '1.2.2', upgrading: false, processes: [{ name: 'game', suspended: false, mailbox: 0 }] });
  });

  test('a timer set up by 1.2.2 runs 1.2.3 code after the upgrade, without being re-created', async () => {
    // 1.2.2's tick only counts; 1.2.3's tick also gives every player 1 experience.
    const v122 = demoImage('1.2.2');
    const v123 = demoImage('1.2.3');
    const { node } = await boot(v122, { tickMs: 10 });
    const timer = () => node.status().timers[0]!;
    const player = async () => (await node.call('game', { type: 'get_player', id: 'p1' })) as { exp?: number };
    await node.call('game', { type: 'add_player', id: 'p1', name: 'Ada' });
    await until(() => timer().fired >= 3);
    const timerId = timer().id;
    expect((await player()).exp).toBeUndefined();

    const outcome = await node.applyScript(planScript(v122, v123), v123);
    expect(outcome.status, outcome.message).toBe('committed');
    // The call queues behind every tick cast sent so far, so fire count and experience are read at one instant.
    const firedAt = timer().fired;
    const expAt = (await player()).exp!;
    await until(() => timer().fired >= firedAt + 3);
    const firedNow = timer().fired;
    const expNow = (await player()).exp!;
    expect(node.status().timers).toHaveLength(1);
    expect(timer().id).toBe(timerId);
    expect(expNow - expAt).toBe(firedNow - firedAt);
  });

  test('a keep-alive connection opened before the upgrade works after it, after the downgrade and after a rollback', async () => {
    const v122 = demoImage('1.2.2');
    const v123 = demoImage('1.2.3');
    const { node, http } = await boot(v122);
    const first = await http.get('/version');
    expect(first.text).toBe('1.2.2');

    expect((await node.applyScript(planScript(v122, v123), v123)).status).toBe('committed');
    const during = await http.get('/version');
    expect(during.text).toBe('1.2.3');
    expect(during.socket).toBe(first.socket);
    expect((await http.get('/hello')).status).toBe(400);

    expect((await node.applyScript(planScript(v123, v122), v122)).status).toBe('committed');
    await sleep(5);
    const after = await http.get('/version');
    expect(after.text).toBe('1.2.2');
    expect(after.socket).toBe(first.socket);

    // And after a failed upgrade that was rolled back.
    const failing = await node.applyScript(planScript(v122, v123), v123, {
      intercept: (real) => ({
        check: (step, ctx) => real.check(step, ctx),
        settle: (result) => real.settle(result),
        perform: async (step, ctx) => {
          await real.perform(step, ctx);
          if (step.op === 'commit') throw new Error('failed at the last moment');
        },
      }),
    });
    expect(failing.status).toBe('rolled-back');
    const rolledBack = await http.get('/version');
    expect(rolledBack.text).toBe('1.2.2');
    expect(rolledBack.socket).toBe(first.socket);
    expect(node.status().servers[0]!.connections).toBe(1);
  });
});
