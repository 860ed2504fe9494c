import { chmod, lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { dirname } from 'node:path';
import { DEFAULT_MAX_FRAME_BYTES } from '../../protocol/framing.js';
import { MIN_SECRET_BYTES } from '../../protocol/auth.js';
import { RuntimeError } from '../node/runtime-error.js';
import { checkPathTrust } from '../../fs/check-path-trust.js';
import { ControlConnection, type ConnectionLimits } from './control-connection.js';
import type { NodeHost } from './node-host.js';

export interface ControlServerOptions {
  /** Path of the Unix control socket. */
  socket: string;
  maxFrameBytes?: number;
  /** Established connections (handshake done) beyond this are refused with `too_many_connections`. */
  maxConnections?: number;
  /** Connections still in their handshake; past this the oldest of them is closed to make room. */
  maxHandshakes?: number;
  /** A connection with no request in flight and no complete frame received for this long is closed. */
  idleTimeoutMs?: number;
  /** The handshake must be done within this long after connecting. */
  handshakeTimeoutMs?: number;
  /** Requests of one connection evaluated at once. */
  maxInFlight?: number;
  /** Answers buffered for a client that does not read them before the node stops reading its requests. */
  maxBufferedOutput?: number;
}

export interface TcpControlOptions extends Omit<ControlServerOptions, 'socket'> {
  host: string;
  port: number;
  /** The shared secret clients must prove they know (challenge–response; never sent). */
  secret: Uint8Array;
  /** Serve the protocol inside TLS 1.3 with this certificate and key (PEM): confidentiality for remote nodes. */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export const DEFAULT_MAX_CONNECTIONS = 16;
export const DEFAULT_MAX_HANDSHAKES = 32;
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_IN_FLIGHT = 32;
export const DEFAULT_MAX_BUFFERED_OUTPUT = 1024 * 1024;

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
    const control = ControlServer.create(host, options, options.secret, undefined, options.tls);
    await control.bind({ host: options.host, port: options.port });
    return control;
  }

  private static create(host: NodeHost, options: Omit<ControlServerOptions, 'socket'>, secret: Uint8Array | undefined, socketPath: string | undefined, tls?: TcpControlOptions['tls']): ControlServer {
    const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const maxHandshakes = options.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES;
    const failures = new FailureTracker();
    const limits: ConnectionLimits = {
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      maxBufferedOutput: options.maxBufferedOutput ?? DEFAULT_MAX_BUFFERED_OUTPUT,
      secret,
      failed: (peer) => failures.failed(peer),
      succeeded: (peer) => failures.succeeded(peer),
    };
    // Two pools: connections still in their handshake, and established ones. Peers that never
    // authenticate can only crowd each other out, never the operator's established connection.
    const pending = new Set<ControlConnection>();
    const established = new Set<ControlConnection>();
    const admit = (c: ControlConnection): string | undefined => {
      pending.delete(c);
      if (established.size >= maxConnections) return `this node accepts at most ${maxConnections} control connections`;
      established.add(c);
      return undefined;
    };
    let control: ControlServer | undefined;
    const accept = (socket: Socket) => {
      // Every socket is tracked, so close() never waits on one.
      control!.connections.add(socket);
      if (pending.size >= maxHandshakes) {
        // The oldest pending handshake makes room: a flood of silent peers is outlasted by anyone who completes a handshake promptly.
        const oldest = pending.values().next().value!;
        pending.delete(oldest);
        oldest.refuse('too_many_connections', `more than ${maxHandshakes} connections were in their handshake; this one was the oldest`);
      }
      const connection = new ControlConnection(host, socket, limits, admit);
      pending.add(connection);
      socket.on('close', () => {
        control!.connections.delete(socket);
        pending.delete(connection);
        established.delete(connection);
      });
    };
    // With TLS a connection enters the pools once its TLS handshake is done; a slow TLS handshake is cut by the same deadline.
    const server = tls === undefined ? createServer(accept) : createTlsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.3', handshakeTimeout: limits.handshakeTimeoutMs }, accept);
    if (tls !== undefined) server.on('tlsClientError', (_e, socket) => socket.destroy());
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

/** Refuse a socket directory that someone else could write to: they could replace the socket and impersonate the node. */
async function checkSocketDir(socket: string): Promise<void> {
  const dir = dirname(socket);
  const info = await lstat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new RuntimeError('invalid-state', `the control socket's directory ${dir} does not exist`, `create it with mode 0700: mkdir -m 700 ${dir}`);
  // The directory and every one above it (src/fs/check-path-trust.ts): a 0700 directory inside one others can write can be renamed away.
  await checkPathTrust(dir, "the control socket's directory");
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
