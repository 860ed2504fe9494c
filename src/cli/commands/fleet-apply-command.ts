import { styleText } from 'node:util';
import type { FailurePolicy, FleetEvent, FleetMember, NodeRow, RolloutResult } from '../../client/fleet/fleet-types.js';
import { rollout } from '../../client/fleet/rollout.js';
import type { HealthCheck } from '../../client/fleet/health-check.js';
import { parseDuration } from '../../client/fleet/waves.js';
import { CONFIG_FILE } from '../../config/config-schema.js';
import { resolveTarget } from '../../config/load-config.js';
import { suggestion } from '../../diagnostics/did-you-mean.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UserError } from '../../errors/errors.js';
import { loadProject } from '../../project/load-project.js';
import { connectTarget } from '../connect.js';
import type { CommandIo } from '../io.js';
import { printDiagnostics } from '../print-diagnostics.js';
import { badProjectPaths, projectOptions } from '../project-options.js';

export interface FleetApplyArgs {
  fleet?: string;
  target?: string;
  to?: string;
  canary?: number;
  waveSize?: number;
  concurrency?: number;
  onFailure?: FailurePolicy;
  soak?: string;
  healthPath?: string;
  healthPort?: number;
  healthInvoke?: string;
  healthTimeout?: number;
  healthInterval?: number;
  deadline?: number;
  json?: boolean;
  releases?: string;
  appups?: string;
  config?: string;
}

type Paint = (style: Parameters<typeof styleText>[0], text: string) => string;

