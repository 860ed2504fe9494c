import semver from 'semver';
import { z } from 'zod';
import { isReservedName, RESERVED_NAME_MESSAGE } from '../yaml/reserved-names.js';
import { DEFAULT_SUSPEND_TIMEOUT_MS } from './appup-model.js';
import { EXACT_VERSION, isVersionPattern } from './match-entry.js';

/**
 * The on-disk format of `appups/<version>.yaml`, as written by hand (before
 * normalisation). Strict objects everywhere: an unknown key is an error.
 * The same schemas validate files (parse-appup.ts) and generate
 * docs/schema/appup.schema.json, so descriptions here are what editors show.
 * Documented in docs/appup.md.
 */

/** Module and process names; the same rule as module names in release.yaml. */
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
/** Function names (migrations, apply): an identifier in JavaScript, Erlang and Lua alike. */
export const FUNCTION_NAME_PATTERN = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
/** Node's timers overflow above 2^31-1 ms and fire at once; refuse such a suspend timeout. */
export const MAX_SUSPEND_TIMEOUT_MS = 2_147_483_647;

export const OPERATIONS = ['load', 'update', 'add', 'delete', 'apply', 'restart'] as const;
export type Operation = (typeof OPERATIONS)[number];

export function isOperation(key: string): key is Operation {
  return (OPERATIONS as readonly string[]).includes(key);
}

// Reserved names (__proto__, constructor, toString, …) are refused as in release.yaml: see src/yaml/reserved-names.ts.
const moduleName = z
  .string()
  .regex(NAME_PATTERN, 'a module name starts with a letter or _ and holds letters, digits, _ . -')
  .refine((n) => !isReservedName(n), `a module name ${RESERVED_NAME_MESSAGE}`);
const processName = z
  .string()
  .regex(NAME_PATTERN, 'a process name starts with a letter or _ and holds letters, digits, _ . -')
  .refine((n) => !isReservedName(n), `a process name ${RESERVED_NAME_MESSAGE}`);
const functionName = z
  .string()
  .regex(FUNCTION_NAME_PATTERN, 'a function name is an identifier: letters, digits, _ and $, not starting with a digit');

const deps = z
  .array(moduleName)
  .describe(
    'Modules this one depends on; they are switched first and share its suspend group. Absent: the deps declared in release.yaml. [] : no dependencies.',
  );
const purge = z
  .enum(['soft', 'brutal'])
  .describe('What to do with the old code once switched: soft (default) waits until nothing runs it; brutal drops it at once.');

export const instructionSchemas = {
  load: z
    .strictObject({
      load: moduleName.describe('Swap a stateless module: switch to the new code, no suspension, no migration.'),
      deps: deps.optional(),
      purge: purge.optional(),
    })
    .describe('load: swap a module that holds no state.'),
  update: z
    .strictObject({
      update: moduleName.describe(
        'Swap a module whose processes or module state need care: suspend its processes, switch, migrate, resume.',
      ),
      migration: functionName
        .describe(
          "Function migrating state in this entry's direction, called as (state, info) => newState; must be listed in the module's exports in release.yaml.",
        )
        .optional(),
      extra: z.unknown().describe('Any value, handed to the migration as info.extra.').optional(),
      timeout: z
        .number()
        .int('timeout must be a whole number of milliseconds')
        .positive('timeout must be more than 0 ms')
        .max(MAX_SUSPEND_TIMEOUT_MS, `timeout must be at most ${MAX_SUSPEND_TIMEOUT_MS} ms`)
        .describe(`Milliseconds allowed to suspend each process, and for each migration call (default ${DEFAULT_SUSPEND_TIMEOUT_MS}).`)
        .optional(),
      mode: z
        .enum(['dynamic', 'static'])
        .describe(
          'dynamic (default): the down migration lives in the newer code and runs before the switch; static: it lives in the older code and runs after it.',
        )
        .optional(),
      deps: deps.optional(),
      purge: purge.optional(),
    })
    .describe('update: swap a module with state, migrating it.'),
  add: z
    .strictObject({
      add: moduleName.describe('Load a module that the release before did not have.'),
      deps: deps.optional(),
    })
    .describe('add: a new module.'),
  delete: z
    .strictObject({
      delete: moduleName.describe('Remove a module that the release after does not have.'),
      purge: purge.optional(),
    })
    .describe('delete: a module that goes away.'),
  apply: z
    .strictObject({
      apply: z
        .strictObject({
          module: moduleName.describe('Module holding the function.'),
          function: functionName.describe('Function to call.'),
          args: z.array(z.unknown()).describe('Arguments (default []).').optional(),
        })
        .describe('Call module.function(...args) at this point of the upgrade.'),
    })
    .describe('apply: call a function.'),
  restart: z
    .strictObject({
      restart: processName.describe('Stop the process and start it again with the new code and fresh state.'),
    })
    .describe('restart: restart a process.'),
} as const;

