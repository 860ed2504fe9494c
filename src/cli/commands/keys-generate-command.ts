import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_OK, UserError } from '../../errors/errors.js';
import { generateKeys } from '../../release/bundle-signature.js';
import { display, resolveIn } from '../../project/load-project.js';
import type { CommandIo } from '../io.js';

export interface KeysGenerateArgs {
  outDir: string;
  name: string;
  json?: boolean;
}

/** `relup keys generate`: an ed25519 key pair for signing bundles; the private key is written 0600 and never overwritten. */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as KeysGenerateArgs;
  const dir = resolveIn(io.cwd, args.outDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = generateKeys();
  const privatePath = join(dir, `${args.name}.key`);
  const publicPath = join(dir, `${args.name}.pub`);
  await writeNew(privatePath, keys.privateKeyPem, 0o600);
  await writeNew(publicPath, keys.publicKeyPem, 0o644);
  const shown = { privateKey: display(io.cwd, privatePath), publicKey: display(io.cwd, publicPath), fingerprint: keys.fingerprint };
  if (args.json === true) io.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
  else {
    io.stdout.write(`private key: ${shown.privateKey} (keep it secret; sign with: relup release sign <bundle> --key ${shown.privateKey})\n`);
    io.stdout.write(`public key:  ${shown.publicKey} (give it to nodes: relup node start --public-key ${shown.publicKey}, or publicKey in relup.config.yaml)\n`);
    io.stdout.write(`fingerprint: ${keys.fingerprint}\n`);
  }
  return EXIT_OK;
}

/** Exclusive create: an existing key is never replaced by accident. */
async function writeNew(path: string, text: string, mode: number): Promise<void> {
  const file = await open(path, 'wx', mode).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EEXIST') throw new UserError(`${path} already exists; relup never overwrites a key`, 'choose another --name or --out-dir, or remove the old key yourself');
    throw e;
  });
  try {
    await file.writeFile(text);
  } finally {
    await file.close();
  }
}
