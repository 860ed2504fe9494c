import { RuntimeError } from './runtime-error.js';
import type { ModuleVersion } from './module-version.js';

/** What a process needs from its node: the current code of its module, and somewhere to report errors of casts and crashes. */
export interface ProcessHost {
  current(module: string): ModuleVersion;
  castFailed(process: string, error: unknown): void;
  /** True when the process has a declared restart policy: then a handler error crashes it, as in Erlang. */
  crashes?(process: string): boolean;
  /** The process terminated (crashed, or exited through relup.exit): the node decides whether it is restarted. */
  terminated?(process: GenServer, error: unknown, normal: boolean, release: string | undefined): void;
}

/**
 * Thrown by `relup.exit(reason)` inside a handler: the process terminates, as
 * Erlang's exit/1. Reason 'normal' is a normal exit (a transient process is
 * not restarted); any other reason is a crash.
 */
export class ProcessExit extends Error {
  constructor(readonly reason: string) {
    super(`process exited: ${reason}`);
    this.name = 'ProcessExit';
  }
}

type Envelope =
  | { kind: 'call'; msg: unknown; resolve: (reply: unknown) => void; reject: (e: unknown) => void }
  | { kind: 'cast'; msg: unknown };

interface SuspendWaiter {
  done: () => void;
  cancel: (e: Error) => void;
}

/**
 * An OTP-style gen_server: state, a mailbox, one message at a time in arrival
 * order. Its handlers are looked up in the module's *current* version for
 * every message, so a switch takes effect at the next message.
 */
export class GenServer {
  state: unknown;
  private mailbox: Envelope[] = [];
  private suspendedFlag = false;
  private handlingFlag = false;
  private stoppedFlag = false;
  private pumpScheduled = false;
  private suspendWaiters: SuspendWaiter[] = [];
  private idleWaiters: (() => void)[] = [];
  /** Messages taken from the mailbox so far: a rollback snapshot taken ahead of the suspension is still exact while it has not moved. */
  private handledCount = 0;

  constructor(
    private readonly host: ProcessHost,
    readonly name: string,
    public module: string,
    public args: unknown,
    state: unknown,
  ) {
    this.state = state;
  }

  get suspended(): boolean {
    return this.suspendedFlag;
  }
  get handling(): boolean {
    return this.handlingFlag;
  }
  get stopped(): boolean {
    return this.stoppedFlag;
  }
  get mailboxSize(): number {
    return this.mailbox.length;
  }
  get handled(): number {
    return this.handledCount;
  }

  call(msg: unknown): Promise<unknown> {
    if (this.stoppedFlag) return Promise.reject(this.stoppedError());
    return new Promise((resolve, reject) => {
      this.mailbox.push({ kind: 'call', msg, resolve, reject });
      this.schedule();
    });
  }

  cast(msg: unknown): void {
    if (this.stoppedFlag) throw this.stoppedError();
    this.mailbox.push({ kind: 'cast', msg });
    this.schedule();
  }

