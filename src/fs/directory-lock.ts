import { randomUUID } from 'node:crypto';
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { NodeError } from '../errors/errors.js';

/**
 * An exclusive lock on a directory, held by one live process: the file
 * `<dir>/<name>` names its holder (pid, the pid's start time, host). It is
 * created complete and atomically (written aside, then hard-linked into
 * place, which fails if the lock exists), so a reader never sees half a lock.
 *
 * A lock whose holder is gone (the process died, even by SIGKILL) is stale
 * and taken over. Holder liveness: same host, the pid exists, and — where
 * /proc tells — it is the same process that took the lock (a pid reused by
 * another process after a crash does not keep the lock). A lock held by
 * another host (a state directory on a shared file system) is never judged
 * stale: its holder cannot be checked from here.
 */

export interface LockHolder {
  pid: number;
  /** Start time of the pid in clock ticks since boot (Linux /proc/<pid>/stat field 22); null where unknown. */
  started: string | null;
  host: string;
  since: string;
}

export class DirectoryLockedError extends NodeError {
  constructor(
    message: string,
    hint: string,
    readonly holder: LockHolder,
  ) {
    super('state-dir-locked', message, hint);
  }
}

export interface DirectoryLock {
  readonly path: string;
  /** Remove the lock if it is still ours. Idempotent. */
  release(): Promise<void>;
}

/** Locks this process holds, by path: a second lock on the same directory from the same process is refused too. */
const heldHere = new Set<string>();

/** Take the lock or throw DirectoryLockedError naming its live holder. */
export async function lockDirectory(dir: string, options: { name?: string; what?: string } = {}): Promise<DirectoryLock> {
  const path = join(dir, options.name ?? 'node.lock');
  const what = options.what ?? dir;
  const me: LockHolder = { pid: process.pid, started: await startTimeOf(process.pid), host: hostname(), since: new Date().toISOString() };
  const text = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; ; attempt++) {
    const taken = await createExclusive(path, text);
    if (taken) break;
    const content = await readFile(path, 'utf8').catch(() => undefined);
    if (content === undefined) continue; // released meanwhile: try again
    const holder = parseHolder(content);
    if (holder !== undefined && (await isAlive(holder, path))) {
      throw new DirectoryLockedError(
        `${what} is in use by another relup node (pid ${holder.pid}${holder.host === me.host ? '' : ` on ${holder.host}`}, since ${holder.since})`,
        holder.host === me.host ? `stop that node first (kill ${holder.pid}), or use another --state-dir` : `stop the node on ${holder.host}, or use another --state-dir; if it is gone, remove ${path}`,
        holder,
      );
    }
    if (attempt >= 5) throw new NodeError('state-dir-locked', `cannot take the lock ${path}: it keeps changing`, 'another node is starting on the same state directory; try again');
    // Stale (its holder died, or it is unreadable garbage older than a moment): remove it, but only if it is still the
    // lock we judged, so two nodes recovering the same stale lock almost never both win: the second finds the first's
    // fresh lock. (A window of a few microseconds between that read and the unlink remains; two nodes would have to
    // start on the same crashed state directory within it.)
    if (holder === undefined && (await ageMs(path)) < 2000) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    if ((await readFile(path, 'utf8').catch(() => undefined)) === content) await unlink(path).catch(() => undefined);
  }
  heldHere.add(path);
  let released = false;
  return {
    path,
    release: async () => {
      if (released) return;
      released = true;
      heldHere.delete(path);
      if ((await readFile(path, 'utf8').catch(() => undefined)) === text) await unlink(path).catch(() => undefined);
    },
  };
}

/** Read the holder of a lock without taking it (status, diagnostics). */
export async function lockHolder(dir: string, name = 'node.lock'): Promise<LockHolder | undefined> {
  const content = await readFile(join(dir, name), 'utf8').catch(() => undefined);
  return content === undefined ? undefined : parseHolder(content);
}

async function createExclusive(path: string, text: string): Promise<boolean> {
  // Named like writeFileAtomic's temp files, so one left by a crash is removed when the next node starts.
  const temp = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`);
  await writeFile(temp, text, { mode: 0o600, flag: 'wx' });
  try {
    await link(temp, path);
    return true;
  } catch (e) {
    // ENOENT: our temp file was removed by a node that holds the lock and cleans up after crashes.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST' || (e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.host !== 'string') return undefined;
    return { pid: v.pid, started: typeof v.started === 'string' ? v.started : null, host: v.host, since: typeof v.since === 'string' ? v.since : '?' };
  } catch {
    return undefined;
  }
}

async function isAlive(holder: LockHolder, path: string): Promise<boolean> {
  if (holder.host !== hostname()) return true;
  // Our own pid: a lock this process holds is live; one it does not hold was left by an earlier process that had
  // our pid (a container restarted after a crash often gets the same pid).
  if (holder.pid === process.pid) return heldHere.has(path);
  try {
    process.kill(holder.pid, 0);
  } catch (e) {
    // EPERM: the pid exists but belongs to another user — still alive.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const started = await startTimeOf(holder.pid);
  return holder.started === null || started === null || started === holder.started;
}

async function startTimeOf(pid: number): Promise<string | null> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return null;
  // Field 2 (comm) may contain spaces and parentheses: count fields after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return rest[19] ?? null; // field 22 overall
}

async function ageMs(path: string): Promise<number> {
  const info = await stat(path).catch(() => undefined);
  return info === undefined ? Infinity : Date.now() - info.mtimeMs;
}
