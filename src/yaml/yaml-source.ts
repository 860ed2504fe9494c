import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import type { z } from 'zod';
import { error, type Diagnostic, type Located } from '../diagnostics/diagnostic.js';
import { suggestion } from '../diagnostics/did-you-mean.js';
import { RESERVED_KEY } from './reserved-names.js';

/**
 * Bounds on a YAML file relup reads. Every check is linear in the text, so a
 * hostile file costs at most a linear parse of `maxBytes` (yaml's own
 * `uniqueKeys` compares each key with every earlier one: quadratic, so it is
 * off and duplicates are found here with one Set per map).
 */
export interface YamlLimits {
  /** Characters of text. A release.yaml of 10,000 modules is about 2 MB. */
  maxChars: number;
  /** Keys in one map (a release holds at most 10,000 files, so 10,000 modules). */
  maxKeysPerMap: number;
  /** Nesting of maps and lists. yaml itself overflows its stack near 800 flow levels, slowly. */
  maxDepth: number;
  /**
   * `[` and `{` in the text. Linear, but yaml spends 10–25 µs on each nested
   * flow collection: 4 Mi characters of brackets would take a minute.
   */
  maxFlowCollections: number;
}

export const YAML_LIMITS: YamlLimits = { maxChars: 4 * 1024 * 1024, maxKeysPerMap: 10_000, maxDepth: 256, maxFlowCollections: 100_000 };

/**
 * A parsed YAML file that remembers where every value came from, so any later
 * rule can point at file:line:column. Shared by release manifests, appups and
 * the config file.
 */
export class YamlSource {
  readonly file: string;
  readonly document: Document.Parsed;
  private readonly lines: LineCounter;

  private constructor(file: string, document: Document.Parsed, lines: LineCounter) {
    this.file = file;
    this.document = document;
    this.lines = lines;
  }

  static parse(text: string, file: string, limits: YamlLimits = YAML_LIMITS): { source: YamlSource; diagnostics: Diagnostic[] } {
    const lines = new LineCounter();
    const tooLarge = (message: string, offset: number): { source: YamlSource; diagnostics: Diagnostic[] } => {
      // Refused before (or instead of) building anything from it: an empty document, located at the offending place.
      lines.addNewLine(0);
      for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) lines.addNewLine(i + 1);
      const pos = lines.linePos(offset);
      const empty = parseDocument('', { logLevel: 'error' });
      return {
        source: new YamlSource(file, empty, new LineCounter()),
        diagnostics: [error('yaml-too-large', message, { file, line: pos.line, column: pos.col }, 'a relup file describes code and settings, not data: make it smaller or flatter')],
      };
    };
    if (text.length > limits.maxChars) return tooLarge(`the file is ${text.length} characters long, over the limit of ${limits.maxChars}`, 0);
    const flow = flowBracketsExceeded(text, limits);
    if (flow !== undefined) return tooLarge(flow.message, flow.offset);
    // uniqueKeys off: the library's check is quadratic in the keys of a map; checkStructure finds repeats in linear time.
    // logLevel 'error': the yaml library would otherwise print warnings (e.g. map-valued keys) to stderr itself.
    const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false, logLevel: 'error' });
    const source = new YamlSource(file, document, lines);
    const diagnostics: Diagnostic[] = [];
    for (const e of [...document.errors]) {
      const pos = lines.linePos(e.pos[0]);
      diagnostics.push(
        error('yaml-syntax', `YAML syntax error: ${firstLine(e.message)}`, { file, line: pos.line, column: pos.col }, 'fix the YAML syntax at this position'),
      );
    }
    if (diagnostics.length === 0) diagnostics.push(...checkStructure(document, limits, (offset) => {
      const pos = lines.linePos(offset);
      return { file, line: pos.line, column: pos.col };
    }));
    return { source, diagnostics };
  }

  toJS(): unknown {
    return this.document.toJS({ maxAliasCount: 100 });
  }

  /** Location of the value at `path` (or of its key, when `key` is set); falls back to the nearest parent found. */
  locate(path: readonly PropertyKey[], key = false): Located {
    let node: unknown = this.document.contents;
    let found: { range?: [number, number, number] | null | undefined } | undefined = asRanged(node);
    for (let i = 0; i < path.length; i++) {
      const segment = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = pairIndex(node).get(String(segment));
        if (pair === undefined) break;
        if (last && key) {
          found = asRanged(pair.key) ?? found;
          break;
        }
        node = pair.value;
        found = asRanged(pair.value) ?? asRanged(pair.key) ?? found;
      } else if (isSeq(node) && typeof segment === 'number') {
        const item = node.items[segment];
        if (item === undefined) break;
        node = item;
        found = asRanged(item) ?? found;
      } else {
        break;
      }
    }
    const offset = found?.range?.[0] ?? 0;
    const pos = this.lines.linePos(offset);
    return { file: this.file, line: pos.line, column: pos.col };
  }

  /** Location of the key `name` inside the map at `path` (for unknown-key errors). */
  locateKey(path: readonly PropertyKey[], name: string): Located {
    return this.locate([...path, name], true);
  }
}

