import type { Release, ReleaseModule } from '../release/release-model.js';

/**
 * `relup appup draft`: a first appup for `to`, written from the differences
 * between two releases. Pure: releases in, YAML text out.
 *
 * What it decides, and what it leaves to a person:
 * - a changed module that holds no state and runs no process → `load`;
 * - a changed module that holds state or runs a process → `update` with a
 *   migration **stub name** in each direction. It never writes a migration
 *   body: only a person knows whether and how the state changes shape. Until
 *   the function exists (exported, and listed in release.yaml), the planner's
 *   `plan-migration-missing` keeps `relup check` failing, which is the point;
 * - a new module → `add`, a removed one → `delete`;
 * - a process that runs a different module now → `restart`;
 * - `deps` written out from release.yaml (limited to modules the entry
 *   switches, as the appup rules require);
 * - the down section mirrors the up one (`add` ↔ `delete`, the same
 *   loads and updates, deps from the older release's release.yaml).
 * Whatever needs a human is marked with a `# DECIDE:` comment.
 */

/** Whether a module holds state the runtime keeps across versions: runtime knowledge, so the caller says. */
export type StateOf = (module: ReleaseModule, release: Release) => 'stateful' | 'stateless' | 'unknown';

export interface DraftInput {
  from: Release;
  to: Release;
  stateOf: StateOf;
  /** The command line that wrote it, for the header comment. */
  command: string;
}

export interface MigrationStub {
  module: string;
  function: string;
  direction: 'up' | 'down';
  /** The release whose module must export it (both live in the newer release: up, and down in `dynamic` mode). */
  release: string;
}

export interface Draft {
  text: string;
  stubs: MigrationStub[];
  counts: { load: number; update: number; add: number; delete: number; restart: number; unchanged: number };
}

type Line = string;

