import { hasErrors, warning, type Diagnostic } from '../diagnostics/diagnostic.js';
import { readReleaseFiles } from '../release/release-files.js';
import type { Release } from '../release/release-model.js';
import { driverFor } from '../runtime/runtime-driver.js';
import type { Project } from './load-project.js';

/**
 * Compile and check every module of `release` with its runtime's driver, the
 * way its nodes would load them. A runtime relup has no driver for is said
 * plainly (a warning), never skipped in silence.
 */
export async function checkReleaseModules(release: Release, files: ReadonlyMap<string, Uint8Array>): Promise<Diagnostic[]> {
  const driver = await driverFor(release.runtime);
  if (driver === undefined) {
    return [
      warning(
        'check-runtime-no-driver',
        `the modules of ${release.name} ${release.version} were not compiled: relup has no checker for the ${release.runtime} runtime yet`,
        { file: release.manifestFile },
        'a module that does not load is only found when a node stages it (relup apply --dry-run)',
      ),
    ];
  }
  return driver.checkModules(release, async (path) => {
    const bytes = files.get(path);
    if (bytes === undefined) throw new Error(`${path} is not in the release`);
    return bytes;
  });
}

/** checkReleaseModules for every usable release of a loaded project, in version order; `failed` holds the versions with an error. */
export async function checkProjectModules(project: Project): Promise<{ diagnostics: Diagnostic[]; failed: Set<string>; compiled: number }> {
  const diagnostics: Diagnostic[] = [];
  const failed = new Set<string>();
  let compiled = 0;
  for (const [version, release] of project.catalog.releases) {
    const source = project.catalog.sources.get(version);
    if (source === undefined) continue;
    const read = await readReleaseFiles(source.path, { displayPath: release.origin });
    // The catalog already read this release without errors; a failure now means it changed under us.
    const found = [...read.diagnostics, ...(read.value === undefined ? [] : await checkReleaseModules(release, read.value.files))];
    if (read.value === undefined || hasErrors(found)) failed.add(version);
    if (read.value !== undefined && !found.some((d) => d.code === 'check-runtime-no-driver')) compiled += release.modules.length;
    diagnostics.push(...found);
  }
  return { diagnostics, failed, compiled };
}
