import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/repo-paths.js';

describe('npm run demo', () => {
  it('runs unattended, checks every claim it makes and exits 0', { timeout: 60_000 }, async () => {
    const r = await execa('node', [join(REPO, 'dist', 'demo', 'run-demo.js')], { cwd: REPO, reject: false, stdin: 'ignore', env: { NO_COLOR: '1' } });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Every check passed.');
    expect(r.stdout).not.toContain('✗');
    expect(r.stdout).toMatch(/background traffic: \d+ requests across the upgrade and the rollback, 0 failed/);
  });
});
