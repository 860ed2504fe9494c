import { EXIT_FAILED, EXIT_OK } from '../../errors/errors.js';
import { readPrivateKey } from '../../release/bundle-signature.js';
import { signBundle } from '../../release/sign-bundle.js';
import { display, resolveIn } from '../../project/load-project.js';
import type { CommandIo } from '../io.js';
import { printDiagnostics } from '../print-diagnostics.js';
import { projectOptions } from '../project-options.js';
import { resolveReleaseArg } from './resolve-release-arg.js';

export interface SignArgs {
  release: string;
  key: string;
  releases?: string;
  config?: string;
  json?: boolean;
}

/** `relup release sign <bundle|version> --key <private key>`: add an ed25519 signature of the bundle's manifest. */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as SignArgs;
  const path = await resolveReleaseArg(io.cwd, args.release, (await projectOptions(args, io)).releases, 'bundle');
  const key = await readPrivateKey(resolveIn(io.cwd, args.key));
  const result = await signBundle(path, key, display(io.cwd, path));
  printDiagnostics(result.diagnostics, io);
  if (args.json === true) io.stdout.write(`${JSON.stringify(result.value === undefined ? { ok: false, diagnostics: result.diagnostics } : { ok: true, bundle: display(io.cwd, path), key: result.value.fingerprint }, null, 2)}\n`);
  else if (result.value !== undefined) io.stdout.write(`signed ${display(io.cwd, path)} with key ${result.value.fingerprint}\n`);
  return result.value === undefined ? EXIT_FAILED : EXIT_OK;
}
