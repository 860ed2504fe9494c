import { z } from 'zod';

/** `relup.config.yaml`: where releases and appups live, and the nodes the CLI can reach. Documented in the README. */
const unixTarget = z.strictObject({
  socket: z.string().min(1),
});

const tcpTarget = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  /** File holding the shared secret (never on the command line). */
  secretFile: z.string().min(1).optional(),
  /** Environment variable holding the shared secret. */
  secretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
  /** Speak TLS to this node (relup node start --tls-cert/--tls-key), trusting a CA file or one certificate's sha256 fingerprint. */
  tls: z
    .union([
      z.strictObject({ ca: z.string().min(1), servername: z.string().min(1).optional() }),
      z.strictObject({ fingerprint: z.string().regex(/^(sha256:)?([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/, 'a sha256 fingerprint: 64 hex digits, colons allowed') }),
    ])
    .optional(),
});

export const targetSchema = z.union([unixTarget, tcpTarget]);

export const configSchema = z.strictObject({
  releases: z.string().min(1).optional(),
  appups: z.string().min(1).optional(),
  defaultTarget: z.string().min(1).optional(),
  targets: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), targetSchema).optional(),
  /** Public key (PEM) bundles must be signed with. */
  publicKey: z.string().min(1).optional(),
});

export type RelupConfig = z.infer<typeof configSchema>;
export type ConfigTarget = z.infer<typeof targetSchema>;
export const CONFIG_FILE = 'relup.config.yaml';

export function configKeysAt(path: readonly PropertyKey[]): readonly string[] {
  if (path.length === 0) return Object.keys(configSchema.shape);
  if (path[0] === 'targets' && path.length === 2) return ['socket', 'host', 'port', 'secretFile', 'secretEnv', 'tls'];
  if (path[0] === 'targets' && path[2] === 'tls' && path.length === 3) return ['ca', 'servername', 'fingerprint'];
  return [];
}
