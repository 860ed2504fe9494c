import { formatDiagnostic } from '../diagnostics/format-diagnostic.js';
import { sortDiagnostics, type Diagnostic } from '../diagnostics/diagnostic.js';
import type { CommandIo } from './io.js';

export function printDiagnostics(diagnostics: readonly Diagnostic[], io: CommandIo, stream: 'stdout' | 'stderr' = 'stderr'): void {
  for (const d of sortDiagnostics(dedupe(diagnostics))) io[stream].write(`${formatDiagnostic(d, { color: io.color })}\n`);
}

/** The same finding reached by two paths (e.g. both directions of a transition) is shown once. */
export function dedupe(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return diagnostics.filter((d) => {
    const key = JSON.stringify([d.code, d.file, d.line, d.column, d.message]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
