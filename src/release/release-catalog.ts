import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import { error, warning, type Checked, type Diagnostic, type Located } from '../diagnostics/diagnostic.js';
import { suggestion } from '../diagnostics/did-you-mean.js';
import { YamlSource } from '../yaml/yaml-source.js';
import { comparePaths } from './release-path.js';
import { isNotFound, readReleaseFiles, type ReleaseLimits } from './release-files.js';
import type { Release } from './release-model.js';
import { RELEASE_MANIFEST_FILE } from './release-schema.js';
import { verifyFiles } from './verify-release.js';

export interface CatalogSource {
  kind: 'dir' | 'bundle';
  /** The path on disk (as given, joined with the entry name). */
  path: string;
}

export interface Catalog {
  /** The releases directory as shown in messages. */
  dir: string;
  /** Every usable release by version, in ascending semver order. */
  releases: Map<string, Release>;
  /** Where each release of `releases` was read from. */
  sources: Map<string, CatalogSource>;
  /**
   * Versions present on disk whose release has errors (left out of `releases`),
   * with those errors, so a lookup can say "broken" rather than "not found".
   */
  broken?: Map<string, Diagnostic[]>;
  diagnostics: Diagnostic[];
}

export interface CatalogOptions {
  displayPath?: string;
  limits?: Partial<ReleaseLimits>;
}

interface Candidate {
  release: Release;
  source: CatalogSource;
}

/**
 * Every release under `releasesDir`: subdirectories holding a release.yaml
 * and `*.tar.gz` bundles (verified against their manifest). A release with
 * errors is left out and its diagnostics kept. One version claimed by two
 * places with different content is an error and neither is used: a release
 * is immutable, so a rebuild must get a new version.
 */
export async function loadCatalog(releasesDir: string, options: CatalogOptions = {}): Promise<Catalog> {
  const dir = options.displayPath ?? releasesDir;
  const catalog: Catalog = { dir, releases: new Map(), sources: new Map(), broken: new Map(), diagnostics: [] };
  const markBroken = (version: string | undefined, diagnostics: readonly Diagnostic[]): void => {
    if (version !== undefined) catalog.broken!.set(version, [...(catalog.broken!.get(version) ?? []), ...diagnostics.filter((d) => d.severity === 'error')]);
  };
  let names: Dirent[];
  try {
    names = await readdir(releasesDir, { withFileTypes: true });
  } catch (e) {
    if (isNotFound(e)) {
      catalog.diagnostics.push(error('releases-dir-missing', `${dir} does not exist`, { file: dir }, 'create it, or pass the directory holding your releases with --releases'));
    } else if (errnoOf(e) !== undefined) {
      // A known condition (EACCES, EIO, …), not a bug: located, like every other finding of a walk.
      catalog.diagnostics.push(error('release-file-unreadable', `${dir} cannot be read: ${errnoOf(e)} (${(e as Error).message})`, { file: dir }, 'make the releases directory readable by this user'));
    } else {
      throw e;
    }
    return catalog;
  }

  const byVersion = new Map<string, Candidate[]>();
  for (const entry of names.sort((a, b) => comparePaths(a.name, b.name))) {
    if (entry.name.startsWith('.')) continue;
    const path = join(releasesDir, entry.name);
    const displayPath = `${dir.replace(/\/+$/, '')}/${entry.name}`;
    let kind: 'dir' | 'bundle';
    const hasManifest = entry.isDirectory() ? await isFile(join(path, RELEASE_MANIFEST_FILE)) : false;
    if (typeof hasManifest === 'string') {
      catalog.diagnostics.push(error('release-file-unreadable', `${displayPath}/${RELEASE_MANIFEST_FILE} cannot be read: ${hasManifest}`, { file: `${displayPath}/${RELEASE_MANIFEST_FILE}` }, 'make the release directory readable by this user'));
      continue;
    }
    if (hasManifest) kind = 'dir';
    else if (entry.isFile() && entry.name.endsWith('.tar.gz')) kind = 'bundle';
    else continue;

    const read = await readReleaseFiles(path, { displayPath, ...(options.limits === undefined ? {} : { limits: options.limits }) });
    catalog.diagnostics.push(...read.diagnostics);
    if (read.value === undefined) continue;
    const report = verifyFiles(read.value, displayPath);
    catalog.diagnostics.push(...report.diagnostics);
    const release = report.release;
    if (!report.ok || release === undefined) {
      markBroken(release?.version ?? declaredVersion(read.value.files.get(RELEASE_MANIFEST_FILE)), report.diagnostics);
      continue;
    }

    if (kind === 'dir') {
      const named = entry.name.replace(/^v/, '');
      if (semver.valid(named) === named && named !== release.version) {
        catalog.diagnostics.push(
          warning(
            'release-dir-version-mismatch',
            `directory ${entry.name} holds version ${release.version}`,
            versionLocation(read.value.files.get(RELEASE_MANIFEST_FILE), release.manifestFile),
            `rename the directory to ${release.version}, or fix the version in release.yaml`,
          ),
        );
      }
    }
    const list = byVersion.get(release.version) ?? [];
    list.push({ release, source: { kind, path } });
    byVersion.set(release.version, list);
  }

  for (const version of [...byVersion.keys()].sort(semver.compare)) {
    // A directory is the source of truth when a bundle of it has the same content.
    const candidates = byVersion.get(version)!.sort((a, b) => (a.source.kind === b.source.kind ? 0 : a.source.kind === 'dir' ? -1 : 1));
    const [first, ...rest] = candidates as [Candidate, ...Candidate[]];
    const conflicts = rest.filter((c) => c.release.hash !== first.release.hash);
    for (const other of conflicts) {
      catalog.diagnostics.push(
        error(
          'release-version-conflict',
          `version ${version} is claimed by ${first.release.origin} (hash ${first.release.hash.slice(0, 12)}) and by ${other.release.origin} (hash ${other.release.hash.slice(0, 12)}), which differ`,
          { file: other.release.origin },
          'a rebuilt release is a new version: bump the version in release.yaml (and remove the stale copy)',
        ),
      );
    }
    if (conflicts.length > 0) {
      markBroken(version, catalog.diagnostics.filter((d) => d.code === 'release-version-conflict' && d.message.startsWith(`version ${version} `)));
      continue;
    }
    catalog.releases.set(version, first.release);
    catalog.sources.set(version, first.source);
  }
  return catalog;
}

