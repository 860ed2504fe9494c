import { loadConfig, resolveDir, type LoadedConfig } from '../config/load-config.js';
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
