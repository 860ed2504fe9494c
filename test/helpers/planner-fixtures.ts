import { createHash } from 'node:crypto';
import type { Appup, AppupEntry, Instruction } from '../../src/appup/appup-model.js';
import type { Release } from '../../src/release/release-model.js';

export const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

export interface ModuleSpec {
  /** Content stand-in; equal content ⇒ equal hash. */
  code?: string;
  deps?: string[];
  exports?: string[];
}

/** A Release as the release layer would produce it, built in memory for pure planner tests. */
export function release(version: string, modules: Record<string, ModuleSpec>, processes: Record<string, string> = {}, name = 'app'): Release {
  const mods = Object.entries(modules)
    .map(([m, spec], i) => ({
      name: m,
      file: `${m}.js`,
      hash: sha(spec.code ?? `${m}@v1`),
      deps: [...(spec.deps ?? [])].sort(),
      exports: spec.exports,
      line: 10 + i,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const procs = Object.entries(processes)
    .map(([p, module], i) => ({ name: p, module, args: undefined, line: 50 + i }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const hash = sha(JSON.stringify({ name, version, mods: mods.map((m) => [m.name, m.hash, m.deps, m.exports ?? null]), procs: procs.map((p) => [p.name, p.module]) }));
  return { name, version, runtime: 'node', modules: mods, processes: procs, start: {}, hash, origin: `releases/${version}`, manifestFile: `releases/${version}/release.yaml` };
}

let nextLine = 100;
const line = () => nextLine++;

export const load = (module: string, o: Partial<Instruction & { op: 'load' }> = {}): Instruction => ({ op: 'load', module, deps: undefined, purge: 'soft', line: line(), ...o });
export const update = (module: string, o: Partial<Instruction & { op: 'update' }> = {}): Instruction => ({
  op: 'update', module, deps: undefined, purge: 'soft', migration: undefined, extra: undefined, timeout: 5000, mode: 'dynamic', line: line(), ...o,
});
export const add = (module: string, o: Partial<Instruction & { op: 'add' }> = {}): Instruction => ({ op: 'add', module, deps: undefined, line: line(), ...o });
export const del = (module: string): Instruction => ({ op: 'delete', module, purge: 'soft', line: line() });
export const apply = (module: string, fn: string, args: unknown[] = []): Instruction => ({ op: 'apply', module, function: fn, args, line: line() });
export const restart = (process: string): Instruction => ({ op: 'restart', process, line: line() });

export const entry = (versions: string, instructions: Instruction[]): AppupEntry => ({ versions, instructions, line: line() });

export function appup(version: string, up: AppupEntry[], down: AppupEntry[] = []): Appup {
  return { file: `appups/${version}.yaml`, version, up, down, line: 1 };
}

export const appups = (...list: Appup[]): Map<string, Appup> => new Map(list.map((a) => [a.version, a]));
