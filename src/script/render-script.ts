import { styleText } from 'node:util';
import type { RelupScript, Step } from './script-schema.js';

export interface RenderOptions {
  color: boolean;
}

/**
 * The plan for a person: where it comes from, the suspend groups, the point of
 * no return, and each step with the reason it is there.
 */
export function renderScript(script: RelupScript, options: RenderOptions): string {
  const paint = (style: Parameters<typeof styleText>[0], text: string) => (options.color ? styleText(style, text) : text);
  const lines: string[] = [];
  const arrow = script.direction === 'up' ? 'upgrade' : 'downgrade';
  lines.push(paint('bold', `${script.name} ${script.from.version} → ${script.to.version} (${arrow}, ${script.runtime} runtime)`));
  lines.push(`from ${script.appup.file}, ${script.appup.section} entry #${script.appup.entry + 1} "${script.appup.versions}"`);
  lines.push(`release ${script.to.version} hash ${script.to.hash.slice(0, 16)}…`);
  lines.push('');

  const count = script.groups.length;
  lines.push(paint('bold', `${count} suspend group${count === 1 ? '' : 's'}`) + (count > 1 ? ' (unrelated modules switch in separate, shorter windows)' : ''));
  for (const g of script.groups) {
    const procs = g.processes.length === 0 ? 'suspends nothing' : `suspends ${g.processes.join(', ')}`;
    lines.push(`  group ${g.id}: ${g.modules.join(' → ')}  (${procs})`);
  }
  lines.push('');

  const width = String(script.steps.length).length;
  let group = -1;
  lines.push(paint('bold', 'Before the point of no return') + ' (a failure here changes nothing):');
  script.steps.forEach((step, i) => {
    if (step.op === 'point_of_no_return') {
      lines.push('');
      lines.push(paint(['bold', 'magenta'], `── point of no return ──`) + ' from here a failure restores old code and state and resumes everything');
      return;
    }
    const stepGroup = 'group' in step ? step.group : undefined;
    if (stepGroup !== undefined && stepGroup !== group) {
      group = stepGroup;
      lines.push('');
      lines.push(paint('bold', `Group ${group}`) + `: ${script.groups[group]?.modules.join(', ') ?? ''}`);
    } else if (stepGroup === undefined && group !== -1 && i > script.pointOfNoReturn) {
      group = -1;
      lines.push('');
      lines.push(paint('bold', 'After the groups') + ':');
    }
    const n = String(i + 1).padStart(width, ' ');
    lines.push(`  ${n}. ${paint('cyan', step.op)} ${describe(step)}`);
    lines.push(`  ${' '.repeat(width)}  ${paint('dim', step.reason)}`);
  });
  return `${lines.join('\n')}\n`;
}

function describe(step: Step): string {
  switch (step.op) {
    case 'verify_release':
      return `${step.version} (sha256 ${step.hash.slice(0, 12)}…)`;
    case 'check_version':
      return `node runs ${step.expect}`;
    case 'stage':
      return `${step.module} (sha256 ${step.hash.slice(0, 12)}…)`;
    case 'check_function':
      return `${step.module}.${step.function} in ${step.release === 'from' ? 'running' : 'incoming'} code`;
    case 'check_process':
    case 'stop':
    case 'start':
    case 'restart':
    case 'resume':
      return step.process;
    case 'point_of_no_return':
      return '';
    case 'suspend':
      return `${step.process} (timeout ${step.timeout} ms)`;
    case 'switch':
      return `${step.module} (${step.kind})`;
    case 'migrate': {
      const targets = ['module state', ...step.processes.map((p) => `process ${p}`)].join(', ');
      return `${step.module}.${step.function} ${step.direction} ${step.version} → ${targets}${step.extra === null ? '' : ` extra=${JSON.stringify(step.extra)}`}`;
    }
    case 'apply':
      return `${step.module}.${step.function}(${step.args.map((a) => JSON.stringify(a)).join(', ')})`;
    case 'delete':
      return step.module;
    case 'purge':
      return `${step.module} (${step.mode})`;
    case 'commit':
      return step.version;
  }
}