/** Options each operation accepts besides its own key, derived from the schemas. */
export const OPERATION_OPTIONS: Readonly<Record<Operation, readonly string[]>> = {
  load: optionsOf('load'),
  update: optionsOf('update'),
  add: optionsOf('add'),
  delete: optionsOf('delete'),
  apply: optionsOf('apply'),
  restart: optionsOf('restart'),
};

function optionsOf(op: Operation): string[] {
  return Object.keys(instructionSchemas[op].shape).filter((key) => key !== op);
}

export const APPLY_KEYS: readonly string[] = Object.keys(instructionSchemas.apply.shape.apply.shape);

/** One instruction: a map with exactly one operation key. */
export const instructionSchema = z.union([
  instructionSchemas.load,
  instructionSchemas.update,
  instructionSchemas.add,
  instructionSchemas.delete,
  instructionSchemas.apply,
  instructionSchemas.restart,
]);

export const appupVersionSchema = z
  .string()
  .regex(EXACT_VERSION, { message: 'must be a full semantic version such as 1.2.3 (no "v", no missing parts)', abort: true })
  .refine((v) => semver.valid(v) !== null, 'must be a valid semantic version (at most 256 characters, parts within safe integers)')
  .describe("The release this file describes; equals the file name's version (appups/1.2.3.yaml says 1.2.3).");

export const versionPatternSchema = z
  .string()
  .refine(isVersionPattern, 'must be an exact version (1.2.2) or a semver range (">=1.2.0 <1.2.3", "^1.1.0", "1.1.x")');

export const TOP_KEYS = ['version', 'up', 'down'] as const;
export const ENTRY_KEYS = { up: ['from', 'instructions'], down: ['to', 'instructions'] } as const;

/**
 * The file's schema with `item` as the schema of one instruction. parse-appup
 * checks the frame with `z.unknown()` items and each instruction on its own,
 * so that a bad instruction gets a precise error instead of a union's.
 */
export function appupSchemaWith<I extends z.ZodType>(item: I) {
  const instructions = z.array(item).describe('Steps for this transition; each a map with one operation key.');
  return z.strictObject({
    version: appupVersionSchema,
    up: z
      .array(
        z.strictObject({
          from: versionPatternSchema.describe(
            'Version(s) this entry upgrades from: an exact version or a semver range, all older than `version`.',
          ),
          instructions,
        }),
      )
      .describe('How to reach `version` from older versions. Entries are tried in order; the first match wins.')
      .optional(),
    down: z
      .array(
        z.strictObject({
          to: versionPatternSchema.describe(
            'Version(s) this entry goes back to: an exact version or a semver range, all older than `version`.',
          ),
          instructions,
        }),
      )
      .describe('How to go back from `version` to older versions. Entries are tried in order; the first match wins.')
      .optional(),
  });
}

/** The complete raw format: what docs/schema/appup.schema.json describes. */
export const appupSchema = appupSchemaWith(instructionSchema);
/** The frame only: instructions are left for parse-appup to check one by one. */
export const appupFrameSchema = appupSchemaWith(z.unknown());
