import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { clientProof, nodeProof, proofsEqual, newNonce } from '../../protocol/auth.js';
import { encodeBody, FrameDecoder, FrameError, frameOf, HANDSHAKE_MAX_FRAME_BYTES, parseBody } from '../../protocol/framing.js';
import { authSchema, clientHelloSchema, OP_NAMES, PROTOCOL_VERSION, requestSchema, type ErrorCode, type Request } from '../../protocol/messages.js';
import { nodeSession, SealError, sessionKey, type Session } from '../../protocol/session.js';
import { RuntimeError, isRuntimeError, messageOf } from '../node/runtime-error.js';
import type { NodeHost } from './node-host.js';

export interface ConnectionLimits {
  /** Largest frame after the handshake (an `apply` carries a bundle). */
  maxFrameBytes: number;
  /** Closed when no complete frame arrived for this long and no request is running. */
  idleTimeoutMs: number;
  /** The hello (and on TCP the auth) must be done within this long after connecting. */
  handshakeTimeoutMs: number;
  /** Requests of one connection evaluated at once; further frames wait, unread, in the kernel's buffers. */
  maxInFlight: number;
  /** Answers buffered for a client that does not read them; past this the node stops reading from it. */
  maxBufferedOutput: number;
  /** Present on TCP: every connection must authenticate, then every frame is sealed. */
  secret: Uint8Array | undefined;
  /** Delay before answering the n-th failed authentication from one address. */
  failed: (peer: string) => number;
  succeeded: (peer: string) => void;
}

const KNOWN_OPS: readonly string[] = OP_NAMES;
/** A peer that stopped reading cannot keep a socket it was told to leave. */
const CLOSE_GRACE_MS = 2000;

/**
 * The node's side of one control connection (docs/protocol.md): the
 * handshake, then requests. Until the handshake is done the connection is
 * "pending": it may send only small frames, must finish within a deadline and
 * is counted apart from established connections, so peers that cannot
 * authenticate never take an operator's place. Frames are pulled one at a
 * time, and only while the client reads its answers (backpressure).
 */
