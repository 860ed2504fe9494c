/**
 * relup's semantics, stated once and run against every runtime's node
 * (harness.ts says how a runtime joins). Nothing here knows which runtime it
 * drives: it sees the logical conformance app through the control protocol
 * and the CLI.
 */
import { appendFile, cp, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/client/connection.js';
import { applyOutcomeSchema } from '../../src/protocol/apply-outcome.js';
import { statusResultSchema } from '../../src/protocol/status-result.js';
import { CLI } from '../helpers/repo-paths.js';
import { runCli } from '../helpers/run-cli.js';
import { runtimeGate } from '../helpers/runtimes.js';
import { testdir } from '../helpers/testdir.js';
import { cliTarget, openNode, trackNodes, until, type ConformanceRuntime } from './harness.js';
import { RUNTIMES } from './runtimes/index.js';

interface Status {
  version: string;
  permanent: string;
  upgrading: boolean;
  processes: { name: string; suspended: boolean }[];
  modules: { name: string; hash: string }[];
  history: { op: string; status: string; from?: string; to: string }[];
}

const running = trackNodes(afterEach);

for (const runtime of RUNTIMES) {
  const ok = await runtimeGate(runtime.name, `conformance suite (${runtime.name})`, () => runtime.available());
  describe.runIf(ok)(`conformance: ${runtime.name} node`, { timeout: 90_000 }, () => {
    const setup = async (version = '1.0.0') => {
      const dir = await testdir();
      await runtime.writeProject(dir);
      const run = join(dir, 'run');
      await mkdir(run, { recursive: true, mode: 0o700 });
      const start = async () => {
        const n = await runtime.startNode({ projectDir: dir, version, socket: join(run, 'node.sock'), stateDir: join(dir, 'state') });
        running.push(n);
        return n;
      };
      const node = await start();
      const c = await openNode(node);
      const call = (message: unknown) => c.request('call', { process: 'counter', message });
      const status = async () => (await c.request('status', {})) as Status;
      const state = async () => ((await c.request('states', {})) as { processes: Record<string, unknown> }).processes['counter'];
      const { target, env } = cliTarget(node);
      const cli = (args: string[]) => runCli([...args, '--target', target], dir, env);
      return { dir, node, c, call, status, state, cli, start, target, env };
    };
    const closeAll = (...cs: Connection[]) => cs.forEach((c) => c.close());
    /**
     * Resolves once the CLI's upgrade runs on the node. A live node says so in
     * `status` (`seen`, default: upgrading); a node whose transaction holds it
     * (harness.ts) cannot answer until the end, so the CLI's own progress
     * tells: the switch before the slow migration is done, the migration runs.
     */
    const inTransaction = async (t: { status(): Promise<Status> }, client: { stdout: NodeJS.ReadableStream | null }, seen: (s: Status) => boolean = (s) => s.upgrading) => {
      if (runtime.transaction === 'holds-node') {
        let out = '';
        client.stdout?.on('data', (d: Buffer) => (out += d.toString('utf8')));
        await until('the slow migration to start', async () => (/\d+ switch counter/.test(out) ? true : undefined));
        return;
      }
      await until('the upgrade to start', async () => (seen(await t.status()) ? true : undefined));
    };

    it('upgrades up and down: state migrated both ways, new code on, nothing left suspended', async () => {
      const t = await setup();
      for (let i = 0; i < 3; i++) await t.call({ op: 'incr' });
      const up = await t.cli(['apply', '--to', '1.1.0', '--json']);
      expect(up.exitCode, up.stderr + up.stdout).toBe(0);
      expect(JSON.parse(up.stdout)).toMatchObject({ status: 'committed', version: '1.1.0', permanent: '1.1.0' });
      expect(await t.state()).toEqual({ count: 3, step: 1 });
      expect(await t.call({ op: 'version' })).toBe('1.1.0');
      expect(await t.call({ op: 'incr' })).toBe(4);
      const down = await t.cli(['rollback', '--json']);
      expect(down.exitCode, down.stderr + down.stdout).toBe(0);
      expect(await t.state()).toEqual({ count: 4 });
      expect(await t.call({ op: 'version' })).toBe('1.0.0');
      const s = await t.status();
      expect(statusResultSchema.safeParse(s).error).toBeUndefined();
      expect(s).toMatchObject({ version: '1.0.0', permanent: '1.0.0', upgrading: false });
      expect(s.processes.every((p) => !p.suspended)).toBe(true);
      closeAll(t.c);
    });

    it('refuses on the version guard before the point of no return, and nothing changes', async () => {
      const t = await setup();
      await t.call({ op: 'incr' });
      const before = { status: await t.status(), state: await t.state() };
      const plan = await runCli(['plan', '1.1.0', '1.2.0', '--json'], t.dir);
      expect(plan.exitCode, plan.stderr).toBe(0);
      const pack = await runCli(['release', 'pack', 'releases/1.2.0', '--out-dir', 'out'], t.dir);
      expect(pack.exitCode, pack.stderr).toBe(0);
      const bundle = await readFile(join(t.dir, 'out', 'conf-1.2.0.tar.gz'));
      const outcome = (await t.c.request('apply', { script: JSON.parse(plan.stdout), bundle: bundle.toString('base64') })) as Record<string, any>;
      expect(outcome).toMatchObject({ status: 'refused', ok: false, version: '1.0.0', failure: { code: 'version-mismatch', step: { op: 'check_version' } } });
      expect(applyOutcomeSchema.safeParse(outcome).error).toBeUndefined();
      const after = await t.status();
      expect(after.version).toBe('1.0.0');
      expect(after.modules).toEqual(before.status.modules);
      expect(await t.state()).toEqual(before.state);
      expect(after.processes.every((p) => !p.suspended)).toBe(true);
      closeAll(t.c);
    });

    it('refuses a bundle whose content differs from the planned release, and nothing changes', async () => {
      const t = await setup();
      const before = await t.state();
      const plan = await runCli(['plan', '1.0.0', '1.1.0', '--json'], t.dir);
      // A valid bundle of other content under the same version: the release hash gives it away.
      await cp(join(t.dir, 'releases', '1.1.0'), join(t.dir, 'other', '1.1.0'), { recursive: true });
      const file = (await execa('ls', [join(t.dir, 'other', '1.1.0')])).stdout.split('\n').find((f) => f.startsWith('counter.'))!;
      await appendFile(join(t.dir, 'other', '1.1.0', file), file.endsWith('.erl') ? '\n%% changed\n' : file.endsWith('.lua') ? '\n-- changed\n' : '\n// changed\n');
      const pack = await runCli(['release', 'pack', 'other/1.1.0', '--out-dir', 'out'], t.dir);
      expect(pack.exitCode, pack.stderr).toBe(0);
      const bundle = await readFile(join(t.dir, 'out', 'conf-1.1.0.tar.gz'));
      const outcome = (await t.c.request('apply', { script: JSON.parse(plan.stdout), bundle: bundle.toString('base64') })) as Record<string, any>;
      // Refused as soon as the upload is read: its release hash is not the one the script was planned for.
      expect(outcome, JSON.stringify(outcome.failure)).toMatchObject({ status: 'refused', version: '1.0.0', failure: { code: 'bundle-invalid' } });
      expect(applyOutcomeSchema.safeParse(outcome).error).toBeUndefined();
      expect(await t.state()).toEqual(before);
      expect(await t.call({ op: 'version' })).toBe('1.0.0');
      closeAll(t.c);
    });

    it('rolls back a crashing migration in place: old code, byte-identical state, every process resumed', async () => {
      const t = await setup();
      expect((await t.cli(['apply', '--to', '1.1.0'])).exitCode).toBe(0);
      for (let i = 0; i < 5; i++) await t.call({ op: 'incr' });
      const before = await t.state();
      const r = await t.cli(['apply', '--to', '1.2.0', '--json']);
      expect(r.exitCode).toBe(1);
      const outcome = JSON.parse(r.stdout);
      expect(outcome).toMatchObject({ status: 'rolled-back', ok: false, version: '1.1.0', failure: { step: { op: 'migrate' } }, rollback: { complete: true } });
      expect(JSON.stringify(await t.state())).toBe(JSON.stringify(before));
      expect(await t.call({ op: 'version' })).toBe('1.1.0');
      expect(await t.call({ op: 'incr' })).toBe(6);
      const s = await t.status();
      expect(s).toMatchObject({ version: '1.1.0', permanent: '1.1.0', upgrading: false });
      expect(s.processes.every((p) => !p.suspended)).toBe(true);
      expect(s.history.at(-1)).toMatchObject({ op: 'apply', to: '1.2.0', status: 'rolled-back' });
      closeAll(t.c);
    });

    it('keeps messages sent during an upgrade waiting, handles each once, in order; a second apply is busy; status answers', async () => {
      const t = await setup();
      expect((await t.cli(['apply', '--to', '1.1.0'])).exitCode).toBe(0);
      await t.call({ op: 'incr' });
      const plan = await runCli(['plan', '1.1.0', '1.3.0', '--json'], t.dir);
      await runCli(['release', 'pack', 'releases/1.3.0', '--out-dir', 'out'], t.dir);
      const bundle = (await readFile(join(t.dir, 'out', 'conf-1.3.0.tar.gz'))).toString('base64');
      const script = JSON.parse(plan.stdout);
      // Opened first: a node whose transaction holds it could not even answer the handshake during it.
      const other = await openNode(t.node);
      let migrating = false;
      const applying = t.c.request('apply', { script, bundle }, (e) => {
        if (e['op'] === 'migrate' && e['status'] === 'start') migrating = true;
      });
      let applied = false;
      void applying.then(() => (applied = true));
      let late: Promise<unknown[]> | undefined;
      if (runtime.transaction === 'holds-node') {
        // Nothing else runs during the transaction (harness.ts): its own events say the slow migration runs.
        await until('the slow migration to start', async () => (migrating ? true : undefined));
        // Status and a second apply sent now wait, and are answered after the transaction, never lost.
        late = Promise.all([other.request('status', {}).then((s) => [applied, s]), other.request('apply', { script, bundle }).then((o) => [applied, o])]);
      } else {
        await until('the counter to be suspended', async () => ((await other.request('status', {})) as Status).processes.find((p) => p.name === 'counter' && p.suspended));
        const status = (await other.request('status', {})) as Status;
        expect(status.upgrading).toBe(true);
        await expect(other.request('apply', { script, bundle })).rejects.toMatchObject({ code: 'busy' });
      }
      let answered = 0;
      const calls = Array.from({ length: 5 }, () => other.request('call', { process: 'counter', message: { op: 'incr' } }).then((v) => (answered++, v)));
      await new Promise((r) => setTimeout(r, 200));
      expect(answered).toBe(0);
      const outcome = (await applying) as Record<string, any>;
      expect(applyOutcomeSchema.safeParse(outcome).error).toBeUndefined();
      expect(outcome.status).toBe('committed');
      expect(outcome.groups[0].suspensionMs).toBeGreaterThan(0);
      expect((await Promise.all(calls)).sort((a, b) => Number(a) - Number(b))).toEqual([2, 3, 4, 5, 6]);
      expect(await t.call({ op: 'get' })).toBe(6);
      if (late !== undefined) {
        const [[statusLate, status], [applyLate, second]] = (await late) as [[boolean, unknown], [boolean, unknown]];
        expect(statusLate && applyLate).toBe(true);
        expect(status).toMatchObject({ version: '1.3.0', upgrading: false });
        // The second apply ran only after the first had ended: nothing left to do, no second upgrade.
        expect(second).toMatchObject({ status: 'noop', version: '1.3.0' });
      }
      closeAll(t.c, other);
    });

    it('finishes the upgrade on its own when the client is SIGKILLed mid-way', async () => {
      const t = await setup();
      expect((await t.cli(['apply', '--to', '1.1.0'])).exitCode).toBe(0);
      const client = execa('node', [CLI, 'apply', '--to', '1.3.0', '--target', t.target], { cwd: t.dir, reject: false, stdin: 'ignore', env: t.env });
      await inTransaction(t, client);
      client.kill('SIGKILL');
      await client;
      const done = await until('the upgrade to end', async () => {
        const s = await t.status();
        return s.upgrading ? undefined : s;
      });
      expect(done).toMatchObject({ version: '1.3.0', permanent: '1.3.0' });
      expect(done.history.at(-1)).toMatchObject({ op: 'apply', to: '1.3.0', status: 'committed' });
      expect(done.processes.every((p) => !p.suspended)).toBe(true);
      expect(await t.call({ op: 'version' })).toBe('1.3.0');
      closeAll(t.c);
    });

    it('boots its permanent release after a SIGKILL mid-upgrade, and records the attempt as interrupted', async () => {
      const t = await setup();
      expect((await t.cli(['apply', '--to', '1.1.0'])).exitCode).toBe(0);
      const client = execa('node', [CLI, 'apply', '--to', '1.3.0', '--target', t.target], { cwd: t.dir, reject: false, stdin: 'ignore', env: t.env });
      await inTransaction(t, client, (s) => s.processes.some((p) => p.suspended));
      await t.node.kill();
      await client;
      t.c.close();
      const again = await t.start();
      const c = await openNode(again);
      const s = (await c.request('status', {})) as Status;
      expect(s).toMatchObject({ version: '1.1.0', permanent: '1.1.0', upgrading: false });
      expect(s.history.some((e) => e.op === 'apply' && e.to === '1.3.0' && e.status === 'interrupted')).toBe(true);
      expect(s.history.at(-1)).toMatchObject({ op: 'boot', to: '1.1.0' });
      expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.1.0');
      c.close();
    });

    it('a release applied with --no-permanent does not survive a restart', async () => {
      const t = await setup();
      const up = await t.cli(['apply', '--to', '1.1.0', '--no-permanent', '--json']);
      expect(JSON.parse(up.stdout)).toMatchObject({ status: 'committed', version: '1.1.0', permanent: '1.0.0' });
      t.c.close();
      await t.node.stop();
      const again = await t.start();
      const c = await openNode(again);
      expect(await c.request('status', {})).toMatchObject({ version: '1.0.0', permanent: '1.0.0' });
      c.close();
    });
  });
}

export type { ConformanceRuntime };
