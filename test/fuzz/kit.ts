import fc from 'fast-check';
import { afterAll } from 'vitest';
import type { Diagnostic } from '../../src/diagnostics/diagnostic.js';

/**
 * Shared plumbing of the fuzz tests (docs/fuzzing.md): case budgets, fixed
 * seeds, a per-file summary of cases and time, and the invariants every
 * diagnostic must satisfy.
 *
 * Environment:
 * - FUZZ_RUNS   multiplier of every case count (default 1; 0.1 for a smoke run, 10 for a long one)
 * - FUZZ_SEED   run every property with this seed instead of its fixed one (to replay a failure)
 * - FUZZ_PATH   with FUZZ_SEED: replay only the shrunk counterexample fast-check printed
 */
export const MULTIPLIER = parseMultiplier(process.env['FUZZ_RUNS']);
/** FUZZ_PROFILE=1: print the five slowest cases of each property (to tune generators). */
const PROFILE = process.env['FUZZ_PROFILE'] === '1';

function parseMultiplier(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`FUZZ_RUNS must be a positive number (a multiplier of the case counts), got ${JSON.stringify(raw)}`);
  return n;
}

/** The number of cases for a property whose base budget is `base`. */
export function runs(base: number): number {
  return Math.max(1, Math.round(base * MULTIPLIER));
}

/** A per-test wall-clock limit that grows with the multiplier (vitest's own timeout, so a hang fails instead of blocking CI). */
export function timeoutFor(baseMs: number): number {
  return Math.round(baseMs * Math.max(1, MULTIPLIER)) + 10_000;
}

interface Row {
  target: string;
  property: string;
  cases: number;
  /** Wall time of the property: generating, mutating, checking. */
  ms: number;
  /** Of which in the code under test and the checks (sync properties only). */
  checkMs?: number;
  /** CPU time of this process meanwhile (user + system): what the property costs on a loaded machine. */
  cpuMs: number;
  seed: number;
}

/** Collects what each property ran and prints it after the file: the numbers docs/fuzzing.md quotes. */
export class Summary {
  readonly rows: Row[] = [];
  constructor(private readonly title: string) {
    afterAll(() => {
      if (this.rows.length === 0) return;
      const width = Math.max(...this.rows.map((r) => `${r.target}: ${r.property}`.length), 10);
      const lines = this.rows.map((r) => `  ${`${r.target}: ${r.property}`.padEnd(width)}  ${String(r.cases).padStart(7)} cases  ${(r.ms / 1000).toFixed(2).padStart(6)} s wall ${(r.cpuMs / 1000).toFixed(2).padStart(6)} s cpu${r.checkMs === undefined ? '' : ` (${(r.checkMs / 1000).toFixed(2)} s in checks)`}  seed ${r.seed}`);
      const byTarget = new Map<string, { cases: number; ms: number; cpuMs: number }>();
      for (const r of this.rows) {
        const t = byTarget.get(r.target) ?? { cases: 0, ms: 0, cpuMs: 0 };
        t.cases += r.cases;
        t.ms += r.ms;
        t.cpuMs += r.cpuMs;
        byTarget.set(r.target, t);
      }
      const totals = [...byTarget].map(([t, v]) => `  = ${t}: ${v.cases} cases in ${(v.ms / 1000).toFixed(2)} s (${(v.cpuMs / 1000).toFixed(2)} s cpu)`);
      console.log(`[fuzz] ${this.title} (FUZZ_RUNS=${MULTIPLIER})\n${lines.join('\n')}\n${totals.join('\n')}`);
    });
  }

  record(row: Row): void {
    this.rows.push(row);
  }
}

function seedFor(seed: number): { seed: number; path?: string } {
  const env = process.env['FUZZ_SEED'];
  if (env === undefined || env === '') return { seed };
  const path = process.env['FUZZ_PATH'];
  return { seed: Number(env), ...(path === undefined || path === '' ? {} : { path }) };
}

/**
 * fc.assert with a fixed seed, counting the cases actually run and timing
 * them. `check` throws to fail a case. Also fails a single case that takes
 * longer than `maxCaseMs` (a near-hang: vitest's timeout catches a real one).
 */
