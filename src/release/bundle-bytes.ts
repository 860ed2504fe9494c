import { buildManifest, serializeManifest, type BundleManifest } from './bundle-manifest.js';
import { BUNDLE_MANIFEST_FILE, BUNDLE_OWN_FILES, isBuildArtifact } from './release-hash.js';
import type { Release } from './release-model.js';
import { comparePaths } from './release-path.js';
import { tarGz } from './tar-writer.js';

/**
 * The deterministic bundle of a release's files (its own manifest.json made
 * afresh), in memory. `artifacts` are build artifacts a runtime's driver made
 * from those files (paths under relup-build/, see release-hash.ts); they
 * replace any the files held, and the manifest lists them like every file.
 */
export async function bundleBytes(release: Release, files: ReadonlyMap<string, Uint8Array>, artifacts: ReadonlyMap<string, Uint8Array> = new Map()): Promise<{ bytes: Buffer; manifest: BundleManifest }> {
  for (const path of artifacts.keys()) if (!isBuildArtifact(path)) throw new Error(`internal: build artifact ${path} is outside relup-build/`);
  const own = new Map(
    [...files, ...artifacts]
      .filter(([path]) => !BUNDLE_OWN_FILES.has(path) && (artifacts.has(path) || !isBuildArtifact(path)))
      .sort(([a], [b]) => comparePaths(a, b)),
  );
  const manifest = buildManifest(release, own);
  return { bytes: await tarGz([[BUNDLE_MANIFEST_FILE, serializeManifest(manifest)], ...own]), manifest };
}