export class ControlConnection {
  private readonly decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES);
  private phase: 'hello' | 'auth' | 'open' = 'hello';
  private challenge: string | undefined;
  private session: Session | undefined;
  /** After a fatal error nothing more from this client is read, even what is already buffered or still arriving. */
  private closing = false;
  /** Waiting out the slow-down after a failed authentication. */
  private waiting = false;
  private inFlight = 0;
  private lastFrameAt = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly peer: string;

  constructor(
    private readonly host: NodeHost,
    private readonly socket: Socket,
    private readonly limits: ConnectionLimits,
    /** Asked when the handshake succeeds: a refusal message when the established connections are at their limit. */
    private readonly admit: (connection: ControlConnection) => string | undefined,
  ) {
    this.peer = socket.remoteAddress ?? 'unix';
    socket.on('data', (chunk: Buffer) => {
      if (this.closing) return;
      this.decoder.feed(chunk);
      this.pump();
    });
    socket.on('drain', () => this.pump());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closing = true;
      clearTimeout(this.timer);
    });
    this.timer = setTimeout(() => {
      if (this.phase !== 'open') this.fatal('handshake_timeout', `the handshake was not completed within ${this.limits.handshakeTimeoutMs} ms`);
    }, limits.handshakeTimeoutMs);
    this.timer.unref();
  }

  get established(): boolean {
    return this.phase === 'open';
  }

  /** Close with a connection-level error (e.g. evicted to make room). */
  refuse(code: ErrorCode, message: string): void {
    this.fatal(code, message);
  }

  private send(message: unknown): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const body = encodeBody(message);
    this.socket.write(frameOf(this.session === undefined ? body : this.session.sealer.seal(body)));
  }

  private fatal(code: ErrorCode, message: string): void {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.timer);
    this.send({ type: 'error', id: null, code, message });
    this.socket.end();
    this.socket.destroySoon();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /**
   * Read frames while answers are being taken: with too many requests running
   * or too much output unread, pause the socket (TCP flow control then stops
   * the client) and continue on 'drain' or when a request ends.
   */
  private pump(): void {
    while (!this.closing) {
      if (this.waiting || this.inFlight >= this.limits.maxInFlight || this.socket.writableLength > this.limits.maxBufferedOutput) {
        this.socket.pause();
        return;
      }
      let body: Buffer | undefined;
      try {
        body = this.decoder.next();
      } catch (e) {
        return this.fatal('bad_frame', e instanceof FrameError ? e.message : messageOf(e));
      }
      if (body === undefined) {
        this.socket.resume();
        return;
      }
      this.lastFrameAt = performance.now();
      this.onFrame(body);
    }
  }

  private onFrame(body: Buffer): void {
    let json = body;
    if (this.session !== undefined) {
      try {
        json = this.session.opener.open(body);
      } catch (e) {
        return this.fatal('not_authenticated', e instanceof SealError ? e.message : messageOf(e));
      }
    }
    let raw: unknown;
    try {
      raw = parseBody(json);
    } catch (e) {
      return this.fatal('bad_frame', e instanceof FrameError ? e.message : messageOf(e));
    }
    if (this.phase === 'hello') this.onHello(raw);
    else if (this.phase === 'auth') this.onAuth(raw);
    else this.onRequest(raw);
  }

  private onHello(raw: unknown): void {
    const hello = clientHelloSchema.safeParse(raw);
    if (!hello.success) return this.fatal('bad_message', `the first frame must be a hello: {"type":"hello","protocol":${PROTOCOL_VERSION},"client":"…"}`);
    if (hello.data.protocol !== PROTOCOL_VERSION) return this.fatal('protocol_mismatch', `this node speaks protocol ${PROTOCOL_VERSION}, not ${hello.data.protocol}`);
    const status = this.host.node.status();
    const node = { name: status.name, version: status.version, runtime: 'node' };
    if (this.limits.secret === undefined) {
      const refusal = this.admit(this);
      if (refusal !== undefined) return this.fatal('too_many_connections', refusal);
      this.send({ type: 'hello', protocol: PROTOCOL_VERSION, node, auth: 'none' });
      return this.open();
    }
    this.challenge = newNonce();
    this.phase = 'auth';
    this.send({ type: 'hello', protocol: PROTOCOL_VERSION, node, auth: 'challenge', nonce: this.challenge });
  }

  private onAuth(raw: unknown): void {
    const auth = authSchema.safeParse(raw);
    const secret = this.limits.secret!;
    const nodeNonce = this.challenge!;
    if (auth.success && proofsEqual(clientProof(secret, nodeNonce, auth.data.nonce), auth.data.proof)) {
      // Only a peer that proved the secret may take a place among the established connections.
      const refusal = this.admit(this);
      if (refusal !== undefined) return this.fatal('too_many_connections', refusal);
      this.limits.succeeded(this.peer);
      this.send({ type: 'auth_ok', proof: nodeProof(secret, auth.data.nonce, nodeNonce) });
      // Everything after auth_ok, both ways, is sealed with this connection's key.
      this.session = nodeSession(sessionKey(secret, nodeNonce, auth.data.nonce));
      return this.open();
    }
    // Every failure from this address makes the next answer slower: guessing the secret gets expensive.
    this.waiting = true;
    const delay = this.limits.failed(this.peer);
    setTimeout(() => this.fatal('not_authenticated', auth.success ? 'wrong proof: this client does not know the shared secret' : 'authenticate first: {"type":"auth","nonce":…,"proof":…}'), delay).unref();
  }

  private open(): void {
    this.phase = 'open';
    this.challenge = undefined;
    this.decoder.maxFrameBytes = this.limits.maxFrameBytes;
    clearTimeout(this.timer);
    this.lastFrameAt = performance.now();
    this.armIdle(this.limits.idleTimeoutMs);
  }

  /** Idle means no complete frame (not a byte: a trickle must not keep a socket) and no request running. */
  private armIdle(ms: number): void {
    this.timer = setTimeout(() => {
      if (this.closing) return;
      const quiet = performance.now() - this.lastFrameAt;
      if (this.inFlight > 0) return this.armIdle(this.limits.idleTimeoutMs);
      if (quiet >= this.limits.idleTimeoutMs) return this.fatal('idle_timeout', `no frame for ${this.limits.idleTimeoutMs} ms`);
      this.armIdle(this.limits.idleTimeoutMs - quiet);
    }, Math.max(1, ms));
    this.timer.unref();
  }

  private onRequest(raw: unknown): void {
    const request = requestSchema.safeParse(raw);
    if (!request.success) {
      const id = idOf(raw);
      const op = (raw as { op?: unknown } | null)?.op;
      if (typeof op === 'string' && !KNOWN_OPS.includes(op)) this.send({ type: 'error', id, code: 'unknown_op', message: `unknown op "${op}"; this node knows ${KNOWN_OPS.join(', ')}` });
      else this.send({ type: 'error', id, code: id === null ? 'bad_message' : 'bad_request', message: request.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ') });
      return;
    }
    const { id } = request.data;
    this.inFlight += 1;
    handle(this.host, request.data, (event) => this.send({ type: 'event', id, event }))
      .then((result) => this.send({ type: 'result', id, result }))
      .catch((e: unknown) => this.send({ type: 'error', id, ...errorOf(e) }))
      .finally(() => {
        this.inFlight -= 1;
        // The idle window counts from the end of the last request too.
        this.lastFrameAt = performance.now();
        this.pump();
      });
  }
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
