import { stat } from 'node:fs/promises';
import { error, type Checked } from '../diagnostics/diagnostic.js';
import { readDirFiles } from './read-release-dir.js';
import { releaseHash } from './release-hash.js';

/**
 * The bundle reader, loaded when a bundle is read: it pulls in tar, which
 * commands that read only release directories (relup plan, check) would
 * otherwise load at every start (3–4.5 ms of the CLI's start-up, profiled).
 */
const readBundleFiles: typeof import('./read-bundle.js').readBundleFiles = async (...args) => (await import('./read-bundle.js')).readBundleFiles(...args);

/** A release's files in memory: relative `/`-separated path → bytes, in path order. */
export interface ReleaseFiles {
  files: Map<string, Buffer>;
  kind: 'dir' | 'bundle';
  /** The path as the caller should see it in messages. */
  origin: string;
  /** For a bundle: the exact bytes that were read and checked, so a caller installs what it verified, not a second read. */
  bundleBytes?: Buffer;
}

/** Bounds on what a reader accepts, so a hostile bundle cannot exhaust memory or disk. */
export interface ReleaseLimits {
  maxEntries: number;
  maxFileBytes: number;
  maxTotalBytes: number;
}

export const DEFAULT_LIMITS: ReleaseLimits = {
  maxEntries: 10_000,
  maxFileBytes: 64 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
};

/**
 * The one entry-count rule, shared by directories (and so by `pack`) and
 * bundles: at most `maxEntries` files of the release — the files the release
 * hash covers, so a bundle's own manifest.json and manifest.sig do not count —
 * and at most `maxEntries` directories. Returns what is over, or undefined.
 * Readers call it as they count, so a huge tree is never walked to the end.
 */
export function entryLimitExceeded(files: number, dirs: number, limits: ReleaseLimits): string | undefined {
  if (files > limits.maxEntries) return `more than ${limits.maxEntries} files`;
  if (dirs > limits.maxEntries) return `more than ${limits.maxEntries} directories`;
  return undefined;
}

export interface ReadOptions {
  /** Shown in diagnostics instead of `path`. */
  displayPath?: string;
  limits?: Partial<ReleaseLimits>;
}

export function resolveLimits(limits: Partial<ReleaseLimits> = {}): ReleaseLimits {
  return { ...DEFAULT_LIMITS, ...limits };
}

/**
 * Read a release directory or a `.tar.gz` bundle into memory. A directory is
 * read as it is; a bundle is stream-parsed and never extracted to disk.
 */
export async function readReleaseFiles(path: string, options: ReadOptions = {}): Promise<Checked<ReleaseFiles>> {
  const origin = options.displayPath ?? path;
  const limits = resolveLimits(options.limits);
  let kind: 'dir' | 'bundle';
  try {
    const s = await stat(path);
    if (s.isDirectory()) kind = 'dir';
    else if (s.isFile()) kind = 'bundle';
    else return notARelease(origin);
  } catch (e) {
    if (isNotFound(e)) {
      return {
        value: undefined,
        diagnostics: [error('release-path-missing', `${origin} does not exist`, { file: origin }, 'give a release directory (holding release.yaml) or a .tar.gz bundle')],
      };
    }
    if (e instanceof Error && 'code' in e && typeof e.code === 'string') {
      return { value: undefined, diagnostics: [error('release-file-unreadable', `${origin} cannot be read: ${e.code} (${e.message})`, { file: origin }, 'check the path and its permissions')] };
    }
    throw e;
  }
  return kind === 'dir' ? readDirFiles(path, origin, limits) : readBundleFiles(path, origin, limits);
}

/**
 * Read a bundle held in memory (an upload) with the same checks and limits as
 * a bundle file. With `expectedReleaseHash` (the hash the relup script names),
 * the files are hashed as soon as the archive is read and a bundle of other
 * content is refused (`bundle-release-hash-unexpected`) before anything in it
 * is parsed: no manifest.json, no release.yaml of a bundle the script did not
 * plan is ever read, so its size or shape cannot cost the node anything.
 */
export async function readBundleBytes(bytes: Uint8Array, options: ReadOptions & { expectedReleaseHash?: string } = {}): Promise<Checked<ReleaseFiles>> {
  const origin = options.displayPath ?? 'bundle';
  const read = await readBundleFiles(bytes, origin, resolveLimits(options.limits));
  const expected = options.expectedReleaseHash;
  if (read.value === undefined || expected === undefined) return read;
  const actual = releaseHash(read.value.files);
  if (actual === expected) return read;
  return {
    value: undefined,
    diagnostics: [
      ...read.diagnostics,
      error('bundle-release-hash-unexpected', `${origin} holds release ${actual.slice(0, 16)}…, not ${expected.slice(0, 16)}… that the script upgrades to`, { file: origin }, 'upload the bundle the script was planned from (plan and apply again from the same releases directory)'),
    ],
  };
}

function notARelease(origin: string): Checked<ReleaseFiles> {
  return {
    value: undefined,
    diagnostics: [error('release-path-missing', `${origin} is neither a directory nor a bundle file`, { file: origin }, 'give a release directory (holding release.yaml) or a .tar.gz bundle')],
  };
}

export function isNotFound(e: unknown): boolean {
  return e instanceof Error && 'code' in e && (e.code === 'ENOENT' || e.code === 'ENOTDIR');
}
