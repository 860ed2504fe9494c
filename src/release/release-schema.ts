import { z } from 'zod';
import { isReservedName, RESERVED_NAME_MESSAGE } from '../yaml/reserved-names.js';
import { RUNTIMES } from './release-model.js';

/** The on-disk format of `releases/<version>/release.yaml`. Documented in docs/release.md. */
export const MODULE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
export const moduleName = z
  .string()
  .regex(MODULE_NAME, 'a module name starts with a letter or _ and holds letters, digits, _ . -')
  .refine((n) => !isReservedName(n), `a module name ${RESERVED_NAME_MESSAGE}`);
const processName = z
  .string()
  .regex(MODULE_NAME, 'a process name starts with a letter or _ and holds letters, digits, _ . -')
  .refine((n) => !isReservedName(n), `a process name ${RESERVED_NAME_MESSAGE}`);

/** A relative, `/`-separated path that stays inside the release. */
export const releasePath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !/^[A-Za-z]:/.test(p) && !p.includes('\\'), 'must be a relative path with / separators')
  .refine((p) => p.split('/').every((part) => part !== '..' && part !== '' && part !== '.'), 'must not contain "..", "." or empty segments');

export const releaseModuleSchema = z.strictObject({
  file: releasePath,
  deps: z.array(moduleName).optional(),
  // Object.prototype names other than these may be declared: the runtime checks exports as own properties.
  exports: z.array(z.string().min(1).refine((n) => !['__proto__', 'constructor', 'prototype'].includes(n), 'an export cannot be named __proto__, constructor or prototype')).optional(),
});

export const releaseProcessSchema = z.strictObject({
  module: moduleName,
  args: z.unknown().optional(),
  // OTP's child restart types; the runtime applies them (docs/runtime-node.md, "Crashes and restarts").
  restart: z.enum(['permanent', 'transient', 'temporary']).optional(),
  // OTP's supervisor intensity: more than maxRestarts restarts within periodMs and the process stays down.
  intensity: z.strictObject({ maxRestarts: z.number().int().min(0).max(1000), periodMs: z.number().int().min(1).max(86_400_000) }).optional(),
});

export const releaseManifestSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, . _ -'),
  version: z.string().min(1),
  runtime: z.enum(RUNTIMES),
  description: z.string().optional(),
  start: z.record(z.string(), z.unknown()).optional(),
  modules: z.record(moduleName, releaseModuleSchema),
  processes: z.record(processName, releaseProcessSchema).optional(),
  // The node's base: packages loaded once by the runtime's own loader, never hot-swapped (docs/release.md, "packages").
  packages: z.array(z.string().regex(/^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$/, 'a package name as npm spells it (ws, @scope/name)')).optional(),
});

export type ReleaseManifest = z.infer<typeof releaseManifestSchema>;
export const RELEASE_MANIFEST_FILE = 'release.yaml';
