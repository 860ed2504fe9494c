import fc from 'fast-check';
import semver from 'semver';
import { describe, it } from 'vitest';
import { parse } from 'yaml';
import { bundleBytes } from '../../src/release/bundle-bytes.js';
import { parseManifest, serializeManifest, type BundleManifest } from '../../src/release/bundle-manifest.js';
import { manifestFileOf, releaseFromFiles } from '../../src/release/release-from-files.js';
import type { ReleaseFiles } from '../../src/release/release-files.js';
import { demoFiles, demoImage } from '../runtime/helpers/release-image.js';
import { checkChecked, fuzz, lineCount, noThrow, runs, Summary, timeoutFor } from './kit.js';
import { JSON_TOKENS, keysOf, mutants, YAML_TOKENS, type Mutant } from './mutate.js';

/**
 * release.yaml (releaseFromFiles: the path every release takes, from a
 * directory, a bundle or an upload) and a bundle's manifest.json
 * (parseManifest), mutated from the demo release 1.2.3.
 */
const summary = new Summary('release manifests');

const FILES = demoFiles('1.2.3');
const RELEASE_YAML = FILES.get('release.yaml')!.toString('utf8');
const RELEASE_VALUE = parse(RELEASE_YAML) as unknown;
const MODULE_FILES = [...FILES.keys()].filter((p) => p !== 'release.yaml');

const utf8 = new TextDecoder('utf-8', { fatal: true });
const isUtf8 = (b: Uint8Array) => {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
};

/** The rest of the tree changes too, now and then: a module file gone, an extra one, the release.yaml itself absent. */
type TreeEdit = { op: 'none' } | { op: 'drop'; at: number } | { op: 'extra'; path: string } | { op: 'no-manifest' };
const treeEdit: fc.Arbitrary<TreeEdit> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ op: 'none' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('drop' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('extra' as const), path: fc.constantFrom('lib/new.js', 'config.js.bak', 'manifest.json', 'a b.js', 'é.js') }) },
  { weight: 1, arbitrary: fc.constant({ op: 'no-manifest' as const }) },
);

interface ReleaseCase {
  yaml: Mutant;
  edit: TreeEdit;
  kind: 'dir' | 'bundle';
  origin: string;
}

const releaseCase: fc.Arbitrary<ReleaseCase> = fc.record({
  yaml: mutants({ text: RELEASE_YAML, value: RELEASE_VALUE }, { serialisers: ['yaml', 'yaml', 'yaml-flow', 'json'], tokens: YAML_TOKENS, keys: keysOf(RELEASE_VALUE), share: true }),
  edit: treeEdit,
  kind: fc.constantFrom('dir' as const, 'bundle' as const),
  origin: fc.constantFrom('releases/1.2.3', 'releases/1.2.3/', 'releases/demo-1.2.3.tar.gz', 'uploaded bundle'),
});

function treeOf(c: ReleaseCase): ReleaseFiles {
  const files = new Map(FILES);
  files.set('release.yaml', c.yaml.bytes);
  if (c.edit.op === 'drop') files.delete(MODULE_FILES[c.edit.at % MODULE_FILES.length]!);
  if (c.edit.op === 'extra') files.set(c.edit.path, Buffer.from('exports.x = 1;\n'));
  if (c.edit.op === 'no-manifest') files.delete('release.yaml');
  return { files, kind: c.kind, origin: c.origin };
}

function checkRelease(c: ReleaseCase): void {
  const tree = treeOf(c);
  const file = manifestFileOf(tree, c.origin);
  const result = noThrow('releaseFromFiles', () => releaseFromFiles(tree, c.origin));
  const readable = isUtf8(c.yaml.bytes) && c.edit.op !== 'no-manifest';
  checkChecked(result, {
    code: /^(release-[a-z-]+|yaml-syntax|yaml-reserved-key|yaml-too-large)$/,
    file,
    lines: lineCount(c.yaml.bytes.toString('utf8')),
    // Only when there is no YAML to point into: no release.yaml, or one that is not UTF-8.
    lineless: (d) => !readable && (d.code === 'release-yaml-missing' || d.code === 'release-invalid'),
  });
  const r = result.value;
  if (r === undefined) return;
  // What the planner relies on, for any release.yaml that was accepted.
  const names = new Set(r.modules.map((m) => m.name));
  const problems = [
    !/^[a-z0-9][a-z0-9._-]*$/.test(r.name) && 'name',
    semver.valid(r.version) !== r.version && 'version',
    !['node', 'erlang', 'lua'].includes(r.runtime) && 'runtime',
    !/^[0-9a-f]{64}$/.test(r.hash) && 'hash',
    r.modules.some((m) => !tree.files.has(m.file) || !/^[0-9a-f]{64}$/.test(m.hash) || m.line < 1) && 'module file',
    r.modules.some((m) => m.deps.some((d) => d === m.name || !names.has(d))) && 'deps',
    r.processes.some((p) => !names.has(p.module) || p.line < 1) && 'process module',
    r.modules.some((m, i) => i > 0 && r.modules[i - 1]!.name >= m.name) && 'module order',
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`accepted a release with a bad ${problems.join(', ')}`);
}

// ------------------------------------------------------------------ manifest.json

const BUNDLE_FILE = 'releases/demo-1.2.3.tar.gz:manifest.json';

function checkManifest(bytes: Buffer): void {
  const result = noThrow('parseManifest', () => parseManifest(bytes, BUNDLE_FILE));
  checkChecked(result, { code: /^bundle-manifest-invalid$/, file: BUNDLE_FILE });
  if (result.diagnostics.length > 0 && result.value !== undefined) throw new Error('a value with diagnostics');
  const m = result.value;
  if (m === undefined) return;
  // An accepted manifest is format 1, sorted, and survives being written and read again unchanged.
  const again = parseManifest(serializeManifest(m), BUNDLE_FILE).value;
  if (JSON.stringify(again) !== JSON.stringify(m)) throw new Error(`manifest does not round-trip: ${JSON.stringify(m).slice(0, 500)}`);
  if (m.files.some((f, i) => i > 0 && m.files[i - 1]!.path >= f.path)) throw new Error('accepted unsorted files');
}

describe('fuzz: release manifests', () => {
  it(
    'release.yaml: mutants of the demo 1.2.3 never throw, every diagnostic is coded, located and in release.yaml',
    () => {
      fuzz(summary, 'release.yaml', 'mutants of demo 1.2.3', releaseCase, checkRelease, { numRuns: runs(10_000), seed: 0x7e1ea5e });
    },
    timeoutFor(150_000),
  );

  it(
    'manifest.json: mutants of a real manifest never throw, every rejection is bundle-manifest-invalid, an accepted one round-trips',
    async () => {
      const { manifest } = await bundleBytes(demoImage('1.2.3').release, FILES);
      const seed: BundleManifest = manifest;
      const text = serializeManifest(seed).toString('utf8');
      const arb = mutants({ text, value: JSON.parse(text) as unknown }, { serialisers: ['json', 'json-pretty'], tokens: JSON_TOKENS, keys: keysOf(seed), share: false });
      fuzz(summary, 'manifest.json', 'mutants of the demo 1.2.3 manifest', arb.map((m) => m.bytes), checkManifest, { numRuns: runs(10_000), seed: 0x3a41f35 });
    },
    timeoutFor(30_000),
  );
});
