import type { Diagnostic } from '../diagnostics/diagnostic.js';

/**
 * The few error classes relup tells apart (style.md): the CLI's one catch maps
 * each to an exit code. Messages carry no colour and say what to do next.
 */

/** Bad input from the user: a missing file, an unknown version, a wrong flag. Exit 2. */
export class UserError extends Error {
  override readonly name = 'UserError';
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}

/** An invalid relup.config.yaml: bad input, with located diagnostics for each problem. */
export class ConfigError extends UserError {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[]) {
    super(`${diagnostics[0]?.file ?? 'relup.config.yaml'} is invalid`, 'fix the errors above');
    this.diagnostics = diagnostics;
  }
}

/** A node could not be reached or answered wrongly. Exit 1 (the operation did not happen). */
export class NodeError extends Error {
  override readonly name = 'NodeError';
  readonly code: string;
  readonly hint: string | undefined;
  constructor(code: string, message: string, hint?: string) {
    super(message);
    this.code = code;
    this.hint = hint;
  }
}

/** A bug in relup itself. Exit 2, with a request for a bug report. */
export class InternalError extends Error {
  override readonly name = 'InternalError';
}

export const EXIT_OK = 0;
/** Findings (check), a failed or rolled-back upgrade, an unreachable node. */
export const EXIT_FAILED = 1;
/** Bad input or an internal error. */
export const EXIT_USAGE = 2;
