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
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Temp files of writes cut short by a crash are named like this; they are never read, only removed. */
export const ATOMIC_TEMP_FILE = /^\.(?:.+\.)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;
