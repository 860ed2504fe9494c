import { z } from 'zod';

/**
 * The relup script: the planner's output for one transition, and the only
 * thing a node needs (besides the bundle) to perform it. Runtime-neutral,
 * deterministic, versioned by `format`. Documented in docs/relup-script.md.
 */
export const SCRIPT_FORMAT = 1;

const name = z.string().min(1);
const reason = z.string();

const releaseRef = z.strictObject({
  version: z.string().min(1),
  /** Release hash (see Release.hash): the node refuses a bundle whose content differs. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
});

export const stepSchema = z.discriminatedUnion('op', [
  // --- before the point of no return: each may fail and leaves the node untouched ---
  z.strictObject({ op: z.literal('verify_release'), version: z.string(), hash: z.string(), reason }),
  z.strictObject({ op: z.literal('check_version'), expect: z.string(), reason }),
  z.strictObject({ op: z.literal('stage'), module: name, hash: z.string(), reason }),
  z.strictObject({ op: z.literal('check_function'), module: name, function: name, release: z.enum(['from', 'to']), reason }),
  z.strictObject({ op: z.literal('check_process'), process: name, reason }),
  z.strictObject({ op: z.literal('point_of_no_return'), reason }),
  // --- after it: the node undoes every one of these on failure ---
  z.strictObject({ op: z.literal('stop'), process: name, reason }),
  z.strictObject({ op: z.literal('suspend'), group: z.number().int().nonnegative(), process: name, timeout: z.number().int().positive(), reason }),
  z.strictObject({
    op: z.literal('switch'),
    group: z.number().int().nonnegative(),
    module: name,
    kind: z.enum(['load', 'update', 'add']),
    reason,
  }),
  z.strictObject({
    op: z.literal('migrate'),
    group: z.number().int().nonnegative(),
    module: name,
    function: name,
    /** Which release's code holds `function`: the running one (`from`) or the incoming one (`to`). */
    release: z.enum(['from', 'to']),
    direction: z.enum(['up', 'down']),
    /** OTP's OldVsn on the way up; the version being returned to on the way down. */
    version: z.string(),
    extra: z.unknown(),
    timeout: z.number().int().positive(),
    /** Processes whose state is migrated; the module's own runtime-owned state is migrated too. */
    processes: z.array(name),
    reason,
  }),
  z.strictObject({ op: z.literal('resume'), group: z.number().int().nonnegative(), process: name, reason }),
  z.strictObject({ op: z.literal('start'), process: name, reason }),
  z.strictObject({ op: z.literal('restart'), process: name, reason }),
  z.strictObject({ op: z.literal('apply'), module: name, function: name, args: z.array(z.unknown()), reason }),
  z.strictObject({ op: z.literal('delete'), module: name, reason }),
  z.strictObject({ op: z.literal('purge'), module: name, mode: z.enum(['soft', 'brutal']), reason }),
  z.strictObject({ op: z.literal('commit'), version: z.string(), reason }),
]);

export const groupSchema = z.strictObject({
  id: z.number().int().nonnegative(),
  /** Modules switched in this group, dependencies first. */
  modules: z.array(name),
  /** Processes suspended for this group, in suspension order. */
  processes: z.array(name),
});

export const scriptSchema = z.strictObject({
  format: z.literal(SCRIPT_FORMAT),
  name,
  runtime: z.enum(['node', 'erlang', 'lua']),
  direction: z.enum(['up', 'down']),
  from: releaseRef,
  to: releaseRef,
  /** Which appup entry produced this script. */
  appup: z.strictObject({ file: z.string(), version: z.string(), section: z.enum(['up', 'down']), entry: z.number().int().nonnegative(), versions: z.string() }),
  groups: z.array(groupSchema),
  /** Index in `steps` of the `point_of_no_return` step. */
  pointOfNoReturn: z.number().int().nonnegative(),
  steps: z.array(stepSchema),
});

export type Step = z.infer<typeof stepSchema>;
export type StepOp = Step['op'];
export type SuspendGroup = z.infer<typeof groupSchema>;
export type RelupScript = z.infer<typeof scriptSchema>;
export type StepOf<K extends StepOp> = Extract<Step, { op: K }>;
