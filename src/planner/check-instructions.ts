import type { AppupEntry, Instruction, UpdateInstruction } from '../appup/appup-model.js';
import { error, warning, type Diagnostic } from '../diagnostics/diagnostic.js';
import { suggestion } from '../diagnostics/did-you-mean.js';
import type { Release, ReleaseModule } from '../release/release-model.js';

export type Direction = 'up' | 'down';

/** The instructions of one entry, checked against both releases and indexed for step building. */
export interface CheckedEntry {
  /** load/update/add instructions by module: the modules whose code switches. */
  switched: Map<string, Instruction & { op: 'load' | 'update' | 'add' }>;
  deleted: Map<string, Instruction & { op: 'delete' }>;
  applies: (Instruction & { op: 'apply' })[];
  restarts: (Instruction & { op: 'restart' })[];
  diagnostics: Diagnostic[];
}

export interface CheckContext {
  from: Release;
  to: Release;
  direction: Direction;
  entry: AppupEntry;
  appupFile: string;
  fromModules: ReadonlyMap<string, ReleaseModule>;
  toModules: ReadonlyMap<string, ReleaseModule>;
}

/**
 * Every rule that makes OTP users lose an afternoon, refused up front: a
 * changed module nobody covers (OTP silently keeps the old code), instructions
 * for modules that do not exist or are of the wrong kind, adds and deletes
 * that do not match the releases, missing migration functions, dependencies
 * on modules the upgrade does not touch.
 */
export function checkInstructions(ctx: CheckContext): CheckedEntry {
  const { from, to, entry, appupFile, fromModules, toModules } = ctx;
  const diagnostics: Diagnostic[] = [];
  const at = (line: number) => ({ file: appupFile, line });
  const switched = new Map<string, Instruction & { op: 'load' | 'update' | 'add' }>();
  const deleted = new Map<string, Instruction & { op: 'delete' }>();
  const applies: (Instruction & { op: 'apply' })[] = [];
  const restarts: (Instruction & { op: 'restart' })[] = [];
  const known = (): Iterable<string> => new Set([...fromModules.keys(), ...toModules.keys()]);
  const covered = new Set<string>();

  for (const ins of entry.instructions) {
    if (ins.op === 'restart') {
      if (!to.processes.some((p) => p.name === ins.process)) {
        diagnostics.push(
          error('plan-unknown-process', `restart names process "${ins.process}", which release ${to.version} does not run${suggestion(ins.process, to.processes.map((p) => p.name))}`, at(ins.line), `processes of ${to.version}: ${to.processes.map((p) => p.name).join(', ') || '(none)'}`),
        );
      } else restarts.push(ins);
      continue;
    }
    if (ins.op === 'apply') {
      const mod = toModules.get(ins.module);
      if (mod === undefined) {
        diagnostics.push(unknownModule(ins.module, ins.line, `release ${to.version}`, toModules.keys(), appupFile));
      } else {
        const d = checkFunction(mod, ins.function, to.version, ins.line, appupFile, 'plan-function-missing', 'apply function');
        if (d !== undefined) diagnostics.push(d);
        applies.push(ins);
      }
      continue;
    }

    const inFrom = fromModules.get(ins.module);
    const inTo = toModules.get(ins.module);
    if (inFrom === undefined && inTo === undefined) {
      diagnostics.push(unknownModule(ins.module, ins.line, `release ${from.version} nor ${to.version}`, known(), appupFile));
      continue;
    }
    covered.add(ins.module);
    if (ins.op === 'add') {
      if (inFrom !== undefined) {
        diagnostics.push(error('plan-add-existing', `add: module "${ins.module}" already exists in ${from.version}`, at(ins.line), `use "load: ${ins.module}" or "update: ${ins.module}" to replace its code`));
      } else if (inTo === undefined) {
        diagnostics.push(error('plan-add-missing', `add: module "${ins.module}" is not in ${to.version}`, at(ins.line), `add it to ${to.manifestFile} or remove this instruction`));
      } else switched.set(ins.module, ins);
      continue;
    }
    if (ins.op === 'delete') {
      if (inTo !== undefined) {
        diagnostics.push(error('plan-delete-kept', `delete: module "${ins.module}" is still in ${to.version}`, at(ins.line), `remove it from ${to.manifestFile} or remove this instruction`));
      } else if (inFrom === undefined) {
        diagnostics.push(error('plan-delete-missing', `delete: module "${ins.module}" is not in ${from.version}`, at(ins.line), 'remove this instruction'));
      } else deleted.set(ins.module, ins);
      continue;
    }
    // load / update
    if (inFrom === undefined) {
      diagnostics.push(error('plan-instruction-kind', `${ins.op}: module "${ins.module}" is new in ${to.version}`, at(ins.line), `write "add: ${ins.module}" instead`));
      continue;
    }
    if (inTo === undefined) {
      diagnostics.push(error('plan-instruction-kind', `${ins.op}: module "${ins.module}" is gone in ${to.version}`, at(ins.line), `write "delete: ${ins.module}" instead`));
      continue;
    }
    if (inFrom.hash === inTo.hash) {
      diagnostics.push(warning('plan-unchanged-module', `${ins.op}: module "${ins.module}" did not change between ${from.version} and ${to.version}; it will be reloaded anyway`, at(ins.line), 'remove the instruction unless the reload itself is wanted'));
    }
    if (ins.op === 'update' && ins.migration !== undefined) {
      const d = checkMigration(ctx, ins, inFrom, inTo);
      if (d !== undefined) diagnostics.push(d);
    }
    switched.set(ins.module, ins);
  }

  diagnostics.push(...checkCoverage(ctx, covered));
  diagnostics.push(...checkDeps(ctx, switched));
  return { switched, deleted, applies, restarts, diagnostics };
}

