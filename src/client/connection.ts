import { createConnection, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { NodeError } from '../errors/errors.js';
import { clientProof, newNonce, nodeProof, proofsEqual } from '../protocol/auth.js';
import { encodeBody, encodeFrame, FrameDecoder, FrameError, frameOf, parseBody } from '../protocol/framing.js';
import { nodeHelloSchema, nodeMessageSchema, PROTOCOL_VERSION, type NodeHello } from '../protocol/messages.js';
import { clientSession, SealError, sessionKey, type Session } from '../protocol/session.js';
import { describeTarget, type Target } from './target.js';

/** How the client checks a node's TLS certificate: a CA (PEM) that signed it, or the sha256 fingerprint of the certificate itself. */
export type TlsTrust = { ca: string | Buffer; servername?: string } | { fingerprint: string };

export interface ConnectOptions {
  /** Give up connecting (and on the hello) after this many ms. */
  timeoutMs?: number;
  /** The shared secret, for nodes that ask for the challenge (TCP). Never sent: the client proves it knows it. */
  secret?: Uint8Array;
  /** Speak TLS to a TCP node (`relup node start --tls-cert`), trusting this CA or this certificate fingerprint. */
  tls?: TlsTrust;
  clientName?: string;
}

type Pending = {
  resolve: (result: unknown) => void;
  reject: (e: Error) => void;
  onEvent: ((event: Record<string, unknown>) => void) | undefined;
};

/**
 * One control-socket connection. Requests carry ids, so several may be in
 * flight (a `status` while an `apply` streams its events). On an
 * authenticated channel every frame after the handshake is sealed
 * (docs/protocol.md#sealed-frames); a frame from the node that does not
 * verify ends the connection.
 */
export class Connection {
  readonly hello: NodeHello;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    hello: NodeHello,
    private readonly session: Session | undefined,
  ) {
    this.hello = hello;
  }

  static async open(target: Target, options: ConnectOptions = {}): Promise<Connection> {
    const where = describeTarget(target);
    const timeoutMs = options.timeoutMs ?? 5000;
    if (options.tls !== undefined && target.kind !== 'tcp') throw new NodeError('unreachable', `TLS is for TCP targets; ${where} is a Unix socket`);
    const socket = openSocket(target, options.tls);
    const decoder = new FrameDecoder();
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const onData = (chunk: Buffer) => {
      decoder.feed(chunk);
      wake?.();
    };
    const onError = (e: NodeJS.ErrnoException) => {
      failure = connectError(e, where);
      wake?.();
    };
    const onClose = () => {
      failure ??= new NodeError('connection_closed', `${where} closed the connection during the handshake`, 'check the node log; the node may require authentication');
      wake?.();
    };
    socket.on('data', onData).on('error', onError).on('close', onClose);
    /** The next plain handshake frame; frames after it stay in the decoder (they may be sealed). */
    const next = async (): Promise<unknown> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        let body: Buffer | undefined;
        try {
          body = decoder.next();
          if (body !== undefined) return parseBody(body);
        } catch (e) {
          throw new NodeError('bad_frame', `${where} sent a malformed frame: ${(e as Error).message}`);
        }
        if (failure !== undefined) throw failure;
        const left = deadline - Date.now();
        if (left <= 0) throw new NodeError('timeout', `no answer from ${where} within ${timeoutMs} ms`, 'is the node running and is this its control socket?');
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, left).unref();
        });
        wake = undefined;
      }
    };
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once(options.tls === undefined ? 'connect' : 'secureConnect', resolve);
        socket.once('error', reject);
        setTimeout(() => reject(new NodeError('timeout', `could not connect to ${where} within ${timeoutMs} ms`)), timeoutMs).unref();
      }).catch((e: unknown) => {
        throw e instanceof NodeError ? e : connectError(e as NodeJS.ErrnoException, where);
      });
      checkPinned(socket, options.tls, where);
      socket.write(encodeFrame({ type: 'hello', protocol: PROTOCOL_VERSION, client: options.clientName ?? 'relup' }));
      const raw = await next();
      const errorReply = nodeMessageSchema.safeParse(raw);
      if (errorReply.success && errorReply.data.type === 'error') throw new NodeError(errorReply.data.code, `${where} refused the connection: ${errorReply.data.message}`);
      const hello = nodeHelloSchema.safeParse(raw);
      if (!hello.success) throw new NodeError('bad_message', `${where} did not answer with a relup hello`, 'is this a relup control socket?');
      if (hello.data.protocol !== PROTOCOL_VERSION) {
        throw new NodeError('protocol_mismatch', `${where} speaks protocol ${hello.data.protocol}, this relup speaks ${PROTOCOL_VERSION}`, 'use a relup version matching the node');
      }
      let session: Session | undefined;
      if (hello.data.auth === 'challenge') {
        const secret = options.secret;
        if (secret === undefined) throw new NodeError('not_authenticated', `${where} requires authentication`, 'name a secret file (secretFile) or variable (secretEnv) for this target in relup.config.yaml, or set RELUP_SECRET');
        const nodeNonce = hello.data.nonce ?? '';
        const clientNonce = newNonce();
        socket.write(encodeFrame({ type: 'auth', nonce: clientNonce, proof: clientProof(secret, nodeNonce, clientNonce) }));
        const reply = nodeMessageSchema.safeParse(await next());
        if (reply.success && reply.data.type === 'error') {
          const code = reply.data.code;
          if (code === 'not_authenticated') throw new NodeError(code, `${where} rejected the authentication: ${reply.data.message}`, 'check that the client and the node use the same secret');
          throw new NodeError(code, `${where} refused the connection: ${reply.data.message}`);
        }
        if (!reply.success || reply.data.type !== 'auth_ok') throw new NodeError('not_authenticated', `${where} answered the authentication with something other than auth_ok`, 'is this a relup node?');
        if (!proofsEqual(nodeProof(secret, clientNonce, nodeNonce), reply.data.proof)) {
          throw new NodeError('not_authenticated', `${where} could not prove it knows the secret`, 'this is not the node you meant to reach, or its secret differs');
        }
        session = clientSession(sessionKey(secret, nodeNonce, clientNonce));
      }
      socket.off('data', onData).off('error', onError).off('close', onClose);
      const connection = new Connection(socket, hello.data, session);
      connection.listen(decoder, where);
      return connection;
    } catch (e) {
      socket.destroy();
      throw e;
    }
  }

  private listen(decoder: FrameDecoder, where: string): void {
    const handle = (body: Buffer) => {
      let raw: unknown;
      try {
        raw = parseBody(this.session === undefined ? body : this.session.opener.open(body));
      } catch (e) {
        if (e instanceof SealError) return this.fail(new NodeError('not_authenticated', `${where} sent a frame that is not bound to this session: ${e.message}`, 'something between this client and the node altered the traffic; use TLS or an SSH tunnel across untrusted networks'));
        return this.fail(new NodeError('bad_frame', `${where} sent a malformed frame: ${e instanceof FrameError ? e.message : String(e)}`));
      }
      const parsed = nodeMessageSchema.safeParse(raw);
      if (!parsed.success) return this.fail(new NodeError('bad_message', `${where} sent a message that does not follow the protocol`));
      const msg = parsed.data;
      if (msg.type === 'auth_ok') return this.fail(new NodeError('bad_message', `${where} sent a second auth_ok`));
      if (msg.type === 'error' && msg.id === null) {
        // A connection-level error (idle timeout, too many connections): every pending request fails with it.
        const hint = msg.code === 'not_authenticated' ? 'the node refused a frame of this session: something between this client and the node altered the traffic; across untrusted networks use TLS (tls in relup.config.yaml) or an SSH tunnel' : undefined;
        return this.fail(new NodeError(msg.code, `${where}: ${msg.message}`, hint));
      }
      if (msg.id === null) return;
      const p = this.pending.get(msg.id);
      if (p === undefined) return;
      if (msg.type === 'event') p.onEvent?.(msg.event);
      else if (msg.type === 'result') {
        this.pending.delete(msg.id);
        p.resolve(msg.result);
      } else {
        this.pending.delete(msg.id);
        p.reject(new NodeError(msg.code, msg.message, msg.code === 'busy' ? 'another upgrade is running on this node; wait for it (relup status) and try again' : undefined));
      }
    };
    const drain = () => {
      for (;;) {
        if (this.closedError !== undefined && this.socket.destroyed) return;
        let body: Buffer | undefined;
        try {
          body = decoder.next();
        } catch (e) {
          return this.fail(new NodeError('bad_frame', `${where} sent a malformed frame: ${(e as Error).message}`));
        }
        if (body === undefined) return;
        handle(body);
      }
    };
    drain();
    this.socket.on('data', (chunk: Buffer) => {
      decoder.feed(chunk);
      drain();
    });
    this.socket.on('error', (e) => this.fail(connectError(e, where)));
    this.socket.on('close', () => this.fail(new NodeError('connection_closed', `${where} closed the connection`, 'the node may have stopped or restarted; check relup status')));
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.socket.destroy();
  }

  /** Send a request and wait for its result; events stream to `onEvent`. Rejects with NodeError on a typed error. */
  request(op: string, params: unknown, onEvent?: (event: Record<string, unknown>) => void): Promise<unknown> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onEvent });
      const body = encodeBody({ type: 'request', id, op, params });
      this.socket.write(frameOf(this.session === undefined ? body : this.session.sealer.seal(body)));
    });
  }

  close(): void {
    this.closedError ??= new NodeError('connection_closed', 'connection closed by the client');
    this.socket.end();
  }
}

