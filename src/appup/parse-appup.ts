import semver from 'semver';
import { isScalar } from 'yaml';
import type { z } from 'zod';
import { error, hasErrors, sortDiagnostics, warning, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import { didYouMean } from '../diagnostics/did-you-mean.js';
import { formatPath, YamlSource } from '../yaml/yaml-source.js';
import { DEFAULT_SUSPEND_TIMEOUT_MS, type Appup, type AppupEntry, type Instruction } from './appup-model.js';
import {
  APPLY_KEYS,
  appupFrameSchema,
  ENTRY_KEYS,
  instructionSchemas,
  isOperation,
  OPERATION_OPTIONS,
  OPERATIONS,
  TOP_KEYS,
  type Operation,
} from './appup-schema.js';
import { entryMatches, isExactVersion } from './match-entry.js';

/**
 * Appup files: parse → normalise → rules. Never throws for bad input; every
 * diagnostic is located (file, line, column) and its code starts with
 * `appup-` (or is `yaml-syntax`). `value` is set only when there is no error;
 * warnings may come with a value. Codes are listed in docs/appup.md.
 */
export function parseAppup(text: string, file: string): Checked<Appup> {
  const { source, diagnostics } = YamlSource.parse(text, file);
  if (hasErrors(diagnostics)) return { value: undefined, diagnostics };
  const checked = parseAppupSource(source);
  return { value: checked.value, diagnostics: [...diagnostics, ...checked.diagnostics] };
}

/** The same for YAML that is already parsed (and free of syntax errors). */
export function parseAppupSource(source: YamlSource): Checked<Appup> {
  const checker = new AppupChecker(source);
  const appup = checker.run();
  const diagnostics = sortDiagnostics(checker.diagnostics);
  return { value: appup !== undefined && !hasErrors(diagnostics) ? appup : undefined, diagnostics };
}

type Section = 'up' | 'down';
type Path = readonly PropertyKey[];

const SECTIONS: readonly Section[] = ['up', 'down'];
const PATTERN_KEY = { up: 'from', down: 'to' } as const;

/** An instruction with the path it came from, so rules can point at columns too. */
interface Placed {
  instruction: Instruction;
  path: Path;
}

class AppupChecker {
  readonly diagnostics: Diagnostic[] = [];
  private readonly source: YamlSource;
  private readonly file: string;

  constructor(source: YamlSource) {
    this.source = source;
    this.file = source.file;
  }

  run(): Appup | undefined {
    let raw: unknown;
    try {
      raw = this.source.toJS();
    } catch (e) {
      // toJS refuses alias bombs (and anything else it cannot turn into data).
      this.error('appup-invalid', `cannot read this YAML as data: ${e instanceof Error ? e.message : String(e)}`, [], 'write the appup as plain maps and lists, without deeply nested aliases');
      return undefined;
    }
    if (!isRecord(raw)) {
      this.error(
        'appup-invalid',
        raw === null || raw === undefined ? 'the appup is empty' : `an appup is a map with version, up and down, not ${describeValue(raw)}`,
        [],
        'start with "version: <this release>" then "up:" and "down:" lists; see docs/appup.md',
      );
      return undefined;
    }

    // The frame (top level and entries) and the instructions are checked apart,
    // so each instruction is judged by its own operation's options.
    const frame = appupFrameSchema.safeParse(raw, { reportInput: true });
    if (!frame.success) this.reportIssues(frame.error.issues, [], frameKeys, frameCode);
    const placed = this.checkAllInstructions(raw);
    // Unknown keys alone do not stop the rules: check the rest as if they were not there.
    const data = frame.success
      ? frame.data
      : onlyUnknownKeys(frame.error.issues)
        ? appupFrameSchema.safeParse(withoutKeys(raw, frame.error.issues)).data
        : undefined;
    if (data === undefined) return undefined;

    const entry = (section: Section, i: number, versions: string): AppupEntry => ({
      versions,
      instructions: (placed[section][i] ?? []).map((p) => p.instruction),
      line: this.line([section, i]),
    });
    const appup: Appup = {
      file: this.file,
      version: data.version,
      up: (data.up ?? []).map((e, i) => entry('up', i, e.from)),
      down: (data.down ?? []).map((e, i) => entry('down', i, e.to)),
      line: this.line([], 'version'),
    };
    this.rules(appup, placed);
    return appup;
  }

  // ---------------------------------------------------------------- instructions

  private checkAllInstructions(raw: Record<string, unknown>): Record<Section, Placed[][]> {
    const result: Record<Section, Placed[][]> = { up: [], down: [] };
    for (const section of SECTIONS) {
      const list = raw[section];
      if (!Array.isArray(list)) continue;
      list.forEach((entry: unknown, i) => {
        const placed: Placed[] = [];
        result[section][i] = placed;
        if (!isRecord(entry) || !Array.isArray(entry.instructions)) return;
        entry.instructions.forEach((item: unknown, j) => {
          const path = [section, i, 'instructions', j];
          const instruction = this.checkInstruction(item, path);
          if (instruction !== undefined) placed.push({ instruction, path });
        });
      });
    }
    return result;
  }

  private checkInstruction(item: unknown, path: Path): Instruction | undefined {
    if (!isRecord(item)) {
      this.error('appup-invalid', `${formatPath(path)}: an instruction is a map with one operation key, not ${describeValue(item)}`, path, hintForNonMap(item));
      return undefined;
    }
    const keys = Object.keys(item);
    const ops = keys.filter(isOperation);
    if (ops.length === 0) {
      this.reportNoOperation(keys, path);
      return undefined;
    }
    if (ops.length > 1) {
      this.error(
        'appup-instruction-many-ops',
        `${formatPath(path)}: one instruction has several operations (${ops.join(', ')})`,
        [...path, ops[1]!],
        'split it into one list item per operation, e.g. "- update: a" and "- load: b"',
        true,
      );
      return undefined;
    }
    const op = ops[0]!;
    const line = this.line(path, op);
    const known = (relative: Path) => (relative.length === 1 && relative[0] === 'apply' ? APPLY_KEYS : OPERATION_OPTIONS[op]);
    const report = (issues: readonly z.core.$ZodIssue[]) => this.reportIssues(issues, path, known, () => 'appup-invalid', op);
    const options = { reportInput: true };
    // One case per operation keeps the parsed data typed without casts.
    switch (op) {
      case 'load': {
        const r = instructionSchemas.load.safeParse(item, options);
        if (!r.success) return report(r.error.issues);
        return { op, module: r.data.load, deps: copy(r.data.deps), purge: r.data.purge ?? 'soft', line };
      }
      case 'update': {
        const r = instructionSchemas.update.safeParse(item, options);
        if (!r.success) return report(r.error.issues);
        const d = r.data;
        return {
          op,
          module: d.update,
          deps: copy(d.deps),
          purge: d.purge ?? 'soft',
          migration: d.migration,
          extra: d.extra,
          timeout: d.timeout ?? DEFAULT_SUSPEND_TIMEOUT_MS,
          mode: d.mode ?? 'dynamic',
          line,
        };
      }
      case 'add': {
        const r = instructionSchemas.add.safeParse(item, options);
        if (!r.success) return report(r.error.issues);
        return { op, module: r.data.add, deps: copy(r.data.deps), line };
      }
      case 'delete': {
        const r = instructionSchemas.delete.safeParse(item, options);
        if (!r.success) return report(r.error.issues);
        return { op, module: r.data.delete, purge: r.data.purge ?? 'soft', line };
      }
      case 'apply': {
        const r = instructionSchemas.apply.safeParse(item, options);
        if (!r.success) return report(r.error.issues);
        const a = r.data.apply;
        return { op, module: a.module, function: a.function, args: a.args ?? [], line };
      }
      case 'restart': {
        const r = instructionSchemas.restart.safeParse(item, options);
        if (!r.success) return report(r.error.issues);
        return { op, process: r.data.restart, line };
      }
    }
  }

  private reportNoOperation(keys: readonly string[], path: Path): void {
    const ops = OPERATIONS.join(', ');
    for (const key of keys) {
      const guess = didYouMean(key, OPERATIONS);
      if (guess !== undefined) {
        this.error(
          'appup-instruction-no-op',
          `${formatPath(path)}: instruction has no operation; "${key}" is not one (did you mean "${guess}"?)`,
          [...path, key],
          `rename "${key}" to "${guess}"`,
          true,
        );
        return;
      }
    }
    const applyKeys = keys.filter((k) => APPLY_KEYS.includes(k));
    const owners = unique(keys.flatMap((k) => operationsWithOption(k)));
    let hint = `start the instruction with one of: ${ops}`;
    if (applyKeys.length > 0) hint = `${applyKeys.join(', ')} go inside apply, e.g. "- apply: { module: m, function: f, args: [] }"`;
    else if (owners.length > 0) hint = `${keys.join(', ')} ${keys.length === 1 ? 'is an option' : 'are options'} of ${owners.join(' / ')}; add the operation, e.g. "- ${owners[0]}: <module>"`;
    this.error(
      'appup-instruction-no-op',
      keys.length === 0
        ? `${formatPath(path)}: empty instruction`
        : `${formatPath(path)}: instruction has no operation (found ${keys.map((k) => `"${k}"`).join(', ')})`,
      path,
      hint,
    );
  }

  // ---------------------------------------------------------------- zod issues

  /**
   * Turn zod issues into located diagnostics. `base` is where the checked value
   * sits in the file; `known` gives the keys allowed at a path relative to it.
   */
  private reportIssues(
    issues: readonly z.core.$ZodIssue[],
    base: Path,
    known: (relative: Path) => readonly string[],
    codeFor: (path: Path) => string,
    op?: Operation,
  ): undefined {
    // Keys the user probably meant by an unknown key; their "missing" issue would repeat the same mistake.
    const meant = new Set<string>();
    for (const issue of issues) {
      if (issue.code !== 'unrecognized_keys') continue;
      const path = [...base, ...issue.path];
      for (const key of issue.keys) {
        const intended = intendedKey(key, path, known(issue.path));
        if (intended !== undefined) meant.add(formatPath([...path, intended]));
        // "migration needs `update`" only makes sense for the instruction's own keys, not inside apply's map.
        this.reportUnknownKey(key, path, known(issue.path), intended, issue.path.length === 0 ? op : undefined);
      }
    }
    const seen = new Set<string>();
    for (const issue of issues) {
      if (issue.code === 'unrecognized_keys') continue;
      const path = [...base, ...issue.path];
      // One diagnostic per place: a value that breaks two checks is one mistake.
      const id = formatPath(path);
      if (seen.has(id) || meant.has(id)) continue;
      seen.add(id);
      if (issue.code === 'invalid_type' && issue.input === undefined) {
        const parent = path.slice(0, -1);
        const key = String(path[path.length - 1]);
        this.error('appup-invalid', `missing required key "${key}" in ${formatPath(parent)}`, parent, `add "${key}:"`);
        continue;
      }
      this.error(codeFor(path), `${id}: ${this.describeIssue(issue)}`, path, this.hintForIssue(issue, path));
    }
    return undefined;
  }

  private reportUnknownKey(key: string, path: Path, known: readonly string[], intended: string | undefined, op: Operation | undefined): void {
    const where = formatPath(path);
    const owners = op === undefined ? [] : operationsWithOption(key).filter((o) => o !== op);
    let message = `unknown key "${key}" in ${where}${intended === undefined ? '' : ` (did you mean "${intended}"?)`}`;
    let hint: string;
    if (owners.length > 0) {
      message = `"${key}" is not an option of ${op} (in ${where})`;
      hint = `${key} needs ${joinOr(owners.map((o) => `\`${o}\``))}`;
    } else if (intended === 'from') {
      hint = 'an up entry names the versions it upgrades from with "from:"';
    } else if (intended === 'to') {
      hint = 'a down entry names the versions it goes back to with "to:"';
    } else if (intended !== undefined) {
      hint = `rename "${key}" to "${intended}"`;
    } else {
      hint = known.length > 0 ? `allowed keys here: ${known.join(', ')}` : 'remove this key';
    }
    this.error('appup-unknown-key', message, [...path, key], hint, true);
  }

  private describeIssue(issue: z.core.$ZodIssue): string {
    switch (issue.code) {
      case 'invalid_type':
        return `expected ${describeExpected(issue.expected)}, got ${describeValue(issue.input)}`;
      case 'invalid_value':
        return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(issue.input)}`;
      case 'invalid_format':
      case 'custom':
      case 'too_small':
      case 'too_big':
        return `${describeValue(issue.input)}: ${issue.message}`;
      default:
        return issue.message;
    }
  }

  private hintForIssue(issue: z.core.$ZodIssue, path: Path): string | undefined {
    if (issue.code === 'invalid_value' && typeof issue.input === 'string') {
      const guess = didYouMean(issue.input, issue.values.map(String));
      return guess === undefined ? `use one of: ${issue.values.join(', ')}` : `did you mean "${guess}"?`;
    }
    if (issue.code === 'invalid_type' && issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean')) {
      // YAML reads 1.2 as a number and true as a boolean; a version or a name like that must be quoted.
      const node = this.source.document.getIn(path, true);
      const text = isScalar(node) && typeof node.source === 'string' ? node.source : String(issue.input);
      return `quote it so YAML reads a string: "${text}"`;
    }
    if (issue.code === 'invalid_type' && issue.expected === 'array') {
      return `write a YAML list, e.g. [${path[path.length - 1] === 'args' ? '1, "two"' : 'a, b'}] or one "- item" per line`;
    }
    if (frameCode(path) === 'appup-version-pattern-invalid') return 'write an exact version (1.2.2) or a semver range (">=1.2.0 <1.2.3", "^1.1.0", "1.1.x")';
    if (frameCode(path) === 'appup-version-invalid') return 'write the full version of this release, e.g. 1.2.3';
    return undefined;
  }

  // ---------------------------------------------------------------- rules

  private rules(appup: Appup, placed: Record<Section, Placed[][]>): void {
    if (appup.up.length === 0 && appup.down.length === 0) {
      this.warning('appup-empty', `the appup for ${appup.version} has no up or down entries`, [], 'add an "up:" entry (from: <older version>) and a "down:" entry (to: <older version>)');
    }
    for (const section of SECTIONS) {
      const entries = appup[section];
      entries.forEach((entry, i) => {
        const patternPath = [section, i, PATTERN_KEY[section]];
        this.checkDirection(section, entry.versions, appup.version, patternPath);
        this.checkReachable(section, entries, i, patternPath);
        this.checkDuplicates(placed[section][i] ?? []);
      });
    }
  }

  private checkDirection(section: Section, pattern: string, version: string, path: Path): void {
    if (!canMatchAtOrAbove(pattern, version)) return;
    const key = PATTERN_KEY[section];
    const what = section === 'up' ? `up entries say how to reach ${version} from older versions` : `down entries say how to go back from ${version} to older versions`;
    this.error(
      'appup-direction',
      `${key}: ${pattern} can match ${version} or newer, but ${what}`,
      path,
      directionHint(section, pattern, version),
    );
  }

  private checkReachable(section: Section, entries: readonly AppupEntry[], i: number, path: Path): void {
    const pattern = entries[i]!.versions;
    const key = PATTERN_KEY[section];
    if (!isExactVersion(pattern) && matchesNothing(pattern)) {
      this.warning('appup-unreachable-entry', `${key}: ${pattern} matches no version, so this entry is never chosen`, path, 'fix the range bounds or remove the entry');
      return;
    }
    for (let k = 0; k < i; k++) {
      const earlier = entries[k]!;
      if (covers(earlier.versions, pattern)) {
        this.warning(
          'appup-unreachable-entry',
          `${key}: ${pattern} is never chosen: the earlier entry at line ${earlier.line} (${key}: ${earlier.versions}) already matches every version it matches`,
          path,
          'the first matching entry wins: move this entry above the broader one, or remove it',
        );
        return;
      }
    }
  }

  private checkDuplicates(placed: readonly Placed[]): void {
    const firstByName = new Map<string, Placed>();
    for (const p of placed) {
      const i = p.instruction;
      if (i.op === 'apply') continue; // calling functions of a module it also updates is normal
      const name = i.op === 'restart' ? `process ${i.process}` : `module ${i.module}`;
      const first = firstByName.get(name);
      if (first === undefined) {
        firstByName.set(name, p);
        continue;
      }
      this.error(
        'appup-duplicate-instruction',
        `${name} is already named by the ${first.instruction.op} at line ${first.instruction.line} in this entry`,
        [...p.path, i.op],
        'one instruction per module (and per process) in an entry: merge them into one',
        true,
      );
    }
  }

  // ---------------------------------------------------------------- helpers

  private line(path: Path, key?: string): number {
    return (key === undefined ? this.source.locate(path) : this.source.locateKey(path, key)).line ?? 1;
  }

  private error(code: string, message: string, path: Path, hint?: string, atKey = false): void {
    this.diagnostics.push(error(code, message, this.where(path, atKey), hint));
  }

  private warning(code: string, message: string, path: Path, hint?: string): void {
    this.diagnostics.push(warning(code, message, this.where(path, false), hint));
  }

  private where(path: Path, atKey: boolean) {
    return atKey && path.length > 0 ? this.source.locateKey(path.slice(0, -1), String(path[path.length - 1])) : this.source.locate(path);
  }
}

