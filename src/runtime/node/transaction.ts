import { performance } from 'node:perf_hooks';
import type { Step, StepOp } from '../../script/script-schema.js';
import { RuntimeError, messageOf } from './runtime-error.js';

/**
 * The relup script evaluator, independent of what a step does: ordering,
 * the point of no return, the deadline, the undo log and the journal. The
 * node supplies a `StepPerformer`; tests supply one that fails at step N.
 */

export type StepStatus = 'start' | 'ok' | 'failed' | 'undone' | 'undo-failed';

/** Emitted for every step as it starts, ends, and (on rollback) is undone. */
export interface StepEvent {
  index: number;
  op: StepOp;
  /** The module, process or version the step is about ('' for the point of no return). */
  target: string;
  status: StepStatus;
  /** 0 for 'start'; the step's (or its undo's) duration otherwise. */
  durationMs: number;
  error?: string;
  /** What the undo did when it could not restore anything (e.g. an apply step). */
  note?: string;
}

export interface JournalEntry {
  index: number;
  op: StepOp;
  target: string;
  status: 'ok' | 'failed';
  durationMs: number;
  error?: string;
  undo?: { status: 'undone' | 'undo-failed'; durationMs: number; error?: string; note?: string };
}

export interface StepRef {
  index: number;
  op: StepOp;
  target: string;
}

export interface StepFailure {
  /** A RuntimeErrorCode when the node raised it, 'module-error' when module code threw. */
  code: string;
  message: string;
  step?: StepRef;
}

export interface RollbackProblem {
  message: string;
  step?: StepRef;
}

export interface RollbackReport {
  /** True only when every undo succeeded and every process runs again. */
  complete: boolean;
  /** Steps whose undo ran. */
  undone: number;
  problems: RollbackProblem[];
}

export type TransactionStatus = 'committed' | 'dry-run' | 'refused' | 'rolled-back' | 'rollback-failed';

export interface TransactionResult {
  status: TransactionStatus;
  failure?: StepFailure;
  rollback?: RollbackReport;
  journal: JournalEntry[];
  durationMs: number;
}

export interface StepContext {
  readonly index: number;
  /** Milliseconds left before the transaction's deadline. */
  remainingMs(): number;
  /** Aborted when the transaction gave up on this step (deadline): a late step must change nothing more. */
  readonly signal: AbortSignal;
  /**
   * Register how to undo the change this step is about to make. Call it
   * *before* making the change, so a step that fails half-way is undone as
   * far as it got. `undo` omitted: the change cannot be undone and `what`
   * says so. Throws once the transaction has given up on the step.
   */
  onUndo(what: string, undo?: () => void | Promise<void>): void;
}

export interface StepPerformer {
  /** Before the point of no return: may fail, must not change the running system. */
  check(step: Step, ctx: StepContext): Promise<void>;
  /** After it: perform the step, registering its undo through `ctx.onUndo`. */
  perform(step: Step, ctx: StepContext): Promise<void>;
  /**
   * Called exactly once at the end. 'committed': drop what was kept for undo.
   * 'rolled-back': make sure no process stays suspended. 'discarded': drop
   * staged code (refused or dry run). Returns problems that left the node
   * inconsistent (reported as rollback problems).
   */
  settle(result: 'committed' | 'rolled-back' | 'discarded'): Promise<string[]>;
}

export interface TransactionInput {
  steps: readonly Step[];
  pointOfNoReturn: number;
  dryRun: boolean;
  deadlineMs: number;
  performer: StepPerformer;
  onEvent?: (event: StepEvent) => void;
}

const PRE_PONR: ReadonlySet<StepOp> = new Set(['verify_release', 'check_version', 'stage', 'check_function', 'check_process']);

