import type { Appup } from '../../src/appup/appup-model.js';
import { parseAppup } from '../../src/appup/parse-appup.js';

const FILE = 'appups/fuzz.yaml';

/**
 * What must hold for any input: no throw, every diagnostic coded and located
 * inside the text, a value exactly when there is no error. Plain checks, not
 * expect(): this runs 25,000 times.
 */
export function holds(text: string): void {
  let result: ReturnType<typeof parseAppup>;
  try {
    result = parseAppup(text, FILE);
  } catch (e) {
    throw new Error(`parseAppup threw: ${String(e)}`);
  }
  const lastLine = text.split(/\r\n|\r|\n/).length + 1;
  for (const d of result.diagnostics) {
    const bad =
      !/^(appup-[a-z-]+|yaml-syntax|yaml-reserved-key|yaml-too-large)$/.test(d.code) ? 'code'
      : d.file !== FILE ? 'file'
      : !Number.isInteger(d.line) || d.line! < 1 || d.line! > lastLine ? 'line'
      : d.column !== undefined && (!Number.isInteger(d.column) || d.column < 1) ? 'column'
      : d.message === '' ? 'message'
      : undefined;
    if (bad !== undefined) throw new Error(`bad ${bad} in ${JSON.stringify(d)}`);
  }
  const hasError = result.diagnostics.some((d) => d.severity === 'error');
  if ((result.value === undefined) !== hasError) throw new Error(`value ${result.value === undefined ? 'missing' : 'present'} with errors=${hasError}`);
  if (result.value !== undefined) checkShape(result.value);
}

function checkShape(appup: Appup): void {
  if (appup.file !== FILE || appup.line < 1) throw new Error('bad appup');
  for (const entry of [...appup.up, ...appup.down]) {
    if (entry.line < 1 || entry.instructions.some((i) => i.line < 1)) throw new Error('bad line');
  }
}
