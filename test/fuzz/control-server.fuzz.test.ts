import { createHmac } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Connection } from '../../src/client/connection.js';
import { NodeError } from '../../src/errors/errors.js';
import { encodeBody, encodeFrame, FrameDecoder, frameOf, HANDSHAKE_MAX_FRAME_BYTES } from '../../src/protocol/framing.js';
import { clientProof, newNonce } from '../../src/protocol/auth.js';
import { FrameOpener, FrameSealer, sessionKey } from '../../src/protocol/session.js';
import { clientHelloSchema, ERROR_CODES, nodeHelloSchema, nodeMessageSchema, PROTOCOL_VERSION, requestSchema } from '../../src/protocol/messages.js';
import { bundleBytes } from '../../src/release/bundle-bytes.js';
import { tarGz } from '../../src/release/tar-writer.js';
import { ControlServer } from '../../src/runtime/node-host/control-server.js';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import type { ReleaseImage } from '../../src/runtime/node/release-image.js';
import type { RelupScript } from '../../src/script/script-schema.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { demoFiles, demoImage, imageFromFiles, patchedDemo, planScript } from '../runtime/helpers/release-image.js';
import { fuzzAsync, MULTIPLIER, runs, Summary, timeoutFor } from './kit.js';
import { applyStructOps, BAD_UTF8, hostileValue, keysOf, structOp } from './mutate.js';

/**
 * The control server, live: a NodeHost running the demo 1.2.2 in this
 * process behind a real Unix socket, and hundreds of raw connections each
 * sending a random sequence of frames (before and after the hello, bad ids,
 * unknown ops, wrong types, garbage and real-but-wrong bundles, invalid
 * UTF-8 and JSON, oversized headers, frames split at random byte boundaries,
 * a truncated frame then close, or an abrupt close). A model of the protocol
 * (docs/protocol.md) says what each frame must get back; every frame the node
 * sends must follow the schemas; after each connection the node must still
 * run 1.2.2 with nothing suspended and no upgrade left running, nothing a
 * client sent after a fatal error may have taken effect, and after each batch
 * a fresh well-formed client must get a `status` answer.
 */
const summary = new Summary('control server (live)');

const SEQUENCES = runs(850);
const BATCH = 50;
const ANSWER_TIMEOUT_MS = 10_000;
const KNOWN_OPS = ['status', 'apply', 'make_permanent', 'states', 'call', 'invoke'];

// ------------------------------------------------------------------ the node

let dir: string;
let socketPath: string;
let host: NodeHost;
let server: ControlServer;
/** Bundles (base64) a request names by key; materialise() puts the bytes in. */
const bundles: Record<'b122' | 'b123' | 'other' | 'patched' | 'bomb' | 'badyaml' | 'truncated' | 'flipped', string> = { b122: '', b123: '', other: '', patched: '', bomb: '', badyaml: '', truncated: '', flipped: '' };
const UP: RelupScript = planScript(demoImage('1.2.2'), demoImage('1.2.3'));
const DOWN: RelupScript = planScript(demoImage('1.2.3'), demoImage('1.2.2'));

async function base64Bundle(image: ReleaseImage): Promise<string> {
  return (await bundleBytes(image.release, image.files)).bytes.toString('base64');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relup-fuzz-server-'));
  await mkdir(join(dir, 'run'), { mode: 0o700 });
  host = await NodeHost.start({ release: join(DEMO_RELEASES, '1.2.2'), stateDir: join(dir, 'state'), config: { port: 0, tickMs: 3_600_000 } });
  socketPath = join(dir, 'run', 'node.sock');
  server = await ControlServer.listen(host, { socket: socketPath });
  bundles.b122 = await base64Bundle(demoImage('1.2.2'));
  bundles.b123 = await base64Bundle(demoImage('1.2.3'));
  // Another application, and a rebuilt 1.2.3 with other code: real bundles of the wrong release.
  const other = demoFiles('1.2.3');
  other.set('release.yaml', Buffer.from(other.get('release.yaml')!.toString('utf8').replace('name: demo', 'name: other')));
  bundles.other = await base64Bundle(imageFromFiles(other, 'other'));
  bundles.patched = await base64Bundle(imageFromFiles(patchedDemo('1.2.3', { 'route.js': (t) => `${t}\n// rebuilt\n` }), 'patched'));
  // Hostile ones: release.yaml an alias bomb or not YAML at all (no manifest), a real bundle cut in half, one with a flipped byte.
  const rest = [...demoFiles('1.2.3')].filter(([p]) => p !== 'release.yaml');
  const bomb = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
  bundles.bomb = (await tarGz([['release.yaml', Buffer.from(bomb)], ...rest])).toString('base64');
  bundles.badyaml = (await tarGz([['release.yaml', Buffer.from('name: [demo\nversion: {')], ...rest])).toString('base64');
  const real = Buffer.from(bundles.b123, 'base64');
  bundles.truncated = real.subarray(0, real.length >> 1).toString('base64');
  const flipped = Buffer.from(real);
  flipped[flipped.length >> 1] = flipped[flipped.length >> 1]! ^ 0x40;
  bundles.flipped = flipped.toString('base64');
}, 30_000);

afterAll(async () => {
  await server?.close();
  await host?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ what a client sends

type Bytes = { kind: 'bytes'; bytes: Buffer; label: string; fatal: 'bad_frame' };
type Frame = { kind: 'frame'; value: unknown; label: string; ghost?: string };
/** A valid JSON body written by hand (nested deeper than JSON.stringify goes). */
type Text = { kind: 'text'; text: string; label: string; deep?: boolean };
type Send = Bytes | Frame | Text;

const frameBytes = (body: Buffer): Buffer => {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
};

const id = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 2 ** 31 - 1 }) },
  { weight: 2, arbitrary: fc.constantFrom(1, 2 ** 31 - 1) },
  { weight: 3, arbitrary: fc.constantFrom<unknown>(0, -1, -(2 ** 31), 2 ** 31, 2 ** 53, 1e308, 1.5, '7', '', null, true, [], {}) },
);

const op = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...KNOWN_OPS) },
  { weight: 2, arbitrary: fc.constantFrom<unknown>('reboot', '', 'STATUS', 'status ', '__proto__', 'constructor', 'toString', 'hello', 'auth') },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(5, null, ['status'], { op: 'status' }) },
);

// The 1.2.3 bundle goes only with dryRun: true, so nothing can really upgrade; every other bundle is refused whatever the script.
const applyParams = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ script: UP, bundle: 'b123', dryRun: true }) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(UP, DOWN), fc.array(structOp(keysOf([UP, DOWN])), { minLength: 1, maxLength: 4 }), fc.constantFrom('b123', 'b122', 'other', 'patched'), fc.boolean())
      .map(([s, ops, bundle, dryRun]) => ({ script: applyStructOps(s, ops, false), bundle, dryRun: bundle === 'b123' ? true : dryRun })),
  },
  { weight: 2, arbitrary: fc.record({ script: fc.constantFrom(UP, DOWN), bundle: fc.constantFrom('b122', 'other', 'patched', 'bomb', 'badyaml', 'truncated', 'flipped'), dryRun: fc.boolean() }) },
  {
    weight: 4,
    arbitrary: fc.record({
      script: fc.constantFrom<unknown>(UP, DOWN, {}, null, 'script', []),
      bundle: fc.oneof(
        fc.constantFrom('', '!!!not base64!!!', 'AAAA', 'H4sIAAAAAAAAA+3OMQrCQBCF4a1zih3sJ', '='.repeat(100)),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('base64')),
        fc.string({ maxLength: 40 }),
      ),
      dryRun: fc.constantFrom<unknown>(true, false, 'yes', 0),
      deadlineMs: fc.constantFrom<unknown>(undefined, 1, 50, 30_000, 0, -1, 3_600_001, 1.5),
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom<unknown>({}, null, [], { script: UP }, { bundle: 'AAAA' }) },
);