export function stepTarget(step: Step): string {
  switch (step.op) {
    case 'verify_release':
      return step.version;
    case 'check_version':
      return step.expect;
    case 'commit':
      return step.version;
    case 'point_of_no_return':
      return '';
    case 'check_function':
    case 'migrate':
    case 'apply':
      return `${step.module}.${step.function}`;
    case 'stage':
    case 'switch':
    case 'delete':
    case 'purge':
      return step.module;
    case 'check_process':
    case 'stop':
    case 'suspend':
    case 'resume':
    case 'start':
    case 'restart':
      return step.process;
  }
}

/** The ordering rules every script obeys, checked before anything runs. */
export function scriptShapeProblem(steps: readonly Step[], pointOfNoReturn: number): string | undefined {
  if (steps[pointOfNoReturn]?.op !== 'point_of_no_return') return `pointOfNoReturn (${pointOfNoReturn}) does not index the point_of_no_return step`;
  for (const [i, step] of steps.entries()) {
    if (i < pointOfNoReturn && !PRE_PONR.has(step.op)) return `step ${i} (${step.op}) changes the node but comes before the point of no return`;
    if (i > pointOfNoReturn && (PRE_PONR.has(step.op) || step.op === 'point_of_no_return')) return `step ${i} (${step.op}) is a check but comes after the point of no return`;
  }
  const commits = steps.filter((s) => s.op === 'commit').length;
  if (steps.length > pointOfNoReturn + 1 && (commits !== 1 || steps[steps.length - 1]!.op !== 'commit')) return 'the last step must be the only commit';
  return undefined;
}

interface UndoEntry {
  what: string;
  undo: (() => void | Promise<void>) | undefined;
}

/**
 * Evaluate `steps` as one transaction. Before the point of no return a
 * failure changes nothing. After it, every registered undo runs in reverse
 * order, and the performer is asked to leave nothing suspended; the result
 * says whether that fully worked, and never claims a rollback it did not do.
 */
export async function runTransaction(input: TransactionInput): Promise<TransactionResult> {
  const started = performance.now();
  const { steps, pointOfNoReturn, performer } = input;
  const journal: JournalEntry[] = [];
  const emit = (event: StepEvent): void => {
    try {
      input.onEvent?.(event);
    } catch {
      // An observer's bug must not break the transaction.
    }
  };
  const finish = (status: TransactionStatus, extra: Partial<TransactionResult> = {}): TransactionResult => ({
    status,
    ...extra,
    journal,
    durationMs: performance.now() - started,
  });

  const shape = scriptShapeProblem(steps, pointOfNoReturn);
  if (shape !== undefined) {
    const problems = await settleSafely(performer, 'discarded');
    return finish('refused', { failure: { code: 'invalid-script', message: shape }, ...(problems.length > 0 ? { rollback: { complete: false, undone: 0, problems } } : {}) });
  }

  const deadlineAt = started + input.deadlineMs;
  const controller = new AbortController();
  let deadlineTimer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    deadlineTimer = setTimeout(() => {
      const error = new RuntimeError('deadline', `the transaction's deadline of ${input.deadlineMs} ms passed`, 'raise deadlineMs, or find the step that hangs in the journal');
      controller.abort(error);
      reject(error);
    }, Math.max(0, input.deadlineMs));
  });
  deadline.catch(() => undefined);
  const undoLog: { ref: StepRef; entries: UndoEntry[] }[] = [];

  try {
    const last = input.dryRun ? pointOfNoReturn : steps.length - 1;
    for (let index = 0; index <= last; index++) {
      const step = steps[index]!;
      const ref: StepRef = { index, op: step.op, target: stepTarget(step) };
      const before = index <= pointOfNoReturn;
      const entries: UndoEntry[] = [];
      if (!before) undoLog.push({ ref, entries });
      const ctx: StepContext = {
        index,
        remainingMs: () => Math.max(0, deadlineAt - performance.now()),
        signal: controller.signal,
        onUndo: (what, undo) => {
          if (controller.signal.aborted) throw controller.signal.reason;
          if (before) throw new RuntimeError('invalid-script', `step ${index} (${step.op}) tried to change the node before the point of no return`);
          entries.push({ what, undo });
        },
      };
      emit({ ...ref, status: 'start', durationMs: 0 });
      const t0 = performance.now();
      try {
        if (controller.signal.aborted) throw controller.signal.reason;
        await Promise.race([before ? performer.check(step, ctx) : performer.perform(step, ctx), deadline]);
      } catch (e) {
        const durationMs = performance.now() - t0;
        const failure: StepFailure = { code: codeOf(e), message: messageOf(e), step: ref };
        journal.push({ ...ref, status: 'failed', durationMs, error: failure.message });
        emit({ ...ref, status: 'failed', durationMs, error: failure.message });
        if (before) {
          const problems = await settleSafely(performer, 'discarded');
          return finish('refused', { failure, ...(problems.length > 0 ? { rollback: { complete: false, undone: 0, problems } } : {}) });
        }
        controller.abort(e);
        const rollback = await rollBack(undoLog, journal, emit, performer);
        return finish(rollback.complete ? 'rolled-back' : 'rollback-failed', { failure, rollback });
      }
      const durationMs = performance.now() - t0;
      journal.push({ ...ref, status: 'ok', durationMs });
      emit({ ...ref, status: 'ok', durationMs });
    }
    if (input.dryRun) {
      const problems = await settleSafely(performer, 'discarded');
      return finish('dry-run', problems.length > 0 ? { rollback: { complete: false, undone: 0, problems } } : {});
    }
    undoLog.length = 0;
    const problems = await settleSafely(performer, 'committed');
    return finish('committed', problems.length > 0 ? { rollback: { complete: false, undone: 0, problems } } : {});
  } finally {
    clearTimeout(deadlineTimer);
  }
}

