import { describe, expect, it } from 'vitest';
import type { RolloutResult } from '../../src/client/fleet/fleet-types.js';
import { execa } from 'execa';
import { CLI } from '../helpers/repo-paths.js';
import { runCli } from '../helpers/run-cli.js';
import { startFleet, type Fleet } from './fleet-nodes.js';

interface Status {
  version: string;
  permanent: string;
  history: { op: string; status: string }[];
  soak?: { version: string; startedAt: string; deadline: string; overdue: boolean };
}

async function statusOf(fleet: Fleet, name: string): Promise<Status> {
  return JSON.parse((await runCli(['status', '--target', name, '--json'], fleet.dir)).stdout) as Status;
}

/** Poll until the node runs `version` (the soak has begun: committed, not permanent). */
async function waitFor(fleet: Fleet, name: string, version: string): Promise<Status> {
  for (let i = 0; i < 300; i++) {
    const st = await statusOf(fleet, name).catch(() => undefined);
    if (st?.version === version) return st;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} never ran ${version}`);
}

const resultOf = (stdout: string): RolloutResult => JSON.parse(stdout.trim().split('\n').at(-1)!) as RolloutResult;

/** issue 13 §2 on real node processes: soak, health check, automatic revert, restart during the soak. */
describe('relup apply --soak', { timeout: 180_000 }, () => {
  it('keeps the release not permanent during the soak, then rolls it back automatically when the health check fails', async () => {
    const fleet = await startFleet(1, {});
    try {
      // Healthy while the setting enable_cache (new in 1.2.3, default true) is true.
      const apply = runCli(['apply', '--target', 'n1', '--to', '1.2.3', '--soak', '60s', '--health-invoke', 'config.get("enable_cache")', '--health-interval', '100', '--json'], fleet.dir);
      const during = await waitFor(fleet, 'n1', '1.2.3');
      expect(during.permanent).toBe('1.2.2');
      // The node itself says it is in soak, and until when (docs/protocol.md#soak).
      expect(during.soak).toMatchObject({ version: '1.2.3', overdue: false });
      expect(Date.parse(during.soak!.deadline) - Date.parse(during.soak!.startedAt)).toBe(60_000);
      const text = await runCli(['status', '--target', 'n1'], fleet.dir);
      expect(text.stdout).toContain(`soak:      1.2.3 until ${during.soak!.deadline}`);
      // The service goes bad in the middle of the soak.
      const c = await fleet.nodes[0]!.connect();
      await c.request('invoke', { module: 'config', function: 'set', args: ['enable_cache', false] });
      c.close();
      const r = await apply;
      expect(r.exitCode, r.stderr).toBe(1);
      const result = resultOf(r.stdout);
      expect(result.rows[0]).toMatchObject({ node: 'n1', outcome: 'reverted', version: '1.2.2', permanent: '1.2.2' });
      expect(result.rows[0]!.detail).toContain('health check failed during the soak');
      const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; ok?: boolean; soak?: boolean });
      expect(events.some((e) => e.type === 'soak-start')).toBe(true);
      expect(events.some((e) => e.type === 'health' && e.soak === true && e.ok === false)).toBe(true);
      const after = await statusOf(fleet, 'n1');
      expect(after).toMatchObject({ version: '1.2.2', permanent: '1.2.2' });
      // The revert committed: the soak is over.
      expect(after.soak).toBeUndefined();
      // The way back was the down path: a second committed transaction, not a restart.
      expect(after.history.map((e) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'apply:committed', 'apply:committed']);
    } finally {
      await fleet.stopAll();
    }
  });

  it('makes the release permanent once the soak passes; a node killed during the soak boots the old release', async () => {
    const fleet = await startFleet(2, {});
    try {
      const ok = await runCli(['apply', '--target', 'n1', '--to', '1.2.3', '--soak', '1s', '--health-path', '/version', '--health-interval', '200'], fleet.dir);
      expect(ok.exitCode, ok.stdout + ok.stderr).toBe(0);
      expect(ok.stdout).toContain('soaking until');
      const passed = await statusOf(fleet, 'n1');
      expect(passed).toMatchObject({ version: '1.2.3', permanent: '1.2.3' });
      // make_permanent was the soak's verdict.
      expect(passed.soak).toBeUndefined();

      // Streamed, so the kill lands after the soak began (not while the apply's answer is still on its way).
      const apply = execa('node', [CLI, 'apply', '--target', 'n2', '--to', '1.2.3', '--soak', '60s', '--health-path', '/version', '--health-interval', '100', '--json'], { cwd: fleet.dir, reject: false, stdin: 'ignore', env: { NO_COLOR: '1' } });
      await new Promise<void>((resolve) => {
        let seen = '';
        apply.stdout?.on('data', (d: Buffer) => {
          seen += d.toString();
          if (seen.includes('"type":"soak-start"')) resolve();
        });
      });
      expect(await statusOf(fleet, 'n2')).toMatchObject({ version: '1.2.3', soak: { version: '1.2.3' } });
      fleet.nodes[1]!.child.kill('SIGKILL');
      await fleet.nodes[1]!.child;
      const r = await apply;
      expect(r.exitCode).toBe(1);
      // The client saw the node go and could not revert it; it says so rather than claiming a rollback.
      expect(resultOf(String(r.stdout)).rows[0]).toMatchObject({ node: 'n2', outcome: 'revert-failed' });
      await fleet.restart(1);
      const restarted = await statusOf(fleet, 'n2');
      expect(restarted).toMatchObject({ version: '1.2.2', permanent: '1.2.2' });
      expect(restarted.soak).toBeUndefined();
    } finally {
      await fleet.stopAll();
    }
  });
});

describe('relup apply --soak on a node that already runs the target, not permanently', { timeout: 120_000 }, () => {
  it('resumes: checks health through a whole soak, then makes it permanent', async () => {
    const fleet = await startFleet(1, {});
    try {
      const first = await runCli(['apply', '--target', 'n1', '--to', '1.2.3', '--no-permanent'], fleet.dir);
      expect(first.exitCode, first.stderr).toBe(0);
      expect(await statusOf(fleet, 'n1')).toMatchObject({ version: '1.2.3', permanent: '1.2.2' });
      const r = await runCli(['apply', '--target', 'n1', '--to', '1.2.3', '--soak', '500ms', '--health-path', '/version', '--json'], fleet.dir);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(resultOf(r.stdout).rows[0]).toMatchObject({ outcome: 'committed', from: '1.2.2', version: '1.2.3', permanent: '1.2.3' });
      const st = await statusOf(fleet, 'n1');
      expect(st).toMatchObject({ version: '1.2.3', permanent: '1.2.3' });
      expect(st.history.map((e) => e.op)).toEqual(['boot', 'apply', 'make_permanent']);
    } finally {
      await fleet.stopAll();
    }
  });
});
