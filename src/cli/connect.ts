import { Connection } from '../client/connection.js';
import type { LoadedConfig } from '../config/load-config.js';
import { resolveTarget } from '../config/load-config.js';
import { readSecretFile, secretFromEnv } from '../config/read-secret.js';
import { clientProof, newNonce, nodeProof, proofsEqual } from '../protocol/auth.js';

/** The default variable for a TCP target's secret when relup.config.yaml names none. */
export const DEFAULT_SECRET_ENV = 'RELUP_SECRET';

/** Connect to `--target` (or the configured default target), authenticating on TCP. */
export async function connectTarget(loaded: LoadedConfig, target: string | undefined, timeoutMs?: number): Promise<Connection> {
  const resolved = resolveTarget(loaded, target);
  let secret: Buffer | undefined;
  if (resolved.target.kind === 'tcp') {
    if (resolved.secretFile !== undefined) secret = await readSecretFile(resolved.secretFile);
    else if (resolved.secretEnv !== undefined) secret = secretFromEnv(resolved.secretEnv);
    else if (process.env[DEFAULT_SECRET_ENV] !== undefined) secret = secretFromEnv(DEFAULT_SECRET_ENV);
  }
  return Connection.open(resolved.target, {
    clientName: 'relup-cli',
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(secret === undefined
      ? {}
      : {
          authenticate: (hello) => {
            const clientNonce = newNonce();
            const nodeNonce = hello.nonce ?? '';
            return {
              message: { type: 'auth', nonce: clientNonce, proof: clientProof(secret, nodeNonce, clientNonce) },
              verify: (proof: string) => proofsEqual(nodeProof(secret, clientNonce, nodeNonce), proof),
            };
          },
        }),
  });
}
