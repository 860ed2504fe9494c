import { describe, expect, it } from 'vitest';
import { rollbackTarget } from '../../src/cli/commands/rollback-command.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { startNodeProcess } from '../helpers/node-process.js';

/**
 * Issue 8.1: a rollback only ever goes to an older release. `previous` is the
 * installed releases older than the running one (OTP's `old`), so a second
 * rollback after apply + rollback has nowhere to go: it says so and exits 1
 * instead of planning an upgrade.
 */
describe('relup rollback', { timeout: 90_000 }, () => {
  it('goes back, never forth: apply, rollback, then a second rollback is refused with no-older-release', async () => {
    const dir = await demoCopy();
    const node = await startNodeProcess(dir, { release: 'releases/1.2.2', set: { tickMs: 3_600_000 } });
    try {
      const target = ['--target', node.socket];
      const up = await runCli(['apply', ...target, '--to', '1.2.3', '--json'], dir);
      expect(up.exitCode, up.stderr).toBe(0);
      expect(JSON.parse(up.stdout)).toMatchObject({ status: 'committed', version: '1.2.3', previous: ['1.2.2'] });

      const back = await runCli(['rollback', ...target, '--json'], dir);
      expect(back.exitCode, back.stderr).toBe(0);
      expect(JSON.parse(back.stdout)).toMatchObject({ status: 'committed', version: '1.2.2', previous: [], script: { direction: 'down' } });

      // Before the fix this planned direction "up", 1.2.2 → 1.2.3, because previous held 1.2.3.
      const again = await runCli(['rollback', ...target, '--dry-run', '--json'], dir);
      expect(again.exitCode, again.stdout + again.stderr).toBe(1);
      const refused = JSON.parse(again.stdout);
      expect(refused).toMatchObject({ ok: false, failure: { code: 'no-older-release' }, version: '1.2.2' });
      expect(refused.script).toBeUndefined();
      const text = await runCli(['rollback', ...target], dir);
      expect(text.exitCode).toBe(1);
      expect(text.stderr).toContain('no-older-release');

      // --to a newer release is not a rollback: bad input, pointing at relup apply.
      const forth = await runCli(['rollback', ...target, '--to', '1.2.3', '--dry-run'], dir);
      expect(forth.exitCode).toBe(2);
      expect(forth.stderr).toContain('relup apply --to 1.2.3');

      const status = JSON.parse((await runCli(['status', ...target, '--json'], dir)).stdout);
      expect(status).toMatchObject({ version: '1.2.2', previous: [], installed: ['1.2.3', '1.2.2'] });
      expect(status.history.map((e: { op: string; status: string }) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'apply:committed', 'apply:committed']);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });
});

describe('rollbackTarget (pure)', () => {
  const status = { name: 'chat', version: '1.1.0' };
  it('takes the newest older release, ignoring newer ones a node of another runtime may still list as previous', () => {
    expect(rollbackTarget({ ...status, previous: ['1.2.0', '1.0.0', '1.0.5'] }, undefined)).toEqual({ to: '1.0.5' });
    expect(rollbackTarget({ ...status, previous: ['1.2.0'] }, undefined)).toMatchObject({ code: 'no-older-release' });
    expect(rollbackTarget({ ...status, previous: [] }, undefined)).toMatchObject({ code: 'no-older-release' });
  });
  it('accepts --to an older version (v prefix too) and refuses a newer or equal one as bad input', () => {
    expect(rollbackTarget({ ...status, previous: [] }, 'v1.0.0')).toEqual({ to: '1.0.0' });
    expect(() => rollbackTarget({ ...status, previous: [] }, '1.2.0')).toThrow(/older release/);
    expect(() => rollbackTarget({ ...status, previous: [] }, '1.1.0')).toThrow(/older release/);
    expect(() => rollbackTarget({ ...status, previous: [] }, 'latest')).toThrow(/not a version/);
  });
});

