import { describe, expect, test } from 'vitest';
import { runTransaction, scriptShapeProblem, type StepEvent, type StepPerformer } from '../../src/runtime/node/transaction.js';
import type { Step } from '../../src/script/script-schema.js';

/**
 * The evaluator on its own: a performer that keeps its "system" in an array,
 * so ordering, rollback, deadlines and reporting are checked without a node.
 */
const reason = 'r';
const steps: Step[] = [
  { op: 'check_version', expect: '1.0.0', reason },
  { op: 'stage', module: 'a', hash: 'h', reason },
  { op: 'point_of_no_return', reason },
  { op: 'suspend', group: 0, process: 'p', timeout: 100, reason },
  { op: 'switch', group: 0, module: 'a', kind: 'update', reason },
  { op: 'apply', module: 'a', function: 'notify', args: [], reason },
  { op: 'resume', group: 0, process: 'p', reason },
  { op: 'commit', version: '1.0.1', reason },
];

interface World {
  log: string[];
  changes: string[];
  settled: string[];
}

function performer(world: World, options: { failCheck?: number; failAt?: number; hangAt?: number; failUndo?: number } = {}): StepPerformer {
  return {
    async check(step, ctx) {
      world.log.push(`check ${ctx.index}`);
      if (ctx.index === options.failCheck) throw new Error(`check ${step.op} failed`);
    },
    async perform(step, ctx) {
      world.log.push(`perform ${ctx.index}`);
      if (ctx.index === options.hangAt) await new Promise(() => {});
      if (step.op === 'apply') ctx.onUndo('apply cannot be undone');
      else {
        ctx.onUndo(`undo ${ctx.index}`, () => {
          if (ctx.index === options.failUndo) throw new Error('undo broke');
          world.changes.splice(world.changes.indexOf(`${ctx.index}`), 1);
        });
        world.changes.push(`${ctx.index}`);
      }
      if (ctx.index === options.failAt) throw new Error(`step ${step.op} failed`);
    },
    async settle(result) {
      world.settled.push(result);
      return [];
    },
  };
}

const fresh = (): World => ({ log: [], changes: [], settled: [] });

