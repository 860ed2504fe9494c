import fc from 'fast-check';
import { stringify } from 'yaml';

/**
 * Mutation-based generators: start from a valid document (the demo's appup,
 * release.yaml, a real relup script, a real manifest, a real frame) and break
 * it the way people and attackers do. Two layers:
 *
 * - structural: on the parsed value (delete / retype / add unknown keys /
 *   rename / swap and copy values across keys / wrap / nest deeply / alias
 *   bombs), then serialised back as block YAML, flow YAML or JSON. Values
 *   shared by two places come out of the YAML serialiser as anchors and
 *   aliases, so copies and bombs exercise alias handling for free.
 * - textual, on the bytes: YAML and JSON tokens inserted anywhere (anchors,
 *   aliases, tags, directives, document markers, merge keys, quotes,
 *   brackets), deleted ranges, duplicated / swapped / re-indented lines,
 *   CRLF and CR line ends, a BOM, NUL bytes, very long lines, multi-document
 *   streams, truncation, invalid UTF-8 sequences and flipped bits.
 *
 * Every operation picks its place with a natural number taken modulo what is
 * there, so fast-check can shrink a failure to the smallest edit that shows it.
 */

export type Key = string | number;
export type Path = Key[];
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Set an own property, even `__proto__` (a plain assignment would change the prototype instead). */
function define(o: Obj, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Parse JSON into plain data with own `__proto__` keys kept as data (JSON.parse already does). */
export function data(json: string): unknown {
  return JSON.parse(json);
}

export function clone(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clone);
  if (isObj(v)) {
    const o: Obj = {};
    for (const k of Object.keys(v)) define(o, k, clone(v[k]));
    return o;
  }
  return v;
}

/** Every path in `root` (root first), breadth-first, at most `limit` of them; shared or cyclic values are visited once. */
export function allPaths(root: unknown, limit = 600): Path[] {
  const out: Path[] = [[]];
  const seen = new Set<unknown>();
  const queue: { v: unknown; p: Path }[] = [{ v: root, p: [] }];
  for (let next = 0; next < queue.length && out.length < limit; next++) {
    const { v, p } = queue[next]!;
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    const entries: [Key, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.keys(v).map((k) => [k, (v as Obj)[k]]);
    for (const [k, x] of entries) {
      if (out.length >= limit) break;
      const child = [...p, k];
      out.push(child);
      queue.push({ v: x, p: child });
    }
  }
  return out;
}

function getAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const k of path) v = Array.isArray(v) ? v[k as number] : isObj(v) ? v[k as string] : undefined;
  return v;
}

/** Put `value` at `path` (in place); returns the new root. */
function setAt(root: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const parent = getAt(root, path.slice(0, -1));
  const key = path[path.length - 1]!;
  if (Array.isArray(parent) && typeof key === 'number') parent[key] = value;
  else if (isObj(parent)) define(parent, String(key), value);
  return root;
}

function deleteAt(root: unknown, path: Path): unknown {
  if (path.length === 0) return undefined;
  const parent = getAt(root, path.slice(0, -1));
  const key = path[path.length - 1]!;
  if (Array.isArray(parent) && typeof key === 'number') parent.splice(key, 1);
  else if (isObj(parent)) delete parent[String(key)];
  return root;
}

const isPrefix = (a: Path, b: Path) => a.length <= b.length && a.every((k, i) => k === b[i]);

function nested(depth: number, kind: 'list' | 'map', leaf: unknown = 'x'): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = kind === 'list' ? [v] : { a: v };
  return v;
}

/** The billion-laughs shape: `width` references to the level below, `depth` levels. Shared objects, so YAML writes anchors and aliases. */
function bomb(width: number, depth: number): unknown {
  let level: unknown = Array.from({ length: width }, () => 'lol');
  for (let i = 1; i < depth; i++) {
    const below = level;
    level = Array.from({ length: width }, () => below);
  }
  return level;
}

// ------------------------------------------------------------------ hostile values

/**
 * Any string of code units: ASCII, the BMP with lone surrogates, and astral
 * characters. (fc.string({ unit: 'binary' }) does the same but builds a map of
 * every code point the first time it shrinks, which costs more than a run.)
 */
export function anyText(maxLength: number): fc.Arbitrary<string> {
  const unit = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) },
    { weight: 1, arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c)) },
  );
  return fc.array(unit, { maxLength }).map((units) => units.join(''));
}

const protoMap = (): unknown => data('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}');

