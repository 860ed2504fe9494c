import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { bundleBytes } from '../../../src/release/bundle-bytes.js';
import type { ReleaseImage } from '../../../src/runtime/node/release-image.js';
import type { RelupScript, Step } from '../../../src/script/script-schema.js';
import { stepTarget } from '../../../src/runtime/node/transaction.js';
import { DEMO_APPUPS } from '../../helpers/repo-paths.js';
import { demoImage, imageFromFiles, patchedDemo, planScript } from '../../runtime/helpers/release-image.js';

/**
 * The demo releases, the scripts the real planner makes for them, and the
 * variants with real faults in their code (a syntax error, a migration that
 * throws or never returns, a handler that keeps the game busy).
 */

export type Direction = 'up' | 'down';
export type Version = '1.2.2' | '1.2.3';

export const APPUP = readFileSync(join(DEMO_APPUPS, '1.2.3.yaml'), 'utf8');
/** The demo appup with every instruction's timeout at `ms` (the real-hang cells; the steps stay the same). */
export function appupWithTimeouts(ms: number): string {
  return APPUP.replace(/^[ \t]*timeout: \d+\n/gm, '').replace(/^(\s+)- update: (\w+)\n/gm, (_m, indent: string, module: string) => `${indent}- update: ${module}\n${indent}  timeout: ${ms}\n`);
}

/** A pair of releases the cells run on: `old` is what the node runs before the attempt, `next` what the script installs. */
export interface Pair {
  /** Short name, used for temp directories and in the table's footnotes. */
  name: string;
  v122: ReleaseImage;
  v123: ReleaseImage;
  /** The appup to plan with (default: the demo's). */
  appup?: string;
}

export function fromOf(direction: Direction): Version {
  return direction === 'up' ? '1.2.2' : '1.2.3';
}
export function toOf(direction: Direction): Version {
  return direction === 'up' ? '1.2.3' : '1.2.2';
}
export function imageOf(pair: Pair, version: Version): ReleaseImage {
  return version === '1.2.2' ? pair.v122 : pair.v123;
}
export function scriptOf(pair: Pair, direction: Direction): RelupScript {
  const from = imageOf(pair, fromOf(direction));
  const to = imageOf(pair, toOf(direction));
  return planScript(from, to, pair.appup);
}

export const DEMO: Pair = { name: 'demo', v122: demoImage('1.2.2'), v123: demoImage('1.2.3') };
export const UP = scriptOf(DEMO, 'up');
export const DOWN = scriptOf(DEMO, 'down');
export function demoScript(direction: Direction): RelupScript {
  return direction === 'up' ? UP : DOWN;
}

export function describeStep(step: Step): string {
  return `${step.op} ${stepTarget(step)}`.trim();
}

/**
 * Whether traffic sent while step `step` is about to run is held at the
 * node's entry: the node holds outside work from the point-of-no-return step
 * (which then waits for work already running to finish) until the transaction
 * settles (node-steps.ts). The matrix's window opens before step `step` runs
 * (and before a fault injected there), so at the point of no return itself
 * nothing is held yet and the traffic runs at once on the old code, as before it.
 */
export function trafficExpectation(script: RelupScript, step: number): 'handled' | 'held' {
  return step > script.pointOfNoReturn ? 'held' : 'handled';
}

type Edits = Record<string, (text: string) => string>;
const pairs = new Map<string, Pair>();
/** A pair with edited files, memoised by name (so its bundles and directories are made once). */
export function patchedPair(name: string, edits: { '1.2.2'?: Edits; '1.2.3'?: Edits }, appup?: string): Pair {
  const known = pairs.get(name);
  if (known !== undefined) return known;
  const pair: Pair = {
    name,
    v122: edits['1.2.2'] === undefined ? DEMO.v122 : imageFromFiles(patchedDemo('1.2.2', edits['1.2.2']), `${name}/1.2.2`),
    v123: edits['1.2.3'] === undefined ? DEMO.v123 : imageFromFiles(patchedDemo('1.2.3', edits['1.2.3']), `${name}/1.2.3`),
    ...(appup === undefined ? {} : { appup }),
  };
  pairs.set(name, pair);
  return pair;
}