/** The release `version` (a leading `v` is accepted), or `release-not-found` listing the known versions. */
export function findRelease(catalog: Catalog, version: string): Checked<Release> {
  const wanted = version.trim();
  const bare = /^v\d/.test(wanted) ? wanted.slice(1) : wanted;
  const release = catalog.releases.get(bare);
  if (release !== undefined) return { value: release, diagnostics: [] };
  // The release exists but is broken: its own located errors say why, once; "not found" would mislead.
  const broken = catalog.broken?.get(bare);
  if (broken !== undefined && broken.length > 0) return { value: undefined, diagnostics: broken };
  const known = [...catalog.releases.keys()];
  return {
    value: undefined,
    diagnostics: [
      error(
        'release-not-found',
        `release ${wanted} is not in ${catalog.dir}${suggestion(bare, known)}`,
        { file: catalog.dir },
        known.length === 0
          ? `no usable release there; add a release directory (${catalog.dir}/<version>/release.yaml) or a bundle`
          : `known versions: ${known.join(', ')}`,
      ),
    ],
  };
}

/** The version a release.yaml declares, read leniently, for a release that failed its checks. */
function declaredVersion(bytes: Uint8Array | undefined): string | undefined {
  if (bytes === undefined) return undefined;
  try {
    const value = YamlSource.parse(Buffer.from(bytes).toString('utf8'), RELEASE_MANIFEST_FILE).source.toJS();
    const version = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)['version'] : undefined;
    return typeof version === 'string' ? version : undefined;
  } catch {
    return undefined;
  }
}

function versionLocation(bytes: Uint8Array | undefined, manifestFile: string): Located {
  if (bytes === undefined) return { file: manifestFile };
  return YamlSource.parse(Buffer.from(bytes).toString('utf8'), manifestFile).source.locate(['version']);
}

/** Whether `path` is a file; the error code when it cannot be looked at (a finding, not a crash). */
async function isFile(path: string): Promise<boolean | string> {
  try {
    return (await stat(path)).isFile();
  } catch (e) {
    if (isNotFound(e)) return false;
    const code = errnoOf(e);
    if (code !== undefined) return code;
    throw e;
  }
}

function errnoOf(e: unknown): string | undefined {
  return e instanceof Error && 'code' in e && typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) ? e.code : undefined;
}
