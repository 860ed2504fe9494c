import { loadConfig, resolveDir, type LoadedConfig } from '../config/load-config.js';
import type { Diagnostic } from '../diagnostics/diagnostic.js';
import type { Project } from '../project/load-project.js';
import type { CommandIo } from './io.js';

export interface ProjectArgs {
  releases?: string;
  appups?: string;
  config?: string;
}

/** The config file and the releases/appups directories a command works on: flag, else config, else ./releases and ./appups. */
export async function projectOptions(args: ProjectArgs, io: CommandIo): Promise<{ loaded: LoadedConfig; releases: string; appups: string }> {
  const loaded = await loadConfig(io.cwd, args.config);
  return { loaded, releases: resolveDir(io.cwd, loaded, args.releases, 'releases'), appups: resolveDir(io.cwd, loaded, args.appups, 'appups') };
}

/** A releases or appups directory that cannot be read is a wrong path: bad input (exit 2), not a finding about the project. */
export function badProjectPaths(project: Project): Diagnostic[] {
  return [...project.catalog.diagnostics, ...project.appupDiagnostics].filter((d) => d.code === 'releases-dir-missing' || d.code === 'appup-dir-unreadable');
}
