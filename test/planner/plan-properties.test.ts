import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Instruction } from '../../src/appup/appup-model.js';
import { plan } from '../../src/planner/plan.js';
import { serializeScript } from '../../src/script/serialize-script.js';
import type { Step } from '../../src/script/script-schema.js';
import { add, appup, appups, del, entry, load, release, update, type ModuleSpec } from '../helpers/planner-fixtures.js';

/** A random pair of releases and an appup that covers most (not always all) of their differences. */
const scenario = fc
  .record({
    size: fc.integer({ min: 1, max: 25 }),
    seed: fc.array(fc.record({ change: fc.constantFrom('same', 'changed', 'added', 'removed'), deps: fc.array(fc.nat(30), { maxLength: 3 }), proc: fc.boolean(), cover: fc.double({ min: 0, max: 1, noNaN: true }), kind: fc.boolean(), explicitDeps: fc.boolean() }), { minLength: 25, maxLength: 25 }),
    coverRate: fc.constantFrom(1, 0.9),
  })
  .map(({ size, seed, coverRate }) => {
    const names = Array.from({ length: size }, (_, i) => `m${String(i).padStart(2, '0')}`);
    const fromMods: Record<string, ModuleSpec> = {};
    const toMods: Record<string, ModuleSpec> = {};
    const procs: Record<string, string> = {};
    const instructions: Instruction[] = [];
    const switched: string[] = [];
    names.forEach((name, i) => {
      const s = seed[i]!;
      const inTo = names.filter((_, j) => seed[j]!.change !== 'removed');
      const deps = [...new Set(s.deps.map((d) => inTo[d % Math.max(1, inTo.length)]!).filter((d) => d !== name && d !== undefined))];
      if (s.change !== 'added') fromMods[name] = {};
      if (s.change !== 'removed') toMods[name] = { code: s.change === 'changed' ? `${name}@v2` : undefined, deps };
      if (s.proc && s.change === 'same') procs[`p_${name}`] = name;
      if (s.proc && s.change === 'changed') procs[`p_${name}`] = name;
      const covered = s.cover < coverRate;
      if (!covered) return;
      if (s.change === 'changed') {
        instructions.push(s.kind ? update(name, { deps: undefined }) : load(name));
        switched.push(name);
      } else if (s.change === 'added') {
        instructions.push(add(name));
        switched.push(name);
      } else if (s.change === 'removed') instructions.push(del(name));
    });
    // Some instructions state their deps explicitly (restricted to switched modules, as the rules demand).
    for (const ins of instructions) {
      if ((ins.op === 'load' || ins.op === 'update' || ins.op === 'add') && seed[names.indexOf(ins.module)]!.explicitDeps) {
        ins.deps = (toMods[ins.module]?.deps ?? []).filter((d) => switched.includes(d));
      }
    }
    const processesFrom = Object.fromEntries(Object.entries(procs).filter(([, m]) => fromMods[m] !== undefined));
    const processesTo = Object.fromEntries(Object.entries(procs).filter(([, m]) => toMods[m] !== undefined));
    const from = release('1.0.0', fromMods, processesFrom);
    const to = release('1.1.0', toMods, processesTo);
    return { from, to, instructions, appup: appup('1.1.0', [entry('1.0.0', instructions)], [entry('1.0.0', instructions)]) };
  });

const indexOf = (steps: Step[], pred: (s: Step) => boolean) => steps.findIndex(pred);

