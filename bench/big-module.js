// A ~100 KB module, in relup's module format (CommonJS-style body) and as an ES
// module, with a salt so that every version is new code (no compile cache can
// hide a leak). Same shape as test/runtime/memory.test.ts.
const FUNCTIONS = 600;
const PADDING = 'padding that makes the module about 100 KB, like real code with comments'.repeat(2);

export const BIG_EXPORTS = ['initialState', 'init', 'handleCall', 'handleCast', 'up', 'down', 'memory'];

/** relup module file: state in the runtime, a process, migrations, and `memory()` to read the node's heap after a GC. */
export function bigRelupModule(salt) {
  const lines = [
    `// version salt ${salt}`,
    `const table = Array.from({ length: 5000 }, (_, k) => k * ${salt});`,
    `exports.initialState = () => ({ upgrades: 0 });`,
    `exports.init = () => ({ seen: 0 });`,
    `exports.handleCall = (msg, state) => { state.seen += 1; return { reply: table[msg % table.length] + ${salt}, state }; };`,
    `exports.handleCast = (msg, state) => state;`,
    `exports.up = (state) => { state.upgrades += 1; };`,
    `exports.down = (state) => { state.upgrades += 1; };`,
    // Benchmark probe: the node runs with --expose-gc; a few GCs a turn apart, then the process's memory.
    `exports.memory = async () => { for (let i = 0; i < 4; i++) { await new Promise((r) => setImmediate(r)); globalThis.gc(); } return process.memoryUsage(); };`,
  ];
  for (let k = 0; k < FUNCTIONS; k++) lines.push(`exports.f${k} = (x) => x + table[${k}] + ${salt} + ${k}; // ${PADDING}`);
  return `${lines.join('\n')}\n`;
}

/** The same module as an ES module. */
export function bigEsModule(salt) {
  const lines = [`// version salt ${salt}`, `const table = Array.from({ length: 5000 }, (_, k) => k * ${salt});`, `export const handleCall = (msg) => table[msg % table.length] + ${salt};`];
  for (let k = 0; k < FUNCTIONS; k++) lines.push(`export const f${k} = (x) => x + table[${k}] + ${salt} + ${k}; // ${PADDING}`);
  return `${lines.join('\n')}\n`;
}