// ------------------------------------------------------------------ version rules

/** Whether `pattern` can select `version` itself or anything newer. */
function canMatchAtOrAbove(pattern: string, version: string): boolean {
  if (isExactVersion(pattern)) return semver.gte(pattern, version);
  return safe(() => semver.intersects(pattern, `>=${version}`), false);
}

function directionHint(section: Section, pattern: string, version: string): string {
  if (!isExactVersion(pattern)) return `bound the range below ${version}, e.g. "<${version}"`;
  if (semver.eq(pattern, version)) return `an appup never needs an entry for its own version: remove it or name an older version`;
  return section === 'up'
    ? `going from ${pattern} to ${version} is a downgrade: it belongs in the down section of appups/${pattern}.yaml`
    : `going from ${version} to ${pattern} is an upgrade: it belongs in the up section of appups/${pattern}.yaml`;
}

function matchesNothing(range: string): boolean {
  return safe(() => semver.minVersion(range) === null, false);
}

/** Whether `earlier` matches every version `later` matches (then `later` is never chosen). */
function covers(earlier: string, later: string): boolean {
  if (isExactVersion(later)) return entryMatches(earlier, later);
  // An exact pattern with build metadata matches only itself, which subset() cannot express.
  if (isExactVersion(earlier) && earlier.includes('+')) return false;
  return safe(() => semver.subset(later, earlier), false);
}

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

