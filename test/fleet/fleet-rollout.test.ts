import { describe, expect, it } from 'vitest';
import type { NodeRow, RolloutResult, WaveTiming } from '../../src/client/fleet/fleet-types.js';
import { runCli } from '../helpers/run-cli.js';
import { demoStepIndex, startFleet, type Fleet } from './fleet-nodes.js';

interface Status {
  version: string;
  permanent: string;
  history: { op: string; status: string }[];
}

async function statusOf(fleet: Fleet, name: string): Promise<Status> {
  const r = await runCli(['status', '--target', name, '--json'], fleet.dir);
  return JSON.parse(r.stdout) as Status;
}

function parseEvents(stdout: string): { events: Record<string, unknown>[]; result: RolloutResult } {
  const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  return { events, result: events.at(-1) as unknown as RolloutResult };
}

const row = (r: RolloutResult, node: string): NodeRow => r.rows.find((x) => x.node === node)!;
const timings = (label: string, r: RolloutResult) =>
  console.log(`${label}: ${r.waves.map((w: WaveTiming) => `${w.kind === 'canary' ? 'canary' : `wave ${w.index}`} [${w.nodes.join(',')}] ${w.durationMs.toFixed(0)} ms${w.ok ? '' : ' FAILED'}`).join('; ')}; whole rollout ${r.totalMs.toFixed(0)} ms`);

/**
 * Five real node processes on 1.2.2, the fleet `prod`: a canary (n1), then
 * waves of two (n2 n3, then n4 n5). Faults are injected with RELUP_FAULTS
 * into n3, a node of the middle wave.
 */
describe('relup apply --fleet', { timeout: 240_000 }, () => {
  it('refuses when a node is unreachable before the rollout (nothing changes), then rolls out canary and waves', async () => {
    const fleet = await startFleet(5, { canary: 1, waveSize: 2, onFailure: 'rollback', health: { path: '/version' } });
    try {
      await fleet.nodes[4]!.stop();
      const refused = await runCli(['apply', '--fleet', 'prod', '--to', '1.2.3', '--json'], fleet.dir);
      expect(refused.exitCode, refused.stderr).toBe(1);
      const { result: r1 } = parseEvents(refused.stdout);
      expect(r1).toMatchObject({ ok: false, refused: true, halted: false });
      expect(row(r1, 'n5').outcome).toBe('unreachable');
      for (const n of ['n1', 'n2', 'n3', 'n4']) {
        expect(row(r1, n).outcome).toBe('not-started');
        const st = await statusOf(fleet, n);
        expect(st.version).toBe('1.2.2');
        expect(st.history.map((e) => e.op)).toEqual(['boot']);
      }

      await fleet.restart(4);
      const text = await runCli(['apply', '--fleet', 'prod', '--to', '1.2.3'], fleet.dir);
      expect(text.exitCode, text.stdout + text.stderr).toBe(0);
      expect(text.stdout).toContain('canary [n1]');
      expect(text.stdout).toContain('wave 2 [n4, n5]');
      expect(text.stdout).toMatch(/node +wave +from +to +outcome +runs +permanent +suspension +duration/);
      expect(text.stdout).toContain('every node runs 1.2.3');
      for (const n of fleet.names) expect(await statusOf(fleet, n)).toMatchObject({ version: '1.2.3', permanent: '1.2.3' });

      // And back, as JSON events, to read the wave timings.
      const back = await runCli(['apply', '--fleet', 'prod', '--to', '1.2.2', '--json'], fleet.dir);
      expect(back.exitCode).toBe(0);
      const { events, result } = parseEvents(back.stdout);
      expect(result.waves.map((w) => w.nodes)).toEqual([['n1'], ['n2', 'n3'], ['n4', 'n5']]);
      // Each wave starts only after the previous one is done.
      const order = events.filter((e) => e['type'] === 'wave-start' || e['type'] === 'wave-done').map((e) => `${e['type']}:${e['wave']}`);
      expect(order).toEqual(['wave-start:0', 'wave-done:0', 'wave-start:1', 'wave-done:1', 'wave-start:2', 'wave-done:2']);
      timings('all five, 1.2.3 → 1.2.2', result);
    } finally {
      await fleet.stopAll();
    }
  });

  for (const policy of ['rollback', 'leave'] as const) {
    it(`halts on a failure in the middle wave; policy ${policy}`, async () => {
      const migrate = await demoStepIndex('migrate', 'game');
      const fleet = await startFleet(5, { canary: 1, waveSize: 2, concurrency: 2, onFailure: policy }, { faults: { 2: `${migrate}:throw` } });
      try {
        const r = await runCli(['apply', '--fleet', 'prod', '--to', '1.2.3', '--json'], fleet.dir);
        expect(r.exitCode, r.stderr).toBe(1);
        const { events, result } = parseEvents(r.stdout);
        timings(`middle-wave fault, policy ${policy}`, result);
        expect(result).toMatchObject({ ok: false, refused: false, halted: true });
        expect(events.find((e) => e['type'] === 'halt')).toMatchObject({ policy, reason: expect.stringContaining('n3: failed') });
        // n3 rolled its own upgrade back in place; wave 2 never started.
        expect(row(result, 'n3')).toMatchObject({ outcome: 'failed', version: '1.2.2', wave: 1 });
        expect(events.some((e) => e['type'] === 'wave-start' && e['wave'] === 2)).toBe(false);
        for (const n of ['n4', 'n5']) expect(row(result, n)).toMatchObject({ outcome: 'not-started', version: '1.2.2' });
        const expected = policy === 'rollback' ? { outcome: 'reverted', version: '1.2.2', permanent: '1.2.2' } : { outcome: 'committed', version: '1.2.3', permanent: '1.2.3' };
        for (const n of ['n1', 'n2']) expect(row(result, n)).toMatchObject(expected);
        // What the nodes themselves say.
        const want = { n1: expected.version, n2: expected.version, n3: '1.2.2', n4: '1.2.2', n5: '1.2.2' };
        for (const [n, v] of Object.entries(want)) expect((await statusOf(fleet, n)).version, n).toBe(v);
        expect((await statusOf(fleet, 'n3')).history.map((e) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'apply:rolled-back']);
        if (policy === 'rollback') expect((await statusOf(fleet, 'n1')).history.map((e) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'apply:committed', 'apply:committed']);
      } finally {
        await fleet.stopAll();
      }
    });
  }
});
