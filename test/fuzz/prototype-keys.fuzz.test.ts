import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { CONFIG_FILE } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import { parseManifest } from '../../src/release/bundle-manifest.js';
import { bundleBytes } from '../../src/release/bundle-bytes.js';
import { releaseFromFiles } from '../../src/release/release-from-files.js';
import { DEMO_APPUPS } from '../helpers/repo-paths.js';
import { demoFiles, demoImage } from '../runtime/helpers/release-image.js';
import { checkChecked, fuzz, lineCount, noThrow, runs, Summary, timeoutFor } from './kit.js';
import { clone } from './mutate.js';

/**
 * Issue 9 item 4, as a class: a name that is also a member of
 * Object.prototype (`__proto__`, `constructor`, `toString`, …) put anywhere a
 * name or a key can go — module, process, dependency, export, process module,
 * a key of `start` or `args`, an appup instruction, a manifest field, a
 * config target — is either refused with an error, or found in the result
 * exactly where it was written. Never silently dropped, never resolved
 * through the prototype.
 */
const summary = new Summary('prototype keys');

const NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__', 'propertyIsEnumerable', 'ok_name'] as const;
const name = fc.constantFrom(...NAMES);
const serialiser = fc.constantFrom('yaml' as const, 'flow' as const, 'json' as const);
type Obj = Record<string, unknown>;

