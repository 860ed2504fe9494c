import { z } from 'zod';
import { scriptSchema } from '../script/script-schema.js';
import { applyOutcomeSchema, stepEventSchema } from './apply-outcome.js';
import { statusResultSchema } from './status-result.js';

/**
 * Control-protocol messages (docs/protocol.md). Every message is a JSON
 * object with a `type`; both sides validate what they receive with these
 * schemas and answer a bad message with a typed error, never a crash.
 */
export const PROTOCOL_VERSION = 2;

const requestId = z.number().int().min(1).max(2 ** 31 - 1);

export const clientHelloSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: z.number().int().positive(),
  client: z.string().max(200),
});

export const nodeInfoSchema = z.strictObject({
  name: z.string(),
  version: z.string(),
  runtime: z.enum(['node', 'erlang', 'lua']),
});

export const nodeHelloSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: z.number().int().positive(),
  node: nodeInfoSchema,
  /** `challenge`: the client must prove it knows the shared secret before any request (TCP). */
  auth: z.enum(['none', 'challenge']),
  nonce: z.string().optional(),
});

export const authSchema = z.strictObject({
  type: z.literal('auth'),
  /** The client's own fresh nonce (base64), so the node proves itself too. */
  nonce: z.string().max(200),
  /** base64 HMAC-SHA256(secret, "relup-auth-v1\n" + nodeNonce + "\n" + clientNonce) */
  proof: z.string().max(200),
});

export const authOkSchema = z.strictObject({
  type: z.literal('auth_ok'),
  /** base64 HMAC-SHA256(secret, "relup-auth-node-v1\n" + clientNonce + "\n" + nodeNonce) */
  proof: z.string(),
});

export const applyParamsSchema = z.strictObject({
  script: scriptSchema,
  /** The target release's bundle (.tar.gz), base64. */
  bundle: z.string(),
  /** Only the part before the point of no return: nothing changes. */
  dryRun: z.boolean().default(false),
  /** Make the new release the one a restart boots (default true). */
  permanent: z.boolean().default(true),
  /** Overall deadline of the transaction in ms; past it the node rolls back. */
  deadlineMs: z.number().int().positive().max(3_600_000).optional(),
  /**
   * Commit, but put the new release in soak for this many ms: the node says so
   * in `status` (`soak`) until `make_permanent` of that release or another
   * committed apply ends it. Needs `permanent: false` (a soak is the time
   * before a release is made permanent). At most 7 days.
   */
  soakMs: z.number().int().positive().max(604_800_000).optional(),
});

/** Why a request's params are refused although each field is valid; the node answers `bad_request`. */
export function applyParamsProblem(params: { permanent: boolean; soakMs?: number | undefined }): string | undefined {
  return params.soakMs !== undefined && params.permanent ? 'soakMs needs permanent: false (a release in soak is not permanent yet)' : undefined;
}

const noParams = z.strictObject({}).default({});

/**
 * Every op: its params and its result. The request schema and the JSON
 * Schemas of docs/schema/protocol.schema.json are made from this table.
 */
export const OPS = {
  /** The node's releases, history, modules and processes. */
  status: { params: noParams, result: statusResultSchema },
  /** Evaluate a relup script against the uploaded bundle, as one transaction; streams step events. */
  apply: { params: applyParamsSchema, result: applyOutcomeSchema },
  /** Make an installed release the one a restart boots. */
  make_permanent: { params: z.strictObject({ version: z.string() }), result: z.strictObject({ permanent: z.string() }) },
  /** A deep copy of every module state and process state (relup check --live, fault tests). */
  states: { params: noParams, result: z.strictObject({ modules: z.record(z.string(), z.unknown()), processes: z.record(z.string(), z.unknown()) }) },
  /** Send a call to a process and return its reply (fixtures of relup check --live). */
  call: { params: z.strictObject({ process: z.string(), message: z.unknown() }), result: z.unknown() },
  /** Call a function of a module's current code and return its result, null for none (fixtures of relup check --live). */
  invoke: { params: z.strictObject({ module: z.string(), function: z.string(), args: z.array(z.unknown()).default([]) }), result: z.unknown() },
} as const;

export type Op = keyof typeof OPS;
export const OP_NAMES = Object.keys(OPS) as Op[];

const request = { type: z.literal('request'), id: requestId } as const;

export const requestSchema = z.discriminatedUnion('op', [
  z.strictObject({ ...request, op: z.literal('status'), params: OPS.status.params }),
  z.strictObject({ ...request, op: z.literal('apply'), params: OPS.apply.params }),
  z.strictObject({ ...request, op: z.literal('make_permanent'), params: OPS.make_permanent.params }),
  z.strictObject({ ...request, op: z.literal('states'), params: OPS.states.params }),
  z.strictObject({ ...request, op: z.literal('call'), params: OPS.call.params }),
  z.strictObject({ ...request, op: z.literal('invoke'), params: OPS.invoke.params }),
]);

export const ERROR_CODES = [
  'bad_frame',
  'bad_message',
  'protocol_mismatch',
  'not_authenticated',
  'unknown_op',
  'bad_request',
  'busy',
  'call_failed',
  'too_many_connections',
  'idle_timeout',
  'handshake_timeout',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const errorMessageSchema = z.strictObject({
  type: z.literal('error'),
  /** The request this answers, or null for connection-level errors. */
  id: requestId.nullable(),
  code: z.enum(ERROR_CODES),
  message: z.string(),
  details: z.unknown().optional(),
});

/** Progress of an `apply`, with the request's id, before its result. */
export const eventMessageSchema = z.strictObject({
  type: z.literal('event'),
  id: requestId,
  event: stepEventSchema,
});

/** The answer to a request; `result` follows OPS[op].result of the request with this id. */
export const resultMessageSchema = z.strictObject({
  type: z.literal('result'),
  id: requestId,
  result: z.unknown(),
});

/** Everything a node may send after its hello. */
export const nodeMessageSchema = z.discriminatedUnion('type', [errorMessageSchema, eventMessageSchema, resultMessageSchema, authOkSchema]);

export type ClientHello = z.infer<typeof clientHelloSchema>;
export type NodeHello = z.infer<typeof nodeHelloSchema>;
export type NodeInfo = z.infer<typeof nodeInfoSchema>;
export type Request = z.infer<typeof requestSchema>;
export type RequestInput = z.input<typeof requestSchema>;
export type ApplyParams = z.infer<typeof applyParamsSchema>;
export type ErrorMessage = z.infer<typeof errorMessageSchema>;
export type NodeMessage = z.infer<typeof nodeMessageSchema>;
