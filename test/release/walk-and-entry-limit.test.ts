import { execFileSync } from 'node:child_process';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packRelease } from '../../src/release/pack-release.js';
import { loadCatalog } from '../../src/release/release-catalog.js';
import { readBundleFiles } from '../../src/release/read-bundle.js';
import { DEFAULT_LIMITS } from '../../src/release/release-files.js';
import { readReleaseFiles } from '../../src/release/release-files.js';
import { verifyRelease } from '../../src/release/verify-release.js';
import { runCli } from '../helpers/run-cli.js';
import { testdir } from '../helpers/testdir.js';
import { rawTarGz, releaseYaml } from './fixtures.js';

const codes = (r: { diagnostics: { code: string }[] }) => r.diagnostics.map((d) => d.code);

/** A release directory of exactly `count` files (release.yaml and main.js included), in a few subdirectories. */
async function releaseOf(count: number): Promise<string> {
  const dir = await testdir({ 'rel/release.yaml': releaseYaml(), 'rel/main.js': 'x\n' });
  const rel = join(dir, 'rel');
  for (let d = 0; d < 10; d++) await mkdir(join(rel, `d${d}`));
  await Promise.all(Array.from({ length: count - 2 }, (_, i) => writeFile(join(rel, `d${i % 10}`, `f${i}.txt`), `${i}\n`)));
  return rel;
}

describe('pack and verify share one entry limit (issue 9.11)', { timeout: 120_000 }, () => {
  it('packs a release of exactly 10,000 files into a bundle that verifies', async () => {
    const rel = await releaseOf(10_000);
    const packed = await packRelease(rel);
    expect(codes(packed)).toEqual([]);
    // Before: 10,001 entries with manifest.json, refused by verify as bundle-too-large.
    const verified = await verifyRelease(packed.value!.bundlePath);
    expect(codes(verified)).toEqual([]);
    expect(verified.filesChecked).toBe(10_000);
  });

  it('refuses 10,001 files in pack and in verify with the same code', async () => {
    const rel = await releaseOf(10_001);
    const out = await testdir();
    const packed = await packRelease(rel, { outDir: out });
    expect(codes(packed)).toEqual(['release-too-large']);
    expect(await readdir(out)).toEqual([]);
    expect(codes(await verifyRelease(rel))).toEqual(['release-too-large']);
  });

  it('counts a bundle the same way: its own manifest.json and manifest.sig are not release files', async () => {
    const files = [{ path: 'release.yaml', body: releaseYaml() }, { path: 'main.js', body: 'x' }, { path: 'a.js', body: 'a' }];
    const limits = { maxEntries: 3 };
    const own = [{ path: 'manifest.json', body: '{}' }, { path: 'manifest.sig', body: '{}' }];
    // Limit 3, three release files plus the bundle's own two: within the limit (the manifest is then checked, and is invalid here).
    expect(codes(await readReleaseFiles(await bundleFile(rawTarGz([...own, ...files])), { limits }))).toEqual([]);
    expect(codes(await readReleaseFiles(await bundleFile(rawTarGz([...own, ...files, { path: 'b.js', body: 'b' }])), { limits }))).toEqual(['bundle-too-large']);
    // And a directory of four files against the same limit.
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x', 'a.js': 'a', 'b.js': 'b' });
    expect(codes(await readReleaseFiles(dir, { limits }))).toEqual(['release-too-large']);
  });
});

describe('pack and verify share the byte limit too (same class as 9.11)', () => {
  it('packs a release of exactly maxTotalBytes into a bundle that verifies with the same limits', async () => {
    const yaml = releaseYaml();
    const limits = { maxTotalBytes: 8192 };
    const dir = await testdir({ 'rel/release.yaml': yaml, 'rel/main.js': 'x'.repeat(8192 - Buffer.byteLength(yaml)) });
    const out = await testdir();
    const packed = await packRelease(join(dir, 'rel'), { outDir: out, limits });
    expect(codes(packed)).toEqual([]);
    // Before: the bundle's own manifest.json counted towards the total, so verify refused it as bundle-too-large.
    expect(codes(await verifyRelease(packed.value!.bundlePath, { limits }))).toEqual([]);
    const over = await testdir({ 'rel/release.yaml': yaml, 'rel/main.js': 'x'.repeat(8193 - Buffer.byteLength(yaml)) });
    expect(codes(await packRelease(join(over, 'rel'), { outDir: out, limits }))).toEqual(['release-too-large']);
    expect(codes(await verifyRelease(join(over, 'rel'), { limits }))).toEqual(['release-too-large']);
  });
});

async function bundleFile(bytes: Buffer): Promise<string> {
  const dir = await testdir({ 'b.tar.gz': bytes });
  return join(dir, 'b.tar.gz');
}

