import { hasErrors, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import { formatDiagnostic } from '../diagnostics/format-diagnostic.js';
import { UserError } from '../errors/errors.js';
import { bundleBytes } from '../release/bundle-bytes.js';
import type { BasePackage, Release, RuntimeKind } from '../release/release-model.js';

/**
 * What relup's runtime-neutral layers (check, pack) ask of a runtime: to
 * compile and check the modules of a release the way its nodes would, without
 * starting one, and the build artifacts its bundles carry. Each runtime implements it in its own folder
 * (src/runtime/<name>/<name>-driver.ts); this file only maps a runtime kind
 * to its driver, loaded lazily so a command pays only for the runtime it uses.
 */
export interface RuntimeDriver {
  readonly runtime: RuntimeKind;
  /**
   * Diagnostics for every module of `release` that its nodes would refuse to
   * load. `readFile` takes a module's `file` (release-relative, `/`-separated).
   */
  checkModules(release: Release, readFile: (path: string) => Promise<Uint8Array>): Promise<Diagnostic[]>;
  /**
   * The packages `release` declares (its base), as installed where a node
   * started from `releaseDir`'s project would load them: name, version and a
   * hash of the installed tree, recorded in the bundle's manifest.json.
   */
  describeBase?(release: Release, releaseDir: string): Promise<BasePackage[]>;
  /**
   * Build artifacts its nodes load instead of compiling (paths under
   * relup-build/, see src/release/release-hash.ts), made from `files` as the
   * release is packed; errors for modules that do not build. Deterministic:
   * the same files give the same bytes.
   */
  buildArtifacts?(release: Release, files: ReadonlyMap<string, Uint8Array>): Promise<Checked<Map<string, Uint8Array>>>;
}

/** The build artifacts `release`'s runtime ships in its bundles (none for a runtime without a builder). */
export async function buildArtifactsOf(release: Release, files: ReadonlyMap<string, Uint8Array>): Promise<Checked<Map<string, Uint8Array>>> {
  const driver = await driverFor(release.runtime);
  return driver?.buildArtifacts === undefined ? { value: new Map(), diagnostics: [] } : driver.buildArtifacts(release, files);
}

/**
 * The bundle of a release read from a directory, in memory, with the build
 * artifacts of its runtime: what `relup apply` uploads and a node boots when
 * given a directory. Throws a UserError when a module does not build (`relup
 * check` reports the same, located).
 */
export async function packedBundleBytes(release: Release, files: ReadonlyMap<string, Uint8Array>): Promise<Buffer> {
  const built = await buildArtifactsOf(release, files);
  if (built.value === undefined || hasErrors(built.diagnostics)) {
    throw new UserError(`${release.origin} does not build: ${built.diagnostics.filter((d) => d.severity === 'error').map((d) => formatDiagnostic(d, { color: false })).join('; ')}`, 'fix what is said above; `relup check` reports it located');
  }
  return (await bundleBytes(release, files, built.value)).bytes;
}

/** The driver of `runtime`, or undefined when relup has none for it yet (callers say so: they never skip silently). */
export async function driverFor(runtime: RuntimeKind): Promise<RuntimeDriver | undefined> {
  switch (runtime) {
    case 'node':
      return (await import('./node/node-driver.js')).nodeDriver;
    case 'lua':
      return (await import('./lua/lua-driver.js')).luaDriver;
    case 'erlang':
      return (await import('./erlang/erlang-driver.js')).erlangDriver;
    default:
      return undefined;
  }
}

/** Where a file of a release is shown in messages: next to its release.yaml (`releases/1.2.3/route.js`, `demo-1.2.3.tar.gz:route.js`). */
export function releaseFileDisplay(release: Pick<Release, 'manifestFile'>, file: string): string {
  const manifest = release.manifestFile;
  const cut = Math.max(manifest.lastIndexOf('/'), manifest.lastIndexOf(':'));
  return `${manifest.slice(0, cut + 1)}${file}`;
}
