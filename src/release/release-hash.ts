import { createHash } from 'node:crypto';
import { comparePaths } from './release-path.js';

/** Files a bundle adds about itself; they describe the release and are not part of it. */
export const BUNDLE_MANIFEST_FILE = 'manifest.json';
export const BUNDLE_SIGNATURE_FILE = 'manifest.sig';
export const BUNDLE_OWN_FILES: ReadonlySet<string> = new Set([BUNDLE_MANIFEST_FILE, BUNDLE_SIGNATURE_FILE]);

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The release hash: sha256 of one line `<file sha256>  <path>\n` per file,
 * sorted by path (code-unit order), the bundle's own files excluded. Paths
 * never hold control characters (see release-path.ts), so lines are unambiguous.
 */
export function releaseHash(files: ReadonlyMap<string, Uint8Array>): string {
  const entries: { path: string; sha256: string }[] = [];
  for (const [path, bytes] of files) {
    if (!BUNDLE_OWN_FILES.has(path)) entries.push({ path, sha256: sha256Hex(bytes) });
  }
  return releaseHashOf(entries);
}

/** The same hash from already-computed file hashes (a bundle manifest's `files`). */
export function releaseHashOf(entries: Iterable<{ path: string; sha256: string }>): string {
  const lines = [...entries]
    .filter((e) => !BUNDLE_OWN_FILES.has(e.path))
    .sort((a, b) => comparePaths(a.path, b.path))
    .map((e) => `${e.sha256}  ${e.path}\n`);
  return sha256Hex(lines.join(''));
}