async function rollBack(
  undoLog: { ref: StepRef; entries: UndoEntry[] }[],
  journal: JournalEntry[],
  emit: (e: StepEvent) => void,
  performer: StepPerformer,
): Promise<RollbackReport> {
  const problems: RollbackProblem[] = [];
  let undone = 0;
  for (const { ref, entries } of [...undoLog].reverse()) {
    const t0 = performance.now();
    const errors: string[] = [];
    const notes: string[] = [];
    for (const entry of [...entries].reverse()) {
      if (entry.undo === undefined) {
        notes.push(entry.what);
        continue;
      }
      try {
        await entry.undo();
      } catch (e) {
        errors.push(`${entry.what}: ${messageOf(e)}`);
      }
    }
    const durationMs = performance.now() - t0;
    const record = journal.find((j) => j.index === ref.index);
    const note = notes.length > 0 ? notes.join('; ') : entries.length === 0 ? 'nothing to undo' : undefined;
    if (errors.length > 0) {
      const error = errors.join('; ');
      problems.push({ message: error, step: ref });
      if (record !== undefined) record.undo = { status: 'undo-failed', durationMs, error, ...(note !== undefined ? { note } : {}) };
      emit({ ...ref, status: 'undo-failed', durationMs, error, ...(note !== undefined ? { note } : {}) });
    } else {
      undone += 1;
      if (record !== undefined) record.undo = { status: 'undone', durationMs, ...(note !== undefined ? { note } : {}) };
      emit({ ...ref, status: 'undone', durationMs, ...(note !== undefined ? { note } : {}) });
    }
  }
  undoLog.length = 0;
  problems.push(...(await settleSafely(performer, 'rolled-back')));
  return { complete: problems.length === 0, undone, problems };
}

async function settleSafely(performer: StepPerformer, result: 'committed' | 'rolled-back' | 'discarded'): Promise<{ message: string }[]> {
  try {
    return (await performer.settle(result)).map((message) => ({ message }));
  } catch (e) {
    return [{ message: `settling the transaction (${result}) failed: ${messageOf(e)}` }];
  }
}

function codeOf(e: unknown): string {
  return e instanceof RuntimeError ? e.code : 'module-error';
}
