import vm from 'node:vm';

/**
 * How the Node.js runtime turns a module file into code, in one place: the
 * node compiles with it at boot and at staging, and `relup check` / `relup
 * release pack` compile with it too (node-driver.ts), so a module the node
 * would refuse is refused before it is ever shipped.
 */

/** The parameters a module file's body sees, in this order (docs/runtime-node.md). */
export const MODULE_PARAMETERS: readonly string[] = ['exports', 'module', 'require', 'relup'];

export type ModuleBody = (...args: unknown[]) => unknown;

/** Where a compile error is, as the compiler reported it; line and column are 1-based and refer to the file itself. */
export interface CompileProblem {
  message: string;
  line?: number;
  column?: number;
}

export type CompileResult = { ok: true; body: ModuleBody } | { ok: false; problem: CompileProblem };

/** The name stack traces show for a module version: `relup:<release name>@<version>/<file>`. */
export function moduleFilename(releaseName: string, version: string, file: string): string {
  return `relup:${releaseName}@${version}/${file}`;
}

/** Module files are UTF-8 text; decoded leniently, exactly as the node always has. */
export function moduleSourceText(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/**
 * Compile a module file as a function body in the main context. Never
 * `import()`: Node keeps every ES module it ever loaded, so re-importing on
 * each upgrade would leak the old code forever. vm.compileFunction adds no
 * wrapper lines, so the compiler's positions are positions in the file.
 */
export function compileModuleSource(source: string, filename: string): CompileResult {
  try {
    return { ok: true, body: vm.compileFunction(source, [...MODULE_PARAMETERS], { filename }) as ModuleBody };
  } catch (e) {
    return { ok: false, problem: locateCompileError(e, filename) };
  }
}

/** `file:line:col` text for a problem, for messages that are not diagnostics. */
export function whereText(filename: string, problem: CompileProblem): string {
  if (problem.line === undefined) return filename;
  return `${filename}:${problem.line}${problem.column === undefined ? '' : `:${problem.column}`}`;
}

/**
 * V8 reports a syntax error's position only in the decorated stack:
 * `<filename>:<line>`, the source line, then a caret line under the culprit.
 * We read the position from there; when the shape is not recognised the
 * message is still reported, without a position.
 */
function locateCompileError(e: unknown, filename: string): CompileProblem {
  const message = e instanceof Error ? e.message : String(e);
  const stack = e instanceof Error && typeof e.stack === 'string' ? e.stack : '';
  if (!stack.startsWith(`${filename}:`)) return { message };
  const lines = stack.split('\n');
  const line = Number(lines[0]!.slice(filename.length + 1));
  if (!Number.isInteger(line) || line < 1) return { message };
  const caret = lines[2] ?? '';
  const column = /^\s*\^/.test(caret) ? caret.indexOf('^') + 1 : undefined;
  return column === undefined ? { message, line } : { message, line, column };
}

/** The first stack frame inside `filename` of an error thrown by module code, as a position in the file. */
export function throwSite(e: unknown, filename: string): CompileProblem {
  const message = e instanceof Error ? e.message : String(e);
  const stack = e instanceof Error && typeof e.stack === 'string' ? e.stack : '';
  for (const line of stack.split('\n').slice(1)) {
    const at = line.indexOf(`${filename}:`);
    if (at === -1) continue;
    const m = /^(\d+):(\d+)/.exec(line.slice(at + filename.length + 1));
    if (m !== null) return { message, line: Number(m[1]), column: Number(m[2]) };
  }
  return { message };
}