const message = fc.oneof(
  fc.record({ type: fc.constantFrom('add_player'), id: fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom<unknown>('__proto__', 'constructor', 1, null)), name: hostileValue }),
  fc.record({ type: fc.constantFrom('add_score', 'get_player'), id: fc.string({ maxLength: 4 }), points: fc.oneof(fc.integer(), fc.constantFrom<unknown>('10', null, 1e308)) }),
  fc.constantFrom<unknown>({ type: 'stats' }, { type: 'nope' }, null, 'stats', [], {}),
  hostileValue,
);

const paramsFor = (o: unknown): fc.Arbitrary<unknown> => {
  switch (o) {
    case 'status':
    case 'states':
      return fc.constantFrom<unknown>({}, undefined, { verbose: true }, null, []);
    case 'apply':
      return applyParams;
    case 'make_permanent':
      return fc.record({ version: fc.constantFrom<unknown>('1.2.2', '1.2.3', '9.9.9', '', '../../etc', 1.2) });
    case 'call':
      return fc.record({ process: fc.constantFrom<unknown>('game', 'game', 'nope', '', '__proto__', 5), message });
    case 'invoke':
      // Not http_api.start: it would open another HTTP server, which is what invoke is for, not a protocol question.
      return fc.record(
        {
          module: fc.constantFrom<unknown>('route', 'config', 'game', 'http_api', 'nope', '__proto__', ''),
          function: fc.constantFrom<unknown>('getStats', 'get', 'getAll', 'set', 'handleRequest', 'handleCall', 'init', 'tick', 'handle', 'constructor', 'toString', 'hasOwnProperty', '__proto__', 'nope', 7),
          args: fc.oneof(fc.array(hostileValue, { maxLength: 3 }), fc.constantFrom<unknown>(undefined, 'x', null)),
        },
        { requiredKeys: ['module', 'function'] },
      );
    default:
      return hostileValue;
  }
};

const request: fc.Arbitrary<Frame> = fc
  .tuple(id, op)
  .chain(([i, o]) => fc.tuple(fc.constant(i), fc.constant(o), paramsFor(o), fc.constantFrom('ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'no-params', 'extra-key', 'no-type', 'no-id')))
  .map(([i, o, params, shape]) => {
    const value: Record<string, unknown> = { type: 'request', id: i, op: o, params };
    if (value['params'] === undefined || shape === 'no-params') delete value['params'];
    if (shape === 'extra-key') value['priority'] = 'high';
    if (shape === 'no-type') delete value['type'];
    if (shape === 'no-id') delete value['id'];
    // Resolve bundle names to the base64 of the real bundles at send time (they are built in beforeAll).
    return { kind: 'frame' as const, value, label: `request ${JSON.stringify(o)} id ${JSON.stringify(i)}` };
  });

/** A call that adds a marker player: if the model says it must not run (before the hello, after a fatal error), the player must not exist afterwards. */
const ghost: fc.Arbitrary<Frame> = fc.nat().map((n) => ({
  kind: 'frame' as const,
  value: { type: 'request', id: (n % 1000) + 1, op: 'call', params: { process: 'game', message: { type: 'add_player', id: '', name: 'ghost' } } },
  label: 'ghost call',
  ghost: '',
}));

const hello: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'frame' as const, value: { type: 'hello', protocol: PROTOCOL_VERSION, client: 'fuzz' }, label: 'hello' }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<unknown>(PROTOCOL_VERSION, 1, 3, 0, -1, 1.5, '1', null, 2 ** 31).map((p) => ({ kind: 'frame' as const, value: { type: 'hello', protocol: p, client: 'fuzz' }, label: `hello protocol ${JSON.stringify(p)}` })),
  },
  {
    weight: 2,
    arbitrary: fc
      .array(structOp(['type', 'protocol', 'client', 'hello', 'auth', 'nonce']), { minLength: 1, maxLength: 3 })
      .map((ops) => ({ kind: 'frame' as const, value: applyStructOps({ type: 'hello', protocol: PROTOCOL_VERSION, client: 'fuzz' }, ops, false), label: `mutated hello ${JSON.stringify(ops).slice(0, 200)}` })),
  },
);

// Messages only a node sends, or an auth the node did not ask for: out of order from a client.
const outOfOrder: fc.Arbitrary<Frame> = fc
  .constantFrom<unknown>(
    { type: 'result', id: 1, result: {} },
    { type: 'event', id: 1, event: { index: 1 } },
    { type: 'error', id: null, code: 'internal', message: 'x' },
    { type: 'auth', nonce: 'bm9uY2U=', proof: 'cHJvb2Y=' },
    { type: 'auth_ok', proof: 'cHJvb2Y=' },
    { type: 'hello', protocol: PROTOCOL_VERSION, client: 'again' },
  )
  .map((value) => ({ kind: 'frame' as const, value, label: `out of order ${(value as { type: string }).type}` }));

const junkFrame: fc.Arbitrary<Send> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).map((value) => ({ kind: 'frame' as const, value, label: 'json value' })),
  // Deeper than JSON.stringify can write (about 5,000 levels), so written by hand; JSON.parse reads it.
  // A node may refuse JSON nested this deep (bad_frame, connection closed): such frames are marked `deep`.
  fc.integer({ min: 100, max: 100_000 }).map((depth) => ({ kind: 'text' as const, text: `${'['.repeat(depth)}${']'.repeat(depth)}`, label: `${depth}-deep list`, deep: true })),
);

/**
 * A well-formed request carrying a value nested deeper than the node can
 * serialise again (JSON.stringify and structuredClone give up a few thousand
 * levels down): a call that stores it in the game's state, or an invoke that
 * stores it in config's. Sent last, since the node may refuse the frame
 * (bad_frame, connection closed) or take it.
 */
const deepRequest: fc.Arbitrary<Text> = fc
  .tuple(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 600, max: 30_000 }), fc.constantFrom('call', 'invoke'), fc.nat())
  .map(([rid, depth, o, n]) => {
    const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const params = o === 'call' ? `{"process":"game","message":{"type":"add_player","id":"deep-${n}","name":${deep}}}` : `{"module":"config","function":"set","args":["deep-${n % 3}",${deep}]}`;
    return { kind: 'text' as const, text: `{"type":"request","id":${rid},"op":"${o}","params":${params}}`, label: `${o} storing a ${depth}-deep value`, deep: true };
  });

const badBytes: fc.Arbitrary<Bytes> = fc.oneof(
  fc.constantFrom(...BAD_UTF8).map((b) => ({ kind: 'bytes' as const, bytes: frameBytes(Buffer.concat([Buffer.from('{"type":"hello","client":"'), Buffer.from(b), Buffer.from('"}')])), label: 'invalid UTF-8', fatal: 'bad_frame' as const })),
  fc.constantFrom('{', '{"type":"request"', 'nul\u0000l', "{'type':'hello'}", '', 'NaN', '{"a":1}}').map((t) => ({ kind: 'bytes' as const, bytes: frameBytes(Buffer.from(t)), label: `invalid JSON ${JSON.stringify(t)}`, fatal: 'bad_frame' as const })),
  fc.integer({ min: 64 * 1024 * 1024 + 1, max: 2 ** 32 - 1 }).map((n) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(n);
    return { kind: 'bytes' as const, bytes: head, label: `length header ${n} over the limit`, fatal: 'bad_frame' as const };
  }),
);

/** A big but valid frame (a status request with a long extra field): a stream that spans many reads of the node. */
const bigFrame: fc.Arbitrary<Frame> = fc.tuple(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 64 * 1024, max: 1024 * 1024 })).map(([rid, n]) => ({
  kind: 'frame' as const,
  value: { type: 'request', id: rid, op: 'status', params: {}, pad: 'x'.repeat(n) },
  label: `${n}-byte request`,
}));

