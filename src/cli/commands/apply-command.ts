import { styleText } from 'node:util';
import semver from 'semver';
import { remoteStatus, type RemoteOutcome } from '../../client/upgrade.js';
import { upgradeAlongPath } from '../../client/upgrade-path.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UserError } from '../../errors/errors.js';
import { loadProject } from '../../project/load-project.js';
import { renderScript } from '../../script/render-script.js';
import { connectTarget } from '../connect.js';
import type { CommandIo } from '../io.js';
import { numberSteps } from '../number-steps.js';
import { printDiagnostics } from '../print-diagnostics.js';
import { badProjectPaths, projectOptions } from '../project-options.js';
import { hopHeader, printPathResult } from './apply-path-output.js';

export interface ApplyArgs {
  target?: string;
  to?: string;
  config?: string;
  releases?: string;
  appups?: string;
  dryRun?: boolean;
  permanent?: boolean;
  json?: boolean;
  deadline?: number;
  showPlan?: boolean;
}

/** `relup apply`: plan from the node's release to --to (default newest) and have the node apply it. */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  // A fleet rollout, a soak or a health check (on one node: a fleet of one) is its own command (docs/fleet.md).
  if (['fleet', 'soak', 'healthPath', 'healthPort', 'healthInvoke'].some((k) => raw[k] !== undefined)) return (await import('./fleet-apply-command.js')).run(raw, io);
  return applyTo(raw as unknown as ApplyArgs, io, 'apply');
}

/** Shared by apply and rollback: only the default target version differs. */
export async function applyTo(args: ApplyArgs, io: CommandIo, mode: 'apply' | 'rollback'): Promise<number> {
  const dirs = await projectOptions(args, io);
  const project = await loadProject({ cwd: io.cwd, releases: dirs.releases, appups: dirs.appups });
  const badPaths = badProjectPaths(project);
  if (badPaths.length > 0) {
    printDiagnostics(badPaths, io);
    return EXIT_USAGE;
  }
  const connection = await connectTarget(dirs.loaded, args.target);
  const paint = (style: Parameters<typeof styleText>[0], text: string) => (io.color ? styleText(style, text) : text);
  const json = args.json === true;
  try {
    let to = args.to;
    if (mode === 'rollback' && to === undefined) {
      const status = await remoteStatus(connection);
      to = status.previous[0];
      if (to === undefined) throw new UserError(`${status.name} ${status.version} has no previous release to roll back to`, 'name one with --to VERSION');
    }
    // No direct appup entry but a chain of releases: one upgrade per hop, stopping at the first that fails.
    const result = await upgradeAlongPath({
      onHop: (i, count, from, hopTo) => {
        if (!json) io.stdout.write(hopHeader(i, count, from, hopTo, paint));
      },
      onHopDone: (hop) => {
        if (!json && hop.outcome !== undefined) io.stdout.write(renderOutcome(hop.outcome, paint));
        if (hop.outcome === undefined) printDiagnostics(hop.diagnostics, io);
      },
      connection,
      catalog: project.catalog,
      appups: project.appups,
      releasesDir: project.releasesDir,
      to,
      dryRun: args.dryRun === true,
      permanent: args.permanent !== false,
      ...(args.deadline === undefined ? {} : { deadlineMs: args.deadline }),
      onPlan: (script) => {
        if (json) return;
        const verb = args.dryRun === true ? 'dry run of' : script.direction === 'up' ? 'upgrading' : 'downgrading';
        io.stdout.write(`${paint('bold', `${verb} ${script.name} ${script.from.version} → ${script.to.version}`)} on ${connection.hello.node.name} (${plural(script.steps.length, 'step')}, ${plural(script.groups.length, 'suspend group')})\n`);
        if (args.showPlan === true) io.stdout.write(renderScript(script, { color: io.color }));
      },
      onEvent: (event) => {
        if (json) return;
        const status = String(event['status']);
        if (status === 'start') return;
        const mark = status === 'ok' ? paint('green', '✓') : status === 'undone' ? paint('yellow', '↺') : paint('red', '✗');
        const ms = typeof event['durationMs'] === 'number' ? ` ${(event['durationMs'] as number).toFixed(2)} ms` : '';
        const err = typeof event['error'] === 'string' ? `: ${event['error']}` : '';
        io.stdout.write(`  ${mark} ${String(Number(event['index']) + 1).padStart(3)} ${event['op']} ${event['target'] ?? ''}${status === 'undone' ? ' (undone)' : ''}${paint('dim', ms)}${err}\n`);
      },
    });
    if (result.kind === 'path') return printPathResult(result, io, json, paint);
    if (result.kind === 'noop') {
      if (json) io.stdout.write(`${JSON.stringify({ status: 'noop', ok: true, message: result.message, version: result.status.version }, null, 2)}\n`);
      else io.stdout.write(`${result.message}\n`);
      return EXIT_OK;
    }
    if (result.kind === 'plan-failed') {
      printDiagnostics(result.diagnostics, io);
      if (json) io.stdout.write(`${JSON.stringify({ status: 'plan-failed', ok: false, diagnostics: result.diagnostics }, null, 2)}\n`);
      else io.stderr.write(`cannot plan ${result.status.version} → ${to ?? 'newest'}; nothing was sent to the node\n`);
      return EXIT_FAILED;
    }
    printDiagnostics(result.diagnostics, io);
    if (json) io.stdout.write(`${JSON.stringify({ ...numberSteps(result.outcome), script: { from: result.script.from, to: result.script.to, direction: result.script.direction, steps: result.script.steps.length } }, null, 2)}\n`);
    else io.stdout.write(renderOutcome(result.outcome, paint));
    return result.outcome.ok ? EXIT_OK : EXIT_FAILED;
  } finally {
    connection.close();
  }
}

