import { EXIT_OK } from '../../errors/errors.js';
import type { HostStatus } from '../../runtime/node-host/node-host.js';
import { connectTarget } from '../connect.js';
import type { CommandIo } from '../io.js';
import { projectOptions } from '../project-options.js';

export interface StatusArgs {
  target?: string;
  config?: string;
  json?: boolean;
  states?: boolean;
}

/** `relup status`: releases, history, modules and processes of a running node. */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as StatusArgs;
  const { loaded } = await projectOptions(args, io);
  const connection = await connectTarget(loaded, args.target);
  try {
    const status = (await connection.request('status', {})) as HostStatus;
    if (args.states === true) {
      // A fixture for `relup check --live --fixture`: the node's real state, tagged with the release it belongs to.
      const states = await connection.request('states', {});
      io.stdout.write(`${JSON.stringify({ release: status.version, states, calls: [], invokes: [], ignore: [] }, null, 2)}\n`);
      return EXIT_OK;
    }
    if (args.json === true) {
      io.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout.write(renderStatus(status));
    return EXIT_OK;
  } finally {
    connection.close();
  }
}

export function renderStatus(s: HostStatus): string {
  const lines: string[] = [];
  lines.push(`${s.name} ${s.version}${s.upgrading ? '  (an upgrade is running)' : ''}`);
  lines.push(`  permanent: ${s.permanent}${s.permanent === s.version ? '' : '  (a restart boots this one)'}`);
  if (s.soak !== undefined) {
    lines.push(
      s.soak.overdue
        ? `  soak:      ${s.soak.version} OVERDUE since ${s.soak.deadline} (started ${s.soak.startedAt}); whoever started it did not decide: make it permanent (relup apply --to ${s.soak.version} with a health check) or roll back`
        : `  soak:      ${s.soak.version} until ${s.soak.deadline} (started ${s.soak.startedAt}); not permanent until it passes`,
    );
  }
  lines.push(`  previous:  ${s.previous.length === 0 ? '(none)' : s.previous.join(', ')}`);
  lines.push(`  installed: ${s.installed.length === 0 ? '(none)' : s.installed.join(', ')}`);
  lines.push(`  release hash: ${s.hash}`);
  lines.push(`  state directory: ${s.stateDir}`);
  if (s.historyProblem !== undefined) lines.push(`  HISTORY PROBLEM: ${s.historyProblem}`);
  lines.push('', 'modules:');
  for (const m of s.modules) lines.push(`  ${m.name.padEnd(16)} ${m.version.padEnd(10)} ${m.hash.slice(0, 12)}`);
  lines.push('', 'processes:');
  if (s.processes.length === 0) lines.push('  (none)');
  for (const p of s.processes) lines.push(`  ${p.name.padEnd(16)} module ${p.module.padEnd(12)} mailbox ${String(p.mailbox).padStart(4)}  ${p.suspended ? 'SUSPENDED' : p.handling ? 'handling' : 'idle'}`);
  // A node may omit servers and timers (the status schema allows it; an Erlang node's belong to its own processes): print what it reports.
  const servers = (s as Partial<Pick<HostStatus, 'servers'>>).servers ?? [];
  if (servers.length > 0) {
    lines.push('', 'servers:');
    for (const srv of servers) {
      const { module, handler, address, port, connections, ...rest } = srv as unknown as Record<string, unknown>;
      delete rest['family'];
      const more = Object.keys(rest).length === 0 ? '' : `  ${JSON.stringify(rest)}`;
      lines.push(`  http ${String(address)}:${String(port)} → ${String(module)}.${String(handler)}  ${String(connections ?? 0)} open connection${connections === 1 ? '' : 's'}${more}`);
    }
  }
  // Everything --json lists, the text lists too.
  const timers = (s as Partial<Pick<HostStatus, 'timers'>>).timers;
  if (timers !== undefined) lines.push('', 'timers:');
  if (timers?.length === 0) lines.push('  (none)');
  for (const t of timers ?? []) lines.push(`  #${String(t.id).padEnd(4)} ${t.kind === 'interval' ? 'every' : 'after'} ${`${t.ms} ms`.padEnd(10)} → ${t.module}.${t.fn}  fired ${t.fired}`);
  lines.push('', s.history.length > 10 ? `history (the last 10 of ${s.history.length}; all with --json):` : 'history (latest last):');
  for (const e of s.history.slice(-10)) {
    lines.push(`  ${e.at}  ${e.op.padEnd(14)} ${e.from === undefined ? '' : `${e.from} → `}${e.to}  ${e.status}${e.failedStep === undefined ? '' : `  at step ${e.failedStep}`}`);
  }
  return `${lines.join('\n')}\n`;
}
