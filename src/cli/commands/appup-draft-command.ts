import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import { draftAppup, type StateOf } from '../../appup/draft-appup.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UserError } from '../../errors/errors.js';
import { writeFileAtomic } from '../../fs/write-file-atomic.js';
import { bareVersion, display, loadProject, resolveIn } from '../../project/load-project.js';
import { findRelease } from '../../release/release-catalog.js';
import type { CommandIo } from '../io.js';
import { printDiagnostics } from '../print-diagnostics.js';
import { badProjectPaths, projectOptions } from '../project-options.js';

export interface AppupDraftArgs {
  release: string;
  from?: string;
  out?: string;
  force?: boolean;
  print?: boolean;
  json?: boolean;
  releases?: string;
  appups?: string;
  config?: string;
}

/**
 * Which modules hold state, per runtime (the draft itself is runtime-neutral):
 * - node: module state is what `initialState` returns (docs/runtime-node.md), so
 *   a module exporting it is stateful; undeclared exports: cannot tell;
 * - erlang: state lives in processes (checked by the draft itself), a plain module holds none;
 * - lua: any module may keep state in its upvalues, which relup joins: cannot tell.
 */
export const stateOf: StateOf = (module, release) => {
  if (release.runtime === 'erlang') return 'stateless';
  if (release.runtime === 'lua' || module.exports === undefined) return 'unknown';
  return module.exports.includes('initialState') ? 'stateful' : 'stateless';
};

/** `relup appup draft <version>`: write a draft appup from the differences with the newest older release (or --from). */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as AppupDraftArgs;
  const dirs = await projectOptions(args, io);
  const project = await loadProject({ cwd: io.cwd, releases: dirs.releases, appups: dirs.appups });
  const badPaths = badProjectPaths(project);
  if (badPaths.length > 0) {
    printDiagnostics(badPaths, io);
    return EXIT_USAGE;
  }
  const foundTo = findRelease(project.catalog, args.release);
  if (foundTo.value === undefined) {
    printDiagnostics(foundTo.diagnostics, io);
    return foundTo.diagnostics.some((d) => d.code === 'release-not-found') ? EXIT_USAGE : EXIT_FAILED;
  }
  const to = foundTo.value;
  let fromVersion = args.from === undefined ? undefined : bareVersion(args.from);
  if (fromVersion === undefined) {
    fromVersion = [...project.catalog.releases.keys()].filter((v) => semver.lt(v, to.version)).sort(semver.rcompare)[0];
    if (fromVersion === undefined) throw new UserError(`no release older than ${to.version} in ${project.catalog.dir} to compare with`, 'name one with --from VERSION');
  }
  const foundFrom = findRelease(project.catalog, fromVersion);
  if (foundFrom.value === undefined) {
    printDiagnostics(foundFrom.diagnostics, io);
    return foundFrom.diagnostics.some((d) => d.code === 'release-not-found') ? EXIT_USAGE : EXIT_FAILED;
  }
  const from = foundFrom.value;
  if (!semver.lt(from.version, to.version)) throw new UserError(`--from ${from.version} is not older than ${to.version}`, 'an appup describes how to reach its release from older ones: pass an older --from');

  const command = `relup appup draft ${to.version}${args.from === undefined ? '' : ` --from ${from.version}`}`;
  const draft = draftAppup({ from, to, stateOf, command });
  const file = args.out === undefined ? join(project.appupsDir, `${to.version}.yaml`) : resolveIn(io.cwd, args.out);
  if (args.print !== true) {
    const existing = await stat(file).then(() => true, () => false);
    // Never overwrite an appup someone may have edited by hand.
    if (existing && args.force !== true) throw new UserError(`${display(io.cwd, file)} already exists`, 'pass --force to overwrite it, --out FILE to write elsewhere, or --print to see the draft');
    await writeFileAtomic(file, Buffer.from(draft.text));
  }
  if (args.json === true) {
    io.stdout.write(`${JSON.stringify({ file: args.print === true ? null : display(io.cwd, file), from: from.version, to: to.version, counts: draft.counts, stubs: draft.stubs, ...(args.print === true ? { text: draft.text } : {}) }, null, 2)}\n`);
    return EXIT_OK;
  }
  if (args.print === true) {
    io.stdout.write(draft.text);
    return EXIT_OK;
  }
  const c = draft.counts;
  io.stdout.write(`wrote ${display(io.cwd, file)}: ${from.version} → ${to.version}, ${c.load} load, ${c.update} update, ${c.add} add, ${c.delete} delete, ${c.restart} restart\n`);
  if (draft.stubs.length > 0) {
    const modules = [...new Set(draft.stubs.map((s) => s.module))];
    io.stdout.write(`${modules.length} module${modules.length === 1 ? '' : 's'} need${modules.length === 1 ? 's' : ''} a decision (DECIDE comments): ${modules.slice(0, 10).join(', ')}${modules.length > 10 ? `, … (${modules.length - 10} more)` : ''}\n`);
    io.stdout.write(`relup check fails until each migration stub exists in ${to.version} (exported and listed in release.yaml) or its line is removed\n`);
  } else io.stdout.write('no module holds state across this change: the draft should pass relup check as written\n');
  return EXIT_OK;
}
