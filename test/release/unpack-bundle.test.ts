import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packRelease } from '../../src/release/pack-release.js';
import { readRelease } from '../../src/release/read-release.js';
import { unpackBundle } from '../../src/release/unpack-bundle.js';
import { verifyRelease } from '../../src/release/verify-release.js';
import { testdir } from '../helpers/testdir.js';
import { DEMO_123, rawTarGz, releaseYaml } from './fixtures.js';

async function demoBundle(): Promise<string> {
  const out = await testdir();
  return (await packRelease(DEMO_123, { outDir: out })).value!.bundlePath;
}

describe('unpackBundle', () => {
  it('writes the release and its manifest into a new directory, and nothing else', async () => {
    const bundle = await demoBundle();
    const parent = await testdir();
    const target = join(parent, 'releases', '1.2.3');
    const result = await unpackBundle(bundle, target);
    expect(result.diagnostics).toEqual([]);
    expect(result.value).toMatchObject({ targetDir: target, filesWritten: 7 });
    expect(result.value!.release.version).toBe('1.2.3');
    expect(await readdir(join(parent, 'releases'))).toEqual(['1.2.3']);
    expect((await readdir(target)).sort()).toEqual(['chat.js', 'config.js', 'game.js', 'http_api.js', 'manifest.json', 'release.yaml', 'route.js']);
    for (const name of ['game.js', 'release.yaml']) {
      expect((await readFile(join(target, name))).equals(await readFile(join(DEMO_123, name)))).toBe(true);
    }
    expect((await stat(join(target, 'game.js'))).mode & 0o777).toBe(0o644);
  });

  it('gives a directory that verifies against the manifest it came with', async () => {
    const bundle = await demoBundle();
    const target = join(await testdir(), 'r');
    await unpackBundle(bundle, target);
    const report = await verifyRelease(target);
    expect(report).toMatchObject({ ok: true, kind: 'dir', filesChecked: 6 });
    expect(report.manifest).toBeDefined();
    expect((await readRelease(target)).value!.hash).toBe((await readRelease(DEMO_123)).value!.hash);
    // A later edit in the unpacked copy is caught.
    await writeFile(join(target, 'game.js'), 'edited on the server');
    expect((await verifyRelease(target, { displayPath: 'r' })).diagnostics.map((d) => [d.code, d.file])).toEqual([['bundle-hash-mismatch', 'r/game.js']]);
  });

  it('accepts an empty target directory', async () => {
    const bundle = await demoBundle();
    const target = await testdir();
    expect((await unpackBundle(bundle, target)).value).toBeDefined();
    expect(await readdir(target)).toContain('release.yaml');
  });

  it('refuses a target that is not empty, and leaves it as it was', async () => {
    const bundle = await demoBundle();
    const target = await testdir({ 'old.js': 'old' });
    const result = await unpackBundle(bundle, target);
    expect(result.diagnostics.map((d) => d.code)).toEqual(['unpack-target-exists']);
    expect(await readdir(target)).toEqual(['old.js']);
  });

  it('refuses a target that is a symlink', async () => {
    const bundle = await demoBundle();
    const parent = await testdir();
    await mkdir(join(parent, 'elsewhere'));
    await symlink(join(parent, 'elsewhere'), join(parent, 'target'));
    const result = await unpackBundle(bundle, join(parent, 'target'));
    expect(result.diagnostics.map((d) => d.code)).toEqual(['unpack-target-exists']);
    expect(await readdir(join(parent, 'elsewhere'))).toEqual([]);
  });

  it('writes nothing when a hash does not match the manifest', async () => {
    const good = rawTarGz([
      { path: 'manifest.json', body: JSON.stringify({ format: 1, name: 'tiny', version: '1.0.0', runtime: 'node', releaseHash: '0'.repeat(64), files: [] }) },
      { path: 'release.yaml', body: releaseYaml() },
      { path: 'main.js', body: 'x' },
    ]);
    const dir = await testdir({ 'b.tar.gz': good });
    const parent = await testdir();
    const result = await unpackBundle(join(dir, 'b.tar.gz'), join(parent, 't'));
    expect(result.diagnostics.map((d) => d.code)).toEqual(['bundle-file-extra', 'bundle-file-extra']);
    expect(await readdir(parent)).toEqual([]);
  });
});
