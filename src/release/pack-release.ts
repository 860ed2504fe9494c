import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { error, hasErrors, warning, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import { parseManifest, type BundleManifest } from './bundle-manifest.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';
import { releaseFromFiles } from './release-from-files.js';
import { BUNDLE_BUILD_DIR, BUNDLE_MANIFEST_FILE, BUNDLE_OWN_FILES, isBuildArtifact } from './release-hash.js';
import { isNotFound, readReleaseFiles, type ReleaseLimits } from './release-files.js';
import type { BasePackage, Release } from './release-model.js';
import { bundleBytes } from './bundle-bytes.js';

export interface PackOptions {
  /** Where to write the bundle; default: the directory holding the release directory. */
  outDir?: string;
  /** How the release directory is shown in diagnostics. */
  displayPath?: string;
  limits?: Partial<ReleaseLimits>;
  /** Replace an existing bundle of the same name whose content differs. */
  overwrite?: boolean;
  /**
   * What the release's declared packages are as installed (name, version,
   * tree hash): recorded in manifest.json. Given by the runtime's driver; the
   * release layer only carries it (the base is data).
   */
  describeBase?: (release: Release) => Promise<BasePackage[]>;
  /**
   * Build artifacts to ship with the release (paths under relup-build/, e.g.
   * compiled Erlang modules), made from its files by the runtime's driver.
   * Listed in manifest.json, outside the release hash (release-hash.ts).
   */
  buildArtifacts?: (release: Release, files: ReadonlyMap<string, Uint8Array>) => Promise<Checked<Map<string, Uint8Array>>>;
}

export interface PackResult {
  bundlePath: string;
  manifest: BundleManifest;
  release: Release;
  /** An identical bundle was already there; nothing was written. */
  unchanged: boolean;
}

/** The bundle file name for a release: `<name>-<version>.tar.gz`. */
export function bundleFileName(release: Pick<Release, 'name' | 'version'>): string {
  return `${release.name}-${release.version}.tar.gz`;
}

/**
 * Pack a valid release directory into `<outDir>/<name>-<version>.tar.gz`:
 * its files plus a manifest.json of sha256 hashes, deterministic bytes,
 * written atomically. Refuses a release with errors, and refuses to replace
 * a bundle holding different content (a rebuilt release is a new version).
 */
export async function packRelease(dir: string, options: PackOptions = {}): Promise<Checked<PackResult>> {
  const displayPath = options.displayPath ?? dir;
  const read = await readReleaseFiles(dir, { displayPath, ...(options.limits === undefined ? {} : { limits: options.limits }) });
  if (read.value === undefined) return { value: undefined, diagnostics: read.diagnostics };
  const tree = read.value;
  if (tree.kind !== 'dir') {
    return refuse(error('pack-source-not-directory', `${displayPath} is a bundle, not a release directory`, { file: displayPath }, 'pack a directory holding release.yaml; to check a bundle run `relup release verify`'));
  }
  const parsed = releaseFromFiles(tree, displayPath);
  const diagnostics: Diagnostic[] = [...read.diagnostics, ...parsed.diagnostics];
  const release = parsed.value;
  if (release === undefined || hasErrors(diagnostics)) return { value: undefined, diagnostics };

  const files = new Map<string, Buffer>();
  for (const [path, bytes] of tree.files) {
    if (BUNDLE_OWN_FILES.has(path)) {
      diagnostics.push(warning('pack-manifest-replaced', `${path} in the release directory is not packed; the bundle gets its own`, { file: `${displayPath}/${path}` }, `remove ${path} from the release directory`));
    } else if (isBuildArtifact(path)) {
      diagnostics.push(warning('pack-build-replaced', `${path} in the release directory is not packed: ${BUNDLE_BUILD_DIR}/ holds the build artifacts relup makes when it packs`, { file: `${displayPath}/${path}` }, `remove ${BUNDLE_BUILD_DIR}/ from the release directory`));
    } else {
      files.set(path, bytes);
    }
  }

  const outDir = options.outDir ?? parentOf(dir);
  const inside = relative(resolve(dir), resolve(outDir));
  if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
    return refuse(error('pack-out-dir-inside-release', `the bundle would be written inside the release ${displayPath}`, { file: displayPath }, 'choose an --out-dir outside the release directory'));
  }
  if (options.describeBase !== undefined && (release.packages ?? []).length > 0) {
    try {
      release.base = await options.describeBase(release);
    } catch (e) {
      return refuse(error('pack-base-unreadable', `cannot record the packages ${displayPath} declares: ${e instanceof Error ? e.message : String(e)}`, { file: release.manifestFile, line: release.packagesLine ?? 1 }, 'install them (npm install) or remove them from packages: in release.yaml'));
    }
  }
  let artifacts = new Map<string, Uint8Array>();
  if (options.buildArtifacts !== undefined) {
    const built = await options.buildArtifacts(release, files);
    diagnostics.push(...built.diagnostics);
    if (built.value === undefined || hasErrors(built.diagnostics)) return { value: undefined, diagnostics };
    artifacts = built.value;
  }
  const { bytes, manifest } = await bundleBytes(release, files, artifacts);
  const bundlePath = join(outDir, bundleFileName(release));

  const existing = await readExisting(bundlePath);
  if (existing !== undefined && existing.equals(bytes)) {
    return { value: { bundlePath, manifest, release, unchanged: true }, diagnostics };
  }
  if (existing !== undefined && options.overwrite !== true && (await existingHash(bundlePath)) !== manifest.releaseHash) {
    return refuse(
      error(
        'pack-bundle-exists',
        `${bundlePath} already exists with different content for version ${release.version}`,
        { file: bundlePath },
        'a rebuilt release is a new version: bump the version in release.yaml (or delete the old bundle if it was never deployed)',
      ),
      diagnostics,
    );
  }
  await mkdir(outDir, { recursive: true });
  await writeFileAtomic(bundlePath, bytes);
  return { value: { bundlePath, manifest, release, unchanged: false }, diagnostics };
}

function refuse(d: Diagnostic, before: Diagnostic[] = []): Checked<PackResult> {
  return { value: undefined, diagnostics: [...before, d] };
}

/** `releases/1.2.3` → `releases`; `.` → the real parent, so the bundle never lands inside the release. */
function parentOf(dir: string): string {
  const parent = dirname(dir);
  return resolve(parent) === resolve(dir) ? dirname(resolve(dir)) : parent;
}

async function readExisting(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** The releaseHash an existing bundle's manifest claims; a same-content rebuild may replace it. */
async function existingHash(path: string): Promise<string | undefined> {
  const read = await readReleaseFiles(path);
  const bytes = read.value?.files.get(BUNDLE_MANIFEST_FILE);
  return bytes === undefined ? undefined : parseManifest(bytes, path).value?.releaseHash;
}