describe('directory walks (issue 9.12)', { timeout: 60_000 }, () => {
  it('stops at the entry limit, before looking at what comes after it', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x' });
    await Promise.all(Array.from({ length: 50 }, (_, i) => writeFile(join(dir, `a${String(i).padStart(2, '0')}.js`), 'x')));
    // Sorted after every a*.js: a walk that went on past the limit would report these too.
    await symlink('/etc/passwd', join(dir, 'zz-link'));
    execFileSync('mkfifo', [join(dir, 'zz-fifo')]);
    const read = await readReleaseFiles(dir, { limits: { maxEntries: 20 } });
    expect(codes(read)).toEqual(['release-too-large']);
    expect(read.diagnostics[0]!.message).toContain('more than 20 files');
  });

  it('stops at the entry limit for directories too', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x' });
    for (let i = 0; i < 30; i++) await mkdir(join(dir, `d${String(i).padStart(2, '0')}`));
    await symlink('/etc/passwd', join(dir, 'zz-link'));
    const read = await readReleaseFiles(dir, { limits: { maxEntries: 20 } });
    expect(codes(read)).toEqual(['release-too-large']);
    expect(read.diagnostics[0]!.message).toContain('more than 20 directories');
  });

  it('stops after 100 findings instead of listing a whole system tree', async () => {
    const dir = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x' });
    await Promise.all(Array.from({ length: 300 }, (_, i) => symlink('/etc/passwd', join(dir, `l${i}`))));
    const read = await readReleaseFiles(dir);
    expect(read.diagnostics.length).toBe(101);
    expect(codes(read).at(-1)).toBe('release-too-large');
  });

  it('reports `relup release verify /proc/self` as located findings, not an internal error', async () => {
    if (!existsSync('/proc/self')) return void console.warn('skipped: no /proc on this system');
    const dir = await testdir();
    const result = await runCli(['release', 'verify', '/proc/self', '--json'], dir);
    // Before: exit 2, "internal error: ENOENT: no such file or directory, lstat '/proc/self/fd/…'".
    expect(result.exitCode, result.stderr).toBe(1);
    expect(result.stderr).not.toContain('internal error');
    const diagnostics = JSON.parse(result.stdout).diagnostics as { code: string; file?: string }[];
    expect(diagnostics.length).toBeGreaterThan(0);
    for (const d of diagnostics) expect(d.file).toMatch(/^\/proc\/self/);
  });

  it('answers `relup release verify /usr` at the entry limit with release-too-large', async () => {
    if (!existsSync('/usr/lib')) return void console.warn('skipped: no /usr/lib on this system');
    const dir = await testdir();
    // /usr/lib alone: far more than 10,000 files on any system with Node.js installed, and few links near its start.
    const result = await runCli(['release', 'verify', '/usr', '--json'], dir);
    expect(result.exitCode, result.stderr).toBe(1);
    const diagnostics = JSON.parse(result.stdout).diagnostics as { code: string }[];
    expect(diagnostics.map((d) => d.code)).toContain('release-too-large');
    expect(diagnostics.length).toBeLessThanOrEqual(101);
  });

  it('reports a releases directory or a release.yaml that cannot be looked at as a finding, not an internal error', async () => {
    const dir = await testdir({ 'releases/1.0.0/main.js': 'x' });
    // Symbolic-link loops: stat and readdir fail with ELOOP, as EACCES would for a user other than root.
    await symlink('release.yaml', join(dir, 'releases', '1.0.0', 'release.yaml'));
    await symlink('loop', join(dir, 'loop'));
    const catalog = await loadCatalog(join(dir, 'releases'));
    expect(catalog.diagnostics.map((d) => [d.code, d.file])).toEqual([['release-file-unreadable', join(dir, 'releases', '1.0.0', 'release.yaml')]]);
    const looped = await loadCatalog(join(dir, 'loop'));
    expect(looped.diagnostics.map((d) => d.code)).toEqual(['release-file-unreadable']);
  });

  it('never blocks on a fifo where a bundle was (swapped in after the caller looked)', async () => {
    const dir = await testdir();
    execFileSync('mkfifo', [join(dir, 'b.tar.gz')]);
    // Before: the read stream waited for a writer forever.
    const read = await readBundleFiles(join(dir, 'b.tar.gz'), 'b.tar.gz', DEFAULT_LIMITS);
    expect(codes(read)).toEqual(['release-file-unreadable']);
  });

  it('reports a file that vanishes between the listing and the read as release-file-vanished', async () => {
    // /proc/self/fd lists the descriptor readdir itself used, which is closed by the time it is looked at.
    if (!existsSync('/proc/self/fd')) return void console.warn('skipped: no /proc/self/fd on this system');
    const read = await readReleaseFiles('/proc/self/fd', { displayPath: 'fd' });
    expect(read.value).toBeUndefined();
    expect(codes(read)).toContain('release-unsafe-file');
    const vanished = read.diagnostics.filter((d) => d.code === 'release-file-vanished');
    expect(vanished.length).toBeGreaterThanOrEqual(1);
    for (const d of vanished) expect(d.file).toMatch(/^fd\/\d+$/);
  });
});
