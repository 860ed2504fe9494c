/**
 * The fault matrix, stated once for every runtime (harness.ts): each step of
 * a real upgrade (conf 1.0.0 → 1.1.0) is made to fail (RELUP_FAULTS in the
 * node's environment: throw, hang, crash, exit), and the node must end on
 * exactly one release with consistent state and nothing suspended.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';
import { runtimeGate } from '../helpers/runtimes.js';
import { testdir } from '../helpers/testdir.js';
import { openNode, type ConformanceRuntime, type RunningNode } from './harness.js';
import { RUNTIMES } from './runtimes/index.js';

interface Outcome {
  status: string;
  version: string;
  failure?: { code: string; step?: { index: number; op: string } };
  rollback?: { complete: boolean; problems: { message: string }[] };
}
interface Status {
  version: string;
  permanent: string;
  upgrading: boolean;
  processes: { name: string; suspended: boolean }[];
  history: { op: string; status: string; to: string }[];
}

const running: RunningNode[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((n) => n.kill().catch(() => undefined)));
});

/** Start a node on 1.0.0 with `faults`, put some state in it; returns what a cell needs. */
async function cell(runtime: ConformanceRuntime, faults: string) {
  const dir = await testdir();
  await runtime.writeProject(dir);
  await mkdir(join(dir, 'run'), { recursive: true, mode: 0o700 });
  const options = { projectDir: dir, version: '1.0.0', socket: join(dir, 'run', 'node.sock'), stateDir: join(dir, 'state'), env: { RELUP_FAULTS: faults } };
  const node = await runtime.startNode(options);
  running.push(node);
  const c = await openNode(node);
  for (let i = 0; i < 3; i++) await c.request('call', { process: 'counter', message: { op: 'incr' } });
  const states = async () => ((await c.request('states', {})) as { processes: Record<string, unknown> }).processes['counter'];
  const plan = JSON.parse((await runCli(['plan', '1.0.0', '1.1.0', '--json'], dir)).stdout) as { steps: { op: string }[]; pointOfNoReturn: number };
  expect((await runCli(['release', 'pack', 'releases/1.1.0', '--out-dir', 'out'], dir)).exitCode).toBe(0);
  const bundle = (await readFile(join(dir, 'out', 'conf-1.1.0.tar.gz'))).toString('base64');
  const apply = async (deadlineMs = 10_000) => (await c.request('apply', { script: plan, bundle, deadlineMs })) as Outcome;
  return { dir, node, c, states, plan, apply, options };
}

/** The plan's step indices are the same for every runtime: they come from the shared appups. */
async function indices(runtime: ConformanceRuntime): Promise<{ op: string; index: number }[]> {
  const dir = await testdir();
  await runtime.writeProject(dir);
  const plan = JSON.parse((await runCli(['plan', '1.0.0', '1.1.0', '--json'], dir)).stdout) as { steps: { op: string }[]; pointOfNoReturn: number };
  return plan.steps.map((s, index) => ({ op: s.op, index }));
}

for (const runtime of RUNTIMES) {
  const ok = await runtimeGate(runtime.name, `fault matrix (${runtime.name})`, () => runtime.available());
  describe.runIf(ok)(`fault matrix: ${runtime.name} node`, { timeout: 120_000 }, async () => {
    const steps = ok ? await indices(runtime) : [];
    const ponr = steps.findIndex((s) => s.op === 'point_of_no_return');
    const after = steps.filter((s) => s.index > ponr);

    const consistentOnOldRelease = async (t: Awaited<ReturnType<typeof cell>>, before: unknown) => {
      const s = (await t.c.request('status', {})) as Status;
      expect(s).toMatchObject({ version: '1.0.0', permanent: '1.0.0', upgrading: false });
      expect(s.processes.every((p) => !p.suspended)).toBe(true);
      expect(JSON.stringify(await t.states())).toBe(JSON.stringify(before));
      expect(await t.c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');
      expect(await t.c.request('call', { process: 'counter', message: { op: 'incr' } })).toBe(4);
    };

    it('a failing stage refuses before the point of no return and changes nothing', async () => {
      const stage = steps.find((s) => s.op === 'stage')!;
      const t = await cell(runtime, `${stage.index}:throw`);
      const before = await t.states();
      const out = await t.apply();
      expect(out).toMatchObject({ status: 'refused', version: '1.0.0', failure: { step: { index: stage.index } } });
      await consistentOnOldRelease(t, before);
      t.c.close();
    });

    for (const step of after) {
      it(`a throw at step ${step.index + 1} (${step.op}) rolls back in place: old code, identical state, nothing suspended`, async () => {
        const t = await cell(runtime, `${step.index}:throw`);
        const before = await t.states();
        const out = await t.apply();
        expect(out, JSON.stringify(out)).toMatchObject({ status: 'rolled-back', version: '1.0.0', failure: { step: { index: step.index } }, rollback: { complete: true } });
        await consistentOnOldRelease(t, before);
        t.c.close();
      });
    }

    it('a migration that hangs past the deadline rolls back in place', async () => {
      const migrate = steps.find((s) => s.op === 'migrate')!;
      const t = await cell(runtime, `${migrate.index}:hang`);
      const before = await t.states();
      const out = await t.apply(2000);
      expect(out).toMatchObject({ status: 'rolled-back', version: '1.0.0', failure: { code: 'deadline' } });
      await consistentOnOldRelease(t, before);
      t.c.close();
    });

    it('a process that crashes during its migration is brought back with its state from before the upgrade', async () => {
      const migrate = steps.find((s) => s.op === 'migrate')!;
      const t = await cell(runtime, `${migrate.index}:crash`);
      const before = await t.states();
      const out = await t.apply();
      expect(out, JSON.stringify(out)).toMatchObject({ status: 'rolled-back', version: '1.0.0' });
      await consistentOnOldRelease(t, before);
      t.c.close();
    });

    it('a node killed at its first switch restarts on its permanent release and records the attempt as interrupted', async () => {
      const sw = steps.find((s) => s.op === 'switch')!;
      const t = await cell(runtime, `${sw.index}:exit`);
      await expect(t.apply()).rejects.toBeDefined();
      t.c.close();
      const again = await runtime.startNode({ ...t.options, env: {} });
      running.push(again);
      const c = await openNode(again);
      const s = (await c.request('status', {})) as Status;
      expect(s).toMatchObject({ version: '1.0.0', permanent: '1.0.0', upgrading: false });
      expect(s.history.some((e) => e.op === 'apply' && e.to === '1.1.0' && e.status === 'interrupted')).toBe(true);
      c.close();
    });
  });
}
