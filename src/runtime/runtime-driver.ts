import type { Diagnostic } from '../diagnostics/diagnostic.js';
import type { BasePackage, Release, RuntimeKind } from '../release/release-model.js';

/**
 * What relup's runtime-neutral layers (check, pack) ask of a runtime: for
 * now, to compile and check the modules of a release the way its nodes would,
 * without starting one. Each runtime implements it in its own folder
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
