// Planner time and memory against module count (issue: 10,000 modules < 250 ms, growth <= n log n).
import { plan } from '../dist/planner/plan.js';
import { syntheticPair } from './synthetic-releases.js';

function measure(n, repeats) {
  const input = syntheticPair(n);
  plan(input); // warm-up: JIT and caches
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const times = [];
  let result;
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    result = plan(input);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const heapAfter = process.memoryUsage().heapUsed;
  if (result.script === undefined) throw new Error(`synthetic plan failed: ${JSON.stringify(result.diagnostics.slice(0, 3))}`);
  times.sort((a, b) => a - b);
  return {
    modules: n,
    changed: input.changedCount,
    steps: result.script.steps.length,
    groups: result.script.groups.length,
    medianMs: round(times[Math.floor(times.length / 2)]),
    minMs: round(times[0]),
    heapDeltaMb: round((heapAfter - heapBefore) / 1048576),
  };
}

/** Exponent k of time ~ n^k between consecutive sizes (1 = linear; n log n shows as slightly above 1). */
function fittedExponents(rows) {
  const out = [];
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1];
    const b = rows[i];
    out.push({ from: a.modules, to: b.modules, exponent: round(Math.log(b.medianMs / a.medianMs) / Math.log(b.modules / a.modules)) });
  }
  return out;
}

const round = (x) => Math.round(x * 100) / 100;

export async function runPlanBench({ quick = false } = {}) {
  const sizes = quick ? [1000, 10000] : [1000, 10000, 50000];
  const rows = sizes.map((n) => measure(n, n >= 50000 ? 3 : quick ? 3 : 7));
  const tenK = rows.find((r) => r.modules === 10000);
  return { rows, growth: fittedExponents(rows), goal: { modules: 10000, underMs: 250, met: tenK !== undefined && tenK.medianMs < 250 } };
}
