import type { Step } from '../../script/script-schema.js';
import type { StepContext, StepPerformer } from '../node/relup-node.js';
import { RuntimeError } from '../node/runtime-error.js';
import { stepTarget } from '../node/transaction.js';
import type { DurableWrite } from './node-host.js';

/**
 * Chaos drills and the fault-injection tests: make step N of the next upgrades
 * fail in a chosen way on a real node process. Enabled only through the
 * RELUP_FAULTS environment variable of `relup node start` (never by a
 * protocol message), e.g. `RELUP_FAULTS=12:throw` or `RELUP_FAULTS=3:hang,14:exit`.
 *
 * - `throw`: the step throws before doing anything.
 * - `hang`:  the step never finishes (the transaction's deadline or the step's
 *            timeout must end it).
 * - `exit`:  the node process dies at once with SIGKILL when the step starts
 *            (a crash or an operator's kill -9 at that exact moment).
 * - `after-exit`: the step is performed, then the process dies with SIGKILL.
 *            `after-exit=<ms>`: … that many milliseconds later, while the node
 *            goes on, so the kill lands in what it does next (after `commit`:
 *            installing the bundle and writing its history).
 * - `crash`: the processes the step is about (for `migrate`: every process it
 *            migrates) crash while the step runs: they are stopped as a
 *            process that dies is, the calls waiting in their mailboxes fail
 *            and the casts there are dropped. (Past the point of no return,
 *            calls and casts from outside the node wait at the node's entry,
 *            not in a mailbox.) A step that names no process fails with
 *            `injected` instead.
 * - `pause`: the step waits before running until the node process receives
 *            SIGUSR2, the transaction gives up on it (deadline), or 10 s pass
 *            (`pause=<ms>`: that long); then it runs normally. It writes
 *            `RELUP_FAULTS: step <i> (<op> <target>) paused` to stderr when it
 *            starts waiting, so a drill (or a test) can act at that exact
 *            step: kill the client, send traffic, ask for the status. Traffic
 *            sent while a step after the first one past the point of no
 *            return is paused is held at the node's entry until the upgrade
 *            settles (HTTP requests, timer ticks, control-socket `call`,
 *            `invoke`); `status` always answers.
 *
 * Indices are 0-based positions in the script's `steps`; one fault per index,
 * applied to every upgrade the node runs.
 *
 * Failing writes to the state directory (a full disk, a dying disk):
 * `write:<what>:<how>`, e.g. `RELUP_FAULTS=write:history-commit:enospc`, where
 * `<what>` is one of the node's durable writes (DURABLE_WRITES: the history at
 * boot, the `started` record of an attempt, the bundle's bytes written and
 * synced before the point of no return, its rename into place at commit,
 * the history at commit, the outcome record, make_permanent) and `<how>` is
 * - `enospc`: the write fails before anything is written (ENOSPC);
 * - `eio`: the same with EIO;
 * - `eio-after`: the new file is written and renamed into place, then the
 *   sync of its directory fails (EIO): the writer sees an error although the
 *   new content is already visible, the hardest case for an undo.
 */
export type Fault = 'throw' | 'hang' | 'exit' | 'after-exit' | `after-exit=${number}` | 'crash' | 'pause' | `pause=${number}`;
const KINDS = ['throw', 'hang', 'exit', 'after-exit', 'crash', 'pause'] as const;
type FaultKind = (typeof KINDS)[number];
/** The kinds that take `=<n>`. */
const WITH_COUNT: ReadonlySet<FaultKind> = new Set(['after-exit', 'pause']);
const DEFAULT_PAUSE_MS = 10_000;

export function parseFaults(spec: string): Map<number, Fault> {
  const faults = new Map<number, Fault>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (part.startsWith('write:')) continue; // parseWriteFaults

    const [index, fault] = part.split(':');
    const n = Number(index);
    if (!Number.isInteger(n) || n < 0 || fault === undefined || parseFault(fault) === undefined) {
      throw new Error(`RELUP_FAULTS: "${part}" is not <step index>:<${KINDS.join('|')}> (after-exit=<ms>, pause=<ms> take a count)`);
    }
    faults.set(n, fault as Fault);
  }
  return faults;
}

function parseFault(text: string): { kind: FaultKind; count: number | undefined } | undefined {
  const [kind, count, ...rest] = text.split('=');
  if (!KINDS.includes(kind as FaultKind) || rest.length > 0) return undefined;
  if (count === undefined) return { kind: kind as FaultKind, count: undefined };
  const value = Number(count);
  if (!WITH_COUNT.has(kind as FaultKind) || count === '' || !Number.isInteger(value) || value < 0) return undefined;
  return { kind: kind as FaultKind, count: value };
}

export interface FaultOptions {
  /** Where `pause` announces itself. Default: the process's stderr. */
  log?: (line: string) => void;
}