export const SPECIAL_VALUES: readonly unknown[] = [
  null, true, false, 0, -0, 1, -1, 1.5, 0.1, 2 ** 31 - 1, 2 ** 31, 2 ** 32, -(2 ** 31), 2 ** 53, 2 ** 53 + 2, 1e21, 1e308, -1e308, 5e-324,
  Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN,
  '', ' ', '0', '01', '-1', '1.2', '1.2.3', 'v1.2.3', '=1.2.3', '1.2.3-rc.1+b.2', '01.2.3', '1.2.3.4', '*', '^1.0.0', '>=1.0.0 <0.0.1', 'latest', 'x || y',
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '\u0000', '\uFEFF', '\uD800', '\uDFFF', '\u2028', '😀', 'é', 'a\nb', 'a\r\nb', 'a\tb',
  '../x', '../../etc/passwd', '/abs', 'C:\\x', 'a\\b', 'a//b', './a', 'a/./b', '.hidden', 'release.yaml', 'manifest.json', 'manifest.sig',
  'demo', 'node', 'erlang', 'lua', 'deno', 'game', 'route', 'config', 'http_api', 'update', 'load', 'add', 'delete', 'soft', 'brutal', 'static',
  'point_of_no_return', 'commit', 'status', 'apply', 'up', 'down', 'from', 'to', 'a'.repeat(64), 'f'.repeat(64), 'F'.repeat(64),
  [], {}, [null], [[]], { '': '' }, [1, 'two', null], { a: { b: { c: {} } } },
];

/** Values of every type and a few pathological sizes: what a retype or an unknown key gets. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...SPECIAL_VALUES).map(clone) },
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 2, arbitrary: anyText(24) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.integer({ min: 1, max: 400 }).map((n) => Number(`1e${n}`))) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 300 }), fc.constantFrom('list', 'map') as fc.Arbitrary<'list' | 'map'>).map(([n, k]) => nested(n, k)) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 10_000 }).map((n) => 'x'.repeat(n)) },
  { weight: 1, arbitrary: fc.constant(null).map(protoMap) },
);

/** Keys: the document's own keys, typos of them, prototype names and odd strings. */
export function hostileKey(known: readonly string[]): fc.Arbitrary<string> {
  const typo = fc.tuple(fc.constantFrom(...known), fc.nat(), fc.constantFrom('drop', 'double', 'upper', 'swap', 'suffix', 'space')).map(([k, i, how]) => {
    const at = k.length === 0 ? 0 : i % k.length;
    switch (how) {
      case 'drop':
        return k.slice(0, at) + k.slice(at + 1);
      case 'double':
        return k.slice(0, at) + k[at] + k.slice(at);
      case 'upper':
        return k.toUpperCase();
      case 'swap':
        return at + 1 < k.length ? k.slice(0, at) + k[at + 1] + k[at] + k.slice(at + 2) : `${k}_`;
      case 'suffix':
        return `${k}s`;
      default:
        return ` ${k}`;
    }
  });
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...known) },
    { weight: 3, arbitrary: typo },
    { weight: 2, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf', '', ' ', '0', '-', '1.2.3', '<<', '~', 'null', 'true', '\u0000', '😀', 'k'.repeat(500)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  );
}

// ------------------------------------------------------------------ structural mutations

export type StructOp =
  | { op: 'delete'; at: number }
  | { op: 'set'; at: number; value: unknown }
  | { op: 'add-key'; at: number; key: string; value: unknown }
  | { op: 'rename-key'; at: number; key: string }
  | { op: 'swap'; at: number; with: number }
  | { op: 'copy'; at: number; to: number }
  | { op: 'dup-item'; at: number }
  | { op: 'wrap'; at: number; as: 'list' | 'map' }
  | { op: 'nest'; at: number; depth: number }
  | { op: 'bomb'; at: number; width: number; depth: number }
  | { op: 'grow'; at: number; count: number };

export function structOp(known: readonly string[]): fc.Arbitrary<StructOp> {
  const at = fc.nat();
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), at }) },
    { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), at, value: hostileValue }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('add-key' as const), at, key: hostileKey(known), value: hostileValue }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('rename-key' as const), at, key: hostileKey(known) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('swap' as const), at, with: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('copy' as const), at, to: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('dup-item' as const), at }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('wrap' as const), at, as: fc.constantFrom('list' as const, 'map' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('nest' as const), at, depth: fc.integer({ min: 10, max: 300 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('bomb' as const), at, width: fc.integer({ min: 2, max: 10 }), depth: fc.integer({ min: 2, max: 6 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('grow' as const), at, count: fc.integer({ min: 2, max: 60 }) }) },
  );
}

