/**
 * `npm run demo -- --runtime erlang` end to end: both seed styles (plain
 * processes moved by a code_change message, a gen_server migrated by
 * code_change/3) up and down, an open connection and background traffic;
 * the demo checks every claim itself and exits non-zero if one fails.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { erlangGate } from './erlang-gate.js';
import { REPO } from '../../helpers/repo-paths.js';

const ok = await erlangGate('Erlang demo test (test/runtime/erlang)');

describe.runIf(ok)('the Erlang demo', () => {
  it('upgrades and rolls back live with every claim holding', { timeout: 120_000 }, async () => {
    const r = await execa('node', [join(REPO, 'dist', 'demo', 'run-demo.js'), '--runtime', 'erlang'], { reject: false, stdin: 'ignore', env: { NO_COLOR: '1' } });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toContain('✗');
    expect(r.stdout).toMatch(/\d+ short connections answered, 0 failed/);
    expect(r.stdout).toContain('Every claim above was checked and holds.');
  });
});
