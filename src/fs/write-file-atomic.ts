import { randomUUID } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Write `bytes` to `path` so readers see the old file or the whole new one,
 * never a partial one, even after a crash: a temp file in the same directory,
 * synced, renamed, then the directory synced (the rename is durable only once
 * the directory entry is on disk). Used for bundles, scripts and the node's
 * history alike.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string, options: { mode?: number } = {}): Promise<void> {
  await (await prepareFileAtomic(path, bytes, options)).commit();
}

/** The first half of writeFileAtomic, done ahead: the content is on disk in a temp file, not yet at `path`. */
export interface PreparedFile {
  readonly path: string;
  /** Rename into place and sync the directory (the second half of writeFileAtomic, with its errors). */
  commit(): Promise<void>;
  /** Remove the temp file; nothing at `path` changes. Idempotent, and a no-op after commit. */
  discard(): Promise<void>;
}

/**
 * Write and sync the temp file now, rename it later: the slow, failure-prone
 * part of a durable write (the data and its fsync) leaves the moment the file
 * must appear, which then costs a rename and a directory sync. A temp file
 * left by a crash in between matches ATOMIC_TEMP_FILE and is removed by its
 * owner at start-up.
 */
export async function prepareFileAtomic(path: string, bytes: Uint8Array | string, options: { mode?: number } = {}): Promise<PreparedFile> {
  const temp = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`);
  try {
    const handle = await open(temp, 'wx', options.mode ?? 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  }
  let settled = false;
  return {
    path,
    commit: async () => {
      if (settled) throw new Error(`${path}: the prepared write was already committed or discarded`);
      settled = true;
      try {
        await rename(temp, path);
      } catch (e) {
        await rm(temp, { force: true });
        throw e;
      }
      await syncDirectory(path);
    },
    discard: async () => {
      if (settled) return;
      settled = true;
      await rm(temp, { force: true });
    },
  };
}

async function syncDirectory(path: string): Promise<void> {
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (e) {
    // The new file is already in place: a caller undoing the write must know it has to write the old content back.
    throw markRenamed(e);
  }
}

/**
 * True when a writeFileAtomic that threw had already renamed the new file
 * into place (only the directory sync failed): readers may now see the new
 * content. False when the old file is untouched.
 */
export function wasRenamed(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { renamed?: unknown }).renamed === true;
}

function markRenamed(e: unknown): unknown {
  if (typeof e === 'object' && e !== null) {
    try {
      Object.defineProperty(e, 'renamed', { value: true, enumerable: false });
    } catch {
      // A frozen error: the flag is lost, and the caller treats the write as not done.
    }
  }
  return e;
}

/** Temp files of writes cut short by a crash are named like this; they are never read, only removed. */
export const ATOMIC_TEMP_FILE = /^\.(?:.+\.)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;