export function fuzz<T>(summary: Summary, target: string, property: string, arb: fc.Arbitrary<T>, check: (value: T) => void, options: { numRuns: number; seed: number; maxCaseMs?: number }): void {
  const maxCaseMs = options.maxCaseMs ?? 2_000;
  let cases = 0;
  let inCheck = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  const { seed, path } = seedFor(options.seed);
  const slowest: { ms: number; value: string }[] = [];
  fc.assert(
    fc.property(arb, (value) => {
      cases += 1;
      const t0 = performance.now();
      check(value);
      const ms = performance.now() - t0;
      inCheck += ms;
      if (ms > maxCaseMs) throw new Error(`one case took ${ms.toFixed(0)} ms (limit ${maxCaseMs} ms): too slow for hostile input`);
      if (PROFILE && (slowest.length < 5 || ms > slowest[4]!.ms)) {
        slowest.push({ ms, value: fc.stringify(value).slice(0, 300) });
        slowest.sort((a, b) => b.ms - a.ms).splice(5);
      }
    }),
    { numRuns: options.numRuns, seed, ...(path === undefined ? {} : { path }) },
  );
  summary.record({ target, property, cases, ms: performance.now() - started, checkMs: inCheck, cpuMs: cpuSince(cpu), seed });
  if (PROFILE) console.log(`[fuzz] slowest cases of ${target}: ${property}\n${slowest.map((s) => `  ${s.ms.toFixed(1)} ms  ${s.value}`).join('\n')}`);
}

/** The async flavour, for the live server. */
export async function fuzzAsync<T>(summary: Summary, target: string, property: string, arb: fc.Arbitrary<T>, check: (value: T) => Promise<number>, options: { numRuns: number; seed: number }): Promise<void> {
  let cases = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  const { seed, path } = seedFor(options.seed);
  await fc.assert(
    fc.asyncProperty(arb, async (value) => {
      cases += await check(value);
    }),
    { numRuns: options.numRuns, seed, ...(path === undefined ? {} : { path }) },
  );
  summary.record({ target, property, cases, ms: performance.now() - started, cpuMs: cpuSince(cpu), seed });
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

// ------------------------------------------------------------------ diagnostics

export interface DiagnosticRules {
  /** The code family allowed here. */
  code: RegExp;
  /** The file every diagnostic must name. */
  file: string;
  /** YAML sources: every diagnostic has a 1-based line within the text (plus one, for "end of file"). */
  lines?: number;
  /** Codes allowed without a line even for YAML (the file could not be read as text at all). */
  lineless?: (d: Diagnostic) => boolean;
}

/**
 * What every parser owes for any input: it returned (did not throw), every
 * diagnostic has a code of its family, a severity, a message and the file, a
 * line where the input is YAML; a value exactly when there is no error.
 */
export function checkChecked(result: { value: unknown; diagnostics: unknown }, rules: DiagnosticRules): void {
  if (!Array.isArray(result.diagnostics)) throw new Error(`diagnostics is not a list: ${String(result.diagnostics)}`);
  for (const d of result.diagnostics as Diagnostic[]) checkDiagnostic(d, rules);
  const hasError = (result.diagnostics as Diagnostic[]).some((d) => d.severity === 'error');
  if ((result.value === undefined) !== hasError) throw new Error(`value ${result.value === undefined ? 'missing without' : 'present with'} an error: ${JSON.stringify(result.diagnostics)}`);
}

export function checkDiagnostic(d: Diagnostic, rules: DiagnosticRules): void {
  const bad =
    typeof d.code !== 'string' || !rules.code.test(d.code) ? 'code'
    : d.severity !== 'error' && d.severity !== 'warning' ? 'severity'
    : typeof d.message !== 'string' || d.message.trim() === '' ? 'message'
    : d.file !== rules.file ? 'file'
    : rules.lines !== undefined && d.line === undefined && !(rules.lineless?.(d) ?? false) ? 'line (missing)'
    : d.line !== undefined && (!Number.isInteger(d.line) || d.line < 1 || (rules.lines !== undefined && d.line > rules.lines + 1)) ? 'line'
    : d.column !== undefined && (!Number.isInteger(d.column) || d.column < 1) ? 'column'
    : d.hint !== undefined && typeof d.hint !== 'string' ? 'hint'
    : undefined;
  if (bad !== undefined) throw new Error(`diagnostic with a bad ${bad}: ${JSON.stringify(d).slice(0, 2000)}`);
}

/** Lines of a text the way YAML counts them. */
export function lineCount(text: string): number {
  return text.split(/\r\n|\r|\n/).length;
}

/** Run `f`, turning a throw into a failure that says which parser threw on what (the counterexample shows the input). */
export function noThrow<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const err = new Error(`${what} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (e instanceof Error && e.stack !== undefined) err.stack = `${err.message}\n--- original stack ---\n${e.stack}`;
    throw err;
  }
}
