import semver from 'semver';
import type { Instruction } from '../appup/appup-model.js';
import { matchEntry } from '../appup/match-entry.js';
import { error, hasErrors, warning, type Diagnostic } from '../diagnostics/diagnostic.js';
import type { Release, ReleaseModule } from '../release/release-model.js';
import { SCRIPT_FORMAT, type RelupScript } from '../script/script-schema.js';
import { buildSteps } from './build-steps.js';
import { checkBase } from './check-base.js';
import { checkInstructions, type Direction } from './check-instructions.js';
import type { PlanInput, PlanResult } from './plan-input.js';
import { suspendGroups } from './suspend-groups.js';

/**
 * The planner: `(from, to, appups) → relup script | diagnostics`. Pure: no I/O,
 * no clock, no randomness; the same input always gives the same script.
 */
export function plan(input: PlanInput): PlanResult {
  const { from, to } = input;
  const identity = checkIdentity(from, to);
  if (identity.length > 0) return { script: undefined, diagnostics: identity };
  const base = checkBase(from, to);
  if (base.length > 0) return { script: undefined, diagnostics: base };

  const direction: Direction = semver.gt(to.version, from.version) ? 'up' : 'down';
  const newer = direction === 'up' ? to : from;
  const older = direction === 'up' ? from : to;

  const appup = input.appups.get(newer.version);
  if (appup === undefined) {
    return {
      script: undefined,
      diagnostics: [error('plan-no-appup', `no appup describes version ${newer.version}`, { file: newer.manifestFile }, `create appups/${newer.version}.yaml with ${direction === 'up' ? `an up entry "from: ${older.version}"` : `a down entry "to: ${older.version}"`} (see docs/appup.md)`)],
    };
  }
  const entries = direction === 'up' ? appup.up : appup.down;
  const match = matchEntry(entries, older.version);
  if (match === undefined) {
    const patterns = entries.map((e) => e.versions);
    return {
      script: undefined,
      diagnostics: [
        error(
          'plan-no-matching-entry',
          `no ${direction} entry of ${appup.file} matches ${older.version}${patterns.length > 0 ? ` (entries: ${patterns.join(', ')})` : ''}`,
          { file: appup.file, line: appup.line },
          `add a "${direction}" entry with "${direction === 'up' ? 'from' : 'to'}: ${older.version}" to ${appup.file}`,
        ),
      ],
    };
  }

  const fromModules = byName(from.modules);
  const toModules = byName(to.modules);
  const checked = checkInstructions({ from, to, direction, entry: match.entry, appupFile: appup.file, fromModules, toModules });
  const diagnostics = [...checked.diagnostics];

  const deps = new Map([...checked.switched.values()].map((ins) => [ins.module, effectiveDeps(ins, toModules, checked.switched)]));
  const grouping = suspendGroups({ nodes: [...checked.switched.keys()], deps });
  for (const cycle of grouping.cycles) {
    diagnostics.push(
      warning('plan-dep-cycle', `modules ${cycle.join(', ')} depend on each other in a cycle; they switch in name order`, { file: appup.file, line: match.entry.line }, 'break the cycle in deps if one of them must switch first'),
    );
  }
  if (hasErrors(diagnostics)) return { script: undefined, diagnostics };

  const { steps, groups, pointOfNoReturn } = buildSteps({ from, to, direction, groups: grouping.groups, deps, checked });
  const script: RelupScript = {
    format: SCRIPT_FORMAT,
    name: to.name,
    runtime: to.runtime,
    direction,
    from: { version: from.version, hash: from.hash },
    to: { version: to.version, hash: to.hash },
    appup: { file: appup.file, version: appup.version, section: direction, entry: match.index, versions: match.entry.versions },
    groups,
    pointOfNoReturn,
    steps,
  };
  return { script, diagnostics };
}

function checkIdentity(from: Release, to: Release): Diagnostic[] {
  const out: Diagnostic[] = [];
  if (from.name !== to.name) {
    out.push(error('plan-name-mismatch', `release ${from.version} is "${from.name}" but ${to.version} is "${to.name}"`, { file: to.manifestFile }, 'plan between releases of the same application'));
  }
  if (from.runtime !== to.runtime) {
    out.push(error('plan-runtime-mismatch', `release ${from.version} runs on ${from.runtime} but ${to.version} on ${to.runtime}`, { file: to.manifestFile }, 'a runtime change needs a restart, not a hot upgrade'));
  }
  if (semver.eq(from.version, to.version)) {
    out.push(
      from.hash === to.hash
        ? error('plan-same-release', `both sides are release ${from.version}: nothing to plan`, { file: to.manifestFile }, 'name two different versions')
        : error('plan-version-unchanged', `${from.origin} and ${to.origin} both claim version ${from.version} but their content differs`, { file: to.manifestFile }, 'a rebuilt release is a new version: bump "version" in release.yaml'),
    );
  }
  return out;
}

/** Declared deps win; otherwise the incoming release's manifest deps, limited to modules that switch too. */
function effectiveDeps(ins: Instruction & { op: 'load' | 'update' | 'add' }, toModules: ReadonlyMap<string, ReleaseModule>, switched: ReadonlyMap<string, unknown>): string[] {
  if (ins.deps !== undefined) return ins.deps.filter((d) => switched.has(d) && d !== ins.module);
  return (toModules.get(ins.module)?.deps ?? []).filter((d) => switched.has(d));
}

function byName(modules: readonly ReleaseModule[]): Map<string, ReleaseModule> {
  return new Map(modules.map((m) => [m.name, m]));
}

