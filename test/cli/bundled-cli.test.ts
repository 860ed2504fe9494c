import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { decodeCache, encodeCache } from '../../src/cli/code-cache.js';
import { CLI, REPO } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';

/**
 * The shipped CLI (package.json bin) is the esbuild bundle of dist/cli/main.js
 * (one CommonJS file) behind a launcher that answers `relup --help` from text
 * yargs printed at build time and runs everything else with a V8 code cache
 * (src/cli/build-cli-bundle.mjs, cli-launcher.ts, code-cache.ts). It must say
 * exactly what the unbundled CLI says, whatever state its cache is in.
 */
const UNBUNDLED = join(REPO, 'dist', 'cli', 'main.js');
const run = (cli: string, args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [cli, ...args], { cwd: REPO, reject: false, env: { NO_COLOR: '1', LC_ALL: '', LC_MESSAGES: '', LANG: 'en_US.UTF-8', LANGUAGE: '', ...env }, extendEnv: true });

describe('the bundled CLI', () => {
  test('relup --help and -h: the precomputed text is what yargs prints', async () => {
    const yargsHelp = await run(UNBUNDLED, ['--help']);
    expect(yargsHelp.exitCode).toBe(0);
    for (const flag of ['--help', '-h']) {
      const bundled = await run(CLI, [flag]);
      expect(bundled.exitCode).toBe(0);
      expect(bundled.stdout).toBe(yargsHelp.stdout);
    }
  });

  test('another locale is laid out by yargs in that locale, not answered from the English text', async () => {
    const env = { LC_ALL: 'de_DE.UTF-8' };
    const [bundled, unbundled, english] = await Promise.all([run(CLI, ['--help'], env), run(UNBUNDLED, ['--help'], env), run(CLI, ['--help'])]);
    expect(bundled.stdout).toBe(unbundled.stdout);
    // yargs ships German strings: the launcher must not have printed its English copy.
    expect(bundled.stdout).not.toBe(english.stdout);
  });

  test('commands run from the bundle as from tsc output: plan, a subcommand help, a usage error', async () => {
    for (const args of [['plan', '1.2.2', '1.2.3'], ['plan', '--help'], ['plan', '1.2.2']]) {
      const [bundled, unbundled] = await Promise.all([run(CLI, args), run(UNBUNDLED, args)]);
      expect({ args, code: bundled.exitCode, stdout: bundled.stdout, stderr: bundled.stderr }).toEqual({ args, code: unbundled.exitCode, stdout: unbundled.stdout, stderr: unbundled.stderr });
    }
  });
});

/** A run of the bundled CLI with its code cache in `dir`, reporting what it did with it on stderr. */
const runCached = (dir: string, args: string[]) => run(CLI, args, { RELUP_CODE_CACHE_DIR: dir, RELUP_DEBUG_CODE_CACHE: '1' });
/** The cache events a run printed ("miss", "written", "hit"…), in order. */
const cacheEvents = (stderr: string) => [...stderr.matchAll(/^relup code cache: (\S+)/gm)].map((m) => m[1]);
const withoutCacheLines = (stderr: string) => stderr.replace(/^relup code cache: .*\n?/gm, '');
const PLAN = ['plan', '1.2.2', '1.2.3'];