/**
 * Apply structural edits to a copy of `original`. `share`: copies keep the
 * same object (YAML writes an anchor and an alias; a copy into its own
 * descendant makes a recursive alias); without it values are cloned and
 * cycles avoided (JSON cannot express either).
 */
export function applyStructOps(original: unknown, ops: readonly StructOp[], share: boolean): unknown {
  let root = clone(original);
  for (const o of ops) {
    const paths = allPaths(root);
    const path = paths[o.at % paths.length]!;
    const here = getAt(root, path);
    // Growth is bounded by the size written out in full (JSON expands shared values; cycles count as "too big").
    if (added(o, root, path, here) > MAX_NODES - sizeOf(root, MAX_NODES)) continue;
    switch (o.op) {
      case 'delete':
        root = deleteAt(root, path);
        break;
      case 'set':
        root = setAt(root, path, clone(o.value));
        break;
      case 'add-key': {
        // Into the map at (or above) the path; into a list as a new item.
        const target = isObj(here) || Array.isArray(here) ? here : getAt(root, path.slice(0, -1));
        if (isObj(target)) define(target, o.key, clone(o.value));
        else if (Array.isArray(target)) target.push(clone(o.value));
        else root = { [o.key]: clone(o.value), value: root };
        break;
      }
      case 'rename-key': {
        const parent = getAt(root, path.slice(0, -1));
        const key = path[path.length - 1];
        if (isObj(parent) && typeof key === 'string' && key !== o.key) {
          // Keep the key's position, so the text differs only where the key was.
          const entries = Object.keys(parent).map((k) => [k === key ? o.key : k, parent[k]] as const);
          for (const k of Object.keys(parent)) delete parent[k];
          for (const [k, v] of entries) define(parent, k, v);
        }
        break;
      }
      case 'swap': {
        const other = paths[o.with % paths.length]!;
        if (isPrefix(path, other) || isPrefix(other, path)) break;
        const a = getAt(root, path);
        const b = getAt(root, other);
        root = setAt(root, path, b);
        root = setAt(root, other, a);
        break;
      }
      case 'copy': {
        const to = paths[o.to % paths.length]!;
        if (to.length === 0) break;
        if (!share && isPrefix(path, to)) break;
        root = setAt(root, to, share ? here : clone(here));
        break;
      }
      case 'dup-item': {
        const parent = getAt(root, path.slice(0, -1));
        const key = path[path.length - 1];
        if (Array.isArray(parent) && typeof key === 'number') parent.splice(key, 0, share ? parent[key] : clone(parent[key]));
        else if (Array.isArray(here)) here.push(...(share ? here : here.map(clone)));
        break;
      }
      case 'wrap':
        root = setAt(root, path, o.as === 'list' ? [here] : { value: here });
        break;
      case 'nest':
        root = setAt(root, path, nested(o.depth, o.depth % 2 === 0 ? 'list' : 'map', share ? here : clone(here)));
        break;
      case 'grow': {
        // Many siblings: the map or list around the path gets `count` copies of the entry (new keys for a map).
        if (path.length === 0) break;
        const parent = getAt(root, path.slice(0, -1));
        const key = path[path.length - 1]!;
        const copies = Array.from({ length: o.count }, () => (share ? here : clone(here)));
        if (Array.isArray(parent)) parent.push(...copies);
        else if (isObj(parent)) copies.forEach((c, i) => define(parent, `${String(key)}_${i}`, c));
        break;
      }
      case 'bomb': {
        // JSON writes a shared value out in full: keep the expansion small enough to write down
        // (YAML's alias limit is 100, so a few thousand leaves already exceed it).
        const depth = Math.min(o.depth, Math.floor(Math.log(1_000) / Math.log(o.width)));
        const value = bomb(o.width, depth);
        root = setAt(root, path, share ? value : clone(value));
        break;
      }
    }
  }
  return root;
}

/** The most nodes a mutated document may hold, counted as written out in full. */
const MAX_NODES = 3_000;

/** Nodes in `v` counted as a tree (shared values once per reference), stopping past `limit`. */
function sizeOf(v: unknown, limit: number): number {
  let n = 0;
  const stack: unknown[] = [v];
  while (stack.length > 0 && n <= limit) {
    const x = stack.pop();
    n += 1;
    if (Array.isArray(x)) stack.push(...x);
    else if (isObj(x)) for (const k of Object.keys(x)) stack.push(x[k]);
  }
  return n;
}

