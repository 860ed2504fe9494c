import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, test } from 'vitest';
import { boot } from './helpers/demo-node.js';
import { imageFromFiles, planScript } from './helpers/release-image.js';
import type { ReleaseImage } from '../../src/runtime/node/release-image.js';

/**
 * Old code must be collectable: 300 upgrades and rollbacks of a ~100 KB
 * module, each with fresh source (so no compile cache can hide a leak), must
 * not grow the heap, and every purged version's exports must be garbage.
 */

// --expose-gc for this worker only: a fresh context created after the flag is set sees `gc`.
setFlagsFromString('--expose-gc');
const gc = (globalThis.gc ?? runInNewContext('gc')) as () => void;

const CYCLES = 300;
const FUNCTIONS = 600;

function bigModule(salt: number): string {
  const lines = [
    `// version salt ${salt}`,
    `const table = Array.from({ length: 5000 }, (_, k) => k * ${salt});`,
    `exports.initialState = () => ({ upgrades: 0 });`,
    `exports.init = () => ({ seen: 0 });`,
    `exports.handleCall = (msg, state) => { state.seen += 1; return { reply: table[msg % table.length] + ${salt}, state }; };`,
    `exports.handleCast = (msg, state) => state;`,
    `exports.self = () => exports;`,
    `exports.up = (state) => { state.upgrades += 1; };`,
    `exports.down = (state) => { state.upgrades += 1; };`,
  ];
  const padding = 'padding that makes the module about 100 KB, like real code with comments'.repeat(2);
  for (let k = 0; k < FUNCTIONS; k++) lines.push(`exports.f${k} = (x) => x + table[${k}] + ${salt} + ${k}; // ${padding}`);
  return lines.join('\n');
}

function image(version: '1.0.0' | '1.0.1', salt: number): ReleaseImage {
  const exports = ['initialState', 'init', 'handleCall', 'handleCast', 'self', 'up', 'down'];
  return imageFromFiles({
    'release.yaml': `name: mem\nversion: ${version}\nruntime: node\nmodules:\n  big: { file: big.js, exports: [${exports.join(', ')}] }\nprocesses:\n  worker: { module: big }\n`,
    'big.js': bigModule(salt),
  });
}

const APPUP = `version: 1.0.1
up:
  - from: 1.0.0
    instructions:
      - update: big
        migration: up
        purge: brutal
down:
  - to: 1.0.0
    instructions:
      - update: big
        migration: down
`;

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return process.memoryUsage().heapUsed;
}

test(`${CYCLES} upgrades and rollbacks of a 100 KB module do not grow the heap`, { timeout: 60_000 }, async () => {
  expect(bigModule(1).length).toBeGreaterThan(95_000);
  let current = image('1.0.0', 0);
  const { node } = await boot(current);
  const olds: WeakRef<object>[] = [];
  let heap30 = 0;
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const next = cycle % 2 === 1 ? image('1.0.1', cycle) : image('1.0.0', cycle);
    olds.push(new WeakRef(node.module('big').self!() as object));
    const outcome = await node.applyScript(planScript(current, next, APPUP, '1.0.1'), next);
    expect(outcome.status).toBe('committed');
    expect(await node.call('worker', 3)).toBe(3 * cycle + cycle);
    current = next;
    if (cycle === 30) heap30 = await heapAfterGc();
  }
  const heap300 = await heapAfterGc();
  const growth = heap300 - heap30;
  const alive = olds.filter((r) => r.deref() !== undefined).length;
  // Recorded for the report: `RELUP_REPORT=1 npx vitest run test/runtime/memory.test.ts`.
  if (process.env['RELUP_REPORT'] === '1') process.stderr.write(`memory: heap at cycle 30 ${(heap30 / 1e6).toFixed(2)} MB, at ${CYCLES} ${(heap300 / 1e6).toFixed(2)} MB, growth ${(growth / 1e6).toFixed(2)} MB; old versions still alive: ${alive}/${olds.length}\n`);
  expect(node.states().modules['big']).toEqual({ upgrades: CYCLES });
  expect(alive).toBe(0);
  expect(growth).toBeLessThan(3 * 1024 * 1024);
});
