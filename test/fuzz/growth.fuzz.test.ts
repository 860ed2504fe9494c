import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { CONFIG_FILE } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import { releaseFromFiles } from '../../src/release/release-from-files.js';
import { YamlSource } from '../../src/yaml/yaml-source.js';
import { runs, Summary, timeoutFor } from './kit.js';

/**
 * Issue 9 item 10, as a class: every parse of a relup file is linear. Each
 * case builds one generated shape (a repeated unit: module entries, flow
 * maps, repeated or unknown or reserved keys, anchors, comments, long
 * strings, appup instructions, config targets) at n and at 4n units, parses
 * both through the real entry point, and compares the times: a linear parse
 * takes about 4×, a quadratic one about 16×. The bound (8×) is generous on
 * purpose; no absolute time is asserted, and CPU time is compared, so a
 * loaded machine does not skew the ratio. Sizes reach where yaml's quadratic
 * `uniqueKeys` showed (2,000 → 8,000 keys in one map: 4.8–14.8× before the fix).
 */
const summary = new Summary('parse growth');
const RATIO = 8;
const N = 2_000;

type Target = 'release.yaml' | 'appup' | 'config' | 'yaml';
interface Shape {
  target: Target;
  label: string;
  text: (n: number) => string;
}

const HEAD = 'name: big\nversion: 1.0.0\nruntime: node\n';
const moduleUnits: Record<string, (i: number, n: number) => string> = {
  'valid module': (i) => `  m${i}:\n    file: m.js\n    exports: [run]`,
  'module with deps': (i, n) => `  m${i}:\n    file: m.js\n    deps: [m${(i + 1) % n}, m${(i + 7) % n}]`,
  'unknown dep': (i) => `  m${i}:\n    file: m.js\n    deps: [nope${i}]`,
  'unknown key': (i) => `  m${i}:\n    file: m.js\n    dep: [m0]`,
  'missing file': (i) => `  m${i}:\n    file: missing${i}.js`,
  'repeated key': (i) => `  m${i >> 1}:\n    file: m.js`,
  'reserved name': (i) => `  ${i % 2 === 0 ? 'toString' : `m${i}`}:\n    file: m.js`,
  'anchor and alias': (i) => (i % 2 === 0 ? `  m${i}: &a${i}\n    file: m.js` : `  m${i}: *a${i - 1}`),
  'comment between': (i) => `  # module ${i}\n  m${i}:\n    file: m.js # trailing`,
  'long strings': (i) => `  m${i}:\n    file: m.js\n    exports: ["${'e'.repeat(40)}${i}"]`,
};

const shapes: fc.Arbitrary<Shape> = fc.oneof(
  fc.record({ unit: fc.constantFrom(...Object.keys(moduleUnits)), flow: fc.boolean() }).map(({ unit, flow }): Shape => ({
    target: 'release.yaml',
    label: `release.yaml, ${unit}${flow ? ', flow' : ''}`,
    text: (n) => {
      const units = Array.from({ length: n }, (_, i) => moduleUnits[unit]!(i, n));
      if (!flow || unit.includes('comment') || unit.includes('anchor')) return `${HEAD}modules:\n${units.join('\n')}\n`;
      // The same entries as one flow map per module: `m1: {file: m.js, …}`.
      const asFlow = (u: string) => `${u.trim().replace(/:\n\s+/, ': {').replace(/\n\s+/g, ', ')}}`;
      return `${HEAD}modules: {${units.map(asFlow).join(', ')}}\n`;
    },
  })),
  fc.constantFrom('load', 'update', 'same module', 'unknown key').map((kind): Shape => ({
    target: 'appup',
    label: `appup, ${kind} instructions`,
    text: (n) => {
      const unit = (i: number) =>
        kind === 'load' ? `      - load: m${i}`
        : kind === 'update' ? `      - update: m${i}\n        migration: up${i}\n        deps: [m${(i + 1) % n}]`
        : kind === 'same module' ? '      - load: m0'
        : `      - load: m${i}\n        purg: soft`;
      return `version: 2.0.0\nup:\n  - from: 1.0.0\n    instructions:\n${Array.from({ length: n }, (_, i) => unit(i)).join('\n')}\ndown: []\n`;
    },
  })),
  fc.constantFrom('valid', 'unknown key').map((kind): Shape => ({
    target: 'config',
    label: `config, ${kind} targets`,
    text: (n) => `defaultTarget: t0\ntargets:\n${Array.from({ length: n }, (_, i) => `  t${i}:\n    ${kind === 'valid' ? 'socket' : 'sockt'}: run/${i}.sock`).join('\n')}\n`,
  })),
  fc.constantFrom('flat map', 'flow map', 'list of maps', 'nested lists').map((kind): Shape => ({
    target: 'yaml',
    label: `YAML, ${kind}`,
    text: (n) =>
      kind === 'flat map' ? Array.from({ length: n }, (_, i) => `k${i}: ${i}`).join('\n')
      : kind === 'flow map' ? `{${Array.from({ length: n }, (_, i) => `k${i}: [${i}, "${i}"]`).join(', ')}}`
      : kind === 'list of maps' ? Array.from({ length: n }, (_, i) => `- {a: ${i}, b: [${i}]}`).join('\n')
      : Array.from({ length: n }, (_, i) => `- ${'['.repeat(1 + (i % 8))}${i}${']'.repeat(1 + (i % 8))}`).join('\n'),
  })),
);

