import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { list } from 'tar';
import { describe, expect, it } from 'vitest';
import { bundleManifestSchema } from '../../src/release/bundle-manifest.js';
import { packRelease } from '../../src/release/pack-release.js';
import { readReleaseFiles } from '../../src/release/release-files.js';
import { releaseHash, sha256Hex } from '../../src/release/release-hash.js';
import { testdir } from '../helpers/testdir.js';
import { DEMO_123, demoTree, releaseYaml } from './fixtures.js';

describe('packRelease', () => {
  it('writes <name>-<version>.tar.gz next to the release directory', async () => {
    const root = await testdir(Object.fromEntries(Object.entries(await demoTree()).map(([k, v]) => [`releases/1.2.3/${k}`, v])));
    const packed = await packRelease(join(root, 'releases/1.2.3'));
    expect(packed.diagnostics).toEqual([]);
    expect(packed.value!.bundlePath).toBe(join(root, 'releases', 'demo-1.2.3.tar.gz'));
    expect((await readdir(join(root, 'releases'))).sort()).toEqual(['1.2.3', 'demo-1.2.3.tar.gz']);
  });

  it('puts manifest.json and every file at the root, as plain 0644 files with a fixed mtime', async () => {
    const out = await testdir();
    const packed = await packRelease(DEMO_123, { outDir: out });
    const entries: { path: string; type: string; mode: number | undefined; mtime: number | undefined; uid: number | undefined }[] = [];
    await list({ file: packed.value!.bundlePath, onReadEntry: (e) => void entries.push({ path: e.path, type: e.type, mode: e.mode, mtime: e.mtime?.getTime(), uid: e.uid }) });
    expect(entries.map((e) => e.path)).toEqual(['manifest.json', 'chat.js', 'config.js', 'game.js', 'http_api.js', 'release.yaml', 'route.js']);
    for (const e of entries) expect(e).toMatchObject({ type: 'File', mode: 0o644, mtime: 0, uid: 0 });
  });

  it('writes a manifest.json that matches its schema and the files', async () => {
    const out = await testdir();
    const packed = await packRelease(DEMO_123, { outDir: out });
    const bundle = (await readReleaseFiles(packed.value!.bundlePath)).value!;
    const manifest = bundleManifestSchema.parse(JSON.parse(bundle.files.get('manifest.json')!.toString()));
    expect(manifest).toEqual(packed.value!.manifest);
    expect(manifest).toMatchObject({ format: 1, name: 'demo', version: '1.2.3', runtime: 'node' });
    expect(manifest.releaseHash).toBe(releaseHash(bundle.files));
    expect(manifest.releaseHash).toBe(packed.value!.release.hash);
    const game = await readFile(join(DEMO_123, 'game.js'));
    expect(manifest.files.find((f) => f.path === 'game.js')).toEqual({ path: 'game.js', size: game.length, sha256: sha256Hex(game) });
  });

  it('is deterministic: packing twice gives byte-identical bundles', async () => {
    const a = await testdir();
    const b = await testdir();
    const first = await packRelease(DEMO_123, { outDir: a });
    const second = await packRelease(DEMO_123, { outDir: b });
    const bytes = await readFile(first.value!.bundlePath);
    expect(bytes.equals(await readFile(second.value!.bundlePath))).toBe(true);
    // The gzip header names no OS and no time.
    expect([...bytes.subarray(4, 10)]).toEqual([0, 0, 0, 0, 2, 255]);
  });

  it('is idempotent over an identical bundle and leaves no temp file', async () => {
    const out = await testdir();
    await packRelease(DEMO_123, { outDir: out });
    const again = await packRelease(DEMO_123, { outDir: out });
    expect(again.value!.unchanged).toBe(true);
    expect(await readdir(out)).toEqual(['demo-1.2.3.tar.gz']);
  });

  it('refuses to pack a release with errors', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml('"1.0"') });
    const out = await testdir();
    const packed = await packRelease(dir, { outDir: out });
    expect(packed.value).toBeUndefined();
    expect(packed.diagnostics.map((d) => d.code).sort()).toEqual(['release-module-file-missing', 'release-version-invalid']);
    expect(await readdir(out)).toEqual([]);
  });

  it('refuses to replace a bundle of the same version with other content', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'one' });
    const out = await testdir();
    expect((await packRelease(dir, { outDir: out })).value).toBeDefined();
    const before = await readFile(join(out, 'tiny-1.0.0.tar.gz'));
    await writeFile(join(dir, 'main.js'), 'two');
    const again = await packRelease(dir, { outDir: out });
    expect(again.diagnostics.map((d) => d.code)).toEqual(['pack-bundle-exists']);
    expect((await readFile(join(out, 'tiny-1.0.0.tar.gz'))).equals(before)).toBe(true);
    const forced = await packRelease(dir, { outDir: out, overwrite: true });
    expect(forced.value!.unchanged).toBe(false);
  });

  it('refuses a bundle as its source and an out-dir inside the release', async () => {
    const out = await testdir();
    const packed = await packRelease(DEMO_123, { outDir: out });
    expect((await packRelease(packed.value!.bundlePath, { outDir: out })).diagnostics.map((d) => d.code)).toEqual(['pack-source-not-directory']);
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x' });
    expect((await packRelease(dir, { outDir: join(dir, 'dist') })).diagnostics.map((d) => d.code)).toEqual(['pack-out-dir-inside-release']);
  });

  it('does not pack a manifest.json found in the release directory', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x', 'manifest.json': '{"stale":true}' });
    const out = await testdir();
    const packed = await packRelease(dir, { outDir: out });
    expect(packed.diagnostics.map((d) => d.code)).toEqual(['pack-manifest-replaced']);
    const bundle = (await readReleaseFiles(packed.value!.bundlePath)).value!;
    expect(JSON.parse(bundle.files.get('manifest.json')!.toString())).toMatchObject({ format: 1 });
  });

  it('keeps long, nested and non-ASCII paths exactly (ustar prefix and pax headers)', async () => {
    const long = `a=b/${'x'.repeat(120)}/${'y'.repeat(150)}/é 日=.js`;
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x', [long]: 'deep', [`lib/${'z'.repeat(99)}.js`]: 'prefix' });
    const out = await testdir();
    const packed = await packRelease(dir, { outDir: out });
    const bundle = (await readReleaseFiles(packed.value!.bundlePath)).value!;
    expect(bundle.files.get(long)?.toString()).toBe('deep');
    expect(bundle.files.get(`lib/${'z'.repeat(99)}.js`)?.toString()).toBe('prefix');
    expect(packed.value!.manifest.files.map((f) => f.path)).toEqual([...bundle.files.keys()].filter((p) => p !== 'manifest.json'));
  });
});
