import { hasErrors, sortDiagnostics, type Diagnostic } from '../../diagnostics/diagnostic.js';
import { EXIT_FAILED, EXIT_OK } from '../../errors/errors.js';
import { checkReleaseModules } from '../../project/check-modules.js';
import { readReleaseFiles } from '../../release/release-files.js';
import type { Release } from '../../release/release-model.js';
import { verifyRelease } from '../../release/verify-release.js';
import { display, resolveIn } from '../../project/load-project.js';
import { readPublicKey } from '../../release/bundle-signature.js';
import type { CommandIo } from '../io.js';
import { projectOptions } from '../project-options.js';
import { printDiagnostics } from '../print-diagnostics.js';
import { resolveReleaseArg } from './resolve-release-arg.js';

export interface VerifyArgs {
  release: string;
  publicKey?: string;
  releases?: string;
  config?: string;
  json?: boolean;
}

/** `relup release verify <bundle|dir|version>`: every hash checked, every difference reported. */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as VerifyArgs;
  const dirs = await projectOptions(args, io);
  const path = await resolveReleaseArg(io.cwd, args.release, dirs.releases, 'bundle');
  // --public-key, else publicKey from relup.config.yaml: then the bundle must carry a valid signature.
  const keyPath = args.publicKey !== undefined ? resolveIn(io.cwd, args.publicKey) : dirs.loaded.config.publicKey === undefined ? undefined : resolveIn(dirs.loaded.baseDir, dirs.loaded.config.publicKey);
  const publicKey = keyPath === undefined ? undefined : await readPublicKey(keyPath);
  const verified = await verifyRelease(path, { displayPath: display(io.cwd, path), ...(publicKey === undefined ? {} : { publicKey }) });
  // A release is valid only if its nodes can load it: the same module checks as relup check and release pack.
  const modules = verified.release === undefined ? [] : await moduleFindings(path, verified.release);
  const diagnostics = sortDiagnostics([...verified.diagnostics, ...modules]);
  const report = { ...verified, diagnostics, ok: !hasErrors(diagnostics) };
  if (args.json === true) {
    const { release, ...rest } = report;
    io.stdout.write(`${JSON.stringify({ ...rest, name: release?.name, version: release?.version }, null, 2)}\n`);
    return report.ok ? EXIT_OK : EXIT_FAILED;
  }
  printDiagnostics(report.diagnostics, io, 'stdout');
  const what = report.kind === 'bundle' ? 'bundle' : 'release directory';
  if (report.ok) {
    const files = `${report.filesChecked} file${report.filesChecked === 1 ? '' : 's'}`;
    const checked = report.kind === 'bundle' ? `${files} ${report.filesChecked === 1 ? 'matches' : 'match'} the manifest` : `${files} hashed`;
    io.stdout.write(`✓ ${report.origin}: ${what} ${report.release?.name} ${report.release?.version} verified: ${checked}; release hash ${report.releaseHash}\n`);
  } else {
    const errors = report.diagnostics.filter((d) => d.severity === 'error').length;
    io.stdout.write(`✗ ${report.origin}: verification failed with ${errors} error${errors === 1 ? '' : 's'}\n`);
  }
  return report.ok ? EXIT_OK : EXIT_FAILED;
}

async function moduleFindings(path: string, release: Release): Promise<Diagnostic[]> {
  const read = await readReleaseFiles(path, { displayPath: release.origin });
  return read.value === undefined ? [] : checkReleaseModules(release, read.value.files);
}
