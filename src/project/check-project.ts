import { basename } from 'node:path';
import semver from 'semver';
import { versionInName } from '../appup/load-appups.js';
import { entryMatches } from '../appup/match-entry.js';
import { error, hasErrors, warning, type Diagnostic } from '../diagnostics/diagnostic.js';
import { plan } from '../planner/plan.js';
import type { RelupScript } from '../script/script-schema.js';
import type { Appup } from '../appup/appup-model.js';
import type { Project } from './load-project.js';

export interface TransitionReport {
  from: string;
  to: string;
  direction: 'up' | 'down';
  ok: boolean;
  steps: number;
  groups: number;
}

export interface CheckReport {
  releases: string[];
  appups: string[];
  transitions: TransitionReport[];
  diagnostics: Diagnostic[];
}

/**
 * The static CI dry run: every declared transition is planned in both
 * directions, because an upgrade without a way back is not a release step we
 * can stand behind. Pure over an already-loaded project.
 */
export function checkProject(project: Project): CheckReport {
  const { catalog, appups } = project;
  const diagnostics: Diagnostic[] = [...catalog.diagnostics, ...project.appupDiagnostics];
  const versions = [...catalog.releases.keys()].sort(semver.compare);
  const pairs = new Map<string, [string, string]>();

  for (const version of [...appups.keys()].sort(semver.compare)) {
    const appup = appups.get(version)!;
    if (!catalog.releases.has(version)) {
      // A release that is there but broken was reported at its release.yaml; this appup is not the problem.
      if (catalog.broken?.has(version) === true) continue;
      diagnostics.push(error('check-appup-without-release', `${appup.file} describes version ${version}, which is not in ${catalog.dir}`, { file: appup.file, line: appup.line }, `add ${catalog.dir}/${version}/release.yaml or remove this appup`));
      continue;
    }
    const older = versions.filter((v) => semver.lt(v, version));
    for (const [section, entries] of [['up', appup.up], ['down', appup.down]] as const) {
      for (const entry of entries) {
        const matched = older.filter((v) => entryMatches(entry.versions, v));
        // An entry for a release that is there but broken: the release's own errors say why it was not checked.
        const brokenMatch = [...(catalog.broken?.keys() ?? [])].some((v) => semver.valid(v) !== null && semver.lt(v, version) && entryMatches(entry.versions, v));
        if (matched.length === 0 && !brokenMatch) {
          diagnostics.push(warning('check-entry-matches-no-release', `${section} entry "${entry.versions}" matches no release in ${catalog.dir}, so it was not checked`, { file: appup.file, line: entry.line }, 'add the release it is meant for, or remove the entry'));
        }
        for (const v of matched) pairs.set(`${v} ${version}`, [v, version]);
      }
    }
  }
  // An appup that failed to parse was already reported; do not also call its release unreachable.
  const broken = new Set(project.appupDiagnostics.flatMap((d) => (d.file === undefined ? [] : [versionInName(basename(d.file))])));
  for (const version of versions) {
    if (version !== versions[0] && !appups.has(version) && !broken.has(version)) {
      const release = catalog.releases.get(version)!;
      diagnostics.push(warning('check-release-unreachable', `no appup describes how to reach or leave ${version}`, { file: release.manifestFile }, `write an appup ${version}.yaml in the appups directory (see docs/appup.md)`));
    }
  }

  const transitions: TransitionReport[] = [];
  for (const [older, newer] of [...pairs.values()].sort((a, b) => semver.compare(a[0], b[0]) || semver.compare(a[1], b[1]))) {
    for (const [fromV, toV] of [[older, newer], [newer, older]] as const) {
      const result = plan({ from: catalog.releases.get(fromV)!, to: catalog.releases.get(toV)!, appups });
      diagnostics.push(...result.diagnostics);
      if (result.script !== undefined) diagnostics.push(...deletedState(result.script, appups));
      transitions.push({
        from: fromV,
        to: toV,
        direction: fromV === older ? 'up' : 'down',
        ok: result.script !== undefined && !hasErrors(result.diagnostics),
        steps: result.script?.steps.length ?? 0,
        groups: result.script?.groups.length ?? 0,
      });
    }
  }
  return { releases: versions, appups: [...appups.keys()].sort(semver.compare), transitions, diagnostics };
}

/**
 * A `delete` discards the module's state with its code: nothing migrates it,
 * and the way back starts the module from its initial state. Easy to miss in
 * an appup, so check warns at the instruction.
 */
function deletedState(script: RelupScript, appups: ReadonlyMap<string, Appup>): Diagnostic[] {
  const appup = appups.get(script.appup.version);
  const entry = appup?.[script.appup.section][script.appup.entry];
  if (appup === undefined || entry === undefined) return [];
  return script.steps.flatMap((step) => {
    if (step.op !== 'delete') return [];
    const ins = entry.instructions.find((i) => i.op === 'delete' && i.module === step.module);
    return [
      warning(
        'check-delete-discards-state',
        `delete: ${step.module} (${script.from.version} → ${script.to.version}) discards its module state; nothing migrates it`,
        { file: appup.file, ...(ins === undefined ? { line: entry.line } : { line: ins.line }) },
        `if ${step.module}'s state matters, keep the module (an update with a migration) instead of deleting it`,
      ),
    ];
  });
}