/** A well-formed apply (dry run of the real upgrade, or a real bundle of the wrong release): the node must answer with an outcome or busy. */
const wellFormedApply: fc.Arbitrary<Frame> = fc
  .tuple(
    fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    fc.oneof(
      fc.constant({ script: UP, bundle: 'b123', dryRun: true }),
      fc.record({ script: fc.constantFrom(UP, DOWN), bundle: fc.constantFrom('b122', 'other', 'patched', 'bomb', 'badyaml', 'truncated', 'flipped'), dryRun: fc.boolean() }),
      fc.record({ script: fc.constantFrom(UP, DOWN), bundle: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')), dryRun: fc.boolean() }),
    ),
  )
  .map(([rid, params]) => ({ kind: 'frame' as const, value: { type: 'request', id: rid, op: 'apply', params }, label: `apply ${Object.hasOwn(bundles, params.bundle) ? params.bundle : 'random bytes'} dryRun ${params.dryRun}` }));

/** Frames that do not end the connection once greeted: most sequences use only these, so requests get answered. */
const politeSend: fc.Arbitrary<Send> = fc.oneof(
  { weight: 10, arbitrary: request },
  { weight: 2, arbitrary: wellFormedApply },
  { weight: 2, arbitrary: ghost },
  { weight: 1, arbitrary: hello },
  { weight: 2, arbitrary: outOfOrder },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((value) => ({ kind: 'frame' as const, value, label: 'json value' })) },
);

const anySend: fc.Arbitrary<Send> = fc.oneof(
  { weight: 10, arbitrary: request },
  { weight: 1, arbitrary: wellFormedApply },
  { weight: 2, arbitrary: ghost },
  { weight: 2, arbitrary: hello },
  { weight: 2, arbitrary: outOfOrder },
  { weight: 2, arbitrary: junkFrame },
  { weight: 1, arbitrary: badBytes },
  { weight: 1, arbitrary: bigFrame },
);

interface Sequence {
  sends: Send[];
  /** Byte offsets (mod the stream's length) where the stream is cut into separate writes. */
  cuts: number[];
  /** After the frames: wait for the answers then close, send half a frame then close, or close at once. */
  tail: 'wait' | 'truncated' | 'abort';
}

/** fast-check prints a counterexample through this (a 20,000-deep list would overflow its printer). */
function printable<T extends Send>(s: T): T {
  const shown = s.kind === 'frame' ? `${s.label}: ${JSON.stringify(s.value, (_k, v: unknown) => (typeof v === 'string' && v.length > 100 ? `${v.slice(0, 100)}…` : v))?.slice(0, 400)}` : s.label;
  return Object.defineProperty({ ...s }, fc.toStringMethod, { value: () => shown });
}

const sequence: fc.Arbitrary<Sequence> = fc.record({
  sends: fc
    .tuple(
      fc.oneof({ weight: 5, arbitrary: hello }, { weight: 1, arbitrary: anySend }),
      fc.oneof({ weight: 1, arbitrary: fc.array(politeSend, { minLength: 4, maxLength: 18 }) }, { weight: 1, arbitrary: fc.array(anySend, { minLength: 4, maxLength: 18 }) }),
      fc.option(deepRequest, { freq: 12 }),
    )
    .map(([first, rest, deep]) => [first, ...rest, ...(deep === null ? [] : [deep])].map((s) => printable(s))),
  cuts: fc.array(fc.nat(), { maxLength: 8 }),
  tail: fc.constantFrom('wait' as const, 'wait' as const, 'wait' as const, 'truncated' as const, 'abort' as const),
});

// ------------------------------------------------------------------ the model

/** One answer the node owes: to `id` (null: a connection-level error), `optional` when a later fatal error may swallow it. */
interface Owed {
  /** Settled by an answer or by the node closing the connection with a bad_frame (a frame it may refuse). */
  orClose?: boolean;
  id: number | null;
  /** Which answers may settle it. */
  kinds: readonly ('result' | 'error')[];
  codes: readonly string[];
  optional: boolean;
  why: string;
}

interface Expectation {
  greeting: boolean;
  owed: Owed[];
  /** The node must close the connection, with one of these codes. */
  fatal: string[] | undefined;
  /** The node may close the connection with one of these codes (after the last frame, which it may refuse). */
  mayClose?: string[];
  /** Marker players that must not exist afterwards. */
  forbiddenGhosts: string[];
}

function idOf(raw: unknown): number | null {
  const v = (raw as { id?: unknown } | null)?.id;
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v < 2 ** 31 ? v : null;
}

/** docs/protocol.md as code: what the node owes for each frame, in order. */
function model(sends: readonly Send[]): Expectation {
  const e: Expectation = { greeting: false, owed: [], fatal: undefined, forbiddenGhosts: [] };
  let greeted = false;
  // Bad bytes (or a frame the node may refuse) later in the stream can share a chunk with an earlier frame and be found first.
  const laterBadBytes = (i: number) => sends.slice(i + 1).some((s) => s.kind === 'bytes' || (s.kind === 'text' && s.deep === true));
  for (let i = 0; i < sends.length; i++) {
    const s = sends[i]!;
    if (e.fatal !== undefined) {
      if (s.kind === 'frame' && s.ghost !== undefined) e.forbiddenGhosts.push(s.ghost);
      continue;
    }
    if (s.kind === 'bytes') {
      e.fatal = ['bad_frame'];
      break;
    }
    const body = s.kind === 'text' ? s.text : JSON.stringify(s.value);
    // Before the hello only small frames are read: a bigger one is refused from its header.
    if (!greeted && Buffer.byteLength(body) > HANDSHAKE_MAX_FRAME_BYTES) {
      e.fatal = ['bad_frame'];
      if (s.kind === 'frame' && s.ghost !== undefined) e.forbiddenGhosts.push(s.ghost);
      continue;
    }
    const raw = JSON.parse(body) as unknown;
    // A bad frame later in the same chunk is found before this one is handled: then bad_frame instead.
    const orBadFrame = laterBadBytes(i) || (s.kind === 'text' && s.deep === true) ? ['bad_frame'] : [];
    if (!greeted) {
      const h = clientHelloSchema.safeParse(raw);
      if (!h.success) {
        e.fatal = ['bad_message', ...orBadFrame];
        if (s.kind === 'frame' && s.ghost !== undefined) e.forbiddenGhosts.push(s.ghost);
      } else if (h.data.protocol !== PROTOCOL_VERSION) e.fatal = ['protocol_mismatch', ...orBadFrame];
      else {
        greeted = true;
        e.greeting = true;
      }
      continue;
    }
    if (s.kind === 'text' && s.deep === true) e.mayClose = ['bad_frame'];
    const r = requestSchema.safeParse(raw);
    if (!r.success) {
      const rid = idOf(raw);
      const o = (raw as { op?: unknown } | null)?.op;
      const code = typeof o === 'string' && !KNOWN_OPS.includes(o) ? 'unknown_op' : rid === null ? 'bad_message' : 'bad_request';
      const deep = s.kind === 'text' && s.deep === true;
      e.owed.push({ id: rid, kinds: ['error'], codes: [code], optional: deep, ...(deep ? { orClose: true } : {}), why: s.label });
      continue;
    }
    const codes: Record<string, string[]> = { status: [], states: [], apply: ['busy'], make_permanent: ['bad_request'], call: ['call_failed'], invoke: ['call_failed'] };
    const deep = s.kind === 'text' && s.deep === true;
    e.owed.push({ id: r.data.id, kinds: ['result', 'error'], codes: codes[r.data.op]!, optional: deep, ...(deep ? { orClose: true } : {}), why: s.label });
    if (deep) e.mayClose = ['bad_frame'];
  }
  // A fatal error closes the connection: answers still being computed, or frames in the chunk that held the bad bytes, may be lost.
  if (e.fatal !== undefined) for (const o of e.owed) o.optional = true;
  return e;
}

// ------------------------------------------------------------------ running a sequence

let ghostCounter = 0;

function materialise(seq: Sequence, run: number): { sends: Send[]; bytes: Buffer[] } {
  const sends = seq.sends.map((s): Send => {
    if (s.kind !== 'frame') return s;
    // A mutation may delete the whole message: send `null` then.
    let value = s.value === undefined ? null : s.value;
    const params = (value as { params?: { bundle?: unknown } } | null)?.params;
    if (params !== null && typeof params === 'object' && typeof params.bundle === 'string' && Object.hasOwn(bundles, params.bundle)) {
      value = { ...(value as object), params: { ...params, bundle: bundles[params.bundle as keyof typeof bundles] } };
    }
    if (s.ghost !== undefined) {
      const name = `ghost-${run}-${ghostCounter++}`;
      const v = value as { params: { message: { id: string } } };
      value = { ...v, params: { ...v.params, message: { ...v.params.message, id: name } } };
      return { ...s, value, ghost: name };
    }
    return { ...s, value };
  });
  return { sends, bytes: sends.map((s) => (s.kind === 'bytes' ? s.bytes : s.kind === 'text' ? frameBytes(Buffer.from(s.text)) : encodeFrame(s.value))) };
}

interface Client {
  sock: Socket;
  received: unknown[];
  closed: () => boolean;
  decodeError: () => unknown;
  changed: () => Promise<void>;
}

async function connect(): Promise<Client> {
  const sock = createConnection({ path: socketPath });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const decoder = new FrameDecoder();
  const received: unknown[] = [];
  let closed = false;
  let decodeError: unknown;
  let wake: (() => void) | undefined;
  sock.on('data', (c: Buffer) => {
    try {
      received.push(...decoder.push(c));
    } catch (e) {
      decodeError = e;
    }
    wake?.();
  });
  sock.on('close', () => {
    closed = true;
    wake?.();
  });
  // The node may close while we write (EPIPE, ECONNRESET): that is its right after a fatal error.
  sock.on('error', () => undefined);
  const changed = () =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 50);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  return { sock, received, closed: () => closed, decodeError: () => decodeError, changed };
}

