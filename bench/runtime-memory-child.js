// Run as `node --expose-gc bench/runtime-memory-child.js <cycles> <checkpoints,...>`:
// the runtime alone (startNode in this process, no control socket, no state
// directory), with the same release and cycles as the node-process run of
// memory-bench.js. Isolates what the runtime keeps from what the host keeps.
// Prints one JSON line: heap (after forced GCs) and RSS at each checkpoint.
import { plan } from '../dist/planner/plan.js';
import { startNode } from '../dist/runtime/node/relup-node.js';
import { appup, image } from './mem-release.js';

const cycles = Number(process.argv[2] ?? 1000);
const checkpoints = new Set((process.argv[3] ?? '10,100,1000').split(',').map(Number));
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

async function memory() {
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setImmediate(r));
    globalThis.gc();
  }
  return process.memoryUsage();
}

async function apply(node, from, to, appups) {
  const planned = plan({ from: from.release, to: to.release, appups });
  if (planned.script === undefined) throw new Error(`plan ${from.release.version} → ${to.release.version}: ${JSON.stringify(planned.diagnostics)}`);
  const outcome = await node.applyScript(planned.script, to);
  if (outcome.status !== 'committed') throw new Error(`apply ${from.release.version} → ${to.release.version}: ${outcome.status} ${outcome.message}`);
}

const base = image('1.0.0', 0);
const node = await startNode({ image: base, config: {}, log: () => {} });
const points = [{ cycle: 0, ...(await memory()) }];
const started = performance.now();
try {
  for (let c = 1; c <= cycles; c++) {
    const version = `1.0.${c}`;
    const next = image(version, c);
    const appups = appup(version);
    await apply(node, base, next, appups);
    const up = await node.call('worker', 3);
    await apply(node, next, base, appups);
    const down = await node.call('worker', 3);
    if (up !== 4 * c || down !== 0) throw new Error(`cycle ${c}: the worker answered ${up} on ${version} and ${down} on 1.0.0`);
    if (checkpoints.has(c)) points.push({ cycle: c, ...(await memory()) });
  }
  const upgrades = node.states().modules.big.upgrades;
  if (upgrades !== 2 * cycles) throw new Error(`module state counted ${upgrades} migrations, expected ${2 * cycles}`);
} finally {
  await node.stop();
}
process.stdout.write(`${JSON.stringify({ cycles, seconds: (performance.now() - started) / 1000, points })}\n`);
