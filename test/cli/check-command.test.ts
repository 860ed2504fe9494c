import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/repo-paths.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';

describe('relup check', { timeout: 30_000 }, () => {
  it('exits 0 on the repository, planning both directions', async () => {
    const r = await runCli(['check'], REPO);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('✓ 1.2.2 → 1.2.3 (up)');
    expect(r.stdout).toContain('✓ 1.2.3 → 1.2.2 (down)');
    const j = JSON.parse((await runCli(['check', '--json'], REPO)).stdout);
    expect(j).toMatchObject({ ok: true, errors: 0, releases: ['1.2.2', '1.2.3'] });
    expect(j.transitions).toHaveLength(2);
  });

  it('exits 1 with file and line on a copy where a changed module has no instruction', async () => {
    const dir = await demoCopy();
    const appup = join(dir, 'appups', '1.2.3.yaml');
    await writeFile(appup, (await readFile(appup, 'utf8')).replace('      - update: route\n', ''));
    const r = await runCli(['check'], dir);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/appups\/1\.2\.3\.yaml:4(:\d+)?: error plan-changed-not-covered/);
    expect(r.stdout).toContain('✗ 1.2.2 → 1.2.3 (up)');
    const gh = await runCli(['check', '--reporter', 'github'], dir);
    expect(gh.exitCode).toBe(1);
    expect(gh.stdout).toMatch(/^::error file=appups\/1\.2\.3\.yaml,line=4(,col=\d+)?,title=relup plan-changed-not-covered::/m);
    const j = JSON.parse((await runCli(['check', '--json'], dir)).stdout);
    expect(j.ok).toBe(false);
    expect(j.diagnostics.map((d: { code: string }) => d.code)).toContain('plan-changed-not-covered');
  });

  it('reports a downgrade that cannot be planned', async () => {
    const dir = await demoCopy();
    const appup = join(dir, 'appups', '1.2.3.yaml');
    const text = await readFile(appup, 'utf8');
    await writeFile(appup, text.slice(0, text.indexOf('down:')));
    const r = await runCli(['check', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.transitions).toContainEqual(expect.objectContaining({ from: '1.2.3', to: '1.2.2', ok: false }));
    expect(j.diagnostics.map((d: { code: string }) => d.code)).toContain('plan-no-matching-entry');
  });

  it('reports an invalid appup key with its line and a suggestion', async () => {
    const dir = await demoCopy();
    const appup = join(dir, 'appups', '1.2.3.yaml');
    await writeFile(appup, (await readFile(appup, 'utf8')).replace('        migration: addLevels', '        migraton: addLevels'));
    const r = await runCli(['check', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const d = JSON.parse(r.stdout).diagnostics.find((x: { code: string }) => x.code === 'appup-unknown-key');
    expect(d).toMatchObject({ file: 'appups/1.2.3.yaml', line: 13, column: 9 });
    expect(d.message).toContain('migration');
  });
});