describe('the code cache of the bundled CLI', { timeout: 60_000 }, () => {
  test('a first run writes it, the next one uses it, and both print what the unbundled CLI prints', async () => {
    const dir = await testdir();
    const unbundled = await run(UNBUNDLED, PLAN);
    const first = await runCached(dir, PLAN);
    expect(cacheEvents(first.stderr)).toEqual(['miss', 'written']);
    const second = await runCached(dir, PLAN);
    expect(cacheEvents(second.stderr)).toEqual(['hit']);
    for (const r of [first, second]) expect({ code: r.exitCode, stdout: r.stdout, stderr: withoutCacheLines(r.stderr) }).toEqual({ code: unbundled.exitCode, stdout: unbundled.stdout, stderr: unbundled.stderr });
    // One file per command: status has its own.
    expect((await readdir(dir)).filter((f) => f.endsWith('.v8'))).toEqual([expect.stringMatching(/-plan-v\d+\.\d+\.\d+-\w+\.v8$/)]);
  });

  test('a corrupt cache file (garbage, truncated, one byte changed) is ignored and rewritten; the output is the same', async () => {
    const dir = await testdir();
    const reference = await runCached(dir, PLAN);
    const [name] = (await readdir(dir)).filter((f) => f.endsWith('.v8'));
    const good = await readFile(join(dir, name!));
    const flipped = Buffer.from(good);
    flipped[flipped.length >> 1]! ^= 0xff;
    for (const bad of [Buffer.from('not a cache at all'), good.subarray(0, good.length >> 1), flipped, Buffer.alloc(0)]) {
      await writeFile(join(dir, name!), bad);
      const r = await runCached(dir, PLAN);
      expect(cacheEvents(r.stderr)).toEqual(['corrupt', 'written']);
      expect({ code: r.exitCode, stdout: r.stdout, stderr: withoutCacheLines(r.stderr) }).toEqual({ code: 0, stdout: reference.stdout, stderr: withoutCacheLines(reference.stderr) });
      // Rewritten whole: the next run uses it.
      expect(cacheEvents((await runCached(dir, PLAN)).stderr)).toEqual(['hit']);
    }
  });

  test('a cache V8 rejects (made by another V8 version) is rewritten; the output is the same', async () => {
    const dir = await testdir();
    const reference = await runCached(dir, PLAN);
    const [name] = (await readdir(dir)).filter((f) => f.endsWith('.v8'));
    const file = join(dir, name!);
    const stamp = await sourceStamp();
    const decoded = decodeCache(await readFile(file), stamp);
    if (!('payload' in decoded)) throw new Error(`the cache just written does not decode: ${decoded.problem}`);
    // V8's own header: magic number, then the hash of the V8 version that made it.
    const foreign = Buffer.from(decoded.payload);
    foreign.writeUInt32LE(foreign.readUInt32LE(4) ^ 0x5a5a5a5a, 4);
    await writeFile(file, encodeCache(foreign, stamp));
    const r = await runCached(dir, PLAN);
    expect(cacheEvents(r.stderr)).toEqual(['rejected', 'written']);
    expect({ code: r.exitCode, stdout: r.stdout }).toEqual({ code: 0, stdout: reference.stdout });
    expect(cacheEvents((await runCached(dir, PLAN)).stderr)).toEqual(['hit']);
  });

  test('a cache made from another build of cli.cjs (other size or mtime) is not used', async () => {
    const dir = await testdir();
    await runCached(dir, PLAN);
    const [name] = (await readdir(dir)).filter((f) => f.endsWith('.v8'));
    const stamp = await sourceStamp();
    const decoded = decodeCache(await readFile(join(dir, name!)), stamp);
    if (!('payload' in decoded)) throw new Error(decoded.problem);
    await writeFile(join(dir, name!), encodeCache(decoded.payload, { size: stamp.size, mtimeMs: stamp.mtimeMs - 1000 }));
    const r = await runCached(dir, PLAN);
    expect(r.exitCode).toBe(0);
    expect(cacheEvents(r.stderr)).toEqual(['stale', 'written']);
  });

  test('a cache directory that cannot be written: the CLI works as without one', async () => {
    const dir = await testdir({ 'a-file': 'not a directory' });
    const unwritable = join(dir, 'a-file', 'cache');
    const unbundled = await run(UNBUNDLED, PLAN);
    for (let i = 0; i < 2; i++) {
      const r = await runCached(unwritable, PLAN);
      expect(cacheEvents(r.stderr)).toEqual(['miss', 'write-failed']);
      expect({ code: r.exitCode, stdout: r.stdout, stderr: withoutCacheLines(r.stderr) }).toEqual({ code: unbundled.exitCode, stdout: unbundled.stdout, stderr: unbundled.stderr });
    }
  });

  test('CLI processes started together on an empty cache all work, and leave one whole cache file', async () => {
    const dir = await testdir();
    const runs = await Promise.all([0, 1, 2, 3].map(() => runCached(dir, PLAN)));
    for (const r of runs) {
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe(runs[0]!.stdout);
    }
    expect((await readdir(dir)).filter((f) => !f.endsWith('.v8'))).toEqual([]);
    expect(cacheEvents((await runCached(dir, PLAN)).stderr)).toEqual(['hit']);
  });

  test('a usage error writes no cache (its run holds little of the command)', async () => {
    const dir = await testdir();
    const r = await runCached(dir, ['plan', '1.2.2']);
    expect(r.exitCode).toBe(2);
    expect(cacheEvents(r.stderr)).toEqual(['miss']);
    expect(await readdir(dir)).toEqual([]);
  });
});

async function sourceStamp(): Promise<{ size: number; mtimeMs: number }> {
  const { stat } = await import('node:fs/promises');
  const s = await stat(join(REPO, 'dist', 'cli', 'bundle', 'cli.cjs'));
  return { size: s.size, mtimeMs: s.mtimeMs };
}
