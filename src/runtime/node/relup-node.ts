import { performance } from 'node:perf_hooks';
import { scriptSchema, type RelupScript } from '../../script/script-schema.js';
import type { HandlerRequest, HandlerResponse, ListenOptions, ServerInfo } from './http-servers.js';
import type { RelupApi } from './module-api.js';
import { containEscapedErrors } from './crash-containment.js';
import { NodeCore, type LogSink, type NodeLogEntry } from './node-core.js';
import { NodeSteps, TransactionReport, type MigrationInfo } from './node-steps.js';
import type { TimerInfo } from './node-timers.js';
import type { ReleaseImage } from './release-image.js';
import { RuntimeError, messageOf, withTimeout, type RuntimeErrorCode } from './runtime-error.js';
import { runTransaction, type JournalEntry, type RollbackReport, type StepContext, type StepEvent, type StepFailure, type StepPerformer, type TransactionResult } from './transaction.js';

export type { HandlerRequest, HandlerResponse, ListenOptions, ServerInfo, RelupApi, NodeLogEntry, LogSink, MigrationInfo, TimerInfo, ReleaseImage, RuntimeErrorCode };
export type { JournalEntry, RollbackReport, StepContext, StepEvent, StepFailure, StepPerformer };
export { RuntimeError };

export interface StartOptions {
  image: ReleaseImage;
  /** The node's user configuration, seen by modules as `relup.config` (e.g. `{ port: 8080 }`). */
  config?: Record<string, unknown>;
  /** Where `relup.log` output and runtime errors (failed casts, timers, requests) go. Default: dropped. */
  log?: LogSink;
  /** 'paused': node-owned timers are registered but never fire (scratch nodes of `relup check --live`). Default 'running'. */
  timers?: 'running' | 'paused';
  /**
   * States to boot with instead of the initial ones, by module and process
   * name (the shape of `node.states()`, e.g. captured from a running node with
   * `relup status --states`). Set after `start()`; for scratch and test nodes.
   */
  states?: { modules?: Record<string, unknown>; processes?: Record<string, unknown> };
  /**
   * While the node runs, unhandled rejections and uncaught exceptions are
   * logged (with the module and release their stack names) instead of ending
   * the process (crash-containment.ts). Default true; false leaves the
   * process's own handling alone.
   */
  containErrors?: boolean;
  /** The directory whose node_modules hold the packages releases declare (their base). Default: the current directory. */
  packagesFrom?: string;
}

export interface ApplyOptions {
  /** Run only the checks before the point of no return, then report. Nothing changes. */
  dryRun?: boolean;
  /** The whole transaction's deadline; past it, the running step is abandoned and everything rolled back. Default 30 s. */
  deadlineMs?: number;
  onEvent?: (event: StepEvent) => void;
  /**
   * Wrap the node's step performer, e.g. to inject a failure at step N
   * (fault-injection tests, chaos drills). The wrapper must delegate to the
   * performer it is given for anything it does not fake.
   */
  intercept?: (performer: StepPerformer) => StepPerformer;
}

export type ApplyStatus = 'committed' | 'noop' | 'dry-run' | 'refused' | 'rolled-back' | 'rollback-failed';

export interface GroupReport {
  id: number;
  modules: string[];
  processes: string[];
  /** ms from the first suspend of the group to its last resume (performance.now()); null when the group suspends nothing. */
  suspensionMs: number | null;
  migrated: { modules: string[]; processes: string[] };
}

/** The result of applyScript: plain data, JSON-able. */
export interface ApplyOutcome {
  status: ApplyStatus;
  /** committed, noop or dry-run. */
  ok: boolean;
  /** One sentence for people. */
  message: string;
  name: string;
  from?: string;
  to?: string;
  direction?: 'up' | 'down';
  /** The release the node runs now. */
  version: string;
  failure?: StepFailure;
  /** Present when steps after the point of no return were undone (or a problem was found while settling). */
  rollback?: RollbackReport;
  journal: JournalEntry[];
  groups: GroupReport[];
  /** Module state keys that a new version's initialState() added (Silly's `absent`), per module. */
  absent: Record<string, string[]>;
  /** ms during which work from outside the node (requests, timers, control calls) was held: point of no return → settle. Null when nothing passed it. */
  holdMs: number | null;
  durationMs: number;
}