/** How many nodes an operation would add, at most. */
function added(o: StructOp, root: unknown, path: Path, here: unknown): number {
  const size = (v: unknown) => sizeOf(v, MAX_NODES);
  switch (o.op) {
    case 'set':
    case 'add-key':
      return size(o.value);
    case 'copy':
      return size(here);
    case 'dup-item': {
      const parent = getAt(root, path.slice(0, -1));
      return Array.isArray(parent) ? size(here) : Array.isArray(here) ? size(here) : 0;
    }
    case 'grow':
      return o.count * size(here);
    case 'nest':
      return o.depth + size(here);
    case 'wrap':
      return 1;
    case 'bomb':
      return Math.min(o.width ** o.depth, 1_000);
    default:
      return 0;
  }
}

export type Serialiser = 'yaml' | 'yaml-flow' | 'json' | 'json-pretty';

/** Mutants stop at this size: parsers must take hostile input, but the budget is for many cases, not a few huge ones. */
export const MAX_MUTANT_CHARS = 256 * 1024;

/** Write a (mutated) value as a document. Values the writer cannot express fall back to String(). Cut at MAX_MUTANT_CHARS. */
export function serialise(value: unknown, how: Serialiser): string {
  const text = write(value, how);
  return text.length > MAX_MUTANT_CHARS ? text.slice(0, MAX_MUTANT_CHARS) : text;
}

function write(value: unknown, how: Serialiser): string {
  try {
    switch (how) {
      case 'yaml':
        return stringify(value, { aliasDuplicateObjects: true, lineWidth: 0 }) ?? '';
      case 'yaml-flow':
        return stringify(value, { aliasDuplicateObjects: true, collectionStyle: 'flow', lineWidth: 0 }) ?? '';
      case 'json':
        return JSON.stringify(value) ?? 'null';
      case 'json-pretty':
        return JSON.stringify(value, null, 2) ?? 'null';
    }
  } catch {
    return String(value);
  }
}

// ------------------------------------------------------------------ text mutations

/** YAML's special tokens, and a few small hostile documents to splice in. */
export const YAML_TOKENS: readonly string[] = [
  '&a ', '*a', '&a', '*b', '*undefined_alias', '<<: *a\n', '<<: [*a, *a]\n', '&x [*x]', '&x {k: *x}',
  'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
  '!!str ', '!!int ', '!!float ', '!!bool ', '!!null ', '!!binary ', '!!timestamp ', '!!set ', '!!omap ', '!!pairs ', '!!map ', '!!seq ', '!custom ', '!<tag:yaml.org,2002:str> ', '!!js/function ', '!!python/object:os.system ',
  '%YAML 1.1\n', '%YAML 2.0\n', '%TAG !e! tag:example.com,2000:\n', '---\n', '--- ', '...\n', '\n---\n', '\n...\n',
  '? ', '? [a, b]\n: c\n', ': ', '- ', '-', ':', '{', '}', '[', ']', ',', '"', "'", '#', '|', '>', '|-\n', '>+\n', '|2\n',
  '\t', ' ', '  ', '    ', '\n', '\r\n', '\r', '\u0000', '\uFEFF', '\u2028', '\u0085', '\u00A0', '\u001b',
  '~', 'null', 'true', 'yes', 'no', 'on', 'NaN', '.nan', '.inf', '-.inf', '0x1F', '0o17', '0b11', '1e999', '-0', '99999999999999999999999', '1_000', '2001-12-14t21:59:43.10-05:00',
  '@', '`', '%', '\\', '"\\u0000"', '"\\x00"', '"\\uD800"', '"\\U0010FFFF"', "'it''s'", '"unterminated', '[unclosed', '{unclosed: ',
];

export const JSON_TOKENS: readonly string[] = [
  '{', '}', '[', ']', ',', ':', '"', '\\', '\\u0000', '\\ud800', '\\uDFFF', '"\\ud800"', 'null', 'true', 'false', '1e999', '-0', '0.0000001', '1'.repeat(400), '-',
  'NaN', 'Infinity', '/*', '*/', '//', "'", '\u00A0', '\uFEFF', '\u0000', '\n', '\r\n', ' ', '{"__proto__":{"polluted":true}}', '"__proto__":', '[[[[[[[[', ']]]]]]]]', '{}', '[]', '""',
];

