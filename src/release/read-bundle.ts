import { createReadStream } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { error, hasErrors, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import { comparePaths, normalizeEntryPath, parentPaths, unsafePathReason } from './release-path.js';
import type { ReleaseFiles, ReleaseLimits } from './release-files.js';

/** Past this many unsafe entries the bundle is plainly hostile; stop reading. */
const MAX_REPORTED = 100;

/** Thrown through the stream pipeline to stop reading as soon as a bundle is refused. */
class StopReading extends Error {}

/**
 * Stream a `.tar.gz` through gunzip and tar's parser into memory, checking
 * every entry as it arrives. Limits are enforced on the declared sizes in the
 * headers and on the decompressed byte count, so a gzip bomb is stopped while
 * streaming, not after it has been inflated.
 */
export async function readBundleFiles(source: string | Uint8Array, origin: string, limits: ReleaseLimits): Promise<Checked<ReleaseFiles>> {
  const diagnostics: Diagnostic[] = [];
  let stopped = false;
  const files = new Map<string, Buffer>();
  const dirs = new Set<string>();
  let entries = 0;
  let declared = 0;
  // Headers, padding and pax records come on top of the file bytes; this bounds them generously.
  const rawLimit = limits.maxTotalBytes + (limits.maxEntries + 1) * 4096 + 1024 * 1024;

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
  const refuse = (code: string, path: string | undefined, message: string, hint: string) => {
    diagnostics.push(error(code, message, at(path), hint));
    if (diagnostics.length >= MAX_REPORTED) corrupt(`more than ${MAX_REPORTED} unsafe entries`);
  };
  const countEntry = (): boolean => {
    entries += 1;
    if (entries <= limits.maxEntries) return true;
    tooLarge(`${origin} holds more than ${limits.maxEntries} entries`);
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
    if (stopped || !countEntry()) return void entry.resume();
    const path = normalizeEntryPath(entry.path);
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
    declared += entry.size;
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
  let head: Buffer | undefined = Buffer.alloc(0);
  const feed = (chunk: Buffer) => {
    if (ended) return;
    if (head !== undefined) {
      // tar's parser would inflate a gzip stream found inside ours, outside our byte count.
      head = Buffer.concat([head, chunk]);
      if (head.length < 2) return;
      if (head[0] === 0x1f && head[1] === 0x8b) return corrupt('it holds a compressed stream inside the compressed stream');
      chunk = head;
      head = undefined;
    }
    parser.write(chunk);
  };
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw += chunk.length;
      if (raw > rawLimit) tooLarge(`${origin} inflates to more than ${rawLimit} bytes`);
      else feed(chunk);
      done(stopped ? new StopReading() : null);
    },
  });

  try {
    // A path is streamed from disk; bytes (an upload) are parsed from memory, never written anywhere first.
    await pipeline(typeof source === 'string' ? createReadStream(source) : Readable.from([Buffer.from(source)]), createGunzip(), sink);
  } catch (e) {
    if (isZlibError(e)) corrupt(`gzip: ${e.message}`);
    else if (!(e instanceof StopReading)) throw e;
  }
  if (!stopped) {
    if (head !== undefined && head.length > 0) parser.write(head);
    await new Promise<void>((resolve) => {
      parser.on('end', resolve);
      parser.end();
    });
  }

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
  return { value: { files: sorted, kind: 'bundle', origin }, diagnostics };
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