// ------------------------------------------------------------------ small helpers

function frameKeys(path: Path): readonly string[] {
  if (path.length === 0) return TOP_KEYS;
  if (path.length === 2 && (path[0] === 'up' || path[0] === 'down')) return ENTRY_KEYS[path[0]];
  return [];
}

function frameCode(path: Path): string {
  if (path.length === 1 && path[0] === 'version') return 'appup-version-invalid';
  if (path.length === 3 && ((path[0] === 'up' && path[2] === 'from') || (path[0] === 'down' && path[2] === 'to'))) {
    return 'appup-version-pattern-invalid';
  }
  return 'appup-invalid';
}

/** The key an unknown key most likely stands for: `from` written in a down entry means `to`, and so on. */
function intendedKey(key: string, path: Path, known: readonly string[]): string | undefined {
  if (path.length === 2 && (path[0] === 'up' || path[0] === 'down') && (key === 'from' || key === 'to')) {
    return PATTERN_KEY[path[0] as Section];
  }
  return didYouMean(key, known);
}

function onlyUnknownKeys(issues: readonly z.core.$ZodIssue[]): boolean {
  return issues.every((issue) => issue.code === 'unrecognized_keys');
}

/** A copy of `raw` without the unknown keys the issues name (already reported). */
function withoutKeys(raw: Record<string, unknown>, issues: readonly z.core.$ZodIssue[]): unknown {
  const copy = structuredClone(raw);
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    let target: unknown = copy;
    for (const segment of issue.path) target = isRecord(target) || Array.isArray(target) ? (target as Record<PropertyKey, unknown>)[segment] : undefined;
    if (isRecord(target)) for (const key of issue.keys) delete target[key];
  }
  return copy;
}

function operationsWithOption(key: string): Operation[] {
  return OPERATIONS.filter((op) => OPERATION_OPTIONS[op].includes(key));
}

function hintForNonMap(item: unknown): string {
  if (typeof item === 'string') {
    const [first, ...rest] = item.trim().split(/\s+/);
    if (first !== undefined && isOperation(first) && rest.length > 0) return `write it as a map: "- ${first}: ${rest.join(' ')}"`;
  }
  return 'write e.g. "- update: my_module" or "- load: my_module"';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function copy(list: readonly string[] | undefined): string[] | undefined {
  return list === undefined ? undefined : [...list];
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

function joinOr(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

function describeExpected(expected: string): string {
  switch (expected) {
    case 'array':
      return 'a list';
    case 'object':
      return 'a map';
    case 'int':
      return 'a whole number';
    case 'string':
    case 'number':
    case 'boolean':
      return `a ${expected}`;
    default:
      return expected;
  }
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  return typeof value;
}
