import { styleText } from 'node:util';
import type { Diagnostic } from '../../diagnostics/diagnostic.js';
import { EXIT_OK } from '../../errors/errors.js';
import { writeFileAtomic } from '../../fs/write-file-atomic.js';
import { resolveIn } from '../../project/load-project.js';
import { renderScript } from '../../script/render-script.js';
import type { RelupScript } from '../../script/script-schema.js';
import type { CommandIo } from '../io.js';
import { printDiagnostics } from '../print-diagnostics.js';

/**
 * The JSON of a multi-hop plan: the versions visited and one script per hop,
 * in order. Scripts are serialised exactly as for one hop (sorted keys come
 * from the planner's own order), so the bytes are stable across runs.
 */
export function serializePath(path: readonly string[], hops: readonly RelupScript[]): string {
  return `${JSON.stringify({ path, hops }, null, 2)}\n`;
}

/** `relup plan A C` when no appup entry connects A and C but a chain does: the path, then each hop's plan. */
export async function printPath(path: readonly string[], hops: readonly RelupScript[], diagnostics: Diagnostic[], args: { json?: boolean; out?: string }, io: CommandIo): Promise<number> {
  const paint = (style: Parameters<typeof styleText>[0], text: string) => (io.color ? styleText(style, text) : text);
  const text = serializePath(path, hops);
  if (args.out !== undefined) await writeFileAtomic(resolveIn(io.cwd, args.out), Buffer.from(text));
  printDiagnostics(diagnostics, io);
  if (args.json === true) {
    io.stdout.write(text);
    return EXIT_OK;
  }
  const first = path[0]!;
  const last = path[path.length - 1]!;
  io.stdout.write(`${paint('bold', `path ${path.join(' → ')}`)} (${hops.length} hops: no appup entry connects ${first} and ${last} directly)\n`);
  io.stdout.write(`each hop has its own point of no return; relup apply stops at the first hop that fails, on the last release committed\n`);
  hops.forEach((script, i) => {
    io.stdout.write(`\n${paint(['bold', 'cyan'], `═══ hop ${i + 1} of ${hops.length}: ${script.from.version} → ${script.to.version} ═══`)}\n`);
    io.stdout.write(renderScript(script, { color: io.color }));
  });
  if (args.out !== undefined) io.stdout.write(`\npath and scripts written to ${args.out}\n`);
  return EXIT_OK;
}
