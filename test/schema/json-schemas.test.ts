import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPERATIONS } from '../../src/appup/appup-schema.js';
import { APPLY_STATUSES } from '../../src/protocol/apply-outcome.js';
import { ERROR_CODES, OP_NAMES } from '../../src/protocol/messages.js';
import { appupJsonSchema, protocolJsonSchema, releaseJsonSchema, renderJsonSchemas, SCHEMA_BASE_URL } from '../../src/schema/json-schemas.js';
import { writeJsonSchemas } from '../../src/schema/write-json-schemas.js';
import { REPO } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';

const SCHEMA_DIR = join(REPO, 'docs', 'schema');
const REGENERATE = 'UPDATE_SCHEMAS=1 npx vitest run test/schema';

describe('docs/schema', () => {
  // Regenerate on request, before the comparison below reads the files.
  if (process.env.UPDATE_SCHEMAS) {
    it('regenerates the checked-in JSON Schemas (UPDATE_SCHEMAS is set)', async () => {
      await writeJsonSchemas(SCHEMA_DIR);
    });
  }

  for (const [name, fresh] of Object.entries(renderJsonSchemas())) {
    it(`docs/schema/${name} matches the zod schema it is generated from`, async () => {
      const onDisk = await readFile(join(SCHEMA_DIR, name), 'utf8').catch(() => '(missing)');
      expect(onDisk, `docs/schema/${name} is out of date with the zod schema; regenerate it with: ${REGENERATE}`).toBe(fresh);
    });
  }
});

describe('writeJsonSchemas', () => {
  it('writes every file, as rendered, into a directory it creates', async () => {
    const out = join(await testdir(), 'a', 'b');
    const written = await writeJsonSchemas(out);
    expect(written).toEqual([join(out, 'appup.schema.json'), join(out, 'protocol.schema.json'), join(out, 'release.schema.json')]);
    for (const [name, text] of Object.entries(renderJsonSchemas())) expect(await readFile(join(out, name), 'utf8')).toBe(text);
  });
});

describe('the generated schemas', () => {
  it('carry draft 2020-12, an $id, a title and a description, in that order', () => {
    for (const [schema, file] of [
      [appupJsonSchema(), 'appup.schema.json'],
      [releaseJsonSchema(), 'release.schema.json'],
    ] as const) {
      expect(Object.keys(schema).slice(0, 4)).toEqual(['$schema', '$id', 'title', 'description']);
      expect(schema).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', $id: SCHEMA_BASE_URL + file, type: 'object', additionalProperties: false });
    }
  });

  it('describes the appup: version required with a semver pattern, one branch per operation, unknown keys refused', () => {
    const schema = appupJsonSchema() as any;
    expect(schema.required).toEqual(['version']);
    expect(Object.keys(schema.properties)).toEqual(['version', 'up', 'down']);
    expect(new RegExp(schema.properties.version.pattern).test('1.2.3')).toBe(true);
    expect(new RegExp(schema.properties.version.pattern).test('v1.2.3')).toBe(false);
    for (const section of ['up', 'down']) {
      const entry = schema.properties[section].items;
      expect(entry).toMatchObject({ additionalProperties: false, required: [section === 'up' ? 'from' : 'to', 'instructions'] });
      const branches = entry.properties.instructions.items.anyOf as { required: string[]; additionalProperties: boolean }[];
      expect(branches.map((b) => b.required)).toEqual(OPERATIONS.map((op) => [op]));
      for (const b of branches) expect(b.additionalProperties).toBe(false);
    }
  });

  it('describes release.yaml: modules required, module names as a key pattern', () => {
    const schema = releaseJsonSchema() as any;
    expect(schema.required).toEqual(expect.arrayContaining(['name', 'version', 'runtime', 'modules']));
    expect(schema.properties.modules.propertyNames).toMatchObject({ pattern: expect.any(String) });
    expect(schema.properties.runtime.enum).toEqual(['node', 'erlang', 'lua']);
  });

  it('describes the control protocol: every message, and the params and result of every op', () => {
    const schema = protocolJsonSchema() as any;
    expect(Object.keys(schema).slice(0, 4)).toEqual(['$schema', '$id', 'title', 'description']);
    expect(schema.$id).toBe(`${SCHEMA_BASE_URL}protocol.schema.json`);
    const messages = ['client-hello', 'node-hello', 'auth', 'auth-ok', 'request', 'event', 'result', 'error'];
    expect(schema.anyOf).toEqual(messages.map((m) => ({ $ref: `#/$defs/${m}` })));
    for (const op of OP_NAMES) {
      expect(schema.$defs, op).toHaveProperty(`params-${op}`);
      expect(schema.$defs, op).toHaveProperty(`result-${op}`);
    }
    expect(schema.$defs.request.oneOf.map((b: any) => b.properties.op.const)).toEqual(OP_NAMES);
    expect(schema.$defs.error.properties.code.enum).toEqual([...ERROR_CODES]);
    // The wire spells outcomes with hyphens (dry-run, rolled-back), as the code sends them.
    expect(schema.$defs['result-apply'].properties.status.enum).toEqual([...APPLY_STATUSES]);
    expect(schema.$defs['result-apply'].properties.status.enum).toContain('rolled-back');
    // What a node sends is complete: no field a client may miss is optional by accident.
    expect(schema.$defs['result-status'].required).toEqual(expect.arrayContaining(['name', 'version', 'hash', 'modules', 'processes', 'upgrading', 'permanent', 'previous', 'installed', 'history', 'stateDir']));
    expect(schema.$defs['result-apply'].required).toEqual(expect.arrayContaining(['status', 'ok', 'message', 'name', 'version', 'journal', 'groups', 'absent', 'holdMs', 'durationMs', 'permanent', 'previous']));
  });
});
