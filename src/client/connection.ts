import { createConnection, type Socket } from 'node:net';
import { NodeError } from '../errors/errors.js';
import { FrameDecoder, FrameError, encodeFrame } from '../protocol/framing.js';
import { nodeHelloSchema, nodeMessageSchema, PROTOCOL_VERSION, type NodeHello } from '../protocol/messages.js';
import { describeTarget, type Target } from './target.js';

export interface ConnectOptions {
  /** Give up connecting (and on the hello) after this many ms. */
  timeoutMs?: number;
  /** Answers the node's challenge on authenticated channels: returns the auth message to send. */
  authenticate?: (hello: NodeHello) => { message: unknown; verify: (nodeProof: string) => boolean };
  clientName?: string;
}

type Pending = {
  resolve: (result: unknown) => void;
  reject: (e: Error) => void;
  onEvent: ((event: Record<string, unknown>) => void) | undefined;
};

/**
 * One control-socket connection. Requests carry ids, so several may be in
 * flight (a `status` while an `apply` streams its events).
 */
export class Connection {
  readonly hello: NodeHello;
  private readonly socket: Socket;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedError: Error | undefined;

  private constructor(socket: Socket, hello: NodeHello) {
    this.socket = socket;
    this.hello = hello;
  }

  static async open(target: Target, options: ConnectOptions = {}): Promise<Connection> {
    const where = describeTarget(target);
    const timeoutMs = options.timeoutMs ?? 5000;
    const socket = target.kind === 'unix' ? createConnection({ path: target.path }) : createConnection({ host: target.host, port: target.port });
    const decoder = new FrameDecoder();
    const queue: unknown[] = [];
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const onData = (chunk: Buffer) => {
      try {
        queue.push(...decoder.push(chunk));
      } catch (e) {
        failure = new NodeError('bad_frame', `${where} sent a malformed frame: ${(e as Error).message}`);
      }
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
    const next = async (): Promise<unknown> => {
      const deadline = Date.now() + timeoutMs;
      while (queue.length === 0) {
        if (failure !== undefined) throw failure;
        const left = deadline - Date.now();
        if (left <= 0) throw new NodeError('timeout', `no answer from ${where} within ${timeoutMs} ms`, 'is the node running and is this its control socket?');
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, left).unref();
        });
        wake = undefined;
      }
      return queue.shift();
    };
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
        setTimeout(() => reject(new NodeError('timeout', `could not connect to ${where} within ${timeoutMs} ms`)), timeoutMs).unref();
      }).catch((e: unknown) => {
        throw e instanceof NodeError ? e : connectError(e as NodeJS.ErrnoException, where);
      });
      socket.write(encodeFrame({ type: 'hello', protocol: PROTOCOL_VERSION, client: options.clientName ?? 'relup' }));
      const raw = await next();
      const errorReply = nodeMessageSchema.safeParse(raw);
      if (errorReply.success && errorReply.data.type === 'error') throw new NodeError(errorReply.data.code, `${where} refused the connection: ${errorReply.data.message}`);
      const hello = nodeHelloSchema.safeParse(raw);
      if (!hello.success) throw new NodeError('bad_message', `${where} did not answer with a relup hello`, 'is this a relup control socket?');
      if (hello.data.protocol !== PROTOCOL_VERSION) {
        throw new NodeError('protocol_mismatch', `${where} speaks protocol ${hello.data.protocol}, this relup speaks ${PROTOCOL_VERSION}`, 'use a relup version matching the node');
      }
      if (hello.data.auth === 'challenge') {
        if (options.authenticate === undefined) throw new NodeError('not_authenticated', `${where} requires authentication`, 'name a secret file (secretFile) or variable (secretEnv) for this target in relup.config.yaml, or set RELUP_SECRET');
        const auth = options.authenticate(hello.data);
        socket.write(encodeFrame(auth.message));
        const reply = nodeMessageSchema.safeParse(await next());
        if (!reply.success || reply.data.type !== 'auth_ok') {
          const msg = reply.success && reply.data.type === 'error' ? reply.data.message : 'unexpected answer';
          throw new NodeError('not_authenticated', `${where} rejected the authentication: ${msg}`, 'check that the client and the node use the same secret');
        }
        if (!auth.verify(reply.data.proof)) throw new NodeError('not_authenticated', `${where} could not prove it knows the secret`, 'this is not the node you meant to reach, or its secret differs');
      }
      socket.off('data', onData).off('error', onError).off('close', onClose);
      const connection = new Connection(socket, hello.data);
      connection.listen(decoder, queue, where);
      return connection;
    } catch (e) {
      socket.destroy();
      throw e;
    }
  }

  private listen(decoder: FrameDecoder, early: unknown[], where: string): void {
    const handle = (raw: unknown) => {
      const parsed = nodeMessageSchema.safeParse(raw);
      if (!parsed.success) return this.fail(new NodeError('bad_message', `${where} sent a message that does not follow the protocol`));
      const msg = parsed.data;
      if (msg.type === 'auth_ok') return;
      if (msg.type === 'error' && msg.id === null) {
        // A connection-level error (idle timeout, too many connections): every pending request fails with it.
        return this.fail(new NodeError(msg.code, `${where}: ${msg.message}`));
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
    for (const m of early) handle(m);
    this.socket.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = decoder.push(chunk);
      } catch (e) {
        return this.fail(new NodeError('bad_frame', `${where} sent a malformed frame: ${e instanceof FrameError ? e.message : String(e)}`));
      }
      for (const m of messages) handle(m);
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
      this.socket.write(encodeFrame({ type: 'request', id, op, params }));
    });
  }

  close(): void {
    this.closedError ??= new NodeError('connection_closed', 'connection closed by the client');
    this.socket.end();
  }
}

function connectError(e: NodeJS.ErrnoException, where: string): NodeError {
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
    return new NodeError('unreachable', `no node is listening at ${where} (${e.code})`, 'start one with `relup node start --release <dir|bundle> --socket <path>` or check --target');
  }
  if (e.code === 'EACCES') return new NodeError('unreachable', `permission denied on ${where}`, 'the control socket is 0600: run as the user that started the node');
  return new NodeError('unreachable', `cannot reach ${where}: ${e.message}`);
}
