import { performance } from 'node:perf_hooks';
import type { ReleaseProcess } from '../../release/release-model.js';
import type { RelupScript, Step, StepOf } from '../../script/script-schema.js';
import { GenServer } from './gen-server.js';
import type { ModuleVersion } from './module-version.js';
import { checkedState, type CompiledModule, type NodeCore, type StateCell } from './node-core.js';
import { releaseHash } from '../../release/release-hash.js';
import type { ReleaseImage } from './release-image.js';
import { RuntimeError, withTimeout } from './runtime-error.js';
import type { StepContext, StepPerformer } from './transaction.js';

/** What a migration function receives as its second argument. */
export interface MigrationInfo {
  direction: 'up' | 'down';
  from: string;
  to: string;
  extra: unknown;
  target: 'module' | 'process';
  process?: string;
}

/** What the steps observed, for the outcome: suspension windows, migrations, absent keys. */
export class TransactionReport {
  /** performance.now() when outside work started to be held (the first step after the point of no return), and released. */
  heldAt: number | undefined;
  releasedAt: number | undefined;
  readonly suspendedAt = new Map<number, number>();
  readonly resumedAt = new Map<number, number>();
  readonly migratedProcesses = new Map<number, string[]>();
  readonly migratedModules = new Map<number, string[]>();
  readonly absent = new Map<string, string[]>();
  /** ms spent copying states for rollback ahead of the hold (0 when the node never went quiet and the copies were made in the windows). */
  snapshotAheadMs = 0;
}

const DEFAULT_RESUSPEND_MS = 5000;
/** How long the point of no return waits for outside work already running (docs/runtime-node.md, rollback rules). */
const DRAIN_LIMIT_MS = 50;
/** How long the point of no return waits for a quiet moment to copy states ahead of the hold (docs/performance.md). */
const QUIET_LIMIT_MS = 50;

/**
 * How each step of a relup script is performed on a Node.js node, and undone.
 *
 * Rollback rules, each with its reason:
 * - Every undo is registered *before* its change, so a step that fails half
 *   way is undone as far as it got.
 * - State is snapshotted (structuredClone) before the first step that
 *   changes it, and the snapshot object itself is restored: a migration that
 *   mutated in place and then threw leaves no trace.
 * - The copies are made ahead of the hold, at a quiet moment of the point of
 *   no return (nothing running, every mailbox empty), and the hold starts in
 *   the same synchronous turn, so nothing can run between the copy and the
 *   hold. A copy made ahead is used only while it is provably still the
 *   state: a process's copy while the process has handled no message and
 *   holds the same state object; a module's copy while no step has run module
 *   code. Otherwise the state is copied where it used to be, in the window.
 *   Copying is what grows with the state: ahead of the hold, the suspension
 *   window costs what the migration costs.
 * - Old code is restored by making the old exports object current again: the
 *   old version was never dropped, only purges at commit drop it.
 * - From the point of no return until the transaction settles, work from
 *   outside the node (HTTP requests, timer ticks, control-socket calls) is
 *   held, and a `resume` takes effect only when the transaction settles. A
 *   message handled in between would act on state a later failure restores
 *   from its snapshot: its acknowledged effect would be lost. Held work waits;
 *   none fails.
 * - Every process this transaction suspended is resumed at the end, whatever
 *   failed: a process left suspended is a node that silently stopped working.
 * - A process that dies during the transaction fails the step that saw it; a
 *   rollback brings it back with its state from before the transaction.
 * - An `apply` has effects outside the node's books; its undo is nothing.
 */