export function draftAppup(input: DraftInput): Draft {
  const { from, to } = input;
  const fromMods = new Map(from.modules.map((m) => [m.name, m]));
  const toMods = new Map(to.modules.map((m) => [m.name, m]));
  const names = [...new Set([...fromMods.keys(), ...toMods.keys()])].sort(byCodeUnit);
  const processesOf = (release: Release, module: string) => release.processes.filter((p) => p.module === module).map((p) => p.name);

  interface Item {
    module: string;
    op: 'load' | 'update' | 'add' | 'delete';
    why: string;
    decide?: string;
  }
  const items: Item[] = [];
  const counts = { load: 0, update: 0, add: 0, delete: 0, restart: 0, unchanged: 0 };
  for (const name of names) {
    const a = fromMods.get(name);
    const b = toMods.get(name);
    if (a === undefined && b !== undefined) items.push({ module: name, op: 'add', why: 'new in this release' });
    else if (a !== undefined && b === undefined) items.push({ module: name, op: 'delete', why: `gone since ${from.version}` });
    else if (a !== undefined && b !== undefined) {
      if (a.hash === b.hash) {
        counts.unchanged++;
        continue;
      }
      const procs = [...new Set([...processesOf(from, name), ...processesOf(to, name)])].sort(byCodeUnit);
      const state = procs.length > 0 ? 'stateful' : worst(input.stateOf(a, from), input.stateOf(b, to));
      if (state === 'stateless') items.push({ module: name, op: 'load', why: 'changed; holds no state and runs no process' });
      else {
        const holds = procs.length > 0 ? `runs process${procs.length > 1 ? 'es' : ''} ${procs.join(', ')}` : state === 'stateful' ? 'holds module state' : 'may hold state (its exports are not declared, so relup cannot tell)';
        items.push({
          module: name,
          op: 'update',
          why: `changed; ${holds}`,
          decide: 'if its state changes shape, write the migration named below (one per direction); if not, delete the `migration:` lines',
        });
      }
    }
  }
  for (const it of items) counts[it.op]++;
  const restarts = to.processes.filter((p) => {
    const before = from.processes.find((q) => q.name === p.name);
    return before !== undefined && before.module !== p.module;
  });
  counts.restart = restarts.length;

  const stubs: MigrationStub[] = [];
  const token = (v: string) => v.replace(/[^A-Za-z0-9]/g, '_');
  const upStub = `upgradeFrom_${token(from.version)}`;
  const downStub = `downgradeTo_${token(from.version)}`;

  const section = (direction: 'up' | 'down'): Line[] => {
    // Up: instructions as computed, deps from the new release. Down: mirrored, deps from the old one.
    const depsFrom = direction === 'up' ? toMods : fromMods;
    const mirrored = items.map((it) => (direction === 'up' ? it : { ...it, op: it.op === 'add' ? ('delete' as const) : it.op === 'delete' ? ('add' as const) : it.op }));
    const switched = new Set(mirrored.filter((it) => it.op !== 'delete').map((it) => it.module));
    const out: Line[] = [];
    out.push(direction === 'up' ? `  - from: ${scalar(from.version)}` : `  - to: ${scalar(from.version)}`);
    out.push(mirrored.length + restarts.length === 0 ? '    instructions: []' : '    instructions:');
    for (const it of mirrored) {
      const why = direction === 'up' ? it.why : it.op === 'add' ? `back in ${from.version}` : it.op === 'delete' ? `not in ${from.version}` : it.why;
      if (it.decide !== undefined) out.push(`      # DECIDE ${it.module} (${why}):`, `      #   ${it.decide}.`);
      else out.push(`      # ${it.module}: ${why}`);
      out.push(`      - ${it.op}: ${scalar(it.module)}`);
      if (it.op === 'update') {
        const fn = direction === 'up' ? upStub : downStub;
        out.push(`        migration: ${fn}   # stub: export ${it.module}.${fn}(state, info) from ${to.version}'s ${it.module}`);
        stubs.push({ module: it.module, function: fn, direction, release: to.version });
      }
      if (it.op !== 'delete') {
        const deps = (depsFrom.get(it.module)?.deps ?? []).filter((d) => switched.has(d) && d !== it.module);
        if (deps.length > 0) out.push(`        deps: [${deps.map(scalar).join(', ')}]   # from release.yaml`);
      }
    }
    for (const p of restarts) {
      out.push(`      # DECIDE (${p.name}): runs another module now; its state is not handed over but restarted fresh.`);
      out.push(`      - restart: ${scalar(p.name)}`);
    }
    return out;
  };

  const header = [
    `# Draft appup for ${to.name} ${to.version}, written by \`${input.command}\``,
    `# from the differences between ${from.version} and ${to.version}: ${counts.load} load, ${counts.update} update, ${counts.add} add, ${counts.delete} delete, ${counts.restart} restart; ${counts.unchanged} modules unchanged.`,
    '# It never guesses a migration: every `migration:` below is a stub name that relup check',
    '# reports (plan-migration-missing) until the function exists and is listed under the',
    "# module's exports in release.yaml. Review each DECIDE comment, then delete this header.",
    '# Format: docs/appup.md',
  ];
  const text = [...header, `version: ${scalar(to.version)}`, 'up:', ...section('up'), 'down:', ...section('down'), ''].join('\n');
  return { text, stubs, counts };
}

/** A name as a YAML plain scalar when YAML reads it back as the same string, else double-quoted (`null`, `true`, `1e3`, …). */
function scalar(name: string): string {
  const plain = /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name) && !/^(?:true|false|null|yes|no|on|off|y|n|~|\.inf|\.nan)$/i.test(name);
  const version = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?$/.test(name);
  return plain || version ? name : JSON.stringify(name);
}

function worst(a: 'stateful' | 'stateless' | 'unknown', b: 'stateful' | 'stateless' | 'unknown'): 'stateful' | 'stateless' | 'unknown' {
  if (a === 'stateful' || b === 'stateful') return 'stateful';
  if (a === 'unknown' || b === 'unknown') return 'unknown';
  return 'stateless';
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
