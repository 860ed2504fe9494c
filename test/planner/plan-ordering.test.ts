import { describe, expect, it } from 'vitest';
import { plan } from '../../src/planner/plan.js';
import type { Step } from '../../src/script/script-schema.js';
import { appup, appups, entry, load, release, update } from '../helpers/planner-fixtures.js';

const ex = ['up', 'down'];
const from = release('2.0.0', { config: {}, route: { deps: ['config'] }, game: { deps: ['route'] }, lone: {} }, { cfg: 'config', players: 'game', solo: 'lone' });
const to = release('2.1.0', { config: { code: 'c2', exports: ex }, route: { code: 'r2', deps: ['config'], exports: ex }, game: { code: 'g2', deps: ['route'], exports: ex }, lone: { code: 'l2' } }, { cfg: 'config', players: 'game', solo: 'lone' });
const instructions = [update('game', { migration: 'up' }), update('config', { migration: 'up' }), load('route'), update('lone')];
const down = [update('game', { migration: 'down' }), update('config', { migration: 'down' }), load('route'), update('lone')];
const a = appups(appup('2.1.0', [entry('2.0.0', instructions)], [entry('2.0.0', down)]));

const summary = (steps: Step[]) => steps.filter((s) => s.op !== 'point_of_no_return').map((s) => `${s.op}:${'module' in s ? s.module : 'process' in s ? s.process : 'version' in s ? s.version : s.op === 'check_version' ? s.expect : ''}`);

describe('planner ordering', () => {
  it('forms suspend groups from dependencies and orders each group', () => {
    const r = plan({ from, to, appups: a });
    expect(r.diagnostics).toEqual([]);
    expect(r.script!.groups).toEqual([
      { id: 0, modules: ['config', 'route', 'game'], processes: ['players', 'cfg'] },
      { id: 1, modules: ['lone'], processes: ['solo'] },
    ]);
    const after = summary(r.script!.steps.slice(r.script!.pointOfNoReturn + 1));
    expect(after).toEqual([
      // dependents suspend first, dependencies switch first, migrations after the switch (up), resume mirrors suspend
      'suspend:players', 'suspend:cfg',
      'switch:config', 'switch:route', 'switch:game',
      'migrate:config', 'migrate:game',
      'resume:cfg', 'resume:players',
      'suspend:solo', 'switch:lone', 'resume:solo',
      'purge:config', 'purge:route', 'purge:game', 'purge:lone',
      'commit:2.1.0',
    ]);
  });

  it('runs dynamic down migrations in the newer code before the switch, dependents first', () => {
    const r = plan({ from: to, to: from, appups: a });
    expect(r.diagnostics).toEqual([]);
    const after = summary(r.script!.steps.slice(r.script!.pointOfNoReturn + 1));
    expect(after.slice(0, 9)).toEqual([
      'suspend:players', 'suspend:cfg',
      'migrate:game', 'migrate:config',
      'switch:config', 'switch:route', 'switch:game',
      'resume:cfg', 'resume:players',
    ]);
    const migrate = r.script!.steps.find((s) => s.op === 'migrate');
    expect(migrate).toMatchObject({ release: 'from', direction: 'down', version: '2.0.0', processes: ['players'] });
  });

  it('switches a group\'s plain modules (no process, no migration, nothing a migration needs) after its migrations', () => {
    // chat depends on game (so they share a group) but has no process and no migration: the Erlang demo's chat_server.
    const f = release('3.0.0', { game: {}, chat: { deps: ['game'] }, util: {} }, { players: 'game' });
    const t = release('3.1.0', { game: { code: 'g2', deps: ['util'], exports: ex }, chat: { code: 'c2', deps: ['game'] }, util: { code: 'u2' } }, { players: 'game' });
    const r = plan({ from: f, to: t, appups: appups(appup('3.1.0', [entry('3.0.0', [update('game', { migration: 'up', deps: ['util'] }), load('chat', { deps: ['game'] }), load('util')])])) });
    expect(r.diagnostics).toEqual([]);
    const after = summary(r.script!.steps.slice(r.script!.pointOfNoReturn + 1));
    // util is game's dependency, so it switches before game's migration; chat waits until the migration is done,
    // so a failing migration leaves it untouched (nothing of it to purge on the way back).
    expect(after.slice(0, 6)).toEqual(['suspend:players', 'switch:util', 'switch:game', 'migrate:game', 'switch:chat', 'resume:players']);
  });

  it('checks everything that can fail before the point of no return', () => {
    const r = plan({ from, to, appups: a });
    const before = summary(r.script!.steps.slice(0, r.script!.pointOfNoReturn));
    expect(before).toEqual([
      'verify_release:2.1.0', 'check_version:2.0.0',
      'stage:config', 'stage:route', 'stage:game', 'stage:lone',
      'check_function:config', 'check_function:game',
      'check_process:cfg', 'check_process:players', 'check_process:solo',
    ]);
  });
});
