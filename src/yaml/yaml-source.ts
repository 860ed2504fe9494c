import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import type { z } from 'zod';
import { error, type Diagnostic, type Located } from '../diagnostics/diagnostic.js';
import { suggestion } from '../diagnostics/did-you-mean.js';

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

  static parse(text: string, file: string): { source: YamlSource; diagnostics: Diagnostic[] } {
    const lines = new LineCounter();
    // uniqueKeys: a duplicated key is almost always a merge mistake; report it rather than keep the last one.
    // logLevel 'error': the yaml library would otherwise print warnings (e.g. map-valued keys) to stderr itself.
    const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
    const source = new YamlSource(file, document, lines);
    const diagnostics: Diagnostic[] = [];
    for (const e of [...document.errors]) {
      const pos = lines.linePos(e.pos[0]);
      diagnostics.push(
        error('yaml-syntax', `YAML syntax error: ${firstLine(e.message)}`, { file, line: pos.line, column: pos.col }, 'fix the YAML syntax at this position'),
      );
    }
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
