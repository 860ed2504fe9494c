import { readFile, stat } from 'node:fs/promises';
import { MIN_SECRET_BYTES, secretFromText } from '../protocol/auth.js';
import { UserError } from '../errors/errors.js';

/**
 * The shared secret of a TCP control channel, from a file only its owner can
 * read (like an ssh key) — never from a command-line argument, which other
 * users can see in the process list.
 */
export async function readSecretFile(path: string): Promise<Buffer> {
  const info = await stat(path).catch((e: Error) => {
    throw new UserError(`cannot read the secret file ${path}: ${e.message}`, 'create it: head -c 32 /dev/urandom | base64 > FILE && chmod 600 FILE');
  });
  if ((info.mode & 0o077) !== 0) {
    throw new UserError(`the secret file ${path} is readable by others (mode ${(info.mode & 0o777).toString(8)})`, `chmod 600 ${path}`);
  }
  return checked(secretFromText(await readFile(path, 'utf8')), path);
}

export function secretFromEnv(name: string): Buffer {
  const value = process.env[name];
  if (value === undefined || value.trim() === '') throw new UserError(`the environment variable ${name} (named as this target's secretEnv) is not set`, `export ${name}=… with the node's shared secret`);
  return checked(secretFromText(value), `$${name}`);
}

function checked(secret: Buffer, where: string): Buffer {
  if (secret.length < MIN_SECRET_BYTES) throw new UserError(`the secret in ${where} is ${secret.length} bytes; at least ${MIN_SECRET_BYTES} are required`, 'use a long random secret: head -c 32 /dev/urandom | base64');
  return secret;
}