function openSocket(target: Target, tls: TlsTrust | undefined): Socket | TLSSocket {
  if (target.kind === 'unix') return createConnection({ path: target.path });
  if (tls === undefined) return createConnection({ host: target.host, port: target.port });
  if ('ca' in tls) return tlsConnect({ host: target.host, port: target.port, ca: tls.ca, servername: tls.servername ?? target.host, minVersion: 'TLSv1.3' });
  // A pinned certificate (typically self-signed): no CA is asked; checkPinned() compares the certificate itself before a byte is sent.
  return tlsConnect({ host: target.host, port: target.port, minVersion: 'TLSv1.3', rejectUnauthorized: false });
}

/** For a fingerprint trust: the node's certificate must be exactly the pinned one. */
function checkPinned(socket: Socket, tls: TlsTrust | undefined, where: string): void {
  if (tls === undefined || !('fingerprint' in tls)) return;
  const cert = (socket as TLSSocket).getPeerX509Certificate?.();
  const got = cert === undefined ? '(none)' : normaliseFingerprint(cert.fingerprint256);
  const pinned = normaliseFingerprint(tls.fingerprint);
  if (got !== pinned) throw new NodeError('not_authenticated', `the TLS certificate of ${where} has sha256 fingerprint ${got}, not the pinned ${pinned}`, 'if the node got a new certificate, update tls.fingerprint of this target (openssl x509 -in cert.pem -noout -fingerprint -sha256)');
}

export function normaliseFingerprint(text: string): string {
  return text.replace(/^sha256:/i, '').replace(/:/g, '').toLowerCase();
}

function connectError(e: NodeJS.ErrnoException, where: string): NodeError {
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
    return new NodeError('unreachable', `no node is listening at ${where} (${e.code})`, 'start one with `relup node start --release <dir|bundle> --socket <path>` or check --target');
  }
  if (e.code === 'EACCES') return new NodeError('unreachable', `permission denied on ${where}`, 'the control socket is 0600: run as the user that started the node');
  if (e.code?.startsWith('ERR_TLS') || e.code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || e.code === 'SELF_SIGNED_CERT_IN_CHAIN' || e.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || e.code === 'CERT_HAS_EXPIRED') {
    return new NodeError('not_authenticated', `the TLS certificate of ${where} is not trusted: ${e.message}`, 'check tls.ca or tls.fingerprint of this target in relup.config.yaml');
  }
  return new NodeError('unreachable', `cannot reach ${where}: ${e.message}`);
}
