import type { styleText } from 'node:util';
import type { PathUpgrade } from '../../client/upgrade-path.js';
import { EXIT_FAILED, EXIT_OK } from '../../errors/errors.js';
import type { CommandIo } from '../io.js';
import { numberSteps } from '../number-steps.js';

type Paint = (style: Parameters<typeof styleText>[0], text: string) => string;

export function hopHeader(index: number, count: number, from: string, to: string, paint: Paint): string {
  return `\n${paint(['bold', 'cyan'], `═══ hop ${index + 1} of ${count}: ${from} → ${to} ═══`)}\n`;
}

/**
 * The end of a multi-hop apply: which hops committed, which one failed and how
 * it ended, which were not tried, and the release the node is on now.
 */
export function printPathResult(result: PathUpgrade, io: CommandIo, json: boolean, paint: Paint): number {
  const failed = result.ok ? undefined : result.hops[result.hops.length - 1];
  const notTried = result.path.slice(result.hops.length + 1).map((v, i) => `${result.path[result.hops.length + i]} → ${v}`);
  if (json) {
    io.stdout.write(
      `${JSON.stringify(
        {
          status: result.ok ? (result.dryRun ? 'dry-run' : 'committed') : 'path-stopped',
          ok: result.ok,
          path: result.path,
          version: result.version,
          dryRun: result.dryRun,
          hops: result.hops.map((h) => ({ from: h.from, to: h.to, outcome: h.outcome === undefined ? null : numberSteps(h.outcome), diagnostics: h.diagnostics })),
          notTried,
        },
        null,
        2,
      )}\n`,
    );
    return result.ok ? EXIT_OK : EXIT_FAILED;
  }
  io.stdout.write('\n');
  if (result.ok && result.dryRun) {
    io.stdout.write(`${paint(['bold', 'green'], 'dry run passed')} for hop 1 (${result.path[0]} → ${result.path[1]}); the later hops start from releases the node does not run yet, so only their plans were checked\n`);
    return EXIT_OK;
  }
  if (result.ok) {
    io.stdout.write(`${paint(['bold', 'green'], 'committed')}: ${result.path.join(' → ')} in ${result.hops.length} hops; the node runs ${result.version}\n`);
    return EXIT_OK;
  }
  const how = failed?.outcome?.status ?? 'not sent (its plan failed against the release the node ran then)';
  io.stdout.write(`${paint(['bold', 'red'], 'stopped')}: hop ${result.hops.length} of ${result.path.length - 1} (${failed?.from} → ${failed?.to}) ${how}\n`);
  if (failed?.outcome?.status === 'rollback-failed') {
    io.stdout.write(paint('red', `  the rollback of this hop did not complete: run relup status to see what the node runs\n`));
    return EXIT_FAILED;
  }
  io.stdout.write(`  the node stays on ${result.version}, the last release committed${result.version === result.status.version ? ' (where it started)' : ''}\n`);
  if (result.hops.length > 1) io.stdout.write(`  committed before it: ${result.hops.slice(0, -1).map((h) => `${h.from} → ${h.to}`).join(', ')}\n`);
  if (notTried.length > 0) io.stdout.write(`  not tried: ${notTried.join(', ')}\n`);
  return EXIT_FAILED;
}