describe('planner properties', () => {
  it('is deterministic: the same input gives byte-identical scripts', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const a = plan({ from: s.from, to: s.to, appups: appups(s.appup) });
        const b = plan({ from: structuredClone(s.from), to: structuredClone(s.to), appups: appups(structuredClone(s.appup)) });
        expect(JSON.stringify(b.diagnostics)).toBe(JSON.stringify(a.diagnostics));
        if (a.script !== undefined) expect(serializeScript(b.script!)).toBe(serializeScript(a.script));
      }),
      { numRuns: 200 },
    );
  });

  it('covers every changed, added and removed module, or says which is not', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const r = plan({ from: s.from, to: s.to, appups: appups(s.appup) });
        const named = new Set(s.instructions.map((i) => ('module' in i ? i.module : '')));
        const fromH = new Map(s.from.modules.map((m) => [m.name, m.hash]));
        const toH = new Map(s.to.modules.map((m) => [m.name, m.hash]));
        const uncovered = [...new Set([...fromH.keys(), ...toH.keys()])].filter((m) => fromH.get(m) !== toH.get(m) && !named.has(m));
        for (const m of uncovered) {
          const code = !fromH.has(m) ? 'plan-added-not-covered' : !toH.has(m) ? 'plan-removed-not-covered' : 'plan-changed-not-covered';
          expect(r.diagnostics.some((d) => d.code === code && d.message.includes(`"${m}"`))).toBe(true);
        }
        if (uncovered.length === 0) expect(r.script).toBeDefined();
        else expect(r.script).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('resumes every suspended process in the same group, after its switch, in reverse order', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const r = plan({ from: s.from, to: s.to, appups: appups(s.appup) });
        if (r.script === undefined) return;
        const steps = r.script.steps;
        const ponr = r.script.pointOfNoReturn;
        for (const g of r.script.groups) {
          const suspends = steps.filter((x) => x.op === 'suspend' && x.group === g.id).map((x) => (x as { process: string }).process);
          const resumes = steps.filter((x) => x.op === 'resume' && x.group === g.id).map((x) => (x as { process: string }).process);
          expect(resumes).toEqual([...suspends].reverse());
          const firstResume = indexOf(steps, (x) => x.op === 'resume' && x.group === g.id);
          const lastSwitch = steps.map((x, i) => (x.op === 'switch' && x.group === g.id ? i : -1)).reduce((a, b) => Math.max(a, b), -1);
          const lastSuspend = steps.map((x, i) => (x.op === 'suspend' && x.group === g.id ? i : -1)).reduce((a, b) => Math.max(a, b), -1);
          if (firstResume !== -1) expect(firstResume).toBeGreaterThan(lastSwitch);
          if (lastSuspend !== -1) expect(lastSuspend).toBeGreaterThan(ponr);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('with cycles too: a dependency outside its cycle switches first, and the cycle warning names only modules that really depend on each other', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const r = plan({ from: s.from, to: s.to, appups: appups(s.appup) });
        if (r.script === undefined) return;
        const at = new Map<string, number>();
        r.script.steps.forEach((x, i) => {
          if (x.op === 'switch') at.set(x.module, i);
        });
        const depsOf = (m: string) => (s.to.modules.find((x) => x.name === m)?.deps ?? []).filter((d) => at.has(d));
        // reach(a, b): b is reachable from a through switched modules' deps.
        const reach = (a: string, b: string): boolean => {
          const seen = new Set<string>();
          const stack = [a];
          while (stack.length > 0) {
            const x = stack.pop()!;
            for (const d of depsOf(x)) {
              if (d === b) return true;
              if (!seen.has(d)) stack.push(d), seen.add(d);
            }
          }
          return false;
        };
        for (const m of at.keys()) {
          for (const d of depsOf(m)) if (!reach(d, m)) expect(at.get(d)!, `${d} before ${m}`).toBeLessThan(at.get(m)!);
        }
        for (const w of r.diagnostics.filter((x) => x.code === 'plan-dep-cycle')) {
          const members = /modules (.+) depend on each other/.exec(w.message)![1]!.split(', ');
          for (const a of members) for (const b of members) if (a !== b) expect(reach(a, b), `${a} reaches ${b}`).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('switches dependencies before the modules that depend on them', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const r = plan({ from: s.from, to: s.to, appups: appups(s.appup) });
        if (r.script === undefined || r.diagnostics.some((d) => d.code === 'plan-dep-cycle')) return;
        const at = new Map<string, number>();
        r.script.steps.forEach((x, i) => {
          if (x.op === 'switch') at.set(x.module, i);
        });
        for (const ins of s.instructions) {
          if (!('module' in ins) || !at.has(ins.module)) continue;
          const deps = ('deps' in ins && ins.deps !== undefined ? ins.deps : s.to.modules.find((m) => m.name === ins.module)?.deps) ?? [];
          for (const d of deps) if (at.has(d)) expect(at.get(d)!).toBeLessThan(at.get(ins.module)!);
        }
        // Groups partition the switched modules, and a module never shares a group with nothing it is connected to.
        const inGroups = r.script.groups.flatMap((g) => g.modules).sort();
        expect(inGroups).toEqual([...at.keys()].sort());
      }),
      { numRuns: 300 },
    );
  });

  it('puts every step that can fail without side effects before the point of no return', () => {
    const before = new Set(['verify_release', 'check_version', 'stage', 'check_function', 'check_process']);
    fc.assert(
      fc.property(scenario, (s) => {
        const r = plan({ from: s.from, to: s.to, appups: appups(s.appup) });
        if (r.script === undefined) return;
        const { steps, pointOfNoReturn } = r.script;
        expect(steps[pointOfNoReturn]!.op).toBe('point_of_no_return');
        steps.forEach((x, i) => expect(before.has(x.op)).toBe(i < pointOfNoReturn));
        expect(steps.at(-1)!.op).toBe('commit');
      }),
      { numRuns: 200 },
    );
  });
});
