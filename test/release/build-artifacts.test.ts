/**
 * Build artifacts (relup-build/): made by a runtime's driver at pack time,
 * listed in manifest.json and so verified, but outside the release hash, so a
 * release keeps its identity whatever compiler packed it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packRelease } from '../../src/release/pack-release.js';
import { readReleaseFiles } from '../../src/release/release-files.js';
import { releaseFromFiles } from '../../src/release/release-from-files.js';
import { releaseHash } from '../../src/release/release-hash.js';
import { verifyRelease } from '../../src/release/verify-release.js';
import { testdir } from '../helpers/testdir.js';

const yaml = 'name: app\nversion: 1.0.0\nruntime: erlang\nmodules:\n  m:\n    file: m.erl\n';

describe('bundle build artifacts', () => {
  it('are packed and verified with the bundle but leave the release hash to the sources', async () => {
    const root = await testdir({ 'rel/release.yaml': yaml, 'rel/m.erl': '-module(m).\n' });
    const built = (bytes: string) => async () => ({ value: new Map([['relup-build/m.beam', Buffer.from(bytes)]]), diagnostics: [] });
    const a = await packRelease(join(root, 'rel'), { outDir: join(root, 'a'), buildArtifacts: built('beam one') });
    const b = await packRelease(join(root, 'rel'), { outDir: join(root, 'b'), buildArtifacts: built('beam two') });
    expect(a.value!.manifest.files.map((f) => f.path)).toEqual(['m.erl', 'release.yaml', 'relup-build/m.beam']);
    const dirHash = releaseHash((await readReleaseFiles(join(root, 'rel'))).value!.files);
    expect(a.value!.manifest.releaseHash).toBe(dirHash);
    expect(b.value!.manifest.releaseHash).toBe(dirHash);
    expect((await verifyRelease(a.value!.bundlePath)).ok).toBe(true);
    expect((await readFile(a.value!.bundlePath)).equals(await readFile(b.value!.bundlePath))).toBe(false);
  });

  it('a build failure refuses the pack; a release directory\'s own relup-build/ is not packed; a module file there is refused', async () => {
    const root = await testdir({ 'rel/release.yaml': yaml, 'rel/m.erl': '-module(m).\n', 'rel/relup-build/stale.beam': 'old' });
    const failed = await packRelease(join(root, 'rel'), {
      outDir: join(root, 'out'),
      buildArtifacts: async () => ({ value: undefined, diagnostics: [{ code: 'x-build-failed', severity: 'error', file: 'm.erl', message: 'no' }] }),
    });
    expect(failed.value).toBeUndefined();
    expect(failed.diagnostics.map((d) => d.code)).toEqual(['pack-build-replaced', 'x-build-failed']);
    const packed = await packRelease(join(root, 'rel'), { outDir: join(root, 'out') });
    expect(packed.value!.manifest.files.map((f) => f.path)).toEqual(['m.erl', 'release.yaml']);

    const reserved = await testdir({ 'release.yaml': yaml.replace('file: m.erl', 'file: relup-build/m.erl'), 'relup-build/m.erl': '-module(m).\n' });
    const parsed = releaseFromFiles((await readReleaseFiles(reserved)).value!);
    expect(parsed.diagnostics.map((d) => d.code)).toEqual(['release-module-file-reserved']);
  });
});
