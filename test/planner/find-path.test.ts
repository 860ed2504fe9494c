import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Appup } from '../../src/appup/appup-model.js';
import { connects, findPath } from '../../src/planner/find-path.js';
import { plan } from '../../src/planner/plan.js';
import type { Release } from '../../src/release/release-model.js';
import { appup, appups, entry, load, release } from '../helpers/planner-fixtures.js';

/** Release 1.<i>.0: module `m` changes every version, `base` never does. */
const rel = (i: number): Release => release(`1.${i}.0`, { base: {}, m: { code: `m@${i}` } });

/**
 * A random set of releases 1.0.0 … 1.(n-1).0 and appups whose entries connect
 * random pairs (exact versions, sometimes a range), both ways.
 */
const graph = fc
  .record({ n: fc.integer({ min: 2, max: 8 }), pairs: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 28, maxLength: 28 }), ranges: fc.array(fc.boolean(), { minLength: 28, maxLength: 28 }), order: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }) })
  .map(({ n, pairs, ranges, order }) => {
    const releases = Array.from({ length: n }, (_, i) => rel(i));
    const ups = new Map<number, Set<string>>();
    let k = 0;
    for (let b = 1; b < n; b++) {
      for (let a = 0; a < b; a++, k++) {
        // About one pair in three is connected: sparse enough for detours, dense enough for ties.
        if (pairs[k] !== 1) continue;
        // A range covering exactly the older version, so range matching is exercised too.
        const pattern = ranges[k] === true ? `>=1.${a}.0 <1.${a + 1}.0` : `1.${a}.0`;
        ups.set(b, (ups.get(b) ?? new Set()).add(pattern));
      }
    }
    const list: Appup[] = [...ups].map(([b, patterns]) =>
      appup(
        `1.${b}.0`,
        [...patterns].map((p) => entry(p, [load('m')])),
        [...patterns].map((p) => entry(p, [load('m')])),
      ),
    );
    // The catalog in a random order: the answer must not depend on it.
    const shuffled = releases.map((r, i) => ({ r, k: order[i] ?? 0 })).sort((x, y) => x.k - y.k).map((x) => x.r);
    return { n, releases, shuffled, appups: appups(...list) };
  });

/** Every monotone path from i to j by brute force (small graphs only). */
function allPaths(i: number, j: number, n: number, a: ReadonlyMap<string, Appup>): number[][] {
  const up = j > i;
  const out: number[][] = [];
  const walk = (at: number, path: number[]): void => {
    if (at === j) return void out.push(path);
    for (let k = 0; k < n; k++) {
      if ((up ? k > at && k <= j : k < at && k >= j) && connects(`1.${at}.0`, `1.${k}.0`, a)) walk(k, [...path, k]);
    }
  };
  walk(i, [i]);
  return out;
}