function define(o: Obj, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

function serialise(value: unknown, how: 'yaml' | 'flow' | 'json'): string {
  if (how === 'json') return JSON.stringify(value, null, 1);
  return stringify(value, how === 'flow' ? { collectionStyle: 'flow', aliasDuplicateObjects: false } : { aliasDuplicateObjects: false });
}

// ------------------------------------------------------------------ release.yaml

const FILES = demoFiles('1.2.3');
const RELEASE_VALUE = parse(FILES.get('release.yaml')!.toString('utf8')) as Obj;
const PLACES = ['module', 'process', 'dep', 'export', 'process-module', 'start-key', 'args-key'] as const;
type Place = (typeof PLACES)[number];
interface Insertion {
  place: Place;
  name: string;
}

const releaseCase = fc.record({
  insertions: fc.array(fc.record({ place: fc.constantFrom(...PLACES), name }), { minLength: 1, maxLength: 3 }),
  how: serialiser,
});

function insertRelease(value: Obj, ins: Insertion): void {
  const modules = value['modules'] as Obj;
  const processes = (value['processes'] ??= {}) as Obj;
  const first = modules['route'] as Obj;
  switch (ins.place) {
    case 'module':
      return define(modules, ins.name, { file: 'route.js' });
    case 'process':
      return define(processes, ins.name, { module: 'game' });
    case 'dep':
      first['deps'] = [...((first['deps'] as string[] | undefined) ?? []), ins.name];
      return;
    case 'export':
      first['exports'] = [...((first['exports'] as string[] | undefined) ?? []), ins.name];
      return;
    case 'process-module':
      return define(processes, 'extra_process', { module: ins.name });
    case 'start-key':
      return define(value['start'] as Obj, ins.name, 'v');
    case 'args-key': {
      const game = processes['game'] as Obj;
      const args = (game['args'] ??= {}) as Obj;
      return define(args, ins.name, 1);
    }
  }
}

function checkRelease(c: { insertions: Insertion[]; how: 'yaml' | 'flow' | 'json' }): void {
  const value = clone(RELEASE_VALUE) as Obj;
  for (const ins of c.insertions) insertRelease(value, ins);
  const text = serialise(value, c.how);
  const files = new Map(FILES);
  files.set('release.yaml', Buffer.from(text));
  const result = noThrow('releaseFromFiles', () => releaseFromFiles({ files, kind: 'dir', origin: 'rel' }));
  checkChecked(result, { code: /^(release-[a-z-]+|yaml-[a-z-]+)$/, file: 'rel/release.yaml', lines: lineCount(text) });
  const r = result.value;
  if (r === undefined) return; // refused, with a located error (checked above)
  for (const ins of c.insertions) {
    const route = r.modules.find((m) => m.name === 'route')!;
    const present =
      ins.place === 'module' ? r.modules.some((m) => m.name === ins.name)
      : ins.place === 'process' ? r.processes.some((p) => p.name === ins.name)
      : ins.place === 'dep' ? route.deps.includes(ins.name)
      : ins.place === 'export' ? (route.exports ?? []).includes(ins.name)
      : ins.place === 'process-module' ? r.processes.some((p) => p.name === 'extra_process' && p.module === ins.name)
      : ins.place === 'start-key' ? Object.hasOwn(r.start, ins.name)
      : Object.hasOwn((r.processes.find((p) => p.name === 'game')!.args ?? {}) as object, ins.name);
    if (!present) throw new Error(`${ins.place} ${JSON.stringify(ins.name)} was accepted but is not in the release: silently dropped`);
    if (ins.name === '__proto__') throw new Error(`__proto__ accepted as ${ins.place}`);
  }
}

// ------------------------------------------------------------------ appups

const APPUP_VALUE = parse(readFileSync(join(DEMO_APPUPS, '1.2.3.yaml'), 'utf8')) as Obj;
const APPUP_PLACES = ['update', 'load', 'add', 'delete', 'deps', 'apply-module', 'extra-key'] as const;
const appupCase = fc.record({ place: fc.constantFrom(...APPUP_PLACES), name, how: serialiser });

function checkAppup(c: { place: (typeof APPUP_PLACES)[number]; name: string; how: 'yaml' | 'flow' | 'json' }): void {
  const value = clone(APPUP_VALUE) as Obj;
  const instructions = ((value['up'] as Obj[])[0]!['instructions'] as Obj[]);
  let inserted: Obj;
  switch (c.place) {
    case 'update':
    case 'load':
    case 'add':
    case 'delete':
      inserted = {};
      define(inserted, c.place, c.name);
      instructions.push(inserted);
      break;
    case 'deps':
      inserted = { load: 'http_api', deps: [c.name] };
      instructions.push(inserted);
      break;
    case 'apply-module':
      inserted = { apply: { module: c.name, function: 'start' } };
      instructions.push(inserted);
      break;
    case 'extra-key':
      inserted = { update: 'route' };
      define(inserted, 'extra', {});
      define(inserted['extra'] as Obj, c.name, 1);
      instructions.push(inserted);
      break;
  }
  const text = serialise(value, c.how);
  const result = noThrow('parseAppup', () => parseAppup(text, 'appups/1.2.3.yaml'));
  checkChecked(result, { code: /^(appup-[a-z-]+|yaml-[a-z-]+)$/, file: 'appups/1.2.3.yaml', lines: lineCount(text) });
  const appup = result.value;
  if (appup === undefined) return;
  const written = JSON.stringify(appup);
  if (c.name === '__proto__') throw new Error(`__proto__ accepted in ${c.place}`);
  if (c.place !== 'extra-key' && !written.includes(JSON.stringify(c.name))) throw new Error(`${c.place} ${c.name} accepted but not in the appup: silently dropped`);
  if (c.place === 'extra-key') {
    const extra = appup.up[0]!.instructions.at(-1) as unknown as { extra?: object };
    if (extra.extra === undefined || !Object.hasOwn(extra.extra, c.name)) throw new Error(`extra.${c.name} accepted but dropped`);
  }
}

// ------------------------------------------------------------------ manifest.json and config

const configCase = fc.record({ where: fc.constantFrom('target' as const, 'top' as const, 'inside-target' as const), name, how: serialiser });

function checkConfig(c: { where: 'target' | 'top' | 'inside-target'; name: string; how: 'yaml' | 'flow' | 'json' }): void {
  const value: Obj = { defaultTarget: 'local', targets: { local: { socket: 'run/demo.sock' } } };
  const targets = value['targets'] as Obj;
  if (c.where === 'target') define(targets, c.name, { host: '127.0.0.1', port: 7070 });
  if (c.where === 'top') define(value, c.name, 'x');
  if (c.where === 'inside-target') define(targets['local'] as Obj, c.name, 'x');
  const text = serialise(value, c.how);
  const result = noThrow('parseConfig', () => parseConfig(text, CONFIG_FILE));
  checkChecked(result, { code: /^(config-[a-z-]+|yaml-[a-z-]+)$/, file: CONFIG_FILE, lines: lineCount(text) });
  const config = result.value;
  if (config === undefined) return;
  if (c.where !== 'target') throw new Error(`an unknown key ${c.name} was accepted (${c.where}): silently dropped`);
  if (!Object.hasOwn(config.targets ?? {}, c.name)) throw new Error(`target ${c.name} accepted but dropped`);
}

describe('fuzz: prototype keys are refused or kept, never dropped', () => {
  it(
    'release.yaml: reserved names as module, process, dep, export, process module, start and args keys',
    () => {
      fuzz(summary, 'release.yaml', 'reserved names anywhere', releaseCase, checkRelease, { numRuns: runs(3_000), seed: 0x9404 });
    },
    timeoutFor(60_000),
  );

  it(
    'appups: reserved names as instruction modules, deps, apply modules and keys of extra',
    () => {
      fuzz(summary, 'appup', 'reserved names anywhere', appupCase, checkAppup, { numRuns: runs(2_000), seed: 0x9405 });
    },
    timeoutFor(30_000),
  );

  it(
    'relup.config.yaml: reserved names as target names and as unknown keys',
    () => {
      fuzz(summary, 'config', 'reserved names anywhere', configCase, checkConfig, { numRuns: runs(1_000), seed: 0x9406 });
    },
    timeoutFor(30_000),
  );

  it(
    'manifest.json: a reserved key in the manifest or in a file entry is refused',
    async () => {
      const { manifest } = await bundleBytes(demoImage('1.2.3').release, FILES);
      const arb = fc.record({ name, inFile: fc.boolean() });
      fuzz(summary, 'manifest.json', 'reserved keys', arb, ({ name: key, inFile }) => {
        const value = clone(manifest) as Obj;
        define(inFile ? ((value['files'] as Obj[])[0]!) : value, key, inFile ? 'x' : { files: [] });
        const result = noThrow('parseManifest', () => parseManifest(Buffer.from(JSON.stringify(value)), 'b.tar.gz:manifest.json'));
        checkChecked(result, { code: /^bundle-manifest-invalid$/, file: 'b.tar.gz:manifest.json' });
        if (result.value !== undefined) throw new Error(`manifest with an extra ${key} key accepted: silently dropped`);
      }, { numRuns: runs(500), seed: 0x9407 });
    },
    timeoutFor(30_000),
  );
});
