import { hasErrors, type Diagnostic } from '../../diagnostics/diagnostic.js';
import { EXIT_FAILED, EXIT_OK } from '../../errors/errors.js';
import { packRelease } from '../../release/pack-release.js';
import { readReleaseFiles } from '../../release/release-files.js';
import { releaseFromFiles } from '../../release/release-from-files.js';
import { checkReleaseModules } from '../../project/check-modules.js';
import { display, resolveIn } from '../../project/load-project.js';
import type { CommandIo } from '../io.js';
import { projectOptions } from '../project-options.js';
import { printDiagnostics } from '../print-diagnostics.js';
import { resolveReleaseArg } from './resolve-release-arg.js';
import type { BasePackage, Release } from '../../release/release-model.js';
import { buildArtifactsOf, driverFor } from '../../runtime/runtime-driver.js';

export interface PackArgs {
  release: string;
  releases?: string;
  config?: string;
  outDir?: string;
  json?: boolean;
}

/** `relup release pack <version|dir>`: a deterministic bundle with a manifest of sha256 hashes. */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as PackArgs;
  const dir = await resolveReleaseArg(io.cwd, args.release, (await projectOptions(args, io)).releases, 'dir');
  const outDir = args.outDir === undefined ? undefined : resolveIn(io.cwd, args.outDir);
  // Pack refuses what `relup check` refuses: a module its nodes could not load is never shipped.
  const modules = await moduleFindings(dir, display(io.cwd, dir));
  const result = hasErrors(modules) ? { value: undefined, diagnostics: [] } : await packRelease(dir, { displayPath: display(io.cwd, dir), describeBase: (release) => describeBase(release, dir), buildArtifacts: buildArtifactsOf, ...(outDir === undefined ? {} : { outDir }) });
  result.diagnostics = [...modules, ...result.diagnostics];
  printDiagnostics(result.diagnostics, io);
  const packed = result.value;
  if (args.json === true) {
    const body = packed === undefined
      ? { ok: false, diagnostics: result.diagnostics }
      : { ok: true, bundle: display(io.cwd, packed.bundlePath), name: packed.release.name, version: packed.release.version, releaseHash: packed.manifest.releaseHash, files: packed.manifest.files, unchanged: packed.unchanged };
    io.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  } else if (packed !== undefined) {
    const verb = packed.unchanged ? 'already packed, identical' : 'packed';
    io.stdout.write(`${verb}: ${display(io.cwd, packed.bundlePath)}\n  ${packed.release.name} ${packed.release.version}, ${packed.manifest.files.length} file${packed.manifest.files.length === 1 ? '' : 's'}, release hash ${packed.manifest.releaseHash}\n`);
  }
  return packed === undefined ? EXIT_FAILED : EXIT_OK;
}

/** The module checks of the release's runtime; a release.yaml with errors is left to packRelease to report. */
async function moduleFindings(dir: string, displayPath: string): Promise<Diagnostic[]> {
  const read = await readReleaseFiles(dir, { displayPath });
  if (read.value === undefined || read.value.kind !== 'dir') return [];
  const release = releaseFromFiles(read.value, displayPath).value;
  return release === undefined ? [] : checkReleaseModules(release, read.value.files);
}

/** The release's declared packages as installed, from its runtime's driver (the base is recorded in manifest.json). */
async function describeBase(release: Release, dir: string): Promise<BasePackage[]> {
  const driver = await driverFor(release.runtime);
  return (await driver?.describeBase?.(release, dir)) ?? [];
}