describe('findPath', () => {
  it('finds a shortest path, the same one whatever the catalog order, and every hop passes the planner', () => {
    fc.assert(
      fc.property(graph, fc.nat(7), fc.nat(7), ({ n, releases, shuffled, appups: a }, i0, j0) => {
        const [i, j] = [i0 % n, j0 % n];
        if (i === j) return;
        const result = findPath({ from: releases[i]!, to: releases[j]!, releases, appups: a });
        const again = findPath({ from: releases[i]!, to: releases[j]!, releases: shuffled, appups: a });
        expect(JSON.stringify(again)).toBe(JSON.stringify(result));
        const paths = allPaths(i, j, n, a);
        if (paths.length === 0) {
          expect(result.path).toBeUndefined();
          expect(result.diagnostics.some((d) => d.severity === 'error')).toBe(true);
          return;
        }
        const shortest = Math.min(...paths.map((p) => p.length));
        expect(result.path).toBeDefined();
        expect(result.path!.length).toBe(shortest);
        // Tie-break: among the shortest, the one nearest to the target at each stop.
        const up = j > i;
        const best = paths
          .filter((p) => p.length === shortest)
          .sort((p, q) => {
            for (let k = 0; k < p.length; k++) if (p[k] !== q[k]) return up ? q[k]! - p[k]! : p[k]! - q[k]!;
            return 0;
          })[0]!;
        expect(result.path).toEqual(best.map((k) => `1.${k}.0`));
        expect(result.hops).toHaveLength(shortest - 1);
        result.hops.forEach((script, k) => {
          expect(script.from.version).toBe(result.path![k]);
          expect(script.to.version).toBe(result.path![k + 1]);
          expect(script.direction).toBe(up ? 'up' : 'down');
          // Each hop is exactly what the planner gives for that pair, with no error.
          const alone = plan({ from: releases.find((r) => r.version === script.from.version)!, to: releases.find((r) => r.version === script.to.version)!, appups: a });
          expect(alone.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
          expect(alone.script).toEqual(script);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('a direct entry is a one-hop path identical to plan()', () => {
    const releases = [rel(0), rel(1), rel(2)];
    const a = appups(appup('1.2.0', [entry('1.0.0', [load('m')]), entry('1.1.0', [load('m')])]), appup('1.1.0', [entry('1.0.0', [load('m')])]));
    const result = findPath({ from: releases[0]!, to: releases[2]!, releases, appups: a });
    expect(result.path).toEqual(['1.0.0', '1.2.0']);
    expect(result.hops).toEqual([plan({ from: releases[0]!, to: releases[2]!, appups: a }).script]);
  });

  it('goes through the chain when no entry connects the ends: 1.0.0 → 1.1.0 → 1.2.0 → 1.3.0, and back down', () => {
    const releases = [0, 1, 2, 3].map(rel);
    const a = appups(
      appup('1.1.0', [entry('1.0.0', [load('m')])], [entry('1.0.0', [load('m')])]),
      appup('1.2.0', [entry('1.1.0', [load('m')])], [entry('1.1.0', [load('m')])]),
      appup('1.3.0', [entry('1.2.0', [load('m')])], [entry('1.2.0', [load('m')])]),
    );
    expect(findPath({ from: releases[0]!, to: releases[3]!, releases, appups: a }).path).toEqual(['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    expect(findPath({ from: releases[3]!, to: releases[0]!, releases, appups: a }).path).toEqual(['1.3.0', '1.2.0', '1.1.0', '1.0.0']);
  });

  it('breaks a tie by going nearest to the target first', () => {
    const releases = [0, 1, 2, 3].map(rel);
    // 1.0.0 → 1.1.0 → 1.3.0 and 1.0.0 → 1.2.0 → 1.3.0 are both two hops: the one through 1.2.0 is chosen.
    const a = appups(appup('1.1.0', [entry('1.0.0', [load('m')])], [entry('1.0.0', [load('m')])]), appup('1.2.0', [entry('1.0.0', [load('m')])], [entry('1.0.0', [load('m')])]), appup('1.3.0', [entry('1.1.0', [load('m')]), entry('1.2.0', [load('m')])], [entry('1.1.0', [load('m')]), entry('1.2.0', [load('m')])]));
    expect(findPath({ from: releases[0]!, to: releases[3]!, releases, appups: a }).path).toEqual(['1.0.0', '1.2.0', '1.3.0']);
    expect(findPath({ from: releases[3]!, to: releases[0]!, releases, appups: a }).path).toEqual(['1.3.0', '1.1.0', '1.0.0']);
  });

  it('reports a broken hop instead of routing around it, and a missing link as plan-no-path', () => {
    const releases = [0, 1, 2].map(rel);
    // 1.1.0's entry forgets module m: the hop 1.0.0 → 1.1.0 fails the coverage check.
    const broken = appups(appup('1.1.0', [entry('1.0.0', [])]), appup('1.2.0', [entry('1.1.0', [load('m')])]));
    const r1 = findPath({ from: releases[0]!, to: releases[2]!, releases, appups: broken });
    expect(r1.path).toBeUndefined();
    expect(r1.diagnostics.map((d) => d.code)).toContain('plan-changed-not-covered');
    const gap = appups(appup('1.2.0', [entry('1.1.0', [load('m')])]));
    const r2 = findPath({ from: releases[0]!, to: releases[2]!, releases, appups: gap });
    expect(r2.path).toBeUndefined();
    expect(r2.diagnostics.map((d) => d.code)).toEqual(['plan-no-matching-entry', 'plan-no-path']);
  });

  it('never uses a stop outside the two ends, even when it would connect them', () => {
    const releases = [0, 1, 2].map(rel);
    // 1.0.0 → 1.2.0 (up) then 1.2.0 → 1.1.0 (down) would connect 1.0.0 to 1.1.0, but a path never turns back.
    const a = appups(appup('1.2.0', [entry('1.0.0', [load('m')])], [entry('1.1.0', [load('m')])]));
    const r = findPath({ from: releases[0]!, to: releases[1]!, releases, appups: a });
    expect(r.path).toBeUndefined();
    expect(r.diagnostics.map((d) => d.code)).toEqual(['plan-no-appup']);
  });
});
