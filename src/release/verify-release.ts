import type { KeyObject } from 'node:crypto';
import { error, hasErrors, sortDiagnostics, type Diagnostic } from '../diagnostics/diagnostic.js';
import { checkSignature } from './bundle-signature.js';
import { checkAgainstManifest, parseManifest, type BundleManifest } from './bundle-manifest.js';
import { releaseFromFiles } from './release-from-files.js';
import { BUNDLE_MANIFEST_FILE, releaseHash } from './release-hash.js';
import { readReleaseFiles, type ReadOptions, type ReleaseFiles } from './release-files.js';
import type { Release } from './release-model.js';

/** Everything `relup release verify` prints, as data (also its `--json`). */
export interface VerifyReport {
  /** No error among `diagnostics`. */
  ok: boolean;
  /** Undefined when the path could not be read as a release at all. */
  kind: 'dir' | 'bundle' | undefined;
  origin: string;
  /** The parsed release, when release.yaml is valid (even if a hash check failed: look at `ok`). */
  release: Release | undefined;
  /** The release hash computed from the files actually present. */
  releaseHash: string | undefined;
  /** The bundle's manifest.json, when present and valid. */
  manifest: BundleManifest | undefined;
  /** Files whose size and sha256 were checked against the manifest, or hashed when there is none. */
  filesChecked: number;
  diagnostics: Diagnostic[];
}

/**
 * Check a bundle against its manifest.json (every file, each difference
 * reported) and its release.yaml; or validate a release directory. A
 * directory holding a manifest.json (an unpacked bundle) is checked against it too.
 */
export async function verifyRelease(path: string, options: ReadOptions & { publicKey?: KeyObject } = {}): Promise<VerifyReport> {
  const origin = options.displayPath ?? path;
  const read = await readReleaseFiles(path, options);
  if (read.value === undefined) {
    return { ok: false, kind: undefined, origin, release: undefined, releaseHash: undefined, manifest: undefined, filesChecked: 0, diagnostics: read.diagnostics };
  }
  const report = verifyFiles(read.value, origin);
  const signature = options.publicKey === undefined ? [] : read.value.kind === 'bundle' ? checkSignature(read.value.files, options.publicKey, origin) : [error('release-unsigned-directory', `${origin} is a directory; only a bundle can carry a signature`, { file: origin }, 'pack and sign it: relup release pack, then relup release sign')];
  const diagnostics = sortDiagnostics([...read.diagnostics, ...signature, ...report.diagnostics]);
  return { ...report, ok: !hasErrors(diagnostics), diagnostics };
}

/** The checks of `verifyRelease` on a tree already in memory. */
export function verifyFiles(tree: ReleaseFiles, displayPath: string = tree.origin): VerifyReport {
  const sep = tree.kind === 'dir' ? '/' : ':';
  const manifestFile = `${displayPath.replace(/\/+$/, '')}${sep}${BUNDLE_MANIFEST_FILE}`;
  const diagnostics: Diagnostic[] = [];
  let manifest: BundleManifest | undefined;
  let filesChecked = tree.files.size;

  const manifestBytes = tree.files.get(BUNDLE_MANIFEST_FILE);
  if (manifestBytes === undefined) {
    if (tree.kind === 'bundle') {
      diagnostics.push(
        error('bundle-manifest-missing', `${displayPath} has no ${BUNDLE_MANIFEST_FILE}, so its files cannot be verified`, { file: displayPath }, 'build bundles with `relup release pack`'),
      );
      filesChecked = 0;
    }
  } else {
    const parsed = parseManifest(manifestBytes, manifestFile);
    diagnostics.push(...parsed.diagnostics);
    manifest = parsed.value;
    filesChecked = 0;
    if (manifest !== undefined) {
      const check = checkAgainstManifest(tree.files, manifest, displayPath.replace(/\/+$/, ''), sep);
      diagnostics.push(...check.diagnostics);
      filesChecked = check.filesChecked;
    }
  }

  const parsed = releaseFromFiles(tree, displayPath);
  diagnostics.push(...parsed.diagnostics);
  const release = parsed.value;
  if (release !== undefined && manifest !== undefined) {
    for (const key of ['name', 'version', 'runtime'] as const) {
      if (release[key] !== manifest[key]) {
        diagnostics.push(
          error(
            'bundle-manifest-mismatch',
            `manifest.json says ${key} ${JSON.stringify(manifest[key])} but release.yaml says ${JSON.stringify(release[key])}`,
            { file: manifestFile },
            'the bundle was changed after it was packed; rebuild it with `relup release pack`',
          ),
        );
      }
    }
  }
  const sorted = sortDiagnostics(diagnostics);
  return {
    ok: !hasErrors(sorted),
    kind: tree.kind,
    origin: displayPath,
    release,
    releaseHash: releaseHash(tree.files),
    manifest,
    filesChecked,
    diagnostics: sorted,
  };
}
