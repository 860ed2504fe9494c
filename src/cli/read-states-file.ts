import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { UserError } from '../errors/errors.js';

/** Module and process states by name: the shape of a node's `states` answer and of a fixture's `states`. */
export const statesSchema = z.strictObject({
  modules: z.record(z.string(), z.unknown()).default({}),
  processes: z.record(z.string(), z.unknown()).default({}),
});
export type States = z.infer<typeof statesSchema>;

/**
 * Read states for `relup node start --states`: a fixture from `relup status
 * --states` (`{ "states": { … } }`, other fixture keys ignored) or bare
 * `{ "modules": …, "processes": … }`.
 */
export async function readStatesFile(path: string): Promise<States> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new UserError(`cannot read states file ${path}: ${e.message}`, 'capture one with: relup status --target <node> --states > fixture.json');
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`states file ${path} is not JSON: ${(e as Error).message}`);
  }
  const body = json !== null && typeof json === 'object' && 'states' in json ? (json as { states: unknown }).states : json;
  const parsed = statesSchema.safeParse(body);
  if (!parsed.success) throw new UserError(`states file ${path} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')}`, 'expected { "states": { "modules": { … }, "processes": { … } } }');
  return parsed.data;
}
