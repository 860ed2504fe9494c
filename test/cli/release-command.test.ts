import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as tar from 'tar';
import { describe, expect, it } from 'vitest';
import { demoCopy, runCli } from '../helpers/run-cli.js';

describe('relup release pack / verify', { timeout: 30_000 }, () => {
  it('packs a release that then verifies, and fails after one byte of a module changes', async () => {
    const dir = await demoCopy();
    const pack = await runCli(['release', 'pack', '1.2.3'], dir);
    expect(pack.exitCode).toBe(0);
    expect(pack.stdout).toContain('releases/demo-1.2.3.tar.gz');
    const ok = await runCli(['release', 'verify', 'releases/demo-1.2.3.tar.gz'], dir);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toContain('✓');
    const byVersion = await runCli(['release', 'verify', 'v1.2.3', '--json'], dir);
    expect(JSON.parse(byVersion.stdout)).toMatchObject({ ok: true, kind: 'bundle' });

    // Rebuild the tarball with one byte of route.js changed and the original manifest.json kept.
    const work = await mkdtemp(join(tmpdir(), 'relup-tamper-'));
    await tar.x({ file: join(dir, 'releases', 'demo-1.2.3.tar.gz'), cwd: work });
    const route = join(work, 'route.js');
    const bytes = await readFile(route);
    bytes[10] = bytes[10]! ^ 1;
    await writeFile(route, bytes);
    await tar.c({ gzip: true, file: join(dir, 'releases', 'demo-1.2.3.tar.gz'), cwd: work, portable: true }, ['manifest.json', 'release.yaml', 'config.js', 'game.js', 'http_api.js', 'route.js']);
    const bad = await runCli(['release', 'verify', 'releases/demo-1.2.3.tar.gz', '--json'], dir);
    expect(bad.exitCode).toBe(1);
    const report = JSON.parse(bad.stdout);
    expect(report.ok).toBe(false);
    expect(report.diagnostics.filter((d: { code: string }) => d.code === 'bundle-hash-mismatch')).toHaveLength(1);
    expect(report.diagnostics.find((d: { code: string }) => d.code === 'bundle-hash-mismatch').message).toContain('route.js');
  });

  it('packs deterministically and refuses a broken release', async () => {
    const dir = await demoCopy();
    const first = JSON.parse((await runCli(['release', 'pack', '1.2.2', '--json'], dir)).stdout);
    const bytes = await readFile(join(dir, first.bundle));
    const again = JSON.parse((await runCli(['release', 'pack', 'releases/1.2.2', '--json'], dir)).stdout);
    expect(again.unchanged).toBe(true);
    expect(await readFile(join(dir, again.bundle))).toEqual(bytes);

    const manifest = join(dir, 'releases', '1.2.3', 'release.yaml');
    await writeFile(manifest, (await readFile(manifest, 'utf8')).replace('file: route.js', 'file: rout.js'));
    const r = await runCli(['release', 'pack', '1.2.3'], dir);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('release-module-file-missing');
  });
});
