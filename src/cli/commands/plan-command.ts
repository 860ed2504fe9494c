import { basename } from 'node:path';
import semver from 'semver';
import { versionInName } from '../../appup/load-appups.js';
import { hasErrors, type Diagnostic } from '../../diagnostics/diagnostic.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from '../../errors/errors.js';
import { findPath } from '../../planner/find-path.js';
import { writeFileAtomic } from '../../fs/write-file-atomic.js';
import { findRelease } from '../../release/release-catalog.js';
import type { Release } from '../../release/release-model.js';
import { renderScript } from '../../script/render-script.js';
import { serializeScript } from '../../script/serialize-script.js';
import { loadProject, resolveIn } from '../../project/load-project.js';
import type { CommandIo } from '../io.js';
import { badProjectPaths, projectOptions } from '../project-options.js';
import { printDiagnostics } from '../print-diagnostics.js';
import { printPath } from './plan-path-output.js';

export interface PlanArgs {
  from: string;
  to: string;
  releases?: string;
  appups?: string;
  config?: string;
  json?: boolean;
  out?: string;
}

/** `relup plan <from> <to>`: the script for one transition, for a person or (--json) a machine. */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as PlanArgs;
  const dirs = await projectOptions(args, io);
  const project = await loadProject({ cwd: io.cwd, releases: dirs.releases, appups: dirs.appups });
  const badPaths = badProjectPaths(project);
  if (badPaths.length > 0) return fail(badPaths, io, args, EXIT_USAGE);
  const found = [findRelease(project.catalog, args.from), findRelease(project.catalog, args.to)];
  const [from, to] = found.map((f) => f.value);
  if (from === undefined || to === undefined) {
    // A broken release answers with its own located errors (findings, exit 1);
    // a version that is not there at all is bad input (exit 2).
    const why = found.flatMap((f) => f.diagnostics);
    const badInput = why.some((d) => d.code === 'release-not-found');
    return fail(why, io, args, badInput ? EXIT_USAGE : EXIT_FAILED);
  }

  const appupDiagnostics = relevantAppupDiagnostics(project.appupDiagnostics, newer(from, to).version);
  if (hasErrors(appupDiagnostics)) return fail(appupDiagnostics, io, args, EXIT_FAILED);

  // No direct appup entry: the shortest chain of releases, one script per hop (docs/planner.md, Multi-hop paths).
  const route = findPath({ from, to, releases: project.catalog.releases.values(), appups: project.appups });
  if (route.path !== undefined && route.hops.length > 1) return printPath(route.path, route.hops, [...appupDiagnostics, ...route.diagnostics], args, io);
  const result = { script: route.hops[0], diagnostics: route.diagnostics };
  const diagnostics = [...appupDiagnostics, ...result.diagnostics];
  // Naming one release twice is bad input, like naming one that does not exist.
  if (result.script === undefined) return fail(diagnostics, io, args, diagnostics.some((d) => d.code === 'plan-same-release') ? EXIT_USAGE : EXIT_FAILED);

  const text = serializeScript(result.script);
  if (args.out !== undefined) await writeFileAtomic(resolveIn(io.cwd, args.out), Buffer.from(text));
  printDiagnostics(diagnostics, io);
  if (args.json === true) io.stdout.write(text);
  else {
    io.stdout.write(renderScript(result.script, { color: io.color }));
    if (args.out !== undefined) io.stdout.write(`\nscript written to ${args.out}\n`);
  }
  return EXIT_OK;
}

function fail(diagnostics: Diagnostic[], io: CommandIo, args: PlanArgs, code: number): number {
  printDiagnostics(diagnostics, io);
  if (args.json === true) io.stdout.write(`${JSON.stringify({ ok: false, diagnostics }, null, 2)}\n`);
  return code;
}

function newer(a: Release, b: Release): Release {
  return semver.gt(a.version, b.version) ? a : b;
}

/** Only the appup of the newer release matters for one transition; `relup check` reports the rest. */
function relevantAppupDiagnostics(diagnostics: readonly Diagnostic[], version: string): Diagnostic[] {
  return diagnostics.filter((d) => d.file !== undefined && versionInName(basename(d.file)) === version);
}
