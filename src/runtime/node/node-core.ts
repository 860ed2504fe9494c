import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Release, ReleaseProcess } from '../../release/release-model.js';
import type { ErrorOrigin, EscapedKind } from './crash-containment.js';
import { GenServer, type ProcessHost } from './gen-server.js';
import { HttpServers, type ListenOptions } from './http-servers.js';
import { makeRelupApi, type ApiHost } from './module-api.js';
import { compileModule, type ModuleVersion } from './module-version.js';
import { NodeTimers } from './node-timers.js';
import { PackageBase } from './package-base.js';
import { TcpServers, type TcpListenOptions } from './tcp-servers.js';
import { sha256Hex } from '../../release/release-hash.js';
import type { ReleaseImage } from './release-image.js';
import { RuntimeError, messageOf } from './runtime-error.js';

/** One entry of the node's log sink. Module code writes here through relup.log; the node reports failures of casts, timers and servers here. */
export interface NodeLogEntry {
  time: number;
  level: 'info' | 'error';
  source: 'module' | 'process' | 'timer' | 'http' | 'tcp' | 'node';
  message: string;
  module?: string;
  release?: string;
  process?: string;
}

export type LogSink = (entry: NodeLogEntry) => void;

/** A module's runtime-owned state: one plain object handed to every version of the module. */
export interface StateCell {
  value: Record<string, unknown>;
  /** The module declared initialState() at some point: its state is migrated along with its processes. */
  stateful: boolean;
}

/** A module version compiled aside, with the initial state its initialState() gave (when it has one). */
export interface CompiledModule {
  version: ModuleVersion;
  initial: Record<string, unknown> | undefined;
}

/**
 * Everything a running node owns: the current code of each module, module
 * states, processes, timers and servers. Module code reaches it only through
 * its `relup` object; the evaluator changes it only through node-steps.ts.
 */
export class NodeCore implements ApiHost, ProcessHost {
  readonly modules = new Map<string, ModuleVersion>();
  readonly states = new Map<string, StateCell>();
  readonly processes = new Map<string, GenServer>();
  readonly timers: NodeTimers;
  readonly servers: HttpServers;
  readonly tcp: TcpServers;
  /** Open TCP and WebSocket connections by id (relup.connection): runtime handles, never module code. */
  readonly connections = new Map<string, object>();
  /** The npm packages module code may require: loaded once, shared by every version (package-base.ts). */
  readonly base: PackageBase;
  private readonly proxies = new Map<string, Record<string, (...args: unknown[]) => unknown>>();
  /**
   * Set from an upgrade's point of no return until it settles. Work arriving
   * from outside the node (HTTP requests, timer ticks, calls through the
   * control socket) waits here: run now, it could act on state a rollback is
   * about to restore, and its acknowledged effect would be lost.
   */
  private held: { promise: Promise<void>; release: () => void } | undefined;

  constructor(
    public release: Release,
    readonly config: Record<string, unknown>,
    private readonly sink: LogSink,
    timersPaused = false,
    packagesFrom: string = process.cwd(),
  ) {
    this.base = new PackageBase(packagesFrom);
    this.timers = new NodeTimers((t) => {
      this.entry(() => this.invoke(t.module, t.fn, t.args)).catch((e: unknown) => this.emit({ level: 'error', source: 'timer', module: t.module, message: `timer ${t.module}.${t.fn} failed: ${messageOf(e)}` }));
    }, timersPaused);
    this.servers = new HttpServers(
      (module, handler, req) => this.entry(() => this.invoke(module, handler, [req])),
      (module, message) => this.emit({ level: 'error', source: 'http', module, message }),
      (module, fn, args) => this.entry(() => this.invoke(module, fn, args)),
      this.connections,
    );
    this.tcp = new TcpServers(
      (module, fn, args) => this.entry(() => this.invoke(module, fn, args)),
      (module, message) => this.emit({ level: 'error', source: 'tcp', module, message }),
      this.connections,
    );
  }

  get version(): string {
    return this.release.version;
  }

  // --- code ---