export interface NodeStatus {
  name: string;
  version: string;
  /** Hash of the running release. */
  hash: string;
  modules: { name: string; hash: string; version: string }[];
  processes: { name: string; module: string; suspended: boolean; mailbox: number; handling: boolean }[];
  upgrading: boolean;
  servers: ServerInfo[];
  timers: TimerInfo[];
}

const DEFAULT_DEADLINE_MS = 30_000;
const STOP_GRACE_MS = 5_000;

/**
 * A running Node.js relup node: the release's modules, processes, timers and
 * servers, and the transaction evaluator that upgrades them in place.
 */
export class RelupNode {
  private running: { from: string; to: string; promise: Promise<ApplyOutcome> } | undefined;
  private stopping: Promise<void> | undefined;
  private uncontain: () => void = () => undefined;

  private constructor(private readonly core: NodeCore) {}

  /** Boot `image`: compile every module, initialise module state, start processes, then call `start()` of `start.main`. */
  static async start(options: StartOptions): Promise<RelupNode> {
    const { release } = options.image;
    if (release.runtime !== 'node') throw new RuntimeError('invalid-release', `release ${release.name}@${release.version} is for the ${release.runtime} runtime`);
    const core = new NodeCore(release, options.config ?? {}, options.log ?? (() => undefined), options.timers === 'paused', options.packagesFrom);
    const node = new RelupNode(core);
    if (options.containErrors !== false) {
      node.uncontain = containEscapedErrors((kind, error, origin) => {
        // Another node's module (same process, other release): that node reports it.
        if (origin !== undefined && origin.releaseName !== core.release.name) return;
        core.escaped(kind, error, origin);
      });
    }
    try {
      const compiled = release.modules.map((m) => core.compile(options.image, m.name));
      for (const { version, initial } of compiled) {
        core.modules.set(version.name, version);
        core.states.set(version.name, { value: initial ?? {}, stateful: initial !== undefined });
      }
      for (const spec of release.processes) core.processes.set(spec.name, await core.newProcess(spec));
      const main = release.start['main'];
      if (main !== undefined) {
        if (typeof main !== 'string' || !core.modules.has(main)) {
          throw new RuntimeError('invalid-release', `start.main of ${release.name}@${release.version} must name one of its modules, got ${JSON.stringify(main)}`);
        }
        if (typeof core.current(main).exports['start'] === 'function') await core.invoke(main, 'start', []);
      }
      if (options.states !== undefined) core.loadStates(options.states);
      // A module may call listen() without awaiting it: boot is done when every server is bound.
      await core.servers.settled();
      await core.tcp.settled();
      const failures = [...core.servers.failures, ...core.tcp.failures];
      if (failures.length > 0) throw new RuntimeError('invalid-state', `boot of ${release.name}@${release.version} failed: ${failures.join('; ')}`);
    } catch (e) {
      await node.stop();
      throw e;
    }
    return node;
  }

  get name(): string {
    return this.core.release.name;
  }

  get version(): string {
    return this.core.version;
  }

  status(): NodeStatus {
    const { core } = this;
    return {
      name: core.release.name,
      version: core.version,
      hash: core.release.hash,
      modules: [...core.modules.values()].map((v) => ({ name: v.name, hash: v.hash, version: v.release })).sort((a, b) => cmp(a.name, b.name)),
      processes: [...core.processes.values()]
        .map((p) => ({ name: p.name, module: p.module, suspended: p.suspended, mailbox: p.mailboxSize, handling: p.handling }))
        .sort((a, b) => cmp(a.name, b.name)),
      upgrading: this.running !== undefined,
      servers: [...core.servers.list(), ...core.tcp.list()],
      timers: core.timers.list(),
    };
  }

