import { createHash } from 'node:crypto';
import { comparePaths } from './release-path.js';

/** Files a bundle adds about itself; they describe the release and are not part of it. */
export const BUNDLE_MANIFEST_FILE = 'manifest.json';
export const BUNDLE_SIGNATURE_FILE = 'manifest.sig';
export const BUNDLE_OWN_FILES: ReadonlySet<string> = new Set([BUNDLE_MANIFEST_FILE, BUNDLE_SIGNATURE_FILE]);

/**
 * Where a bundle keeps build artifacts: files a runtime's driver derived from
 * the release's files when it was packed (compiled Erlang `.beam`s). They are
 * listed in manifest.json, so verification and the signature cover them, but
 * they are not part of the release hash: the release is its sources, so the
 * same release packed with another compiler version keeps its identity.
 */
export const BUNDLE_BUILD_DIR = 'relup-build';

/** Whether `path` is a bundle's build artifact (under BUNDLE_BUILD_DIR). */
export function isBuildArtifact(path: string): boolean {
  return path.startsWith(`${BUNDLE_BUILD_DIR}/`);
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The release hash: sha256 of one line `<file sha256>  <path>\n` per file,
 * sorted by path (code-unit order), the bundle's own files and build
 * artifacts excluded. Paths
 * never hold control characters (see release-path.ts), so lines are unambiguous.
 */
export function releaseHash(files: ReadonlyMap<string, Uint8Array>): string {
  const entries: { path: string; sha256: string }[] = [];
  for (const [path, bytes] of files) {
    if (!BUNDLE_OWN_FILES.has(path) && !isBuildArtifact(path)) entries.push({ path, sha256: sha256Hex(bytes) });
  }
  return releaseHashOf(entries);
}

/** The same hash from already-computed file hashes (a bundle manifest's `files`). */
export function releaseHashOf(entries: Iterable<{ path: string; sha256: string }>): string {
  const lines = [...entries]
    .filter((e) => !BUNDLE_OWN_FILES.has(e.path) && !isBuildArtifact(e.path))
    .sort((a, b) => comparePaths(a.path, b.path))
    .map((e) => `${e.sha256}  ${e.path}\n`);
  return sha256Hex(lines.join(''));
}
