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

/** A health check: an HTTP path on the node's service and/or a function of the release (docs/fleet.md). */
export const healthSchema = z.strictObject({
  /** GET this path on the node's HTTP service (its first server's port); healthy when it answers 2xx. */
  path: z.string().regex(/^\//, 'a path starting with /').optional(),
  /** Call this function of the running release (protocol `invoke`); healthy when it returns true or { ok: true }. */
  invoke: z.strictObject({ module: z.string().min(1), function: z.string().min(1), args: z.array(z.unknown()).optional() }).optional(),
  /** Each check gives up after this many ms. */
  timeoutMs: z.number().int().min(1).max(600_000).optional(),
  /** During a soak, check this often (ms). */
  intervalMs: z.number().int().min(10).max(3_600_000).optional(),
});

/** A named group of targets rolled out together by `relup apply --fleet NAME` (docs/fleet.md). */
export const fleetSchema = z.strictObject({
  targets: z.array(z.string().min(1)).min(1),
  /** Nodes upgraded first, alone, before any wave. */
  canary: z.number().int().min(0).optional(),
  /** Nodes per wave after the canary. */
  waveSize: z.number().int().min(1).optional(),
  /** Nodes of one wave upgraded at the same time. */
  concurrency: z.number().int().min(1).optional(),
  /** When a node fails: roll back every node this rollout upgraded, or leave them and report. */
  onFailure: z.enum(['rollback', 'leave']).optional(),
  health: healthSchema.optional(),
  /** Keep each node's new release not permanent this long, checking health; e.g. "30s", "2m". */
  soak: z.string().regex(/^\d+(ms|s|m|h)$/, 'a duration such as 500ms, 30s, 2m or 1h').optional(),
});

export const configSchema = z.strictObject({
  releases: z.string().min(1).optional(),
  appups: z.string().min(1).optional(),
  defaultTarget: z.string().min(1).optional(),
  targets: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), targetSchema).optional(),
  /** Public key (PEM) bundles must be signed with. */
  publicKey: z.string().min(1).optional(),
  fleets: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), fleetSchema).optional(),
});

export type RelupConfig = z.infer<typeof configSchema>;
export type ConfigTarget = z.infer<typeof targetSchema>;
export const CONFIG_FILE = 'relup.config.yaml';

export function configKeysAt(path: readonly PropertyKey[]): readonly string[] {
  if (path.length === 0) return Object.keys(configSchema.shape);
  if (path[0] === 'targets' && path.length === 2) return ['socket', 'host', 'port', 'secretFile', 'secretEnv', 'tls'];
  if (path[0] === 'targets' && path[2] === 'tls' && path.length === 3) return ['ca', 'servername', 'fingerprint'];
  if (path[0] === 'fleets' && path.length === 2) return Object.keys(fleetSchema.shape);
  if (path[0] === 'fleets' && path[2] === 'health' && path.length === 3) return Object.keys(healthSchema.shape);
  if (path[0] === 'fleets' && path[2] === 'health' && path[3] === 'invoke' && path.length === 4) return ['module', 'function', 'args'];
  return [];
}
