import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { error, hasErrors, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import { comparePaths, unsafePathReason } from './release-path.js';
import { entryLimitExceeded, type ReleaseFiles, type ReleaseLimits } from './release-files.js';
import { BUNDLE_OWN_FILES } from './release-hash.js';

/** Past this many findings the directory is plainly not a release (`/usr`, `/proc`); stop walking. */
const MAX_REPORTED = 100;
/** Never block on a fifo swapped in after lstat, never follow a link swapped in. */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0);

/** Thrown inside the walk to stop it as soon as the directory is refused. */
class StopWalking extends Error {}

/**
 * Every regular file under `root`, recursively; names starting with `.` are
 * skipped (editor and VCS droppings are not part of a release). A symlink or
 * any other non-regular file is refused: a release must mean the same bytes
 * wherever it is copied, and a link would not.
 *
 * The walk stops at the entry limit and after too many findings, so `verify
 * /usr` answers at once instead of walking every file first; a file that
 * vanishes or cannot be read while walking (a live tree such as `/proc`) is a
 * located finding, never an internal error; reads are bounded by the size
 * limits whatever the size lstat reported (files in `/proc` say 0).
 */
export async function readDirFiles(root: string, origin: string, limits: ReleaseLimits): Promise<Checked<ReleaseFiles>> {
  const diagnostics: Diagnostic[] = [];
  const found: { path: string; full: string; size: number }[] = [];
  let total = 0;
  let dirs = 0;
  let releaseFiles = 0;

  const report = (d: Diagnostic) => {
    diagnostics.push(d);
    if (diagnostics.length >= MAX_REPORTED) {
      diagnostics.push(error('release-too-large', `${origin}: stopped after ${MAX_REPORTED} findings`, { file: origin }, 'point relup at a release directory (holding release.yaml), not at a system tree'));
      throw new StopWalking();
    }
  };
  const stopAt = (over: string | undefined) => {
    if (over === undefined) return;
    diagnostics.push(error('release-too-large', `${origin} holds ${over}, over the limit`, { file: origin }, 'a release holds code, not data: keep data and large assets out of it'));
    throw new StopWalking();
  };
  const fsFinding = (e: unknown, path: string): void => {
    const code = errnoCode(e);
    if (code === undefined) throw e;
    const where = { file: path === '' ? origin : `${origin}/${path}` };
    const shown = path === '' ? origin : path;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      report(error('release-file-vanished', `${shown} disappeared while the release was being read`, where, 'do not change a release while relup reads it; a live tree such as /proc is not a release'));
    } else {
      report(error('release-file-unreadable', `${shown} cannot be read: ${code} (${(e as Error).message})`, where, 'make the release readable by this user, or remove the file from it'));
    }
  };

  const walk = async (dir: string, prefix: string): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(dir)).sort(comparePaths);
    } catch (e) {
      return fsFinding(e, prefix);
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const full = join(dir, name);
      const where = { file: `${origin}/${path}` };
      const reason = unsafePathReason(path);
      if (reason !== undefined) {
        report(error('release-unsafe-file', `${JSON.stringify(path)}: ${reason}`, { file: origin }, 'rename it: release paths are plain relative names'));
        continue;
      }
      let s;
      try {
        s = await lstat(full);
      } catch (e) {
        fsFinding(e, path);
        continue;
      }
      if (s.isDirectory()) {
        stopAt(entryLimitExceeded(releaseFiles, ++dirs, limits));
        await walk(full, path);
      } else if (s.isFile()) {
        found.push({ path, full, size: s.size });
        // A stale manifest.json or manifest.sig is never packed: not counted, as the bundle reader does not count them.
        if (!BUNDLE_OWN_FILES.has(path)) {
          releaseFiles += 1;
          total += s.size;
        }
        stopAt(entryLimitExceeded(releaseFiles, dirs, limits));
        if (s.size > limits.maxFileBytes) {
          report(error('release-too-large', `${path} is ${s.size} bytes, over the ${limits.maxFileBytes}-byte limit for one file`, where, 'keep large assets out of the release'));
        }
      } else {
        const what = s.isSymbolicLink() ? 'a symbolic link' : 'not a regular file';
        report(error('release-unsafe-file', `${path} is ${what}`, where, 'replace it with a copy of the file it stands for, or remove it'));
      }
    }
  };
  try {
    await walk(root, '');
    if (total > limits.maxTotalBytes) {
      diagnostics.push(error('release-too-large', `${origin} holds ${total} bytes, over the limit of ${limits.maxTotalBytes}`, { file: origin }));
    }
    if (hasErrors(diagnostics)) return { value: undefined, diagnostics };

    found.sort((a, b) => comparePaths(a.path, b.path));
    const files = new Map<string, Buffer>();
    let read = 0;
    for (const f of found) {
      const where = { file: `${origin}/${f.path}` };
      let bytes: Buffer | 'not-a-file' | 'too-large';
      try {
        bytes = await readRegularFile(f.full, BUNDLE_OWN_FILES.has(f.path) ? limits.maxFileBytes : Math.min(limits.maxFileBytes, limits.maxTotalBytes - read));
      } catch (e) {
        fsFinding(e, f.path);
        continue;
      }
      if (bytes === 'not-a-file') {
        report(error('release-unsafe-file', `${f.path} was replaced by something that is not a regular file while it was read`, where, 'do not change a release while relup reads it'));
      } else if (bytes === 'too-large') {
        report(error('release-too-large', `${f.path} grew past the size limits while it was read`, where, 'keep large or growing files out of the release'));
      } else {
        if (!BUNDLE_OWN_FILES.has(f.path)) read += bytes.length;
        files.set(f.path, bytes);
      }
    }
    if (hasErrors(diagnostics)) return { value: undefined, diagnostics };
    return { value: { files, kind: 'dir', origin }, diagnostics };
  } catch (e) {
    if (e instanceof StopWalking) return { value: undefined, diagnostics };
    throw e;
  }
}

/** The bytes of a regular file, read through one descriptor, never more than `max` of them. */
async function readRegularFile(path: string, max: number): Promise<Buffer | 'not-a-file' | 'too-large'> {
  const handle = await open(path, OPEN_FLAGS);
  try {
    if (!(await handle.stat()).isFile()) return 'not-a-file';
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(Math.max(max - size + 1, 1), 1024 * 1024));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      size += bytesRead;
      if (size > max) return 'too-large';
    }
    return Buffer.concat(chunks, size);
  } finally {
    await handle.close();
  }
}

function errnoCode(e: unknown): string | undefined {
  return e instanceof Error && 'code' in e && typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) ? e.code : undefined;
}
