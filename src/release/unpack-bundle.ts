import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { error, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import type { BundleManifest } from './bundle-manifest.js';
import { isNotFound, readReleaseFiles, type ReadOptions } from './release-files.js';
import type { Release } from './release-model.js';
import { verifyFiles } from './verify-release.js';

export interface UnpackResult {
  targetDir: string;
  release: Release;
  manifest: BundleManifest;
  /** Number of files written, manifest.json included. */
  filesWritten: number;
}

/** Create only: never follow or replace anything already at the path. */
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/**
 * Unpack a bundle into `targetDir` (which must not exist, or be empty).
 * Everything is checked in memory first: entry safety and limits (the
 * reader), every hash against manifest.json, release.yaml. Only then are
 * files written, into a fresh directory next to the target that is renamed
 * into place at the end, so a failure leaves nothing behind.
 */
export async function unpackBundle(bundle: string, targetDir: string, options: ReadOptions = {}): Promise<Checked<UnpackResult>> {
  const origin = options.displayPath ?? bundle;
  const read = await readReleaseFiles(bundle, options);
  if (read.value === undefined) return { value: undefined, diagnostics: read.diagnostics };
  const tree = read.value;
  if (tree.kind !== 'bundle') {
    return fail(error('unpack-not-a-bundle', `${origin} is a directory, not a bundle`, { file: origin }, 'make a bundle with `relup release pack` first'));
  }
  const report = verifyFiles(tree, origin);
  const diagnostics = [...read.diagnostics, ...report.diagnostics];
  if (!report.ok || report.release === undefined || report.manifest === undefined) return { value: undefined, diagnostics };

  const target = resolve(targetDir);
  const blocker = await targetBlocker(target);
  if (blocker !== undefined) {
    return fail(error('unpack-target-exists', `${targetDir} ${blocker}`, { file: targetDir }, 'unpack into a new directory; a release directory is never changed in place'), diagnostics);
  }

  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  const temp = join(parent, `.${basename(target)}.unpack-${randomUUID()}`);
  await mkdir(temp);
  let written: Diagnostic | undefined;
  try {
    written = await writeFiles(temp, tree.files, origin, targetDir);
  } catch (e) {
    await rm(temp, { recursive: true, force: true });
    throw e;
  }
  if (written !== undefined) {
    await rm(temp, { recursive: true, force: true });
    return fail(written, diagnostics);
  }
  try {
    await rename(temp, target);
  } catch (e) {
    await rm(temp, { recursive: true, force: true });
    if (hasCode(e, 'ENOTEMPTY', 'EEXIST', 'ENOTDIR')) {
      return fail(error('unpack-target-exists', `${targetDir} appeared while unpacking`, { file: targetDir }, 'unpack into a new directory'), diagnostics);
    }
    throw e;
  }
  return { value: { targetDir, release: report.release, manifest: report.manifest, filesWritten: tree.files.size }, diagnostics };
}

/** Write every file under `root`; a diagnostic when one cannot be placed there safely. */
async function writeFiles(root: string, files: ReadonlyMap<string, Uint8Array>, origin: string, targetDir: string): Promise<Diagnostic | undefined> {
  for (const [path, bytes] of files) {
    const where = { file: `${origin}:${path}` };
    const full = resolve(root, ...path.split('/'));
    const rel = relative(root, full);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
      // The reader already refuses such paths; this is the last line of defence.
      return error('bundle-unsafe-entry', `${path} would be written outside ${targetDir}`, where);
    }
    try {
      await mkdir(dirname(full), { recursive: true });
      const handle = await open(full, CREATE_FLAGS, 0o644);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (e) {
      if (!hasCode(e, 'EEXIST', 'EISDIR', 'ENOTDIR', 'ELOOP')) throw e;
      return error(
        'bundle-duplicate-entry',
        `${path} collides with another entry on this file system (names differing only in case or Unicode form)`,
        where,
        'rename one of the files in the release',
      );
    }
  }
  return undefined;
}

function hasCode(e: unknown, ...codes: string[]): boolean {
  return e instanceof Error && 'code' in e && typeof e.code === 'string' && codes.includes(e.code);
}

/** Why `target` cannot receive the unpacked release, or undefined when it can. */
async function targetBlocker(target: string): Promise<string | undefined> {
  try {
    const s = await lstat(target);
    if (!s.isDirectory()) return 'exists and is not a directory';
    if ((await readdir(target)).length > 0) return 'exists and is not empty';
    return undefined;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

function fail(d: Diagnostic, before: Diagnostic[] = []): Checked<UnpackResult> {
  return { value: undefined, diagnostics: [...before, d] };
}
