import { existsSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { bundleBytes } from '../../src/release/bundle-bytes.js';
import { packRelease } from '../../src/release/pack-release.js';
import { readBundleBytes, readReleaseFiles } from '../../src/release/release-files.js';
import { verifyRelease } from '../../src/release/verify-release.js';
import { testdir } from '../helpers/testdir.js';
import { demoFiles, demoImage } from '../runtime/helpers/release-image.js';
import { checkDiagnostic, fuzzAsync, runs, Summary, timeoutFor } from './kit.js';

/**
 * Issue 9 items 3, 11, 12, as classes:
 * - every byte of an accepted bundle is covered: bytes appended after the
 *   gzip member or after the tar archive, another member, a mutated byte
 *   anywhere — either refused, or the only bytes that differ are the gzip
 *   header's flags/time/OS byte and the files are the same;
 * - pack and verify agree at the entry limit, whatever the limit and tree;
 * - directory walks over live and system trees never throw and every
 *   finding is located.
 */
const summary = new Summary('bundles and walks');

const FILES = demoFiles('1.2.3');
let original: Buffer | undefined;
async function demoBundle(): Promise<Buffer> {
  original ??= (await bundleBytes(demoImage('1.2.3').release, FILES)).bytes;
  return original;
}

const BUNDLE_CODES = /^(bundle-[a-z-]+|release-[a-z-]+)$/;
const located = (origin: string) => ({ code: BUNDLE_CODES, file: origin });

function sameFiles(a: ReadonlyMap<string, Uint8Array>, b: ReadonlyMap<string, Uint8Array>): boolean {
  return a.size === b.size && [...a].every(([p, bytes]) => b.get(p) !== undefined && Buffer.compare(Buffer.from(bytes), Buffer.from(b.get(p)!)) === 0);
}

type Extra =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'zeros'; n: number }
  | { kind: 'member'; body: Uint8Array }
  | { kind: 'tar-tail'; bytes: Uint8Array; zerosBefore: number };

const extra: fc.Arbitrary<Extra> = fc.oneof(
  fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ kind: fc.constant('zeros' as const), n: fc.integer({ min: 1, max: 4096 }) }),
  fc.record({ kind: fc.constant('member' as const), body: fc.uint8Array({ maxLength: 2048 }) }),
  fc.record({ kind: fc.constant('tar-tail' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 1024 }), zerosBefore: fc.integer({ min: 0, max: 20_000 }) }),
);

/** The demo bundle with `e` added; `zerosOnly` when the addition is tar padding only (which must be accepted). */
function withExtra(bundle: Buffer, e: Extra): { bytes: Buffer; zerosOnly: boolean } {
  switch (e.kind) {
    case 'bytes':
      return { bytes: Buffer.concat([bundle, e.bytes]), zerosOnly: false };
    case 'zeros':
      return { bytes: Buffer.concat([bundle, Buffer.alloc(e.n)]), zerosOnly: false };
    case 'member':
      return { bytes: Buffer.concat([bundle, gzipSync(e.body)]), zerosOnly: false };
    case 'tar-tail': {
      const tail = Buffer.concat([Buffer.alloc(e.zerosBefore), e.bytes]);
      return { bytes: gzipSync(Buffer.concat([gunzipSync(bundle), tail])), zerosOnly: tail.every((b) => b === 0) };
    }
  }
}

type Mutation = { at: number; op: 'flip'; bit: number } | { at: number; op: 'set'; value: number } | { at: number; op: 'cut' };
const mutation: fc.Arbitrary<Mutation[]> = fc.array(
  fc.oneof(
    fc.record({ at: fc.nat(), op: fc.constant('flip' as const), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ at: fc.nat(), op: fc.constant('set' as const), value: fc.integer({ min: 0, max: 255 }) }),
    { weight: 1, arbitrary: fc.record({ at: fc.nat(), op: fc.constant('cut' as const) }) },
  ),
  { minLength: 1, maxLength: 3 },
);

