// `npm run bench [-- --quick]`: runs every benchmark, prints the figures and
// writes them as JSON under bench/results/. Benchmarks are not tests.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runPlanBench } from './plan-bench.js';

const quick = process.argv.includes('--quick');
const machine = { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGb: Math.round(totalmem() / 2 ** 30) };

const results = { date: new Date().toISOString(), quick, machine, planner: await runPlanBench({ quick }) };

console.log(`planner (${machine.cpu}, ${machine.cores} cores, node ${machine.node})`);
console.log('  modules   changed   steps   groups   median ms   min ms   heap Δ MB');
for (const r of results.planner.rows) {
  console.log(`  ${String(r.modules).padStart(7)}   ${String(r.changed).padStart(7)}   ${String(r.steps).padStart(5)}   ${String(r.groups).padStart(6)}   ${String(r.medianMs).padStart(9)}   ${String(r.minMs).padStart(6)}   ${String(r.heapDeltaMb).padStart(9)}`);
}
for (const g of results.planner.growth) console.log(`  growth ${g.from} → ${g.to}: time ~ n^${g.exponent}`);
console.log(`  goal: 10,000 modules under 250 ms: ${results.planner.goal.met ? 'met' : 'MISSED'}`);

const dir = fileURLToPath(new URL('./results/', import.meta.url));
await mkdir(dir, { recursive: true });
const file = `${dir}bench-${quick ? 'quick' : 'full'}.json`;
await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nresults written to ${file}`);
