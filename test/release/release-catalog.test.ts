import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packRelease } from '../../src/release/pack-release.js';
import { findRelease, loadCatalog } from '../../src/release/release-catalog.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { testdir, type Tree } from '../helpers/testdir.js';
import { releaseYaml } from './fixtures.js';

function release(dir: string, version: string, body = 'x'): Tree {
  return { [`${dir}/release.yaml`]: releaseYaml(version), [`${dir}/main.js`]: body };
}

describe('loadCatalog', () => {
  it('finds the demo releases', async () => {
    const catalog = await loadCatalog(DEMO_RELEASES, { displayPath: 'releases' });
    expect(catalog.diagnostics).toEqual([]);
    expect([...catalog.releases.keys()]).toEqual(expect.arrayContaining(['1.2.2', '1.2.3']));
    expect(catalog.releases.get('1.2.3')!.origin).toBe('releases/1.2.3');
    expect(catalog.sources.get('1.2.2')).toEqual({ kind: 'dir', path: join(DEMO_RELEASES, '1.2.2') });
  });

  it('reads directories and bundles, in semver order, ignoring other entries', async () => {
    const root = await testdir({ ...release('1.10.0', '1.10.0'), ...release('1.9.0', '1.9.0'), ...release('src/2.0.0', '2.0.0'), 'notes.txt': 'x', 'scratch/a.js': 'x', '.cache/release.yaml': 'junk' });
    await packRelease(join(root, 'src/2.0.0'), { outDir: root });
    const catalog = await loadCatalog(root);
    expect(catalog.diagnostics).toEqual([]);
    expect([...catalog.releases.keys()]).toEqual(['1.9.0', '1.10.0', '2.0.0']);
    expect(catalog.sources.get('2.0.0')).toEqual({ kind: 'bundle', path: join(root, 'tiny-2.0.0.tar.gz') });
  });

  it('prefers the directory when its bundle has the same content', async () => {
    const root = await testdir(release('1.0.0', '1.0.0'));
    await packRelease(join(root, '1.0.0'));
    const catalog = await loadCatalog(root);
    expect(catalog.diagnostics).toEqual([]);
    expect(catalog.sources.get('1.0.0')!.kind).toBe('dir');
  });

  it('refuses one version claimed by a directory and a bundle with different content', async () => {
    const root = await testdir(release('1.0.0', '1.0.0', 'old'));
    await packRelease(join(root, '1.0.0'));
    await writeFile(join(root, '1.0.0', 'main.js'), 'rebuilt');
    const catalog = await loadCatalog(root, { displayPath: 'releases' });
    expect(catalog.diagnostics.map((d) => [d.code, d.file])).toEqual([['release-version-conflict', 'releases/tiny-1.0.0.tar.gz']]);
    expect(catalog.diagnostics[0]!.message).toContain('releases/1.0.0 ');
    expect(catalog.diagnostics[0]!.hint).toContain('bump the version');
    expect(catalog.releases.has('1.0.0')).toBe(false);
  });

  it('refuses one version claimed by two bundles with different content', async () => {
    const root = await testdir({ ...release('a', '1.0.0', 'one'), ...release('b', '1.0.0', 'two') });
    await packRelease(join(root, 'a'), { outDir: join(root, 'out-a') });
    await packRelease(join(root, 'b'), { outDir: join(root, 'out-b') });
    const shelf = await testdir();
    await rename(join(root, 'out-a', 'tiny-1.0.0.tar.gz'), join(shelf, 'tiny-1.0.0.tar.gz'));
    await rename(join(root, 'out-b', 'tiny-1.0.0.tar.gz'), join(shelf, 'tiny-1.0.0-copy.tar.gz'));
    const catalog = await loadCatalog(shelf);
    expect(catalog.diagnostics.map((d) => d.code)).toEqual(['release-version-conflict']);
  });

  it('warns when a directory named as a version holds another version', async () => {
    const root = await testdir({ ...release('1.0.0', '1.0.1'), ...release('v2.0.0', '2.0.0') });
    const catalog = await loadCatalog(root, { displayPath: 'releases' });
    expect(catalog.diagnostics.map((d) => [d.code, d.severity, d.file, d.line])).toEqual([
      ['release-dir-version-mismatch', 'warning', 'releases/1.0.0/release.yaml', 2],
    ]);
    expect([...catalog.releases.keys()]).toEqual(['1.0.1', '2.0.0']);
  });

  it('keeps the good releases and the diagnostics of a bad one', async () => {
    const root = await testdir({ ...release('1.0.0', '1.0.0'), '1.1.0/release.yaml': releaseYaml('1.1.0') });
    const catalog = await loadCatalog(root);
    expect(catalog.diagnostics.map((d) => d.code)).toEqual(['release-module-file-missing']);
    expect([...catalog.releases.keys()]).toEqual(['1.0.0']);
  });

  it('reports a releases directory that does not exist', async () => {
    const root = await testdir();
    const catalog = await loadCatalog(join(root, 'releases'));
    expect(catalog.diagnostics.map((d) => d.code)).toEqual(['releases-dir-missing']);
  });
});

describe('findRelease', () => {
  it('accepts a version with or without a leading v', async () => {
    const catalog = await loadCatalog(DEMO_RELEASES);
    expect(findRelease(catalog, '1.2.3').value?.version).toBe('1.2.3');
    expect(findRelease(catalog, 'v1.2.3').value?.version).toBe('1.2.3');
  });

  it('lists the known versions when the release is not there', async () => {
    const catalog = await loadCatalog(DEMO_RELEASES, { displayPath: 'releases' });
    const found = findRelease(catalog, '1.2.4');
    expect(found.value).toBeUndefined();
    expect(found.diagnostics.map((d) => [d.code, d.file])).toEqual([['release-not-found', 'releases']]);
    expect(found.diagnostics[0]!.hint).toContain('1.2.2, 1.2.3');
  });
});
