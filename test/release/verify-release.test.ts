import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create, extract } from 'tar';
import { describe, expect, it } from 'vitest';
import { packRelease } from '../../src/release/pack-release.js';
import { readRelease } from '../../src/release/read-release.js';
import { verifyRelease } from '../../src/release/verify-release.js';
import { testdir } from '../helpers/testdir.js';
import { DEMO_123 } from './fixtures.js';

/** Pack the demo, extract it with tar, let `edit` change the tree, and re-tar it without touching manifest.json. */
async function tampered(edit: (dir: string) => Promise<void>): Promise<string> {
  const out = await testdir();
  const packed = await packRelease(DEMO_123, { outDir: out });
  const work = await testdir();
  await extract({ file: packed.value!.bundlePath, cwd: work });
  await edit(work);
  const file = join(out, 'tampered.tar.gz');
  await create({ gzip: true, file, cwd: work, portable: true }, (await readdir(work)).sort());
  return file;
}

async function editManifest(dir: string, change: (m: Record<string, unknown>) => void): Promise<void> {
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  change(m);
  await writeFile(path, JSON.stringify(m));
}

const codes = (r: { diagnostics: { code: string }[] }) => r.diagnostics.map((d) => d.code);

describe('verifyRelease on a bundle', () => {
  it('passes an untouched bundle and reports what it checked', async () => {
    const out = await testdir();
    const packed = await packRelease(DEMO_123, { outDir: out });
    const report = await verifyRelease(packed.value!.bundlePath, { displayPath: 'demo.tar.gz' });
    expect(report).toMatchObject({ ok: true, kind: 'bundle', origin: 'demo.tar.gz', filesChecked: 6, diagnostics: [] });
    expect(report.releaseHash).toBe(packed.value!.manifest.releaseHash);
    expect(report.release?.version).toBe('1.2.3');
    expect(report.manifest).toEqual(packed.value!.manifest);
  });

  it('reports bundle-hash-mismatch for exactly the file changed by one byte', async () => {
    const bundle = await tampered(async (dir) => {
      const bytes = await readFile(join(dir, 'game.js'));
      bytes[10] = bytes[10]! ^ 1;
      await writeFile(join(dir, 'game.js'), bytes);
    });
    const report = await verifyRelease(bundle);
    expect(report.ok).toBe(false);
    expect(report.diagnostics.map((d) => [d.code, d.file])).toEqual([['bundle-hash-mismatch', `${bundle}:game.js`]]);
    expect(report.filesChecked).toBe(6);
  });

  it('reports each changed file on its own', async () => {
    const bundle = await tampered(async (dir) => {
      await writeFile(join(dir, 'game.js'), 'changed');
      await writeFile(join(dir, 'route.js'), 'changed too');
    });
    const report = await verifyRelease(bundle);
    expect(report.diagnostics.map((d) => [d.code, d.file])).toEqual([
      ['bundle-hash-mismatch', `${bundle}:game.js`],
      ['bundle-hash-mismatch', `${bundle}:route.js`],
    ]);
  });

  it('reports a removed file as missing', async () => {
    const bundle = await tampered((dir) => rm(join(dir, 'route.js')));
    const report = await verifyRelease(bundle);
    const missing = report.diagnostics.filter((d) => d.code === 'bundle-file-missing');
    expect(missing.map((d) => d.file)).toEqual([`${bundle}:route.js`]);
    // release.yaml names it too.
    expect(codes(report)).toContain('release-module-file-missing');
  });

  it('reports an added file as extra', async () => {
    const bundle = await tampered((dir) => writeFile(join(dir, 'backdoor.js'), 'evil()'));
    const report = await verifyRelease(bundle);
    expect(report.diagnostics.map((d) => [d.code, d.file])).toEqual([['bundle-file-extra', `${bundle}:backdoor.js`]]);
  });

  it('reports a missing manifest.json', async () => {
    const bundle = await tampered((dir) => rm(join(dir, 'manifest.json')));
    const report = await verifyRelease(bundle);
    expect(codes(report)).toEqual(['bundle-manifest-missing']);
    expect(report.filesChecked).toBe(0);
  });

  it('reports a manifest.json that is not JSON, or not the format', async () => {
    const garbage = await tampered((dir) => writeFile(join(dir, 'manifest.json'), '{ nope'));
    expect(codes(await verifyRelease(garbage))).toEqual(['bundle-manifest-invalid']);
    const wrong = await tampered((dir) => editManifest(dir, (m) => Object.assign(m, { format: 2, extra: true })));
    expect(codes(await verifyRelease(wrong))).toEqual(['bundle-manifest-invalid', 'bundle-manifest-invalid']);
    const unsafe = await tampered((dir) => editManifest(dir, (m) => ((m.files as { path: string }[])[0]!.path = '../x')));
    expect(codes(await verifyRelease(unsafe))).toEqual(['bundle-manifest-invalid']);
  });

  it('reports a releaseHash that does not match the files', async () => {
    const bundle = await tampered((dir) => editManifest(dir, (m) => (m.releaseHash = '0'.repeat(64))));
    expect(codes(await verifyRelease(bundle))).toEqual(['bundle-release-hash-mismatch']);
  });

  it('reports a manifest whose version differs from release.yaml', async () => {
    const bundle = await tampered((dir) => editManifest(dir, (m) => (m.version = '9.9.9')));
    expect(codes(await verifyRelease(bundle))).toEqual(['bundle-manifest-mismatch']);
  });

  it('includes the diagnostics of release.yaml', async () => {
    const bundle = await tampered(async (dir) => {
      const yaml = await readFile(join(dir, 'release.yaml'), 'utf8');
      await writeFile(join(dir, 'release.yaml'), yaml.replace('module: game', 'module: gmae'));
    });
    const report = await verifyRelease(bundle);
    expect(report.diagnostics.map((d) => [d.code, d.file, d.line])).toEqual([
      ['bundle-hash-mismatch', `${bundle}:release.yaml`, undefined],
      ['release-process-module-unknown', `${bundle}:release.yaml`, 28],
    ]);
  });

  it('makes readRelease refuse a tampered bundle', async () => {
    const bundle = await tampered((dir) => writeFile(join(dir, 'game.js'), 'changed'));
    const read = await readRelease(bundle);
    expect(read.value).toBeUndefined();
    expect(codes(read)).toEqual(['bundle-hash-mismatch']);
  });

  it('reports a file that is not a tarball as corrupt', async () => {
    const dir = await testdir({ 'x.tar.gz': 'hello, not gzip' });
    const report = await verifyRelease(join(dir, 'x.tar.gz'));
    expect(report).toMatchObject({ ok: false, kind: undefined, filesChecked: 0 });
    expect(codes(report)).toEqual(['bundle-corrupt']);
  });
});

describe('verifyRelease on a directory', () => {
  it('validates the release and gives its hash', async () => {
    const out = await testdir();
    const packed = await packRelease(DEMO_123, { outDir: out });
    const report = await verifyRelease(DEMO_123);
    expect(report).toMatchObject({ ok: true, kind: 'dir', filesChecked: 6, manifest: undefined, diagnostics: [] });
    expect(report.releaseHash).toBe(packed.value!.manifest.releaseHash);
  });

  it('reports the release.yaml diagnostics', async () => {
    const dir = await testdir({ 'release.yaml': 'name: x\nversion: 1.0.0\nruntime: node\nmodules:\n  a:\n    file: a.js\n' });
    const report = await verifyRelease(dir);
    expect(report.ok).toBe(false);
    expect(report.diagnostics.map((d) => [d.code, d.line])).toEqual([['release-module-file-missing', 6]]);
  });
});
