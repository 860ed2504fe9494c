import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readReleaseFiles } from '../../src/release/release-files.js';
import { releaseHash, sha256Hex } from '../../src/release/release-hash.js';
import { packRelease } from '../../src/release/pack-release.js';
import { testdir } from '../helpers/testdir.js';
import { DEMO_123, releaseYaml } from './fixtures.js';

describe('readReleaseFiles on a directory', () => {
  it('reads every regular file recursively, in path order, skipping dot names', async () => {
    const dir = await testdir({
      'release.yaml': releaseYaml(),
      'main.js': 'x',
      'lib/a.js': 'a',
      'lib-b.js': 'b',
      '.git/config': 'no',
      '.env': 'no',
      'lib/.hidden': 'no',
    });
    const read = await readReleaseFiles(dir, { displayPath: 'rel' });
    expect(read.diagnostics).toEqual([]);
    expect(read.value?.kind).toBe('dir');
    expect(read.value?.origin).toBe('rel');
    // '-' sorts before '/', so lib-b.js comes before lib/a.js in code-unit order.
    expect([...read.value!.files.keys()]).toEqual(['lib-b.js', 'lib/a.js', 'main.js', 'release.yaml']);
    expect(read.value!.files.get('lib/a.js')!.toString()).toBe('a');
  });

  it('refuses a symlink inside a release directory', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x' });
    await symlink('/etc/passwd', join(dir, 'passwd.js'));
    const read = await readReleaseFiles(dir);
    expect(read.value).toBeUndefined();
    expect(read.diagnostics.map((d) => d.code)).toEqual(['release-unsafe-file']);
    expect(read.diagnostics[0]!.file).toBe(`${dir}/passwd.js`);
  });

  it('refuses a file name that would make the release hash ambiguous', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x' });
    await writeFile(join(dir, 'bad\nname.js'), 'x');
    const read = await readReleaseFiles(dir);
    expect(read.diagnostics.map((d) => d.code)).toEqual(['release-unsafe-file']);
  });

  it('enforces the limits on a directory too', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x'.repeat(100) });
    const read = await readReleaseFiles(dir, { limits: { maxFileBytes: 99 } });
    expect(read.value).toBeUndefined();
    expect(read.diagnostics.map((d) => [d.code, d.file])).toEqual([['release-too-large', `${dir}/main.js`]]);
    const few = await readReleaseFiles(dir, { limits: { maxEntries: 1 } });
    expect(few.diagnostics.map((d) => d.code)).toEqual(['release-too-large']);
  });

  it('reports a path that does not exist', async () => {
    const dir = await testdir();
    const read = await readReleaseFiles(join(dir, 'nope'));
    expect(read.diagnostics.map((d) => d.code)).toEqual(['release-path-missing']);
  });
});

describe('the release hash', () => {
  it('is sha256 over "<sha256>  <path>" lines sorted by path', () => {
    const files = new Map([
      ['b.js', Buffer.from('B')],
      ['a.js', Buffer.from('A')],
    ]);
    const expected = sha256Hex(`${sha256Hex('A')}  a.js\n${sha256Hex('B')}  b.js\n`);
    expect(releaseHash(files)).toBe(expected);
  });

  it('leaves out the bundle manifest and signature', () => {
    const files = new Map([['a.js', Buffer.from('A')]]);
    const withOwn = new Map([...files, ['manifest.json', Buffer.from('{}')], ['manifest.sig', Buffer.from('sig')]]);
    expect(releaseHash(withOwn)).toBe(releaseHash(files));
  });

  it('is the same for the demo read as a directory and as a bundle', async () => {
    const out = await testdir();
    const packed = await packRelease(DEMO_123, { outDir: out });
    const dir = await readReleaseFiles(DEMO_123);
    const bundle = await readReleaseFiles(packed.value!.bundlePath);
    expect(bundle.diagnostics).toEqual([]);
    const bundleFiles = new Map(bundle.value!.files);
    bundleFiles.delete('manifest.json');
    expect(bundleFiles).toEqual(dir.value!.files);
    expect(releaseHash(bundle.value!.files)).toBe(releaseHash(dir.value!.files));
    expect(bundle.value!.kind).toBe('bundle');
  });
});
