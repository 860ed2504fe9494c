import type { StepOf } from '../../../src/script/script-schema.js';
import {
  DEMO,
  busyGamePair,
  demoScript,
  describeStep,
  fromOf,
  hangingMigrationPair,
  imageOf,
  otherVersionImage,
  scriptOf,
  syntaxErrorPair,
  throwingMigrationPair,
  toOf,
  type Direction,
  type Pair,
} from './demo.js';
import type { InProcessCell } from './in-process.js';

/** The transaction deadline of the `hang` cells: long enough for the traffic window, short enough to keep the matrix fast. */
export const HANG_DEADLINE_MS = 500;

/** Every in-process cell: throw and hang at every step, and the real-code faults where they occur. */
export function inProcessCells(): InProcessCell[] {
  const cells: InProcessCell[] = [];
  for (const direction of ['up', 'down'] as const) {
    const script = demoScript(direction);
    const boot = imageOf(DEMO, fromOf(direction));
    const next = imageOf(DEMO, toOf(direction));
    for (const step of script.steps.keys()) {
      const status = step <= script.pointOfNoReturn ? 'refused' : 'rolled-back';
      const base = { direction, step, boot, next, script };
      cells.push({ ...base, column: 'throw', fault: 'throw', expect: { status, code: 'injected' } });
      cells.push({ ...base, column: 'hang', fault: 'hang', deadlineMs: HANG_DEADLINE_MS, expect: { status, code: 'deadline' } });
      const real = realThrow(direction, step);
      if (real !== undefined) cells.push({ ...base, column: 'real throw', ...real });
      const hang = realHang(direction, step);
      if (hang !== undefined) cells.push({ ...base, column: 'real hang', ...hang });
    }
  }
  return cells;
}

type Real = Pick<InProcessCell, 'boot' | 'next' | 'script' | 'note' | 'expect' | 'busyGameMs'>;

function onPair(pair: Pair, direction: Direction): Pick<InProcessCell, 'boot' | 'next' | 'script'> {
  const script = scriptOf(pair, direction);
  // The variant must not change the plan: the cell is about the demo's step N.
  const steps = (s: typeof script) => s.steps.map(describeStep).join('; ');
  if (steps(script) !== steps(demoScript(direction))) throw new Error(`variant ${pair.name} changes the ${direction} plan`);
  return { boot: imageOf(pair, fromOf(direction)), next: imageOf(pair, toOf(direction)), script };
}

/** Real code that fails at this step: a tampered bundle, the wrong release running, a syntax error, a migration that throws. */
function realThrow(direction: Direction, step: number): Real | undefined {
  const s = demoScript(direction).steps[step]!;
  switch (s.op) {
    // An uploaded bundle that differs from the planned release no longer reaches verify_release: the host checks
    // the upload against the script's release hash before parsing it (issue 9.10) and refuses it before the
    // transaction starts, with no step to fail at. That case is a plain test now (upload-checks.test.ts).
    case 'check_version': {
      const boot = otherVersionImage(direction);
      return { boot, next: imageOf(DEMO, toOf(direction)), script: demoScript(direction), note: `the node runs ${boot.release.version}`, expect: { status: 'refused', code: 'version-mismatch' } };
    }
    case 'stage':
      return { ...onPair(syntaxErrorPair(direction, s.module), direction), note: `syntax error in ${s.module}.js`, expect: { status: 'refused', code: 'compile-error' } };
    case 'migrate': {
      const m = s as StepOf<'migrate'>;
      return { ...onPair(throwingMigrationPair(m.module, m.function), direction), note: `${m.function} mutates the state, then throws`, expect: { status: 'rolled-back', code: 'module-error' } };
    }
    default:
      return undefined;
  }
}

/**
 * Real code that hangs at this step: a process busy past the suspend timeout
 * (its long call sent at the point of no return, before anything is held: the
 * real case of a request in flight when the upgrade starts), a migration
 * that never resolves.
 */
function realHang(direction: Direction, step: number): Real | undefined {
  const s = demoScript(direction).steps[step]!;
  switch (s.op) {
    case 'suspend':
      return { ...onPair(busyGamePair(), direction), busyGameMs: 1500, note: 'game is busy in a 1.5 s call that started before the point of no return; suspend timeout 80 ms', expect: { status: 'rolled-back', code: 'suspend-timeout' } };
    case 'migrate': {
      const m = s as StepOf<'migrate'>;
      return { ...onPair(hangingMigrationPair(m.module, m.function), direction), note: `${m.function} never resolves; timeout 80 ms`, expect: { status: 'rolled-back', code: 'migration-timeout' } };
    }
    default:
      return undefined;
  }
}
