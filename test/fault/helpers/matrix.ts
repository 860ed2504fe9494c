import { describeStep, demoScript, type Direction } from './demo.js';

/** The faults of the matrix, in table order. */
export const COLUMNS = ['throw', 'real throw', 'hang', 'real hang', 'crash', 'client kill', 'node kill', 'node kill after'] as const;
export type Column = (typeof COLUMNS)[number];

export interface CellResult {
  direction: Direction;
  step: number;
  column: Column;
  /** What happened: refused, rolled-back, committed, or for node kills `restart → 1.2.2`. */
  outcome: string;
  /** Every invariant that did not hold; empty: the cell is consistent. */
  problems: string[];
  /** The real fault, when the column is a real-code one. */
  note?: string;
  /** The traffic sent during the step was held at the node's entry and handled after the outcome (shown as ⏸). */
  held?: boolean;
}

/**
 * Inconsistencies the runtime has today, each a bug or a documented limit
 * (docs/fault-matrix.md). A cell whose every problem is explained by one of
 * these is reported as a known inconsistency; any other problem fails the
 * matrix, and so does a known issue that no longer shows (fixed: update this
 * list and the doc). RELUP_FAULT_MATRIX_STRICT=1 fails on known ones too.
 */
export interface KnownIssue {
  id: string;
  summary: string;
  /** Does this issue explain `problem` in `cell`? */
  explains(cell: CellResult, problem: string): boolean;
}

export const KNOWN_ISSUES: KnownIssue[] = [];

export function setKnownIssues(issues: KnownIssue[]): void {
  KNOWN_ISSUES.splice(0, KNOWN_ISSUES.length, ...issues);
}

export interface Verdict {
  cell: CellResult;
  consistent: boolean;
  /** Known issues explaining every problem of an inconsistent cell; empty when one problem is unexplained. */
  known: string[];
}

export function judge(cell: CellResult, issues: readonly KnownIssue[] = KNOWN_ISSUES): Verdict {
  if (cell.problems.length === 0) return { cell, consistent: true, known: [] };
  const ids = new Set<string>();
  for (const problem of cell.problems) {
    const issue = issues.find((i) => i.explains(cell, problem));
    if (issue === undefined) return { cell, consistent: false, known: [] };
    ids.add(issue.id);
  }
  return { cell, consistent: false, known: [...ids].sort() };
}

export interface MatrixReport {
  table: string;
  cells: number;
  consistent: number;
  inconsistent: number;
  /** Inconsistent cells not explained by a known issue. */
  unexplained: Verdict[];
  /** Known issues that explain no cell any more. */
  unused: string[];
}

/** The step × fault table with totals and a footnote for every inconsistent cell. */
export function renderMatrix(results: readonly CellResult[], issues: readonly KnownIssue[] = KNOWN_ISSUES): MatrixReport {
  const verdicts = results.map((r) => judge(r, issues));
  const at = new Map(verdicts.map((v) => [`${v.cell.direction}:${v.cell.step}:${v.cell.column}`, v]));
  // One footnote per distinct set of problems, listing the cells that show it.
  const notes: { text: string; cells: string[] }[] = [];
  const noteOf = new Map<string, number>();
  const text = (v: Verdict | undefined): string => {
    if (v === undefined) return '—';
    if (v.consistent) return `${v.cell.outcome}${v.cell.held === true ? ' ⏸' : ''} ✓`;
    const what = `${v.cell.outcome}; ${v.known.length > 0 ? `known ${v.known.join(', ')}: ` : 'UNEXPLAINED: '}${v.cell.problems.join('; ')}`;
    let n = noteOf.get(what);
    if (n === undefined) {
      notes.push({ text: what, cells: [] });
      noteOf.set(what, (n = notes.length));
    }
    notes[n - 1]!.cells.push(`${v.cell.direction === 'up' ? '↑' : '↓'}${v.cell.step} ${v.cell.column}${v.cell.note === undefined ? '' : ` (${v.cell.note})`}`);
    return `✗ ${v.known.length > 0 ? v.known.join(',') : '!'} [${n}]`;
  };
  const header = ['step', ...COLUMNS];
  const rows: string[][] = [];
  for (const direction of ['up', 'down'] as const) {
    const script = demoScript(direction);
    for (const [i, step] of script.steps.entries()) {
      const label = `${direction === 'up' ? '↑' : '↓'}${String(i).padStart(2)} ${describeStep(step)}${i === script.pointOfNoReturn ? ' ◆' : ''}`;
      rows.push([label, ...COLUMNS.map((c) => text(at.get(`${direction}:${i}:${c}`)))]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => [...r[i]!].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length)).join(' | ')} |`;
  const consistent = verdicts.filter((v) => v.consistent).length;
  const unexplained = verdicts.filter((v) => !v.consistent && v.known.length === 0);
  const used = new Set(verdicts.flatMap((v) => v.known));
  const unused = issues.filter((i) => !used.has(i.id)).map((i) => i.id);
  const table = [
    `fault matrix: demo ${'1.2.2 → 1.2.3'} (↑, ${demoScript('up').steps.length} steps) and back (↓, ${demoScript('down').steps.length} steps); ◆ = point of no return;`,
    '⏸ = the traffic sent during the step was held at the node\'s entry and handled once, after the outcome (otherwise it was handled during the step)',
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
    '',
    `cells run: ${verdicts.length}; consistent: ${consistent}; inconsistent: ${verdicts.length - consistent} (known: ${verdicts.length - consistent - unexplained.length}, unexplained: ${unexplained.length})`,
    ...(issues.length > 0 ? ['', 'known issues:', ...issues.map((i) => `  ${i.id}: ${i.summary}${used.has(i.id) ? '' : ' (no longer seen)'}`)] : []),
    ...(notes.length > 0 ? ['', 'inconsistent cells:', ...notes.map((n, i) => `  [${i + 1}] ${n.cells.join(', ')}:\n      ${n.text}`)] : []),
  ].join('\n');
  return { table, cells: verdicts.length, consistent, inconsistent: verdicts.length - consistent, unexplained, unused };
}
