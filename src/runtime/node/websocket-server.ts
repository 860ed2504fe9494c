import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { messageOf } from './runtime-error.js';

export interface WebSocketOptions {
  /** Exported function names of the module that called relup.listen: `onOpen(ws)`, `onMessage(ws, data)`, `onClose(ws, code, reason)`. */
  onOpen?: string;
  onMessage: string;
  onClose?: string;
  /** Largest message accepted (default 1 MiB); a bigger one closes the socket with 1009. */
  maxPayload?: number;
}

/**
 * What a handler gets for one WebSocket: a frozen runtime object, the same
 * for the socket's whole life. Per-socket state belongs in module state,
 * keyed by `id`: migrated and snapshotted like any module state.
 */
export interface WebSocketHandle {
  readonly id: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly open: boolean;
  /** A string is sent as a text message, bytes as a binary one. */
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** The part of the `ws` package the node uses. */
interface WsSocket {
  readonly readyState: number;
  send(data: string | Uint8Array, options: { binary: boolean }): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'message', listener: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): void;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): void;
  on(event: 'error', listener: (e: Error) => void): void;
}
interface WsServer {
  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, done: (ws: WsSocket) => void): void;
}
type WsModule = { WebSocketServer: new (options: { noServer: true; maxPayload: number; perMessageDeflate: false }) => WsServer };

let wsModule: WsModule | undefined;
/** `ws` is loaded the first time a server takes a WebSocket: a node without one never needs the package. */
function ws(): WsModule {
  wsModule ??= createRequire(import.meta.url)('ws') as WsModule;
  return wsModule;
}

const upgraders = new Map<number, WsServer>();
const OPEN = 1;

export interface AcceptInput {
  id: string;
  module: string;
  options: WebSocketOptions;
  req: IncomingMessage;
  socket: Socket;
  head: Buffer;
  dispatch: (module: string, fn: string, args: unknown[]) => Promise<unknown>;
  report: (module: string, message: string) => void;
  /** The node's table of open connections (relup.connection(id)). */
  connections: ConnectionTable;
}

/** Open connections by id, so that module code can reach another connection (a chat room's broadcast) by an id kept in its state. */
export interface ConnectionTable {
  set(id: string, handle: object): unknown;
  delete(id: string): unknown;
}

/**
 * Complete the upgrade and route every event of the socket, in order, to the
 * current code of the named handlers. The socket belongs to the node: it
 * survives upgrades and rollbacks, and nothing of a module version is
 * registered on it.
 */
export function acceptWebSocket(input: AcceptInput): void {
  const { id, module, options, req, socket, head, dispatch, report, connections } = input;
  const maxPayload = options.maxPayload ?? 1024 * 1024;
  let upgrader = upgraders.get(maxPayload);
  if (upgrader === undefined) {
    upgrader = new (ws().WebSocketServer)({ noServer: true, maxPayload, perMessageDeflate: false });
    upgraders.set(maxPayload, upgrader);
  }
  upgrader.handleUpgrade(req, socket, head, (sock) => {
    const handle: WebSocketHandle = Object.freeze({
      id,
      url: req.url ?? '/',
      headers: { ...req.headers },
      get open() {
        return sock.readyState === OPEN;
      },
      send: (data: string | Uint8Array) => {
        if (sock.readyState === OPEN) sock.send(data, { binary: typeof data !== 'string' });
      },
      close: (code?: number, reason?: string) => sock.close(code, reason),
    });
    connections.set(id, handle);
    let queue: Promise<void> = Promise.resolve();
    const event = (fn: string | undefined, args: unknown[]): void => {
      if (fn === undefined) return;
      queue = queue.then(() =>
        dispatch(module, fn, [handle, ...args]).then(
          () => undefined,
          (e: unknown) => report(module, `${module}.${fn} for WebSocket ${id} failed: ${messageOf(e)}`),
        ),
      );
    };
    event(options.onOpen, []);
    sock.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      event(options.onMessage, [isBinary ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length) : bytes.toString('utf8')]);
    });
    sock.on('error', () => undefined); // 'close' follows
    sock.on('close', (code, reason) => {
      connections.delete(id);
      event(options.onClose, [code, reason.toString('utf8')]);
    });
  });
}
