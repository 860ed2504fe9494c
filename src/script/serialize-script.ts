import { scriptSchema, type RelupScript } from './script-schema.js';
import { error, type Checked } from '../diagnostics/diagnostic.js';

/** Canonical text of a script: two-space JSON with a final newline. Key order is fixed by construction, so equal scripts are equal bytes. */
export function serializeScript(script: RelupScript): string {
  return `${JSON.stringify(script, null, 2)}\n`;
}

/** Read a script from text (a file or a wire message); never throws for bad input. */
export function parseScript(text: string, file = '(script)'): Checked<RelupScript> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { value: undefined, diagnostics: [error('script-json-invalid', `not valid JSON: ${(e as Error).message}`, { file }, 'regenerate it with `relup plan --json`')] };
  }
  const result = scriptSchema.safeParse(json);
  if (!result.success) {
    return {
      value: undefined,
      diagnostics: result.error.issues.map((i) => error('script-invalid', `${i.path.join('.') || '(top level)'}: ${i.message}`, { file }, 'regenerate it with `relup plan --json`')),
    };
  }
  const script = result.data;
  if (script.steps[script.pointOfNoReturn]?.op !== 'point_of_no_return') {
    return { value: undefined, diagnostics: [error('script-invalid', 'pointOfNoReturn does not index the point_of_no_return step', { file })] };
  }
  return { value: script, diagnostics: [] };
}
