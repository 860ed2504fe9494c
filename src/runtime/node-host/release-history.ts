import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../fs/write-file-atomic.js';

/**
 * The node's release history, kept in its state directory: which release runs
 * (current), which one a restart boots (permanent), what ran before
 * (previous), and every boot and upgrade attempt with its outcome. Written
 * with writeFileAtomic, so a crash mid-write leaves either the old or the new
 * file, never a torn one.
 */
export const HISTORY_FILE = 'history.json';
const MAX_EVENTS = 500;

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
  format: z.literal(1),
  name: z.string(),
  current: z.string(),
  permanent: z.string(),
  /** Versions that ran before the current one, most recent first, without repeats. */
  previous: z.array(z.string()),
  events: z.array(historyEventSchema),
});

export type History = z.infer<typeof historySchema>;
export type HistoryEvent = z.infer<typeof historyEventSchema>;

export async function readHistory(stateDir: string): Promise<History | undefined> {
  let text: string;
  try {
    text = await readFile(join(stateDir, HISTORY_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const parsed = historySchema.safeParse(safeJson(text));
  if (!parsed.success) {
    throw new Error(`${join(stateDir, HISTORY_FILE)} is not a valid relup history (${parsed.error.issues[0]?.message ?? 'invalid'}); move it aside to start fresh`);
  }
  return parsed.data;
}

export async function writeHistory(stateDir: string, history: History): Promise<void> {
  const bounded = { ...history, events: history.events.slice(-MAX_EVENTS) };
  await writeFileAtomic(join(stateDir, HISTORY_FILE), `${JSON.stringify(bounded, null, 2)}\n`, { mode: 0o600 });
}

/** A new history after `event`; pure, so the rules are testable without a disk. */
export function recordEvent(history: History, event: HistoryEvent, change?: { current?: string; permanent?: string }): History {
  let previous = history.previous;
  if (change?.current !== undefined && change.current !== history.current) {
    previous = [history.current, ...history.previous.filter((v) => v !== history.current && v !== change.current)];
  }
  return {
    ...history,
    current: change?.current ?? history.current,
    permanent: change?.permanent ?? history.permanent,
    previous: previous.slice(0, MAX_EVENTS),
    // Bounded in memory too, not only on disk: a long-lived node must not grow with its history.
    events: [...history.events, event].slice(-MAX_EVENTS),
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