describe('runTransaction', () => {
  test('commits: every step in order, journaled with durations and events', async () => {
    const world = fresh();
    const events: StepEvent[] = [];
    const result = await runTransaction({ steps, pointOfNoReturn: 2, dryRun: false, deadlineMs: 1000, performer: performer(world), onEvent: (e) => events.push(e) });
    expect(result.status).toBe('committed');
    expect(world.log).toEqual(['check 0', 'check 1', 'check 2', 'perform 3', 'perform 4', 'perform 5', 'perform 6', 'perform 7']);
    expect(world.settled).toEqual(['committed']);
    expect(result.journal.map((j) => [j.index, j.op, j.target, j.status])).toEqual([
      [0, 'check_version', '1.0.0', 'ok'],
      [1, 'stage', 'a', 'ok'],
      [2, 'point_of_no_return', '', 'ok'],
      [3, 'suspend', 'p', 'ok'],
      [4, 'switch', 'a', 'ok'],
      [5, 'apply', 'a.notify', 'ok'],
      [6, 'resume', 'p', 'ok'],
      [7, 'commit', '1.0.1', 'ok'],
    ]);
    expect(events.map((e) => e.status)).toEqual(steps.flatMap(() => ['start', 'ok']));
  });

  test('a failed check changes nothing and reports the step', async () => {
    const world = fresh();
    const result = await runTransaction({ steps, pointOfNoReturn: 2, dryRun: false, deadlineMs: 1000, performer: performer(world, { failCheck: 1 }) });
    expect(result.status).toBe('refused');
    expect(result.failure).toEqual({ code: 'module-error', message: 'check stage failed', step: { index: 1, op: 'stage', target: 'a' } });
    expect(world.log).toEqual(['check 0', 'check 1']);
    expect(world.settled).toEqual(['discarded']);
  });

  test('a dry run stops at the point of no return', async () => {
    const world = fresh();
    const result = await runTransaction({ steps, pointOfNoReturn: 2, dryRun: true, deadlineMs: 1000, performer: performer(world) });
    expect(result.status).toBe('dry-run');
    expect(world.log).toEqual(['check 0', 'check 1', 'check 2']);
    expect(world.changes).toEqual([]);
  });

  test.each([3, 4, 5, 6, 7])('a failure at step %i undoes every performed step in reverse order', async (failAt) => {
    const world = fresh();
    const events: StepEvent[] = [];
    const result = await runTransaction({ steps, pointOfNoReturn: 2, dryRun: false, deadlineMs: 1000, performer: performer(world, { failAt }), onEvent: (e) => events.push(e) });
    expect(result.status).toBe('rolled-back');
    expect(world.changes).toEqual([]);
    expect(world.settled).toEqual(['rolled-back']);
    expect(result.failure?.step?.index).toBe(failAt);
    const undoneOrder = events.filter((e) => e.status === 'undone').map((e) => e.index);
    expect(undoneOrder).toEqual([3, 4, 5, 6, 7].filter((i) => i <= failAt).reverse());
    // The apply step's undo is nothing, and says so.
    if (failAt >= 5) expect(result.journal.find((j) => j.op === 'apply')!.undo).toMatchObject({ status: 'undone', note: 'apply cannot be undone' });
    expect(result.rollback).toEqual({ complete: true, undone: undoneOrder.length, problems: [] });
  });

  test('a failing undo makes the rollback incomplete, and the other undos still run', async () => {
    const world = fresh();
    const result = await runTransaction({ steps, pointOfNoReturn: 2, dryRun: false, deadlineMs: 1000, performer: performer(world, { failAt: 6, failUndo: 4 }) });
    expect(result.status).toBe('rollback-failed');
    expect(result.rollback).toEqual({ complete: false, undone: 3, problems: [{ message: 'undo 4: undo broke', step: { index: 4, op: 'switch', target: 'a' } }] });
    expect(world.changes).toEqual(['4']);
    expect(world.settled).toEqual(['rolled-back']);
  });

  test('the deadline abandons a hanging step and rolls back', async () => {
    const world = fresh();
    const t0 = performance.now();
    const result = await runTransaction({ steps, pointOfNoReturn: 2, dryRun: false, deadlineMs: 50, performer: performer(world, { hangAt: 6 }) });
    expect(performance.now() - t0).toBeLessThan(500);
    expect(result.status).toBe('rolled-back');
    expect(result.failure).toMatchObject({ code: 'deadline', step: { index: 6, op: 'resume' } });
    expect(world.changes).toEqual([]);
  });

  test('a step that registers an undo after the deadline is refused, so a late step changes nothing', async () => {
    const world = fresh();
    let late: unknown;
    const p: StepPerformer = {
      ...performer(world),
      async perform(step, ctx) {
        if (ctx.index === 4) {
          await new Promise((r) => setTimeout(r, 80));
          try {
            ctx.onUndo('too late', () => undefined);
          } catch (e) {
            late = e;
          }
          return;
        }
        return performer(world).perform(step, ctx);
      },
    };
    const result = await runTransaction({ steps, pointOfNoReturn: 2, dryRun: false, deadlineMs: 30, performer: p });
    expect(result.status).toBe('rolled-back');
    await new Promise((r) => setTimeout(r, 100));
    expect(late).toMatchObject({ code: 'deadline' });
  });

  test('scripts that break the ordering rules are refused before anything runs', () => {
    expect(scriptShapeProblem(steps, 2)).toBeUndefined();
    expect(scriptShapeProblem(steps, 1)).toMatch(/does not index/);
    const swapped = [...steps];
    [swapped[1], swapped[3]] = [swapped[3]!, swapped[1]!];
    expect(scriptShapeProblem(swapped, 2)).toMatch(/before the point of no return/);
    expect(scriptShapeProblem(steps.slice(0, -1), 2)).toMatch(/only commit/);
  });
});
