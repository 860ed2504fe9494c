import { readdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { constants, deflateRawSync, gzipSync } from 'node:zlib';
import { create, Pax } from 'tar';
import { describe, expect, it } from 'vitest';
import { readReleaseFiles } from '../../src/release/release-files.js';
import { unpackBundle } from '../../src/release/unpack-bundle.js';
import { testdir } from '../helpers/testdir.js';
import { rawTar, rawTarGz, releaseYaml, type RawEntry } from './fixtures.js';

const MiB = 1024 * 1024;
const ok: RawEntry[] = [
  { path: 'release.yaml', body: releaseYaml() },
  { path: 'main.js', body: 'export const x = 1;\n' },
];

async function bundleFile(bytes: Uint8Array): Promise<string> {
  const dir = await testdir({ 'hostile.tar.gz': bytes });
  return join(dir, 'hostile.tar.gz');
}

/** Read the bundle, then try to unpack it and check that nothing at all was written. */
async function refused(bytes: Uint8Array, limits = {}): Promise<string[]> {
  const file = await bundleFile(bytes);
  const read = await readReleaseFiles(file, { limits });
  expect(read.value).toBeUndefined();
  const parent = await testdir({ 'keep.txt': 'was here' });
  const unpacked = await unpackBundle(file, join(parent, 'target'), { limits });
  expect(unpacked.value).toBeUndefined();
  expect(unpacked.diagnostics.map((d) => d.code)).toEqual(read.diagnostics.map((d) => d.code));
  expect(await readdir(parent)).toEqual(['keep.txt']);
  return read.diagnostics.map((d) => d.code);
}

/**
 * One gzip member whose size is far below what it inflates to: deflate runs
 * ended with a sync flush are byte-aligned, so one compressed MiB of zeros
 * can be repeated. (Several members would be refused for another reason: a
 * bundle is exactly one member.) The trailer is never reached, so it is zero.
 */
function gzipBomb(head: Buffer, zeroMiB: number): Buffer {
  const flush = { finishFlush: constants.Z_SYNC_FLUSH };
  const zeros = deflateRawSync(Buffer.alloc(MiB), flush);
  const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  return Buffer.concat([header, deflateRawSync(head, flush), ...Array.from({ length: zeroMiB }, () => zeros), deflateRawSync(Buffer.alloc(0)), Buffer.alloc(8)]);
}

describe('hostile bundles', () => {
  it.each([
    ['a parent segment', '../evil'],
    ['a nested parent segment', 'lib/../../evil'],
    ['an absolute path', '/abs/path'],
    ['a drive letter', 'C:/Windows/evil.js'],
    ['a backslash', 'lib\\..\\evil.js'],
    ['a newline', 'a\nb.js'],
  ])('refuses an entry with %s', async (_what, path) => {
    expect(await refused(rawTarGz([...ok, { path, body: 'evil' }]))).toEqual(['bundle-unsafe-entry']);
  });

  it('refuses a pax header that renames an entry to ../evil', async () => {
    const pax = new Pax({ path: '../../evil.js' }).encode();
    const bytes = gzipSync(Buffer.concat([rawTar(ok, { end: false }), pax, rawTar([{ path: 'innocent.js', body: 'evil' }])]));
    expect(await refused(bytes)).toEqual(['bundle-unsafe-entry']);
  });

  it('refuses a symlink to /etc/passwd made by tar itself', async () => {
    const src = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x' });
    await symlink('/etc/passwd', join(src, 'passwd.js'));
    const out = await testdir();
    const file = join(out, 'link.tar.gz');
    await create({ gzip: true, file, cwd: src, portable: true }, ['release.yaml', 'main.js', 'passwd.js']);
    const read = await readReleaseFiles(file);
    expect(read.diagnostics.map((d) => [d.code, d.file])).toEqual([['bundle-unsafe-entry', `${file}:passwd.js`]]);
  });

  it.each([
    ['a symlink', { path: 'passwd.js', type: 'SymbolicLink', linkpath: '/etc/passwd' }],
    ['a hard link', { path: 'shadow.js', type: 'Link', linkpath: '/etc/shadow' }],
    ['a character device', { path: 'dev.js', type: 'CharacterDevice' }],
    ['a block device', { path: 'disk.js', type: 'BlockDevice' }],
    ['a fifo', { path: 'pipe.js', type: 'FIFO' }],
    ['a contiguous file', { path: 'c.js', type: 'ContiguousFile' }],
    ['an entry type tar does not support', { path: 'sparse.js', type: 'SparseFile' }],
  ] as const)('refuses %s', async (_what, entry) => {
    expect(await refused(rawTarGz([...ok, entry as RawEntry]))).toEqual(['bundle-unsafe-entry']);
  });

  it('refuses a path that appears twice', async () => {
    expect(await refused(rawTarGz([...ok, { path: 'main.js', body: 'second' }]))).toEqual(['bundle-duplicate-entry']);
    expect(await refused(rawTarGz([...ok, { path: './main.js', body: 'same path, other spelling' }]))).toEqual(['bundle-duplicate-entry']);
  });

  it('refuses a path that is both a file and a directory', async () => {
    expect(await refused(rawTarGz([...ok, { path: 'main.js/inner.js', body: 'x' }]))).toEqual(['bundle-unsafe-entry']);
  });

  it('reports every unsafe entry, not just the first', async () => {
    const codes = await refused(rawTarGz([...ok, { path: '../a', body: '' }, { path: '/b', body: '' }, { path: 'c', type: 'FIFO' }]));
    expect(codes).toEqual(['bundle-unsafe-entry', 'bundle-unsafe-entry', 'bundle-unsafe-entry']);
  });

  it('accepts directory entries and ./ prefixes as common tar tools write them', async () => {
    const file = await bundleFile(rawTarGz([{ path: './', type: 'Directory' }, { path: './lib/', type: 'Directory' }, { path: './lib/a.js', body: 'a' }, ...ok]));
    const read = await readReleaseFiles(file);
    expect(read.diagnostics).toEqual([]);
    expect([...read.value!.files.keys()]).toEqual(['lib/a.js', 'main.js', 'release.yaml']);
  });
});

describe('bundle limits', () => {
  it('stops a 300 MiB file of zeros at its header, with the default limits', async () => {
    const bytes = gzipBomb(rawTar([...ok, { path: 'zeros.bin', size: 300 * MiB }], { end: false }), 300);
    expect(bytes.length).toBeLessThan(2 * MiB);
    expect(await refused(bytes)).toEqual(['bundle-too-large']);
  });

  it('stops a 10 GiB gzip bomb while streaming, long before inflating it', async () => {
    const bytes = gzipBomb(rawTar(ok), 10 * 1024);
    expect(bytes.length).toBeLessThan(12 * MiB);
    const file = await bundleFile(bytes);
    const read = await readReleaseFiles(file, { limits: { maxTotalBytes: 8 * MiB, maxEntries: 100 } });
    expect(read.diagnostics.map((d) => d.code)).toEqual(['bundle-too-large']);
    // Stopped by the count of inflated bytes, a little past the 8 MiB limit, not by reaching the end of 10 GiB.
    expect(read.diagnostics[0]!.message).toMatch(/inflates to more than \d+ bytes/);
  });

  it('enforces a lowered per-file limit', async () => {
    const bytes = rawTarGz([...ok, { path: 'big.bin', body: Buffer.alloc(2 * MiB) }]);
    expect(await refused(bytes, { maxFileBytes: MiB })).toEqual(['bundle-too-large']);
  });

  it('enforces a lowered total limit', async () => {
    const many = Array.from({ length: 5 }, (_, i) => ({ path: `f${i}.bin`, body: Buffer.alloc(300 * 1024) }));
    expect(await refused(rawTarGz([...ok, ...many]), { maxTotalBytes: MiB })).toEqual(['bundle-too-large']);
  });

  it('enforces a lowered entry count', async () => {
    const many = Array.from({ length: 10 }, (_, i) => ({ path: `f${i}.js`, body: 'x' }));
    expect(await refused(rawTarGz([...ok, ...many]), { maxEntries: 5 })).toEqual(['bundle-too-large']);
  });
});

describe('corrupt bundles', () => {
  it.each([
    ['not gzip at all', () => Buffer.from('just some text, long enough to not be a header')],
    ['an empty file', () => Buffer.alloc(0)],
    ['a truncated gzip stream', () => rawTarGz(ok).subarray(0, 100)],
    ['gzip of something that is not tar', () => gzipSync(Buffer.alloc(4096, 'x'))],
    ['a header with a bad checksum', () => {
      const tar = rawTar(ok);
      tar[0] = 'X'.charCodeAt(0);
      return gzipSync(tar);
    }],
    ['a tar cut in the middle of a file', () => gzipSync(rawTar([{ path: 'a.js', body: Buffer.alloc(2000, 'a') }], { end: false }).subarray(0, 1024))],
    ['a gzip stream inside the gzip stream', () => gzipSync(rawTarGz(ok))],
  ])('reports %s as bundle-corrupt', async (_what, make) => {
    expect(await refused(make())).toEqual(['bundle-corrupt']);
  });
});

describe('unpackBundle target', () => {
  it('refuses a directory given as a bundle', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x' });
    const parent = await testdir();
    const result = await unpackBundle(dir, join(parent, 't'));
    expect(result.diagnostics.map((d) => d.code)).toEqual(['unpack-not-a-bundle']);
    expect(await readdir(parent)).toEqual([]);
  });

});
