import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { ApplyOutcome, StepPerformer } from '../../src/runtime/node/relup-node.js';
import { RuntimeError } from '../../src/runtime/node/runtime-error.js';
import type { RelupScript } from '../../src/script/script-schema.js';
import { DEMO_APPUPS } from '../helpers/repo-paths.js';
import { boot, type Booted, sleep } from './helpers/demo-node.js';
import { demoImage, imageFromFiles, patchedDemo, planScript } from './helpers/release-image.js';

const APPUP = readFileSync(join(DEMO_APPUPS, '1.2.3.yaml'), 'utf8');

/** Put some state everywhere: route counter, players, a changed setting. */
async function warmUp({ http }: Booted): Promise<void> {
  await http.get('/hello?name=a');
  await http.get('/hello?name=b');
  await http.post('/players', { id: 'p1', name: 'Ann' });
  await http.post('/players/p1/score', { points: 70 });
  await http.put('/config/timeout', { value: 45 });
}

/** The node is back on 1.2.2 exactly: same state bytes, nothing suspended, 1.2.2 code serving. */
async function expectIntact(booted: Booted, statesBefore: string, outcome: ApplyOutcome): Promise<void> {
  const { node, http } = booted;
  expect(node.version).toBe('1.2.2');
  expect(outcome.version).toBe('1.2.2');
  expect(JSON.stringify(node.states())).toBe(statesBefore);
  const status = node.status();
  expect(status.upgrading).toBe(false);
  expect(status.processes.every((p) => !p.suspended)).toBe(true);
  expect(status.modules.every((m) => m.version === '1.2.2')).toBe(true);
  // 1.2.2 code: no 400 for a missing name, no config validation, no levels.
  expect((await http.get('/hello')).status).toBe(200);
  expect((await http.put('/config/timeout', { value: -1 })).status).toBe(200);
  expect((await http.post('/players', { id: 'p9', name: 'Zed' })).json).toEqual({ name: 'Zed', score: 0 });
}

function withGame123(edit: (gameJs: string) => string) {
  return imageFromFiles(patchedDemo('1.2.3', { 'game.js': edit }));
}

