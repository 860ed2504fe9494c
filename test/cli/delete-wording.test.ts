import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { demoCopy, runCli } from '../helpers/run-cli.js';

async function edit(path: string, change: (text: string) => string): Promise<void> {
  await writeFile(path, change(await readFile(path, 'utf8')));
}

/** Issue 8 wording: `delete: <module>` discarded that module's state silently. */
describe('a deleted module', { timeout: 30_000 }, () => {
  it('the plan says its state is discarded and check warns at the instruction', async () => {
    const dir = await demoCopy();
    await writeFile(join(dir, 'releases', '1.2.2', 'legacy.js'), 'exports.initialState = () => ({ seen: 0 });\n');
    await edit(join(dir, 'releases', '1.2.2', 'release.yaml'), (t) => t.replace('modules:\n', 'modules:\n  legacy:\n    file: legacy.js\n'));
    await edit(join(dir, 'appups', '1.2.3.yaml'), (t) => t.replace('        migration: addJoinedAt\ndown:', '        migration: addJoinedAt\n      - delete: legacy\ndown:').replace('  - to: 1.2.2\n    instructions:\n', '  - to: 1.2.2\n    instructions:\n      - add: legacy\n'));
    const lines = (await readFile(join(dir, 'appups', '1.2.3.yaml'), 'utf8')).split('\n');

    const p = await runCli(['plan', '1.2.2', '1.2.3'], dir);
    expect(p.exitCode, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/delete legacy\n\s+legacy is not part of 1\.2\.3: its code is removed and its module state is discarded/);

    const c = await runCli(['check', '--json'], dir);
    expect(c.exitCode, c.stdout).toBe(0);
    const warnings = JSON.parse(c.stdout).diagnostics.filter((d: { code: string }) => d.code === 'check-delete-discards-state');
    expect(warnings).toEqual([expect.objectContaining({ severity: 'warning', file: 'appups/1.2.3.yaml', line: lines.indexOf('      - delete: legacy') + 1 })]);
  });
});
