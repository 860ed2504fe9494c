import { parseAppup } from '../../src/appup/parse-appup.js';

/** Strip the indentation of the first non-empty line from every line, so YAML can sit indented in tests. */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = String.raw({ raw: strings }, ...values).replace(/^\n/, '');
  const indent = /^( *)\S/m.exec(text)?.[1]?.length ?? 0;
  return text
    .split('\n')
    .map((line) => line.slice(Math.min(indent, line.length - line.trimStart().length)))
    .join('\n');
}

export const FILE = 'appups/1.2.3.yaml';

/** Parse and keep what tests assert: code, severity and position, never wording. */
export function found(text: string): { code: string; severity: string; line: number | undefined; column: number | undefined }[] {
  return parseAppup(text, FILE).diagnostics.map((d) => ({ code: d.code, severity: d.severity, line: d.line, column: d.column }));
}

export function codes(text: string): string[] {
  return parseAppup(text, FILE).diagnostics.map((d) => d.code);
}
