import { z } from 'zod';
import { appupSchema } from '../appup/appup-schema.js';
import { releaseManifestSchema } from '../release/release-schema.js';
import { stepEventSchema } from '../protocol/apply-outcome.js';
import { authOkSchema, authSchema, clientHelloSchema, errorMessageSchema, eventMessageSchema, nodeHelloSchema, OPS, requestSchema, resultMessageSchema } from '../protocol/messages.js';

/**
 * JSON Schemas for the hand-written YAML formats and for the control
 * protocol, generated from the zod schemas that validate them, so editors,
 * other runtimes and relup never disagree on the shape. Checks that JSON Schema cannot say (a valid semver range, the rules
 * of docs/appup.md) stay in relup. Pinned by test/schema/json-schemas.test.ts.
 */
export type JsonSchema = z.core.JSONSchema.BaseSchema;

/** Where the published files live: the npm package ships docs/, and unpkg serves it. */
export const SCHEMA_BASE_URL = 'https://unpkg.com/relup/docs/schema/';
export const APPUP_SCHEMA_FILE = 'appup.schema.json';
export const RELEASE_SCHEMA_FILE = 'release.schema.json';
export const PROTOCOL_SCHEMA_FILE = 'protocol.schema.json';

export function appupJsonSchema(): JsonSchema {
  return withHeader(z.toJSONSchema(appupSchema, options), {
    $id: SCHEMA_BASE_URL + APPUP_SCHEMA_FILE,
    title: 'relup appup',
    description:
      'How to reach one release from older versions (up) and how to go back (down): appups/<version>.yaml. Format and rules: docs/appup.md.',
  });
}

export function releaseJsonSchema(): JsonSchema {
  return withHeader(z.toJSONSchema(releaseManifestSchema, options), {
    $id: SCHEMA_BASE_URL + RELEASE_SCHEMA_FILE,
    title: 'relup release manifest',
    description: 'One release of a service: its modules and processes, releases/<version>/release.yaml. Format: docs/release.md.',
  });
}

/**
 * The control protocol (docs/protocol.md): one definition per message, and
 * the params and result of every op, under `$defs`. What a client sends is
 * described as written (defaults optional: `io: input`); what a node sends as
 * it must be sent (`io: output`). The document itself accepts any one message.
 */
export function protocolJsonSchema(): JsonSchema {
  const sent = (schema: z.ZodType) => body(z.toJSONSchema(schema, options));
  const answered = (schema: z.ZodType) => body(z.toJSONSchema(schema, { ...options, io: 'output' }));
  const messages: Record<string, JsonSchema> = {
    'client-hello': sent(clientHelloSchema),
    'node-hello': answered(nodeHelloSchema),
    auth: sent(authSchema),
    'auth-ok': answered(authOkSchema),
    request: sent(requestSchema),
    event: answered(eventMessageSchema),
    result: answered(resultMessageSchema),
    error: answered(errorMessageSchema),
  };
  const ops: Record<string, JsonSchema> = {};
  for (const [op, { params, result }] of Object.entries(OPS)) {
    ops[`params-${op}`] = sent(params);
    ops[`result-${op}`] = answered(result);
  }
  const header = withHeader(
    { $schema: 'https://json-schema.org/draft/2020-12/schema' },
    {
      $id: SCHEMA_BASE_URL + PROTOCOL_SCHEMA_FILE,
      title: 'relup control protocol',
      description:
        'Every message of the relup control protocol (one JSON object per frame), and the params and result of every op under $defs (params-<op>, result-<op>; the result message carries result-<op> of the request with its id). Framing, handshake and sealed frames: docs/protocol.md.',
    },
  );
  return {
    ...header,
    anyOf: Object.keys(messages).map((name) => ({ $ref: `#/$defs/${name}` })),
    $defs: { ...messages, ...ops, 'step-event': answered(stepEventSchema) },
  };
}

/** File name → file content, exactly as written to docs/schema/. */
export function renderJsonSchemas(): Record<string, string> {
  return {
    [APPUP_SCHEMA_FILE]: render(appupJsonSchema()),
    [PROTOCOL_SCHEMA_FILE]: render(protocolJsonSchema()),
    [RELEASE_SCHEMA_FILE]: render(releaseJsonSchema()),
  };
}

/** A schema as a definition inside another document: no `$schema` of its own. */
function body(schema: JsonSchema): JsonSchema {
  const { $schema: _drop, ...rest } = schema;
  return rest;
}

const options = {
  target: 'draft-2020-12',
  // The files describe what people write, before any default is applied.
  io: 'input',
  // Refinements (valid semver, safe paths) are checked by relup; the schema keeps the rest.
  unrepresentable: 'any',
} as const;

function withHeader(schema: JsonSchema, header: { $id: string; title: string; description: string }): JsonSchema {
  const { $schema, ...rest } = schema;
  return { $schema, ...header, ...rest };
}

function render(schema: JsonSchema): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}
