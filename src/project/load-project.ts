import { isAbsolute, join, relative } from 'node:path';
import type { Appup } from '../appup/appup-model.js';
import { loadAppups } from '../appup/load-appups.js';
import type { Diagnostic } from '../diagnostics/diagnostic.js';
import { loadCatalog, type Catalog } from '../release/release-catalog.js';

/** The releases and appups of a project, read from disk: the input of `plan` and `check`. */
export interface Project {
  catalog: Catalog;
  appups: Map<string, Appup>;
  appupDiagnostics: Diagnostic[];
  releasesDir: string;
  appupsDir: string;
}

export interface ProjectPaths {
  cwd: string;
  /** Absolute, or relative to cwd. */
  releases: string;
  appups: string;
}

export async function loadProject(paths: ProjectPaths): Promise<Project> {
  const releasesDir = resolveIn(paths.cwd, paths.releases);
  const appupsDir = resolveIn(paths.cwd, paths.appups);
  const [catalog, appups] = await Promise.all([
    loadCatalog(releasesDir, { displayPath: display(paths.cwd, releasesDir) }),
    loadAppups(appupsDir, display(paths.cwd, appupsDir)),
  ]);
  return { catalog, appups: appups.appups, appupDiagnostics: appups.diagnostics, releasesDir, appupsDir };
}

export function resolveIn(cwd: string, path: string): string {
  return isAbsolute(path) ? path : join(cwd, path);
}

/** Paths in messages are relative to where the user stands, as they typed them. */
export function display(cwd: string, path: string): string {
  const rel = relative(cwd, path);
  return rel === '' ? '.' : rel.startsWith('..') ? path : rel;
}

/** `1.2.3`, `v1.2.3` → `1.2.3`. */
export function bareVersion(v: string): string {
  return /^v\d/.test(v.trim()) ? v.trim().slice(1) : v.trim();
}