/** Byte sequences that are not UTF-8: a lone continuation byte, truncated sequences, an overlong NUL, a surrogate, beyond U+10FFFF, 0xFE/0xFF. */
export const BAD_UTF8: readonly number[][] = [[0x80], [0xbf], [0xc0, 0x80], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xfe], [0xff], [0xff, 0xfe], [0xef, 0xbb]];

export type TextOp =
  | { op: 'insert'; at: number; text: string }
  | { op: 'delete'; at: number; len: number }
  | { op: 'dup-line'; at: number }
  | { op: 'drop-line'; at: number }
  | { op: 'swap-lines'; at: number; with: number }
  | { op: 'indent'; at: number; by: number }
  | { op: 'truncate'; at: number }
  | { op: 'newlines'; style: '\r\n' | '\r' | '\n\n' | '\u2028' }
  | { op: 'bom' }
  | { op: 'bytes'; at: number; bytes: number[] }
  | { op: 'flip'; at: number; mask: number }
  | { op: 'long-line'; at: number; n: number }
  | { op: 'multi-doc'; again: boolean };

export function textOp(tokens: readonly string[]): fc.Arbitrary<TextOp> {
  const at = fc.nat();
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant('insert' as const), at, text: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...tokens) }, { weight: 1, arbitrary: anyText(6) }) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), at, len: fc.integer({ min: 1, max: 40 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('dup-line' as const), at }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('drop-line' as const), at }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('swap-lines' as const), at, with: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('indent' as const), at, by: fc.integer({ min: -4, max: 6 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), at }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('newlines' as const), style: fc.constantFrom('\r\n' as const, '\r' as const, '\n\n' as const, '\u2028' as const) }) },
    { weight: 1, arbitrary: fc.constant({ op: 'bom' as const }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('bytes' as const), at, bytes: fc.constantFrom(...BAD_UTF8) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('flip' as const), at, mask: fc.integer({ min: 1, max: 255 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('long-line' as const), at, n: fc.integer({ min: 1_000, max: 8_000 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('multi-doc' as const), again: fc.boolean() }) },
  );
}

const NL = 0x0a;

function lineStarts(b: Buffer): number[] {
  const starts = [0];
  for (let i = 0; i < b.length; i++) if (b[i] === NL && i + 1 < b.length) starts.push(i + 1);
  return starts;
}

function splitLines(b: Buffer): Buffer[] {
  const starts = lineStarts(b);
  return starts.map((s, i) => b.subarray(s, starts[i + 1] ?? b.length));
}

export function applyTextOps(original: Buffer, ops: readonly TextOp[]): Buffer {
  let b = original;
  for (const o of ops) {
    switch (o.op) {
      case 'insert': {
        const at = o.at % (b.length + 1);
        b = Buffer.concat([b.subarray(0, at), Buffer.from(o.text, 'utf8'), b.subarray(at)]);
        break;
      }
      case 'delete': {
        const at = o.at % (b.length + 1);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + o.len)]);
        break;
      }
      case 'dup-line':
      case 'drop-line':
      case 'swap-lines':
      case 'indent': {
        const lines = splitLines(b);
        const i = o.at % lines.length;
        if (o.op === 'dup-line') lines.splice(i, 0, lines[i]!);
        else if (o.op === 'drop-line') lines.splice(i, 1);
        else if (o.op === 'swap-lines') {
          const j = o.with % lines.length;
          [lines[i], lines[j]] = [lines[j]!, lines[i]!];
          // A swapped last line may lack its newline: keep lines apart.
          lines[i] = withNewline(lines[i]!);
          lines[j] = withNewline(lines[j]!);
        } else {
          const line = lines[i]!;
          lines[i] = o.by >= 0 ? Buffer.concat([Buffer.alloc(o.by, 0x20), line]) : line.subarray(Math.min(-o.by, leadingSpaces(line)));
        }
        b = Buffer.concat(lines);
        break;
      }
      case 'truncate':
        b = b.subarray(0, o.at % (b.length + 1));
        break;
      case 'newlines': {
        const sep = Buffer.from(o.style, 'utf8');
        const parts: Buffer[] = [];
        let start = 0;
        for (let i = 0; i < b.length; i++) {
          if (b[i] !== NL) continue;
          parts.push(b.subarray(start, i), sep);
          start = i + 1;
        }
        parts.push(b.subarray(start));
        b = Buffer.concat(parts);
        break;
      }
      case 'bom':
        b = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]);
        break;
      case 'bytes': {
        const at = o.at % (b.length + 1);
        b = Buffer.concat([b.subarray(0, at), Buffer.from(o.bytes), b.subarray(at)]);
        break;
      }
      case 'flip': {
        if (b.length === 0) break;
        b = Buffer.from(b);
        const at = o.at % b.length;
        b[at] = b[at]! ^ o.mask;
        break;
      }
      case 'long-line': {
        const at = o.at % (b.length + 1);
        b = Buffer.concat([b.subarray(0, at), Buffer.alloc(o.n, 0x78), b.subarray(at)]);
        break;
      }
      case 'multi-doc':
        b = Buffer.concat([Buffer.from('--- '), b, Buffer.from('\n---\n'), o.again ? b : Buffer.from('second: document\n')]);
        break;
    }
  }
  return b;
}

