import { readFile } from 'node:fs/promises';
import semver from 'semver';
import type { Appup } from '../appup/appup-model.js';
import { hasErrors, type Diagnostic } from '../diagnostics/diagnostic.js';
import { NodeError, UserError } from '../errors/errors.js';
import { plan } from '../planner/plan.js';
import { packedBundleBytes } from '../runtime/runtime-driver.js';
import { findRelease, type Catalog } from '../release/release-catalog.js';
import { join } from 'node:path';
import { readBundleBytes, readReleaseFiles } from '../release/release-files.js';
import { bundleFileName } from '../release/pack-release.js';
import { verifyFiles } from '../release/verify-release.js';
import type { Release } from '../release/release-model.js';
import type { RelupScript } from '../script/script-schema.js';
import type { Connection } from './connection.js';

/** What a node reports about itself (the fields the client relies on). */
export interface RemoteStatus {
  name: string;
  version: string;
  hash: string;
  permanent: string;
  previous: string[];
  upgrading: boolean;
}

/** The node's answer to `apply` (docs/protocol.md); only the fields the client relies on are typed. */
export interface RemoteOutcome {
  status: 'committed' | 'noop' | 'dry-run' | 'refused' | 'rolled-back' | 'rollback-failed';
  ok: boolean;
  message: string;
  version: string;
  permanent?: string;
  failure?: { code: string; message: string; step?: { index: number; op: string; target: string } };
  rollback?: { complete: boolean; undone: number; problems: { message: string; step?: { index: number; op: string; target: string } }[] };
  groups: { id: number; modules: string[]; processes: string[]; suspensionMs: number | null; migrated: { modules: string[]; processes: string[] } }[];
  absent: Record<string, string[]>;
  holdMs: number | null;
  journal: { index: number; op: string; target: string; status: string; durationMs: number }[];
  durationMs: number;
}

export interface UpgradeRequest {
  connection: Connection;
  catalog: Catalog;
  appups: ReadonlyMap<string, Appup>;
  /** Where to look for a bundle file of the target release (absolute). */
  releasesDir?: string;
  /** The version to move to; undefined: the newest release in the catalog (apply) — rollback passes its own. */
  to: string | undefined;
  dryRun: boolean;
  permanent: boolean;
  deadlineMs?: number;
  /** Put the new release in soak for this long (needs permanent: false): the node shows it in status until made permanent. */
  soakMs?: number;
  onEvent?: (event: Record<string, unknown>) => void;
  /** Called once the plan is known, before anything is sent. */
  onPlan?: (script: RelupScript) => void;
}

export type UpgradeResult =
  | { kind: 'noop'; status: RemoteStatus; message: string }
  | { kind: 'plan-failed'; status: RemoteStatus; diagnostics: Diagnostic[] }
  | { kind: 'applied'; status: RemoteStatus; script: RelupScript; outcome: RemoteOutcome; diagnostics: Diagnostic[] };

export async function remoteStatus(connection: Connection): Promise<RemoteStatus> {
  return (await connection.request('status', {})) as RemoteStatus;
}

/**
 * Plan from what the node actually runs to `to`, and have the node apply it.
 * The node's running release must be the one in the local catalog, byte for
 * byte: a plan computed against other code would be a lie.
 */
export async function upgrade(req: UpgradeRequest): Promise<UpgradeResult> {
  const status = await remoteStatus(req.connection);
  // A release that is on disk but broken is a finding, reported at its release.yaml, not "not found".
  const brokenFrom = req.catalog.broken?.get(status.version);
  if (brokenFrom !== undefined && !req.catalog.releases.has(status.version)) return { kind: 'plan-failed', status, diagnostics: brokenFrom };
  const from = localRelease(req.catalog, status);
  const toVersion = req.to ?? newest(req.catalog);
  const found = findRelease(req.catalog, toVersion);
  if (found.value === undefined) {
    if (!found.diagnostics.some((d) => d.code === 'release-not-found')) return { kind: 'plan-failed', status, diagnostics: found.diagnostics };
    throw new UserError(found.diagnostics[0]?.message ?? `release ${toVersion} not found`, found.diagnostics[0]?.hint);
  }
  const to = found.value;
  if (to.version === status.version && to.hash === status.hash) {
    return { kind: 'noop', status, message: `${status.name} already runs ${status.version}; nothing to do` };
  }
  const result = plan({ from, to, appups: req.appups });
  if (result.script === undefined || hasErrors(result.diagnostics)) return { kind: 'plan-failed', status, diagnostics: result.diagnostics };
  req.onPlan?.(result.script);
  const bundle = await bundleOf(req.catalog, to, req.releasesDir);
  const outcome = (await req.connection.request(
    'apply',
    { script: result.script, bundle: bundle.toString('base64'), dryRun: req.dryRun, permanent: req.permanent, ...(req.deadlineMs === undefined ? {} : { deadlineMs: req.deadlineMs }), ...(req.soakMs === undefined ? {} : { soakMs: req.soakMs }) },
    req.onEvent,
  )) as RemoteOutcome;
  return { kind: 'applied', status, script: result.script, outcome, diagnostics: result.diagnostics };
}

function localRelease(catalog: Catalog, status: RemoteStatus): Release {
  const local = catalog.releases.get(status.version);
  if (local === undefined) {
    throw new NodeError('unknown-release', `the node runs ${status.name} ${status.version}, which is not in ${catalog.dir}`, `put release ${status.version} (directory or bundle) in ${catalog.dir} so relup can plan from it`);
  }
  if (local.hash !== status.hash) {
    throw new NodeError('release-mismatch', `the node runs ${status.name} ${status.version} with release hash ${status.hash.slice(0, 12)}, but ${local.origin} hashes to ${local.hash.slice(0, 12)}`, 'the local copy was changed after it was deployed; restore it (a rebuilt release is a new version)');
  }
  return local;
}

function newest(catalog: Catalog): string {
  const versions = [...catalog.releases.keys()].sort(semver.rcompare);
  if (versions[0] === undefined) throw new UserError(`no releases in ${catalog.dir}`, 'pass --releases or add releases');
  return versions[0];
}

/**
 * The bundle to upload: a bundle file of this exact release when there is one
 * (it may carry a signature the node requires), else packed in memory from
 * the directory.
 */
async function bundleOf(catalog: Catalog, release: Release, releasesDir: string | undefined): Promise<Buffer> {
  const source = catalog.sources.get(release.version);
  if (source?.kind === 'bundle') return readFile(source.path);
  if (releasesDir !== undefined) {
    const bytes = await readFile(join(releasesDir, bundleFileName(release))).catch(() => undefined);
    const read = bytes === undefined ? undefined : await readBundleBytes(bytes);
    if (bytes !== undefined && read?.value !== undefined && verifyFiles(read.value).release?.hash === release.hash) return bytes;
  }
  const read = await readReleaseFiles(source?.path ?? release.origin);
  if (read.value === undefined) throw new UserError(`cannot read ${release.origin}`, read.diagnostics[0]?.message);
  // With the runtime's build artifacts (an Erlang release's .beam files), as `relup release pack` makes it.
  return packedBundleBytes(release, read.value.files);
}
