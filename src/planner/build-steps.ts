import type { Instruction, UpdateInstruction } from '../appup/appup-model.js';
import type { Release } from '../release/release-model.js';
import type { Step, SuspendGroup } from '../script/script-schema.js';
import { migrationRelease, type CheckedEntry, type Direction } from './check-instructions.js';
import { compareNames } from './suspend-groups.js';

interface BuildInput {
  from: Release;
  to: Release;
  direction: Direction;
  /** Switched modules per group, dependencies first. */
  groups: string[][];
  /** The dependencies each switched module was ordered after. */
  deps: ReadonlyMap<string, readonly string[]>;
  checked: CheckedEntry;
}

type Switched = Instruction & { op: 'load' | 'update' | 'add' };

/**
 * Turn a checked entry into the ordered step list (design §3).
 *
 * Before the point of no return: everything that can fail without touching the
 * running system (bundle hashes, version guard, staging new code, functions
 * and processes exist). After it, per suspend group: suspend → (down, dynamic:
 * migrate in the old code) → switch the modules the migrations need,
 * dependencies first → (up, or down static: migrate in the new code) → switch
 * the group's other modules → resume in reverse order.
 */
export function buildSteps({ from, to, direction, groups, deps, checked }: BuildInput): { steps: Step[]; groups: SuspendGroup[]; pointOfNoReturn: number } {
  const steps: Step[] = [];
  const fromProcesses = new Map(from.processes.map((p) => [p.name, p]));
  const toProcessNames = new Set(to.processes.map((p) => p.name));
  const restarted = new Set(checked.restarts.map((r) => r.process));
  const order = groups.flat();
  const position = new Map(order.map((m, i) => [m, i]));

  // Processes whose state an `update` hands over: running now, kept by the new release, and not restarted anyway.
  const handedOver = new Map<string, string[]>();
  for (const p of from.processes) {
    if (!toProcessNames.has(p.name) || restarted.has(p.name)) continue;
    const list = handedOver.get(p.module) ?? [];
    list.push(p.name);
    handedOver.set(p.module, list);
  }
  const processesOf = (module: string): string[] => [...(handedOver.get(module) ?? [])].sort(compareNames);

  // --- before the point of no return ---
  steps.push({ op: 'verify_release', version: to.version, hash: to.hash, reason: `the bundle must hash to release ${to.version} exactly, or nothing is touched` });
  steps.push({ op: 'check_version', expect: from.version, reason: `this script ${direction === 'up' ? 'upgrades' : 'downgrades'} from ${from.version} only; a node running any other release refuses it` });
  const toHashes = new Map(to.modules.map((m) => [m.name, m.hash]));
  for (const module of order) {
    steps.push({ op: 'stage', module, hash: toHashes.get(module)!, reason: `${module}: compile and load the ${to.version} code aside, so a syntax or load error aborts before anything changes` });
  }
  for (const module of order) {
    const ins = checked.switched.get(module)!;
    if (ins.op === 'update' && ins.migration !== undefined) {
      const release = migrationRelease(direction, ins);
      steps.push({ op: 'check_function', module, function: ins.migration, release, reason: `${module}: the migration must exist in the ${release === 'from' ? from.version : to.version} code before any process is suspended` });
    }
  }
  for (const a of checked.applies) {
    steps.push({ op: 'check_function', module: a.module, function: a.function, release: 'to', reason: `${a.module}.${a.function} is applied after the switch; it must exist` });
  }
  const mustRun = new Set<string>();
  for (const module of order) {
    const ins = checked.switched.get(module)!;
    if (ins.op === 'update') for (const p of processesOf(module)) mustRun.add(p);
  }
  for (const r of checked.restarts) if (fromProcesses.has(r.process)) mustRun.add(r.process);
  for (const p of removedProcesses(from, to)) mustRun.add(p);
  for (const process of [...mustRun].sort(compareNames)) {
    steps.push({ op: 'check_process', process, reason: `${process} is suspended, restarted or stopped below; it must be running` });
  }
  const pointOfNoReturn = steps.length;
  steps.push({ op: 'point_of_no_return', reason: 'from here on every change is undone on failure: old code and old state are restored and every process resumed' });

  // --- after it ---
  for (const process of removedProcesses(from, to)) {
    steps.push({ op: 'stop', process, reason: `${process} is not part of ${to.version}; it stops before its code can be deleted` });
  }

  const summary: SuspendGroup[] = [];
  groups.forEach((modules, id) => {
    const updates = modules.filter((m) => checked.switched.get(m)!.op === 'update');
    // Dependents are suspended first so that no running process calls into a suspended one; resume mirrors it.
    const suspended = [...updates].reverse().flatMap(processesOf);
    const timeoutOf = (module: string) => (checked.switched.get(module) as UpdateInstruction).timeout;
    const moduleOf = (process: string) => fromProcesses.get(process)!.module;
    summary.push({ id, modules, processes: suspended });

    for (const process of suspended) {
      steps.push({ op: 'suspend', group: id, process, timeout: timeoutOf(moduleOf(process)), reason: `process ${process} (module ${moduleOf(process)}) stops taking messages while its code and state change; new messages wait in its mailbox` });
    }
    // Down, dynamic: the newer code knows both shapes, so it migrates before it is replaced — dependents first, mirroring up.
    if (direction === 'down') {
      for (const module of [...updates].reverse()) pushMigrate(steps, id, module, 'from');
    }
    // Switched before the migrations: every module with a migration or a suspended process, and what they
    // depend on; the others (plain code, whose callers move at their next call) switch after the migrations.
    // A rollback must make the old code current again, and on a runtime with two code versions (Erlang) that
    // purges the code processes of a switched plain module may still run: a migration that fails before
    // such a switch leaves nothing to purge, so the upgrade rolls back in place.
    const early = anchoredModules(modules, updates);
    const switchStep = (module: string): Step => {
      const ins = checked.switched.get(module)!;
      return { op: 'switch', group: id, module, kind: ins.op, reason: switchReason(ins, deps.get(module) ?? [], to.version, position) };
    };
    for (const module of modules.filter((m) => early.has(m))) steps.push(switchStep(module));
    // Up (and down, static): the incoming code migrates after it is in place, dependencies first.
    for (const module of updates) pushMigrate(steps, id, module, 'to');
    for (const module of modules.filter((m) => !early.has(m))) steps.push(switchStep(module));
    for (const process of [...suspended].reverse()) {
      steps.push({ op: 'resume', group: id, process, reason: `${process} resumes and handles the messages that waited, in order` });
    }
  });

  /** The modules of a group that a migration needs switched first: those with processes or a migration, and their dependencies (transitively). */
  function anchoredModules(modules: readonly string[], updates: readonly string[]): Set<string> {
    const inGroup = new Set(modules);
    const todo = updates.filter((m) => processesOf(m).length > 0 || (checked.switched.get(m) as UpdateInstruction).migration !== undefined);
    const anchored = new Set<string>();
    while (todo.length > 0) {
      const m = todo.pop()!;
      if (anchored.has(m)) continue;
      anchored.add(m);
      for (const d of deps.get(m) ?? []) if (inGroup.has(d)) todo.push(d);
    }
    return anchored;
  }

  function pushMigrate(out: Step[], group: number, module: string, side: 'from' | 'to'): void {
    const ins = checked.switched.get(module) as UpdateInstruction;
    if (ins.migration === undefined || migrationRelease(direction, ins) !== side) return;
    out.push({
      op: 'migrate',
      group,
      module,
      function: ins.migration,
      release: side,
      direction,
      version: direction === 'up' ? from.version : to.version,
      extra: ins.extra ?? null,
      timeout: ins.timeout,
      processes: processesOf(module),
      reason: `${module}: ${ins.migration} turns the ${direction === 'up' ? from.version : to.version} ${direction === 'up' ? 'state into' : 'state back from'} ${direction === 'up' ? to.version : from.version}'s shape (${ins.mode} module${direction === 'down' ? (side === 'from' ? ', run by the newer code before the switch' : ', run by the older code after the switch') : ''})`,
    });
  }

  for (const process of addedProcesses(from, to)) {
    steps.push({ op: 'start', process, reason: `${process} is new in ${to.version}` });
  }
  for (const r of checked.restarts) {
    steps.push({ op: 'restart', process: r.process, reason: `${r.process} restarts on ${to.version} code with fresh state (restart instruction)` });
  }
  for (const a of checked.applies) {
    steps.push({ op: 'apply', module: a.module, function: a.function, args: a.args, reason: `${a.module}.${a.function} runs once on the new code (apply instruction)` });
  }
  for (const module of [...checked.deleted.keys()].sort(compareNames)) {
    // Nothing carries a deleted module's state over (there is no code left to migrate it into): say so, it is easy to miss.
    steps.push({ op: 'delete', module, reason: `${module} is not part of ${to.version}: its code is removed and its module state is discarded (not migrated)` });
  }
  for (const module of order) {
    const ins = checked.switched.get(module)!;
    if (ins.op === 'add') continue;
    steps.push({ op: 'purge', module, mode: ins.purge, reason: purgeReason(module, ins.purge) });
  }
  for (const [module, ins] of [...checked.deleted].sort((a, b) => compareNames(a[0], b[0]))) {
    steps.push({ op: 'purge', module, mode: ins.purge, reason: purgeReason(module, ins.purge) });
  }
  steps.push({ op: 'commit', version: to.version, reason: `the node now runs ${to.version}; it is recorded in the release history` });
  return { steps, groups: summary, pointOfNoReturn };
}

