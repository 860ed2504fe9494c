import { RuntimeError } from './runtime-error.js';

/** What a timer fires: a module and function *name*, looked up when it fires. */
export interface TimerTarget {
  module: string;
  fn: string;
  args: unknown[];
}

export interface TimerInfo {
  id: number;
  kind: 'interval' | 'timeout';
  ms: number;
  module: string;
  fn: string;
  /** Times it fired so far. */
  fired: number;
}

interface Timer extends TimerInfo {
  args: unknown[];
  /** Undefined while time is stopped: the timer is registered but not scheduled. */
  handle: NodeJS.Timeout | undefined;
}

/**
 * Timers owned by the node, not by a module version: each holds only names
 * and data, and calls `current(module)[fn]` when it fires (Silly's "indirect
 * invocation"), so a timer set up by version 1 runs version 2's code after
 * the switch and keeps no old code alive.
 */
export class NodeTimers {
  private timers = new Map<number, Timer>();
  private nextId = 1;

  /**
   * @param paused stop time: timers are registered (and listed) but never
   *   fire, so nothing but explicit calls changes state. For scratch nodes
   *   (`relup check --live`), which compare state before and after a round
   *   trip and must not depend on an app's own timer settings.
   */
  constructor(
    private readonly fire: (target: TimerTarget) => void,
    private readonly paused = false,
  ) {}

  set(kind: 'interval' | 'timeout', ms: number, module: string, fn: string, args: unknown[]): number {
    if (!Number.isFinite(ms) || ms < 0) throw new RuntimeError('invalid-state', `timer delay must be a non-negative number of milliseconds, got ${String(ms)}`);
    if (typeof module !== 'string' || typeof fn !== 'string') {
      throw new RuntimeError('invalid-state', 'a timer names its target: relup.setInterval(ms, "module", "function", ...args)', 'pass the module and function names, never a function: the timer must reach the current code after an upgrade');
    }
    if (args.some((a) => typeof a === 'function')) {
      throw new RuntimeError('invalid-state', `timer arguments for ${module}.${fn} must be data, not functions`, 'a function argument would keep old code alive and run it after an upgrade');
    }
    const id = this.nextId++;
    const tick = (): void => {
      const timer = this.timers.get(id);
      if (timer === undefined) return;
      timer.fired += 1;
      if (timer.kind === 'timeout') this.timers.delete(id);
      this.fire({ module: timer.module, fn: timer.fn, args: timer.args });
    };
    const handle = this.paused ? undefined : kind === 'interval' ? setInterval(tick, ms) : setTimeout(tick, ms);
    this.timers.set(id, { id, kind, ms, module, fn, args, handle, fired: 0 });
    return id;
  }

  clear(id: number): boolean {
    const timer = this.timers.get(id);
    if (timer === undefined) return false;
    if (timer.handle !== undefined) clearTimeout(timer.handle);
    this.timers.delete(id);
    return true;
  }

  list(): TimerInfo[] {
    return [...this.timers.values()].map(({ id, kind, ms, module, fn, fired }) => ({ id, kind, ms, module, fn, fired }));
  }

  clearAll(): void {
    for (const id of [...this.timers.keys()]) this.clear(id);
  }
}
