import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { error, hasErrors, type Diagnostic } from '../diagnostics/diagnostic.js';
import { YamlSource } from '../yaml/yaml-source.js';
import type { Appup } from './appup-model.js';
import { parseAppupSource } from './parse-appup.js';

export interface LoadedAppups {
  /** Appups without errors, by the version they describe. */
  appups: Map<string, Appup>;
  diagnostics: Diagnostic[];
}

const APPUP_FILE = /\.ya?ml$/i;

/**
 * Read every `*.yaml` / `*.yml` in `dir` (not recursing, skipping dot files)
 * as an appup. `displayDir` is how `dir` appears in diagnostics (default: `dir`
 * as given, so a relative dir gives relative paths). Files are read in name
 * order, so diagnostics and duplicate detection are deterministic. A file
 * with any error is left out of `appups`; the first file for a version wins.
 */
export async function loadAppups(dir: string, displayDir: string = dir): Promise<LoadedAppups> {
  const appups = new Map<string, Appup>();
  const diagnostics: Diagnostic[] = [];
  let names: string[];
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    names = entries
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && APPUP_FILE.test(e.name) && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort(compareNames);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    diagnostics.push(
      error(
        'appup-dir-unreadable',
        missing ? `appup directory ${displayDir} does not exist` : `cannot read appup directory ${displayDir}: ${messageOf(e)}`,
        { file: displayDir },
        missing ? `create it (mkdir ${displayDir}) or point relup at the right one` : 'check that it is a readable directory',
      ),
    );
    return { appups, diagnostics };
  }

  const fileOf = new Map<string, string>();
  for (const name of names) {
    const file = join(displayDir, name);
    let text: string;
    try {
      text = await readFile(join(dir, name), 'utf8');
    } catch (e) {
      diagnostics.push(error('appup-file-unreadable', `cannot read ${file}: ${messageOf(e)}`, { file }, 'check that it is a readable file'));
      continue;
    }
    const parsed = YamlSource.parse(text, file);
    diagnostics.push(...parsed.diagnostics);
    if (hasErrors(parsed.diagnostics)) continue;
    const { value: appup, diagnostics: found } = parseAppupSource(parsed.source);
    diagnostics.push(...found);
    if (appup === undefined) continue;

    const named = versionInName(name);
    const at = parsed.source.locateKey([], 'version');
    if (appup.version !== named) {
      diagnostics.push(
        error(
          'appup-file-name-mismatch',
          `${file} says version ${appup.version}, but its name says ${named}`,
          at,
          `rename the file to ${appup.version}.yaml, or set "version: ${named}" if the name is right`,
        ),
      );
      continue;
    }
    const first = fileOf.get(appup.version);
    if (first !== undefined) {
      diagnostics.push(
        error(
          'appup-duplicate-version',
          `${file} describes ${appup.version}, which ${first} already describes`,
          at,
          `keep one appup per version: merge the two files and delete ${file}`,
        ),
      );
      continue;
    }
    fileOf.set(appup.version, file);
    appups.set(appup.version, appup);
  }
  return { appups, diagnostics };
}

/** `1.2.3.yaml`, `v1.2.3.yml` → `1.2.3`. */
export function versionInName(fileName: string): string {
  return fileName.replace(APPUP_FILE, '').replace(/^v/, '');
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