  /**
   * Stop taking messages. When a message is being handled, wait for it to
   * finish (the safe point) for up to `timeoutMs`; past that, un-suspend and
   * fail. Messages arriving meanwhile wait in the mailbox.
   */
  suspend(timeoutMs: number): Promise<void> {
    this.suspendedFlag = true;
    if (!this.handlingFlag) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: SuspendWaiter = {
        done: () => {
          clearTimeout(timer);
          resolve();
        },
        cancel: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.suspendWaiters = this.suspendWaiters.filter((w) => w !== waiter);
        this.resume();
        reject(new RuntimeError('suspend-timeout', `process ${this.name} did not reach a safe point within ${timeoutMs} ms: its current message is still being handled`, 'raise the timeout of its update instruction, or make the handler finish sooner'));
      }, Math.max(0, timeoutMs));
      this.suspendWaiters.push(waiter);
    });
  }

  /** Take messages again: the backlog is handled in order, each exactly once. A pending suspend fails. */
  resume(): void {
    this.suspendedFlag = false;
    const waiters = this.suspendWaiters;
    this.suspendWaiters = [];
    for (const w of waiters) w.cancel(new RuntimeError('suspend-timeout', `process ${this.name} was resumed before it could be suspended`));
    this.schedule();
  }

  /** Resolves when no message is being handled. */
  idle(): Promise<void> {
    if (!this.handlingFlag) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuse further messages and fail every waiting call; the message being handled (if any) finishes on its own. */
  stop(reason: string): void {
    this.stoppedFlag = true;
    this.suspendedFlag = true;
    const pending = this.mailbox;
    this.mailbox = [];
    for (const env of pending) {
      if (env.kind === 'call') env.reject(new RuntimeError('process-stopped', `process ${this.name} stopped (${reason}) before handling this call`));
    }
  }

  private stoppedError(): RuntimeError {
    return new RuntimeError('process-stopped', `process ${this.name} is stopped`);
  }

  private schedule(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** A restarted process takes no message until its init(args) gave it a state (messages wait). */
  private initializing = false;

  /** Hold the mailbox while the node runs init(args) for this process (a restart). */
  initStarted(): void {
    this.initializing = true;
  }

  initDone(state: unknown): void {
    this.state = state;
    this.initializing = false;
    this.schedule();
  }

  private pump(): void {
    if (this.handlingFlag || this.suspendedFlag || this.stoppedFlag || this.initializing) return;
    const env = this.mailbox.shift();
    if (env === undefined) return;
    this.handlingFlag = true;
    this.handledCount += 1;
    void this.handle(env).finally(() => {
      this.handlingFlag = false;
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of idle) w();
      const waiters = this.suspendWaiters;
      this.suspendWaiters = [];
      for (const w of waiters) w.done();
      this.pump();
    });
  }

  private async handle(env: Envelope): Promise<void> {
    let release: string | undefined;
    try {
      const version = this.host.current(this.module);
      release = version.release;
      if (env.kind === 'call') {
        const handleCall = version.fn('handleCall');
        const result = await version.run(() => handleCall.call(version.exports, env.msg, this.state));
        if (result === null || typeof result !== 'object' || !('reply' in result)) {
          throw new RuntimeError('invalid-response', `${this.module}.handleCall of process ${this.name} returned ${describe(result)}; it must return { reply, state }`);
        }
        const { reply, state } = result as { reply: unknown; state?: unknown };
        // `state` left out (or undefined) means "mutated in place".
        if (state !== undefined) this.state = state;
        // Like an Erlang message, a reply is a copy: the caller must not hold a live reference into the process's state.
        env.resolve(copyOf(reply));
      } else {
        const handleCast = version.fn('handleCast');
        const state = await version.run(() => handleCast.call(version.exports, env.msg, this.state));
        if (state !== undefined) this.state = state;
      }
    } catch (e) {
      if (e instanceof ProcessExit || this.host.crashes?.(this.name) === true) {
        // Erlang semantics: the process dies with its state; its caller gets the
        // reason, every call still in its mailbox fails at once (never hangs),
        // and the node applies the restart policy.
        if (env.kind === 'call') env.reject(e);
        this.terminate(e, e instanceof ProcessExit && e.reason === 'normal', release);
        return;
      }
      // No restart policy: the process keeps running with the state it had; the caller learns why.
      if (env.kind === 'call') env.reject(e);
      else this.host.castFailed(this.name, e);
    }
  }

  private terminate(error: unknown, normal: boolean, release: string | undefined): void {
    this.stoppedFlag = true;
    this.suspendedFlag = true;
    const pending = this.mailbox;
    this.mailbox = [];
    for (const env of pending) {
      if (env.kind === 'call') {
        env.reject(new RuntimeError(normal ? 'process-stopped' : 'process-crashed', `process ${this.name} ${normal ? 'exited' : 'crashed'} before handling this call: ${error instanceof Error ? error.message : String(error)}`, 'call it again: a restarted process starts from its init(args)'));
      }
    }
    this.host.terminated?.(this, error, normal, release);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return `an object without "reply" (keys: ${Object.keys(v).join(', ') || 'none'})`;
}

function copyOf(value: unknown): unknown {
  try {
    return structuredClone(value);
  } catch {
    // Functions and other uncloneable values are handed over as they are.
    return value;
  }
}
