import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32, createInflateRaw } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { error, hasErrors, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import { checkGzipTrailer, gzipHeaderLength } from './gzip-member.js';
import { TarFraming, firstNonZero } from './tar-framing.js';
import { comparePaths, normalizeEntryPath, parentPaths, unsafePathReason } from './release-path.js';
import { entryLimitExceeded, type ReleaseFiles, type ReleaseLimits } from './release-files.js';
import { BUNDLE_OWN_FILES } from './release-hash.js';

/** Past this many unsafe entries the bundle is plainly hostile; stop reading. */
const MAX_REPORTED = 100;

/** Thrown through the stream pipeline to stop reading as soon as a bundle is refused. */
class StopReading extends Error {}

/**
 * Stream a `.tar.gz` through inflate and tar's parser into memory, checking
 * every entry as it arrives. Limits are enforced on the declared sizes in the
 * headers and on the decompressed byte count, so a gzip bomb is stopped while
 * streaming, not after it has been inflated.
 *
 * Every byte of the file is accounted for: exactly one gzip member whose
 * trailer ends the file, holding one tar archive followed by zeros only. A
 * signature covers the manifest, which covers every entry; bytes outside the
 * archive would be covered by nothing, so they are refused (`bundle-trailing-data`).
 */
export async function readBundleFiles(source: string | Uint8Array, origin: string, limits: ReleaseLimits): Promise<Checked<ReleaseFiles>> {
  const diagnostics: Diagnostic[] = [];
  let stopped = false;
  const files = new Map<string, Buffer>();
  const dirs = new Set<string>();
  let entries = 0;
  let declared = 0;
  // Headers, padding and pax records come on top of the file bytes (files, directories, the bundle's own two); this bounds them generously.
  const rawLimit = limits.maxTotalBytes + (2 * limits.maxEntries + 3) * 4096 + 1024 * 1024;

  const at = (path?: string) => ({ file: path === undefined ? origin : `${origin}:${path}` });
  const stop = (d: Diagnostic) => {
    if (stopped) return;
    stopped = true;
    diagnostics.push(d);
  };
  const tooLarge = (message: string, path?: string) =>
    stop(error('bundle-too-large', message, at(path), 'a release bundle holds code, not data; if this one is genuine, raise the limit'));
  const corrupt = (message: string) =>
    stop(error('bundle-corrupt', `${origin} is not a valid .tar.gz: ${message}`, at(), 'rebuild it with `relup release pack`'));
  const trailing = (message: string) =>
    stop(error('bundle-trailing-data', `${origin} holds bytes outside its archive: ${message}`, at(), 'a bundle is one gzip member holding one tar archive; nothing may be appended to it. Rebuild it with `relup release pack` (and sign it again)'));
  const refuse = (code: string, path: string | undefined, message: string, hint: string) => {
    diagnostics.push(error(code, message, at(path), hint));
    if (diagnostics.length >= MAX_REPORTED) corrupt(`more than ${MAX_REPORTED} unsafe entries`);
  };
  let counted = 0;
  let dirCount = 0;
  // `entries` counts every header (it must match the framing's count); the limit is the shared rule of entryLimitExceeded.
  const countEntry = (path?: string, isDir = false): boolean => {
    entries += 1;
    if (isDir) dirCount += 1;
    else if (path === undefined || !BUNDLE_OWN_FILES.has(path)) counted += 1;
    const over = entryLimitExceeded(counted, dirCount, limits);
    if (over === undefined) return true;
    tooLarge(`${origin} holds ${over}`);
    return false;
  };

  const parser = new Parser({ strict: false, brotli: false, zstd: false });
  parser.on('warn', (_code: string, message: string) => corrupt(message));
  parser.on('error', (e: Error) => corrupt(e.message));
  // After the end-of-archive blocks tar's parser keeps buffering whatever follows (quadratically); stop feeding it.
  let ended = false;
  parser.on('eof', () => {
    ended = true;
  });
  parser.on('ignoredEntry', (entry: ReadEntry) => {
    if (stopped || !countEntry()) return;
    refuse('bundle-unsafe-entry', undefined, `${JSON.stringify(entry.path)}: unsupported tar entry type ${entry.type}`, 'a bundle holds regular files only');
  });
  parser.on('entry', (entry: ReadEntry) => {
    const path = normalizeEntryPath(entry.path);
    if (stopped || !countEntry(path, entry.type === 'Directory')) return void entry.resume();
    if (entry.type === 'Directory' && (path === '' || path === '.')) return void entry.resume();
    const reason = unsafePathReason(path);
    if (reason !== undefined) {
      // Not `origin:path`: the path itself is what is wrong, and may not be printable.
      refuse('bundle-unsafe-entry', undefined, `entry ${JSON.stringify(entry.path)}: ${reason}`, 'a bundle entry must be a relative path inside the release; do not unpack this bundle');
      return void entry.resume();
    }
    if (entry.type === 'Directory') {
      dirs.add(path);
      return void entry.resume();
    }
    if (entry.type !== 'File' && entry.type !== 'OldFile') {
      refuse('bundle-unsafe-entry', path, `${path} is ${describeType(entry)}`, 'a bundle holds regular files only: no links, devices or fifos');
      return void entry.resume();
    }
    if (files.has(path)) {
      refuse('bundle-duplicate-entry', path, `${path} appears more than once in the bundle`, 'a bundle holds each path once; rebuild it with `relup release pack`');
      return void entry.resume();
    }
    if (entry.size > limits.maxFileBytes) {
      tooLarge(`${path} is ${entry.size} bytes, over the ${limits.maxFileBytes}-byte limit for one file`, path);
      return void entry.resume();
    }
    // The total, like the entry count, is of release files: pack checks the same sum on the directory.
    if (!BUNDLE_OWN_FILES.has(path)) declared += entry.size;
    if (declared > limits.maxTotalBytes) {
      tooLarge(`${origin} unpacks to more than ${limits.maxTotalBytes} bytes`);
      return void entry.resume();
    }
    const chunks: Buffer[] = [];
    files.set(path, Buffer.alloc(0));
    entry.on('data', (chunk: Buffer) => chunks.push(chunk));
    entry.on('end', () => files.set(path, Buffer.concat(chunks)));
  });

  let raw = 0;
  let crc = 0;
  let head: Buffer | undefined = Buffer.alloc(0);
  const framing = new TarFraming();
  const feed = (chunk: Buffer) => {
    if (framing.end !== undefined || ended) return afterEnd(chunk);
    if (head !== undefined) {
      // tar's parser would inflate a gzip stream found inside ours, outside our byte count.
      head = Buffer.concat([head, chunk]);
      if (head.length < 2) return;
      if (head[0] === 0x1f && head[1] === 0x8b) return corrupt('it holds a compressed stream inside the compressed stream');
      chunk = head;
      head = undefined;
    }
    // The parser sees the archive up to its end-of-archive marker and not one byte more.
    const inArchive = framing.push(chunk);
    parser.write(inArchive === chunk.length ? chunk : chunk.subarray(0, inArchive));
    if (inArchive < chunk.length) afterEnd(chunk.subarray(inArchive));
  };
  // After the archive's end only zeros may follow (tar tools pad to a record); anything else is another archive or hidden data.
  const afterEnd = (chunk: Buffer) => {
    const at = firstNonZero(chunk);
    if (at >= 0) trailing('non-zero bytes follow the end of the tar archive');
  };
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw += chunk.length;
      crc = crc32(chunk, crc);
      if (raw > rawLimit) tooLarge(`${origin} inflates to more than ${rawLimit} bytes`);
      else feed(chunk);
      done(stopped ? new StopReading() : null);
    },
  });

  let bytes: Buffer | undefined;
  try {
    bytes = typeof source === 'string' ? await readBounded(source, rawLimit + COMPRESSED_MARGIN, tooLarge, (what) =>
      stop(error('release-file-unreadable', `${origin} ${what} while it was read`, at(), 'do not change a bundle while relup reads it'))) : Buffer.from(source.buffer, source.byteOffset, source.length);
  } catch (e) {
    if (!(e instanceof Error && 'code' in e && typeof e.code === 'string')) throw e;
    stop(error('release-file-unreadable', `${origin} cannot be read: ${e.code} (${e.message})`, at(), 'check that the bundle exists and is readable by this user'));
  }
  const header = bytes === undefined ? undefined : gzipHeaderLength(bytes);
  if (bytes !== undefined && header !== undefined) {
    if ('reason' in header) {
      corrupt(`gzip: ${header.reason}`);
    } else {
      // Raw inflate after our own header parse: it stops at the end of this member's deflate stream and says how much it consumed.
      const inflate = createInflateRaw();
      try {
        // Parsed from memory; an upload is never written anywhere before every check has passed.
        await pipeline(Readable.from([bytes.subarray(header.length)]), inflate, sink);
      } catch (e) {
        if (isZlibError(e)) corrupt(`gzip: ${e.message}`);
        else if (!(e instanceof StopReading)) throw e;
      }
      if (!stopped) {
        const problem = checkGzipTrailer(bytes, header.length, inflate.bytesWritten, crc, raw);
        if (problem?.code === 'trailing') trailing(problem.reason);
        else if (problem !== undefined) corrupt(`gzip: ${problem.reason}`);
      }
    }
  }
  if (!stopped) {
    await new Promise<void>((resolve) => {
      parser.on('end', resolve);
      parser.end();
    });
  }
  if (!stopped && (framing.end === undefined || !ended)) corrupt('the tar archive has no end-of-archive marker (it is truncated)');
  else if (!stopped && framing.entries !== entries) corrupt('tar headers disagree about where entries start');

  if (!stopped) {
    const clashes = new Set<string>([...dirs].filter((d) => files.has(d)));
    for (const path of [...files.keys(), ...dirs]) {
      for (const parent of parentPaths(path)) if (files.has(parent)) clashes.add(parent);
    }
    for (const clash of [...clashes].sort(comparePaths)) {
      refuse('bundle-unsafe-entry', clash, `${clash} is both a file and a directory in the bundle`, 'rebuild the bundle with `relup release pack`');
    }
  }
  if (hasErrors(diagnostics)) return { value: undefined, diagnostics };
  const sorted = new Map([...files].sort(([a], [b]) => comparePaths(a, b)));
  return { value: { files: sorted, kind: 'bundle', origin, bundleBytes: bytes }, diagnostics };
}

