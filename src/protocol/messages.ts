import { z } from 'zod';
import { scriptSchema } from '../script/script-schema.js';

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
});

export const requestSchema = z.discriminatedUnion('op', [
  z.strictObject({ type: z.literal('request'), id: requestId, op: z.literal('status'), params: z.strictObject({}).default({}) }),
  z.strictObject({ type: z.literal('request'), id: requestId, op: z.literal('apply'), params: applyParamsSchema }),
  z.strictObject({ type: z.literal('request'), id: requestId, op: z.literal('make_permanent'), params: z.strictObject({ version: z.string() }) }),
  /** A deep copy of every module state and process state (relup check --live, fault tests). */
  z.strictObject({ type: z.literal('request'), id: requestId, op: z.literal('states'), params: z.strictObject({}).default({}) }),
  /** Send a call to a process and return its reply (fixtures of relup check --live). */
  z.strictObject({ type: z.literal('request'), id: requestId, op: z.literal('call'), params: z.strictObject({ process: z.string(), message: z.unknown() }) }),
  /** Call a function of a module's current code and return its (JSON) result (fixtures of relup check --live). */
  z.strictObject({ type: z.literal('request'), id: requestId, op: z.literal('invoke'), params: z.strictObject({ module: z.string(), function: z.string(), args: z.array(z.unknown()).default([]) }) }),
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

export const eventMessageSchema = z.strictObject({
  type: z.literal('event'),
  id: requestId,
  event: z.record(z.string(), z.unknown()),
});

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
