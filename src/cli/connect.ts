import { readFile } from 'node:fs/promises';
import { Connection, type TlsTrust } from '../client/connection.js';
import type { LoadedConfig, ResolvedTarget } from '../config/load-config.js';
import { resolveTarget } from '../config/load-config.js';
import { readSecretFile, secretFromEnv } from '../config/read-secret.js';
import { UserError } from '../errors/errors.js';

/** The default variable for a TCP target's secret when relup.config.yaml names none. */
export const DEFAULT_SECRET_ENV = 'RELUP_SECRET';

/** Connect to `--target` (or the configured default target), authenticating on TCP, over TLS when the target says so. */
export async function connectTarget(loaded: LoadedConfig, target: string | undefined, timeoutMs?: number): Promise<Connection> {
  const resolved = resolveTarget(loaded, target);
  let secret: Buffer | undefined;
  if (resolved.target.kind === 'tcp') {
    if (resolved.secretFile !== undefined) secret = await readSecretFile(resolved.secretFile);
    else if (resolved.secretEnv !== undefined) secret = secretFromEnv(resolved.secretEnv);
    else if (process.env[DEFAULT_SECRET_ENV] !== undefined) secret = secretFromEnv(DEFAULT_SECRET_ENV);
  }
  const tls = await tlsTrust(resolved);
  return Connection.open(resolved.target, {
    clientName: 'relup-cli',
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(secret === undefined ? {} : { secret }),
    ...(tls === undefined ? {} : { tls }),
  });
}

async function tlsTrust(resolved: ResolvedTarget): Promise<TlsTrust | undefined> {
  const tls = resolved.tls;
  if (tls === undefined) return undefined;
  if ('fingerprint' in tls) return { fingerprint: tls.fingerprint };
  const ca = await readFile(tls.caFile).catch((e: Error) => {
    throw new UserError(`cannot read the TLS CA file ${tls.caFile}: ${e.message}`, 'point tls.ca of this target in relup.config.yaml at the PEM file of the CA (or the node certificate) to trust');
  });
  return { ca, ...(tls.servername === undefined ? {} : { servername: tls.servername }) };
}