/** Says only what the order really is: dependencies switched before, and cycle partners switched after (name order inside a cycle). */
function switchReason(ins: Switched, deps: readonly string[], version: string, position: ReadonlyMap<string, number>): string {
  const kind = ins.op === 'add' ? 'added' : ins.op === 'update' ? 'updated' : 'reloaded';
  const here = position.get(ins.module) ?? 0;
  const before = deps.filter((d) => (position.get(d) ?? 0) < here);
  const later = deps.filter((d) => (position.get(d) ?? 0) > here);
  const after = before.length > 0 ? `, after ${before.join(', ')} it depends on` : '';
  const cycle = later.length > 0 ? `; it also depends on ${later.join(', ')}, which switch${later.length === 1 ? 'es' : ''} after it (a dependency cycle switches in name order)` : '';
  return `${ins.module} ${kind} to ${version}${after}${cycle}; calls from now on reach the new code`;
}

function purgeReason(module: string, mode: 'soft' | 'brutal'): string {
  return mode === 'soft'
    ? `${module}: the old code is released once nothing runs it any more (soft purge)`
    : `${module}: the old code is released now, cutting off anything still running it (brutal purge)`;
}

function removedProcesses(from: Release, to: Release): string[] {
  const kept = new Set(to.processes.map((p) => p.name));
  return from.processes.filter((p) => !kept.has(p.name)).map((p) => p.name).sort(compareNames);
}

function addedProcesses(from: Release, to: Release): string[] {
  const had = new Set(from.processes.map((p) => p.name));
  return to.processes.filter((p) => !had.has(p.name)).map((p) => p.name).sort(compareNames);
}
