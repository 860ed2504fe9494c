import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scriptSchema } from '../../src/script/script-schema.js';
import { REPO } from '../helpers/repo-paths.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';

const golden = (name: string) => join(REPO, 'test', 'golden', name);

/** Golden scripts pin the demo's plans byte for byte; regenerate with UPDATE_GOLDEN=1 after an intended change. */
async function expectGolden(name: string, actual: string): Promise<void> {
  if (process.env['UPDATE_GOLDEN'] === '1') await writeFile(golden(name), actual);
  const expected = await readFile(golden(name), 'utf8').catch(() => '(missing golden file: run with UPDATE_GOLDEN=1)');
  expect(actual).toBe(expected);
}

describe('relup plan', { timeout: 30_000 }, () => {
  it('prints a readable upgrade plan of the demo', async () => {
    const r = await runCli(['plan', 'v1.2.2', 'v1.2.3'], REPO);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('demo 1.2.2 → 1.2.3 (upgrade');
    expect(r.stdout).toContain('4 suspend groups');
    expect(r.stdout).toContain('point of no return');
    expect(r.stdout).toMatch(/migrate game\.addLevels up 1\.2\.2/);
  });

  it('prints identical --json bytes on every run, matching the golden scripts both ways', async () => {
    const [a, b] = await Promise.all([runCli(['plan', 'v1.2.2', 'v1.2.3', '--json'], REPO), runCli(['plan', '1.2.2', '1.2.3', '--json'], REPO)]);
    expect(a.exitCode).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(scriptSchema.parse(JSON.parse(a.stdout)).direction).toBe('up');
    await expectGolden('demo-1.2.2-to-1.2.3.json', `${a.stdout}\n`);

    const down = await runCli(['plan', '1.2.3', '1.2.2', '--json'], REPO);
    expect(down.exitCode).toBe(0);
    expect(scriptSchema.parse(JSON.parse(down.stdout)).direction).toBe('down');
    await expectGolden('demo-1.2.3-to-1.2.2.json', `${down.stdout}\n`);
  });

  it('writes the script with --out', async () => {
    const dir = await demoCopy();
    const r = await runCli(['plan', '1.2.3', '1.2.2', '--out', 'down.json'], dir);
    expect(r.exitCode).toBe(0);
    expect(scriptSchema.parse(JSON.parse(await readFile(join(dir, 'down.json'), 'utf8'))).to.version).toBe('1.2.2');
  });

  it('exits 1 with file and line when a changed module has no instruction', async () => {
    const dir = await demoCopy();
    const appup = join(dir, 'appups', '1.2.3.yaml');
    const text = await readFile(appup, 'utf8');
    await writeFile(appup, text.replace('      - update: route\n', ''));
    const r = await runCli(['plan', '1.2.2', '1.2.3'], dir);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/appups\/1\.2\.3\.yaml:4(:\d+)?: error plan-changed-not-covered/);
    const j = await runCli(['plan', '1.2.2', '1.2.3', '--json'], dir);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, diagnostics: [{ code: 'plan-changed-not-covered', line: 4 }] });
  });

  it('exits 2 for an unknown version or a bad flag', async () => {
    const r = await runCli(['plan', '1.2.2', '9.9.9'], REPO);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('release-not-found');
    const f = await runCli(['plan', '1.2.2', '1.2.3', '--jsn'], REPO);
    expect(f.exitCode).toBe(2);
    expect(f.stderr).toContain('--help');
    expect(f.stderr).not.toMatch(/\n\s+at /);
  });

  it('teaches with --help and starts without loading every command', async () => {
    const r = await runCli(['--help'], REPO);
    expect(r.exitCode).toBe(0);
    for (const c of ['plan', 'check', 'release']) expect(r.stdout).toContain(c);
    const p = await runCli(['plan', '--help'], REPO);
    expect(p.stdout).toContain('relup plan 1.2.2 1.2.3');
  });
});
