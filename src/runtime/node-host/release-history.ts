import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import { z } from 'zod';
import { NodeError } from '../../errors/errors.js';
import { prepareFileAtomic, wasRenamed, writeFileAtomic, type PreparedFile } from '../../fs/write-file-atomic.js';
import { messageOf } from '../node/runtime-error.js';

/**
 * The node's release history, kept in its state directory: which release runs
 * (current), which one a restart boots (permanent), every release installed
 * with the hash its bundle must have, and every boot and upgrade attempt with
 * its outcome. Written with writeFileAtomic, so a crash mid-write leaves
 * either the old or the new file, never a torn one.
 *
 * `previous` is not stored: it is derived (previousOf) as in OTP's
 * `which_releases`, where releases older than the current one stay installed
 * as `old`: the installed releases whose version is lower than the current
 * one, newest first. A rollback goes to previous[0] and never to a newer
 * release, so rolling back twice walks further back, never forth.
 */
export const HISTORY_FILE = 'history.json';
const MAX_EVENTS = 500;
/**
 * Installed releases kept, current and permanent always among them. A node
 * upgraded every day for years must not grow in memory, in its history file
 * (rewritten, fsynced, at every change) or on disk: past this many, the oldest
 * releases that are neither current nor permanent are uninstalled, as an OTP
 * operator would with release_handler:remove_release. Rollback reaches the
 * MAX_INSTALLED - 1 releases before the current one.
 */
export const MAX_INSTALLED = 20;

export const historyEventSchema = z.strictObject({
  at: z.string(),
  op: z.enum(['boot', 'apply', 'make_permanent']),
  from: z.string().optional(),
  to: z.string(),
  status: z.string(),
  message: z.string().optional(),
  failedStep: z.string().optional(),
  durationMs: z.number().optional(),
  suspensionMs: z.record(z.string(), z.number().nullable()).optional(),
});

export const historySchema = z.strictObject({
  format: z.literal(2),
  name: z.string(),
  current: z.string(),
  permanent: z.string(),
  /** Every installed release: version → release hash. A bundle runs only if it still hashes to this. */
  installed: z.record(z.string(), z.string()),
  events: z.array(historyEventSchema),
});

/** Written by relup 0.1 before hashes were recorded; read once and rewritten as format 2 at the next boot. */
const historyV1Schema = z.strictObject({
  format: z.literal(1),
  name: z.string(),
  current: z.string(),
  permanent: z.string(),
  previous: z.array(z.string()),
  events: z.array(historyEventSchema),
});

export type History = z.infer<typeof historySchema>;
export type HistoryEvent = z.infer<typeof historyEventSchema>;

/** A history.json the node cannot use: a known condition with its own code, never an internal error. */
export class HistoryCorruptError extends NodeError {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(
      'history-corrupt',
      `${path} is not a valid relup history: ${problem}`,
      `restore it from a backup; or, to start this state directory afresh, move it aside (mv ${path} ${path}.bad) and start the node with --release <the release to run>`,
    );
  }
}

/**
 * The history in `stateDir`, or undefined for a new state directory. A
 * format-1 history has no hashes yet: `installed` is empty and `legacy` is
 * true, and the caller records the hashes of the bundles it verifies.
 */