export class NodeSteps implements StepPerformer {
  private readonly staged = new Map<string, CompiledModule>();
  /** The code that was current at the point of no return: a migration with `release: from` runs it. */
  private fromCode = new Map<string, ModuleVersion>();
  private readonly moduleSnapshots = new Map<string, StateCell>();
  private readonly processSnapshots = new Map<GenServer, unknown>();
  /** Copies made ahead of the hold, and what proves each is still exact (see the rules above). */
  private readonly aheadProcesses = new Map<GenServer, { copy: unknown; state: unknown; handled: number }>();
  private readonly aheadModules = new Map<string, { copy: StateCell; value: unknown }>();
  /** A step has run module code since the hold: module copies made ahead may be stale. */
  private codeRan = false;
  private readonly suspendedHere = new Map<GenServer, number | undefined>();
  private readonly replaced: ModuleVersion[] = [];
  private readonly brutal: ModuleVersion[] = [];
  private readonly stopped: GenServer[] = [];
  /** Releases the hold on outside work; set at the first step after the point of no return. */
  private releaseHold: (() => void) | undefined;
  /** Processes whose `resume` step has run, in step order: resumed for real when the transaction settles. */
  private readonly resumeAtEnd: GenServer[] = [];
  /** The two guards every script must pass before the point of no return. */
  private verified = false;
  private versionChecked = false;

  constructor(
    private readonly core: NodeCore,
    private readonly script: RelupScript,
    private readonly image: ReleaseImage,
    readonly report: TransactionReport,
  ) {}

  // --- before the point of no return ---

  async check(step: Step, ctx: StepContext): Promise<void> {
    const { core, image } = this;
    switch (step.op) {
      case 'verify_release': {
        if (image.release.version !== step.version) {
          throw new RuntimeError('version-mismatch', `the release given is ${image.release.version}, the script installs ${step.version}`, `give the node release ${step.version}`);
        }
        const hash = releaseHash(image.files);
        if (hash !== step.hash) {
          throw new RuntimeError('hash-mismatch', `release ${step.version} hashes to ${hash.slice(0, 12)}…, the script expects ${step.hash.slice(0, 12)}…: its files differ from the release the script was planned from`, 'plan the script again from this bundle (relup plan)');
        }
        if (image.release.name !== core.release.name) {
          throw new RuntimeError('wrong-release', `the node runs "${core.release.name}" but the release given is "${image.release.name}"`);
        }
        if (image.release.runtime !== 'node') {
          throw new RuntimeError('wrong-release', `release ${image.release.version} is for the ${image.release.runtime} runtime, not node`);
        }
        this.verified ||= step.version === this.script.to.version && step.hash === this.script.to.hash;
        return;
      }
      case 'check_version':
        if (core.version !== step.expect) {
          throw new RuntimeError('version-mismatch', `the node runs ${core.release.name}@${core.version}; this script upgrades from ${step.expect} only`, `plan from ${core.version}: relup plan --from ${core.version} --to ${this.script.to.version}`);
        }
        this.versionChecked ||= step.expect === this.script.from.version;
        return;
      case 'stage':
        // Compiling runs the file's top level; the relup object refuses side effects there, so this changes nothing.
        this.staged.set(step.module, core.compile(image, step.module, step.hash));
        return;
      case 'check_function': {
        const code = step.release === 'from' ? core.current(step.module) : this.toCode(step.module);
        code.fn(step.function);
        return;
      }
      case 'check_process':
        core.process(step.process);
        return;
      case 'point_of_no_return': {
        this.checkRest();
        // Copy the states the steps will change at a quiet moment, then hold in
        // the same synchronous turn: the copy is exact and out of the windows.
        if (await this.quiet(Math.min(QUIET_LIMIT_MS, ctx.remainingMs() / 4))) this.snapshotAhead();
        // Hold new outside work, then give what is already running a moment to finish:
        // work that straddles the point of no return could write state after its
        // snapshot, and a rollback would erase what it answered. Only a moment: a slow
        // handler must not stall the whole node (a busy process is the suspend
        // timeout's business); one still running after it is the documented residual.
        this.releaseHold = core.hold();
        this.report.heldAt = performance.now();
        await core.drained(Math.min(DRAIN_LIMIT_MS, ctx.remainingMs()));
        this.fromCode = new Map(core.modules);
        return;
      }
      default:
        throw new RuntimeError('invalid-script', `${step.op} is not a check`);
    }
  }