/**
 * `relup apply --fleet NAME` (and `relup apply --target X --soak 30s`, a fleet
 * of one): plan once per source version, verify every node, canary, waves,
 * halt policy, live progress, a final table. Exit 0 when every node ends on
 * the target, 1 when the rollout was refused (nothing changed) or halted.
 */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as FleetApplyArgs;
  const dirs = await projectOptions(args, io);
  const fleets = dirs.loaded.config.fleets ?? {};
  const fleet = args.fleet === undefined ? undefined : Object.hasOwn(fleets, args.fleet) ? fleets[args.fleet] : undefined;
  if (args.fleet !== undefined && fleet === undefined) {
    const names = Object.keys(fleets);
    throw new UserError(`unknown fleet "${args.fleet}"${suggestion(args.fleet, names)}`, names.length > 0 ? `fleets in ${CONFIG_FILE}: ${names.join(', ')}` : `define it under fleets in ${CONFIG_FILE} (see docs/fleet.md)`);
  }
  const names = fleet?.targets ?? [args.target ?? dirs.loaded.config.defaultTarget ?? ''];
  // Resolve every target before anything is contacted: a typo is bad input, not a failed rollout.
  const members: FleetMember[] = names.map((name) => {
    const resolved = resolveTarget(dirs.loaded, name === '' ? undefined : name);
    return {
      name,
      host: resolved.target.kind === 'tcp' ? resolved.target.host : '127.0.0.1',
      connect: () => connectTarget(dirs.loaded, name, 5000),
    };
  });
  const soakText = args.soak ?? fleet?.soak;
  const soakMs = soakText === undefined ? undefined : parseDuration(soakText);
  if (soakText !== undefined && soakMs === undefined) throw new UserError(`--soak "${soakText}" is not a duration`, 'write it as 500ms, 30s, 2m or 1h');
  const health = healthCheck(args, fleet?.health);
  if (soakMs !== undefined && health === undefined) throw new UserError('--soak needs a health check to watch', 'add --health-path /PATH or --health-invoke module.function (or health in the fleet config)');
  const canary = args.canary ?? fleet?.canary ?? (fleet === undefined ? 0 : 1);
  const waveSize = args.waveSize ?? fleet?.waveSize ?? 1;
  const concurrency = args.concurrency ?? fleet?.concurrency ?? waveSize;
  const onFailure = args.onFailure ?? fleet?.onFailure ?? 'rollback';

  const project = await loadProject({ cwd: io.cwd, releases: dirs.releases, appups: dirs.appups });
  const badPaths = badProjectPaths(project);
  if (badPaths.length > 0) {
    printDiagnostics(badPaths, io);
    return EXIT_USAGE;
  }
  const json = args.json === true;
  const paint: Paint = (style, text) => (io.color ? styleText(style, text) : text);
  const label = fleet === undefined ? `node ${names[0]}` : `fleet ${args.fleet}`;
  if (!json) {
    const shape = fleet === undefined ? '' : `; ${canary > 0 ? `canary ${canary}, then ` : ''}waves of ${waveSize} (${concurrency} at a time); on failure: ${onFailure === 'rollback' ? 'roll back the nodes upgraded so far' : 'leave them and report'}`;
    io.stdout.write(`${paint('bold', `${label}: ${members.length} node${members.length === 1 ? '' : 's'} → ${args.to ?? 'the newest release'}`)}${shape}${soakMs === undefined ? '' : `; soak ${soakText} each`}\n`);
  }
  // The first Ctrl-C halts gracefully (upgrades in flight finish, nothing new starts, the halt policy runs);
  // a second one is the default SIGINT: the process ends at once (the nodes finish their transactions on their own).
  const controller = new AbortController();
  const onInterrupt = (): void => {
    process.off('SIGINT', onInterrupt);
    controller.abort();
    io.stderr.write('interrupted: finishing the upgrades in flight, then halting (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onInterrupt);
  const result = await rollout({
    signal: controller.signal,
    members,
    catalog: project.catalog,
    appups: project.appups,
    releasesDir: project.releasesDir,
    to: args.to,
    canary,
    waveSize,
    concurrency,
    onFailure,
    ...(health === undefined ? {} : { health }),
    ...(soakMs === undefined ? {} : { soakMs }),
    intervalMs: args.healthInterval ?? fleet?.health?.intervalMs ?? 1000,
    ...(args.deadline === undefined ? {} : { deadlineMs: args.deadline }),
    onEvent: (event) => (json ? io.stdout.write(`${JSON.stringify(event)}\n`) : io.stdout.write(renderEvent(event, paint))),
  }).finally(() => process.off('SIGINT', onInterrupt));
  printDiagnostics(result.diagnostics, io);
  if (json) io.stdout.write(`${JSON.stringify({ type: 'result', ...result })}\n`);
  else io.stdout.write(renderResult(result, paint));
  return result.ok ? EXIT_OK : EXIT_FAILED;
}

function healthCheck(args: FleetApplyArgs, configured: { path?: string | undefined; port?: number | undefined; invoke?: { module: string; function: string; args?: unknown[] | undefined } | undefined; timeoutMs?: number | undefined } | undefined): HealthCheck | undefined {
  const path = args.healthPath ?? configured?.path;
  let invoke: HealthCheck['invoke'] = configured?.invoke === undefined ? undefined : { module: configured.invoke.module, function: configured.invoke.function, ...(configured.invoke.args === undefined ? {} : { args: configured.invoke.args }) };
  if (args.healthInvoke !== undefined) {
    const m = /^([^.(]+)\.([A-Za-z_$][\w$]*)(?:\((.*)\))?$/s.exec(args.healthInvoke.trim());
    let callArgs: unknown[] | undefined;
    try {
      callArgs = m?.[3] === undefined ? [] : (JSON.parse(`[${m[3]}]`) as unknown[]);
    } catch {
      callArgs = undefined;
    }
    if (m === null || callArgs === undefined) throw new UserError(`--health-invoke "${args.healthInvoke}" is not module.function or module.function(JSON arguments)`, `e.g. --health-invoke route.healthy or --health-invoke 'config.get("enable_cache")'`);
    invoke = { module: m[1]!, function: m[2]!, args: callArgs };
  }
  if (path !== undefined && !path.startsWith('/')) throw new UserError(`--health-path "${path}" must start with /`, 'e.g. --health-path /health');
  const port = args.healthPort ?? configured?.port;
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) throw new UserError(`--health-port ${String(port)} is not a port`, 'a whole number from 1 to 65535');
  if (port !== undefined && path === undefined) throw new UserError('--health-port is the port of --health-path', 'add --health-path /PATH');
  if (path === undefined && invoke === undefined) return undefined;
  return { ...(path === undefined ? {} : { path }), ...(port === undefined ? {} : { port }), ...(invoke === undefined ? {} : { invoke }), timeoutMs: args.healthTimeout ?? configured?.timeoutMs ?? 5000 };
}

const ms = (n: number | null) => (n === null ? '-' : n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(n < 10 ? 2 : 0)} ms`);

export function renderEvent(e: FleetEvent, paint: Paint): string {
  switch (e.type) {
    case 'preflight':
      return `  ${e.ok ? paint('green', '✓') : paint('red', '✗')} ${e.node}: ${e.detail}\n`;
    case 'plan':
      return `  plan ${e.path.join(' → ')}${e.path.length > 2 ? ` (${e.path.length - 1} hops)` : ''}\n`;
    case 'refused':
      return `${paint(['bold', 'red'], 'refused')}: ${e.reason}\n`;
    case 'wave-start':
      return `${paint('bold', e.kind === 'canary' ? `canary [${e.nodes.join(', ')}]` : `wave ${e.wave} [${e.nodes.join(', ')}]`)}\n`;
    case 'node-start':
      return `  … ${e.node}: ${e.from} → ${e.to}\n`;
    case 'health':
      return e.ok && e.soak ? '' : `  ${e.ok ? paint('green', '♥') : paint('red', '✗')} ${e.node}: health ${e.ok ? 'ok' : `FAILED: ${e.detail}`}${e.soak ? ' (soak)' : ''}\n`;
    case 'soak-start':
      return `  ⧗ ${e.node}: soaking until ${e.deadline} (not permanent until then; a restart boots the old release)\n`;
    case 'node-done':
      return `  ${mark(e.row, paint)} ${e.row.node}: ${e.row.outcome}${e.row.version === null ? '' : `, runs ${e.row.version}`} (suspension ${ms(e.row.suspensionMs)}, ${ms(e.row.durationMs)})${e.row.detail === '' ? '' : ` ${paint('dim', e.row.detail)}`}\n`;
    case 'wave-done':
      return `  ${e.ok ? 'wave done' : paint('red', 'wave failed')} in ${ms(e.durationMs)}\n`;
    case 'halt':
      return `${paint(['bold', 'red'], 'HALT')}: ${e.reason}; policy: ${e.policy === 'rollback' ? 'rolling back the nodes upgraded in this rollout' : 'leaving the nodes as they are'}\n`;
    case 'revert-start':
      return `  ↺ ${e.node}: ${e.from} → ${e.to}\n`;
    case 'revert-done':
      return `  ${mark(e.row, paint)} ${e.row.node}: ${e.row.outcome}, runs ${e.row.version ?? '?'}\n`;
  }
}

function mark(row: NodeRow, paint: Paint): string {
  if (row.outcome === 'committed' || row.outcome === 'unchanged') return paint('green', '✓');
  if (row.outcome === 'reverted') return paint('yellow', '↺');
  return paint('red', '✗');
}

export function renderResult(r: RolloutResult, paint: Paint): string {
  const head = ['node', 'wave', 'from', 'to', 'outcome', 'runs', 'permanent', 'suspension', 'duration'];
  const body = r.rows.map((x) => [x.node, x.wave === null ? '-' : x.wave === 0 && r.waves[0]?.kind === 'canary' ? 'canary' : String(x.wave), x.from ?? '-', x.to, x.outcome, x.version ?? '?', x.permanent ?? '?', ms(x.suspensionMs), ms(x.durationMs)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = ['', paint('bold', line(head)), ...body.map(line)];
  if (r.waves.length > 0) out.push('', `waves: ${r.waves.map((w) => `${w.kind === 'canary' ? 'canary' : `wave ${w.index}`} ${ms(w.durationMs)}${w.ok ? '' : ' (failed)'}`).join(', ')}; whole rollout ${ms(r.totalMs)}`);
  const verdict = r.ok ? paint(['bold', 'green'], `every node runs ${r.to}`) : r.refused ? paint(['bold', 'red'], 'refused: no node was changed') : paint(['bold', 'red'], 'halted: see the outcome of each node above');
  out.push(verdict);
  return `${out.join('\n')}\n`;
}
