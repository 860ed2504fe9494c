/**
 * The soak (docs/protocol.md "### Soak"), stated once and run against every
 * runtime's node (harness.ts says how a runtime joins). An `apply` with
 * `soakMs` (and `permanent: false`) that commits puts its release in soak:
 * `status.soak` says so until `make_permanent` of that release or a later
 * committed apply ends it; a refused, rolled-back or dry-run apply leaves it;
 * a restart forgets it and boots the permanent release.
 *
 * The scenarios speak the raw protocol (`apply` with `soakMs`), not
 * `relup apply --soak`: the client's health watch is tested in test/fleet/;
 * here only what the node records is asserted.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/client/connection.js';
import { statusResultSchema } from '../../src/protocol/status-result.js';
import { runCli } from '../helpers/run-cli.js';
import { runtimeGate } from '../helpers/runtimes.js';
import { testdir } from '../helpers/testdir.js';
import { cliTarget, openNode, trackNodes, until } from './harness.js';
import { RUNTIMES } from './runtimes/index.js';

interface Soak {
  version: string;
  startedAt: string;
  deadline: string;
  overdue: boolean;
}

interface Status {
  version: string;
  permanent: string;
  upgrading: boolean;
  history: { op: string; status: string; from?: string; to: string }[];
  soak?: Soak;
}

/** ISO 8601 in UTC with milliseconds, as `history[].at` (and `Date.prototype.toISOString`) writes it. */
const ISO_UTC_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Long enough that no scenario outlives it: a soak of this length is never overdue here. */
const LONG_SOAK_MS = 600_000;

const running = trackNodes(afterEach);

