import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { demoCopy, runCli } from '../helpers/run-cli.js';

type D = { code: string; severity: string; file?: string; line?: number };

/**
 * Issue 8 item 8: a release whose module file is missing exists and is broken.
 * `plan` and `check` say so once, at its release.yaml line — not "not in
 * releases (did you mean …)", and no appup-without-release.
 */
describe('a release with a missing module file', { timeout: 30_000 }, () => {
  it('plan reports the broken release once at its release.yaml line, exit 1', async () => {
    const dir = await demoCopy();
    await rm(join(dir, 'releases', '1.2.3', 'route.js'));
    for (const args of [['plan', '1.2.2', '1.2.3'], ['plan', 'v1.2.3', '1.2.2']]) {
      const r = await runCli(args, dir);
      expect(r.exitCode, r.stderr).toBe(1);
      expect(r.stderr).not.toContain('is not in releases');
      expect(r.stderr).not.toContain('did you mean');
      const errors = r.stderr.split('\n').filter((l) => / error /.test(l));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/^releases\/1\.2\.3\/release\.yaml:\d+:\d+: error release-module-file-missing: /);
    }
    const j = await runCli(['plan', '1.2.2', '1.2.3', '--json'], dir);
    expect(JSON.parse(j.stdout).diagnostics.map((d: D) => d.code)).toEqual(['release-module-file-missing']);
  });

  it('check reports it once and does not blame the appup', async () => {
    const dir = await demoCopy();
    await rm(join(dir, 'releases', '1.2.3', 'route.js'));
    const r = await runCli(['check', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const codes = (JSON.parse(r.stdout).diagnostics as D[]).map((d) => d.code);
    expect(codes).toEqual(['release-module-file-missing']);
  });

  it('an appup entry for the broken older release is not called "matches no release"', async () => {
    const dir = await demoCopy();
    await rm(join(dir, 'releases', '1.2.2', 'game.js'));
    const r = await runCli(['check', '--json'], dir);
    expect(r.exitCode).toBe(1);
    expect((JSON.parse(r.stdout).diagnostics as D[]).map((d) => d.code)).toEqual(['release-module-file-missing']);
  });

  it('a version that does not exist at all is still bad input (exit 2) with a suggestion', async () => {
    const dir = await demoCopy();
    const r = await runCli(['plan', '1.2', '1.2.3'], dir);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('release-not-found');
  });
});
