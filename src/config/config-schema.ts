import { z } from 'zod';

/** `relup.config.yaml`: where releases and appups live, and the nodes the CLI can reach. Documented in the README. */
const SHA256_FINGERPRINT = /^(sha256:)?([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/;

/**
 * How the CLI trusts a TLS node: a CA (or the node's certificate) in a PEM
 * file, or one certificate's sha256 fingerprint. One object with refinements
 * rather than a union, so a typo or a bad value is reported at its key.
 */
const tlsSchema = z
  .strictObject({
    /** PEM file of the CA that signed the node's certificate, or of the certificate itself. */
    ca: z.string().min(1).optional(),
    /** The name the certificate must carry (default: the target's host). */
    servername: z.string().min(1).optional(),
    /** sha256 fingerprint of the node's certificate (openssl x509 -noout -fingerprint -sha256), pinned instead of a CA. */
    fingerprint: z.string().regex(SHA256_FINGERPRINT, 'a sha256 fingerprint: 64 hex digits, colons allowed').optional(),
  })
  .superRefine((t, ctx) => {
    if ((t.ca === undefined) === (t.fingerprint === undefined)) ctx.addIssue({ code: 'custom', path: [], message: 'tls needs exactly one of ca (a PEM file to trust) or fingerprint (the sha256 of the node certificate)' });
    if (t.servername !== undefined && t.ca === undefined) ctx.addIssue({ code: 'custom', path: ['servername'], message: 'servername goes with ca; a pinned fingerprint names no host' });
  })
  .transform((t): { ca: string; servername?: string } | { fingerprint: string } => (t.ca !== undefined ? { ca: t.ca, ...(t.servername === undefined ? {} : { servername: t.servername }) } : { fingerprint: t.fingerprint! }));

/**
 * A node the CLI can reach: `socket` (a Unix socket path), or `host` and
 * `port` (TCP) with the secret's file or variable and optional `tls`. One
 * object with refinements rather than a union, so errors point at a key.
 */
export const targetSchema = z
  .strictObject({
    socket: z.string().min(1).optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    /** File holding the shared secret (never on the command line). */
    secretFile: z.string().min(1).optional(),
    /** Environment variable holding the shared secret. */
    secretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
    /** Speak TLS to this node (relup node start --tls-cert/--tls-key). */
    tls: tlsSchema.optional(),
  })
  .superRefine((t, ctx) => {
    if (t.socket !== undefined) {
      for (const k of ['host', 'port', 'secretFile', 'secretEnv', 'tls'] as const) {
        if (t[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is for TCP targets (host and port); this target is a Unix socket` });
      }
    } else if (t.host === undefined || t.port === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: t.host === undefined && t.port === undefined ? 'a target needs socket (a Unix socket path), or host and port (TCP)' : `a TCP target needs both host and port; ${t.host === undefined ? 'host' : 'port'} is missing` });
    }
  })
  .transform((t): { socket: string } | { host: string; port: number; secretFile?: string; secretEnv?: string; tls?: z.output<typeof tlsSchema> } =>
    t.socket !== undefined
      ? { socket: t.socket }
      : {
          host: t.host!,
          port: t.port!,
          ...(t.secretFile === undefined ? {} : { secretFile: t.secretFile }),
          ...(t.secretEnv === undefined ? {} : { secretEnv: t.secretEnv }),
          ...(t.tls === undefined ? {} : { tls: t.tls }),
        },
  );

/** A health check: an HTTP path on the node's service and/or a function of the release (docs/fleet.md). */
export const healthSchema = z.strictObject({
  /** GET this path on the node's HTTP service (its first server's port); healthy when it answers 2xx. */
  path: z.string().regex(/^\//, 'a path starting with /').optional(),
  /** The port of that service; default: the first HTTP server the node reports in status (Erlang and Lua nodes report none). */
  port: z.number().int().min(1).max(65535).optional(),
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
export type ConfigTarget = z.output<typeof targetSchema>;
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