describe('rollback after the point of no return', () => {
  test('a migration that throws: back on 1.2.2 with byte-identical state, nothing suspended, still serving', async () => {
    // It mutates the first player in place, then throws: the snapshot must undo the half-done work.
    const v123 = withGame123((t) => t.replace('exports.addLevels = (state, info) => {', "exports.addLevels = (state, info) => {\n  for (const p of Object.values(state.players)) p.level = 99;\n  throw new Error('addLevels exploded');"));
    const v122 = demoImage('1.2.2');
    const booted = await boot(v122);
    await warmUp(booted);
    const before = JSON.stringify(booted.node.states());
    const script = planScript(v122, v123);
    const outcome = await booted.node.applyScript(script, v123);

    expect(outcome.status, outcome.message).toBe('rolled-back');
    expect(outcome.ok).toBe(false);
    const failed = script.steps.findIndex((s) => s.op === 'migrate' && s.module === 'game');
    expect(outcome.failure).toEqual({ code: 'module-error', message: 'addLevels exploded', step: { index: failed, op: 'migrate', target: 'game.addLevels' } });
    expect(outcome.rollback).toMatchObject({ complete: true, problems: [] });
    // Chat and config had already switched and migrated (groups 0 and 1): they were undone too.
    const undone = outcome.journal.filter((j) => j.undo?.status === 'undone').map((j) => `${j.op} ${j.target}`);
    expect(undone).toEqual(['switch chat', 'migrate chat.addJoinedAt', 'switch config', 'migrate config.addNewSettings', 'suspend game', 'switch game', 'migrate game.addLevels']);
    expect(outcome.message).toContain('rolled back to 1.2.2');
    await expectIntact(booted, before, outcome);
  });

  test('a migration that hangs past its timeout is abandoned and rolled back', async () => {
    const v123 = withGame123((t) => t.replace('exports.addLevels = (state, info) => {', 'exports.addLevels = async (state, info) => {\n  await new Promise(() => {});'));
    const v122 = demoImage('1.2.2');
    const booted = await boot(v122);
    await warmUp(booted);
    const before = JSON.stringify(booted.node.states());
    const appup = APPUP.replace(/timeout: 2000/g, 'timeout: 100');
    const t0 = performance.now();
    const outcome = await booted.node.applyScript(planScript(v122, v123, appup), v123);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(outcome.status, outcome.message).toBe('rolled-back');
    expect(outcome.failure).toMatchObject({ code: 'migration-timeout', step: { op: 'migrate', target: 'game.addLevels' } });
    await expectIntact(booted, before, outcome);
  });

  test('a suspend that times out (the process is busy in a long handler) rolls back and loses no message', async () => {
    const sleepy = (t: string) => t.replace("case 'stats':", "case 'sleep':\n      return new Promise((r) => setTimeout(() => r({ reply: 'slept', state }), msg.ms));\n    case 'stats':");
    const v122 = imageFromFiles(patchedDemo('1.2.2', { 'game.js': sleepy }));
    const v123 = imageFromFiles(patchedDemo('1.2.3', { 'game.js': sleepy }));
    const booted = await boot(v122);
    await warmUp(booted);
    const before = JSON.stringify(booted.node.states());
    const busy = booted.node.call('game', { type: 'sleep', ms: 300 });
    await sleep(5);
    const queued = booted.node.call('game', { type: 'get_player', id: 'p1' });
    const appup = APPUP.replace(/timeout: 2000/g, 'timeout: 50');
    const outcome = await booted.node.applyScript(planScript(v122, v123, appup), v123);
    expect(outcome.status, outcome.message).toBe('rolled-back');
    expect(outcome.failure).toMatchObject({ code: 'suspend-timeout', step: { op: 'suspend', target: 'game' } });
    expect(booted.node.status().processes[0]!.suspended).toBe(false);
    expect(await busy).toBe('slept');
    expect(await queued).toEqual({ name: 'Ann', score: 70 });
    await expectIntact(booted, before, outcome);
  });

  test('a syntax error in a staged module fails before the point of no return: nothing changed', async () => {
    const v123 = imageFromFiles(patchedDemo('1.2.3', { 'route.js': (t) => t.replace('exports.getStats = () =>', 'exports.getStats = () => =>') }));
    const v122 = demoImage('1.2.2');
    const booted = await boot(v122);
    await warmUp(booted);
    const before = JSON.stringify(booted.node.states());
    const script = planScript(v122, v123);
    const outcome = await booted.node.applyScript(script, v123);
    expect(outcome.status, outcome.message).toBe('refused');
    expect(outcome.failure).toMatchObject({ code: 'compile-error', step: { op: 'stage', target: 'route' } });
    expect(outcome.failure!.message).toContain('relup:demo@1.2.3/route.js');
    expect(outcome.rollback).toBeUndefined();
    expect(outcome.journal.every((j) => j.index < script.pointOfNoReturn)).toBe(true);
    await expectIntact(booted, before, outcome);
  });

  test('a module file whose top level throws, or that lacks a declared export, is refused at stage', async () => {
    const v122 = demoImage('1.2.2');
    const booted = await boot(v122);
    const throwing = imageFromFiles(patchedDemo('1.2.3', { 'route.js': (t) => `${t}\nthrow new Error('top level boom');\n` }));
    const first = await booted.node.applyScript(planScript(v122, throwing), throwing);
    expect(first.failure).toMatchObject({ code: 'compile-error', step: { op: 'stage', target: 'route' } });
    expect(first.failure!.message).toContain('top level boom');
    const missing = imageFromFiles(patchedDemo('1.2.3', { 'game.js': (t) => t.replace('exports.dropLevels =', 'const dropLevels =') }));
    const second = await booted.node.applyScript(planScript(v122, missing), missing);
    expect(second.failure).toMatchObject({ code: 'missing-export', step: { op: 'stage', target: 'game' } });
    expect(booted.node.version).toBe('1.2.2');
  });
});

