/**
 * Findings are data. Every check in relup (release manifests, appups, the
 * planner, bundles) reports `Diagnostic`s; only the CLI turns them into text.
 * Tests assert `code`, never `message` wording.
 */
export type Severity = 'error' | 'warning';

export interface Diagnostic {
  /** Stable identifier, documented in docs/diagnostics.md. */
  code: string;
  severity: Severity;
  /** Path of the file the finding is about, as given by the caller (usually relative to cwd). */
  file?: string;
  /** 1-based line and column inside `file`, when known. */
  line?: number;
  column?: number;
  message: string;
  /** What to do about it: a concrete edit or the next command to run. */
  hint?: string;
}

export interface Located {
  file?: string;
  line?: number;
  column?: number;
}

export function error(code: string, message: string, where: Located = {}, hint?: string): Diagnostic {
  return make('error', code, message, where, hint);
}

export function warning(code: string, message: string, where: Located = {}, hint?: string): Diagnostic {
  return make('warning', code, message, where, hint);
}

function make(severity: Severity, code: string, message: string, where: Located, hint?: string): Diagnostic {
  const d: Diagnostic = { code, severity, message };
  if (where.file !== undefined) d.file = where.file;
  if (where.line !== undefined) d.line = where.line;
  if (where.column !== undefined) d.column = where.column;
  if (hint !== undefined) d.hint = hint;
  return d;
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** Stable order for output: by file, line, column, then code. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort(
    (a, b) =>
      cmp(a.file ?? '', b.file ?? '') ||
      (a.line ?? 0) - (b.line ?? 0) ||
      (a.column ?? 0) - (b.column ?? 0) ||
      cmp(a.code, b.code) ||
      cmp(a.message, b.message),
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Result of a parse → normalise → rules pipeline: never throws for bad input. */
export interface Checked<T> {
  value: T | undefined;
  diagnostics: Diagnostic[];
}
