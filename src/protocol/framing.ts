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

export function encodeFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Incremental decoder: feed it chunks as they arrive; it returns the complete
 * frames' JSON values. It refuses a frame larger than `maxFrameBytes` as soon
 * as its header arrives, before buffering the body.
 */
export class FrameDecoder {
  private buffered: Buffer[] = [];
  private length = 0;
  private readonly maxFrameBytes: number;

  constructor(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet part of a complete frame. */
  get pending(): number {
    return this.length;
  }

  push(chunk: Buffer): unknown[] {
    this.buffered.push(chunk);
    this.length += chunk.length;
    const out: unknown[] = [];
    for (;;) {
      if (this.length < 4) return out;
      const head = this.peek(4);
      const size = head.readUInt32BE(0);
      if (size > this.maxFrameBytes) throw new FrameError('frame_too_large', `frame of ${size} bytes exceeds the limit of ${this.maxFrameBytes}`);
      if (this.length < 4 + size) return out;
      const all = this.take(4 + size);
      out.push(parseBody(all.subarray(4)));
    }
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

function parseBody(body: Buffer): unknown {
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
