import { describe, expect, it } from 'vitest';
import { chainProject } from '../fleet/chain-project.js';
import { runCli } from '../helpers/run-cli.js';

describe('relup plan along a path', { timeout: 60_000 }, () => {
  it('shows the path and one plan per hop when no entry connects the ends', async () => {
    const dir = await chainProject();
    const check = await runCli(['check'], dir);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
    const text = await runCli(['plan', '1.0.0', '1.3.0'], dir);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain('path 1.0.0 → 1.1.0 → 1.2.0 → 1.3.0');
    expect(text.stdout).toContain('hop 2 of 3: 1.1.0 → 1.2.0');
    const [a, b] = await Promise.all([runCli(['plan', '1.0.0', '1.3.0', '--json'], dir), runCli(['plan', '1.0.0', '1.3.0', '--json'], dir)]);
    expect(a.stdout).toBe(b.stdout);
    const json = JSON.parse(a.stdout) as { path: string[]; hops: { from: { version: string }; to: { version: string }; direction: string }[] };
    expect(json.path).toEqual(['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    expect(json.hops.map((h) => `${h.from.version}>${h.to.version}`)).toEqual(['1.0.0>1.1.0', '1.1.0>1.2.0', '1.2.0>1.3.0']);
    const down = JSON.parse((await runCli(['plan', '1.3.0', '1.0.0', '--json'], dir)).stdout) as { path: string[] };
    expect(down.path).toEqual(['1.3.0', '1.2.0', '1.1.0', '1.0.0']);
    // A direct transition keeps its single-script JSON.
    const direct = JSON.parse((await runCli(['plan', '1.0.0', '1.1.0', '--json'], dir)).stdout) as { format: number; path?: unknown };
    expect(direct.format).toBe(1);
    expect(direct.path).toBeUndefined();
  });
});
