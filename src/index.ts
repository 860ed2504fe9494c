/**
 * relup's library API: the runtime-neutral core, usable without the CLI.
 * (The Node.js runtime for embedding is `relup/node`.)
 */
export { plan } from './planner/plan.js';
export type { PlanInput, PlanResult } from './planner/plan-input.js';
export { suspendGroups } from './planner/suspend-groups.js';
export { scriptSchema, SCRIPT_FORMAT, type RelupScript, type Step, type SuspendGroup } from './script/script-schema.js';
export { serializeScript, parseScript } from './script/serialize-script.js';
export { renderScript } from './script/render-script.js';
export { parseAppup } from './appup/parse-appup.js';
export { loadAppups } from './appup/load-appups.js';
export { matchEntry, entryMatches } from './appup/match-entry.js';
export type { Appup, AppupEntry, Instruction } from './appup/appup-model.js';
export { readRelease } from './release/read-release.js';
export { loadCatalog, findRelease, type Catalog } from './release/release-catalog.js';
export { packRelease } from './release/pack-release.js';
export { verifyRelease } from './release/verify-release.js';
export { unpackBundle } from './release/unpack-bundle.js';
export type { Release, ReleaseModule, ReleaseProcess, RuntimeKind } from './release/release-model.js';
export { checkProject } from './project/check-project.js';
export { loadProject } from './project/load-project.js';
export type { Diagnostic, Severity } from './diagnostics/diagnostic.js';
export { formatDiagnostic } from './diagnostics/format-diagnostic.js';
export { UserError, NodeError, InternalError } from './errors/errors.js';
