import type { AddressInfo } from 'node:net';
import { RuntimeError } from './runtime-error.js';

/** What both kinds of node-owned server (HTTP, raw TCP) can bind. */
export interface Bindable {
  once(event: 'error', listener: (e: Error) => void): unknown;
  off(event: 'error', listener: (e: Error) => void): unknown;
  listen(options: { port: number; host?: string | undefined }, callback: () => void): unknown;
  address(): AddressInfo | string | null;
}

/**
 * The listens a node's servers have started: module code calls
 * `relup.listen`/`relup.listenTcp` without awaiting them, so the node keeps
 * them here to wait until every one has bound (`settled`) and to report the
 * ones that failed, in order (`failures`), before it calls a boot or an
 * upgrade good.
 */
export class TrackedListens {
  private readonly pending = new Set<Promise<unknown>>();
  /** Why listens failed, in order. */
  readonly failures: string[] = [];

  /** Bind `server`; `on.bound` and `on.failed` run before the promise settles, so the caller's bookkeeping is current when anyone awaits it. */
  bind(server: Bindable, options: { port: number; host?: string | undefined }, what: string, on: { bound(address: AddressInfo): void; failed(): void }): Promise<AddressInfo> {
    const listening = new Promise<AddressInfo>((resolve, reject) => {
      const onError = (e: Error): void => {
        on.failed();
        const error = new RuntimeError('invalid-state', `${what} on port ${options.port}: ${e.message}`);
        this.failures.push(error.message);
        reject(error);
      };
      server.once('error', onError);
      server.listen({ port: options.port, host: options.host }, () => {
        server.off('error', onError);
        const address = server.address() as AddressInfo;
        on.bound(address);
        resolve(address);
      });
    });
    const tracked = listening.catch(() => undefined);
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
    return listening;
  }

  /** Resolves once every listen started so far has bound or failed. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
