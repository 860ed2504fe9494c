import fc from 'fast-check';
import { describe, it } from 'vitest';
import { encodeFrame, FrameDecoder, FrameError, frameOf, HANDSHAKE_MAX_FRAME_BYTES, parseBody } from '../../src/protocol/framing.js';
import { applyOutcomeSchema, stepEventSchema } from '../../src/protocol/apply-outcome.js';
import { FrameOpener, FrameSealer, SealError, sessionKey, TAG_BYTES, type Direction } from '../../src/protocol/session.js';
import { statusResultSchema } from '../../src/protocol/status-result.js';
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
// Results a node sends (mutated too): the result schemas a client validates with must never throw either.
FRAMES.push(
  { name: 'demo', version: '1.2.2', hash: 'a'.repeat(64), modules: [{ name: 'game', hash: 'b'.repeat(64), version: '1.2.2' }], processes: [{ name: 'game', module: 'game', suspended: false, mailbox: 0, handling: false }], upgrading: false, permanent: '1.2.2', previous: [], installed: ['1.2.2'], history: [{ at: '2026-01-01T00:00:00.000Z', op: 'boot', to: '1.2.2', status: 'booted' }], stateDir: '/s' },
  { status: 'rolled-back', ok: false, message: 'm', name: 'demo', from: '1.2.2', to: '1.2.3', direction: 'up', version: '1.2.2', failure: { code: 'module-error', message: 'x', step: { index: 9, op: 'migrate', target: 'game' } }, rollback: { complete: true, undone: 3, problems: [] }, journal: [{ index: 0, op: 'verify_release', target: '1.2.3', status: 'ok', durationMs: 1, undo: { status: 'undone', durationMs: 0 } }], groups: [{ id: 0, modules: ['game'], processes: ['game'], suspensionMs: 1.5, migrated: { modules: [], processes: ['game'] } }], absent: {}, holdMs: 2, durationMs: 9, permanent: '1.2.2', previous: [] },
);
const frameValue = fc.tuple(fc.constantFrom(...FRAMES), fc.array(structOp(keysOf(FRAMES)), { minLength: 0, maxLength: 4 })).map(([seed, ops]) => applyStructOps(seed, ops, false));

function checkSchemas(value: unknown): void {
  const request = noThrow('requestSchema', () => requestSchema.safeParse(value));
  for (const [name, schema] of [['clientHello', clientHelloSchema], ['nodeHello', nodeHelloSchema], ['auth', authSchema], ['nodeMessage', nodeMessageSchema], ['applyParams', applyParamsSchema], ['statusResult', statusResultSchema], ['applyOutcome', applyOutcomeSchema], ['stepEvent', stepEventSchema]] as const) {
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

// ------------------------------------------------------------------ the handshake limit

/**
 * A node reads with a small limit until the handshake is done, then a large
 * one: the pull decoder must apply the limit in force when each header is
 * pulled, whatever the split, and refuse from the header alone.
 */
interface LimitCase {
  /** Frames pulled under the handshake limit before it rises. */
  handshake: number;
  sizes: number[];
  cuts: number[];
}
const limitCase: fc.Arbitrary<LimitCase> = fc.record({
  handshake: fc.integer({ min: 0, max: 3 }),
  sizes: fc.array(fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: HANDSHAKE_MAX_FRAME_BYTES - 8, max: HANDSHAKE_MAX_FRAME_BYTES + 8 }), fc.integer({ min: 5000, max: 70_000 })), { minLength: 1, maxLength: 6 }),
  cuts: fc.array(fc.nat(), { maxLength: 10 }),
});
const AFTER_LIMIT = 65_536;

function checkLimits(c: LimitCase): void {
  // A frame of `size` bytes whose body is a JSON string (2 quotes + filler).
  const bodies = c.sizes.map((n) => Buffer.from(JSON.stringify('x'.repeat(Math.max(0, n - 2)))));
  const stream = Buffer.concat(bodies.map((b) => frameOf(b)));
  const expectedError = bodies.findIndex((b, i) => b.length > (i < c.handshake ? HANDSHAKE_MAX_FRAME_BYTES : AFTER_LIMIT));
  const decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES);
  const cuts = [...new Set(c.cuts.map((n) => n % (stream.length + 1)))].sort((a, b) => a - b);
  let pulled = 0;
  let start = 0;
  for (const end of [...cuts, stream.length]) {
    decoder.feed(stream.subarray(start, end));
    start = end;
    for (;;) {
      if (pulled === c.handshake) decoder.maxFrameBytes = AFTER_LIMIT;
      let body: Buffer | undefined;
      try {
        body = decoder.next();
      } catch (e) {
        if (!(e instanceof FrameError) || e.code !== 'frame_too_large') throw new Error(`next() threw ${String(e)}`);
        if (pulled !== expectedError) throw new Error(`frame ${pulled} refused; the first over its limit is ${expectedError}`);
        // From the header alone: its body had not necessarily arrived.
        return;
      }
      if (body === undefined) break;
      if (!body.equals(bodies[pulled]!)) throw new Error(`frame ${pulled} differs`);
      parseBody(body);
      pulled += 1;
    }
  }
  if (expectedError !== -1) throw new Error(`frame ${expectedError} over its limit was never refused`);
  if (pulled !== bodies.length) throw new Error(`pulled ${pulled} of ${bodies.length}`);
}

// ------------------------------------------------------------------ sealed frames

