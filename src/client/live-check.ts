import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { error, warning, type Diagnostic } from '../diagnostics/diagnostic.js';
import { UserError } from '../errors/errors.js';
import type { Project } from '../project/load-project.js';
import { statesSchema } from '../cli/read-states-file.js';
import { startScratchNode } from './scratch-node.js';
import { upgrade } from './upgrade.js';

/**
 * What the scratch node holds before the round trip, so migrations see real
 * state: states to boot with (captured from a running node by `relup status
 * --states`), then calls and invokes. `ignore` names state paths whose
 * changes are expected (counters, timestamps): `modules.presence.ticks`,
 * `processes.*.lastSeen` (`*` matches one segment; a path covers what is under it).
 */
export const fixtureSchema = z.strictObject({
  /** The release the states were captured on; they are loaded only into a scratch node of that release. */
  release: z.string().optional(),
  states: statesSchema.optional(),
  calls: z.array(z.strictObject({ process: z.string(), message: z.unknown() })).default([]),
  invokes: z.array(z.strictObject({ module: z.string(), function: z.string(), args: z.array(z.unknown()).default([]) })).default([]),
  ignore: z.array(z.string().min(1)).default([]),
});
export type Fixture = z.infer<typeof fixtureSchema>;

export interface LiveTransition {
  from: string;
  to: string;
  ok: boolean;
  up: string;
  down: string;
  differences: string[];
  /** What the compared state was: only what the release's code initialises, or a fixture's states and traffic too. */
  stateChecked: 'initial' | 'fixture';
  /** Differences under the fixture's `ignore` paths, not counted. */
  ignored: number;
  suspensionMs: { up: (number | null)[]; down: (number | null)[] };
}

