import { z } from 'zod';
import { stepSchema } from '../script/script-schema.js';

/**
 * What an `apply` streams (step events) and returns (the outcome), for every
 * runtime (docs/protocol.md#apply). Indexes are positions in the script's
 * `steps`, from 0; people see them from 1.
 */
const STEP_OPS = stepSchema.options.map((o) => o.shape.op.value);
export const stepOpSchema = z.enum(STEP_OPS as [(typeof STEP_OPS)[number], ...(typeof STEP_OPS)[number][]]);

const stepIndex = z.number().int().nonnegative();

export const stepEventSchema = z.strictObject({
  index: stepIndex,
  op: stepOpSchema,
  /** The module, process or version the step is about ('' for the point of no return). */
  target: z.string(),
  status: z.enum(['start', 'ok', 'failed', 'undone', 'undo-failed']),
  /** 0 for 'start'; the step's (or its undo's) duration otherwise. */
  durationMs: z.number().nonnegative(),
  error: z.string().optional(),
  /** What the undo did when it could not restore anything (e.g. an apply step). */
  note: z.string().optional(),
});

export const stepRefSchema = z.strictObject({ index: stepIndex, op: stepOpSchema, target: z.string() });

export const journalEntrySchema = z.strictObject({
  index: stepIndex,
  op: stepOpSchema,
  target: z.string(),
  status: z.enum(['ok', 'failed']),
  durationMs: z.number().nonnegative(),
  error: z.string().optional(),
  undo: z
    .strictObject({
      status: z.enum(['undone', 'undo-failed']),
      durationMs: z.number().nonnegative(),
      error: z.string().optional(),
      note: z.string().optional(),
    })
    .optional(),
});

export const stepFailureSchema = z.strictObject({
  /** A runtime error code (e.g. version-mismatch, timeout, bundle-invalid) or 'module-error' when module code threw. */
  code: z.string(),
  message: z.string(),
  step: stepRefSchema.optional(),
});

export const rollbackReportSchema = z.strictObject({
  /** True only when every undo succeeded and every process runs again. */
  complete: z.boolean(),
  /** Steps whose undo ran. */
  undone: z.number().int().nonnegative(),
  problems: z.array(z.strictObject({ message: z.string(), step: stepRefSchema.optional() })),
});

export const groupReportSchema = z.strictObject({
  id: z.number().int().nonnegative(),
  modules: z.array(z.string()),
  processes: z.array(z.string()),
  /** ms from the group's first suspend to its last resume; null when it suspended nothing. */
  suspensionMs: z.number().nullable(),
  migrated: z.strictObject({ modules: z.array(z.string()), processes: z.array(z.string()) }),
});

export const APPLY_STATUSES = ['committed', 'noop', 'dry-run', 'refused', 'rolled-back', 'rollback-failed'] as const;

export const applyOutcomeSchema = z.strictObject({
  /**
   * committed: the node runs `to`; noop: it already did; dry-run: the checks
   * before the point of no return passed, nothing changed; refused: a check
   * failed before the point of no return, nothing changed; rolled-back: a step
   * after it failed and everything was restored; rollback-failed: the restore
   * itself hit problems (see `rollback.problems`).
   */
  status: z.enum(APPLY_STATUSES),
  /** committed, noop or dry-run. */
  ok: z.boolean(),
  /** One sentence for people. */
  message: z.string(),
  name: z.string(),
  from: z.string().optional(),
  to: z.string().optional(),
  direction: z.enum(['up', 'down']).optional(),
  /** The release the node runs now. */
  version: z.string(),
  failure: stepFailureSchema.optional(),
  /** Present when steps after the point of no return were undone (or a problem was found while settling). */
  rollback: rollbackReportSchema.optional(),
  journal: z.array(journalEntrySchema),
  groups: z.array(groupReportSchema),
  /** Module state keys a new version's initial state added, per module (Silly's `absent`). */
  absent: z.record(z.string(), z.array(z.string())),
  /** ms during which work from outside the node was held (point of no return → settle); null when nothing passed it. */
  holdMs: z.number().nullable(),
  durationMs: z.number().nonnegative(),
  /** The release a restart boots, after this apply. */
  permanent: z.string(),
  /** Installed releases older than the running one, newest first. */
  previous: z.array(z.string()),
});

export type ApplyOutcomeResult = z.infer<typeof applyOutcomeSchema>;
export type StepEventMessage = z.infer<typeof stepEventSchema>;