/**
 * One linear pass over the parsed document: a repeated key in a map (which
 * toJS would silently resolve to the last one; `1` and "1" count as the same
 * key, since they become the same property), a key that is not a plain
 * value, the reserved `__proto__` (a plain object would take it as its
 * prototype and drop it), too many keys in one map, too deep a nesting.
 */
function checkStructure(document: Document.Parsed, limits: YamlLimits, at: (offset: number) => Located): Diagnostic[] {
  const out: Diagnostic[] = [];
  const stack: { node: unknown; depth: number }[] = [{ node: document.contents, depth: 0 }];
  while (stack.length > 0 && out.length < 100) {
    const { node, depth } = stack.pop()!;
    if (!isMap(node) && !isSeq(node)) continue;
    const where = (n: unknown) => at(asRanged(n)?.range?.[0] ?? 0);
    if (depth >= limits.maxDepth) {
      out.push(error('yaml-too-large', `lists and maps nest deeper than ${limits.maxDepth} levels`, where(node), 'flatten the data'));
      continue;
    }
    if (isSeq(node)) {
      for (const item of node.items) stack.push({ node: item, depth: depth + 1 });
      continue;
    }
    if (node.items.length > limits.maxKeysPerMap) {
      out.push(error('yaml-too-large', `this map has ${node.items.length} keys, over the limit of ${limits.maxKeysPerMap}`, where(node.items[limits.maxKeysPerMap]?.key ?? node), 'split it, or keep data out of relup files'));
      continue;
    }
    const seen = new Set<string>();
    for (const pair of node.items) {
      const key = pair.key;
      if (!isScalar(key) || isAlias(key)) {
        out.push(error('yaml-syntax', 'a key must be a plain value (a name), not a list, a map or an alias', where(key ?? node), 'write the key as a plain name'));
        continue;
      }
      const name = String(key.value);
      if (name === RESERVED_KEY) {
        out.push(error('yaml-reserved-key', `the key ${JSON.stringify(name)} is reserved`, where(key), `rename it: ${RESERVED_KEY} would replace the prototype of the object it is read into, and be lost`));
      } else if (seen.has(name)) {
        out.push(error('yaml-syntax', `YAML syntax error: map keys must be unique ("${name}" is repeated)`, where(key), 'remove or rename the repeated key'));
      }
      seen.add(name);
      stack.push({ node: pair.value, depth: depth + 1 });
    }
  }
  return out.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

/**
 * Where `[` and `{` first run more than `maxDepth` deep, or number more than
 * `maxFlowCollections`, counting every bracket in the text (inside strings
 * too, so it can only overcount): yaml's own parser takes seconds to refuse a
 * few megabytes of `[`.
 */
function flowBracketsExceeded(text: string, limits: YamlLimits): { message: string; offset: number } | undefined {
  let depth = 0;
  let opened = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) {
      if (++depth > limits.maxDepth) return { message: `lists and maps nest deeper than ${limits.maxDepth} levels`, offset: i };
      if (++opened > limits.maxFlowCollections) return { message: `more than ${limits.maxFlowCollections} [ and { in the file`, offset: i };
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) {
      depth -= 1;
    }
  }
  return undefined;
}