/** Wrap a step performer so the steps named in `faults` fail as asked. */
export function injectFaults(faults: ReadonlyMap<number, Fault>, options: FaultOptions = {}): (performer: StepPerformer) => StepPerformer {
  const parsed = new Map<number, { kind: FaultKind; count: number | undefined }>();
  for (const [index, fault] of faults) {
    const f = parseFault(fault);
    if (f === undefined) throw new Error(`RELUP_FAULTS: "${fault}" is not a fault (${KINDS.join(', ')})`);
    parsed.set(index, f);
  }
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const pauses = new Set<() => void>();
  if ([...parsed.values()].some((f) => f.kind === 'pause')) {
    // Installed once, up front: a SIGUSR2 that arrives between pauses is harmless instead of killing the node.
    process.on('SIGUSR2', () => {
      for (const release of [...pauses]) release();
    });
  }
  return (performer) => {
    const around = async (step: Step, ctx: StepContext, run: () => Promise<void>): Promise<void> => {
      const fault = parsed.get(ctx.index);
      if (fault === undefined) return run();
      switch (fault.kind) {
        case 'throw':
          throw new RuntimeError('injected', `injected fault: ${step.op} throws`);
        case 'exit':
          process.kill(process.pid, 'SIGKILL');
          return;
        case 'hang':
          if (!ctx.signal.aborted) await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
          throw new RuntimeError('injected', `injected fault: ${step.op} hung until it was abandoned`);
        case 'after-exit':
          await run();
          if (fault.count === undefined) process.kill(process.pid, 'SIGKILL');
          // The node goes on meanwhile: after `commit`, the kill lands somewhere in writing the history.
          else setTimeout(() => process.kill(process.pid, 'SIGKILL'), fault.count);
          return;
        case 'crash': {
          const names = processesOf(step);
          if (names.length === 0) throw new RuntimeError('injected', `injected fault: crash at ${step.op}, a step that names no process`);
          const processes = processTable(performer);
          if (processes === undefined) throw new RuntimeError('injected', "injected fault: crash needs the node's own step performer");
          // The step starts (a migration is called with the state), then its processes die under it.
          const running = run();
          for (const name of names) processes.get(name)?.stop(`crashed (injected fault at step ${ctx.index})`);
          return running;
        }
        case 'pause': {
          log(`RELUP_FAULTS: step ${ctx.index} (${`${step.op} ${stepTarget(step)}`.trim()}) paused`);
          await new Promise<void>((resolve) => {
            const done = (): void => {
              clearTimeout(timer);
              pauses.delete(done);
              ctx.signal.removeEventListener('abort', done);
              resolve();
            };
            const timer = setTimeout(done, fault.count ?? DEFAULT_PAUSE_MS);
            pauses.add(done);
            ctx.signal.addEventListener('abort', done, { once: true });
          });
          log(`RELUP_FAULTS: step ${ctx.index} continues`);
          if (ctx.signal.aborted) throw ctx.signal.reason;
          return run();
        }
      }
    };
    return {
      check: (step, ctx) => around(step, ctx, () => performer.check(step, ctx)),
      perform: (step, ctx) => around(step, ctx, () => performer.perform(step, ctx)),
      settle: (result) => performer.settle(result),
    };
  };
}

export const DURABLE_WRITES: readonly DurableWrite[] = ['history-boot', 'history-started', 'bundle-prepare', 'bundle', 'history-commit', 'history-outcome', 'history-permanent'];
const WRITE_FAULTS = ['enospc', 'eio', 'eio-after'] as const;
export type WriteFault = (typeof WRITE_FAULTS)[number];

/** The `write:<what>:<how>` parts of a RELUP_FAULTS spec. */
export function parseWriteFaults(spec: string): Map<DurableWrite, WriteFault> {
  const faults = new Map<DurableWrite, WriteFault>();
  for (const part of spec.split(',').map((s) => s.trim()).filter((p) => p.startsWith('write:'))) {
    const [, what, how, ...rest] = part.split(':');
    if (!DURABLE_WRITES.includes(what as DurableWrite) || !WRITE_FAULTS.includes(how as WriteFault) || rest.length > 0) {
      throw new Error(`RELUP_FAULTS: "${part}" is not write:<${DURABLE_WRITES.join('|')}>:<${WRITE_FAULTS.join('|')}>`);
    }
    faults.set(what as DurableWrite, how as WriteFault);
  }
  return faults;
}

/** A NodeHost `durableWrite` wrapper that makes the named writes fail as asked, every time. */
export function injectWriteFaults(faults: ReadonlyMap<DurableWrite, WriteFault>): (what: DurableWrite, write: () => Promise<void>) => Promise<void> {
  return async (what, write) => {
    const fault = faults.get(what);
    if (fault === undefined) return write();
    if (fault === 'eio-after') {
      await write();
      throw Object.assign(errnoError('EIO', -5, 'i/o error, fsync', what), { renamed: true });
    }
    throw fault === 'enospc' ? errnoError('ENOSPC', -28, 'no space left on device, write', what) : errnoError('EIO', -5, 'i/o error, write', what);
  };
}

function errnoError(code: string, errno: number, text: string, what: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${text} (injected fault at the ${what} write)`), { code, errno, syscall: text.split(', ')[1] });
}

/** The processes a step is about. */
function processesOf(step: Step): string[] {
  switch (step.op) {
    case 'migrate':
      return step.processes;
    case 'check_process':
    case 'stop':
    case 'suspend':
    case 'resume':
    case 'start':
    case 'restart':
      return [step.process];
    default:
      return [];
  }
}

/**
 * The node's live process table, reached through the step performer the node
 * hands to `intercept` (its `NodeSteps`). A drill tool's privilege: the public
 * API has no way to kill a process, because nothing but a crash should.
 */
function processTable(performer: StepPerformer): Map<string, { stop(reason: string): void }> | undefined {
  const core = (performer as unknown as { core?: { processes?: unknown } }).core;
  return core?.processes instanceof Map ? (core.processes as Map<string, { stop(reason: string): void }>) : undefined;
}
