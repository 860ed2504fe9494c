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
  const temp = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`);
  try {
    const handle = await open(temp, 'wx', options.mode ?? 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  }
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
