import type { Step } from '../../script/script-schema.js';
import type { StepContext, StepPerformer } from '../node/relup-node.js';
import { RuntimeError } from '../node/runtime-error.js';

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
 *
 * Indices are 0-based positions in the script's `steps`.
 */
export type Fault = 'throw' | 'hang' | 'exit' | 'after-exit';
const FAULTS: readonly Fault[] = ['throw', 'hang', 'exit', 'after-exit'];

export function parseFaults(spec: string): Map<number, Fault> {
  const faults = new Map<number, Fault>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [index, fault] = part.split(':');
    const n = Number(index);
    if (!Number.isInteger(n) || n < 0 || !FAULTS.includes(fault as Fault)) {
      throw new Error(`RELUP_FAULTS: "${part}" is not <step index>:<${FAULTS.join('|')}>`);
    }
    faults.set(n, fault as Fault);
  }
  return faults;
}

/** Wrap a step performer so the steps named in `faults` fail as asked. */
export function injectFaults(faults: ReadonlyMap<number, Fault>): (performer: StepPerformer) => StepPerformer {
  return (performer) => {
    const around = async (step: Step, ctx: StepContext, run: () => Promise<void>): Promise<void> => {
      const fault = faults.get(ctx.index);
      if (fault === 'throw') throw new RuntimeError('injected', `injected fault: ${step.op} throws`);
      if (fault === 'exit') process.kill(process.pid, 'SIGKILL');
      if (fault === 'hang') {
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        throw new RuntimeError('injected', `injected fault: ${step.op} hung until it was abandoned`);
      }
      await run();
      if (fault === 'after-exit') process.kill(process.pid, 'SIGKILL');
    };
    return {
      check: (step, ctx) => around(step, ctx, () => performer.check(step, ctx)),
      perform: (step, ctx) => around(step, ctx, () => performer.perform(step, ctx)),
      settle: (result) => performer.settle(result),
    };
  };
}
