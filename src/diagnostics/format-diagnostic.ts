import { styleText } from 'node:util';
import type { Diagnostic } from './diagnostic.js';

export interface FormatOptions {
  color: boolean;
}

/** `file:line:column: error CODE: message` then an indented hint; the one place diagnostics become text. */
export function formatDiagnostic(d: Diagnostic, options: FormatOptions): string {
  const paint = (style: Parameters<typeof styleText>[0], text: string) =>
    options.color ? styleText(style, text) : text;
  const where = d.file === undefined ? '' : `${d.file}${d.line === undefined ? '' : `:${d.line}${d.column === undefined ? '' : `:${d.column}`}`}: `;
  const label = d.severity === 'error' ? paint('red', 'error') : paint('yellow', 'warning');
  let text = `${where}${label} ${paint('dim', d.code)}: ${d.message}`;
  if (d.hint !== undefined) text += `\n  ${paint('cyan', 'hint:')} ${d.hint}`;
  return text;
}

/** GitHub workflow command, so `relup check --reporter github` annotates the file and line. */
export function formatGithubAnnotation(d: Diagnostic): string {
  const props: string[] = [];
  if (d.file !== undefined) props.push(`file=${escapeProperty(d.file)}`);
  if (d.line !== undefined) props.push(`line=${d.line}`);
  if (d.column !== undefined) props.push(`col=${d.column}`);
  props.push(`title=${escapeProperty(`relup ${d.code}`)}`);
  const body = d.hint === undefined ? d.message : `${d.message}\n${d.hint}`;
  return `::${d.severity === 'error' ? 'error' : 'warning'} ${props.join(',')}::${escapeData(body)}`;
}

function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}