  /**
   * Wait (one event-loop turn at a time, at most `ms`) for a moment when
   * nothing of the node runs: no outside work, no process handling or holding
   * a message, no handler of any current version in flight. Resolves true in
   * such a moment; the caller must act before it yields again.
   */
  private async quiet(ms: number): Promise<boolean> {
    const until = performance.now() + ms;
    for (;;) {
      if (this.isQuiet()) return true;
      if (performance.now() >= until) return false;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private isQuiet(): boolean {
    const { core } = this;
    if (core.running > 0) return false;
    for (const p of core.processes.values()) if (!p.stopped && (p.handling || p.mailboxSize > 0)) return false;
    for (const v of core.modules.values()) if (v.inFlight > 0) return false;
    return true;
  }

  /** Copy every state a step after the point of no return will change (a quiet node: see `quiet`). */
  private snapshotAhead(): void {
    const t0 = performance.now();
    const { core, script } = this;
    for (let i = script.pointOfNoReturn + 1; i < script.steps.length; i++) {
      const step = script.steps[i]!;
      const processes = step.op === 'suspend' || step.op === 'restart' ? [step.process] : step.op === 'migrate' ? step.processes : [];
      for (const name of processes) {
        const p = core.processes.get(name);
        if (p === undefined || p.stopped || this.aheadProcesses.has(p)) continue;
        this.aheadProcesses.set(p, { copy: structuredClone(p.state), state: p.state, handled: p.handled });
      }
      if (step.op === 'switch' || step.op === 'migrate') {
        const cell = core.states.get(step.module);
        if (cell === undefined || this.aheadModules.has(step.module)) continue;
        this.aheadModules.set(step.module, { copy: { value: structuredClone(cell.value), stateful: cell.stateful }, value: cell.value });
      }
    }
    this.report.snapshotAheadMs = performance.now() - t0;
  }

  /**
   * Walk the steps after the point of no return against what the node runs
   * and what was staged, so that a missing module, function or process is
   * found while nothing has changed yet.
   */
  private checkRest(): void {
    const { core, image, script } = this;
    const modules = new Set(core.modules.keys());
    const processes = new Set([...core.processes.keys()].filter((p) => !core.processes.get(p)!.stopped));
    const fail = (i: number, message: string): never => {
      throw new RuntimeError('invalid-script', `step ${i}: ${message}`, 'plan the script again (relup plan)');
    };
    // A script without these guards could install unverified code on the
    // wrong release: the failures hand-written hot patches are known for.
    if (!this.verified) fail(script.pointOfNoReturn, `no verify_release step checks release ${script.to.version} (${script.to.hash.slice(0, 12)}…) before the point of no return`);
    if (!this.versionChecked) fail(script.pointOfNoReturn, `no check_version step guards that the node runs ${script.from.version}`);
    const needProcess = (i: number, name: string): void => {
      if (!processes.has(name)) fail(i, `process "${name}" does not run at that point`);
    };
    for (let i = script.pointOfNoReturn + 1; i < script.steps.length; i++) {
      const step = script.steps[i]!;
      switch (step.op) {
        case 'stop':
          needProcess(i, step.process);
          processes.delete(step.process);
          break;
        case 'suspend':
        case 'resume':
          needProcess(i, step.process);
          break;
        case 'switch':
          if (!this.staged.has(step.module)) fail(i, `switch ${step.module}: the module was not staged`);
          if (step.kind === 'add' && modules.has(step.module)) fail(i, `add ${step.module}: the module is already loaded`);
          if (step.kind !== 'add' && !modules.has(step.module)) fail(i, `${step.kind} ${step.module}: the module is not loaded`);
          modules.add(step.module);
          break;
        case 'migrate': {
          const code = step.release === 'from' ? this.fromVersion(step.module) : this.toCode(step.module);
          if (code === undefined) fail(i, `migrate ${step.module}: no ${step.release} code`);
          code!.fn(step.function);
          for (const p of step.processes) needProcess(i, p);
          break;
        }
        case 'start':
          if (processes.has(step.process)) fail(i, `start ${step.process}: it already runs`);
          this.processSpec(step.process);
          processes.add(step.process);
          break;
        case 'restart':
          needProcess(i, step.process);
          this.processSpec(step.process);
          break;
        case 'apply':
          this.toCode(step.module).fn(step.function);
          break;
        case 'delete':
          if (!modules.delete(step.module)) fail(i, `delete ${step.module}: the module is not loaded`);
          break;
        case 'purge':
          break;
        case 'commit':
          if (step.version !== script.to.version || step.version !== image.release.version) {
            fail(i, `commit ${step.version}: the script goes to ${script.to.version} with release ${image.release.version}`);
          }
          break;
        default:
          fail(i, `${step.op} is not allowed after the point of no return`);
      }
    }
  }

  // --- after it ---

  async perform(step: Step, ctx: StepContext): Promise<void> {
    // Module code may change any module's state (relup.module(...) calls): once a
    // step runs some, module copies made ahead are no longer known to be exact.
    // A migration marks it itself, after taking the copies of what it migrates.
    if (step.op === 'apply' || step.op === 'start' || step.op === 'restart') this.codeRan = true;
    switch (step.op) {
      case 'stop':
        return this.stop(step, ctx);
      case 'suspend':
        return this.suspend(step, ctx);
      case 'switch':
        return this.switchCode(step, ctx);
      case 'migrate':
        return this.migrate(step, ctx);
      case 'resume':
        return this.resume(step, ctx);
      case 'start':
        return this.start(step, ctx);
      case 'restart':
        return this.restart(step, ctx);
      case 'apply':
        return this.apply(step, ctx);
      case 'delete':
        return this.deleteModule(step, ctx);
      case 'purge':
        return this.purge(step, ctx);
      case 'commit': {
        // A process the transaction suspended must be alive to be handed the new release.
        const dead = [...this.suspendedHere.keys(), ...this.resumeAtEnd].filter((p) => p.stopped && !this.stopped.includes(p));
        if (dead.length > 0) throw new RuntimeError('process-stopped', `process ${dead.map((p) => p.name).join(', ')} died during the upgrade`);
        const previous = this.core.release;
        ctx.onUndo('restore the running release', () => {
          this.core.release = previous;
        });
        this.core.release = this.image.release;
        return;
      }
      default:
        throw new RuntimeError('invalid-script', `${step.op} cannot be performed after the point of no return`);
    }
  }

  private async stop(step: StepOf<'stop'>, ctx: StepContext): Promise<void> {
    const p = this.core.process(step.process);
    ctx.onUndo(`put process ${p.name} back`, () => {
      this.core.processes.set(p.name, p);
      this.resumeProcess(p);
    });
    this.suspendedHere.set(p, undefined);
    await p.suspend(ctx.remainingMs());
    this.core.processes.delete(p.name);
    this.stopped.push(p);
  }

  private async suspend(step: StepOf<'suspend'>, ctx: StepContext): Promise<void> {
    const p = this.core.process(step.process);
    // Undone by settle(), which resumes every process this transaction suspended once the whole rollback is done.
    ctx.onUndo(`${p.name} resumes when the rollback ends`);
    if (!this.report.suspendedAt.has(step.group)) this.report.suspendedAt.set(step.group, performance.now());
    this.suspendedHere.set(p, step.group);
    await p.suspend(Math.min(step.timeout, ctx.remainingMs()));
    // Its state as it stopped: what a rollback restores if the process dies before its migration.
    this.snapshotProcess(p);
    ctx.onUndo(`restore the state of process ${p.name}`, () => this.restoreProcessState(p));
  }

  private async resume(step: StepOf<'resume'>, ctx: StepContext): Promise<void> {
    const p = this.core.process(step.process);
    if (p.stopped) throw new RuntimeError('process-stopped', `process ${p.name} died during the upgrade`);
    // The process is released when the transaction settles (see the rules above); nothing to undo here.
    ctx.onUndo(`${p.name} resumes when the rollback ends`);
    if (!this.resumeAtEnd.includes(p)) this.resumeAtEnd.push(p);
  }

  private switchCode(step: StepOf<'switch'>, ctx: StepContext): void {
    const { core } = this;
    const next = this.staged.get(step.module)!;
    const old = core.modules.get(step.module);
    const cell = core.states.get(step.module);
    if (cell !== undefined) this.snapshotModule(step.module, cell);
    ctx.onUndo(`restore ${step.module}'s code and state`, () => {
      if (old === undefined) core.modules.delete(step.module);
      else core.modules.set(step.module, old);
      this.restoreModuleState(step.module);
    });
    core.modules.set(step.module, next.version);
    if (old !== undefined) this.replaced.push(old);
    if (cell === undefined) {
      core.states.set(step.module, { value: next.initial ?? {}, stateful: next.initial !== undefined });
      return;
    }
    if (next.initial === undefined) return;
    // Silly's `absent`: keys the new version's initial state has and the live
    // state lacks get their initial value, and are reported.
    const absent = Object.keys(next.initial).filter((k) => !Object.prototype.hasOwnProperty.call(cell.value, k));
    for (const k of absent) cell.value[k] = next.initial[k];
    cell.stateful = true;
    if (absent.length > 0) this.report.absent.set(step.module, [...(this.report.absent.get(step.module) ?? []), ...absent]);
  }

  private async migrate(step: StepOf<'migrate'>, ctx: StepContext): Promise<void> {
    const { core } = this;
    const code = step.release === 'from' ? this.fromVersion(step.module)! : this.toCode(step.module);
    const fn = code.fn(step.function);
    const base = { direction: step.direction, from: this.script.from.version, to: this.script.to.version, extra: step.extra };
    const run = async (state: unknown, info: MigrationInfo, what: string): Promise<unknown> => {
      const remaining = ctx.remainingMs();
      const limit = Math.min(step.timeout, remaining);
      const result = await withTimeout(code.run(() => fn.call(code.exports, state, info)), limit, () =>
        limit < step.timeout
          ? new RuntimeError('deadline', `the transaction's deadline passed while ${step.module}.${step.function} was migrating ${what}`, 'raise deadlineMs')
          : new RuntimeError('migration-timeout', `${step.module}.${step.function} did not finish migrating ${what} within ${limit} ms`, 'raise the timeout of the update instruction, or make the migration faster'),
      );
      // The transaction gave up meanwhile (deadline): a late result must not land.
      if (ctx.signal.aborted) throw ctx.signal.reason;
      return result;
    };

    const cell = core.states.get(step.module);
    if (cell !== undefined && (cell.stateful || Object.keys(cell.value).length > 0)) {
      this.snapshotModule(step.module, cell);
      ctx.onUndo(`restore ${step.module}'s module state`, () => this.restoreModuleState(step.module));
      this.codeRan = true;
      const result = await run(cell.value, { ...base, target: 'module' }, `the state of module ${step.module}`);
      // undefined: the migration mutated the state in place.
      if (result !== undefined) cell.value = checkedState(result, `${step.module}.${step.function} (module state)`);
      push(this.report.migratedModules, step.group, step.module);
    }
    for (const name of step.processes) {
      const p = core.process(name);
      this.snapshotProcess(p);
      ctx.onUndo(`restore the state of process ${name}`, () => this.restoreProcessState(p));
      this.codeRan = true;
      const result = await run(p.state, { ...base, target: 'process', process: name }, `the state of process ${name}`);
      // A process that died meanwhile has no state to hand over: its migration did not happen.
      if (p.stopped) throw new RuntimeError('process-stopped', `process ${name} died while ${step.module}.${step.function} migrated it`);
      if (result !== undefined) p.state = result;
      push(this.report.migratedProcesses, step.group, name);
    }
  }

  private async start(step: StepOf<'start'>, ctx: StepContext): Promise<void> {
    const spec = this.processSpec(step.process);
    let started: GenServer | undefined;
    ctx.onUndo(`stop process ${step.process}`, () => {
      if (started === undefined) return;
      if (this.core.processes.get(started.name) === started) this.core.processes.delete(started.name);
      started.stop(`the upgrade to ${this.script.to.version} was rolled back`);
    });
    started = await this.core.newProcess(spec);
    if (ctx.signal.aborted) throw ctx.signal.reason;
    this.core.processes.set(started.name, started);
  }

  private async restart(step: StepOf<'restart'>, ctx: StepContext): Promise<void> {
    const p = this.core.process(step.process);
    const spec = this.processSpec(step.process);
    const old = { module: p.module, args: p.args };
    let replaced = false;
    ctx.onUndo(`restore process ${p.name} as it was`, async () => {
      if (replaced) {
        if (!p.suspended) await p.suspend(this.suspendTimeoutOf(p.name));
        p.module = old.module;
        p.args = old.args;
        this.restoreProcessState(p);
      }
      this.resumeProcess(p);
    });
    this.suspendedHere.set(p, undefined);
    await p.suspend(ctx.remainingMs());
    this.snapshotProcess(p);
    const state = await this.core.initState(spec.module, spec.args, p.name);
    if (ctx.signal.aborted) throw ctx.signal.reason;
    replaced = true;
    p.module = spec.module;
    p.args = spec.args;
    p.state = state;
    this.resumeProcess(p);
  }

  private async apply(step: StepOf<'apply'>, ctx: StepContext): Promise<void> {
    ctx.onUndo(`${step.module}.${step.function} was applied: its effects cannot be undone`);
    await this.core.invoke(step.module, step.function, step.args);
  }

  private deleteModule(step: StepOf<'delete'>, ctx: StepContext): void {
    const { core } = this;
    const old = core.current(step.module);
    const cell = core.states.get(step.module);
    ctx.onUndo(`load ${step.module} again`, () => {
      core.modules.set(step.module, old);
      if (cell !== undefined) core.states.set(step.module, cell);
    });
    core.modules.delete(step.module);
    core.states.delete(step.module);
    this.replaced.push(old);
  }

  private async purge(step: StepOf<'purge'>, ctx: StepContext): Promise<void> {
    // The old code stays referenced by the undo log until commit (a rollback
    // needs it); purge decides how it is let go: soft waits for the handlers
    // still running it, brutal cuts them off at commit.
    ctx.onUndo(`purge of ${step.module} takes effect at commit: nothing to undo`);
    const old = this.replaced.filter((v) => v.name === step.module);
    if (step.mode === 'brutal') {
      this.brutal.push(...old);
      return;
    }
    await Promise.all(old.map((v) => v.idle()));
  }

  /** Called once by the evaluator at the end. */
  async settle(result: 'committed' | 'rolled-back' | 'discarded'): Promise<string[]> {
    const problems: string[] = [];
    if (result === 'committed') {
      for (const v of this.brutal) v.gate.revoked = true;
      for (const p of this.stopped) p.stop(`not part of ${this.script.to.version}`);
      for (const p of this.resumeAtEnd) this.resumeProcess(p);
    }
    if (result === 'rolled-back') {
      this.reviveDead();
      for (const p of this.suspendedHere.keys()) this.resumeProcess(p);
      for (const p of this.core.processes.values()) {
        if (p.suspended && !p.stopped) problems.push(`process ${p.name} is still suspended`);
      }
    }
    // Processes first, then outside work: held requests find every process taking messages again.
    for (const p of [...this.suspendedHere.keys()]) this.resumeProcess(p);
    if (this.releaseHold !== undefined) {
      this.report.releasedAt = performance.now();
      this.releaseHold();
      this.releaseHold = undefined;
    }
    this.resumeAtEnd.length = 0;
    // Drop every reference to old and staged code: from here on only the
    // current versions are reachable from the node.
    this.staged.clear();
    this.fromCode.clear();
    this.moduleSnapshots.clear();
    this.processSnapshots.clear();
    this.aheadProcesses.clear();
    this.aheadModules.clear();
    this.suspendedHere.clear();
    this.replaced.length = 0;
    this.brutal.length = 0;
    this.stopped.length = 0;
    return problems;
  }

  // --- helpers ---

  /**
   * A process that died during the transaction (and was not stopped by a
   * `stop` step) is started again on the restored code with the state it had
   * before the transaction: the rollback owes the node every process it had.
   */
  private reviveDead(): void {
    for (const [p, state] of this.processSnapshots) {
      if (!p.stopped || this.stopped.includes(p) || this.core.processes.get(p.name) !== p) continue;
      const revived = new GenServer(this.core, p.name, p.module, p.args, state);
      this.core.processes.set(p.name, revived);
      this.suspendedHere.delete(p);
      this.core.emit({ level: 'error', source: 'node', process: p.name, message: `process ${p.name} died during the upgrade; the rollback restarted it with its state from before the upgrade (calls it had not answered were failed)` });
    }
  }

  private resumeProcess(p: GenServer): void {
    const group = this.suspendedHere.get(p);
    this.suspendedHere.delete(p);
    if (!p.stopped) p.resume();
    if (group !== undefined) this.report.resumedAt.set(group, performance.now());
  }

  private snapshotModule(module: string, cell: StateCell): void {
    if (this.moduleSnapshots.has(module)) return;
    const ahead = this.aheadModules.get(module);
    this.aheadModules.delete(module);
    // Exact only while no module code ran since the quiet moment and the cell holds the same object (the rules above).
    if (ahead !== undefined && !this.codeRan && ahead.value === cell.value && ahead.copy.stateful === cell.stateful) this.moduleSnapshots.set(module, ahead.copy);
    else this.moduleSnapshots.set(module, { value: structuredClone(cell.value), stateful: cell.stateful });
  }

  private restoreModuleState(module: string): void {
    const snapshot = this.moduleSnapshots.get(module);
    if (snapshot === undefined) {
      // The module had no state before this transaction (an added module).
      this.core.states.delete(module);
      return;
    }
    const cell = this.core.states.get(module);
    if (cell === undefined) this.core.states.set(module, { value: snapshot.value, stateful: snapshot.stateful });
    else {
      cell.value = snapshot.value;
      cell.stateful = snapshot.stateful;
    }
  }

  private snapshotProcess(p: GenServer): void {
    if (this.processSnapshots.has(p)) return;
    const ahead = this.aheadProcesses.get(p);
    this.aheadProcesses.delete(p);
    // Exact only while the process has taken no message since the quiet moment
    // and holds the same state object: only its handlers and the steps change it.
    if (ahead !== undefined && ahead.handled === p.handled && ahead.state === p.state) this.processSnapshots.set(p, ahead.copy);
    else this.processSnapshots.set(p, structuredClone(p.state));
  }

  private restoreProcessState(p: GenServer): void {
    if (this.processSnapshots.has(p)) p.state = this.processSnapshots.get(p);
  }

  private fromVersion(module: string): ModuleVersion | undefined {
    return this.fromCode.get(module) ?? this.core.modules.get(module);
  }

  /** The incoming release's code for `module`: staged, or the running code when the module did not change. */
  private toCode(module: string): ModuleVersion {
    const staged = this.staged.get(module);
    if (staged !== undefined) return staged.version;
    const spec = this.image.release.modules.find((m) => m.name === module);
    const running = this.core.modules.get(module);
    if (spec !== undefined && running !== undefined && running.hash === spec.hash) return running;
    throw new RuntimeError('invalid-script', `module "${module}" of release ${this.image.release.version} is ${spec === undefined ? 'not in that release' : 'not staged'}`, 'plan the script again (relup plan)');
  }

  private processSpec(name: string): ReleaseProcess {
    const spec = this.image.release.processes.find((p) => p.name === name);
    if (spec === undefined) throw new RuntimeError('unknown-process', `release ${this.image.release.version} declares no process "${name}"`);
    return spec;
  }

  private suspendTimeoutOf(process: string): number {
    const step = this.script.steps.find((s): s is StepOf<'suspend'> => s.op === 'suspend' && s.process === process);
    return step?.timeout ?? DEFAULT_RESUSPEND_MS;
  }
}

function push(map: Map<number, string[]>, key: number, value: string): void {
  const list = map.get(key) ?? [];
  if (!list.includes(value)) list.push(value);
  map.set(key, list);
}