/** Match what arrived against what is owed; returns what is still owed, or throws on something unexpected. */
function settle(expect: Expectation, received: readonly unknown[], describe: () => string): Owed[] {
  const answers: { type: 'result' | 'error'; id: number | null; code?: string; raw: unknown }[] = [];
  let start = 0;
  if (expect.greeting && received.length > 0) {
    const h = nodeHelloSchema.safeParse(received[0]);
    if (h.success) {
      if (h.data.node.version !== '1.2.2' || h.data.auth !== 'none') throw new Error(`unexpected hello ${JSON.stringify(received[0])}\n${describe()}`);
      start = 1;
    } else if (expect.fatal === undefined && expect.mayClose === undefined) throw new Error(`expected the node's hello, got ${JSON.stringify(received[0]).slice(0, 300)}\n${describe()}`);
  }
  let fatalSeen = false;
  for (const raw of received.slice(start)) {
    const m = nodeMessageSchema.safeParse(raw);
    if (!m.success) throw new Error(`the node sent a frame outside the protocol: ${JSON.stringify(raw).slice(0, 300)}\n${describe()}`);
    const msg = m.data;
    if (msg.type === 'auth_ok') throw new Error(`auth_ok without auth\n${describe()}`);
    if (msg.type === 'event') continue;
    if (msg.type === 'error' && !(ERROR_CODES as readonly string[]).includes(msg.code)) throw new Error(`error code ${msg.code} is not in ERROR_CODES`);
    if (msg.type === 'error' && msg.code === 'internal') throw new Error(`the node reported an internal error (a bug in the node): ${msg.message}\n${describe()}`);
    if (msg.type === 'result' && (msg.result as { status?: unknown } | null)?.status === 'committed') throw new Error(`an apply committed: ${describe()}`);
    if (msg.type === 'error' && msg.id === null && (expect.fatal ?? expect.mayClose)?.includes(msg.code) && !fatalSeen) {
      fatalSeen = true;
      continue;
    }
    answers.push(msg.type === 'error' ? { type: 'error', id: msg.id, code: msg.code, raw } : { type: 'result', id: msg.id, raw });
  }
  if (tallying) tallyAnswers(received.slice(start));
  if (fatalSeen && expect.fatal === undefined && expect.mayClose === undefined) throw new Error(`a fatal error where none was expected\n${describe()}`);
  // Ids may repeat, so answers are matched to what is owed as a bipartite matching (Kuhn), not first come first served.
  const owed = expect.owed;
  const fits = (a: (typeof answers)[number], o: Owed) => o.id === a.id && o.kinds.includes(a.type) && (a.type !== 'error' || o.codes.includes(a.code!));
  const owner = new Array<number>(owed.length).fill(-1);
  const augment = (a: number, seen: boolean[]): boolean => {
    for (let o = 0; o < owed.length; o++) {
      if (seen[o] || !fits(answers[a]!, owed[o]!)) continue;
      seen[o] = true;
      if (owner[o] === -1 || augment(owner[o]!, seen)) {
        owner[o] = a;
        return true;
      }
    }
    return false;
  };
  answers.forEach((a, i) => {
    if (!augment(i, new Array<boolean>(owed.length).fill(false))) {
      throw new Error(`unexpected answer ${JSON.stringify(a.raw).slice(0, 400)}\nowed: ${JSON.stringify(owed.map((o) => [o.id, o.kinds, o.codes, o.why]))}\n${describe()}`);
    }
  });
  return owed.filter((_o, i) => owner[i] === -1);
}

/** What the node answered over the whole run, for the summary (answers are tallied once, when a connection is done). */
const tally = new Map<string, number>();
let tallying = false;
function tallyAnswers(received: readonly unknown[]): void {
  for (const raw of received) {
    const m = raw as { type?: string; code?: string; id?: unknown; result?: { status?: unknown } };
    const key = m.type === 'error' ? `error ${m.code}${m.id === null ? ' (connection)' : ''}` : m.type === 'result' && typeof m.result?.status === 'string' ? `result apply ${m.result.status}` : String(m.type);
    tally.set(key, (tally.get(key) ?? 0) + 1);
  }
}

async function runSequence(seq: Sequence, run: number): Promise<number> {
  const { sends, bytes } = materialise(seq, run);
  const expect = model(sends);
  const stream = Buffer.concat(bytes);
  const c = await connect();
  try {
    return await drive(seq, c, sends, stream, expect);
  } finally {
    // A failing case must not leave its connection open: the node allows 16, and shrinking replays many cases.
    c.sock.destroy();
  }
}

async function drive(seq: Sequence, c: Client, sends: Send[], stream: Buffer, expect: Expectation): Promise<number> {
  const describe = () => `sequence: ${sends.map((s) => s.label).join(' | ')}; tail ${seq.tail}; received: ${JSON.stringify(c.received).slice(0, 800)}`;

  // Write the stream in pieces cut at random bytes, letting the node read between them.
  const cuts = [...new Set(seq.cuts.map((n) => n % (stream.length + 1)))].sort((a, b) => a - b);
  let start = 0;
  for (const end of [...cuts, stream.length]) {
    if (c.closed()) break;
    if (end > start) c.sock.write(stream.subarray(start, end));
    start = end;
    await new Promise((r) => setImmediate(r));
  }
  let cases = sends.length;

  if (seq.tail === 'abort') {
    c.sock.destroy();
  } else {
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    for (;;) {
      if (c.decodeError() !== undefined) throw new Error(`the node sent an undecodable frame: ${String(c.decodeError())}\n${describe()}`);
      const owed = settle(expect, c.received, describe);
      const required = owed.filter((o) => !o.optional);
      // Closed after a fatal (or a refused last frame): answers still in the works, or in the same chunk as the bad frame, may be lost.
      if ((expect.fatal !== undefined || expect.mayClose !== undefined) && c.closed()) break;
      if (expect.fatal === undefined && required.length === 0 && (!expect.greeting || c.received.length > 0) && owed.every((o) => !o.orClose)) break;
      if (c.closed()) throw new Error(`the node closed the connection though no fatal error was due; owed ${JSON.stringify(owed.map((o) => [o.id, o.why]))}\n${describe()}`);
      if (Date.now() > deadline) throw new Error(`the node stopped answering: after ${ANSWER_TIMEOUT_MS} ms still owed ${JSON.stringify(owed.map((o) => [o.id, o.why]))}${expect.fatal === undefined ? '' : ' (and the close)'}\n${describe()}`);
      await c.changed();
    }
    tallying = true;
    settle(expect, c.received, describe);
    tallying = false;
    if (seq.tail === 'truncated' && !c.closed()) {
      // A header promising more than follows, then close.
      const head = Buffer.alloc(4);
      head.writeUInt32BE(1_000);
      c.sock.write(Buffer.concat([head, Buffer.from('{"type":"request","id":1,')]));
      cases += 1;
    }
    c.sock.end();
  }
  await afterConnection(expect, describe);
  return cases;
}

