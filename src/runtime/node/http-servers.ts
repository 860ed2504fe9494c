import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { RuntimeError, messageOf } from './runtime-error.js';
import { TrackedListens } from './tracked-listens.js';
import { acceptWebSocket, type ConnectionTable, type WebSocketOptions } from './websocket-server.js';

/** The request a module's handler receives. */
export interface HandlerRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** The body as it arrives, chunk by chunk (no size limit: the handler decides). Read it once, or use one of the buffered readers. */
  body: AsyncIterable<Uint8Array>;
  /** The whole body, byte for byte (up to the server's maxBodyBytes: past it, the request is answered 413). */
  bytes(): Promise<Uint8Array>;
  text(): Promise<string>;
  json(): Promise<unknown>;
}

/**
 * What a handler returns. `json` is serialised with content-type
 * application/json; a string `body` is sent as UTF-8 text; a
 * `Uint8Array`/`ArrayBuffer` byte for byte; an async iterable or a
 * `ReadableStream` (of strings or bytes) is streamed as it is produced.
 * A header given as an array is sent once per value (`set-cookie`).
 */
export interface HandlerResponse {
  status: number;
  body?: string | Uint8Array | ArrayBuffer | AsyncIterable<string | Uint8Array> | ReadableStream<string | Uint8Array>;
  json?: unknown;
  headers?: Record<string, string | number | readonly (string | number)[]>;
}

export interface ListenOptions {
  port: number;
  host?: string;
  /** Name of the calling module's exported function that handles each request. */
  handler: string;
  /** Largest body `bytes()`, `text()` and `json()` read (default 1 MiB); a bigger one is answered 413. */
  maxBodyBytes?: number;
  /** Accept WebSocket upgrades on this server (the `ws` package): each event calls the current code of these named handlers. */
  websocket?: WebSocketOptions;
}

export interface ServerInfo {
  module: string;
  handler: string;
  address: string;
  port: number;
  family: string;
  /** Open connections (keep-alive sockets included). */
  connections: number;
}

/** Dispatches one request to the current code of `module`'s `handler`. */
export type Dispatch = (module: string, handler: string, req: HandlerRequest) => Promise<unknown>;

/** Where a server reports what went wrong with a request (a refused response, a stream that failed half-way). */
export type ServerLog = (module: string, message: string) => void;

/** Calls `module[fn](...args)` in the current code, as outside work (held during an upgrade). */
export type EventDispatch = (module: string, fn: string, args: unknown[]) => Promise<unknown>;

const MAX_BODY_BYTES = 1024 * 1024;
const KEEP_ALIVE_MS = 30_000;

interface Entry {
  server: Server;
  module: string;
  handler: string;
  maxBodyBytes: number;
  sockets: Set<Socket>;
  address: AddressInfo | undefined;
}

/**
 * HTTP servers owned by the node. A server remembers the module and handler
 * *names*; every request reaches the current version, so listening sockets
 * and open keep-alive connections survive every upgrade and rollback.
 */
export class HttpServers {
  private entries = new Set<Entry>();
  private readonly listens = new TrackedListens();
  /** Why listens failed, in order. */
  readonly failures: string[] = this.listens.failures;

  private nextSocketId = 1;

  constructor(
    private readonly dispatch: Dispatch,
    private readonly report: ServerLog = () => undefined,
    private readonly events: EventDispatch = () => Promise.reject(new RuntimeError('invalid-state', 'this node takes no WebSocket')),
    private readonly connections: ConnectionTable = { set: () => undefined, delete: () => undefined },
  ) {}

