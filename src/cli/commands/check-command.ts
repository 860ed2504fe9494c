import { hasErrors } from '../../diagnostics/diagnostic.js';
import { formatGithubAnnotation } from '../../diagnostics/format-diagnostic.js';
import { sortDiagnostics } from '../../diagnostics/diagnostic.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from '../../errors/errors.js';
import { checkProject } from '../../project/check-project.js';
import { checkProjectModules } from '../../project/check-modules.js';
import { loadProject, resolveIn } from '../../project/load-project.js';
import { liveCheck, readFixture, type LiveTransition } from '../../client/live-check.js';
import type { CommandIo } from '../io.js';
import { badProjectPaths, projectOptions } from '../project-options.js';
import { dedupe, printDiagnostics } from '../print-diagnostics.js';

export interface CheckArgs {
  releases?: string;
  appups?: string;
  config?: string;
  json?: boolean;
  reporter: 'text' | 'github';
  live?: boolean;
  fixture?: string;
}

/** `relup check`: every release and appup validated, every declared transition planned both ways. */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as CheckArgs;
  const dirs = await projectOptions(args, io);
  const project = await loadProject({ cwd: io.cwd, releases: dirs.releases, appups: dirs.appups });
  // A releases directory that does not exist is a wrong path (bad input), not a finding about the project.
  const missingDir = badProjectPaths(project);
  if (missingDir.length > 0) {
    if (args.json === true) io.stdout.write(`${JSON.stringify({ ok: false, diagnostics: missingDir }, null, 2)}\n`);
    else printDiagnostics(missingDir, io);
    return EXIT_USAGE;
  }
  const report = checkProject(project);
  // Every module of every release is compiled the way its nodes would load it.
  const modules = await checkProjectModules(project);
  report.diagnostics.push(...modules.diagnostics);
  let live: LiveTransition[] | undefined;
  const skipped: { from: string; to: string; reason: string }[] = [];
  if (args.live === true) {
    // Only transitions that plan cleanly both ways, between releases whose modules load, are worth a scratch node;
    // the others are named as skipped, never left out in silence.
    const planned = report.transitions.filter((t) => {
      if (t.direction !== 'up') return false;
      const back = report.transitions.find((d) => d.direction === 'down' && d.from === t.to && d.to === t.from);
      const reason = !t.ok || back?.ok !== true ? 'it cannot be planned both ways' : modules.failed.has(t.from) || modules.failed.has(t.to) ? 'a module of one of its releases does not load' : undefined;
      if (reason !== undefined) skipped.push({ from: t.from, to: t.to, reason });
      return reason === undefined;
    });
    const fixture = args.fixture === undefined ? undefined : await readFixture(resolveIn(io.cwd, args.fixture));
    const result = await liveCheck(project, planned.map((t) => [t.from, t.to] as [string, string]), fixture);
    live = result.transitions;
    report.diagnostics.push(...result.diagnostics);
  }
  const diagnostics = sortDiagnostics(dedupe(report.diagnostics));
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  const ok = !hasErrors(diagnostics);

  if (args.json === true) {
    io.stdout.write(`${JSON.stringify({ ok, releases: report.releases, appups: report.appups, transitions: report.transitions, modulesCompiled: modules.compiled, ...(live === undefined ? {} : { live, liveSkipped: skipped }), errors, warnings, diagnostics }, null, 2)}\n`);
    return ok ? EXIT_OK : EXIT_FAILED;
  }
  if (args.reporter === 'github') {
    for (const d of diagnostics) io.stdout.write(`${formatGithubAnnotation(d)}\n`);
  } else {
    for (const t of report.transitions) {
      const mark = t.ok ? '✓' : '✗';
      const detail = t.ok ? `${t.steps} steps, ${t.groups} suspend group${t.groups === 1 ? '' : 's'}` : 'cannot be planned';
      io.stdout.write(`${mark} ${t.from} → ${t.to} (${t.direction}): ${detail}\n`);
    }
    for (const t of live ?? []) {
      const windows = [...t.suspensionMs.up, ...t.suspensionMs.down].filter((x): x is number => x !== null);
      const worst = windows.length === 0 ? '' : `, longest suspension ${Math.max(...windows).toFixed(2)} ms`;
      const what = t.stateChecked === 'initial' ? 'initial state only (no fixture traffic or states)' : 'fixture state';
      const ignored = t.ignored > 0 ? ` (${t.ignored} ignored difference${t.ignored === 1 ? '' : 's'})` : '';
      const result = t.differences.length > 0 ? `, ${t.differences.length} state difference${t.differences.length === 1 ? '' : 's'}` : t.ok ? `, ${what} identical after the round trip${ignored}` : '';
      io.stdout.write(`${t.ok ? '✓' : '✗'} live ${t.from} → ${t.to} → ${t.from} on a scratch node: up ${t.up}, down ${t.down}${result}${worst}\n`);
    }
    for (const s of skipped) io.stdout.write(`✗ live ${s.from} → ${s.to} → ${s.from} not run: ${s.reason} (see the errors below)\n`);
    if (diagnostics.length > 0) io.stdout.write('\n');
    printDiagnostics(diagnostics, io, 'stdout');
  }
  io.stdout.write(
    `\n${report.releases.length} release${report.releases.length === 1 ? '' : 's'} (${modules.compiled} module${modules.compiled === 1 ? '' : 's'} compiled), ${report.appups.length} appup${report.appups.length === 1 ? '' : 's'}, ${report.transitions.length} transition${report.transitions.length === 1 ? '' : 's'} planned: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}\n`,
  );
  return ok ? EXIT_OK : EXIT_FAILED;
}