/** Wrap the node's performer: at step `at`, perform it for real, then fail (the worst case: its change is half-visible). */
function failAt(at: number, when: 'before' | 'after'): (real: StepPerformer) => StepPerformer {
  return (real) => ({
    check: (step, ctx) => real.check(step, ctx),
    settle: (result) => real.settle(result),
    perform: async (step, ctx) => {
      if (ctx.index === at && when === 'before') throw new RuntimeError('injected', `injected failure before step ${at}`);
      await real.perform(step, ctx);
      if (ctx.index === at) throw new RuntimeError('injected', `injected failure after step ${at}`);
    },
  });
}

describe('fault injection at every step of the real demo upgrade and downgrade', () => {
  const v122 = demoImage('1.2.2');
  const v123 = demoImage('1.2.3');
  const up = planScript(v122, v123);
  const down = planScript(v123, v122);
  const after = (s: RelupScript) => s.steps.map((_, i) => i).filter((i) => i > s.pointOfNoReturn);

  test.each(after(up))('up: failing after performing step %i leaves 1.2.2 exactly as it was', async (at) => {
    const booted = await boot(v122);
    await warmUp(booted);
    const before = JSON.stringify(booted.node.states());
    const outcome = await booted.node.applyScript(up, v123, { intercept: failAt(at, 'after') });
    expect(outcome.status, outcome.message).toBe('rolled-back');
    expect(outcome.failure).toMatchObject({ code: 'injected', step: { index: at, op: up.steps[at]!.op } });
    // Every step performed, the failed one included, was undone, in reverse order.
    const undone = outcome.journal.filter((j) => j.undo !== undefined).map((j) => j.index);
    expect(undone).toEqual(after(up).filter((i) => i <= at));
    expect(outcome.journal.every((j) => j.undo === undefined || j.undo.status === 'undone')).toBe(true);
    await expectIntact(booted, before, outcome);
  });

  test.each(after(down))('down: failing before step %i leaves 1.2.3 exactly as it was', async (at) => {
    const booted = await boot(v122);
    await warmUp(booted);
    expect((await booted.node.applyScript(up, v123)).status).toBe('committed');
    await booted.http.get('/hello');
    const before = JSON.stringify(booted.node.states());
    const outcome = await booted.node.applyScript(down, v122, { intercept: failAt(at, 'before') });
    expect(outcome.status, outcome.message).toBe('rolled-back');
    expect(booted.node.version).toBe('1.2.3');
    expect(JSON.stringify(booted.node.states())).toBe(before);
    expect(booted.node.status().processes.every((p) => !p.suspended)).toBe(true);
    expect((await booted.http.get('/hello')).status).toBe(400);
    expect((await booted.http.get('/players/p1')).json).toMatchObject({ level: 1 });
  });

  test('an undo that fails is reported as its own problem; the rest is still undone and nothing stays suspended', async () => {
    const booted = await boot(v122);
    const migrateGame = up.steps.findIndex((s) => s.op === 'migrate' && s.module === 'game');
    const outcome = await booted.node.applyScript(up, v123, {
      intercept: (real) => ({
        check: (step, ctx) => real.check(step, ctx),
        settle: (result) => real.settle(result),
        perform: async (step, ctx) => {
          if (ctx.index === migrateGame - 1) ctx.onUndo('a broken undo', () => Promise.reject(new Error('cannot undo this')));
          await real.perform(step, ctx);
          if (ctx.index === migrateGame) throw new Error('migration failed');
        },
      }),
    });
    expect(outcome.status).toBe('rollback-failed');
    expect(outcome.rollback).toMatchObject({ complete: false, problems: [{ message: 'a broken undo: cannot undo this', step: { index: migrateGame - 1 } }] });
    expect(outcome.message).toContain('did NOT complete');
    expect(booted.node.status().processes.every((p) => !p.suspended)).toBe(true);
    expect(booted.node.version).toBe('1.2.2');
  });
});
