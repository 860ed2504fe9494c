import { lstat, realpath } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { NodeError } from '../errors/errors.js';

/**
 * Path trust, in the spirit of OpenSSH's StrictModes (`safe_path` in its
 * misc.c): a directory whose content the node runs or serves (its state
 * directory: the code a restart boots; its control socket's directory) is
 * only as safe as every directory above it. Whoever can write to one of them
 * can rename our directory away and put their own in its place.
 *
 * Rules, for every component of the path as given *and* of its canonical
 * (symlink-free) form, up to `/`:
 * - the owner is the node's user or root;
 * - it is not writable by group or others — except a *parent* that is owned
 *   by root and has the sticky bit (`/tmp`, `/var/tmp`, `/dev/shm`): there
 *   others may create entries but cannot rename or remove ours, and the entry
 *   below it must itself be ours or root's, so a name someone else created
 *   first is refused. OpenSSH makes no such exception (it stops walking at
 *   the home directory instead); relup makes it because nodes are commonly
 *   run from temporary directories, and the sticky bit defeats the
 *   rename-and-replace attack this check is about.
 * - a symbolic link on the way must be ours or root's too (whoever owns a
 *   link can point it elsewhere at any time).
 *
 * Where the platform has no uids (Windows) the check is skipped.
 */

export class PathTrustError extends NodeError {
  constructor(message: string, hint: string) {
    super('untrusted-path', message, hint);
  }
}

export interface TrustOptions {
  /** Whose files count as ours; default the effective uid of this process. */
  uid?: number;
}

type Role = 'target' | 'parent';

/** The problem with one component, or undefined; pure, so the rules are unit-testable. */
export function componentProblem(info: Pick<Stats, 'uid' | 'mode'> & { isSymbolicLink(): boolean; isDirectory(): boolean }, role: Role, uid: number): string | undefined {
  if (info.uid !== uid && info.uid !== 0) return `belongs to another user (uid ${info.uid})`;
  if (info.isSymbolicLink()) return undefined;
  const writableByOthers = (info.mode & 0o022) !== 0;
  if (!writableByOthers) return undefined;
  const sticky = (info.mode & 0o1000) !== 0;
  if (role === 'parent' && info.isDirectory() && sticky && info.uid === 0) return undefined;
  return `is writable by ${(info.mode & 0o002) !== 0 ? 'others' : 'its group'} (mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')})`;
}

/**
 * Refuse `path` (a directory or file the node relies on) unless it and every
 * directory above it pass the rules above. `what` names it in the error
 * ("the state directory", "the control socket's directory").
 */
export async function checkPathTrust(path: string, what: string, options: TrustOptions = {}): Promise<void> {
  const uid = options.uid ?? (typeof process.geteuid === 'function' ? process.geteuid() : undefined);
  if (uid === undefined) return;
  const absolute = resolve(path);
  await checkChain(absolute, absolute, what, uid);
  const canonical = await realpath(absolute);
  if (canonical !== absolute) await checkChain(canonical, absolute, what, uid);
}

async function checkChain(path: string, shown: string, what: string, uid: number): Promise<void> {
  let current = path;
  let role: Role = 'target';
  for (;;) {
    let info: Stats;
    try {
      info = await lstat(current);
    } catch (e) {
      throw new PathTrustError(`${what} ${shown} cannot be checked: ${(e as Error).message}`, `create it with mode 0700 (mkdir -m 700 ${shown})`);
    }
    const problem = componentProblem(info, role, uid);
    if (problem !== undefined) {
      const where = current === shown ? `${what} ${shown}` : `${current}, above ${what} ${shown},`;
      const fix = problem.startsWith('belongs')
        ? `use a path whose every directory belongs to you or root (chown, or choose another path)`
        : `chmod go-w ${current}, or use a path whose every directory only you or root can write to`;
      throw new PathTrustError(`${where} ${problem}: another user could replace what it holds`, fix);
    }
    const parent = dirname(current);
    if (parent === current || current === sep) return;
    current = parent;
    role = 'parent';
  }
}

/**
 * A file the node reads and trusts (its history, an installed bundle): a
 * regular file, not a link, owned by us or root, not writable by others. Its
 * directory is checked separately with checkPathTrust.
 */
export async function checkFileTrust(path: string, what: string, options: TrustOptions = {}): Promise<void> {
  const uid = options.uid ?? (typeof process.geteuid === 'function' ? process.geteuid() : undefined);
  if (uid === undefined) return;
  const info = await lstat(path);
  if (!info.isFile()) throw new PathTrustError(`${what} ${path} is not a regular file`, `remove it; the node only trusts files it wrote itself`);
  const problem = componentProblem(info, 'target', uid);
  if (problem !== undefined) throw new PathTrustError(`${what} ${path} ${problem}: another user could change it`, `chmod 600 ${path} and make sure it belongs to you (or remove it)`);
}