function withNewline(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === NL ? line : Buffer.concat([line, Buffer.from('\n')]);
}

function leadingSpaces(line: Buffer): number {
  let n = 0;
  while (n < line.length && line[n] === 0x20) n++;
  return n;
}

// ------------------------------------------------------------------ whole documents

export interface Seed {
  /** The valid document's bytes, comments and all. */
  text: string;
  /** Its parsed value. */
  value: unknown;
}

export interface Mutant {
  bytes: Buffer;
  /** How it was made, for reading a counterexample. */
  how: string;
}

/** A mutant that fast-check prints as readable text (invalid UTF-8 shown as U+FFFD) plus how it was made, not as a byte array. */
export function mutant(bytes: Buffer, how: string): Mutant {
  return Object.defineProperty({ bytes, how }, fc.toStringMethod, {
    value: () => `Mutant(${JSON.stringify(how)}, text ${JSON.stringify(bytes.toString('utf8').slice(0, 3_000))}${bytes.length > 3_000 ? '…' : ''}, ${bytes.length} bytes)`,
  });
}

/**
 * Mutants of a valid document: text edits of its bytes, structural edits of
 * its value written back in one of `serialisers`, both, the seed itself
 * (which must stay valid) and a little pure noise.
 */
export function mutants(seed: Seed, options: { serialisers: readonly Serialiser[]; tokens: readonly string[]; keys: readonly string[]; share: boolean }): fc.Arbitrary<Mutant> {
  const original = Buffer.from(seed.text, 'utf8');
  const texts = fc.array(textOp(options.tokens), { minLength: 1, maxLength: 4 });
  const structs = fc.array(structOp(options.keys), { minLength: 1, maxLength: 4 });
  const writer = fc.constantFrom(...options.serialisers);
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(null).map(() => mutant(original, 'seed')) },
    { weight: 10, arbitrary: texts.map((ops) => mutant(applyTextOps(original, ops), `text ${JSON.stringify(ops).slice(0, 300)}`)) },
    {
      weight: 6,
      arbitrary: fc.tuple(structs, writer).map(([ops, w]) => mutant(Buffer.from(serialise(applyStructOps(seed.value, ops, options.share), w), 'utf8'), `struct ${w} ${JSON.stringify(ops).slice(0, 300)}`)),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(structs, writer, fc.array(textOp(options.tokens), { minLength: 1, maxLength: 2 })).map(([ops, w, tops]) =>
        mutant(applyTextOps(Buffer.from(serialise(applyStructOps(seed.value, ops, options.share), w), 'utf8'), tops), `struct ${w} ${JSON.stringify(ops).slice(0, 200)} then text ${JSON.stringify(tops).slice(0, 200)}`),
      ),
    },
    {
      weight: 1,
      arbitrary: fc.oneof(anyText(200), fc.string({ unit: fc.constantFrom(...options.tokens), maxLength: 30 })).map((s) => mutant(Buffer.from(s, 'utf8'), 'noise')),
    },
  );
}

/** Bytes read as text the lenient way Node's readFile(…, 'utf8') does: invalid sequences become U+FFFD, a BOM is kept. */
export function lenient(bytes: Buffer): string {
  return bytes.toString('utf8');
}

/** Every key used anywhere in a value, for typos and swaps. */
export function keysOf(value: unknown, out = new Set<string>()): string[] {
  if (Array.isArray(value)) value.forEach((v) => keysOf(v, out));
  else if (isObj(value)) {
    for (const k of Object.keys(value)) {
      out.add(k);
      keysOf(value[k], out);
    }
  }
  return [...out];
}
