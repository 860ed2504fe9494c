import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { RuntimeError, messageOf } from './runtime-error.js';

/** The request a module's handler receives. */
export interface HandlerRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  text(): Promise<string>;
  json(): Promise<unknown>;
}

/** What a handler returns. `json` is serialised with content-type application/json; otherwise `body` is sent as text. */
export interface HandlerResponse {
  status: number;
  body?: string;
  json?: unknown;
  headers?: Record<string, string>;
}

export interface ListenOptions {
  port: number;
  host?: string;
  /** Name of the calling module's exported function that handles each request. */
  handler: string;
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

const MAX_BODY_BYTES = 1024 * 1024;
const KEEP_ALIVE_MS = 30_000;

interface Entry {
  server: Server;
  module: string;
  handler: string;
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
  private pending = new Set<Promise<unknown>>();
  /** Why listens failed, in order. */
  readonly failures: string[] = [];

  constructor(private readonly dispatch: Dispatch) {}

  listen(module: string, options: ListenOptions): Promise<AddressInfo> {
    if (options === null || typeof options !== 'object' || typeof options.handler !== 'string') {
      throw new RuntimeError('invalid-state', `relup.listen from ${module} needs { port, handler: "<exported function name>" }`, 'the handler is a name so that requests reach the current code after an upgrade');
    }
    const server = createServer();
    server.keepAliveTimeout = KEEP_ALIVE_MS;
    const entry: Entry = { server, module, handler: options.handler, sockets: new Set(), address: undefined };
    server.on('connection', (socket: Socket) => {
      entry.sockets.add(socket);
      socket.on('close', () => entry.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void this.serve(entry, req, res);
    });
    this.entries.add(entry);
    const listening = new Promise<AddressInfo>((resolve, reject) => {
      const onError = (e: Error): void => {
        this.entries.delete(entry);
        const error = new RuntimeError('invalid-state', `relup.listen from ${module} on port ${options.port}: ${e.message}`);
        this.failures.push(error.message);
        reject(error);
      };
      server.once('error', onError);
      server.listen({ port: options.port, host: options.host }, () => {
        server.off('error', onError);
        entry.address = server.address() as AddressInfo;
        resolve(entry.address);
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
            if (!e.server.listening) resolve();
          }),
      ),
    );
  }

  private async serve(entry: Entry, req: IncomingMessage, res: ServerResponse): Promise<void> {
    let bodyText: Promise<string> | undefined;
    const text = (): Promise<string> => (bodyText ??= readBody(req));
    const request: HandlerRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: { ...req.headers },
      text,
      json: async () => JSON.parse(await text()) as unknown,
    };
    let status = 500;
    let headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
    let body: string;
    try {
      const result = await this.dispatch(entry.module, entry.handler, request);
      ({ status, headers, body } = toResponse(result, entry));
    } catch (e) {
      // A failing handler is one failed request, never a crashed node.
      status = 500;
      body = messageOf(e);
    }
    if (res.writableEnded || res.destroyed) return;
    res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
}

function toResponse(result: unknown, entry: Entry): { status: number; headers: Record<string, string>; body: string } {
  if (result === null || typeof result !== 'object') {
    throw new RuntimeError('invalid-response', `${entry.module}.${entry.handler} returned ${result === null ? 'null' : typeof result}; it must return { status, body?, json?, headers? }`);
  }
  const r = result as Partial<HandlerResponse>;
  const status = r.status ?? 200;
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new RuntimeError('invalid-response', `${entry.module}.${entry.handler} returned status ${String(status)}; it must be an integer from 100 to 599`);
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = String(v);
  if (r.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    return { status, headers, body: JSON.stringify(r.json) };
  }
  headers['content-type'] ??= 'text/plain; charset=utf-8';
  return { status, headers, body: r.body === undefined ? '' : String(r.body) };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new RuntimeError('invalid-state', `request body over ${MAX_BODY_BYTES} bytes`));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