/** The file of each demo module, and where its migrations start. */
const FILE: Record<string, string> = { chat: 'chat.js', config: 'config.js', game: 'game.js', route: 'route.js', http_api: 'http_api.js' };
const MIGRATION_HEAD: Record<string, RegExp> = {
  addNewSettings: /exports\.addNewSettings = \(state\) => \{/,
  removeNewSettings: /exports\.removeNewSettings = \(state\) => \{/,
  addLevels: /exports\.addLevels = \(state, info\) => \{/,
  dropLevels: /exports\.dropLevels = \(state\) => \{/,
  dropErrorCount: /exports\.dropErrorCount = \(state\) => \{/,
  addJoinedAt: /exports\.addJoinedAt = \(state\) => \{/,
  dropJoinedAt: /exports\.dropJoinedAt = \(state\) => \{/,
};

/** `module.js` of the release the script installs fails to compile. */
export function syntaxErrorPair(direction: Direction, module: string): Pair {
  const edit: Edits = { [FILE[module]!]: (t) => `${t}\nexports.broken = () => => 1;\n` };
  return patchedPair(`syntax-${module}-${direction}`, direction === 'up' ? { '1.2.3': edit } : { '1.2.2': edit });
}

/** The migration `fn` (in 1.2.3, which holds both directions' migrations) mutates the state in place, then throws. */
export function throwingMigrationPair(module: string, fn: string): Pair {
  const head = MIGRATION_HEAD[fn]!;
  const poison = module === 'game' ? 'for (const p of Object.values(state.players ?? {})) p.score = -1;' : module === 'config' ? 'state.settings.timeout = -1;' : module === 'chat' ? 'state.said = -1;' : 'state.accessCount = -1;';
  return patchedPair(`throwing-${fn}`, {
    '1.2.3': { [FILE[module]!]: (t) => t.replace(head, (m) => `${m}\n  ${poison}\n  throw new Error('${fn} exploded');`) },
  });
}

/** The migration `fn` is async and never resolves; every instruction's timeout is 80 ms. */
export function hangingMigrationPair(module: string, fn: string): Pair {
  const head = MIGRATION_HEAD[fn]!;
  return patchedPair(
    `hanging-${fn}`,
    { '1.2.3': { [FILE[module]!]: (t) => t.replace(head, (m) => m.replace('(state', 'async (state').concat('\n  await new Promise(() => {});')) } },
    appupWithTimeouts(80),
  );
}

/** Both versions' game handles `{ type: 'sleep', ms }` by keeping the process busy that long; timeouts 80 ms. */
export function busyGamePair(): Pair {
  const sleepy = (t: string) => t.replace("case 'stats':", "case 'sleep':\n      return new Promise((r) => setTimeout(() => r({ reply: 'slept', state }), msg.ms));\n    case 'stats':");
  return patchedPair('busy-game', { '1.2.2': { 'game.js': sleepy }, '1.2.3': { 'game.js': sleepy } }, appupWithTimeouts(80));
}

/** The node runs a release whose version is neither end of the script (the version guard must refuse). */
export function otherVersionImage(direction: Direction): ReleaseImage {
  return images(`other-${direction}`, () => otherVersion(direction));
}
function otherVersion(direction: Direction): ReleaseImage {
  const [base, other] = direction === 'up' ? (['1.2.2', '1.2.1'] as const) : (['1.2.3', '1.2.4'] as const);
  return imageFromFiles(patchedDemo(base, { 'release.yaml': (t) => t.replace(`version: ${base}`, `version: ${other}`) }), `other-${other}`);
}

/** The release the script installs, with one file changed after planning: its hash no longer matches. */
export function tamperedImage(direction: Direction): ReleaseImage {
  return images(`tampered-${direction}`, () => tampered(direction));
}
function tampered(direction: Direction): ReleaseImage {
  const v = toOf(direction);
  return imageFromFiles(patchedDemo(v, { 'route.js': (t) => `${t}\n// tampered\n` }), `tampered-${v}`);
}

const imageCache = new Map<string, ReleaseImage>();
function images(key: string, make: () => ReleaseImage): ReleaseImage {
  let image = imageCache.get(key);
  if (image === undefined) imageCache.set(key, (image = make()));
  return image;
}

const bundles = new WeakMap<ReleaseImage, Promise<string>>();
/** The image as an uploaded bundle (base64), memoised. */
export function bundleOf(image: ReleaseImage): Promise<string> {
  let b = bundles.get(image);
  if (b === undefined) {
    b = bundleBytes(image.release, image.files).then((r) => r.bytes.toString('base64'));
    bundles.set(image, b);
  }
  return b;
}

const dirs = new Map<ReleaseImage, Promise<string>>();
let root: Promise<string> | undefined;
/** The image written out as a release directory (NodeHost boots from a path), memoised under one temp root. */
export function releaseDirOf(image: ReleaseImage): Promise<string> {
  let d = dirs.get(image);
  if (d === undefined) {
    d = (async () => {
      root ??= mkdtemp(join(tmpdir(), 'relup-fault-releases-'));
      const dir = join(await root, `${dirs.size}-${image.release.version}`);
      for (const [path, bytes] of image.files) {
        await mkdir(dirname(join(dir, path)), { recursive: true });
        await writeFile(join(dir, path), bytes);
      }
      return dir;
    })();
    dirs.set(image, d);
  }
  return d;
}

/** Remove the release directories written by releaseDirOf. */
export async function removeReleaseDirs(): Promise<void> {
  if (root !== undefined) await rm(await root, { recursive: true, force: true });
  root = undefined;
  dirs.clear();
}

// --- states ---

/** JSON with every object's keys sorted: equal states serialise to equal strings. */
export function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]));
  }
  return value;
}

/** The paths where two states differ, as `path: expected → actual`. */
export function diffStates(expected: unknown, actual: unknown, path = ''): string[] {
  if (canonical(expected) === canonical(actual)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(expected) && isObj(actual)) {
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
    return keys.flatMap((k) => diffStates(expected[k], actual[k], path === '' ? k : `${path}.${k}`));
  }
  const show = (v: unknown) => (v === undefined ? '(missing)' : JSON.stringify(v));
  return [`${path}: ${show(expected)} → ${show(actual)}`];
}

export interface States {
  modules: Record<string, unknown>;
  processes: Record<string, unknown>;
}
