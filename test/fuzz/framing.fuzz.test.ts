import fc from 'fast-check';
import { describe, it } from 'vitest';
import { encodeFrame, FrameDecoder, FrameError } from '../../src/protocol/framing.js';
import {
  applyParamsSchema,
  authSchema,
  clientHelloSchema,
  ERROR_CODES,
  nodeHelloSchema,
  nodeMessageSchema,
  requestSchema,
} from '../../src/protocol/messages.js';
import { serializeScript } from '../../src/script/serialize-script.js';
import { demoImage, planScript } from '../runtime/helpers/release-image.js';
import { fuzz, noThrow, runs, Summary, timeoutFor } from './kit.js';
import { applyStructOps, BAD_UTF8, keysOf, structOp } from './mutate.js';

/**
 * The control protocol without a socket: the frame decoder under every way
 * of splitting a byte stream, and the message schemas on mutated frames.
 */
const summary = new Summary('control protocol (frames, schemas)');

// ------------------------------------------------------------------ frames

/** One piece of a byte stream a client may send. */
type Piece =
  | { kind: 'frame'; value: unknown }
  | { kind: 'bad-utf8'; bytes: number[] }
  | { kind: 'bad-json'; text: string }
  | { kind: 'oversized'; size: number }
  | { kind: 'raw'; bytes: number[] };

const BAD_JSON = ['', '{', '{"type":', 'undefined', "{'a':1}", '{"a":1}}', '[1,]', 'NaN', '01', '{"a":1} x', '\uFEFF{}', '"\\ud800"x', '/* */{}', '{"a":"\u0000"}x'];

const piece = (limit: number): fc.Arbitrary<Piece> =>
  fc.oneof(
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('frame' as const), value: fc.jsonValue({ maxDepth: 3 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('bad-utf8' as const), bytes: fc.constantFrom(...BAD_UTF8) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('bad-json' as const), text: fc.constantFrom(...BAD_JSON) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('oversized' as const), size: fc.oneof(fc.constant(limit + 1), fc.integer({ min: limit + 1, max: 2 ** 32 - 1 }), fc.constant(2 ** 32 - 1)) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('raw' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 12 }) }) },
  );

function bytesOf(p: Piece): Buffer {
  switch (p.kind) {
    case 'frame':
      return encodeFrame(p.value);
    case 'bad-utf8':
    case 'bad-json': {
      const body = p.kind === 'bad-utf8' ? Buffer.concat([Buffer.from('{"type":"'), Buffer.from(p.bytes), Buffer.from('"}')]) : Buffer.from(p.text, 'utf8');
      const head = Buffer.alloc(4);
      head.writeUInt32BE(body.length);
      return Buffer.concat([head, body]);
    }
    case 'oversized': {
      // Only the header: the decoder must refuse before any body.
      const head = Buffer.alloc(4);
      head.writeUInt32BE(p.size);
      return head;
    }
    case 'raw':
      return Buffer.from(p.bytes);
  }
}

type Outcome = { frames: string[]; error?: { code: string; at: number } };

/** A second, obvious decoder over the whole stream: the frames, and the first error with the byte count at which it becomes knowable. */
function reference(stream: Buffer, limit: number): Outcome {
  const frames: string[] = [];
  let at = 0;
  for (;;) {
    if (stream.length - at < 4) return { frames };
    const size = stream.readUInt32BE(at);
    if (size > limit) return { frames, error: { code: 'frame_too_large', at: at + 4 } };
    if (stream.length - at - 4 < size) return { frames };
    const body = stream.subarray(at + 4, at + 4 + size);
    at += 4 + size;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      return { frames, error: { code: 'frame_invalid_utf8', at } };
    }
    try {
      frames.push(JSON.stringify(JSON.parse(text)));
    } catch {
      return { frames, error: { code: 'frame_invalid_json', at } };
    }
  }
}

interface StreamCase {
  limit: number;
  pieces: Piece[];
  cuts: number[];
}

const streamCase: fc.Arbitrary<StreamCase> = fc
  .constantFrom(16, 100, 1024, 64 * 1024 * 1024)
  .chain((limit) => fc.record({ limit: fc.constant(limit), pieces: fc.array(piece(limit), { maxLength: 10 }), cuts: fc.array(fc.nat(), { maxLength: 12 }) }));

/**
 * Whatever the split: the decoder yields the reference's frames in order, or
 * throws a FrameError with the reference's code in the push that brings the
 * offending bytes, and never earlier; frames finished before the error in
 * that same push are lost with it (the connection is closed anyway).
 */