for (const runtime of RUNTIMES) {
  const ok = await runtimeGate(runtime.name, `conformance soak (${runtime.name})`, () => runtime.available());
  describe.runIf(ok)(`conformance soak: ${runtime.name} node`, { timeout: 90_000 }, () => {
    const setup = async () => {
      const dir = await testdir();
      await runtime.writeProject(dir);
      const run = join(dir, 'run');
      await mkdir(run, { recursive: true, mode: 0o700 });
      const start = async () => {
        const n = await runtime.startNode({ projectDir: dir, version: '1.0.0', socket: join(run, 'node.sock'), stateDir: join(dir, 'state') });
        running.push(n);
        return n;
      };
      const node = await start();
      const c = await openNode(node);
      /** status, checked against the protocol's (strict) schema: a malformed `soak` fails here. */
      const status = async (conn: Connection = c) => {
        const s = await conn.request('status', {});
        expect(statusResultSchema.safeParse(s).error).toBeUndefined();
        return s as Status;
      };
      const bundles = new Map<string, string>();
      /** The `apply` params of the transition from → to: the planner's script and the packed bundle of `to`. */
      const upload = async (from: string, to: string) => {
        const plan = await runCli(['plan', from, to, '--json'], dir);
        expect(plan.exitCode, plan.stderr).toBe(0);
        if (!bundles.has(to)) {
          const pack = await runCli(['release', 'pack', `releases/${to}`, '--out-dir', 'out'], dir);
          expect(pack.exitCode, pack.stderr).toBe(0);
          bundles.set(to, (await readFile(join(dir, 'out', `conf-${to}.tar.gz`))).toString('base64'));
        }
        return { script: JSON.parse(plan.stdout) as unknown, bundle: bundles.get(to)! };
      };
      const apply = async (from: string, to: string, params: Record<string, unknown>) => (await c.request('apply', { ...(await upload(from, to)), ...params })) as Record<string, any>;
      const version = async () => c.request('call', { process: 'counter', message: { op: 'version' } });
      const { target, env } = cliTarget(node);
      const cli = (args: string[]) => runCli([...args, '--target', target], dir, env);
      return { dir, node, c, status, upload, apply, version, cli, start };
    };

    it('a committed apply with soakMs puts its release in soak: the deadline is soakMs after the start, not overdue, not permanent', async () => {
      const t = await setup();
      const before = Date.now();
      const outcome = await t.apply('1.0.0', '1.1.0', { permanent: false, soakMs: LONG_SOAK_MS });
      const after = Date.now();
      expect(outcome).toMatchObject({ status: 'committed', version: '1.1.0', permanent: '1.0.0' });
      const s = await t.status();
      expect(s).toMatchObject({ version: '1.1.0', permanent: '1.0.0', soak: { version: '1.1.0', overdue: false } });
      const soak = s.soak!;
      expect(soak.startedAt).toMatch(ISO_UTC_MS);
      expect(soak.deadline).toMatch(ISO_UTC_MS);
      expect(Date.parse(soak.deadline) - Date.parse(soak.startedAt)).toBe(LONG_SOAK_MS);
      // The start is the commit, on the wall clock in UTC (a local-time or monotonic clock is far off):
      // checked against the test's own clock with a wide margin, not timed.
      expect(Date.parse(soak.startedAt)).toBeGreaterThan(before - 60_000);
      expect(Date.parse(soak.startedAt)).toBeLessThan(after + 60_000);
      expect(await t.version()).toBe('1.1.0');
      // Asking again changes nothing: status only reports the soak.
      expect((await t.status()).soak).toEqual(soak);
      t.c.close();
    });

    it('make_permanent of the release in soak ends it; making another release permanent does not', async () => {
      const t = await setup();
      await t.apply('1.0.0', '1.1.0', { permanent: false, soakMs: LONG_SOAK_MS });
      const soak = (await t.status()).soak;
      expect(soak).toMatchObject({ version: '1.1.0' });
      // 1.0.0 is installed and already permanent: not the verdict on 1.1.0.
      expect(await t.c.request('make_permanent', { version: '1.0.0' })).toEqual({ permanent: '1.0.0' });
      expect((await t.status()).soak).toEqual(soak);
      expect(await t.c.request('make_permanent', { version: '1.1.0' })).toEqual({ permanent: '1.1.0' });
      const s = await t.status();
      expect(s).toMatchObject({ version: '1.1.0', permanent: '1.1.0' });
      expect(s.soak).toBeUndefined();
      t.c.close();
    });

    it('refuses soakMs with a permanent apply, or out of range, as bad_request, and nothing changes', async () => {
      const t = await setup();
      const before = await t.status();
      const params = await t.upload('1.0.0', '1.1.0');
      const refusals: Record<string, unknown>[] = [
        { soakMs: 60_000 }, // permanent defaults to true
        { soakMs: 60_000, permanent: true },
        { soakMs: 0, permanent: false },
        { soakMs: 1.5, permanent: false },
        { soakMs: 604_800_001, permanent: false },
        { soakMs: '60000', permanent: false },
      ];
      for (const extra of refusals) {
        await expect(t.c.request('apply', { ...params, ...extra }), JSON.stringify(extra)).rejects.toMatchObject({ code: 'bad_request' });
      }
      const after = await t.status();
      expect(after).toMatchObject({ version: '1.0.0', permanent: '1.0.0', upgrading: false });
      expect(after.soak).toBeUndefined();
      // Refused before anything happened: not even an attempt in the history.
      expect(after.history).toEqual(before.history);
      expect(await t.version()).toBe('1.0.0');
      // The largest soak is accepted.
      expect(await t.c.request('apply', { ...params, soakMs: 604_800_000, permanent: false })).toMatchObject({ status: 'committed', version: '1.1.0' });
      expect((await t.status()).soak).toMatchObject({ version: '1.1.0', overdue: false });
      t.c.close();
    });

    it('a soak past its deadline is overdue: the node keeps running the release, not permanent', async () => {
      const t = await setup();
      expect(await t.apply('1.0.0', '1.1.0', { permanent: false, soakMs: 200 })).toMatchObject({ status: 'committed' });
      const s = await until('the soak to be overdue', async () => {
        const s = await t.status();
        expect(s.soak).toMatchObject({ version: '1.1.0' });
        return s.soak!.overdue ? s : undefined;
      });
      expect(s).toMatchObject({ version: '1.1.0', permanent: '1.0.0', upgrading: false });
      expect(Date.parse(s.soak!.deadline) - Date.parse(s.soak!.startedAt)).toBe(200);
      expect(await t.version()).toBe('1.1.0');
      expect(await t.c.request('call', { process: 'counter', message: { op: 'incr' } })).toBe(1);
      t.c.close();
    });

    it('a rolled-back or dry-run apply leaves the soak; a later committed apply ends it or starts its own', async () => {
      const t = await setup();
      await t.apply('1.0.0', '1.1.0', { permanent: false, soakMs: LONG_SOAK_MS });
      const soak = (await t.status()).soak;
      expect(soak).toMatchObject({ version: '1.1.0' });
      // 1.2.0's migration crashes: rolled back, still 1.1.0 in the same soak.
      expect(await t.apply('1.1.0', '1.2.0', { permanent: false, soakMs: 1_000 })).toMatchObject({ status: 'rolled-back', version: '1.1.0' });
      expect((await t.status()).soak).toEqual(soak);
      expect(await t.apply('1.1.0', '1.3.0', { dryRun: true, permanent: false, soakMs: 1_000 })).toMatchObject({ status: 'dry-run', version: '1.1.0' });
      expect((await t.status()).soak).toEqual(soak);
      // A committed upgrade with its own soakMs: the soak is now 1.3.0's.
      expect(await t.apply('1.1.0', '1.3.0', { permanent: false, soakMs: LONG_SOAK_MS })).toMatchObject({ status: 'committed', version: '1.3.0', permanent: '1.0.0' });
      const next = (await t.status()).soak;
      expect(next).toMatchObject({ version: '1.3.0', overdue: false });
      expect(Date.parse(next!.startedAt)).toBeGreaterThanOrEqual(Date.parse(soak!.startedAt));
      // The revert (`relup rollback`, a committed apply down to 1.1.0) ends it.
      const down = await t.cli(['rollback', '--json']);
      expect(down.exitCode, down.stderr + down.stdout).toBe(0);
      expect(JSON.parse(down.stdout)).toMatchObject({ status: 'committed', version: '1.1.0' });
      const s = await t.status();
      expect(s.version).toBe('1.1.0');
      expect(s.soak).toBeUndefined();
      expect(await t.version()).toBe('1.1.0');
      t.c.close();
    });

    it('a node restarted during a soak boots its permanent release and has no soak', async () => {
      const t = await setup();
      await t.apply('1.0.0', '1.1.0', { permanent: false, soakMs: LONG_SOAK_MS });
      expect((await t.status()).soak).toMatchObject({ version: '1.1.0' });
      t.c.close();
      await t.node.kill();
      const again = await t.start();
      const c = await openNode(again);
      const s = await t.status(c);
      expect(s).toMatchObject({ version: '1.0.0', permanent: '1.0.0' });
      expect(s.soak).toBeUndefined();
      expect(s.history.at(-1)).toMatchObject({ op: 'boot', to: '1.0.0' });
      expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');
      c.close();
    });
  });
}