/** The node after each connection: same release, nothing suspended, no upgrade left running, no forbidden effect. */
async function afterConnection(expect: Expectation, describe: () => string): Promise<void> {
  // An abandoned apply runs on: wait for it (the node finishes or rolls back on its own).
  for (let i = 0; i < 400 && host.status().upgrading; i++) await new Promise((r) => setTimeout(r, 25));
  const status = host.status();
  if (status.upgrading) throw new Error(`an upgrade is still running 10 s after the client left\n${describe()}`);
  if (status.version !== '1.2.2') throw new Error(`the node now runs ${status.version}\n${describe()}`);
  const suspended = status.processes.filter((p) => p.suspended).map((p) => p.name);
  if (suspended.length > 0) throw new Error(`processes left suspended: ${suspended.join(', ')}\n${describe()}`);
  for (const name of expect.forbiddenGhosts) {
    if ((await host.node.call('game', { type: 'get_player', id: name })) !== null) throw new Error(`a request sent after a fatal error (or before the hello) took effect: player ${name} exists\n${describe()}`);
  }
}

/** A fresh, well-formed client (the real one) still gets a status answer. */
async function freshClientStatus(): Promise<void> {
  const conn = await Connection.open({ kind: 'unix', path: socketPath }, { timeoutMs: 5_000, clientName: 'fuzz-check' });
  try {
    const status = (await Promise.race([
      conn.request('status', {}),
      new Promise((_, reject) => setTimeout(() => reject(new Error('a fresh client got no status answer within 5 s')), 5_000)),
    ])) as { version: string; upgrading: boolean; processes: { suspended: boolean }[] };
    if (status.version !== '1.2.2' || status.upgrading || status.processes.some((p) => p.suspended)) throw new Error(`fresh client status: ${JSON.stringify(status).slice(0, 500)}`);
    // And it can still read every state (a value the node cannot copy or write would make this `internal`).
    await conn.request('states', {}).catch((e: unknown) => {
      throw new Error(`a fresh client's states request failed: ${e instanceof Error ? `${(e as { code?: string }).code ?? e.name}: ${e.message}` : String(e)} (an earlier sequence left state the node cannot copy or send)`);
    });
  } finally {
    conn.close();
  }
}

