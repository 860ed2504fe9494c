/**
 * Crash containment: an unhandled rejection or an uncaught exception thrown by
 * module code (a fire-and-forget promise, a throw inside a plain setTimeout,
 * an 'error' event nobody listens to) would end the whole Node.js process —
 * every process state and open connection with it. An Erlang node loses one
 * process, not the node: so while a node runs, such errors are reported to the
 * node's log sink, attributed to the module and release whose code the stack
 * names, and the node keeps serving.
 *
 * One pair of process-wide listeners serves every node of the process; they
 * are removed when the last node stops, so that an embedding program gets
 * Node's default behaviour back.
 */

export type EscapedKind = 'uncaught-exception' | 'unhandled-rejection';

/** Where an escaped error came from: the innermost module file its stack names. */
export interface ErrorOrigin {
  releaseName: string;
  release: string;
  file: string;
  line?: number;
  col?: number;
}

export type EscapedErrorListener = (kind: EscapedKind, error: unknown, origin: ErrorOrigin | undefined) => void;

const listeners = new Set<EscapedErrorListener>();

const onException = (error: unknown): void => dispatch('uncaught-exception', error);
const onRejection = (reason: unknown): void => dispatch('unhandled-rejection', reason);

function dispatch(kind: EscapedKind, error: unknown): void {
  const origin = originOf(error);
  for (const listener of [...listeners]) {
    try {
      listener(kind, error, origin);
    } catch {
      // A listener that throws here would itself be an uncaught exception: the process would exit.
    }
  }
}

/** Start containing escaped errors for one node; returns the function that stops it (idempotent). */
export function containEscapedErrors(listener: EscapedErrorListener): () => void {
  if (listeners.size === 0) {
    process.on('uncaughtException', onException);
    process.on('unhandledRejection', onRejection);
  }
  listeners.add(listener);
  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    listeners.delete(listener);
    if (listeners.size === 0) {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
    }
  };
}

// relup:<release name>@<version>/<file>:<line>:<col>, the filename every module version is compiled under (module-source.ts).
const FRAME = /relup:([a-z0-9][a-z0-9._-]*)@([^/\s():]+)\/([^\s():]+?)(?::(\d+):(\d+))?\)?$/m;

/**
 * The innermost stack frame in module code. A rejection with a value that is
 * not an Error (`Promise.reject('x')`), or an error raised inside an npm
 * package's own callback, has none: its origin is unknown, and said so.
 */
export function originOf(error: unknown): ErrorOrigin | undefined {
  const stack = error instanceof Error && typeof error.stack === 'string' ? error.stack : undefined;
  if (stack === undefined) return undefined;
  for (const line of stack.split('\n')) {
    const m = FRAME.exec(line.trim());
    if (m === null) continue;
    const origin: ErrorOrigin = { releaseName: m[1]!, release: m[2]!, file: m[3]! };
    if (m[4] !== undefined) origin.line = Number(m[4]);
    if (m[5] !== undefined) origin.col = Number(m[5]);
    return origin;
  }
  return undefined;
}
