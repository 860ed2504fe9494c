import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import vm from 'node:vm';
import { crc32 } from 'node:zlib';

/**
 * Runs the bundled CLI (one CommonJS file) through `vm.Script` with a V8 code
 * cache, because Node.js 20 has no compile cache for modules
 * (`module.enableCompileCache` is 22.1+): without one, every `relup` process
 * parses and compiles ~1 MB of JavaScript again (docs/performance.md).
 *
 * One cache file per command (`plan`, `status`…): V8's cache holds the
 * functions compiled up to the moment it is made, and it is made when a run
 * ends, so each command's file holds what that command runs.
 *
 * The cache is an optimisation and never a reason to fail: a missing,
 * truncated, corrupt or foreign file, or one V8 rejects (another V8 version or
 * other flags), is ignored and rewritten; a cache that cannot be written is not
 * written. Files are written to a temp name and renamed, so concurrent `relup`
 * processes see a whole old file or a whole new one.
 *
 * V8 checks only the source's length against its cache, and in release builds
 * not the payload's checksum: a stale or damaged file could run the wrong
 * bytecode, or crash. So each file starts with our own header: a magic, the
 * CRC-32 of the payload, and the size and mtime of the source it was made from.
 */

const MAGIC = 0x52_4c_43_31; // "RLC1"
const HEADER_BYTES = 24; // magic u32, crc32 u32, source size f64, source mtime ms f64

/** What happened to the cache in this run; printed with RELUP_DEBUG_CODE_CACHE=1, asserted by the tests. */
export type CacheOutcome = 'hit' | 'miss' | 'corrupt' | 'stale' | 'rejected';

export interface CodeCacheOptions {
  /** The CommonJS file to run. */
  file: string;
  /** 'latin1' for a file known to be ASCII: the same text without UTF-8 decoding (~4 ms for the 1.2 MB bundle). */
  sourceEncoding?: 'latin1' | 'utf8';
  /** Names the cache file: the build id, the command, Node.js version and architecture. */
  cacheName: string;
  /** Where cache files may live, in order of preference: read from the first that has the file, written to the first that takes it. */
  cacheDirs: string[];
  /** Whether to write a cache when the run ends with this exit code. */
  writeOnExit: (exitCode: number) => boolean;
  /** Called once the outcome is known, and again with 'written' or 'write-failed' after a write. */
  report?: (event: CacheOutcome | 'written' | 'write-failed', detail: string) => void;
}

interface SourceStamp {
  size: number;
  mtimeMs: number;
}

export function encodeCache(payload: Uint8Array, stamp: SourceStamp): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(crc32(payload), 4);
  out.writeDoubleLE(stamp.size, 8);
  out.writeDoubleLE(stamp.mtimeMs, 16);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** The V8 payload of a cache file made from this source, or why there is none. */
export function decodeCache(bytes: Buffer, stamp: SourceStamp): { payload: Buffer } | { problem: 'corrupt' | 'stale' } {
  if (bytes.length <= HEADER_BYTES || bytes.readUInt32LE(0) !== MAGIC) return { problem: 'corrupt' };
  const payload = bytes.subarray(HEADER_BYTES);
  if (crc32(payload) !== bytes.readUInt32LE(4)) return { problem: 'corrupt' };
  if (bytes.readDoubleLE(8) !== stamp.size || bytes.readDoubleLE(16) !== stamp.mtimeMs) return { problem: 'stale' };
  return { payload };
}

/** The cache directories to use when RELUP_CODE_CACHE_DIR does not name one: beside the bundle, else the user's cache directory. */
export function defaultCacheDirs(bundleDir: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const userCache = env['XDG_CACHE_HOME'] !== undefined && env['XDG_CACHE_HOME'] !== '' ? env['XDG_CACHE_HOME'] : join(homedir(), '.cache');
  return [join(bundleDir, 'code-cache'), join(userCache, 'relup', 'code-cache')];
}

function readSource(file: string, encoding: 'latin1' | 'utf8'): { source: string; stamp: SourceStamp } {
  const fd = openSync(file, 'r');
  try {
    const { size, mtimeMs } = fstatSync(fd);
    const bytes = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, bytes, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return { source: bytes.toString(encoding, 0, done), stamp: { size, mtimeMs } };
  } finally {
    closeSync(fd);
  }
}