  /** A deep copy of every module state and process state. */
  states(): { modules: Record<string, unknown>; processes: Record<string, unknown> } {
    return this.core.snapshotStates();
  }

  /** The same late-binding handle module code gets from `relup.module(name)`. */
  module(name: string): Record<string, (...args: unknown[]) => unknown> {
    return this.core.moduleProxy(name);
  }

  /** A call from outside the node: held while an upgrade is past its point of no return. */
  call(process: string, msg: unknown): Promise<unknown> {
    return this.core.entry(() => this.core.call(process, msg));
  }

  /** A cast from outside the node: held (not dropped) while an upgrade is past its point of no return. */
  cast(process: string, msg: unknown): void {
    this.core.entry(() => this.core.cast(process, msg)).catch((e: unknown) => this.core.castFailed(process, e));
  }

  /** Call a function of a module's current code from outside the node (held like `call`). */
  invoke(module: string, fn: string, args: unknown[]): Promise<unknown> {
    return this.core.entry(() => this.core.invoke(module, fn, args));
  }

  /**
   * Evaluate a relup script as one transaction (docs/runtime-node.md). Rejects
   * at once with a `busy` RuntimeError while another transaction runs; every
   * other outcome, failures included, is a resolved ApplyOutcome.
   */
  applyScript(script: unknown, image: ReleaseImage, options: ApplyOptions = {}): Promise<ApplyOutcome> {
    if (this.running !== undefined) {
      return Promise.reject(new RuntimeError('busy', `node ${this.name} is already applying ${this.running.from} → ${this.running.to}`, 'wait for it to finish (relup status shows it), then try again'));
    }
    if (this.stopping !== undefined) return Promise.reject(new RuntimeError('node-stopped', `node ${this.name} is stopping`));
    const parsed = scriptSchema.safeParse(script);
    // Marked busy before any of the transaction runs: its first steps (and
    // their events) run synchronously inside this call.
    const running: { from: string; to: string; promise: Promise<ApplyOutcome> } = {
      from: parsed.success ? parsed.data.from.version : '?',
      to: parsed.success ? parsed.data.to.version : '?',
      promise: Promise.resolve(undefined as never),
    };
    this.running = running;
    running.promise = this.transact(parsed, image, options).finally(() => {
      if (this.running === running) this.running = undefined;
    });
    return running.promise;
  }

  /** Close servers (and their connections), clear timers, stop processes. Waits for a running transaction first. */
  stop(): Promise<void> {
    this.stopping ??= this.close();
    return this.stopping;
  }

  private async close(): Promise<void> {
    if (this.running !== undefined) await this.running.promise.catch(() => undefined);
    const { core } = this;
    core.stopping = true;
    core.timers.clearAll();
    const servers = Promise.all([core.servers.closeAll(), core.tcp.closeAll()]);
    const idle: Promise<void>[] = [];
    for (const p of core.processes.values()) {
      p.stop('the node stopped');
      idle.push(p.idle());
    }
    await Promise.all([servers, withTimeout(Promise.all(idle), STOP_GRACE_MS, () => new Error('handlers still running')).catch(() => undefined)]);
    core.processes.clear();
    core.modules.clear();
    core.states.clear();
    this.uncontain();
  }

