import semver from 'semver';
import type { Diagnostic } from '../diagnostics/diagnostic.js';
import { findPath } from '../planner/find-path.js';
import type { RelupScript } from '../script/script-schema.js';
import { remoteStatus, upgrade, type RemoteOutcome, type RemoteStatus, type UpgradeRequest, type UpgradeResult } from './upgrade.js';

/** One hop of a multi-hop apply, as it ended. */
export interface HopOutcome {
  from: string;
  to: string;
  /** `undefined` when the hop could not even be sent (the plan failed against what the node runs then). */
  outcome: RemoteOutcome | undefined;
  script: RelupScript | undefined;
  diagnostics: Diagnostic[];
}

export interface PathUpgrade {
  kind: 'path';
  status: RemoteStatus;
  /** Every version on the way, the node's first. */
  path: string[];
  /** The hops tried, in order; the last one is the one that failed when `ok` is false. */
  hops: HopOutcome[];
  ok: boolean;
  dryRun: boolean;
  /** The release the node runs at the end: the last one a hop committed. */
  version: string;
}

export interface PathRequest extends UpgradeRequest {
  /** Called when a hop starts, before its plan is sent. */
  onHop?: (index: number, count: number, from: string, to: string) => void;
  /** Called when a hop ends (committed, refused, rolled back, …). */
  onHopDone?: (hop: HopOutcome, index: number, count: number) => void;
}

/**
 * `relup apply` when no appup entry connects the node's release to the target
 * but a chain does: each hop is an ordinary upgrade with its own point of no
 * return, applied in order. A failed hop is rolled back in place by the node
 * (as every upgrade is), and the next hops are not tried: the node stays on
 * the last release a hop committed, and the result says which.
 *
 * Everything else (a direct entry, no path at all, a noop) is exactly
 * `upgrade()`, so a single-hop apply behaves as it always did.
 */
export async function upgradeAlongPath(req: PathRequest): Promise<UpgradeResult | PathUpgrade> {
  const status = await remoteStatus(req.connection);
  const from = req.catalog.releases.get(status.version);
  const toVersion = req.to ?? [...req.catalog.releases.keys()].sort(semver.rcompare)[0];
  const to = toVersion === undefined ? undefined : req.catalog.releases.get(toVersion);
  // Only a release the catalog holds byte for byte can start a path; anything else gets upgrade()'s own error.
  if (from === undefined || to === undefined || from.hash !== status.hash) return upgrade(req);
  const route = findPath({ from, to, releases: req.catalog.releases.values(), appups: req.appups });
  if (route.path === undefined || route.hops.length < 2) return upgrade(req);

  const path = route.path;
  const count = path.length - 1;
  const hops: HopOutcome[] = [];
  let version = status.version;
  // A dry run can only check the first hop on the node: the later hops start from releases it does not run yet.
  const last = req.dryRun ? 1 : count;
  for (let i = 0; i < last; i++) {
    req.onHop?.(i, count, path[i]!, path[i + 1]!);
    // Only the last hop's release is soaked: the ones before it are passed through, not watched.
    const { soakMs, ...rest } = req;
    const result = await upgrade({ ...rest, to: path[i + 1], ...(soakMs !== undefined && i === count - 1 ? { soakMs } : {}) });
    const hop: HopOutcome =
      result.kind === 'applied'
        ? { from: path[i]!, to: path[i + 1]!, outcome: result.outcome, script: result.script, diagnostics: result.diagnostics }
        : { from: path[i]!, to: path[i + 1]!, outcome: undefined, script: undefined, diagnostics: result.kind === 'plan-failed' ? result.diagnostics : [] };
    hops.push(hop);
    req.onHopDone?.(hop, i, count);
    if (result.kind === 'applied' && result.outcome.status === 'committed') version = result.outcome.version;
    // Stop at the first hop that did not commit: the node rolled it back in place, and is on `version`.
    if (!(result.kind === 'applied' && result.outcome.ok)) return { kind: 'path', status, path, hops, ok: false, dryRun: req.dryRun, version };
  }
  return { kind: 'path', status, path, hops, ok: true, dryRun: req.dryRun, version };
}
