import type { AddressInfo } from 'node:net';
import { format } from 'node:util';
import { ProcessExit } from './gen-server.js';
import type { ListenOptions } from './http-servers.js';
import type { TcpListenOptions } from './tcp-servers.js';
import type { VersionGate } from './module-version.js';
import { RuntimeError } from './runtime-error.js';

/** The `relup` object a module file sees (docs/runtime-node.md, "The module API"). */
export interface RelupApi {
  /** This module's runtime-owned state: the same object for every version of the module. */
  readonly state: Record<string, unknown>;
  /** A late-binding handle: every property access resolves against the current version of `name`. */
  module(name: string): Record<string, (...args: unknown[]) => unknown>;
  call(process: string, msg: unknown): Promise<unknown>;
  cast(process: string, msg: unknown): void;
  setInterval(ms: number, module: string, fn: string, ...args: unknown[]): number;
  setTimeout(ms: number, module: string, fn: string, ...args: unknown[]): number;
  clearTimer(id: number): boolean;
  listen(options: ListenOptions): Promise<AddressInfo>;
  /** A node-owned TCP server whose connection events call the current code of this module's named handlers. */
  listenTcp(options: TcpListenOptions): Promise<AddressInfo>;
  /** The handle of an open TCP or WebSocket connection by its id (kept in module state), or undefined once it closed. */
  connection(id: string): object | undefined;
  readonly config: Record<string, unknown>;
  readonly version: string;
  log(...args: unknown[]): void;
  /** Inside a process handler: terminate the process (Erlang's exit/1). 'normal' is a normal exit; anything else a crash. */
  exit(reason?: string): never;
}

/** What the `relup` object needs from its node. Only the node implements it. */
export interface ApiHost {
  moduleState(module: string): Record<string, unknown>;
  moduleProxy(name: string): Record<string, (...args: unknown[]) => unknown>;
  call(process: string, msg: unknown): Promise<unknown>;
  cast(process: string, msg: unknown): void;
  setTimer(kind: 'interval' | 'timeout', ms: number, module: string, fn: string, args: unknown[]): number;
  clearTimer(id: number): boolean;
  listen(module: string, options: ListenOptions): Promise<AddressInfo>;
  listenTcp(module: string, options: TcpListenOptions): Promise<AddressInfo>;
  connection(id: string): object | undefined;
  readonly config: Record<string, unknown>;
  readonly version: string;
  log(module: string, release: string, message: string): void;
}

/**
 * Build the `relup` object of one module version. It points at the node, and
 * the node never points back at it: only the version's own code holds it, so
 * it goes away with the version.
 */
export function makeRelupApi(host: ApiHost, module: string, release: string, gate: VersionGate): RelupApi {
  const where = `${module}@${release}`;
  // Top-level code runs while the version is staged, before the point of no
  // return: anything with an effect on the running node must wait for
  // start()/init()/a handler.
  const effect = (what: string): void => {
    if (gate.revoked) throw new RuntimeError('purged', `${where} was purged; its code can no longer use relup.${what}`);
    if (gate.loading) {
      throw new RuntimeError('not-at-top-level', `relup.${what} cannot be used at the top level of ${where}`, 'do it in an exported function: start(), a process init(), a handler');
    }
  };
  return {
    get state() {
      effect('state');
      return host.moduleState(module);
    },
    module(name: string) {
      if (gate.revoked) effect('module');
      return host.moduleProxy(name);
    },
    call(process: string, msg: unknown) {
      try {
        effect('call');
      } catch (e) {
        return Promise.reject(e);
      }
      return host.call(process, msg);
    },
    cast(process: string, msg: unknown) {
      effect('cast');
      host.cast(process, msg);
    },
    setInterval(ms: number, target: string, fn: string, ...args: unknown[]) {
      effect('setInterval');
      return host.setTimer('interval', ms, target, fn, args);
    },
    setTimeout(ms: number, target: string, fn: string, ...args: unknown[]) {
      effect('setTimeout');
      return host.setTimer('timeout', ms, target, fn, args);
    },
    clearTimer(id: number) {
      effect('clearTimer');
      return host.clearTimer(id);
    },
    listen(options: ListenOptions) {
      let bound: Promise<AddressInfo>;
      try {
        effect('listen');
        bound = host.listen(module, options);
      } catch (e) {
        bound = Promise.reject(e);
      }
      // Modules commonly call listen() without awaiting it; a bind failure is
      // reported by the node (boot fails, or a log entry), never as an
      // unhandled rejection that would take the whole process down.
      bound.catch(() => undefined);
      return bound;
    },
    listenTcp(options: TcpListenOptions) {
      let bound: Promise<AddressInfo>;
      try {
        effect('listenTcp');
        bound = host.listenTcp(module, options);
      } catch (e) {
        bound = Promise.reject(e);
      }
      bound.catch(() => undefined);
      return bound;
    },
    connection(id: string) {
      effect('connection');
      return host.connection(id);
    },
    get config() {
      return host.config;
    },
    get version() {
      return host.version;
    },
    log(...args: unknown[]) {
      host.log(module, release, format(...args));
    },
    exit(reason = 'normal'): never {
      throw new ProcessExit(String(reason));
    },
  };
}