  listen(module: string, options: ListenOptions): Promise<AddressInfo> {
    if (options === null || typeof options !== 'object' || typeof options.handler !== 'string') {
      throw new RuntimeError('invalid-state', `relup.listen from ${module} needs { port, handler: "<exported function name>" }`, 'the handler is a name so that requests reach the current code after an upgrade');
    }
    const server = createServer();
    server.keepAliveTimeout = KEEP_ALIVE_MS;
    const maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
    if (options.websocket !== undefined && (options.websocket === null || typeof options.websocket !== 'object' || typeof options.websocket.onMessage !== 'string')) {
      throw new RuntimeError('invalid-state', `relup.listen from ${module}: websocket needs { onMessage: "<exported function name>", onOpen?, onClose? }`, 'handlers are names so that every message reaches the current code after an upgrade');
    }
    if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 0) throw new RuntimeError('invalid-state', `relup.listen from ${module}: maxBodyBytes must be a whole number of bytes, got ${String(options.maxBodyBytes)}`);
    const entry: Entry = { server, module, handler: options.handler, maxBodyBytes, sockets: new Set(), address: undefined };
    server.on('connection', (socket: Socket) => {
      entry.sockets.add(socket);
      socket.on('close', () => entry.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void this.serve(entry, req, res);
    });
    const websocket = options.websocket;
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      // Without a WebSocket handler an upgrade is refused, never answered as a plain request.
      if (websocket === undefined || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 30\r\n\r\nno WebSocket handler is here\r\n');
        return;
      }
      acceptWebSocket({ id: `ws-${this.nextSocketId++}`, module, options: websocket, req, socket, head, dispatch: this.events, report: this.report, connections: this.connections });
    });
    this.entries.add(entry);
    return this.listens.bind(server, options, `relup.listen from ${module}`, {
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
      .map((e) => ({ module: e.module, handler: e.handler, address: e.address!.address, port: e.address!.port, family: e.address!.family, connections: e.sockets.size }));
  }

  async closeAll(): Promise<void> {
    const entries = [...this.entries];
    this.entries.clear();
    await Promise.all(
      entries.map(
        (e) =>
          new Promise<void>((resolve) => {
            e.server.close(() => resolve());
            e.server.closeAllConnections();
            // Upgraded (WebSocket) sockets are no longer the HTTP server's: close them too.
            for (const socket of e.sockets) socket.destroy();
            if (!e.server.listening) resolve();
          }),
      ),
    );
  }

  private async serve(entry: Entry, req: IncomingMessage, res: ServerResponse): Promise<void> {
    let bodyBytes: Promise<Buffer> | undefined;
    let streamed = false;
    const bytes = (): Promise<Buffer> => {
      if (streamed) return Promise.reject(new RuntimeError('invalid-state', 'the request body was already read as a stream'));
      return (bodyBytes ??= readBody(req, entry.maxBodyBytes));
    };
    const request: HandlerRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: { ...req.headers },
      get body(): AsyncIterable<Uint8Array> {
        if (bodyBytes !== undefined) throw new RuntimeError('invalid-state', 'the request body was already read whole');
        streamed = true;
        return req;
      },
      bytes,
      text: async () => (await bytes()).toString('utf8'),
      json: async () => JSON.parse((await bytes()).toString('utf8')) as unknown,
    };
    let response: Prepared;
    try {
      const result = await this.dispatch(entry.module, entry.handler, request);
      response = toResponse(result, entry);
    } catch (e) {
      // A failing handler is one failed request, never a crashed node.
      if (e instanceof RuntimeError && e.code === 'body-too-large') response = { status: 413, headers: { ...TEXT, connection: 'close' }, body: Buffer.from(e.message) };
      else {
        if (e instanceof RuntimeError && e.code === 'invalid-response') this.report(entry.module, e.message);
        response = { status: 500, headers: TEXT, body: Buffer.from(messageOf(e)) };
      }
    }
    if (res.writableEnded || res.destroyed) return;
    if (!(response.body instanceof Uint8Array)) {
      await this.stream(entry, res, response.status, response.headers, response.body);
      return;
    }
    res.writeHead(response.status, { ...response.headers, 'content-length': response.body.length });
    res.end(response.body);
  }

  /** Send a streamed body chunk by chunk, respecting back-pressure; a stream that fails half-way cuts the response (its status is already sent). */
  private async stream(entry: Entry, res: ServerResponse, status: number, headers: OutgoingHeaders, body: AsyncIterable<unknown>): Promise<void> {
    res.writeHead(status, headers);
    try {
      for await (const chunk of body) {
        if (res.destroyed) break;
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk instanceof Uint8Array ? chunk : undefined;
        if (bytes === undefined) throw new RuntimeError('invalid-response', `${entry.module}.${entry.handler} streamed a ${describeValue(chunk)}; a streamed body yields strings or bytes`);
        if (!res.write(bytes)) await new Promise<void>((resolve) => { res.once('drain', resolve); res.once('close', resolve); });
      }
      res.end();
    } catch (e) {
      this.report(entry.module, `${entry.module}.${entry.handler}: the streamed response failed after its status was sent: ${messageOf(e)}`);
      res.destroy();
    }
  }
}

type OutgoingHeaders = Record<string, string | number | string[]>;
interface Prepared {
  status: number;
  headers: OutgoingHeaders;
  body: Uint8Array | AsyncIterable<unknown>;
}
const TEXT: OutgoingHeaders = { 'content-type': 'text/plain; charset=utf-8' };

function toResponse(result: unknown, entry: Entry): Prepared {
  const what = `${entry.module}.${entry.handler}`;
  if (result === null || typeof result !== 'object') {
    throw new RuntimeError('invalid-response', `${what} returned ${result === null ? 'null' : typeof result}; it must return { status, body?, json?, headers? }`);
  }
  const r = result as Partial<HandlerResponse>;
  const status = r.status ?? 200;
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new RuntimeError('invalid-response', `${what} returned status ${String(status)}; it must be an integer from 100 to 599`);
  }
  const headers: OutgoingHeaders = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) {
    // Several values of one header (set-cookie) are sent as several header lines, never joined.
    headers[k.toLowerCase()] = Array.isArray(v) ? v.map(String) : String(v);
  }
  if (r.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    return { status, headers, body: Buffer.from(JSON.stringify(r.json)) };
  }
  const body: unknown = r.body;
  if (body === undefined || typeof body === 'string') {
    headers['content-type'] ??= 'text/plain; charset=utf-8';
    return { status, headers, body: Buffer.from(body ?? '') };
  }
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
    headers['content-type'] ??= 'application/octet-stream';
    return { status, headers, body: body instanceof ArrayBuffer ? new Uint8Array(body) : body };
  }
  if (body instanceof ReadableStream || (typeof body === 'object' && body !== null && Symbol.asyncIterator in body)) {
    headers['content-type'] ??= 'application/octet-stream';
    return { status, headers, body: body as AsyncIterable<unknown> };
  }
  // Anything else would be sent as "[object Object]": refuse it, say why.
  throw new RuntimeError('invalid-response', `${what} returned a body of type ${describeValue(body)}; a body is a string, a Uint8Array/Buffer/ArrayBuffer, an async iterable or a ReadableStream (use json for data)`);
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  const name = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor?.name;
  return name === undefined || name === '' ? 'object' : name;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new RuntimeError('body-too-large', `request body of ${declared} bytes is over the limit of ${limit} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new RuntimeError('body-too-large', `request body over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
