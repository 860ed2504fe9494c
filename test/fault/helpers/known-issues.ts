import type { KnownIssue } from './matrix.js';

/**
 * What the runtime gets wrong today, found by the matrix (docs/fault-matrix.md,
 * "Known issues"). Empty: K1 (a rollback erased acknowledged work) and K2 (a
 * process that died during its migration stayed dead) are fixed, and every
 * cell must be consistent.
 *
 * To record a new one while it is being fixed, add an entry whose `explains`
 * matches exactly the problems it causes, e.g.
 *
 *   { id: 'K3', summary: '…', explains: (cell, problem) => cell.column === 'crash' && problem.startsWith('process game is left suspended') }
 *
 * and describe it in the doc. The matrix fails on any problem no entry
 * explains, and on an entry that explains no cell any more (fixed: remove it
 * here and from the doc); RELUP_FAULT_MATRIX_STRICT=1 fails on known ones too.
 */
export const KNOWN_ISSUES_TODAY: KnownIssue[] = [];