function parseWith(target: Target, text: string): unknown {
  switch (target) {
    case 'release.yaml':
      return releaseFromFiles({ files: new Map([['release.yaml', Buffer.from(text)], ['m.js', Buffer.from('x')]]), kind: 'dir', origin: 'rel' });
    case 'appup':
      return parseAppup(text, 'appups/2.0.0.yaml');
    case 'config':
      return parseConfig(text, CONFIG_FILE);
    case 'yaml':
      return YamlSource.parse(text, 'f.yaml');
  }
}

/**
 * The least CPU time (ms) of three runs: CPU time, not wall time, so waiting
 * for a core on a loaded machine does not count; the least, since noise
 * (GC, other threads) only ever adds.
 */
function fastest(f: () => void): number {
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    const t0 = process.cpuUsage();
    f();
    const d = process.cpuUsage(t0);
    best = Math.min(best, (d.user + d.system) / 1000);
  }
  return best;
}

describe('fuzz: every parse of a relup file grows linearly', () => {
  it(
    'n and 4n units of a generated shape: time ratio under 8 (linear ≈ 4, quadratic ≈ 16)',
    () => {
      const started = performance.now();
      const cpu = process.cpuUsage();
      const cases = fc.sample(shapes, { numRuns: runs(8), seed: 0x9410 });
      const rows: string[] = [];
      for (const shape of cases) {
        const small = shape.text(N);
        const large = shape.text(4 * N);
        expect(large.length).toBeLessThan(4 * 1024 * 1024); // within YAML_LIMITS: measured, not refused
        parseWith(shape.target, small); // warm up the JIT on this shape
        const a = fastest(() => parseWith(shape.target, small));
        const b = fastest(() => parseWith(shape.target, large));
        // A parse under 5 ms is all noise; its ratio is taken against 5 ms.
        const ratio = b / Math.max(a, 5);
        rows.push(`${shape.label}: ${a.toFixed(1)} ms → ${b.toFixed(1)} ms (×${ratio.toFixed(1)})`);
        expect(ratio, `${shape.label}: ${N} units in ${a.toFixed(1)} ms, ${4 * N} in ${b.toFixed(1)} ms`).toBeLessThan(RATIO);
      }
      const d = process.cpuUsage(cpu);
      summary.record({ target: 'growth', property: 'n vs 4n units of generated shapes', cases: cases.length, ms: performance.now() - started, cpuMs: (d.user + d.system) / 1000, seed: 0x9410 });
      console.log(`[fuzz] growth ratios (n = ${N} → ${4 * N})\n  ${rows.join('\n  ')}`);
    },
    timeoutFor(180_000),
  );
});
