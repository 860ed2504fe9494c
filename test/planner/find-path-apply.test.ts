import { describe, expect, it } from 'vitest';
import { chainProject } from '../fleet/chain-project.js';
import { startNodeProcess } from '../helpers/node-process.js';
import { runCli } from '../helpers/run-cli.js';

interface Hops {
  path: string[];
  hops: { from: { version: string }; to: { version: string }; steps: { op: string }[] }[];
}

/**
 * A real three-hop apply on a real node process (issue 13 §3), with a failure
 * injected into the middle hop after its point of no return: hop 1 stays
 * committed, hop 2 is rolled back in place, hop 3 is never tried, and the node
 * runs (and would boot) 1.1.0 with its state intact.
 */
describe('relup apply along a path', { timeout: 120_000 }, () => {
  it('applies 1.0.0 → 1.1.0 → 1.2.0 → 1.3.0 hop by hop', async () => {
    const dir = await chainProject();
    const node = await startNodeProcess(dir, { release: 'releases/1.0.0' });
    try {
      const c = await node.connect();
      await c.request('invoke', { module: 'counter', function: 'bump', args: [] });
      await c.request('invoke', { module: 'counter', function: 'bump', args: [] });
      c.close();
      // A dry run checks the first hop on the node (the others start from releases it does not run yet).
      const dry = await runCli(['apply', '--target', node.socket, '--to', '1.3.0', '--dry-run', '--json'], dir);
      expect(dry.exitCode, dry.stdout + dry.stderr).toBe(0);
      expect(JSON.parse(dry.stdout)).toMatchObject({ status: 'dry-run', ok: true, version: '1.0.0', hops: [{ from: '1.0.0', to: '1.1.0', outcome: { status: 'dry-run' } }] });
      const r = await runCli(['apply', '--target', node.socket, '--to', '1.3.0'], dir);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain('hop 3 of 3: 1.2.0 → 1.3.0');
      expect(r.stdout).toContain('committed: 1.0.0 → 1.1.0 → 1.2.0 → 1.3.0 in 3 hops; the node runs 1.3.0');
      const status = JSON.parse((await runCli(['status', '--target', node.socket, '--json'], dir)).stdout);
      expect(status).toMatchObject({ version: '1.3.0', permanent: '1.3.0' });
      const c2 = await node.connect();
      const states = (await c2.request('states', {})) as { modules: Record<string, unknown> };
      expect(states.modules['counter']).toEqual({ count: 2, max: 2 });
      expect(await c2.request('invoke', { module: 'greet', function: 'hello', args: ['x'] })).toBe('hello 3 x');
      c2.close();
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });

  it('stops at a failed middle hop: hop 2 rolled back in place, the node stays on 1.1.0', async () => {
    const dir = await chainProject();
    const plan = JSON.parse((await runCli(['plan', '1.0.0', '1.3.0', '--json'], dir)).stdout) as Hops;
    // Faults apply to every upgrade by step index: take the first step of hop 2 that hop 1 does not have
    // (its purge, after the migration ran, so the rollback has a migration to undo).
    const hop2 = plan.hops[1]!.steps;
    const index = plan.hops[0]!.steps.length;
    expect(hop2[index]?.op).toBe('purge');
    expect(hop2.findIndex((s) => s.op === 'migrate')).toBeLessThan(index);
    const node = await startNodeProcess(dir, { release: 'releases/1.0.0', env: { RELUP_FAULTS: `${index}:throw` } });
    try {
      const c = await node.connect();
      for (let i = 0; i < 3; i++) await c.request('invoke', { module: 'counter', function: 'bump', args: [] });
      c.close();
      const r = await runCli(['apply', '--target', node.socket, '--to', '1.3.0', '--json'], dir);
      expect(r.exitCode, r.stdout + r.stderr).toBe(1);
      const out = JSON.parse(r.stdout);
      expect(out).toMatchObject({ status: 'path-stopped', ok: false, path: ['1.0.0', '1.1.0', '1.2.0', '1.3.0'], version: '1.1.0', notTried: ['1.2.0 → 1.3.0'] });
      expect(out.hops.map((h: { outcome: { status: string } }) => h.outcome.status)).toEqual(['committed', 'rolled-back']);
      // RELUP_FAULTS takes the 0-based position; apply --json numbers steps from 1, as the plan prints them.
      expect(out.hops[1].outcome.failure.step.index).toBe(index + 1);
      expect(out.hops[1].outcome.rollback.complete).toBe(true);

      const text = await runCli(['status', '--target', node.socket, '--json'], dir);
      const status = JSON.parse(text.stdout);
      expect(status).toMatchObject({ version: '1.1.0', permanent: '1.1.0', upgrading: false });
      const c2 = await node.connect();
      // The migration of the failed hop was undone: the state is 1.1.0's shape, the count kept.
      const states = (await c2.request('states', {})) as { modules: Record<string, unknown> };
      expect(states.modules['counter']).toEqual({ count: 3 });
      expect(await c2.request('invoke', { module: 'counter', function: 'bump', args: [] })).toBe(4);
      expect(await c2.request('invoke', { module: 'greet', function: 'hello', args: ['x'] })).toBe('hello 2 x');
      c2.close();

      // The same failure as a person reads it.
      const again = await runCli(['apply', '--target', node.socket, '--to', '1.3.0'], dir);
      expect(again.exitCode).toBe(1);
      expect(again.stdout).toContain('stopped: hop 1 of 2 (1.1.0 → 1.2.0) rolled-back');
      expect(again.stdout).toContain('the node stays on 1.1.0');
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });
});