let originalTar: Buffer | undefined;

/** The gzip header bytes that no hash covers: flags' FTEXT bit aside, the time, XFL and OS bytes. */
const UNCOVERED = new Set([3, 4, 5, 6, 7, 8, 9]);

describe('fuzz: bundles and walks', () => {
  it(
    'bytes added after the gzip member or the tar archive are refused; tar zero padding is accepted with the same files',
    async () => {
      const bundle = await demoBundle();
      const reference = (await readBundleBytes(bundle)).value!.files;
      await fuzzAsync(summary, 'bundle', 'bytes added after the member or the archive', extra, async (e) => {
        const { bytes, zerosOnly } = withExtra(bundle, e);
        const read = await readBundleBytes(bytes, { displayPath: 'b.tar.gz' });
        for (const d of read.diagnostics) checkDiagnostic(d, located('b.tar.gz'));
        if (zerosOnly) {
          if (read.value === undefined || !sameFiles(read.value.files, reference)) throw new Error(`zero padding refused: ${JSON.stringify(read.diagnostics)}`);
        } else if (read.value !== undefined) {
          throw new Error(`accepted a bundle with ${e.kind} added`);
        }
        return 1;
      }, { numRuns: runs(1_500), seed: 0x9403 });
    },
    timeoutFor(60_000),
  );

  it(
    'a mutated bundle is refused, or holds the same files and inflates to the same archive (or differs only in gzip header bytes no hash covers)',
    async () => {
      const bundle = await demoBundle();
      const reference = (await readBundleBytes(bundle)).value!.files;
      originalTar = gunzipSync(bundle);
      await fuzzAsync(summary, 'bundle', 'mutated bytes anywhere', mutation, async (ms) => {
        let bytes = Buffer.from(bundle);
        for (const m of ms) {
          const at = m.at % bytes.length;
          if (m.op === 'flip') bytes[at]! ^= 1 << m.bit;
          else if (m.op === 'set') bytes[at] = m.value;
          else bytes = bytes.subarray(0, at);
        }
        const read = await readBundleBytes(bytes, { displayPath: 'b.tar.gz' });
        for (const d of read.diagnostics) checkDiagnostic(d, located('b.tar.gz'));
        if (read.value === undefined) return 1;
        if (!sameFiles(read.value.files, reference)) throw new Error('accepted a bundle whose files differ');
        // Deflate may encode the same bytes differently (here: the unused bits after the last code), but what
        // it inflates to must be the original archive exactly: nothing inside it that the manifest does not cover.
        const changed = [...Array(Math.max(bytes.length, bundle.length)).keys()].filter((i) => bytes[i] !== bundle[i]);
        const inflated = gunzipSync(bytes);
        if (!inflated.equals(originalTar!) && changed.some((i) => !UNCOVERED.has(i))) throw new Error(`accepted a bundle changed at ${changed.slice(0, 10).join(', ')} that inflates to other bytes`);
        return 1;
      }, { numRuns: runs(2_000), seed: 0x9413 });
    },
    timeoutFor(60_000),
  );

  it(
    'pack and verify agree at the entry and byte limits: for any limit and tree around it, the same verdict and code',
    async () => {
      const arb = fc.record({ limit: fc.integer({ min: 2, max: 12 }), delta: fc.integer({ min: -1, max: 2 }), dirs: fc.integer({ min: 0, max: 3 }), own: fc.boolean(), bytesDelta: fc.option(fc.integer({ min: -1, max: 1 })) });
      await fuzzAsync(summary, 'pack/verify', 'entry and byte limit agreement', arb, async ({ limit, delta, dirs, own, bytesDelta }) => {
        const root = await testdir();
        const rel = join(root, 'rel');
        const count = Math.max(2, limit + delta);
        await mkdir(rel);
        await writeFile(join(rel, 'release.yaml'), 'name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  main:\n    file: main.js\n');
        await writeFile(join(rel, 'main.js'), 'x');
        for (let d = 0; d < dirs; d++) await mkdir(join(rel, `d${d}`));
        for (let i = 0; i < count - 2; i++) await writeFile(join(rel, dirs === 0 ? `f${i}.txt` : `d${i % dirs}/f${i}.txt`), `${i}`);
        // A stale manifest.json in the directory is never packed nor counted.
        if (own) await writeFile(join(rel, 'manifest.json'), '{}');
        // The byte limit, when drawn, sits at the release's exact size, one under or one over.
        const bytes = Buffer.byteLength('name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  main:\n    file: main.js\n') + 1 + Array.from({ length: count - 2 }, (_, i) => String(i).length).reduce((a, b) => a + b, 0);
        const limits = { maxEntries: limit, ...(bytesDelta === null ? {} : { maxTotalBytes: bytes + bytesDelta }) };
        const packed = await packRelease(rel, { outDir: join(root, 'out'), limits });
        const verified = await verifyRelease(rel, { limits });
        const errs = (ds: { code: string; severity: string }[]) => ds.filter((d) => d.severity === 'error' && d.code !== 'bundle-manifest-invalid' && !d.code.startsWith('bundle-file') && d.code !== 'bundle-release-hash-mismatch' && d.code !== 'bundle-manifest-mismatch').map((d) => d.code);
        const packErrors = errs(packed.diagnostics);
        const verifyErrors = errs(verified.diagnostics);
        if (JSON.stringify(packErrors) !== JSON.stringify(verifyErrors)) throw new Error(`pack says ${JSON.stringify(packErrors)}, verify says ${JSON.stringify(verifyErrors)} (${count} files, limit ${limit})`);
        if (packed.value !== undefined) {
          const again = await verifyRelease(packed.value.bundlePath, { limits });
          if (!again.ok) throw new Error(`pack wrote a bundle verify refuses: ${JSON.stringify(again.diagnostics.map((d) => d.code))} (${count} files, limit ${limit})`);
        }
        await rm(root, { recursive: true, force: true });
        return 1;
      }, { numRuns: runs(150), seed: 0x9411 });
    },
    timeoutFor(120_000),
  );

  it(
    'walks over live and system trees never throw, stop at the limit, and locate every finding',
    async () => {
      const made = await testdir();
      await writeFile(join(made, 'release.yaml'), 'x');
      await symlink('/nonexistent', join(made, 'dangling'));
      execFileSync('mkfifo', [join(made, 'fifo')]);
      const roots = ['/proc/self', '/proc/self/fd', '/proc/self/task', '/dev', '/usr', '/etc', '/sys/kernel', made].filter((p) => existsSync(p));
      const arb = fc.record({ root: fc.constantFrom(...roots), limit: fc.constantFrom(5, 50, 10_000) });
      await fuzzAsync(summary, 'walk', 'live and system trees', arb, async ({ root, limit }) => {
        let read;
        try {
          read = await readReleaseFiles(root, { limits: { maxEntries: limit, maxFileBytes: 1024 * 1024, maxTotalBytes: 8 * 1024 * 1024 } });
        } catch (e) {
          throw new Error(`readReleaseFiles(${root}) threw ${String(e)}`);
        }
        for (const d of read.diagnostics) {
          checkDiagnostic(d, { code: /^release-[a-z-]+$/, file: d.file ?? '(none)' });
          if (d.file === undefined || !d.file.startsWith(root)) throw new Error(`finding not located in ${root}: ${JSON.stringify(d)}`);
        }
        if (read.diagnostics.length > 101) throw new Error(`${read.diagnostics.length} findings: the walk did not stop`);
        return 1;
      }, { numRuns: runs(60), seed: 0x9412 });
    },
    timeoutFor(120_000),
  );
});