export function renderOutcome(o: RemoteOutcome, paint: (style: Parameters<typeof styleText>[0], text: string) => string): string {
  const lines: string[] = [];
  // The node's message often says its status already ("dry run: …", "refused before …", "…; rolled back to"): say it once.
  const label = STATUS_LABELS[o.status];
  const style: Parameters<typeof styleText>[0] = o.ok ? ['bold', 'green'] : ['bold', 'red'];
  lines.push(o.message.toLowerCase().includes(label.toLowerCase()) ? paint(style, o.message) : `${paint(style, label)}: ${o.message}`);
  for (const g of o.groups) {
    const window = g.suspensionMs === null ? 'no suspension' : `suspended ${g.suspensionMs.toFixed(2)} ms (${g.processes.join(', ')})`;
    const migrated = [...g.migrated.modules.map((m) => `module state of ${m}`), ...g.migrated.processes.map((p) => `process ${p}`)];
    const undone = o.status === 'rolled-back' || o.status === 'rollback-failed' ? ' (undone)' : '';
    lines.push(`  group ${g.id} [${g.modules.join(', ')}]: ${window}${migrated.length > 0 ? `; migrated ${migrated.join(', ')}${undone}` : ''}`);
  }
  if (o.holdMs !== null) lines.push(`  requests, timers and control calls waited ${o.holdMs.toFixed(2)} ms (point of no return → end), none failed`);
  const absent = Object.entries(o.absent).flatMap(([m, keys]) => keys.map((k) => `${m}.${k}`));
  if (absent.length > 0) lines.push(`  new state keys (initial values, like Silly's absent): ${absent.join(', ')}`);
  if (o.rollback !== undefined) {
    lines.push(o.rollback.complete ? `  rollback complete: ${plural(o.rollback.undone, 'step')} undone, every process resumed` : paint('red', `  ROLLBACK INCOMPLETE: ${o.rollback.problems.map((p) => p.message).join('; ')}`));
  }
  if (o.permanent !== undefined) lines.push(`  running ${o.version}; a restart boots ${o.permanent}${o.permanent !== o.version && semver.valid(o.permanent) ? ' (not made permanent)' : ''}`);
  return `${lines.join('\n')}\n`;
}

const STATUS_LABELS: Record<RemoteOutcome['status'], string> = {
  committed: 'committed',
  noop: 'nothing to do',
  'dry-run': 'dry run',
  refused: 'refused',
  'rolled-back': 'rolled back',
  'rollback-failed': 'ROLLBACK FAILED',
};

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
