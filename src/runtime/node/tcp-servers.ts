import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { RuntimeError, messageOf } from './runtime-error.js';
import { TrackedListens } from './tracked-listens.js';
import type { EventDispatch, ServerInfo, ServerLog } from './http-servers.js';
import type { ConnectionTable } from './websocket-server.js';

export interface TcpListenOptions {
  port: number;
  host?: string;
  /** Exported function names of the calling module: `onConnection(conn)`, `onData(conn, bytes)`, `onClose(conn)`. */
  onConnection?: string;
  onData: string;
  onClose?: string;
}

/**
 * What a handler gets for one connection: a runtime object, the same for the
 * connection's whole life, frozen so that module code cannot hang its own
 * closures (old code) on it. Per-connection state belongs in module state,
 * keyed by `id` (`relup.state.sessions[conn.id]`): runtime-owned, migrated by
 * migrations and snapshotted for rollback like any module state.
 */
export interface ConnectionHandle {
  readonly id: string;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly open: boolean;
  write(data: string | Uint8Array): boolean;
  end(data?: string | Uint8Array): void;
  destroy(): void;
}


interface Entry {
  server: Server;
  module: string;
  options: TcpListenOptions;
  sockets: Set<Socket>;
  address: AddressInfo | undefined;
}

/**
 * Raw TCP servers owned by the node. Like the HTTP servers they hold names:
 * each event of each connection runs the current code of the handler, in
 * order (one event of a connection at a time), so connections survive every
 * upgrade and rollback without noticing it.
 */
export class TcpServers {
  private entries = new Set<Entry>();
  private readonly listens = new TrackedListens();
  private nextId = 1;
  /** Why listens failed, in order. */
  readonly failures: string[] = this.listens.failures;

  constructor(
    private readonly dispatch: EventDispatch,
    private readonly report: ServerLog,
    private readonly connections: ConnectionTable = { set: () => undefined, delete: () => undefined },
  ) {}

  listen(module: string, options: TcpListenOptions): Promise<AddressInfo> {
    if (options === null || typeof options !== 'object' || typeof options.onData !== 'string') {
      throw new RuntimeError('invalid-state', `relup.listenTcp from ${module} needs { port, onData: "<exported function name>" }`, 'handlers are names so that every event reaches the current code after an upgrade');
    }
    for (const key of ['onConnection', 'onClose'] as const) {
      if (options[key] !== undefined && typeof options[key] !== 'string') throw new RuntimeError('invalid-state', `relup.listenTcp from ${module}: ${key} must be the name of an exported function`);
    }
    const server = createServer();
    const entry: Entry = { server, module, options: { ...options }, sockets: new Set(), address: undefined };
    server.on('connection', (socket) => this.accept(entry, socket));
    this.entries.add(entry);
    return this.listens.bind(server, options, `relup.listenTcp from ${module}`, {
      bound: (address) => (entry.address = address),
      failed: () => this.entries.delete(entry),
    });
  }

  /** Resolves once every listen started so far has bound or failed. */
  settled(): Promise<void> {
    return this.listens.settled();
  }

  list(): ServerInfo[] {
    return [...this.entries]
      .filter((e) => e.address !== undefined)
      .map((e) => ({ module: e.module, handler: e.options.onData, address: e.address!.address, port: e.address!.port, family: e.address!.family, connections: e.sockets.size }));
  }

  async closeAll(): Promise<void> {
    const entries = [...this.entries];
    this.entries.clear();
    await Promise.all(
      entries.map(
        (e) =>
          new Promise<void>((resolve) => {
            e.server.close(() => resolve());
            for (const s of e.sockets) s.destroy();
            if (!e.server.listening) resolve();
          }),
      ),
    );
  }

  private accept(entry: Entry, socket: Socket): void {
    entry.sockets.add(socket);
    const handle = connectionHandle(`tcp-${this.nextId++}`, socket);
    this.connections.set(handle.id, handle);
    // One event of a connection at a time, in arrival order, whatever the handlers await.
    let queue: Promise<void> = Promise.resolve();
    const event = (fn: string | undefined, args: unknown[]): void => {
      if (fn === undefined) return;
      queue = queue.then(() =>
        this.dispatch(entry.module, fn, [handle, ...args]).then(
          () => undefined,
          (e: unknown) => this.report(entry.module, `${entry.module}.${fn} for connection ${handle.id} failed: ${messageOf(e)}`),
        ),
      );
    };
    event(entry.options.onConnection, []);
    socket.on('data', (chunk: Buffer) => event(entry.options.onData, [new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)]));
    socket.on('error', () => undefined); // 'close' follows; an error is not the node's to crash on
    socket.on('close', () => {
      entry.sockets.delete(socket);
      this.connections.delete(handle.id);
      event(entry.options.onClose, []);
    });
  }
}

/** A frozen handle over a socket: nothing of module code can be stored on it. */
export function connectionHandle(id: string, socket: Socket): ConnectionHandle {
  return Object.freeze({
    id,
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    get open() {
      return !socket.destroyed && socket.writable;
    },
    write: (data: string | Uint8Array) => (socket.destroyed ? false : socket.write(data)),
    end: (data?: string | Uint8Array) => {
      if (data === undefined) socket.end();
      else socket.end(data);
    },
    destroy: () => {
      socket.destroy();
    },
  });
}
