import semver from 'semver';
import type { Appup } from '../appup/appup-model.js';
import { matchEntry } from '../appup/match-entry.js';
import { error, hasErrors, type Diagnostic } from '../diagnostics/diagnostic.js';
import type { Release } from '../release/release-model.js';
import type { RelupScript } from '../script/script-schema.js';
import { plan } from './plan.js';

export interface PathInput {
  from: Release;
  to: Release;
  /** Every release that may serve as a stop on the way (the catalog). `from` and `to` need not be in it. */
  releases: Iterable<Release>;
  appups: ReadonlyMap<string, Appup>;
}

export interface PathResult {
  /** The versions visited, `from` first and `to` last; present only when every hop planned without errors. */
  path: string[] | undefined;
  /** One script per hop, in order; empty unless `path` is present. */
  hops: RelupScript[];
  diagnostics: Diagnostic[];
}

/**
 * The shortest chain of releases whose appups connect `from` to `to`, and one
 * script per hop. Pure, like `plan`.
 *
 * Rules (docs/planner.md, "Multi-hop paths"):
 * - A hop a → b exists when the newer release's appup has an entry for the
 *   older one in the right section (`up` going up, `down` going down): the
 *   same rule `plan` uses to pick an entry. Whether the hop then passes the
 *   planner's checks does not change the path: a broken appup entry is
 *   reported, never silently routed around (the user wrote that entry to be
 *   used, and would not expect a detour).
 * - Every hop goes the same direction as the whole transition (up paths only
 *   climb, down paths only descend), so stops lie strictly between `from`
 *   and `to`.
 * - Fewest hops wins. Among equally short paths, the one that gets closest to
 *   `to` first: at each stop, the candidate nearest to `to` in semver order.
 *   That is a total order on paths, so the choice never depends on the order
 *   releases were read in.
 * - A direct entry is a path of one hop, so it always wins; then the result is
 *   exactly `plan(from, to)`.
 */
export function findPath(input: PathInput): PathResult {
  const { from, to, appups } = input;
  const direct = plan({ from, to, appups });
  // A direct transition, or a failure that is not "no entry connects them" (same release, other application, …):
  // the single-hop answer is the whole answer.
  if (direct.script !== undefined || !direct.diagnostics.every((d) => d.severity !== 'error' || NO_DIRECT_ENTRY.has(d.code))) {
    return direct.script === undefined ? { path: undefined, hops: [], diagnostics: direct.diagnostics } : { path: [from.version, to.version], hops: [direct.script], diagnostics: direct.diagnostics };
  }

  const up = semver.gt(to.version, from.version);
  const stops = new Map<string, Release>();
  for (const r of input.releases) {
    if (r.name !== from.name || r.runtime !== from.runtime) continue;
    if (up ? semver.gt(r.version, from.version) && semver.lt(r.version, to.version) : semver.lt(r.version, from.version) && semver.gt(r.version, to.version)) stops.set(r.version, r);
  }
  // With no release in between there is no detour to look for: the direct answer says it all.
  if (stops.size === 0) return { path: undefined, hops: [], diagnostics: direct.diagnostics };
  const versions = chain(from.version, to.version, [...stops.keys()], appups, up);
  if (versions === undefined) {
    const hint = `write an appup entry connecting them (appups/${up ? to.version : from.version}.yaml), or a chain of releases whose appups connect them one hop at a time`;
    return {
      path: undefined,
      hops: [],
      diagnostics: [
        ...direct.diagnostics,
        error('plan-no-path', `no chain of releases connects ${from.version} to ${to.version}: no appup entry leads from one to the next all the way`, { file: to.manifestFile }, hint),
      ],
    };
  }

  const byVersion = new Map([...stops].concat([[from.version, from], [to.version, to]]));
  const hops: RelupScript[] = [];
  const diagnostics: Diagnostic[] = [];
  for (let i = 0; i + 1 < versions.length; i++) {
    const hop = plan({ from: byVersion.get(versions[i]!)!, to: byVersion.get(versions[i + 1]!)!, appups });
    diagnostics.push(...hop.diagnostics);
    if (hop.script !== undefined) hops.push(hop.script);
  }
  if (hasErrors(diagnostics) || hops.length !== versions.length - 1) return { path: undefined, hops: [], diagnostics };
  return { path: versions, hops, diagnostics };
}

/** The codes that mean "no appup entry connects these two directly" (and nothing worse). */
const NO_DIRECT_ENTRY: ReadonlySet<string> = new Set(['plan-no-appup', 'plan-no-matching-entry']);

/** Whether an appup entry leads from `a` to `b` directly (either direction), by the planner's own matching rule. */
export function connects(a: string, b: string, appups: ReadonlyMap<string, Appup>): boolean {
  const cmp = semver.compare(a, b);
  if (cmp === 0) return false;
  const up = cmp < 0;
  const newer = appups.get(up ? b : a);
  if (newer === undefined) return false;
  return matchEntry(up ? newer.up : newer.down, up ? a : b) !== undefined;
}

/**
 * Breadth-first search from `to` backwards gives every stop's distance to
 * `to`; then walk forward from `from`, at each step taking, among the stops
 * one hop closer, the one nearest to `to`. O(V²) entry matches.
 */
function chain(from: string, to: string, stops: string[], appups: ReadonlyMap<string, Appup>, up: boolean): string[] | undefined {
  const all = [from, ...stops, to];
  const dist = new Map<string, number>([[to, 0]]);
  let frontier = [to];
  while (frontier.length > 0 && !dist.has(from)) {
    const next: string[] = [];
    for (const v of all) {
      if (dist.has(v)) continue;
      if (frontier.some((w) => forward(v, w, up) && connects(v, w, appups))) {
        dist.set(v, dist.get(frontier[0]!)! + 1);
        next.push(v);
      }
    }
    frontier = next;
  }
  const total = dist.get(from);
  if (total === undefined) return undefined;
  const path = [from];
  let at = from;
  for (let d = total - 1; d >= 0; d--) {
    const candidates = all.filter((v) => dist.get(v) === d && forward(at, v, up) && connects(at, v, appups));
    // Nearest to `to` first: the highest version going up, the lowest going down.
    candidates.sort((a, b) => (up ? semver.compareBuild(b, a) : semver.compareBuild(a, b)));
    at = candidates[0]!;
    path.push(at);
  }
  return path;
}

function forward(a: string, b: string, up: boolean): boolean {
  return up ? semver.lt(a, b) : semver.gt(a, b);
}