describe('fuzz: control server (live, Unix socket)', () => {
  it(
    `${SEQUENCES} random frame sequences: typed answers only, never internal, the node keeps running 1.2.2 and answering`,
    async () => {
      let run = 0;
      let frames = 0;
      await fuzzAsync(
        summary,
        'control server',
        `frames over ${SEQUENCES} connections`,
        sequence,
        async (seq) => {
          run += 1;
          const n = await runSequence(seq, run);
          frames += n;
          if (run % BATCH === 0) await freshClientStatus();
          return n;
        },
        { numRuns: SEQUENCES, seed: 0x5e4fe4 },
      );
      await freshClientStatus();
      console.log(`[fuzz] control server answers: ${[...tally].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${n}`).join(', ')}`);
      if (MULTIPLIER >= 1) expect(frames).toBeGreaterThanOrEqual(10_000);
    },
    timeoutFor(90_000),
  );
});

// ================================================================== protocol 2 classes
//
// Each class of issue 9 items 5–7 as a property of the live node: sealed-frame
// tampering and replay (TCP), the handshake's limits and deadlines and the
// idle timeout (TCP and Unix, short timeouts), and backpressure (a client
// that stops reading). They share the NodeHost above, on servers of their own.

const SECRET = Buffer.from('fuzzing secret, 16 bytes or more');
const sealedSummary = new Summary('control server: protocol 2 classes (live)');

interface Peer {
  sock: Socket;
  bodies: Buffer[];
  closed: () => boolean;
  wait: (until: () => boolean, ms: number) => Promise<boolean>;
}

async function peerAt(where: { path: string } | { host: string; port: number }): Promise<Peer> {
  const sock = createConnection(where as never);
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const decoder = new FrameDecoder(1 << 30);
  const bodies: Buffer[] = [];
  let closed = false;
  let wake: (() => void) | undefined;
  sock.on('data', (c: Buffer) => {
    decoder.feed(c);
    for (let b = decoder.next(); b !== undefined; b = decoder.next()) bodies.push(b);
    wake?.();
  });
  sock.on('error', () => undefined);
  sock.on('close', () => {
    closed = true;
    wake?.();
  });
  const wait = async (until: () => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    while (!until() && !closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return until();
  };
  return { sock, bodies, closed: () => closed, wait };
}

const plainJson = (body: Buffer) => JSON.parse(body.toString('utf8')) as Record<string, unknown>;

// ------------------------------------------------------------------ sealed frames: tampering and replay

type Tampering = 'flip-json' | 'flip-tag' | 'short' | 'replay' | 'drop' | 'reorder' | 'reflect' | 'plain' | 'wrong-key' | 'wrong-dir' | 'garbage-tag';
const TAMPERINGS: readonly Tampering[] = ['flip-json', 'flip-tag', 'short', 'replay', 'drop', 'reorder', 'reflect', 'plain', 'wrong-key', 'wrong-dir', 'garbage-tag'];

interface SealedCase {
  /** Requests sent honestly before the tampering (each waits for its answer). */
  before: number;
  tampering: Tampering | null;
  /** Honest requests sent after the tampering: none may run. */
  after: number;
  flipAt: number;
}

const sealedCase: fc.Arbitrary<SealedCase> = fc.record({
  before: fc.integer({ min: 0, max: 5 }),
  tampering: fc.option(fc.constantFrom(...TAMPERINGS), { freq: 8 }),
  after: fc.integer({ min: 0, max: 3 }),
  flipAt: fc.nat(),
});

let sealedRun = 0;

async function runSealedCase(port: number, c: SealedCase): Promise<number> {
  sealedRun += 1;
  const p = await peerAt({ host: '127.0.0.1', port });
  const frames: Buffer[] = [];
  const send = (bytes: Buffer) => {
    frames.push(bytes);
    p.sock.write(bytes);
  };
  try {
    send(encodeFrame({ type: 'hello', protocol: PROTOCOL_VERSION, client: 'fuzz-sealed' }));
    if (!(await p.wait(() => p.bodies.length >= 1, ANSWER_TIMEOUT_MS))) throw new Error('no node hello');
    const hello = nodeHelloSchema.parse(plainJson(p.bodies[0]!));
    if (hello.auth !== 'challenge' || hello.nonce === undefined) throw new Error(`TCP hello without a challenge: ${JSON.stringify(hello)}`);
    const clientNonce = newNonce();
    send(encodeFrame({ type: 'auth', nonce: clientNonce, proof: clientProof(SECRET, hello.nonce, clientNonce) }));
    if (!(await p.wait(() => p.bodies.length >= 2, ANSWER_TIMEOUT_MS))) throw new Error('no auth_ok');
    if (plainJson(p.bodies[1]!)['type'] !== 'auth_ok') throw new Error(`expected auth_ok, got ${p.bodies[1]!.toString().slice(0, 200)}`);
    const key = sessionKey(SECRET, hello.nonce, clientNonce);
    const sealer = new FrameSealer(key, 'c2n');
    const opener = new FrameOpener(key, 'n2c');
    const ghostName = (i: number) => `sealed-${sealedRun}-${i}`;
    const ghostJson = (rid: number, i: number) => encodeBody({ type: 'request', id: rid, op: 'call', params: { process: 'game', message: { type: 'add_player', id: ghostName(i), name: 'sealed' } } });
    let sent = 2;
    let rid = 1;
    // Honest requests: each answered, sealed, in order.
    for (let i = 0; i < c.before; i++) {
      send(frameOf(sealer.seal(encodeBody({ type: 'request', id: rid++, op: 'status', params: {} }))));
      sent += 1;
      if (!(await p.wait(() => p.bodies.length >= 2 + i + 1, ANSWER_TIMEOUT_MS))) throw new Error(`honest request ${i + 1} got no answer; closed ${p.closed()}`);
    }
    const forbidden: string[] = [];
    if (c.tampering !== null) {
      const ghost = ghostJson(rid++, 0);
      forbidden.push(ghostName(0));
      const honest = sealer.seal(ghost);
      const flip = (b: Buffer, from: number, to: number) => {
        const copy = Buffer.from(b);
        const at = from + (c.flipAt % Math.max(1, to - from));
        copy[at] = copy[at]! ^ (1 << c.flipAt % 8);
        return copy;
      };
      switch (c.tampering) {
        case 'flip-json':
          send(frameOf(flip(honest, 0, ghost.length)));
          break;
        case 'flip-tag':
          send(frameOf(flip(honest, ghost.length, honest.length)));
          break;
        case 'short':
          send(frameOf(honest.subarray(0, c.flipAt % 32)));
          break;
        case 'garbage-tag':
          send(frameOf(Buffer.concat([ghost, Buffer.alloc(32, c.flipAt % 256)])));
          break;
        case 'replay': {
          // A sealed frame that was already accepted (or, with none yet, this one twice).
          const earlier = frames.slice(2);
          if (earlier.length > 0) send(earlier[c.flipAt % earlier.length]!);
          else {
            send(frameOf(honest));
            send(frameOf(honest));
            forbidden.pop();
          }
          break;
        }
        case 'drop':
          // The honest frame is never sent: the next one carries a counter the node does not expect.
          send(frameOf(sealer.seal(ghostJson(rid++, 1))));
          forbidden.push(ghostName(1));
          break;
        case 'reorder': {
          const second = sealer.seal(ghostJson(rid++, 1));
          forbidden.push(ghostName(1));
          send(frameOf(second));
          send(frameOf(honest));
          break;
        }
        case 'reflect':
          // One of the node's own sealed frames (or its hello) sent back to it.
          send(frameOf(p.bodies[2 + (c.flipAt % Math.max(1, p.bodies.length - 2))] ?? p.bodies[0]!));
          break;
        case 'plain':
          send(frameOf(ghost));
          break;
        case 'wrong-key':
          send(frameOf(new FrameSealer(sessionKey(SECRET, clientNonce, hello.nonce), 'c2n').seal(ghost)));
          break;
        case 'wrong-dir':
          send(frameOf(new FrameSealer(key, 'n2c').seal(ghost)));
          break;
      }
      sent += 1;
      for (let i = 0; i < c.after; i++) {
        forbidden.push(ghostName(10 + i));
        send(frameOf(sealer.seal(ghostJson(rid++, 10 + i))));
        sent += 1;
      }
      if (!(await p.wait(() => p.closed(), ANSWER_TIMEOUT_MS))) throw new Error(`the node kept the connection after ${c.tampering}`);
    } else {
      send(frameOf(sealer.seal(ghostJson(rid++, 0))));
      sent += 1;
      if (!(await p.wait(() => p.bodies.length >= 2 + c.before + 1, ANSWER_TIMEOUT_MS))) throw new Error('the honest call got no answer');
    }
    // Every frame the node sent after auth_ok opens, in order, and follows the schemas; a tampered session ends with not_authenticated.
    const answers = p.bodies.slice(2).map((b, i) => {
      try {
        return nodeMessageSchema.parse(JSON.parse(opener.open(b).toString('utf8')));
      } catch (e) {
        throw new Error(`node frame ${i} after auth_ok does not open or follow the schemas: ${String(e)}`);
      }
    });
    if (c.tampering !== null) {
      const last = answers.at(-1);
      if (last?.type !== 'error' || last.code !== 'not_authenticated' || last.id !== null) throw new Error(`after ${c.tampering} expected a connection-level not_authenticated, got ${JSON.stringify(last)}`);
      tally.set(`sealed ${c.tampering} → not_authenticated`, (tally.get(`sealed ${c.tampering} → not_authenticated`) ?? 0) + 1);
    } else if (answers.some((a) => a.type === 'error')) throw new Error(`an honest session got an error: ${JSON.stringify(answers)}`);
    for (const name of forbidden) {
      if ((await host.node.call('game', { type: 'get_player', id: name })) !== null) throw new Error(`a tampered (${c.tampering}) or later frame took effect: player ${name} exists`);
    }
    if (c.tampering === null && (await host.node.call('game', { type: 'get_player', id: ghostName(0) })) === null) throw new Error('an honest sealed call did not run');
    return sent;
  } finally {
    p.sock.destroy();
  }
}

// ------------------------------------------------------------------ handshake limits, deadlines, idle

type Stall = 'silent' | 'partial-hello' | 'hello-only' | 'half-auth' | 'oversized-header' | 'big-auth' | 'trickle-after-hello' | 'idle-after-hello';
interface StallCase {
  peers: { transport: 'tcp' | 'unix'; stall: Stall }[];
}
const stallCase: fc.Arbitrary<StallCase> = fc.record({
  peers: fc.array(
    fc.record({ transport: fc.constantFrom('tcp' as const, 'unix' as const), stall: fc.constantFrom<Stall>('silent', 'partial-hello', 'hello-only', 'half-auth', 'oversized-header', 'big-auth', 'trickle-after-hello', 'idle-after-hello') }),
    { minLength: 1, maxLength: 40 },
  ),
});

/** The errors the node must send a peer that behaves so, the last one closing it. */
function stallVerdict(transport: 'tcp' | 'unix', stall: Stall): string[] {
  if (stall === 'oversized-header') return ['bad_frame'];
  if (transport === 'tcp') return stall === 'big-auth' ? ['bad_frame'] : ['handshake_timeout'];
  // On Unix the hello ends the handshake: a peer that then stalls is idle, not late; an auth there is just not a request.
  if (stall === 'silent' || stall === 'partial-hello') return ['handshake_timeout'];
  return stall === 'big-auth' ? ['bad_message', 'idle_timeout'] : ['idle_timeout'];
}

async function runStallCase(limits: { tcpPort: number; unixPath: string }, c: StallCase): Promise<number> {
  const peers = await Promise.all(
    c.peers.map(async ({ transport, stall }) => {
      const p = await peerAt(transport === 'tcp' ? { host: '127.0.0.1', port: limits.tcpPort } : { path: limits.unixPath });
      const hello = encodeFrame({ type: 'hello', protocol: PROTOCOL_VERSION, client: 'staller' });
      let drip: NodeJS.Timeout | undefined;
      switch (stall) {
        case 'silent':
          break;
        case 'partial-hello':
          p.sock.write(hello.subarray(0, 3 + (hello.length % 7)));
          break;
        case 'oversized-header': {
          const head = Buffer.alloc(4);
          head.writeUInt32BE(HANDSHAKE_MAX_FRAME_BYTES + 1 + (c.peers.length * 7919) % (2 ** 31));
          p.sock.write(head);
          break;
        }
        case 'hello-only':
          p.sock.write(hello);
          break;
        case 'half-auth':
          p.sock.write(Buffer.concat([hello, encodeFrame({ type: 'auth', nonce: 'x', proof: 'y' }).subarray(0, 10)]));
          break;
        case 'big-auth':
          p.sock.write(Buffer.concat([hello, encodeFrame({ type: 'auth', nonce: 'n'.repeat(HANDSHAKE_MAX_FRAME_BYTES), proof: 'p' })]));
          break;
        case 'trickle-after-hello': {
          p.sock.write(hello);
          const head = Buffer.alloc(4);
          head.writeUInt32BE(1000);
          p.sock.write(head);
          drip = setInterval(() => p.sock.writable && p.sock.write('x'), 40);
          break;
        }
        case 'idle-after-hello':
          p.sock.write(hello);
          break;
      }
      return { p, transport, stall, drip };
    }),
  );
  try {
    // However many peers stall, an operator who authenticates is served at once.
    const operator = await Connection.open({ kind: 'tcp', host: '127.0.0.1', port: limits.tcpPort }, { secret: SECRET, timeoutMs: 5_000 });
    const status = (await operator.request('status', {})) as { version: string };
    if (status.version !== '1.2.2') throw new Error(`operator status: ${JSON.stringify(status)}`);
    operator.close();
    for (const { p, transport, stall } of peers) {
      if (!(await p.wait(() => p.closed(), 10_000))) throw new Error(`a ${transport} peer doing ${stall} was not closed`);
      const codes = p.bodies.map((b) => plainJson(b)).filter((m) => m['type'] === 'error').map((m) => m['code']);
      const want = stallVerdict(transport, stall);
      // A peer evicted to make room for newer handshakes is closed with too_many_connections instead.
      const evicted = codes.length === 1 && codes[0] === 'too_many_connections';
      if (!evicted && JSON.stringify(codes) !== JSON.stringify(want)) throw new Error(`a ${transport} peer doing ${stall} got ${JSON.stringify(codes)}, expected ${JSON.stringify(want)}`);
      const key = `${transport} ${stall} → ${String(codes.at(-1))}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
  } finally {
    for (const { p, drip } of peers) {
      clearInterval(drip);
      p.sock.destroy();
    }
  }
  return c.peers.length;
}

// ------------------------------------------------------------------ backpressure

interface FloodCase {
  /** Pairs of (status, add_score) requests pipelined in one write. */
  pairs: number;
  pauseMs: number;
}
const floodCase: fc.Arbitrary<FloodCase> = fc.record({
  pairs: fc.oneof(fc.integer({ min: 10, max: 500 }), fc.integer({ min: 2000, max: 3000 })),
  pauseMs: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 200, max: 300 })),
});
const scoreOf = async (player: string) => ((await host.node.call('game', { type: 'get_player', id: player })) as { score: number }).score;
let floodRun = 0;

