import { describe, expect, it } from 'vitest';
import { plan } from '../../src/planner/plan.js';
import { suspendGroups } from '../../src/planner/suspend-groups.js';
import type { Step } from '../../src/script/script-schema.js';
import { add, appup, appups, del, entry, load, release } from '../helpers/planner-fixtures.js';

/**
 * Issue 8, "wording that misleads": a lobby where rooms, presence and users
 * call each other in a cycle, http depends on the cycle, history (added)
 * depends on rooms, and legacy is deleted.
 */
const v1 = release('1.0.0', { rooms: { deps: ['users'] }, presence: { deps: ['rooms'] }, users: { deps: ['presence'] }, http: { deps: ['rooms'] }, legacy: {} });
const v2 = release('1.1.0', { rooms: { code: 'r2', deps: ['users'] }, presence: { code: 'p2', deps: ['rooms'] }, users: { code: 'u2', deps: ['presence'] }, http: { code: 'h2', deps: ['rooms'] }, history: { deps: ['rooms'] } });
const up = [load('rooms'), load('presence'), load('users'), load('http'), add('history'), del('legacy')];
const down = [load('rooms'), load('presence'), load('users'), load('http'), del('history'), add('legacy')];
const lobby = appups(appup('1.1.0', [entry('1.0.0', up)], [entry('1.0.0', down)]));

const switches = (steps: Step[]) => steps.filter((s): s is Extract<Step, { op: 'switch' }> => s.op === 'switch');

describe('plan wording', () => {
  it('plan-dep-cycle names only the modules in the cycle, not those depending on it', () => {
    const r = plan({ from: v1, to: v2, appups: lobby });
    const cycle = r.diagnostics.filter((d) => d.code === 'plan-dep-cycle');
    expect(cycle).toHaveLength(1);
    expect(cycle[0]!.message).toContain('presence, rooms, users');
    expect(cycle[0]!.message).not.toContain('http');
    expect(cycle[0]!.message).not.toContain('history');
    expect(suspendGroups({ nodes: ['a', 'b', 'c'], deps: new Map([['a', ['b']], ['b', ['a']], ['c', ['a']]]) }).cycles).toEqual([['a', 'b']]);
  });

  it('switches a module after what it depends on, even when that is a cycle, and says only what is true', () => {
    const r = plan({ from: v1, to: v2, appups: lobby });
    const order = switches(r.script!.steps).map((s) => s.module);
    // The cycle switches in name order; its dependents after it.
    expect(order).toEqual(['presence', 'rooms', 'users', 'history', 'http']);
    for (const s of switches(r.script!.steps)) {
      const claimed = /after (.+) it depends on/.exec(s.reason)?.[1]?.split(', ') ?? [];
      for (const dep of claimed) expect(order.indexOf(dep), `${s.module}: ${s.reason}`).toBeLessThan(order.indexOf(s.module));
    }
    const rooms = switches(r.script!.steps).find((s) => s.module === 'rooms')!;
    expect(rooms.reason).toContain('users, which switches after it');
  });

  it('a downgrade script says it downgrades', () => {
    const r = plan({ from: v2, to: v1, appups: lobby });
    const guard = r.script!.steps.find((s) => s.op === 'check_version')!;
    expect(guard.reason).toContain('downgrades from 1.1.0 only');
    expect(guard.reason).not.toContain('upgrades');
    const upGuard = plan({ from: v1, to: v2, appups: lobby }).script!.steps.find((s) => s.op === 'check_version')!;
    expect(upGuard.reason).toContain('upgrades from 1.0.0 only');
  });

  it('a delete says its module state is discarded', () => {
    const r = plan({ from: v1, to: v2, appups: lobby });
    const step = r.script!.steps.find((s) => s.op === 'delete')!;
    expect(step).toMatchObject({ module: 'legacy' });
    expect(step.reason).toContain('module state is discarded');
  });
});