  private async transact(parsed: ReturnType<typeof scriptSchema.safeParse>, image: ReleaseImage, options: ApplyOptions): Promise<ApplyOutcome> {
    const started = performance.now();
    const core = this.core;
    const base = { name: core.release.name, journal: [] as JournalEntry[], groups: [] as GroupReport[], absent: {}, holdMs: null };
    if (!parsed.success) {
      const message = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
      return { ...base, status: 'refused', ok: false, version: core.version, failure: { code: 'invalid-script', message }, message: `refused: the script is not valid (${message}); nothing changed`, durationMs: performance.now() - started };
    }
    const script: RelupScript = parsed.data;
    const about = { from: script.from.version, to: script.to.version, direction: script.direction };
    if (script.to.version === core.version && script.to.hash === core.release.hash) {
      return { ...base, ...about, status: 'noop', ok: true, version: core.version, message: `nothing to do: ${core.release.name} already runs ${core.version}`, durationMs: performance.now() - started };
    }
    if (script.runtime !== 'node' || script.name !== core.release.name) {
      const failure: StepFailure = { code: 'wrong-release', message: `the script is for ${script.name} on ${script.runtime}; this node runs ${core.release.name} on node` };
      return { ...base, ...about, status: 'refused', ok: false, version: core.version, failure, message: `refused: ${failure.message}; nothing changed`, durationMs: performance.now() - started };
    }

    const report = new TransactionReport();
    const steps = new NodeSteps(core, script, image, report);
    const performer = options.intercept?.(steps) ?? steps;
    let result: TransactionResult;
    try {
      result = await runTransaction({
        steps: script.steps,
        pointOfNoReturn: script.pointOfNoReturn,
        dryRun: options.dryRun ?? false,
        deadlineMs: options.deadlineMs ?? DEFAULT_DEADLINE_MS,
        performer,
        ...(options.onEvent !== undefined ? { onEvent: options.onEvent } : {}),
      });
    } catch (e) {
      // runTransaction reports every failure as data; reaching this is a bug.
      result = { status: 'rollback-failed', failure: { code: 'internal', message: messageOf(e) }, rollback: { complete: false, undone: 0, problems: [{ message: `internal error in the evaluator: ${messageOf(e)}` }] }, journal: [], durationMs: 0 };
    }
    const groups: GroupReport[] = script.groups.map((g) => {
      const s = report.suspendedAt.get(g.id);
      const r = report.resumedAt.get(g.id);
      return {
        id: g.id,
        modules: g.modules,
        processes: g.processes,
        suspensionMs: s !== undefined && r !== undefined ? r - s : null,
        migrated: { modules: report.migratedModules.get(g.id) ?? [], processes: report.migratedProcesses.get(g.id) ?? [] },
      };
    });
    return {
      name: core.release.name,
      ...about,
      status: result.status,
      ok: result.status === 'committed' || result.status === 'dry-run',
      message: describeOutcome(result, script, core.version),
      version: core.version,
      ...(result.failure !== undefined ? { failure: result.failure } : {}),
      ...(result.rollback !== undefined ? { rollback: result.rollback } : {}),
      journal: result.journal,
      groups,
      // Keys a switch filled in are gone again once the switch is undone: only a commit keeps them.
      absent: result.status === 'committed' ? Object.fromEntries(report.absent) : {},
      holdMs: report.heldAt !== undefined && report.releasedAt !== undefined ? report.releasedAt - report.heldAt : null,
      durationMs: performance.now() - started,
    };
  }
}

/** Boot a node on `image` (the embedding API; `relup node start` uses it too). */
export function startNode(options: StartOptions): Promise<RelupNode> {
  return RelupNode.start(options);
}

function describeOutcome(result: TransactionResult, script: RelupScript, version: string): string {
  const at = result.failure?.step;
  const where = at !== undefined ? `step ${at.index + 1} (${at.op}${at.target !== '' ? ` ${at.target}` : ''})` : 'the script';
  const ms = `${Math.round(result.durationMs)} ms`;
  switch (result.status) {
    case 'committed':
      return `${script.direction === 'up' ? 'upgraded' : 'downgraded'} ${script.name} ${script.from.version} → ${script.to.version} in ${ms}`;
    case 'dry-run':
      return `dry run: every check before the point of no return passed for ${script.from.version} → ${script.to.version}; nothing changed`;
    case 'refused':
      return `refused before the point of no return: ${where} failed: ${result.failure?.message ?? 'unknown'}; nothing changed, still on ${version}`;
    case 'rolled-back':
      return `${where} failed: ${result.failure?.message ?? 'unknown'}; rolled back to ${version}: old code and state restored, every process resumed`;
    case 'rollback-failed':
      return `${where} failed: ${result.failure?.message ?? 'unknown'}; the rollback did NOT complete: ${(result.rollback?.problems ?? []).map((p) => p.message).join('; ')}`;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
