import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';
import { injectFaults } from '../../src/runtime/node-host/fault-injection.js';
import { startNode, type NodeLogEntry, type RelupNode, type StepPerformer } from '../../src/runtime/node/relup-node.js';
import type { ReleaseImage } from '../../src/runtime/node/release-image.js';
import { CLI } from '../helpers/repo-paths.js';
import { DEMO, canonical, demoScript, fromOf, imageOf, patchedPair, scriptOf, toOf, type Direction } from './helpers/demo.js';
import { NODE_CONFIG, quiet, spyEntries, viewOfNode, windowAt } from './helpers/in-process.js';
import { RealNode } from './helpers/real-node.js';
import { scratchProject } from './helpers/real-cells.js';
import { http, warmUp, type NodeView } from './helpers/traffic.js';

/**
 * The two bugs the fault matrix found, as regression tests of their own
 * (docs/fault-matrix.md, "Fixed: K1 and K2"). The matrix's cells cover them
 * too — every rolled-back cell past the point of no return is a K1 cell, the
 * `crash` column is K2 — these tests are the plain scenarios, as a user
 * would meet them.
 *
 * K1: a rollback restored state snapshotted at a group's first step and
 * erased what requests answered meanwhile had done. Now outside work is held
 * from the point of no return until the transaction settles: a request sent
 * during the upgrade is answered after the outcome, on the final code and
 * state, and what it did stays.
 *
 * K2: a process that died during its migration stayed dead while the outcome
 * said "every process resumed". Now the migration fails (`process-stopped`)
 * and the rollback restarts the process with its state from before.
 */