  current(module: string): ModuleVersion {
    const version = this.modules.get(module);
    if (version === undefined) {
      throw new RuntimeError('unknown-module', `module "${module}" is not loaded in ${this.release.name}@${this.version}`, `loaded modules: ${[...this.modules.keys()].sort().join(', ') || '(none)'}`);
    }
    return version;
  }

  /** Hold outside work until the returned function is called (see `held`). */
  hold(): () => void {
    if (this.held !== undefined) return () => undefined;
    let release!: () => void;
    const promise = new Promise<void>((resolve) => (release = resolve));
    const held = { promise, release: () => undefined as void };
    held.release = () => {
      if (this.held === held) this.held = undefined;
      release();
    };
    this.held = held;
    return held.release;
  }

  /** Outside work running now (started before any hold), and who waits for it to drain. */
  private inFlight = 0;
  private drainWaiters: (() => void)[] = [];

  /** Run work that comes from outside the node, after any hold: it waits, it never fails for it. */
  async entry<T>(work: () => Promise<T> | T): Promise<T> {
    while (this.held !== undefined) await this.held.promise;
    this.inFlight += 1;
    try {
      return await work();
    } finally {
      this.inFlight -= 1;
      if (this.inFlight === 0) for (const w of this.drainWaiters.splice(0)) w();
    }
  }

