import { describe, expect, test } from 'vitest';
import { boot } from './helpers/demo-node.js';
import { demoImage, imageFromFiles, patchedDemo, planScript } from './helpers/release-image.js';

/**
 * The rollback copies of process and module state are made ahead of the hold,
 * at a quiet moment of the point of no return (node-steps.ts). A copy made
 * ahead must never be restored once the state it copied has moved on.
 */
describe('rollback copies made ahead of the suspension window', () => {
  test('a process that handled a message after the copy was made is copied again: the rollback keeps that message', async () => {
    // config's migration (group 0, before game is suspended) scores 5 points for p1
    // through the game process; then game's migration throws.
    const v123 = imageFromFiles(
      patchedDemo('1.2.3', {
        'config.js': (t) => t.replace('exports.addNewSettings = (state) => {', "exports.addNewSettings = async (state) => {\n  await relup.call('game', { type: 'add_score', id: 'p1', points: 5 });"),
        'game.js': (t) => t.replace('exports.addLevels = (state, info) => {', "exports.addLevels = (state, info) => {\n  for (const p of Object.values(state.players)) p.level = 99;\n  throw new Error('addLevels exploded');"),
      }),
    );
    const v122 = demoImage('1.2.2');
    const booted = await boot(v122);
    await booted.http.post('/players', { id: 'p1', name: 'Ann' });
    await booted.http.post('/players/p1/score', { points: 70 });
    const script = planScript(v122, v123);
    const outcome = await booted.node.applyScript(script, v123);

    expect(outcome.status, outcome.message).toBe('rolled-back');
    expect(outcome.failure).toMatchObject({ code: 'module-error', step: { op: 'migrate', target: 'game.addLevels' } });
    // The 5 points were acknowledged to the migration that asked for them, by 1.2.2 code, before game was
    // suspended: the state restored is game's as it was suspended, not the older copy made ahead.
    const states = booted.node.states() as unknown as { processes: { game: { players: Record<string, unknown> } } };
    expect(states.processes.game.players['p1']).toEqual({ name: 'Ann', score: 75 });
    expect(booted.node.status().processes.every((p) => !p.suspended)).toBe(true);
  });

  test('rollback after copies made ahead is byte-exact for every module and process', async () => {
    const v123 = imageFromFiles(patchedDemo('1.2.3', { 'game.js': (t) => t.replace('exports.addLevels = (state, info) => {', "exports.addLevels = (state, info) => {\n  state.players.p1.score = -1;\n  throw new Error('late failure');") }));
    const v122 = demoImage('1.2.2');
    const booted = await boot(v122);
    await booted.http.get('/hello?name=a');
    await booted.http.post('/players', { id: 'p1', name: 'Ann' });
    await booted.http.post('/players/p1/score', { points: 30 });
    await booted.http.put('/config/timeout', { value: 45 });
    const before = JSON.stringify(booted.node.states());
    const outcome = await booted.node.applyScript(planScript(v122, v123), v123);
    expect(outcome.status, outcome.message).toBe('rolled-back');
    expect(JSON.stringify(booted.node.states())).toBe(before);
    // The restored state is live again: the 1.2.2 handlers mutate it in place.
    expect((await booted.http.post('/players/p1/score', { points: 1 })).json).toEqual({ name: 'Ann', score: 31 });
  });
});
