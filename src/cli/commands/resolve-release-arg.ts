import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../errors/errors.js';
import { bareVersion, display, resolveIn } from '../../project/load-project.js';

/**
 * A release argument is a path (directory or bundle) when one exists there,
 * otherwise a version looked up in the releases directory: its bundle
 * `<name>-<version>.tar.gz` when `prefer` is 'bundle' and one exists, else its directory.
 */
export async function resolveReleaseArg(cwd: string, arg: string, releases: string, prefer: 'dir' | 'bundle'): Promise<string> {
  const asPath = resolveIn(cwd, arg);
  if (await exists(asPath)) return asPath;
  const version = bareVersion(arg);
  const releasesDir = resolveIn(cwd, releases);
  if (prefer === 'bundle') {
    const names = await readdir(releasesDir).catch(() => [] as string[]);
    const bundle = names.filter((n) => n.endsWith(`-${version}.tar.gz`)).sort()[0];
    if (bundle !== undefined) return join(releasesDir, bundle);
  }
  const dir = join(releasesDir, version);
  if (await exists(dir)) return dir;
  throw new UserError(`no release "${arg}": neither a path nor a version in ${display(cwd, releasesDir)}`, `list them with: ls ${display(cwd, releasesDir)}`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
