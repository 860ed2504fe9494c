import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAppup } from '../../../src/appup/parse-appup.js';
import { plan } from '../../../src/planner/plan.js';
import { releaseFromFiles } from '../../../src/release/release-from-files.js';
import type { ReleaseImage } from '../../../src/runtime/node/release-image.js';
import type { RelupScript } from '../../../src/script/script-schema.js';
import { DEMO_APPUPS, DEMO_RELEASES } from '../../helpers/repo-paths.js';

/** Release images for the runtime tests, read from files in memory. */

export function readTree(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (sub: string, prefix: string): void => {
    for (const name of readdirSync(sub).sort()) {
      if (name.startsWith('.')) continue;
      const full = join(sub, name);
      const path = prefix === '' ? name : `${prefix}/${name}`;
      if (statSync(full).isDirectory()) walk(full, path);
      else files.set(path, readFileSync(full));
    }
  };
  walk(dir, '');
  return files;
}

/** An image from files in memory (path → content); release.yaml among them. Parsed by the release layer, as a node does. */
export function imageFromFiles(input: ReadonlyMap<string, string | Uint8Array> | Record<string, string | Uint8Array>, origin = '(memory)'): ReleaseImage {
  const entries = input instanceof Map ? [...input] : Object.entries(input);
  const files = new Map<string, Buffer>(entries.map(([p, c]) => [p, Buffer.from(c)]));
  const parsed = releaseFromFiles({ files, kind: 'dir', origin }, origin);
  if (parsed.value === undefined) throw new Error(`test release ${origin} is invalid: ${JSON.stringify(parsed.diagnostics)}`);
  return { release: parsed.value, files };
}

export function imageFromDir(dir: string): ReleaseImage {
  return imageFromFiles(readTree(dir), dir);
}

export function demoFiles(version: '1.2.2' | '1.2.3'): Map<string, Buffer> {
  return readTree(join(DEMO_RELEASES, version));
}

export function demoImage(version: '1.2.2' | '1.2.3'): ReleaseImage {
  return imageFromDir(join(DEMO_RELEASES, version));
}

/** A copy of the demo release with some files replaced (string edits applied to the original text). */
export function patchedDemo(version: '1.2.2' | '1.2.3', edits: Record<string, (text: string) => string>): Map<string, Buffer> {
  const files = demoFiles(version);
  for (const [path, edit] of Object.entries(edits)) {
    const before = files.get(path)!.toString('utf8');
    const after = edit(before);
    if (after === before) throw new Error(`patch of ${version}/${path} changed nothing`);
    files.set(path, Buffer.from(after));
  }
  return files;
}

/** The relup script the planner produces for `from → to`, with `appupText` (default: the demo's appups/1.2.3.yaml). */
export function planScript(from: ReleaseImage, to: ReleaseImage, appupText?: string, appupVersion?: string): RelupScript {
  const text = appupText ?? readFileSync(join(DEMO_APPUPS, '1.2.3.yaml'), 'utf8');
  const parsed = parseAppup(text, `appups/${appupVersion ?? '1.2.3'}.yaml`);
  if (parsed.value === undefined) throw new Error(`appup: ${JSON.stringify(parsed.diagnostics)}`);
  const result = plan({ from: from.release, to: to.release, appups: new Map([[parsed.value.version, parsed.value]]) });
  if (result.script === undefined) throw new Error(`plan: ${JSON.stringify(result.diagnostics)}`);
  return result.script;
}
