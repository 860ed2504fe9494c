import { NodeError } from '../../errors/errors.js';

/**
 * Why the node refused or failed something. Stable strings: the control
 * protocol and tests compare codes, never message wording.
 */
export type RuntimeErrorCode =
  /** Another transaction is running on this node. */
  | 'busy'

  | 'invalid-script'
  | 'invalid-release'
  | 'wrong-release'
  | 'version-mismatch'
  | 'hash-mismatch'
  | 'compile-error'
  | 'missing-export'
  | 'missing-function'
  | 'unknown-module'
  | 'unknown-function'
  | 'unknown-process'
  | 'require-denied'
  /** The npm packages a release runs on (its base) differ from what the node loaded: a restart is needed. */
  | 'base-changed'
  /** A package the release declares is not installed where the node loads its base from. */
  | 'base-missing'
  | 'not-at-top-level'
  | 'invalid-state'
  | 'invalid-response'
  /** A request body over the server's limit (answered 413). */
  | 'body-too-large'
  | 'suspend-timeout'
  | 'migration-timeout'
  | 'purge-timeout'
  | 'deadline'
  | 'process-stopped'
  /** The process crashed (its handler threw, under a restart policy) before it handled this call. */
  | 'process-crashed'
  | 'purged'
  | 'node-stopped'
  | 'injected'
  /** The node could not write its state directory (disk full, I/O error): the change it was making is undone. */
  | 'state-write-failed'
  /** A process call made through the control socket failed (the module's own error). */
  | 'call-failed';

/** An error raised by the Node.js runtime itself (as opposed to one thrown by module code). */
export class RuntimeError extends NodeError {
  declare readonly code: RuntimeErrorCode;
  constructor(code: RuntimeErrorCode, message: string, hint?: string) {
    super(code, message, hint);
  }
}

export function isRuntimeError(e: unknown, code?: RuntimeErrorCode): e is RuntimeError {
  return e instanceof RuntimeError && (code === undefined || e.code === code);
}

/** A printable message for anything thrown (module code may throw non-Errors). */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  try {
    return typeof e === 'string' ? e : `non-error thrown: ${JSON.stringify(e)}`;
  } catch {
    return `non-error thrown: ${String(e)}`;
  }
}

/**
 * Settle `promise` within `ms` or reject with `onTimeout()`. The timer is
 * always cleared, so a finished race keeps nothing alive.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), Math.max(0, ms));
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
