import { createConnection, type Socket } from 'node:net';
import { clientProof, newNonce } from '../../src/protocol/auth.js';
import { encodeBody, FrameDecoder, frameOf, parseBody } from '../../src/protocol/framing.js';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { clientSession, sessionKey, type Session } from '../../src/protocol/session.js';

export type Where = { path: string } | { host: string; port: number };

/**
 * A raw protocol client for tests: frames (or bytes) in, frames out, no help
 * from the Connection class. After `authenticate` it seals what it sends and
 * opens what it receives, like protocol 2 requires.
 */
export async function rawClient(where: Where) {
  const sock: Socket = createConnection(where as never);
  await new Promise((r, j) => sock.once('connect', r).once('error', j));
  const decoder = new FrameDecoder();
  const bodies: Buffer[] = [];
  const sent: Buffer[] = [];
  let session: Session | undefined;
  let closed = false;
  sock.on('data', (c: Buffer) => {
    decoder.feed(c);
    for (let b = decoder.next(); b !== undefined; b = decoder.next()) bodies.push(b);
  });
  sock.on('error', () => undefined);
  sock.on('close', () => (closed = true));
  const write = (bytes: Buffer) => {
    sent.push(bytes);
    if (!sock.destroyed) sock.write(bytes);
  };
  const client = {
    sock,
    sent,
    closed: () => closed,
    /** Send a message: plain before authentication, sealed after. */
    send(message: unknown) {
      const body = encodeBody(message);
      write(frameOf(session === undefined ? body : session.sealer.seal(body)));
    },
    /** Send a frame with exactly this body (no seal). */
    sendBody(body: Buffer) {
      write(frameOf(body));
    },
    sendBytes(bytes: Buffer) {
      write(bytes);
    },
    /** The next frame's body as received (still sealed), or undefined if none arrives in time. */
    async nextBody(waitMs = 10_000): Promise<Buffer | undefined> {
      for (let i = 0; i < waitMs / 10 && bodies.length === 0 && !closed; i++) await new Promise((r) => setTimeout(r, 10));
      return bodies.shift();
    },
    /** The next message, opened when sealed; `{ closed: true }` when the connection ended first. */
    async next(waitMs = 10_000): Promise<Record<string, unknown>> {
      const body = await client.nextBody(waitMs);
      if (body === undefined) return { closed: true };
      return parseBody(session === undefined ? body : session.opener.open(body)) as Record<string, unknown>;
    },
    async waitClosed(waitMs = 10_000): Promise<boolean> {
      for (let i = 0; i < waitMs / 10 && !closed; i++) await new Promise((r) => setTimeout(r, 10));
      return closed;
    },
    /** hello (+ auth with `secret` when the node challenges); returns the node's hello. */
    async handshake(secret?: Uint8Array): Promise<Record<string, unknown>> {
      client.send({ type: 'hello', protocol: PROTOCOL_VERSION, client: 'raw-test' });
      const hello = await client.next();
      if (hello['auth'] !== 'challenge' || secret === undefined) return hello;
      const nodeNonce = hello['nonce'] as string;
      const clientNonce = newNonce();
      client.send({ type: 'auth', nonce: clientNonce, proof: clientProof(secret, nodeNonce, clientNonce) });
      const ok = await client.next();
      if (ok['type'] !== 'auth_ok') throw new Error(`authentication failed: ${JSON.stringify(ok)}`);
      session = clientSession(sessionKey(secret, nodeNonce, clientNonce));
      return hello;
    },
    end: () => sock.destroy(),
  };
  return client;
}
