import { createRequire, isBuiltin } from 'node:module';
import { compileModuleSource, moduleFilename, throwSite, whereText } from './module-source.js';
import { RuntimeError, messageOf } from './runtime-error.js';

const requireBuiltin = createRequire(import.meta.url);

/**
 * Per-version switches read by the `relup` object a version's code holds.
 * The node flips them; the version's code only ever reads them.
 */
export interface VersionGate {
  /** While the file's top level runs: side effects are refused so that staging changes nothing. */
  loading: boolean;
  /** Set when a purged version is cut off (brutal purge): its lingering code can no longer reach the node. */
  revoked: boolean;
}

/**
 * One compiled version of one module. The node references a version only
 * while it is current, staged, or held by an open transaction's undo log;
 * once purged nothing in the node points at it, so its code, closures and
 * exports can be collected (vm.compileFunction code, unlike ES modules, is
 * ordinary garbage).
 */
export class ModuleVersion {
  /** Handlers of this version the node dispatched that have not finished (process messages, HTTP requests, timers). */
  private running = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly name: string,
    /** Version of the release the code came from. */
    readonly release: string,
    readonly file: string,
    readonly hash: string,
    readonly exports: Record<string, unknown>,
    readonly gate: VersionGate,
  ) {}

  get inFlight(): number {
    return this.running;
  }

  /**
   * The function this version exports as `name`, or undefined. Own properties
   * only: `toString` or `hasOwnProperty` are not exports of a module just
   * because every object inherits them (issue 9 item 4).
   */
  exportedFunction(name: string): ((...args: unknown[]) => unknown) | undefined {
    const value = Object.hasOwn(this.exports, name) ? this.exports[name] : undefined;
    return typeof value === 'function' ? (value as (...args: unknown[]) => unknown) : undefined;
  }

  /** The exported function `fn`, or a clear error naming the module, version and what it does export. */
  fn(fn: string): (...args: unknown[]) => unknown {
    const value = Object.hasOwn(this.exports, fn) ? this.exports[fn] : undefined;
    if (typeof value !== 'function') {
      const exported = Object.keys(this.exports).filter((k) => typeof this.exports[k] === 'function');
      throw new RuntimeError(
        'unknown-function',
        `${this.name}.${fn} is not a function in ${this.name}@${this.release}${value === undefined ? '' : ` (it is ${typeof value})`}`,
        `functions exported by ${this.name}@${this.release}: ${exported.join(', ') || '(none)'}`,
      );
    }
    return value as (...args: unknown[]) => unknown;
  }

  /**
   * Run `fn` as a handler of this version, counted for soft purge. Synchronous
   * throws and rejected promises both reject the returned promise.
   */
  async run<T>(call: () => T | Promise<T>): Promise<T> {
    this.running += 1;
    try {
      return await call();
    } finally {
      this.running -= 1;
      if (this.running === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    }
  }

  /** Resolves once no dispatched handler of this version is running. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

export interface CompileInput {
  name: string;
  releaseName: string;
  release: string;
  file: string;
  hash: string;
  source: string;
  /** Builds the `relup` object this version's code sees. */
  makeApi: (gate: VersionGate) => object;
  /** Loads a package of the node's base (package-base.ts); without it only built-ins can be required. */
  requirePackage?: (id: string, filename: string) => unknown;
}

/**
 * Compile a module file as a function body in the main context and run its
 * top level. Never `import()`: Node keeps every ES module it ever loaded, so
 * re-importing on each upgrade would leak the old code forever.
 */
export function compileModule(input: CompileInput): ModuleVersion {
  const filename = moduleFilename(input.releaseName, input.release, input.file);
  const compiled = compileModuleSource(input.source, filename);
  if (!compiled.ok) {
    // file:line:col, as `relup check` reports it, so the two can be matched up.
    throw new RuntimeError('compile-error', `${whereText(filename, compiled.problem)} does not compile: ${compiled.problem.message}`, 'fix the module file and build a new release (relup check finds this before a release ships)');
  }
  const body = compiled.body;
  const gate: VersionGate = { loading: true, revoked: false };
  const api = input.makeApi(gate);
  const module: { exports: unknown } = { exports: {} };
  const require = (id: string): unknown => (typeof id === 'string' && !isBuiltin(id) && input.requirePackage !== undefined ? input.requirePackage(id, filename) : builtinOnly(id, filename));
  try {
    body.call(module.exports, module.exports, module, require, api);
  } catch (e) {
    // Where in the file it threw, from the stack: the same file:line:col form as a compile error.
    throw new RuntimeError('compile-error', `${whereText(filename, throwSite(e, filename))} threw while loading: ${messageOf(e)}`, 'a module file\'s top level must only define functions and constants');
  } finally {
    gate.loading = false;
  }
  const exports = module.exports;
  if (exports === null || (typeof exports !== 'object' && typeof exports !== 'function')) {
    throw new RuntimeError('compile-error', `${filename} set module.exports to ${exports === null ? 'null' : typeof exports}; it must be an object of functions`);
  }
  return new ModuleVersion(input.name, input.release, input.file, input.hash, exports as Record<string, unknown>, gate);
}

/**
 * Module code may use Node's built-ins and nothing else: any other code it
 * needs must be a release module, so that it is versioned, hashed and swapped
 * with the rest (a `require`d file would stay old forever).
 */
function builtinOnly(id: string, filename: string): unknown {
  // node:module's createRequire would load any file or package past these
  // rules, unrecorded and never swapped: that bypass is refused, not half-supported.
  if (id === 'module' || id === 'node:module') {
    throw new RuntimeError('require-denied', `require(${JSON.stringify(id)}) in ${filename}: node:module (createRequire) would load code past the release's rules`, 'declare the npm package under packages: in release.yaml and require it by name; code of your own must be a module of the release');
  }
  if (typeof id === 'string' && isBuiltin(id)) return requireBuiltin(id);
  throw new RuntimeError(
    'require-denied',
    `require(${JSON.stringify(id)}) in ${filename}: only Node.js built-in modules (such as "node:crypto") can be required`,
    'make the code a module of the release and call it through relup.module(name)',
  );
}
