/**
 * Control-socket framing: each frame is a 4-byte unsigned big-endian length
 * followed by that many bytes of UTF-8 JSON. This is Erlang's `{packet, 4}`
 * and trivial in Lua, so other runtimes can speak it without a library.
 */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

export class FrameError extends Error {
  override readonly name = 'FrameError';
  readonly code: 'frame_too_large' | 'frame_invalid_utf8' | 'frame_invalid_json';
  constructor(code: FrameError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

/** Before authentication a node reads only small frames (hello, auth): an unauthenticated peer cannot make it buffer more. */
export const HANDSHAKE_MAX_FRAME_BYTES = 4096;

/** The UTF-8 JSON bytes of a message: a frame's body, before any seal. */
export function encodeBody(message: unknown): Buffer {
  return Buffer.from(JSON.stringify(message), 'utf8');
}

/** A frame around `body`: 4-byte big-endian length, then the body. */
export function frameOf(body: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

export function encodeFrame(message: unknown): Buffer {
  return frameOf(encodeBody(message));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Incremental decoder. Feed it chunks as they arrive and pull complete frame
 * bodies one at a time with `next()`, so the reader can change the limit
 * between two frames (after the handshake) and stop pulling when its answers
 * are not being read. A frame larger than `maxFrameBytes` is refused as soon
 * as its header is pulled, before its body is awaited. `push` is the
 * convenience for plain (unsealed) streams: feed, then every frame parsed.
 */
export class FrameDecoder {
  private buffered: Buffer[] = [];
  private length = 0;
  /** May change between frames: small during the handshake, larger after it. */
  maxFrameBytes: number;

  constructor(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet returned as part of a frame. */
  get pending(): number {
    return this.length;
  }

  feed(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.buffered.push(chunk);
    this.length += chunk.length;
  }

  /** The next complete frame's body, or undefined until more bytes arrive. Throws FrameError for an oversized header. */
  next(): Buffer | undefined {
    if (this.length < 4) return undefined;
    const size = this.peek(4).readUInt32BE(0);
    if (size > this.maxFrameBytes) throw new FrameError('frame_too_large', `frame of ${size} bytes exceeds the limit of ${this.maxFrameBytes}`);
    if (this.length < 4 + size) return undefined;
    return this.take(4 + size).subarray(4);
  }

  push(chunk: Buffer): unknown[] {
    this.feed(chunk);
    const out: unknown[] = [];
    for (let body = this.next(); body !== undefined; body = this.next()) out.push(parseBody(body));
    return out;
  }

  private peek(n: number): Buffer {
    if (this.buffered[0]!.length < n) this.buffered = [Buffer.concat(this.buffered)];
    return this.buffered[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    const rest = all.subarray(n);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return all.subarray(0, n);
  }
}

/** A frame body (JSON bytes, after any seal is removed) as a value; FrameError for invalid UTF-8, JSON, or nesting too deep. */
export function parseBody(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new FrameError('frame_invalid_utf8', 'frame body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FrameError('frame_invalid_json', `frame body is not JSON: ${(e as Error).message}`);
  }
  if (nestedDeeperThan(value, MAX_JSON_DEPTH)) throw new FrameError('frame_invalid_json', `frame body nests deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

/** JSON.parse reads any depth, but JSON.stringify and structuredClone fail a few thousand levels down: refuse what could not be answered or copied. */
export const MAX_JSON_DEPTH = 512;

function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}
