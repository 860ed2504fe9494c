import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NodeRow, RolloutResult } from '../../src/client/fleet/fleet-types.js';
import { execa } from 'execa';
import { CLI } from '../helpers/repo-paths.js';
import { runCli } from '../helpers/run-cli.js';
import { chainProject } from './chain-project.js';
import { demoStepIndex, startFleet, type Fleet } from './fleet-nodes.js';

async function statusOf(fleet: Fleet, name: string): Promise<{ version: string; permanent: string }> {
  return JSON.parse((await runCli(['status', '--target', name, '--json'], fleet.dir)).stdout) as { version: string; permanent: string };
}
const lines = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
const resultOf = (stdout: string) => lines(stdout).at(-1) as unknown as RolloutResult;
const row = (r: RolloutResult, node: string): NodeRow => r.rows.find((x) => x.node === node)!;

describe('relup apply --fleet, edge cases', { timeout: 180_000 }, () => {
  it('a control channel cut mid-upgrade: the node finishes on its own, the report says which release it runs', async () => {
    const migrate = await demoStepIndex('migrate', 'game');
    // n3's upgrade pauses after its point of no return; the test cuts n3's channel right then.
    const fleet = await startFleet(3, { canary: 1, waveSize: 2, concurrency: 2, onFailure: 'leave' }, { faults: { 2: `${migrate}:pause=2500` }, relayed: [2] });
    try {
      const apply = runCli(['apply', '--fleet', 'prod', '--to', '1.2.3', '--json'], fleet.dir);
      for (let i = 0; i < 300 && !fleet.nodes[2]!.output().includes('paused'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(fleet.nodes[2]!.output()).toContain('paused');
      fleet.relays.get(2)!.cut();
      const r = await apply;
      expect(r.exitCode, r.stderr).toBe(1);
      const result = resultOf(r.stdout);
      // The node went on after the cut and committed; relup reconnected and reports exactly that.
      expect(row(result, 'n3')).toMatchObject({ outcome: 'lost', version: '1.2.3', permanent: '1.2.3' });
      expect(row(result, 'n3').detail).toContain('control channel lost');
      expect(row(result, 'n1')).toMatchObject({ outcome: 'committed', version: '1.2.3' });
      expect(row(result, 'n2')).toMatchObject({ outcome: 'committed', version: '1.2.3' });
      for (const n of ['n1', 'n2', 'n3']) expect(await statusOf(fleet, n)).toMatchObject({ version: row(result, n).version, permanent: row(result, n).permanent });
    } finally {
      await fleet.stopAll();
    }
  });

  it('a canary that commits but fails its health check halts the rollout and is rolled back', async () => {
    // GET /hello without a name: 200 on 1.2.2, 400 on 1.2.3 (its new validation): the new release is "unhealthy".
    const fleet = await startFleet(3, { canary: 1, waveSize: 2, onFailure: 'rollback', health: { path: '/hello' } });
    try {
      const r = await runCli(['apply', '--fleet', 'prod', '--to', '1.2.3', '--json'], fleet.dir);
      expect(r.exitCode).toBe(1);
      const events = lines(r.stdout);
      expect(events.find((e) => e['type'] === 'health')).toMatchObject({ node: 'n1', ok: false, soak: false });
      expect(events.find((e) => e['type'] === 'halt')).toMatchObject({ reason: expect.stringContaining('n1: unhealthy') });
      const result = resultOf(r.stdout);
      expect(row(result, 'n1')).toMatchObject({ outcome: 'reverted', version: '1.2.2', permanent: '1.2.2' });
      for (const n of ['n2', 'n3']) expect(row(result, n)).toMatchObject({ outcome: 'not-started', version: '1.2.2' });
      for (const n of fleet.names) expect(await statusOf(fleet, n)).toMatchObject({ version: '1.2.2', permanent: '1.2.2' });
    } finally {
      await fleet.stopAll();
    }
  });

  it('--health-port: GET the health path on the given port, not on the first server the node reports', async () => {
    // Stands in for a service relup cannot see in status (an Erlang or Lua node's): /ok answers what `healthy` says.
    let healthy = true;
    const service = createServer((req, res) => {
      res.statusCode = req.url === '/ok' ? (healthy ? 200 : 503) : 404;
      res.end();
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const port = (service.address() as AddressInfo).port;
    const fleet = await startFleet(2, {});
    try {
      // The demo's own server answers 404 on /ok: passing means the check went to `port`.
      const ok = await runCli(['apply', '--target', 'n1', '--to', '1.2.3', '--health-path', '/ok', '--health-port', String(port), '--json'], fleet.dir);
      expect(ok.exitCode, ok.stdout + ok.stderr).toBe(0);
      expect(row(resultOf(ok.stdout), 'n1')).toMatchObject({ outcome: 'committed', version: '1.2.3' });
      healthy = false;
      const bad = await runCli(['apply', '--target', 'n2', '--to', '1.2.3', '--health-path', '/ok', '--health-port', String(port), '--json'], fleet.dir);
      expect(bad.exitCode).toBe(1);
      expect(row(resultOf(bad.stdout), 'n2')).toMatchObject({ outcome: 'reverted', version: '1.2.2' });
      expect(row(resultOf(bad.stdout), 'n2').detail).toContain(`:${port}/ok answered 503`);
      const usage = await runCli(['apply', '--target', 'n2', '--to', '1.2.3', '--health-port', String(port)], fleet.dir);
      expect(usage.exitCode).toBe(2);
    } finally {
      await fleet.stopAll();
      await new Promise((resolve) => service.close(resolve));
    }
  });

  it('reaches each node over its own channel: Unix socket, or TCP with its own secret', async () => {
    const fleet = await startFleet(3, { canary: 1, waveSize: 2, health: { path: '/version' } }, { tcp: [1, 2] });
    try {
      const config = await readFile(join(fleet.dir, 'relup.config.yaml'), 'utf8');
      expect(config.match(/secretFile:/g)).toHaveLength(2);
      const r = await runCli(['apply', '--fleet', 'prod', '--to', '1.2.3', '--json'], fleet.dir);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      for (const n of fleet.names) expect(row(resultOf(r.stdout), n)).toMatchObject({ outcome: 'committed', version: '1.2.3' });
      // A wrong secret is an unreachable node: the rollout back is refused, nothing changes.
      await writeFile(join(fleet.dir, 'n3', 'run', 'secret'), 'not the secret\n', { mode: 0o600 });
      const refused = await runCli(['apply', '--fleet', 'prod', '--to', '1.2.2', '--json'], fleet.dir);
      expect(refused.exitCode).toBe(1);
      expect(row(resultOf(refused.stdout), 'n3').outcome).toBe('unreachable');
      for (const n of ['n1', 'n2']) expect(await statusOf(fleet, n)).toMatchObject({ version: '1.2.3' });
    } finally {
      await fleet.stopAll();
    }
  });

  it('Ctrl-C halts gracefully: the upgrade in flight finishes, no later wave starts, the table is printed', async () => {
    const migrate = await demoStepIndex('migrate', 'game');
    const fleet = await startFleet(3, { canary: 1, waveSize: 2, onFailure: 'leave' }, { faults: { 0: `${migrate}:pause=1500` } });
    try {
      const cli = execa('node', [CLI, 'apply', '--fleet', 'prod', '--to', '1.2.3'], { cwd: fleet.dir, reject: false, stdin: 'ignore', env: { NO_COLOR: '1' } });
      for (let i = 0; i < 300 && !fleet.nodes[0]!.output().includes('paused'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(fleet.nodes[0]!.output()).toContain('paused');
      cli.kill('SIGINT');
      const r = await cli;
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('interrupted: finishing the upgrades in flight');
      expect(r.stdout).toContain('HALT: interrupted by the operator');
      expect(r.stdout).not.toContain('wave 1 [n2, n3]');
      expect(r.stdout).toMatch(/n1 +canary +1\.2\.2 +1\.2\.3 +committed/);
      expect(r.stdout).toMatch(/n2 +- +1\.2\.2 +1\.2\.3 +not-started/);
      expect(await statusOf(fleet, 'n1')).toMatchObject({ version: '1.2.3', permanent: '1.2.3' });
      for (const n of ['n2', 'n3']) expect(await statusOf(fleet, n)).toMatchObject({ version: '1.2.2' });
    } finally {
      await fleet.stopAll();
    }
  });

  it('nodes on different releases get one plan per source version, multi-hop where needed', async () => {
    const project = await chainProject();
    const fleet = await startFleet(4, { canary: 1, waveSize: 3 }, { project, releases: { 0: '1.0.0', 1: '1.1.0', 2: '1.0.0', 3: '1.3.0' } });
    try {
      const r = await runCli(['apply', '--fleet', 'prod', '--to', '1.3.0', '--json'], fleet.dir);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      const plans = lines(r.stdout).filter((e) => e['type'] === 'plan');
      expect(plans.map((p) => (p['path'] as string[]).join('>'))).toEqual(['1.0.0>1.1.0>1.2.0>1.3.0', '1.1.0>1.2.0>1.3.0']);
      const result = resultOf(r.stdout);
      expect(row(result, 'n4').outcome).toBe('unchanged');
      for (const n of ['n1', 'n2', 'n3']) expect(row(result, n)).toMatchObject({ outcome: 'committed', version: '1.3.0', permanent: '1.3.0' });
      expect(row(result, 'n1').detail).toBe('3 hops');
      for (const n of fleet.names) expect(await statusOf(fleet, n)).toMatchObject({ version: '1.3.0', permanent: '1.3.0' });
    } finally {
      await fleet.stopAll();
    }
  });
});