function checkStream(c: StreamCase): void {
  const stream = Buffer.concat(c.pieces.map(bytesOf));
  const expected = reference(stream, c.limit);
  const cuts = [...new Set(c.cuts.map((n) => n % (stream.length + 1)))].sort((a, b) => a - b);
  const decoder = new FrameDecoder(c.limit);
  const got: string[] = [];
  let start = 0;
  for (const end of [...cuts, stream.length]) {
    const chunk = stream.subarray(start, end);
    let frames: unknown[];
    try {
      frames = decoder.push(chunk);
    } catch (e) {
      if (!(e instanceof FrameError)) throw new Error(`push threw ${String(e)}, not a FrameError`);
      if (expected.error === undefined) throw new Error(`FrameError ${e.code} on a stream without an error`);
      if (e.code !== expected.error.code) throw new Error(`FrameError ${e.code}, expected ${expected.error.code}`);
      if (end < expected.error.at || start >= expected.error.at) throw new Error(`FrameError ${e.code} in bytes ${start}..${end}, the error is at ${expected.error.at}`);
      if (!expected.frames.slice(0, got.length).every((f, i) => f === got[i])) throw new Error('frames before the error differ');
      return;
    }
    got.push(...frames.map((f) => JSON.stringify(f)));
    start = end;
    if (expected.error !== undefined && end >= expected.error.at) throw new Error(`no FrameError though the stream's ${expected.error.code} at byte ${expected.error.at} has arrived`);
  }
  if (expected.error !== undefined && stream.length >= expected.error.at) throw new Error('the error was never raised');
  if (JSON.stringify(got) !== JSON.stringify(expected.frames)) throw new Error(`frames differ: got ${got.length}, expected ${expected.frames.length}`);
  const complete = expected.frames.length;
  if (got.length !== complete) throw new Error('frame count');
}

// ------------------------------------------------------------------ message schemas

const UP = planScript(demoImage('1.2.2'), demoImage('1.2.3'));
const FRAMES: unknown[] = [
  { type: 'hello', protocol: 2, client: 'relup 0.1.0' },
  { type: 'hello', protocol: 2, node: { name: 'demo', version: '1.2.2', runtime: 'node' }, auth: 'none' },
  { type: 'hello', protocol: 2, node: { name: 'demo', version: '1.2.2', runtime: 'node' }, auth: 'challenge', nonce: 'bm9uY2U=' },
  { type: 'auth', nonce: 'Y2xpZW50', proof: 'cHJvb2Y=' },
  { type: 'auth_ok', proof: 'cHJvb2Y=' },
  { type: 'request', id: 1, op: 'status', params: {} },
  { type: 'request', id: 2, op: 'apply', params: { script: JSON.parse(serializeScript(UP)) as unknown, bundle: 'H4sIAAAAAAAAA+3OMQrCQBCF4a1zih3sJ', dryRun: true, permanent: true, deadlineMs: 30_000 } },
  { type: 'request', id: 3, op: 'make_permanent', params: { version: '1.2.2' } },
  { type: 'request', id: 4, op: 'states', params: {} },
  { type: 'request', id: 5, op: 'call', params: { process: 'game', message: { type: 'stats' } } },
  { type: 'request', id: 6, op: 'invoke', params: { module: 'route', function: 'getStats', args: [] } },
  { type: 'result', id: 1, result: { version: '1.2.2' } },
  { type: 'event', id: 2, event: { index: 11, op: 'suspend', target: 'game', status: 'ok', durationMs: 0.2 } },
  { type: 'error', id: 8, code: 'busy', message: 'an upgrade to 1.2.3 is running' },
  { type: 'error', id: null, code: 'bad_frame', message: 'frame body is not JSON' },
];
const KNOWN_OPS = ['status', 'apply', 'make_permanent', 'states', 'call', 'invoke'];
const frameValue = fc.tuple(fc.constantFrom(...FRAMES), fc.array(structOp(keysOf(FRAMES)), { minLength: 0, maxLength: 4 })).map(([seed, ops]) => applyStructOps(seed, ops, false));

function checkSchemas(value: unknown): void {
  const request = noThrow('requestSchema', () => requestSchema.safeParse(value));
  for (const [name, schema] of [['clientHello', clientHelloSchema], ['nodeHello', nodeHelloSchema], ['auth', authSchema], ['nodeMessage', nodeMessageSchema], ['applyParams', applyParamsSchema]] as const) {
    noThrow(`${name}Schema`, () => schema.safeParse(value));
  }
  if (request.success) {
    const { id, op } = request.data;
    if (!Number.isInteger(id) || id < 1 || id > 2 ** 31 - 1) throw new Error(`accepted request id ${id}`);
    if (!KNOWN_OPS.includes(op)) throw new Error(`accepted op ${op}`);
  }
  const node = nodeMessageSchema.safeParse(value);
  if (node.success && node.data.type === 'error' && !(ERROR_CODES as readonly string[]).includes(node.data.code)) throw new Error('accepted an unknown error code');
}

describe('fuzz: control protocol frames and schemas', () => {
  it(
    'FrameDecoder: any split of any stream gives the frames in order or the right FrameError as soon as the bad bytes arrive',
    () => {
      fuzz(summary, 'protocol frames', 'FrameDecoder on split hostile streams', streamCase, checkStream, { numRuns: runs(10_000), seed: 0xf4a3e });
    },
    timeoutFor(30_000),
  );

  it(
    'message schemas: mutated frames never make safeParse throw; an accepted request has a valid id and a known op',
    () => {
      fuzz(summary, 'protocol messages', 'schemas on mutated frames', frameValue, checkSchemas, { numRuns: runs(10_000), seed: 0x5c4e3a });
    },
    timeoutFor(30_000),
  );
});