/** Where a migration function must live (design §3): up and down-static run in the code of the release being entered after the switch; down-dynamic runs in the newer code before it. */
export function migrationRelease(direction: Direction, ins: UpdateInstruction): 'from' | 'to' {
  return direction === 'down' && ins.mode === 'dynamic' ? 'from' : 'to';
}

function checkMigration(ctx: CheckContext, ins: UpdateInstruction, inFrom: ReleaseModule, inTo: ReleaseModule): Diagnostic | undefined {
  const side = migrationRelease(ctx.direction, ins);
  const mod = side === 'from' ? inFrom : inTo;
  const version = side === 'from' ? ctx.from.version : ctx.to.version;
  return checkFunction(mod, ins.migration!, version, ins.line, ctx.appupFile, 'plan-migration-missing', 'migration function');
}

function checkFunction(mod: ReleaseModule, fn: string, version: string, line: number, file: string, code: string, what: string): Diagnostic | undefined {
  if (mod.exports === undefined) {
    return error('plan-exports-undeclared', `${what} "${fn}" cannot be checked: module "${mod.name}" in ${version} declares no exports`, { file, line }, `list the module's functions under modules.${mod.name}.exports in release ${version}'s release.yaml`);
  }
  if (!mod.exports.includes(fn)) {
    return error(code, `${what} "${fn}" is not exported by module "${mod.name}" in ${version}${suggestion(fn, mod.exports)}`, { file, line }, `exports of ${mod.name} in ${version}: ${mod.exports.join(', ') || '(none)'}`);
  }
  return undefined;
}

function unknownModule(name: string, line: number, where: string, candidates: Iterable<string>, file: string): Diagnostic {
  return error('plan-unknown-module', `module "${name}" is in neither ${where}${suggestion(name, candidates)}`, { file, line }, 'check the module name against release.yaml');
}

/** Every difference between the two releases must be covered by an instruction. */
function checkCoverage(ctx: CheckContext, covered: ReadonlySet<string>): Diagnostic[] {
  const { from, to, entry, appupFile, fromModules, toModules, direction } = ctx;
  const out: Diagnostic[] = [];
  const where = { file: appupFile, line: entry.line };
  const entryName = `${direction} entry "${entry.versions}"`;
  for (const [name, mod] of toModules) {
    if (covered.has(name)) continue;
    const old = fromModules.get(name);
    if (old === undefined) {
      out.push(error('plan-added-not-covered', `module "${name}" is new in ${to.version} but the ${entryName} has no "add: ${name}"`, where, `add "- add: ${name}" to the instructions of this entry`));
    } else if (old.hash !== mod.hash) {
      out.push(
        error(
          'plan-changed-not-covered',
          `module "${name}" changed between ${from.version} and ${to.version} (${old.hash.slice(0, 8)} → ${mod.hash.slice(0, 8)}) but the ${entryName} has no instruction for it; the old code would keep running`,
          where,
          `add "- load: ${name}" (no state to migrate) or "- update: ${name}" (processes or module state) to this entry`,
        ),
      );
    }
  }
  for (const name of fromModules.keys()) {
    if (!covered.has(name) && !toModules.has(name)) {
      out.push(error('plan-removed-not-covered', `module "${name}" is gone in ${to.version} but the ${entryName} has no "delete: ${name}"`, where, `add "- delete: ${name}" to the instructions of this entry`));
    }
  }
  for (const p of from.processes) {
    const next = to.processes.find((q) => q.name === p.name);
    if (next !== undefined && next.module !== p.module && !entry.instructions.some((i) => i.op === 'restart' && i.process === p.name)) {
      out.push(error('plan-process-module-changed', `process "${p.name}" runs module "${p.module}" in ${from.version} but "${next.module}" in ${to.version}; its state cannot be handed over`, where, `add "- restart: ${p.name}" to this entry`));
    }
  }
  return out;
}

/** Explicit `deps` must name modules this entry switches: a dependency nobody reloads is a mistake or a missing instruction. */
function checkDeps(ctx: CheckContext, switched: ReadonlyMap<string, Instruction>): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const ins of ctx.entry.instructions) {
    if (!('deps' in ins) || ins.deps === undefined) continue;
    for (const dep of ins.deps) {
      if (dep === ins.module) {
        out.push(error('plan-dep-self', `${ins.op}: module "${ins.module}" lists itself in deps`, { file: ctx.appupFile, line: ins.line }, 'remove it from deps'));
      } else if (!ctx.fromModules.has(dep) && !ctx.toModules.has(dep)) {
        out.push(unknownModule(dep, ins.line, `release ${ctx.from.version} nor ${ctx.to.version} (named in deps of "${ins.module}")`, new Set([...ctx.fromModules.keys(), ...ctx.toModules.keys()]), ctx.appupFile));
      } else if (!switched.has(dep)) {
        out.push(
          error('plan-dep-no-instruction', `"${ins.module}" depends on "${dep}", which this entry does not load, update or add`, { file: ctx.appupFile, line: ins.line }, `add an instruction for "${dep}" or remove it from deps`),
        );
      }
    }
  }
  return out;
}