function readCache(dirs: string[], name: string): { bytes: Buffer; path: string } | undefined {
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      return { bytes: readFileSync(path), path };
    } catch {
      // Not there (or unreadable): the next directory, else a miss.
    }
  }
  return undefined;
}

/** Writes the cache to the first directory that takes it; false when none does. Never throws. */
function writeCache(dirs: string[], name: string, bytes: Buffer): string | undefined {
  for (const dir of dirs) {
    const path = join(dir, name);
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      // Private: a cache file is code this CLI runs, as trusted as the directory it sits in.
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(tmp, bytes);
      renameSync(tmp, path);
      return path;
    } catch {
      try {
        rmSync(tmp, { force: true });
      } catch {
        // Nothing to clean, or nothing we can do: the next directory.
      }
    }
  }
  return undefined;
}

/**
 * Cache files of other builds in a shared cache directory are removed once
 * they have not been rewritten for a week: each relup version would otherwise
 * leave ~1 MB per command in the user's cache directory for good.
 */
export function pruneOtherBuilds(dir: string, keepPrefix: string, nowMs = Date.now()): void {
  const week = 7 * 24 * 3600 * 1000;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.endsWith('.v8') || name.startsWith(keepPrefix)) continue;
    try {
      if (nowMs - statSync(join(dir, name)).mtimeMs > week) rmSync(join(dir, name), { force: true });
    } catch {
      // Gone already, or not ours to remove.
    }
  }
}

/**
 * Which cache a run uses: its command (and subcommand), so that each file holds
 * the code that command runs. Help and version runs share one: they run none
 * of a command's code, and must not leave their cache under its name.
 */
export function commandKey(argv: string[]): string {
  if (argv.some((a) => a === '--help' || a === '-h' || a === 'help' || a === '--version')) return 'help';
  const words = argv.filter((a) => !a.startsWith('-'));
  const word = (w: string | undefined) => (w !== undefined && /^[a-z][a-z-]{0,30}$/.test(w) ? w : undefined);
  const [first, second] = [word(words[0]), word(words[1])];
  if (first === undefined) return 'other';
  return ['node', 'appup', 'keys', 'release'].includes(first) && second !== undefined ? `${first}-${second}` : first;
}

/**
 * Compiles and runs `file` as CommonJS, with the code cache when there is a
 * good one, and writes one at exit when there was none. Returns the outcome.
 */
export function runWithCodeCache(options: CodeCacheOptions): CacheOutcome {
  const { file, cacheName, cacheDirs } = options;
  const { source, stamp } = readSource(file, options.sourceEncoding ?? 'utf8');
  const found = readCache(cacheDirs, cacheName);
  let outcome: CacheOutcome = 'miss';
  let cachedData: Buffer | undefined;
  if (found !== undefined) {
    const decoded = decodeCache(found.bytes, stamp);
    if ('payload' in decoded) cachedData = decoded.payload;
    else outcome = decoded.problem;
  }
  // The CommonJS wrapper Node.js itself uses; the file has no hashbang (the build strips it).
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new vm.Script(wrapped, {
    filename: file,
    ...(cachedData === undefined ? {} : { cachedData }),
    // One `import()` of a built-in survives bundling; let it use the main context's loader.
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  if (cachedData !== undefined) outcome = script.cachedDataRejected === true ? 'rejected' : 'hit';
  options.report?.(outcome, found?.path ?? cacheName);
  if (outcome !== 'hit') {
    process.once('exit', (code) => {
      if (!options.writeOnExit(code)) return;
      try {
        const written = writeCache(cacheDirs, cacheName, encodeCache(script.createCachedData(), stamp));
        options.report?.(written === undefined ? 'write-failed' : 'written', written ?? cacheName);
        if (written !== undefined && dirname(written) !== cacheDirs[0]) pruneOtherBuilds(dirname(written), cacheName.slice(0, cacheName.indexOf('-') + 1));
      } catch (e) {
        options.report?.('write-failed', e instanceof Error ? e.message : String(e));
      }
    });
  }
  const module = { exports: {} };
  const run = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void;
  run(module.exports, createRequire(file), module, file, dirname(file));
  return outcome;
}