const pairIndexes = new WeakMap<object, Map<string, Pair>>();

/** The pairs of a map by key text, first one first (as find() did), built once per map: locate() is called once per diagnostic. */
function pairIndex(map: YAMLMap): Map<string, Pair> {
  let index = pairIndexes.get(map);
  if (index === undefined) {
    index = new Map();
    for (const p of map.items) if (isPair(p) && isScalar(p.key) && !index.has(String(p.key.value))) index.set(String(p.key.value), p);
    pairIndexes.set(map, index);
  }
  return index;
}

function asRanged(node: unknown): { range?: [number, number, number] | null | undefined } | undefined {
  return node !== null && typeof node === 'object' && 'range' in node ? (node as Node) : undefined;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/** Render a value path as the user wrote it: `up[0].instructions[2].update`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(top level)' : out;
}

/**
 * Validate the JS value of a YAML source against a zod schema and turn every
 * issue into a located diagnostic. Unknown keys get a "did you mean" from the
 * keys the schema accepts at that place.
 */
export function validateYaml<S extends z.ZodType>(
  source: YamlSource,
  schema: S,
  codePrefix: string,
  knownKeysAt: (path: readonly PropertyKey[]) => readonly string[] = () => [],
): { value: z.output<S> | undefined; diagnostics: Diagnostic[] } {
  let data: unknown;
  try {
    data = source.toJS();
  } catch (e) {
    // toJS refuses alias bombs and unresolved aliases: bad input, not a crash.
    const message = `cannot read this YAML as data: ${e instanceof Error ? e.message : String(e)}`;
    return { value: undefined, diagnostics: [error(`${codePrefix}-invalid`, message, source.locate([]), 'write plain maps and lists, without aliases to aliases')] };
  }
  const result = schema.safeParse(data, { reportInput: true });
  if (result.success) return { value: result.data, diagnostics: [] };
  const diagnostics: Diagnostic[] = [];
  for (const issue of result.error.issues) {
    const path = issue.path;
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const known = knownKeysAt(path);
        diagnostics.push(
          error(
            `${codePrefix}-unknown-key`,
            `unknown key "${k}" in ${formatPath(path)}${suggestion(k, known)}`,
            source.locateKey(path, k),
            known.length > 0 ? `allowed keys here: ${known.join(', ')}` : 'remove this key',
          ),
        );
      }
      continue;
    }
    if (issue.code === 'invalid_key') {
      // A bad name used as a map key (a module or process name): point at the key, say what is wrong with it.
      const reasons = issue.issues.map((i) => i.message).join('; ');
      diagnostics.push(error(`${codePrefix}-invalid`, `${formatPath(path)}: ${reasons}`, source.locate(path, true), 'rename this key'));
      continue;
    }
    const where = source.locate(path);
    const message = issue.code === 'invalid_type' && issue.input === undefined
      ? `missing required key ${formatPath(path)}`
      : `${formatPath(path)}: ${issue.message}`;
    diagnostics.push(error(`${codePrefix}-invalid`, message, where, hintFor(issue)));
  }
  return { value: undefined, diagnostics };
}

function hintFor(issue: z.core.$ZodIssue): string | undefined {
  if (issue.code === 'invalid_type') return `expected ${issue.expected}`;
  if (issue.code === 'invalid_value') return `use one of: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  return undefined;
}
