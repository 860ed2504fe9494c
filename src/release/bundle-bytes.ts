import { buildManifest, serializeManifest, type BundleManifest } from './bundle-manifest.js';
import { BUNDLE_MANIFEST_FILE, BUNDLE_OWN_FILES } from './release-hash.js';
import type { Release } from './release-model.js';
import { tarGz } from './tar-writer.js';

/** The deterministic bundle of a release's files (its own manifest.json made afresh), in memory. */
export async function bundleBytes(release: Release, files: ReadonlyMap<string, Uint8Array>): Promise<{ bytes: Buffer; manifest: BundleManifest }> {
  const own = new Map([...files].filter(([path]) => !BUNDLE_OWN_FILES.has(path)));
  const manifest = buildManifest(release, own);
  return { bytes: await tarGz([[BUNDLE_MANIFEST_FILE, serializeManifest(manifest)], ...own]), manifest };
}