export async function readHistory(stateDir: string): Promise<(History & { legacy?: true }) | undefined> {
  const path = join(stateDir, HISTORY_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new HistoryCorruptError(path, text.trim() === '' ? 'the file is empty' : `it is not JSON (${(e as Error).message})`);
  }
  const parsed = historySchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const v1 = historyV1Schema.safeParse(json);
  if (v1.success) {
    const { previous: _previous, ...rest } = v1.data;
    return { ...rest, format: 2, installed: {}, legacy: true };
  }
  const issue = parsed.error.issues[0];
  throw new HistoryCorruptError(path, issue === undefined ? 'invalid' : `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
}

function historyText(history: History): string {
  const bounded: History = { format: 2, name: history.name, current: history.current, permanent: history.permanent, installed: history.installed, events: history.events.slice(-MAX_EVENTS) };
  return `${JSON.stringify(bounded, null, 2)}\n`;
}

export async function writeHistory(stateDir: string, history: History): Promise<void> {
  await writeFileAtomic(join(stateDir, HISTORY_FILE), historyText(history), { mode: 0o600 });
}

/** A history written ahead (its temp file synced), to become the history by a rename; see HistoryLog.prepare. */
export interface PreparedHistory {
  /** The history it was computed from: it is used only if that is still the latest. */
  readonly base: History;
  readonly next: History;
  readonly file: PreparedFile;
}

/** A new history after `event`; pure, so the rules are testable without a disk. */
export function recordEvent(history: History, event: HistoryEvent, change?: { current?: string; permanent?: string; installed?: { version: string; hash: string } }): History {
  return {
    ...history,
    current: change?.current ?? history.current,
    permanent: change?.permanent ?? history.permanent,
    installed: change?.installed === undefined ? history.installed : bounded({ ...history.installed, [change.installed.version]: change.installed.hash }, change.current ?? history.current, change.permanent ?? history.permanent),
    // Bounded in memory too, not only on disk: a long-lived node must not grow with its history.
    events: [...history.events, event].slice(-MAX_EVENTS),
  };
}

/** `installed` without its oldest releases past MAX_INSTALLED; current and permanent always stay. */
function bounded(installed: Record<string, string>, current: string, permanent: string): Record<string, string> {
  const versions = Object.keys(installed);
  if (versions.length <= MAX_INSTALLED) return installed;
  const removable = versions.filter((v) => v !== current && v !== permanent && semver.valid(v) !== null).sort(semver.compare);
  const out = { ...installed };
  for (const v of removable.slice(0, versions.length - MAX_INSTALLED)) delete out[v];
  return out;
}

/** The releases a rollback can return to: installed and older than the current one, newest first (OTP's `old`). */
export function previousOf(history: Pick<History, 'current' | 'installed'>): string[] {
  const current = semver.valid(history.current);
  return Object.keys(history.installed)
    .filter((v) => semver.valid(v) !== null && current !== null && semver.lt(v, current))
    .sort(semver.rcompare);
}

/** Every installed release, newest first. */
export function installedOf(history: Pick<History, 'installed'>): string[] {
  return Object.keys(history.installed).filter((v) => semver.valid(v) !== null).sort(semver.rcompare);
}

/**
 * The one writer of a history: every change goes through `update`, one at a
 * time, in call order. The change is computed from the latest history when
 * its turn comes, written, and only then becomes the value the node reports:
 * what `value` says is always what is on disk, so status always equals what
 * a restart would boot. A failed write changes nothing in memory; the caller
 * gets the error.
 */
export class HistoryLog {
  private tail: Promise<unknown> = Promise.resolve();
  /** Set when the file on disk may differ from `value` (a failed write left the new file in place and putting the old one back failed too). */
  private mismatch: string | undefined;

  constructor(
    private readonly stateDir: string,
    private current: History,
    private readonly write: (stateDir: string, history: History, label: string) => Promise<void> = writeHistory,
    /** Puts a prepared history in place; the host wraps it like `write`, under the same label (fault injection). */
    private readonly commitPrepared: (file: PreparedFile, label: string) => Promise<void> = (file) => file.commit(),
  ) {}

  /**
   * Compute `change` of the latest history now and write it to a synced temp
   * file, so that a later `update(…, prepared)` only renames it into place —
   * the cheap half of a durable write, for a write inside every suspension
   * window (the commit). Undefined when there is nothing to write or the temp
   * file could not be written: the update then writes in full, as always.
   */
  async prepare(change: (latest: History) => History): Promise<PreparedHistory | undefined> {
    const base = this.current;
    const next = change(base);
    if (next === base) return undefined;
    const file = await prepareFileAtomic(join(this.stateDir, HISTORY_FILE), historyText(next), { mode: 0o600 }).catch(() => undefined);
    return file === undefined ? undefined : { base, next, file };
  }

  /** Resolves once every update queued so far has settled. */
  async idle(): Promise<void> {
    await this.tail;
  }

  get value(): History {
    return this.current;
  }

  /** Why the file on disk may not be `value`, when it may not; reported by status until a later write succeeds. */
  get problem(): string | undefined {
    return this.mismatch;
  }

  /**
   * Queue a change. `change` runs when its turn comes (it may be async: a
   * check that must see the latest history, such as verifying a bundle, runs
   * inside the queue). Returning the same object changes nothing and writes
   * nothing. `label` names the write for fault injection and errors.
   */
  update(change: (latest: History) => History | Promise<History>, label = 'history', prepared?: PreparedHistory): Promise<History> {
    const run = async (): Promise<History> => {
      // A prepared history is used only if nothing was written since it was computed; else it is dropped and `change` runs.
      const ahead = prepared !== undefined && prepared.base === this.current && this.mismatch === undefined ? prepared : undefined;
      if (ahead === undefined) await prepared?.file.discard().catch(() => undefined);
      const next = ahead?.next ?? (await change(this.current));
      if (next === this.current && this.mismatch === undefined) return next;
      try {
        if (ahead === undefined) await this.write(this.stateDir, next, label);
        else await this.commitPrepared(ahead.file, label);
      } catch (e) {
        await ahead?.file.discard().catch(() => undefined);
        // The write failed after the new file was renamed into place: put the old content back, so disk and memory agree.
        if (wasRenamed(e)) {
          try {
            await this.write(this.stateDir, this.current, `${label} (restore)`);
          } catch (again) {
            this.mismatch = `${HISTORY_FILE} may hold a change that failed to be written (${messageOf(e)}), and restoring it failed too (${messageOf(again)})`;
          }
        }
        throw e;
      }
      this.current = next;
      this.mismatch = undefined;
      return next;
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