/** A compressed file is never much larger than what it inflates to; past this it is refused unread. */
const COMPRESSED_MARGIN = 1024 * 1024;

/** The whole file, or undefined (and `tooLarge` called) when it is over `limit` bytes. */
async function readBounded(path: string, limit: number, tooLarge: (message: string) => void, changed: (what: string) => void): Promise<Buffer | undefined> {
  // Non-blocking: a fifo swapped in after the caller's stat must not hang the read.
  const handle = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      changed('was replaced by something that is not a regular file');
      return undefined;
    }
    const size = stats.size;
    if (size > limit) {
      tooLarge(`${path} is ${size} bytes, more than any bundle within the limits can be`);
      return undefined;
    }
    // Read at most limit + 1 bytes, whatever a writer appends meanwhile.
    const bytes = Buffer.allocUnsafe(Math.min(size, limit) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(bytes, length, bytes.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === bytes.length) {
        changed('grew');
        return undefined;
      }
    }
    return bytes.subarray(0, length);
  } finally {
    await handle.close();
  }
}

function describeType(entry: ReadEntry): string {
  switch (entry.type) {
    case 'SymbolicLink':
      return `a symbolic link to ${JSON.stringify(entry.linkpath ?? '')}`;
    case 'Link':
      return `a hard link to ${JSON.stringify(entry.linkpath ?? '')}`;
    case 'CharacterDevice':
      return 'a character device';
    case 'BlockDevice':
      return 'a block device';
    case 'FIFO':
      return 'a fifo';
    default:
      return `a tar entry of type ${entry.type}`;
  }
}

function isZlibError(e: unknown): e is Error {
  return e instanceof Error && 'code' in e && typeof e.code === 'string' && e.code.startsWith('Z_');
}