async function runFloodCase(path: string, c: FloodCase): Promise<number> {
  floodRun += 1;
  const player = `flood-${floodRun}`;
  await host.node.call('game', { type: 'add_player', id: player, name: 'flood' });
  const p = await peerAt({ path });
  try {
    p.sock.write(encodeFrame({ type: 'hello', protocol: PROTOCOL_VERSION, client: 'flood' }));
    if (!(await p.wait(() => p.bodies.length >= 1, ANSWER_TIMEOUT_MS))) throw new Error('no hello');
    p.sock.pause();
    const requests: Buffer[] = [];
    for (let i = 0; i < c.pairs; i++) {
      requests.push(encodeFrame({ type: 'request', id: 2 * i + 1, op: 'status', params: {} }));
      requests.push(encodeFrame({ type: 'request', id: 2 * i + 2, op: 'call', params: { process: 'game', message: { type: 'add_score', id: player, points: 1 } } }));
    }
    p.sock.write(Buffer.concat(requests));
    await new Promise((r) => setTimeout(r, c.pauseMs));
    // While this client reads nothing, the node serves others.
    const other = await Connection.open({ kind: 'unix', path }, { timeoutMs: 5_000 });
    await other.request('status', {});
    other.close();
    const checked = c.pairs >= 2000 && c.pauseMs >= 200;
    if (checked) {
      // Let the node run what it will while nobody reads (until the score stands still), then look:
      // 2,000 status answers are far more than the socket buffers and the node's 1 MiB hold, so a node that kept reading would have run them all.
      let last = -1;
      for (let i = 0; i < 100; i++) {
        const now = await scoreOf(player);
        if (now === last || now === c.pairs) break;
        last = now;
        await new Promise((r) => setTimeout(r, 100));
      }
      const held = await scoreOf(player);
      if (held >= c.pairs) throw new Error(`the node ran all ${c.pairs} add_score requests while the client read no answer`);
    }
    p.sock.resume();
    if (!(await p.wait(() => p.bodies.length >= 1 + 2 * c.pairs, 30_000))) throw new Error(`after reading again: ${p.bodies.length - 1} of ${2 * c.pairs} answers`);
    const ids = p.bodies.slice(1).map((b) => nodeMessageSchema.parse(plainJson(b))).map((m) => (m.type === 'result' ? m.id : -1));
    const unique = new Set(ids);
    if (unique.size !== 2 * c.pairs || ids.includes(-1)) throw new Error(`answers: ${ids.length}, distinct ${unique.size}, errors ${ids.filter((i) => i === -1).length}`);
    const score = await scoreOf(player);
    if (score !== c.pairs) throw new Error(`add_score ran ${score} times for ${c.pairs} requests`);
    const key = `flood ${checked ? 'held while unread (checked)' : 'answered in full (small or short pause)'}`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
    return 2 * c.pairs;
  } finally {
    p.sock.destroy();
  }
}

describe('fuzz: control server, protocol 2 classes (live)', () => {
  let tcp: ControlServer;
  let stallTcp: ControlServer;
  let stallUnix: ControlServer;
  let flood: ControlServer;
  const stallPath = () => join(dir, 'run', 'stall.sock');
  const floodPath = () => join(dir, 'run', 'flood.sock');
  beforeAll(async () => {
    tcp = await ControlServer.listenTcp(host, { host: '127.0.0.1', port: 0, secret: SECRET });
    stallTcp = await ControlServer.listenTcp(host, { host: '127.0.0.1', port: 0, secret: SECRET, handshakeTimeoutMs: 150, idleTimeoutMs: 250 });
    stallUnix = await ControlServer.listen(host, { socket: stallPath(), handshakeTimeoutMs: 150, idleTimeoutMs: 250 });
    flood = await ControlServer.listen(host, { socket: floodPath() });
  });
  afterAll(async () => {
    for (const s of [tcp, stallTcp, stallUnix, flood]) await s?.close();
  });

  it(
    'sealed frames: any tampering, replay, reorder, drop or reflection ends the session with not_authenticated and nothing after it runs',
    async () => {
      const port = tcp.address()!.port;
      await fuzzAsync(sealedSummary, 'sealed frames', 'tampered TCP sessions', sealedCase, (c) => runSealedCase(port, c), { numRuns: runs(300), seed: 0x5ea1ed });
    },
    timeoutFor(60_000),
  );

  it(
    'handshake limits and timeouts: stalling, trickling and oversized peers are closed with the right code and never lock the operator out',
    async () => {
      const limits = { tcpPort: stallTcp.address()!.port, unixPath: stallPath() };
      await fuzzAsync(sealedSummary, 'handshake limits', 'stalling peers (1–40 at once)', stallCase, (c) => runStallCase(limits, c), { numRuns: runs(16), seed: 0x57a11 });
    },
    timeoutFor(90_000),
  );

  it(
    'backpressure: a client that stops reading holds the node back, loses nothing, and blocks no one else',
    async () => {
      await fuzzAsync(sealedSummary, 'backpressure', 'pipelined floods with a paused reader', floodCase, (c) => runFloodCase(floodPath(), c), { numRuns: runs(24), seed: 0xf100d });
      console.log(`[fuzz] protocol 2 classes: ${[...tally].filter(([k]) => /^(sealed|tcp|unix|flood)/.test(k)).sort().map(([k, n]) => `${k} ×${n}`).join(', ')}`);
    },
    timeoutFor(120_000),
  );
});