  /** Wait until no outside work runs (call it while holding); false when `ms` passed first. */
  async drained(ms: number): Promise<boolean> {
    if (this.inFlight === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => this.drainWaiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms)))),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** How many outside requests, ticks and calls are running right now. */
  get running(): number {
    return this.inFlight;
  }

  /** Call `module.fn(...args)` in the current code, counted as a handler of that version. */
  invoke(module: string, fn: string, args: unknown[]): Promise<unknown> {
    try {
      const version = this.current(module);
      const f = version.fn(fn);
      return version.run(() => f.apply(version.exports, args));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Compile `module` from `image` aside (nothing current changes), check its
   * file hash and declared exports, and compute its initial state.
   */
  compile(image: ReleaseImage, module: string, expectHash?: string): CompiledModule {
    const { release } = image;
    const spec = release.modules.find((m) => m.name === module);
    if (spec === undefined) throw new RuntimeError('unknown-module', `release ${release.version} has no module "${module}"`);
    const bytes = image.files.get(spec.file);
    if (bytes === undefined) throw new RuntimeError('invalid-release', `release ${release.version} lists ${spec.file} for module "${module}" but the file is missing`);
    const hash = sha256Hex(bytes);
    if (hash !== spec.hash) throw new RuntimeError('hash-mismatch', `${spec.file} hashes to ${hash.slice(0, 12)}… but release ${release.version} records ${spec.hash.slice(0, 12)}…`);
    if (expectHash !== undefined && hash !== expectHash) {
      throw new RuntimeError('hash-mismatch', `${spec.file} hashes to ${hash.slice(0, 12)}… but the script expects ${expectHash.slice(0, 12)}…`, 'plan the script again from this very release');
    }
    this.checkBase(release);
    const declared = release.packages ?? [];
    const version = compileModule({
      requirePackage: (id, filename) => this.base.require(id, declared, filename),
      name: module,
      releaseName: release.name,
      release: release.version,
      file: spec.file,
      hash,
      source: Buffer.from(bytes).toString('utf8'),
      makeApi: (gate) => makeRelupApi(this, module, release.version, gate),
    });
    // The manifest's exports are what the planner checked migrations and
    // applies against: make sure the code really has them, so its checks hold.
    const missing = (spec.exports ?? []).filter((name) => version.exportedFunction(name) === undefined);
    if (missing.length > 0) {
      throw new RuntimeError('missing-export', `${module}@${release.version} does not export ${missing.join(', ')}, which its release.yaml declares`, `fix ${spec.file} or the exports of modules.${module} in release.yaml`);
    }
    let initial: Record<string, unknown> | undefined;
    if (typeof version.exports['initialState'] === 'function') {
      let value: unknown;
      try {
        value = (version.exports['initialState'] as () => unknown).call(version.exports);
      } catch (e) {
        throw new RuntimeError('invalid-state', `${module}@${release.version}: initialState() threw: ${messageOf(e)}`);
      }
      initial = checkedState(value, `${module}@${release.version}: initialState()`);
    }
    return { version, initial };
  }

  /** Releases whose base was checked against what this node loaded (by release hash). */
  private readonly baseChecked = new Set<string>();

  /**
   * Every package a release declares must be installed, and those this node
   * already loaded must be unchanged on disk: a staged version would otherwise
   * get old code for some packages and new code for others.
   */
  checkBase(release: Release): void {
    if (this.baseChecked.has(release.hash)) return;
    const packages = release.packages ?? [];
    this.base.checkUnchanged(packages, `${release.name}@${release.version}`);
    for (const name of packages) this.base.describe(name);
    // A bundle records the base it was packed against: running it on another would be the silent mix the base rule forbids.
    const differs = (release.base ?? []).filter((b) => packages.includes(b.name) && this.base.describe(b.name).hash !== b.hash);
    if (differs.length > 0) {
      const what = differs.map((b) => `${b.name} ${b.version} recorded, ${this.base.describe(b.name).version} installed${this.base.describe(b.name).version === b.version ? ' (other files)' : ''}`).join(', ');
      throw new RuntimeError('base-changed', `${release.name}@${release.version} was packed against another base than this node's (${what}, in ${this.base.from}/node_modules)`, 'install the packages the release was packed with (npm ci from its lockfile), or pack the release again against this base');
    }
    this.baseChecked.add(release.hash);
  }

  // --- module state ---

  moduleState(module: string): Record<string, unknown> {
    const cell = this.states.get(module);
    if (cell === undefined) throw new RuntimeError('unknown-module', `module "${module}" has no state: it is not loaded`);
    return cell.value;
  }

  moduleProxy(name: string): Record<string, (...args: unknown[]) => unknown> {
    let proxy = this.proxies.get(name);
    if (proxy === undefined) {
      // The proxy holds a name, never a version: each access reads the
      // current code (Erlang's fully-qualified call).
      proxy = new Proxy(Object.create(null) as Record<string, (...args: unknown[]) => unknown>, {
        get: (_target, prop) => {
          // `then` and symbols: so that awaiting or inspecting a handle never throws.
          if (typeof prop !== 'string' || prop === 'then') return undefined;
          const version = this.current(name);
          const value = version.exports[prop];
          if (value === undefined) return version.fn(prop);
          return value;
        },
        has: (_target, prop) => typeof prop === 'string' && prop in this.current(name).exports,
        set: () => {
          throw new RuntimeError('invalid-state', `relup.module("${name}") is read-only: a module changes its own exports`);
        },
      });
      this.proxies.set(name, proxy);
    }
    return proxy;
  }

  // --- processes ---

  process(name: string): GenServer {
    const p = this.processes.get(name);
    if (p === undefined || p.stopped) {
      throw new RuntimeError('unknown-process', `no process "${name}" runs on ${this.release.name}@${this.version}`, `processes: ${[...this.processes.keys()].sort().join(', ') || '(none)'}`);
    }
    return p;
  }

  call(process: string, msg: unknown): Promise<unknown> {
    try {
      return this.process(process).call(msg);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  cast(process: string, msg: unknown): void {
    this.process(process).cast(msg);
  }

  castFailed(process: string, error: unknown): void {
    this.emit({ level: 'error', source: 'process', process, message: `process ${process}: a cast failed: ${messageOf(error)}` });
  }

  // --- crashes and restarts (docs/runtime-node.md, "Crashes and restarts") ---

  /** Restart times of each process within its intensity period. */
  private readonly restarts = new Map<string, number[]>();
  /** Set once the node stops: nothing is restarted any more. */
  stopping = false;

  crashes(process: string): boolean {
    return this.release.processes.find((p) => p.name === process)?.restart !== undefined;
  }

  /**
   * A process terminated. Its policy is the one the *running* release declares
   * for its name (an upgrade may change it): permanent → always restarted;
   * transient → restarted unless it exited normally; temporary → never. A
   * restart is a fresh `init(args)` on the current code; past the intensity
   * limit the process stays down (it is removed, so callers get
   * unknown-process rather than waiting forever).
   */
  terminated(p: GenServer, error: unknown, normal: boolean, release: string | undefined): void {
    const policy = this.release.processes.find((s) => s.name === p.name)?.restart;
    const at = `${p.module}@${release ?? '?'}`;
    const how = normal ? 'exited normally' : `crashed in ${at}: ${messageOf(error)}${frameOf(error)}`;
    const restart = policy !== undefined && !this.stopping && (policy.type === 'permanent' || (policy.type === 'transient' && !normal));
    const base = { source: 'process' as const, process: p.name, module: p.module, ...(release === undefined ? {} : { release }) };
    if (!restart) {
      this.emit({ ...base, level: normal ? 'info' : 'error', message: `process ${p.name} ${how}; ${policy?.type ?? 'no'} restart policy: it stays down` });
      this.forget(p);
      return;
    }
    const now = performance.now();
    const recent = (this.restarts.get(p.name) ?? []).filter((t) => now - t < policy.periodMs);
    if (recent.length >= policy.maxRestarts) {
      this.restarts.delete(p.name);
      this.emit({ ...base, level: 'error', message: `process ${p.name} ${how}; it was restarted ${recent.length} times within ${policy.periodMs} ms (intensity limit ${policy.maxRestarts}): it stays down until the node restarts` });
      this.forget(p);
      return;
    }
    recent.push(now);
    this.restarts.set(p.name, recent);
    this.emit({ ...base, level: 'error', message: `process ${p.name} ${how}; restarting it (${policy.type}, restart ${recent.length} of ${policy.maxRestarts} within ${policy.periodMs} ms)` });
    void this.restartProcess(p);
  }

  private forget(p: GenServer): void {
    if (this.processes.get(p.name) === p) this.processes.delete(p.name);
  }

  /**
   * Start a fresh process in place of `dead`. Messages sent meanwhile wait in
   * the new process's mailbox until its init finishes. Past an upgrade's point
   * of no return the restart waits until the transaction settles: a rollback
   * revives a process that died during it with its snapshot (rule 6), and a
   * restart must not race it.
   */
  private async restartProcess(dead: GenServer): Promise<void> {
    while (this.held !== undefined) await this.held.promise;
    if (this.stopping || this.processes.get(dead.name) !== dead) return;
    const fresh = new GenServer(this, dead.name, dead.module, dead.args, undefined);
    fresh.initStarted();
    this.processes.set(dead.name, fresh);
    try {
      fresh.initDone(await this.initState(fresh.module, fresh.args, fresh.name));
    } catch (e) {
      // A failing init is one more crash: it counts against the intensity limit.
      fresh.stop(`its init failed: ${messageOf(e)}`);
      this.terminated(fresh, e, false, this.modules.get(fresh.module)?.release);
      return;
    }
  }

  /** An error module code let escape (crash-containment.ts): logged with where it came from; the node keeps serving. */
  escaped(kind: EscapedKind, error: unknown, origin: ErrorOrigin | undefined): void {
    const what = kind === 'uncaught-exception' ? 'uncaught exception' : 'unhandled rejection';
    if (origin === undefined) {
      this.emit({ level: 'error', source: 'module', message: `${what} of unknown origin (no module frame in its stack): ${messageOf(error)}; the node keeps serving` });
      return;
    }
    const module = this.release.modules.find((m) => m.file === origin.file)?.name ?? origin.file.replace(/\.[cm]?js$/, '');
    const where = `relup:${origin.releaseName}@${origin.release}/${origin.file}${origin.line === undefined ? '' : `:${origin.line}:${origin.col ?? 0}`}`;
    this.emit({ level: 'error', source: 'module', module, release: origin.release, message: `${what} in module ${module}@${origin.release} (${where}): ${messageOf(error)}; the node keeps serving` });
  }

  /** A new process running `spec.module`'s current code: `state = init(args)`. Not registered. */
  async newProcess(spec: Pick<ReleaseProcess, 'name' | 'module' | 'args'>): Promise<GenServer> {
    const state = await this.initState(spec.module, spec.args, spec.name);
    return new GenServer(this, spec.name, spec.module, spec.args, state);
  }

  async initState(module: string, args: unknown, process: string): Promise<unknown> {
    const version = this.current(module);
    if (typeof version.exports['init'] !== 'function') {
      throw new RuntimeError('missing-function', `process ${process} runs ${module}@${version.release}, which exports no init(args)`, 'a process module exports init, handleCall and handleCast');
    }
    return version.run(() => (version.exports['init'] as (a: unknown) => unknown).call(version.exports, args));
  }

  // --- timers, servers, log ---

  setTimer(kind: 'interval' | 'timeout', ms: number, module: string, fn: string, args: unknown[]): number {
    return this.timers.set(kind, ms, module, fn, args);
  }

  clearTimer(id: number): boolean {
    return this.timers.clear(id);
  }

  listen(module: string, options: ListenOptions): Promise<AddressInfo> {
    const bound = this.servers.listen(module, options);
    bound.catch((e: unknown) => this.emit({ level: 'error', source: 'http', module, message: messageOf(e) }));
    return bound;
  }

  connection(id: string): object | undefined {
    return this.connections.get(id);
  }

  listenTcp(module: string, options: TcpListenOptions): Promise<AddressInfo> {
    const bound = this.tcp.listen(module, options);
    bound.catch((e: unknown) => this.emit({ level: 'error', source: 'tcp', module, message: messageOf(e) }));
    return bound;
  }

  log(module: string, release: string, message: string): void {
    this.emit({ level: 'info', source: 'module', module, release, message });
  }

  emit(entry: Omit<NodeLogEntry, 'time'>): void {
    try {
      this.sink({ time: Date.now(), ...entry });
    } catch {
      // A broken sink must not break the node.
    }
  }

  /** A deep copy of every module state and process state, for inspection and snapshots. */
  /** Replace module and process states by name (a state fixture); every name must exist, so a stale fixture is refused, not half-applied. */
  loadStates(states: { modules?: Record<string, unknown>; processes?: Record<string, unknown> }): void {
    const modules = Object.entries(states.modules ?? {});
    const processes = Object.entries(states.processes ?? {});
    for (const [name] of modules) {
      if (!this.states.has(name)) throw new RuntimeError('unknown-module', `the states to load name module "${name}", which ${this.release.name}@${this.version} does not have`);
    }
    for (const [name] of processes) {
      if (!this.processes.has(name)) throw new RuntimeError('unknown-process', `the states to load name process "${name}", which ${this.release.name}@${this.version} does not run`);
    }
    for (const [name, value] of modules) {
      const state = structuredClone(checkedState(value, `the loaded state of module ${name}`));
      // A module without state keeps none (its migrations must not run on module state), unless the fixture gives it some.
      this.states.set(name, { value: state, stateful: this.states.get(name)!.stateful || Object.keys(state).length > 0 });
    }
    for (const [name, value] of processes) this.processes.get(name)!.state = structuredClone(value);
  }

  snapshotStates(): { modules: Record<string, unknown>; processes: Record<string, unknown> } {
    const modules: Record<string, unknown> = {};
    for (const [name, cell] of [...this.states].sort(byKey)) modules[name] = structuredClone(cell.value);
    const processes: Record<string, unknown> = {};
    for (const [name, p] of [...this.processes].sort(byKey)) processes[name] = structuredClone(p.state);
    return { modules, processes };
  }
}

/** ` at relup:…/file.js:3:9` when module code is on the error's stack. */
function frameOf(error: unknown): string {
  const stack = error instanceof Error && typeof error.stack === 'string' ? error.stack : '';
  const m = /relup:[^\s()]+:\d+:\d+/.exec(stack);
  return m === null ? '' : ` (at ${m[0]})`;
}

function byKey<T>(a: [string, T], b: [string, T]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/**
 * Module state is a plain object that can be snapshotted with structuredClone
 * (the rollback restores a copy), so no functions or class instances.
 */
export function checkedState(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new RuntimeError('invalid-state', `${what} gave ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}; module state must be a plain object`);
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    throw new RuntimeError('invalid-state', `${what} gave a class instance; module state must be a plain object`);
  }
  try {
    structuredClone(value);
  } catch (e) {
    throw new RuntimeError('invalid-state', `${what} gave a state that cannot be copied (${messageOf(e)})`, 'keep functions and handles out of state: it is snapshotted for rollback');
  }
  return value as Record<string, unknown>;
}
