// Run as `node --expose-gc bench/esm-reimport-child.js <reloads> <checkpoints,...> <dir>`:
// the ES-module approach to hot reload. A ~100 KB module file is rewritten
// with new code and import()ed again with a query string, <reloads> times;
// the previous namespace is dropped each time. Prints one JSON line:
// heap (after forced GCs) and RSS at each checkpoint.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bigEsModule } from './big-module.js';

const reloads = Number(process.argv[2] ?? 1000);
const checkpoints = new Set((process.argv[3] ?? '10,100,1000').split(',').map(Number));
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

async function memory() {
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setImmediate(r));
    globalThis.gc();
  }
  return process.memoryUsage();
}

// The directory belongs to the parent, which removes it however this process ends.
const dir = process.argv[4];
if (dir === undefined) throw new Error('usage: esm-reimport-child.js <reloads> <checkpoints> <dir>');
const file = join(dir, 'big.mjs');
const url = pathToFileURL(file).href;
const points = [];
const started = performance.now();
let current;
let bytes = 0;
points.push({ cycle: 0, ...(await memory()) });
for (let i = 1; i <= reloads; i++) {
  const source = bigEsModule(i);
  bytes = source.length;
  writeFileSync(file, source);
  current = await import(`${url}?v=${i}`);
  if (current.handleCall(3) !== 3 * i + i) throw new Error(`reload ${i} did not take`);
  if (checkpoints.has(i)) points.push({ cycle: i, ...(await memory()) });
}
process.stdout.write(`${JSON.stringify({ reloads, moduleBytes: bytes, seconds: (performance.now() - started) / 1000, points })}\n`);
