import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Session-bound frames (protocol 2, docs/protocol.md#sealed-frames). After an
 * authenticated handshake every frame carries an HMAC tag over its direction,
 * its sequence number and its JSON bytes, under a key derived from the secret
 * and both nonces of this connection. A relay that forwarded the handshake
 * cannot inject, replay, reorder, drop or reflect a frame: the next tag the
 * other side checks would not verify. This binds frames to the session; it
 * does not hide them (use TLS or an SSH tunnel for that: docs/security.md).
 */
export const TAG_BYTES = 32;
const SESSION_LABEL = 'relup-session-v1\n';

export type Direction = 'c2n' | 'n2c';

export class SealError extends Error {
  override readonly name = 'SealError';
}

/** K = HMAC-SHA256(secret, "relup-session-v1\n" + nodeNonce + "\n" + clientNonce), nonces as the base64 texts sent. */
export function sessionKey(secret: Uint8Array, nodeNonce: string, clientNonce: string): Buffer {
  return createHmac('sha256', secret).update(`${SESSION_LABEL}${nodeNonce}\n${clientNonce}`).digest();
}

/** tag = HMAC-SHA256(K, dir ‖ seq as u64 big-endian ‖ JSON bytes) */
export function frameTag(key: Uint8Array, dir: Direction, seq: bigint, json: Uint8Array): Buffer {
  const header = Buffer.alloc(11);
  header.write(dir, 0, 'latin1');
  header.writeBigUInt64BE(seq, 3);
  return createHmac('sha256', key).update(header).update(json).digest();
}

/** Seals the frames one side sends: JSON bytes ‖ tag, with its own counter from 0. */
export class FrameSealer {
  private seq = 0n;
  constructor(
    private readonly key: Uint8Array,
    private readonly dir: Direction,
  ) {}

  seal(json: Buffer): Buffer {
    const tag = frameTag(this.key, this.dir, this.seq, json);
    this.seq += 1n;
    return Buffer.concat([json, tag]);
  }
}

/**
 * Checks the frames one side receives, in order. A frame that does not verify
 * throws SealError; the caller must close the connection, since its counter
 * can no longer agree with the peer's.
 */
export class FrameOpener {
  private seq = 0n;
  constructor(
    private readonly key: Uint8Array,
    private readonly dir: Direction,
  ) {}

  /** The JSON bytes of a sealed frame body, or SealError. */
  open(body: Buffer): Buffer {
    if (body.length < TAG_BYTES) throw new SealError(`sealed frame ${this.seq} is ${body.length} bytes, shorter than its ${TAG_BYTES}-byte tag`);
    const json = body.subarray(0, body.length - TAG_BYTES);
    const given = body.subarray(body.length - TAG_BYTES);
    const expected = frameTag(this.key, this.dir, this.seq, json);
    if (!timingSafeEqual(expected, given)) throw new SealError(`sealed frame ${this.seq} (${this.dir}) does not verify: injected, replayed, reordered, altered or reflected`);
    this.seq += 1n;
    return json;
  }
}

/** Both halves of one side of a session. */
export interface Session {
  sealer: FrameSealer;
  opener: FrameOpener;
}

export function nodeSession(key: Uint8Array): Session {
  return { sealer: new FrameSealer(key, 'n2c'), opener: new FrameOpener(key, 'c2n') };
}

export function clientSession(key: Uint8Array): Session {
  return { sealer: new FrameSealer(key, 'c2n'), opener: new FrameOpener(key, 'n2c') };
}
