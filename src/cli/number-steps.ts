import type { RemoteOutcome } from '../client/upgrade.js';

/**
 * Steps are numbered from 1 in everything relup prints — the plan, the
 * progress lines, the outcome message, the history — and so in `--json` too:
 * the node's `index` (the 0-based position in the script's steps, as on the
 * wire) becomes that number (docs/relup-script.md, Step numbers).
 */
export function numberSteps(o: RemoteOutcome): RemoteOutcome {
  const ref = <T extends { index: number }>(s: T): T => ({ ...s, index: s.index + 1 });
  return {
    ...o,
    journal: o.journal.map(ref),
    ...(o.failure === undefined ? {} : { failure: { ...o.failure, ...(o.failure.step === undefined ? {} : { step: ref(o.failure.step) }) } }),
    ...(o.rollback === undefined ? {} : { rollback: { ...o.rollback, problems: o.rollback.problems.map((p) => (p.step === undefined ? p : { ...p, step: ref(p.step) })) } }),
  };
}