type SealEdit =
  | { op: 'flip'; frame: number; bit: number }
  | { op: 'truncate'; frame: number; keep: number }
  | { op: 'replay'; frame: number }
  | { op: 'drop'; frame: number }
  | { op: 'swap'; frame: number }
  | { op: 'reflect'; frame: number }
  | { op: 'other-key'; frame: number }
  | { op: 'plain'; frame: number };

interface SealCase {
  bodies: Uint8Array[];
  edits: SealEdit[];
}

const sealEdit: fc.Arbitrary<SealEdit> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), frame: fc.nat(), bit: fc.nat() }),
  fc.record({ op: fc.constant('truncate' as const), frame: fc.nat(), keep: fc.nat() }),
  fc.record({ op: fc.constantFrom('replay' as const, 'drop' as const, 'swap' as const, 'reflect' as const, 'other-key' as const, 'plain' as const), frame: fc.nat() }),
);
const sealCase: fc.Arbitrary<SealCase> = fc.record({
  bodies: fc.array(fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.jsonValue({ maxDepth: 2 }).map((v) => new Uint8Array(Buffer.from(JSON.stringify(v) ?? 'null')))), { minLength: 1, maxLength: 8 }),
  edits: fc.array(sealEdit, { maxLength: 3 }),
});

const KEY = sessionKey(Buffer.from('a shared secret of 16+ bytes'), 'bm9kZQ==', 'Y2xpZW50');
const OTHER_KEY = sessionKey(Buffer.from('a shared secret of 16+ bytes'), 'Y2xpZW50', 'bm9kZQ==');

/**
 * The receiver accepts exactly the frames the sender sealed, in order: any
 * edit of the sequence (a bit flipped anywhere, a tag cut, a frame replayed,
 * dropped, swapped with the next, reflected from the other direction, sealed
 * with another session's key, or sent plain) makes the first edited position
 * throw SealError, and nothing before it is affected.
 */
function checkSeal(c: SealCase): void {
  const dir: Direction = 'c2n';
  const sealer = new FrameSealer(KEY, dir);
  const originals = c.bodies.map((b) => Buffer.from(b));
  const sealed = originals.map((b) => sealer.seal(b));
  let wire: { bytes: Buffer; honest: number | null }[] = sealed.map((bytes, i) => ({ bytes, honest: i }));
  for (const e of c.edits) {
    if (wire.length === 0) break;
    const i = e.frame % wire.length;
    const w = wire[i]!;
    switch (e.op) {
      case 'flip': {
        const copy = Buffer.from(w.bytes);
        if (copy.length === 0) break;
        copy[e.bit % copy.length] = copy[e.bit % copy.length]! ^ (1 << (e.bit >> 8) % 8);
        wire[i] = { bytes: copy, honest: null };
        break;
      }
      case 'truncate':
        if (w.bytes.length === 0) break;
        wire[i] = { bytes: w.bytes.subarray(0, e.keep % w.bytes.length), honest: null };
        break;
      case 'replay':
        wire.splice(i + 1, 0, { bytes: w.bytes, honest: null });
        break;
      case 'drop':
        wire.splice(i, 1);
        wire = wire.map((x, j) => (j >= i ? { ...x, honest: null } : x));
        break;
      case 'swap':
        if (i + 1 < wire.length) [wire[i], wire[i + 1]] = [{ ...wire[i + 1]!, honest: null }, { ...w, honest: null }];
        break;
      case 'reflect':
        wire[i] = { bytes: new FrameSealer(KEY, 'n2c').seal(originals[w.honest ?? 0] ?? Buffer.alloc(0)), honest: null };
        break;
      case 'other-key':
        wire[i] = { bytes: new FrameSealer(OTHER_KEY, dir).seal(originals[w.honest ?? 0] ?? Buffer.alloc(0)), honest: null };
        break;
      case 'plain':
        wire[i] = { bytes: Buffer.concat([originals[w.honest ?? 0] ?? Buffer.alloc(0)]), honest: null };
        break;
    }
  }
  // A frame is honest when it is exactly the sealed frame for its position (an edit that changed nothing leaves it so).
  const firstBad = wire.findIndex((w, i) => !(sealed[i] !== undefined && w.bytes.equals(sealed[i]!)));
  const opener = new FrameOpener(KEY, dir);
  for (let i = 0; i < wire.length; i++) {
    try {
      const json = opener.open(wire[i]!.bytes);
      if (i === firstBad) throw new Error(`edited frame ${i} was accepted`);
      if (!json.equals(originals[i]!)) throw new Error(`frame ${i} opened to other bytes`);
    } catch (e) {
      if (!(e instanceof SealError)) throw e;
      if (i !== firstBad) throw new Error(`honest frame ${i} refused (first edit at ${firstBad}): ${e.message}`);
      return;
    }
  }
  if (firstBad !== -1) throw new Error(`no SealError though frame ${firstBad} was edited`);
  if (wire.some((w) => w.bytes.length < TAG_BYTES)) throw new Error('a frame shorter than a tag was accepted');
}

describe('fuzz: control protocol frames and schemas', () => {
  it(
    'FrameDecoder: the handshake limit applies until it is raised, from the header alone, whatever the split',
    () => {
      fuzz(summary, 'protocol frames', 'handshake limit then the large one', limitCase, checkLimits, { numRuns: runs(3_000), seed: 0x4b1d });
    },
    timeoutFor(30_000),
  );

  it(
    'sealed frames: the receiver accepts exactly the sealed sequence; the first edited frame throws SealError',
    () => {
      fuzz(summary, 'sealed frames', 'edited sealed sequences', sealCase, checkSeal, { numRuns: runs(10_000), seed: 0x5ea1 });
    },
    timeoutFor(30_000),
  );

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