// ------------------------------------------------------------------ the client against a hostile node

/**
 * The other direction: the real client (`Connection`) against a node that
 * lies. A fake node answers the hello (or not), the challenge (with a right
 * or wrong proof), then sends the answer to a `status` honestly sealed, or
 * tampered, plain, garbage, oversized, or not at all. The client must settle
 * every time — the honest answer when everything was honest, otherwise a
 * NodeError with a code — and never throw outside its promises.
 */
type NodeLie = 'honest' | 'flip' | 'plain' | 'replay' | 'wrong-dir' | 'garbage' | 'bad-json' | 'oversized' | 'silent' | 'close' | 'second-auth-ok' | 'unknown-type';
interface HostileCase {
  hello: 'ok' | 'error' | 'other-protocol' | 'not-hello' | 'silent';
  proof: 'right' | 'wrong';
  lie: NodeLie;
}
const hostileCase: fc.Arbitrary<HostileCase> = fc.record({
  hello: fc.constantFrom('ok', 'ok', 'ok', 'ok', 'error', 'other-protocol', 'not-hello', 'silent'),
  proof: fc.constantFrom('right', 'right', 'right', 'wrong'),
  lie: fc.constantFrom<NodeLie>('honest', 'honest', 'flip', 'plain', 'replay', 'wrong-dir', 'garbage', 'bad-json', 'oversized', 'silent', 'close', 'second-auth-ok', 'unknown-type'),
});
const CLIENT_CODES = ['bad_frame', 'bad_message', 'protocol_mismatch', 'not_authenticated', 'timeout', 'connection_closed', 'internal', 'unreachable'];

async function runHostileCase(c: HostileCase): Promise<number> {
  const { createServer } = await import('node:net');
  const STATUS = { version: '6.6.6' };
  const server = createServer((s) => {
    s.on('error', () => undefined);
    const decoder = new FrameDecoder();
    let nodeNonce = '';
    let sealer: FrameSealer | undefined;
    const sent: Buffer[] = [];
    s.on('data', (chunk: Buffer) => {
      decoder.feed(chunk);
      for (let body = decoder.next(); body !== undefined; body = decoder.next()) {
        if (sealer === undefined) {
          const m = plainJson(body);
          if (m['type'] === 'hello') {
            nodeNonce = newNonce();
            if (c.hello === 'silent') return;
            if (c.hello === 'error') return void s.end(encodeFrame({ type: 'error', id: null, code: 'too_many_connections', message: 'full' }));
            if (c.hello === 'not-hello') return void s.write(encodeFrame({ type: 'result', id: 1, result: {} }));
            s.write(encodeFrame({ type: 'hello', protocol: c.hello === 'other-protocol' ? PROTOCOL_VERSION + 1 : PROTOCOL_VERSION, node: { name: 'x', version: '6.6.6', runtime: 'node' }, auth: 'challenge', nonce: nodeNonce }));
          } else if (m['type'] === 'auth') {
            const clientNonce = String(m['nonce']);
            const proof = c.proof === 'right' ? nodeProofOf(SECRET, clientNonce, nodeNonce) : Buffer.alloc(32, 7).toString('base64');
            s.write(encodeFrame({ type: 'auth_ok', proof }));
            sealer = new FrameSealer(sessionKey(SECRET, nodeNonce, clientNonce), 'n2c');
          }
          continue;
        }
        // A sealed request arrived: answer it (or lie).
        const id = 1;
        const honest = (v: unknown) => {
          const b = frameOf(sealer!.seal(encodeBody(v)));
          sent.push(b);
          return b;
        };
        switch (c.lie) {
          case 'honest':
            s.write(honest({ type: 'result', id, result: STATUS }));
            break;
          case 'flip': {
            const b = honest({ type: 'result', id, result: STATUS });
            b[b.length - 1] = b[b.length - 1]! ^ 1;
            s.write(b);
            break;
          }
          case 'plain':
            s.write(encodeFrame({ type: 'result', id, result: STATUS }));
            break;
          case 'replay': {
            const b = honest({ type: 'event', id, event: { index: 0, op: 'verify_release', target: '1', status: 'start', durationMs: 0 } });
            s.write(Buffer.concat([b, b]));
            break;
          }
          case 'wrong-dir':
            s.write(frameOf(new FrameSealer(sessionKey(SECRET, nodeNonce, 'x'), 'c2n').seal(encodeBody({ type: 'result', id, result: STATUS }))));
            break;
          case 'garbage':
            s.write(Buffer.from([0, 0, 0, 40, ...Array.from({ length: 40 }, (_, i) => (i * 37) % 256)]));
            break;
          case 'bad-json':
            s.write(frameOf(sealer!.seal(Buffer.from('{"type":"result",'))));
            break;
          case 'oversized': {
            const head = Buffer.alloc(4);
            head.writeUInt32BE(0xffffffff);
            s.write(head);
            break;
          }
          case 'silent':
            break;
          case 'close':
            s.destroy();
            break;
          case 'second-auth-ok':
            s.write(honest({ type: 'auth_ok', proof: 'x' }));
            break;
          case 'unknown-type':
            s.write(honest({ type: 'surprise', id }));
            break;
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const outcome = await Connection.open({ kind: 'tcp', host: '127.0.0.1', port }, { secret: SECRET, timeoutMs: 500 }).then(
      async (conn) => {
        try {
          const answer = await Promise.race([conn.request('status', {}), new Promise((_, reject) => setTimeout(() => reject(new NodeError('timeout', 'no answer')), 500))]);
          return { ok: true as const, answer };
        } finally {
          conn.close();
        }
      },
      (e: unknown) => ({ ok: false as const, error: e }),
    ).catch((e: unknown) => ({ ok: false as const, error: e }));
    const allHonest = c.hello === 'ok' && c.proof === 'right' && c.lie === 'honest';
    if (allHonest) {
      if (!outcome.ok || JSON.stringify(outcome.answer) !== JSON.stringify(STATUS)) throw new Error(`an honest node's answer was not delivered: ${JSON.stringify(outcome)}`);
    } else {
      if (outcome.ok) throw new Error(`the client accepted an answer from a lying node (${JSON.stringify(c)}): ${JSON.stringify(outcome.answer)}`);
      const e = outcome.error;
      if (!(e instanceof NodeError) || !CLIENT_CODES.includes(e.code) && !(ERROR_CODES as readonly string[]).includes(e.code)) throw new Error(`the client failed with ${String(e)} (${(e as { code?: string }).code}), not a NodeError with a known code`);
      const key = `client vs ${c.hello !== 'ok' ? `hello ${c.hello}` : c.proof === 'wrong' ? 'wrong node proof' : `node ${c.lie}`} → ${e.code}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
  } finally {
    server.close();
  }
  return 1;
}

function nodeProofOf(secret: Uint8Array, clientNonce: string, nodeNonce: string): string {
  return createHmac('sha256', secret).update(`relup-auth-node-v1\n${clientNonce}\n${nodeNonce}`).digest('base64');
}

describe('fuzz: the client against a hostile node', () => {
  it(
    'Connection settles on every lie: the honest answer only from an honest node, otherwise a NodeError with a code',
    async () => {
      await fuzzAsync(sealedSummary, 'client', 'hostile node sessions', hostileCase, runHostileCase, { numRuns: runs(200), seed: 0xc11e47 });
      console.log(`[fuzz] client vs hostile node: ${[...tally].filter(([k]) => k.startsWith('client vs')).sort().map(([k, n]) => `${k} ×${n}`).join(', ')}`);
    },
    timeoutFor(60_000),
  );
});
