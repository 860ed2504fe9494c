import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packRelease } from '../../src/release/pack-release.js';
import { readReleaseFiles } from '../../src/release/release-files.js';
import { releaseHash } from '../../src/release/release-hash.js';
import { testdir, type Tree } from '../helpers/testdir.js';
import { releaseYaml } from './fixtures.js';

/** Names as people write them, plus spaces, '=', non-ASCII, and long ones that need ustar prefixes or pax headers. */
const segment = fc.oneof(
  { weight: 5, arbitrary: fc.stringMatching(/^[a-z0-9_é日= -][a-z0-9_.é日= -]{0,11}$/) },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-z]{90,140}$/) },
);

const fileList = fc
  .uniqueArray(fc.tuple(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.uint8Array({ maxLength: 2048 })), {
    selector: ([parts]) => parts.join('/'),
    maxLength: 12,
  })
  .map((entries) => entries.map(([parts, bytes]) => [parts.join('/'), bytes] as const))
  .map((entries) => {
    const reserved = new Set(['release.yaml', 'main.js', 'manifest.json', 'manifest.sig']);
    const paths = new Set(entries.map(([p]) => p));
    // A path cannot be a file and a directory at once.
    return entries.filter(([p]) => !reserved.has(p) && ![...paths].some((other) => other.startsWith(`${p}/`)));
  });

describe('pack → read round trip', () => {
  it('gives back exactly the files of the directory and the same release hash', async () => {
    await fc.assert(
      fc.asyncProperty(fileList, async (entries) => {
        const tree: Tree = { 'release.yaml': releaseYaml(), 'main.js': 'export {};\n' };
        for (const [path, bytes] of entries) tree[path] = bytes;
        const dir = await testdir(tree);
        const out = await testdir();
        const packed = await packRelease(dir, { outDir: out });
        expect(packed.diagnostics).toEqual([]);
        const fromDir = (await readReleaseFiles(dir)).value!;
        const fromBundle = await readReleaseFiles(packed.value!.bundlePath);
        expect(fromBundle.diagnostics).toEqual([]);
        const files = new Map(fromBundle.value!.files);
        files.delete('manifest.json');
        expect([...files.keys()]).toEqual([...fromDir.files.keys()]);
        expect(files).toEqual(fromDir.files);
        expect(new Map([...files].map(([p, b]) => [p, new Uint8Array(b)]))).toEqual(new Map(Object.entries(tree).map(([p, b]) => [p, new Uint8Array(Buffer.from(b))])));
        expect(releaseHash(fromBundle.value!.files)).toBe(releaseHash(fromDir.files));
        expect(packed.value!.manifest.releaseHash).toBe(releaseHash(fromDir.files));
      }),
      { numRuns: 40 },
    );
  });
});
