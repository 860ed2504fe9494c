import { z } from 'zod';

/**
 * The result of the `status` op (docs/protocol.md#status): what every node,
 * whatever its runtime, reports about itself. `servers` and `timers` are the
 * Node.js runtime's extras; other runtimes may leave them out.
 */
export const historyEventSchema = z.strictObject({
  /** ISO 8601 time of the event. */
  at: z.string(),
  op: z.enum(['boot', 'apply', 'make_permanent']),
  from: z.string().optional(),
  to: z.string(),
  /** boot: booted; apply: started, interrupted, committed, refused, rolled-back, rollback-failed; make_permanent: ok. */
  status: z.string(),
  message: z.string().optional(),
  /** "<step number from 1> <op> <target>" of the step that failed. */
  failedStep: z.string().optional(),
  durationMs: z.number().optional(),
  /** Suspension window of each group, by group id; null when the group suspended nothing. */
  suspensionMs: z.record(z.string(), z.number().nullable()).optional(),
});

export const moduleStatusSchema = z.strictObject({
  name: z.string(),
  /** sha256 of the module's content in the running release. */
  hash: z.string(),
  /** The release the running code of this module came from. */
  version: z.string(),
});

export const processStatusSchema = z.strictObject({
  name: z.string(),
  module: z.string(),
  suspended: z.boolean(),
  /** Messages waiting. */
  mailbox: z.number().int().nonnegative(),
  /** Handling a message right now. */
  handling: z.boolean(),
});

export const serverStatusSchema = z.strictObject({
  module: z.string(),
  handler: z.string(),
  address: z.string(),
  port: z.number().int(),
  family: z.string(),
  /** Open connections (keep-alive sockets included). */
  connections: z.number().int().nonnegative(),
});

export const timerStatusSchema = z.strictObject({
  id: z.number().int(),
  kind: z.enum(['interval', 'timeout']),
  ms: z.number(),
  module: z.string(),
  fn: z.string(),
  /** Times it fired so far. */
  fired: z.number().int().nonnegative(),
});

export const statusResultSchema = z.strictObject({
  /** The application's name (the releases' `name`). */
  name: z.string(),
  /** The release running now. */
  version: z.string(),
  /** Release hash of the running release. */
  hash: z.string(),
  modules: z.array(moduleStatusSchema),
  processes: z.array(processStatusSchema),
  /** An upgrade is being applied (from the upload until its outcome is recorded). */
  upgrading: z.boolean(),
  /** The release a restart boots. */
  permanent: z.string(),
  /** Installed releases older than the running one, newest first: where a rollback can go. */
  previous: z.array(z.string()),
  /** Every installed release, newest first. */
  installed: z.array(z.string()),
  /** The latest events (at most 50), oldest first. */
  history: z.array(historyEventSchema),
  /** The node's state directory (installed bundles and the history). */
  stateDir: z.string(),
  /**
   * Present while the running release is in soak (an apply with `soakMs`
   * committed it, and no `make_permanent` of it or later committed apply has
   * ended the soak). Kept in memory only: a restarted node boots its permanent
   * release, so no soak survives a restart.
   */
  soak: z
    .strictObject({
      /** The release in soak: the running one. */
      version: z.string(),
      /** ISO 8601 time the soak began (the commit). */
      startedAt: z.string(),
      /** ISO 8601 time the soak ends: whoever started it decides by then (make it permanent, or roll back). */
      deadline: z.string(),
      /** The deadline has passed without a verdict: whoever started the soak is gone; a restart still boots `permanent`. */
      overdue: z.boolean(),
    })
    .optional(),
  /** Set when something the node did could not be recorded in its history. */
  historyProblem: z.string().optional(),
  servers: z.array(serverStatusSchema).optional(),
  timers: z.array(timerStatusSchema).optional(),
});

export type StatusResult = z.infer<typeof statusResultSchema>;
