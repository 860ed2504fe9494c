import { chmod, lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { FrameDecoder, FrameError, encodeFrame, DEFAULT_MAX_FRAME_BYTES } from '../../protocol/framing.js';
import { authSchema, clientHelloSchema, PROTOCOL_VERSION, requestSchema, type ErrorCode, type Request } from '../../protocol/messages.js';
import { clientProof, MIN_SECRET_BYTES, newNonce, nodeProof, proofsEqual } from '../../protocol/auth.js';
import { RuntimeError, isRuntimeError, messageOf } from '../node/runtime-error.js';
import type { NodeHost } from './node-host.js';

export interface ControlServerOptions {
  /** Path of the Unix control socket. */
  socket: string;
  maxFrameBytes?: number;
  /** Connections beyond this are refused with `too_many_connections`. */
  maxConnections?: number;
  /** A connection with no request in flight and nothing received for this long is closed. */
  idleTimeoutMs?: number;
}

export interface TcpControlOptions extends Omit<ControlServerOptions, 'socket'> {
  host: string;
  port: number;
  /** The shared secret clients must prove they know (challenge–response; never sent). */
  secret: Uint8Array;
}

interface ServeOptions {
  maxFrameBytes: number;
  idleTimeoutMs: number;
  /** Present on TCP: every connection must authenticate before its first request. */
  secret: Uint8Array | undefined;
  failures: FailureTracker;
}

export const DEFAULT_MAX_CONNECTIONS = 16;
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;

/**
 * The node's side of the control protocol (docs/protocol.md) on a Unix socket.
 * The node evaluates what it is asked; a client that goes away changes nothing.
 */
export class ControlServer {
  private readonly connections = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly socketPath: string | undefined,
  ) {}

  static async listen(host: NodeHost, options: ControlServerOptions): Promise<ControlServer> {
    await checkSocketDir(options.socket);
    await clearStaleSocket(options.socket);
    const control = ControlServer.create(host, options, undefined, options.socket);
    // The socket file is created 0600 by bind(2) under this umask: no window in which others could connect.
    const previous = process.umask(0o177);
    try {
      await control.bind({ path: options.socket });
    } finally {
      process.umask(previous);
    }
    await chmod(options.socket, 0o600);
    return control;
  }

  /**
   * TCP, only when asked (`relup node start --listen`): every connection must
   * prove it knows the shared secret before its first request.
   */
  static async listenTcp(host: NodeHost, options: TcpControlOptions): Promise<ControlServer> {
    if (options.secret.length < MIN_SECRET_BYTES) {
      throw new RuntimeError('invalid-state', `the shared secret is ${options.secret.length} bytes; at least ${MIN_SECRET_BYTES} are required`, 'generate one with: head -c 32 /dev/urandom | base64 > secret && chmod 600 secret');
    }
    const control = ControlServer.create(host, options, options.secret, undefined);
    await control.bind({ host: options.host, port: options.port });
    return control;
  }

  private static create(host: NodeHost, options: Omit<ControlServerOptions, 'socket'>, secret: Uint8Array | undefined, socketPath: string | undefined): ControlServer {
    const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const serve: ServeOptions = { idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, secret, failures: new FailureTracker() };
    let control: ControlServer | undefined;
    const server = createServer((socket) => {
      const connections = control!.connections;
      const full = [...connections].filter((c) => !c.destroyed).length >= maxConnections;
      // Refused sockets are tracked too, so close() never waits on one.
      connections.add(socket);
      socket.on('close', () => connections.delete(socket));
      if (full) {
        socket.end(encodeFrame({ type: 'error', id: null, code: 'too_many_connections', message: `this node accepts at most ${maxConnections} control connections` }));
        socket.destroySoon();
        return;
      }
      serveConnection(host, socket, serve);
    });
    control = new ControlServer(server, socketPath);
    return control;
  }

  private bind(where: { path: string } | { host: string; port: number }): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(where, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** The bound TCP address (for --listen with port 0). */
  address(): { host: string; port: number } | undefined {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  /** Stop accepting, close every connection, remove the socket file. */
  async close(): Promise<void> {
    for (const s of this.connections) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.socketPath !== undefined) await unlink(this.socketPath).catch(() => undefined);
  }
}

function serveConnection(host: NodeHost, socket: Socket, limits: ServeOptions): void {
  const decoder = new FrameDecoder(limits.maxFrameBytes);
  let greeted = false;
  // On TCP: the nonce of this connection's challenge; undefined once authenticated (or on a Unix socket).
  let challenge: string | undefined;
  let authenticated = limits.secret === undefined;
  let waiting = false;
  const peer = socket.remoteAddress ?? 'unix';
  let inFlight = 0;
  const send = (message: unknown) => {
    if (!socket.destroyed && socket.writable) socket.write(encodeFrame(message));
  };
  // After a fatal error nothing more from this client is read, even what is already buffered or still arriving.
  let closing = false;
  const fatal = (code: ErrorCode, message: string) => {
    closing = true;
    send({ type: 'error', id: null, code, message });
    socket.end();
    socket.destroySoon();
  };
  socket.setTimeout(limits.idleTimeoutMs, () => {
    // A client waiting for a long apply is not idle.
    if (inFlight === 0) fatal('idle_timeout', `no request for ${limits.idleTimeoutMs} ms`);
  });
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    if (closing) return;
    let messages: unknown[];
    try {
      messages = decoder.push(chunk);
    } catch (e) {
      return fatal('bad_frame', e instanceof FrameError ? e.message : messageOf(e));
    }
    for (const raw of messages) {
      if (socket.destroyed || closing) return;
      if (!greeted) {
        const hello = clientHelloSchema.safeParse(raw);
        if (!hello.success) return fatal('bad_message', 'the first frame must be a hello: {"type":"hello","protocol":1,"client":"…"}');
        if (hello.data.protocol !== PROTOCOL_VERSION) return fatal('protocol_mismatch', `this node speaks protocol ${PROTOCOL_VERSION}, not ${hello.data.protocol}`);
        greeted = true;
        const status = host.node.status();
        const node = { name: status.name, version: status.version, runtime: 'node' };
        if (limits.secret === undefined) send({ type: 'hello', protocol: PROTOCOL_VERSION, node, auth: 'none' });
        else {
          challenge = newNonce();
          send({ type: 'hello', protocol: PROTOCOL_VERSION, node, auth: 'challenge', nonce: challenge });
        }
        continue;
      }
      if (!authenticated) {
        if (waiting) continue;
        const auth = authSchema.safeParse(raw);
        const secret = limits.secret!;
        if (auth.success && proofsEqual(clientProof(secret, challenge!, auth.data.nonce), auth.data.proof)) {
          authenticated = true;
          limits.failures.succeeded(peer);
          send({ type: 'auth_ok', proof: nodeProof(secret, auth.data.nonce, challenge!) });
          challenge = undefined;
          continue;
        }
        // Every failure from this address makes the next answer slower: guessing the secret gets expensive.
        waiting = true;
        const delay = limits.failures.failed(peer);
        setTimeout(() => fatal('not_authenticated', auth.success ? 'wrong proof: this client does not know the shared secret' : 'authenticate first: {"type":"auth","nonce":…,"proof":…}'), delay).unref();
        return;
      }
      const request = requestSchema.safeParse(raw);
      if (!request.success) {
        const id = idOf(raw);
        const op = (raw as { op?: unknown } | null)?.op;
        const known = ['status', 'apply', 'make_permanent', 'states', 'call', 'invoke'];
        if (typeof op === 'string' && !known.includes(op)) send({ type: 'error', id, code: 'unknown_op', message: `unknown op "${op}"; this node knows ${known.join(', ')}` });
        else send({ type: 'error', id, code: id === null ? 'bad_message' : 'bad_request', message: request.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ') });
        continue;
      }
      inFlight += 1;
      handle(host, request.data, (event) => send({ type: 'event', id: request.data.id, event }))
        .then((result) => send({ type: 'result', id: request.data.id, result }))
        .catch((e: unknown) => send({ type: 'error', id: request.data.id, ...errorOf(e) }))
        .finally(() => {
          inFlight -= 1;
        });
    }
  });
}

async function handle(host: NodeHost, request: Request, onEvent: (event: Record<string, unknown>) => void): Promise<unknown> {
  switch (request.op) {
    case 'status':
      return host.status();
    case 'apply':
      return host.apply(request.params, (e) => onEvent({ ...e }));
    case 'make_permanent':
      return host.makePermanent(request.params.version);
    case 'states':
      return host.node.states();
    case 'call':
      try {
        return await host.node.call(request.params.process, request.params.message);
      } catch (e) {
        throw new RuntimeError('call-failed', messageOf(e));
      }
    case 'invoke':
      try {
        return (await host.node.invoke(request.params.module, request.params.function, request.params.args)) ?? null;
      } catch (e) {
        throw new RuntimeError('call-failed', messageOf(e));
      }
  }
}

function errorOf(e: unknown): { code: ErrorCode; message: string } {
  if (isRuntimeError(e, 'busy')) return { code: 'busy', message: e.message };
  if (isRuntimeError(e, 'call-failed')) return { code: 'call_failed', message: e.message };
  if (isRuntimeError(e)) return { code: 'bad_request', message: e.message };
  return { code: 'internal', message: messageOf(e) };
}

function idOf(raw: unknown): number | null {
  const id = (raw as { id?: unknown } | null)?.id;
  return typeof id === 'number' && Number.isInteger(id) && id >= 1 && id < 2 ** 31 ? id : null;
}

/** Refuse a socket directory that someone else could write to: they could replace the socket and impersonate the node. */
async function checkSocketDir(socket: string): Promise<void> {
  const dir = dirname(socket);
  const info = await lstat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new RuntimeError('invalid-state', `the control socket's directory ${dir} does not exist`, `create it with mode 0700: mkdir -m 700 ${dir}`);
  if ((info.mode & 0o022) !== 0) {
    throw new RuntimeError('invalid-state', `the control socket's directory ${dir} is writable by others (mode ${(info.mode & 0o777).toString(8)})`, `use a directory only you can write to, e.g. mkdir -m 700 ${dir}/relup`);
  }
  if (typeof process.getuid === 'function' && info.uid !== process.getuid()) {
    throw new RuntimeError('invalid-state', `the control socket's directory ${dir} belongs to another user`, 'use a directory you own');
  }
}

/** A socket file left by a node that died is removed; one a live node listens on is not. */
async function clearStaleSocket(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined) return;
  if (!info.isSocket()) throw new RuntimeError('invalid-state', `${path} exists and is not a socket`, 'choose another --socket path');
  const alive = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new RuntimeError('invalid-state', `another node is already listening on ${path}`, 'stop it first, or choose another --socket path');
  await unlink(path);
}

/**
 * Failed authentications per peer address: the n-th consecutive failure is
 * answered after 100 ms × 2^(n−1), at most 5 s. A success clears the count.
 */
export class FailureTracker {
  private readonly counts = new Map<string, number>();

  failed(peer: string): number {
    const n = (this.counts.get(peer) ?? 0) + 1;
    this.counts.set(peer, n);
    if (this.counts.size > 10_000) this.counts.delete(this.counts.keys().next().value!);
    return Math.min(100 * 2 ** (n - 1), 5000);
  }

  succeeded(peer: string): void {
    this.counts.delete(peer);
  }
}