export async function readFixture(path: string): Promise<Fixture> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new UserError(`cannot read fixture ${path}: ${e.message}`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`fixture ${path} is not JSON: ${(e as Error).message}`, 'capture one from a running node with relup status --target <node> --states > fixture.json, or write { "calls": [{ "process": "…", "message": … }], "invokes": [{ "module": "…", "function": "…", "args": [] }], "ignore": [] } (docs/planner.md)');
  }
  const parsed = fixtureSchema.safeParse(json);
  if (!parsed.success) throw new UserError(`fixture ${path} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/**
 * The live part of the CI dry run: for each declared transition, a scratch
 * node on the older release, the fixture's traffic, the upgrade, the
 * downgrade, and a comparison of every module and process state before and
 * after the round trip. A down path that loses data shows up here.
 */
export async function liveCheck(project: Project, pairs: readonly [string, string][], fixture: Fixture | undefined): Promise<{ transitions: LiveTransition[]; diagnostics: Diagnostic[] }> {
  const transitions: LiveTransition[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const [older, newer] of pairs) {
    const source = project.catalog.sources.get(older);
    if (source === undefined) continue;
    // Timers would change state during the round trip: a scratch node stops time
    // for its node-owned timers, whatever the app's own settings call them.
    const fitting = fixture?.states !== undefined && (fixture.release === undefined || fixture.release === older) ? fixture.states : undefined;
    // A Lua node (Silly) has no Unix-socket listener, and its state lives in module locals: it cannot boot from captured states.
    const lua = project.catalog.releases.get(older)?.runtime === 'lua';
    const states = lua ? undefined : fitting;
    if (lua && fitting !== undefined) {
      diagnostics.push(warning('live-fixture-states-unsupported', `a Lua node cannot boot from captured states, so the scratch node on ${older} started from its initial state (the fixture's calls and invokes still run)`, {}, 'put the state the round trip should carry in the fixture as calls and invokes'));
    }
    const node = await startScratchNode(source.path, {}, { pauseTimers: true, tcp: lua, ...(states === undefined ? {} : { states }) });
    const connection = await node.connect();
    const traffic = (fixture?.calls.length ?? 0) + (fixture?.invokes.length ?? 0);
    const stateChecked = states !== undefined || traffic > 0 ? 'fixture' : 'initial';
    let ignored = 0;
    try {
      for (const c of fixture?.calls ?? []) await connection.request('call', c);
      for (const i of fixture?.invokes ?? []) await connection.request('invoke', i);
      const before = await connection.request('states', {});
      const common = { connection, catalog: project.catalog, appups: project.appups, releasesDir: project.releasesDir, dryRun: false, permanent: true };
      const up = await upgrade({ ...common, to: newer });
      const upStatus = up.kind === 'applied' ? up.outcome.status : up.kind;
      let downStatus = 'not run';
      let differences: string[] = [];
      let suspension = { up: [] as (number | null)[], down: [] as (number | null)[] };
      if (up.kind === 'applied') suspension.up = up.outcome.groups.map((g) => g.suspensionMs);
      if (up.kind === 'applied' && up.outcome.status === 'committed') {
        const down = await upgrade({ ...common, to: older });
        downStatus = down.kind === 'applied' ? down.outcome.status : down.kind;
        if (down.kind === 'applied') suspension = { ...suspension, down: down.outcome.groups.map((g) => g.suspensionMs) };
        if (down.kind === 'applied' && down.outcome.status === 'committed') {
          const after = await connection.request('states', {});
          const all = diffPaths(before, after);
          const kept = all.filter((d) => !(fixture?.ignore ?? []).some((pattern) => pathMatches(pattern, d.path)));
          ignored = all.length - kept.length;
          differences = kept.map((d) => d.text);
        } else {
          diagnostics.push(error('live-down-failed', `downgrade ${newer} → ${older} on a scratch node: ${down.kind === 'applied' ? down.outcome.message : down.kind}`, {}, 'run relup apply on a test node with --show-plan to see the failing step'));
        }
      } else {
        diagnostics.push(error('live-up-failed', `upgrade ${older} → ${newer} on a scratch node: ${up.kind === 'applied' ? up.outcome.message : up.kind}`, {}, 'run relup apply on a test node with --show-plan to see the failing step'));
      }
      if (differences.length > 0) {
        diagnostics.push(
          error('live-roundtrip-state-differs', `state after ${older} → ${newer} → ${older} differs from before: ${differences.slice(0, 8).join('; ')}${differences.length > 8 ? ` (+${differences.length - 8} more)` : ''}`, {}, `a migration loses or invents data: check the up and down migrations in appups/${newer}.yaml`),
        );
      }
      if (stateChecked === 'initial' && downStatus === 'committed') {
        diagnostics.push(
          warning(
            'live-initial-state-only',
            `the round trip ${older} → ${newer} → ${older} was checked on the initial state only: a down migration that loses data would pass`,
            {},
            `capture real state from a running ${older} node with: relup status --target <node> --states > fixture.json, then: relup check --live --fixture fixture.json (docs/planner.md)`,
          ),
        );
      }
      if (fixture?.states !== undefined && states === undefined && !lua) {
        diagnostics.push(warning('live-fixture-release-differs', `the fixture's states were captured on ${fixture.release ?? '?'}, so the scratch node on ${older} started from its initial state`, {}, `capture states from a ${older} node, or keep one fixture per release`));
      }
      transitions.push({ from: older, to: newer, ok: upStatus === 'committed' && downStatus === 'committed' && differences.length === 0, up: upStatus, down: downStatus, differences, stateChecked, ignored, suspensionMs: suspension });
    } finally {
      connection.close();
      await node.stop();
    }
  }
  return { transitions, diagnostics };
}

/** Paths where two JSON values differ, with both values. */
export function diff(a: unknown, b: unknown): string[] {
  return diffPaths(a, b).map((d) => d.text);
}

function diffPaths(a: unknown, b: unknown, path: string[] = []): { path: string[]; text: string }[] {
  if (Object.is(a, b)) return [];
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffPaths((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], [...path, k]));
  }
  return [{ path, text: `${path.join('.') || '(root)'}: ${show(a)} → ${show(b)}` }];
}

/** `modules.presence.ticks` covers that path and everything under it; `*` matches any one segment. */
export function pathMatches(pattern: string, path: readonly string[]): boolean {
  const parts = pattern.split('.');
  return parts.length <= path.length && parts.every((p, i) => p === '*' || p === path[i]);
}

function show(v: unknown): string {
  return v === undefined ? '(missing)' : JSON.stringify(v);
}