const projects: string[] = [];
afterAll(async () => {
  await Promise.all(projects.map((d) => rm(d, { recursive: true, force: true })));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Answer {
  label: string;
  value: unknown;
  at: number;
}

/** Send `what` now, recording when each is answered. */
function track(what: Record<string, () => Promise<unknown>>): { answers: Answer[]; all: Promise<Answer[]> } {
  const answers: Answer[] = [];
  const all = Promise.all(
    Object.entries(what).map(([label, send]) =>
      send().then(
        (value) => {
          // A copy: an in-process call's reply may be the process's own state object, changed by later messages.
          const a = { label, value: structuredClone(value), at: performance.now() };
          answers.push(a);
          return a;
        },
        (e: unknown) => {
          const a = { label, value: `failed: ${e instanceof Error ? e.message : String(e)}`, at: performance.now() };
          answers.push(a);
          return a;
        },
      ),
    ),
  );
  return { answers, all };
}

/** The requests of both K1 scenarios: a setting written, a score added, a tick cast, a player read. */
function k1Traffic(node: RelupNode, view: NodeView): Record<string, () => Promise<unknown>> {
  return {
    'PUT /config/timeout 77': () => http(view.port, 'PUT', '/config/timeout', { value: 77 }),
    'POST /players/p1/score 15': () => http(view.port, 'POST', '/players/p1/score', { points: 15 }),
    'invoke game.tick': () => node.invoke('game', 'tick', []),
    'call get_player p1': () => node.call('game', { type: 'get_player', id: 'p1' }),
  };
}

/** The states of a node that never upgraded: `boot`, the warm-up, then `traffic` one at a time. */
async function neverUpgraded(boot: ReleaseImage, traffic: (node: RelupNode, view: NodeView) => Record<string, () => Promise<unknown>>): Promise<string> {
  const node = await startNode({ image: boot, config: NODE_CONFIG });
  try {
    const view = viewOfNode(node, node.status().servers[0]!.port);
    await warmUp(view);
    for (const send of Object.values(traffic(node, view))) await send();
    await quiet(node);
    return canonical(node.states());
  } finally {
    await node.stop();
  }
}

describe('K1 (fixed): a rollback never erases acknowledged work', () => {
  test('a write sent while a slow migration runs, in an upgrade that then fails, is answered after the rollback and kept', { timeout: 20_000 }, async () => {
    // docs/fault-matrix.md's reproduction of K1: 1.2.3's addLevels takes 300 ms, then fails. No fault injection.
    const pair = patchedPair('slow-failing-addLevels', {
      '1.2.3': { 'game.js': (t) => t.replace(/exports\.addLevels = \(state, info\) => \{/, "exports.addLevels = async (state, info) => {\n  await new Promise((r) => setTimeout(r, 300));\n  throw new Error('addLevels failed');") },
    });
    const node = await startNode({ image: pair.v122, config: NODE_CONFIG });
    try {
      const entries = spyEntries(node);
      const view = viewOfNode(node, node.status().servers[0]!.port);
      await warmUp(view);
      let settledAt = Number.POSITIVE_INFINITY;
      const onSettle = windowAt(-1, async () => undefined, () => (settledAt = performance.now()));
      const applying = node.applyScript(scriptOf(pair, 'up'), pair.v123, { intercept: onSettle });
      // game is suspended at step 15; its migration (step 17) is running for the next 300 ms.
      while (node.status().processes.find((p) => p.name === 'game')?.suspended !== true) await sleep(1);
      await sleep(50);
      const base = entries();
      const sent = track(k1Traffic(node, view));
      while (entries().arrived - base.arrived < 4) await sleep(1);
      await sleep(30);
      // Held at the node's entry: none answered, none started; status answers meanwhile.
      expect(sent.answers).toEqual([]);
      expect(entries().started - base.started).toBe(0);
      expect(node.status().upgrading).toBe(true);

      const outcome = await applying;
      expect(outcome).toMatchObject({ status: 'rolled-back', version: '1.2.2', failure: { code: 'module-error', step: { index: 17 } }, rollback: { complete: true } });
      expect(outcome.holdMs).toBeGreaterThanOrEqual(250);
      const answers = await sent.all;
      // Answered once the transaction settled (after its rollback), each once, on the old code (1.2.2 players have no level).
      for (const a of answers) expect(a.at, a.label).toBeGreaterThan(settledAt);
      expect(answers.find((a) => a.label === 'PUT /config/timeout 77')?.value).toEqual({ status: 200, text: '{"timeout":77}' });
      expect(answers.find((a) => a.label === 'call get_player p1')?.value).toEqual({ name: 'Ann', score: 70 });
      expect(entries().started - base.started).toBe(4);
      await quiet(node);
      // Kept: what the answers acknowledged is in the node's state, exactly as on a node that never upgraded.
      expect(await http(view.port, 'GET', '/config')).toMatchObject({ status: 200, text: expect.stringContaining('"timeout":77') });
      expect(canonical(node.states())).toBe(await neverUpgraded(pair.v122, k1Traffic));
    } finally {
      await node.stop();
    }
  });

  test.each(['up', 'down'] as const)('%s: calls and casts to a group that already ran its resume step survive a failure at commit', { timeout: 20_000 }, async (direction: Direction) => {
    const script = demoScript(direction);
    const resume = script.steps.findIndex((s) => s.op === 'resume' && s.process === 'game');
    const commit = script.steps.length - 1;
    const boot = imageOf(DEMO, fromOf(direction));
    const node = await startNode({ image: boot, config: NODE_CONFIG });
    try {
      const entries = spyEntries(node);
      const view = viewOfNode(node, node.status().servers[0]!.port);
      await warmUp(view);
      let sent: ReturnType<typeof track> | undefined;
      let heldAtSettle: number | undefined;
      // The traffic goes out right after `resume game` (before K1's fix, game handled it at once), the commit then fails.
      const window = windowAt(
        resume + 1,
        async () => {
          const base = entries().arrived;
          sent = track(k1Traffic(node, view));
          while (entries().arrived - base < 4) await sleep(1);
        },
        () => (heldAtSettle = sent?.answers.length),
      );
      const intercept = (p: StepPerformer) => window(injectFaults(new Map([[commit, 'throw']]))(p));
      const outcome = await node.applyScript(script, imageOf(DEMO, toOf(direction)), { intercept });
      expect(outcome).toMatchObject({ status: 'rolled-back', version: fromOf(direction), failure: { code: 'injected', step: { index: commit } }, rollback: { complete: true } });
      expect(heldAtSettle).toBe(0);
      const answers = await sent!.all;
      expect(answers.map((a) => a.label).sort()).toEqual(Object.keys(k1Traffic(node, view)).sort());
      expect(answers.find((a) => a.label === 'PUT /config/timeout 77')?.value).toEqual({ status: 200, text: '{"timeout":77}' });
      await quiet(node);
      expect(canonical(node.states())).toBe(await neverUpgraded(boot, k1Traffic));
    } finally {
      await node.stop();
    }
  });
});

describe('K2 (fixed): a process that dies during its migration is brought back by the rollback', () => {
  test.each(['up', 'down'] as const)('%s: the migration fails, the rollback restarts game with its state from before, and it serves', { timeout: 20_000 }, async (direction: Direction) => {
    const script = demoScript(direction);
    const migrate = script.steps.findIndex((s) => s.op === 'migrate' && s.processes.includes('game'));
    const boot = imageOf(DEMO, fromOf(direction));
    const log: NodeLogEntry[] = [];
    const node = await startNode({ image: boot, config: NODE_CONFIG, log: (e) => log.push(e) });
    try {
      const view = viewOfNode(node, node.status().servers[0]!.port);
      await warmUp(view);
      let sent: ReturnType<typeof track> | undefined;
      const traffic = (n: RelupNode) => ({
        'call add_score p1 15': () => n.call('game', { type: 'add_score', id: 'p1', points: 15 }),
        'invoke game.tick': () => n.invoke('game', 'tick', []),
      });
      // Held just before the migration: the calls are not in the mailbox of the process that dies.
      const window = windowAt(migrate - 1, async () => {
        sent = track(traffic(node));
      });
      const outcome = await node.applyScript(script, imageOf(DEMO, toOf(direction)), { intercept: (p) => window(injectFaults(new Map([[migrate, 'crash']]))(p)) });
      expect(outcome).toMatchObject({ status: 'rolled-back', version: fromOf(direction), failure: { code: 'process-stopped', step: { index: migrate } }, rollback: { complete: true, problems: [] } });
      expect(outcome.message).toContain(`step ${migrate + 1} (migrate game.`);
      expect(outcome.message).toContain('every process resumed');
      // …and it is true: game runs, is not suspended, has an empty mailbox, answers.
      expect(node.status().processes).toEqual([{ name: 'game', module: 'game', suspended: false, mailbox: 0, handling: false }]);
      expect(log.some((e) => e.level === 'error' && /game died during the upgrade; the rollback restarted it/.test(e.message))).toBe(true);
      const answers = await sent!.all;
      expect(answers.every((a) => typeof a.value !== 'string' || !a.value.startsWith('failed')), JSON.stringify(answers)).toBe(true);
      await quiet(node);
      // Its state from before the attempt (old shape), plus the held traffic, once.
      expect(canonical(node.states())).toBe(await neverUpgraded(boot, traffic));
      expect(await http(view.port, 'GET', '/players/p1')).toMatchObject({ status: 200 });
      // A healthy process: the next, clean attempt migrates it.
      const again = await node.applyScript(script, imageOf(DEMO, toOf(direction)));
      expect(again.status).toBe('committed');
      const player = (await node.call('game', { type: 'get_player', id: 'p1' })) as Record<string, unknown>;
      expect('level' in player).toBe(direction === 'up');
    } finally {
      await node.stop();
    }
  });

  test('a real node: RELUP_FAULTS=17:crash, relup apply says rolled back, and game serves', { timeout: 30_000 }, async () => {
    const project = await scratchProject();
    projects.push(project);
    const dir = await mkdtemp(join(tmpdir(), 'relup-fault-k2-'));
    projects.push(dir);
    const node = await RealNode.start(dir, { stateDir: join(dir, 'state'), release: join(project, 'releases', '1.2.2'), faults: '17:crash' });
    try {
      await warmUp(node.view());
      const apply = await execa('node', [CLI, 'apply', '--target', node.socket, '--to', '1.2.3'], { cwd: project, reject: false, stdin: 'ignore', env: { NO_COLOR: '1' } });
      const said = `${apply.stdout}\n${apply.stderr}`;
      expect(apply.exitCode, said).not.toBe(0);
      expect(said).toMatch(/step 18 \(migrate game\.addLevels\) failed: process game died/);
      expect(said).toMatch(/rolled back to 1\.2\.2/);
      expect(await http(node.port, 'GET', '/players/p1')).toEqual({ status: 200, text: '{"name":"Ann","score":70}' });
      const status = JSON.parse((await execa('node', [CLI, 'status', '--target', node.socket, '--json'], { cwd: project, stdin: 'ignore' })).stdout) as { version: string; processes: { name: string; suspended: boolean }[] };
      expect(status.version).toBe('1.2.2');
      expect(status.processes).toMatchObject([{ name: 'game', suspended: false }]);
    } finally {
      await node.stop();
    }
  });
});
