import { z } from 'zod';
import { appupSchema } from '../appup/appup-schema.js';
import { releaseManifestSchema } from '../release/release-schema.js';

/**
 * JSON Schemas for the hand-written YAML formats, generated from the zod
 * schemas that validate them, so editors and relup never disagree on the
 * shape. Checks that JSON Schema cannot say (a valid semver range, the rules
 * of docs/appup.md) stay in relup. Pinned by test/schema/json-schemas.test.ts.
 */
export type JsonSchema = z.core.JSONSchema.BaseSchema;

/** Where the published files live: the npm package ships docs/, and unpkg serves it. */
export const SCHEMA_BASE_URL = 'https://unpkg.com/relup/docs/schema/';
export const APPUP_SCHEMA_FILE = 'appup.schema.json';
export const RELEASE_SCHEMA_FILE = 'release.schema.json';

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

/** File name → file content, exactly as written to docs/schema/. */
export function renderJsonSchemas(): Record<string, string> {
  return {
    [APPUP_SCHEMA_FILE]: render(appupJsonSchema()),
    [RELEASE_SCHEMA_FILE]: render(releaseJsonSchema()),
  };
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
