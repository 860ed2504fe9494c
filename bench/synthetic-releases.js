// Synthetic releases for planner benchmarks: n modules, `changed` fraction
// changed, random dependencies (a seeded PRNG, so runs are comparable).
import { createHash } from 'node:crypto';

const sha = (s) => createHash('sha256').update(s).digest('hex');

export function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function syntheticPair(n, { changed = 0.1, depsPerModule = 2, processEvery = 20, seed = 42 } = {}) {
  const rand = mulberry32(seed);
  const names = Array.from({ length: n }, (_, i) => `mod_${String(i).padStart(6, '0')}`);
  const fromModules = [];
  const toModules = [];
  const instructions = [];
  names.forEach((name, i) => {
    const deps = [];
    for (let k = 0; k < depsPerModule; k++) {
      // Depend only on earlier modules, so the graph is acyclic like real code usually is.
      if (i > 0 && rand() < 0.5) deps.push(names[Math.floor(rand() * i)]);
    }
    const uniq = [...new Set(deps)].sort();
    const isChanged = rand() < changed;
    fromModules.push({ name, file: `${name}.js`, hash: sha(`${name}@1`), deps: uniq, exports: ['migrate'], line: i + 1 });
    toModules.push({ name, file: `${name}.js`, hash: sha(isChanged ? `${name}@2` : `${name}@1`), deps: uniq, exports: ['migrate'], line: i + 1 });
    if (isChanged) {
      instructions.push(
        i % 3 === 0
          ? { op: 'update', module: name, deps: undefined, purge: 'soft', migration: 'migrate', extra: undefined, timeout: 5000, mode: 'dynamic', line: i + 1 }
          : { op: 'load', module: name, deps: undefined, purge: 'soft', line: i + 1 },
      );
    }
  });
  const processes = names.filter((_, i) => i % processEvery === 0).map((m, i) => ({ name: `proc_${i}`, module: m, args: undefined, line: 1 }));
  const base = { name: 'synthetic', runtime: 'node', processes, start: {}, origin: 'synthetic', manifestFile: 'synthetic/release.yaml' };
  const from = { ...base, version: '1.0.0', modules: fromModules, hash: sha('from') };
  const to = { ...base, version: '1.1.0', modules: toModules, hash: sha('to') };
  const appup = { file: 'appups/1.1.0.yaml', version: '1.1.0', line: 1, up: [{ versions: '1.0.0', line: 2, instructions }], down: [] };
  return { from, to, appups: new Map([['1.1.0', appup]]), changedCount: instructions.length };
}
