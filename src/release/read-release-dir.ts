import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { error, hasErrors, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import { comparePaths, unsafePathReason } from './release-path.js';
import type { ReleaseFiles, ReleaseLimits } from './release-files.js';

/**
 * Every regular file under `root`, recursively; names starting with `.` are
 * skipped (editor and VCS droppings are not part of a release). A symlink or
 * any other non-regular file is refused: a release must mean the same bytes
 * wherever it is copied, and a link would not.
 */
export async function readDirFiles(root: string, origin: string, limits: ReleaseLimits): Promise<Checked<ReleaseFiles>> {
  const diagnostics: Diagnostic[] = [];
  const found: { path: string; full: string; size: number }[] = [];
  let total = 0;

  const walk = async (dir: string, prefix: string): Promise<void> => {
    const names = (await readdir(dir)).sort(comparePaths);
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const full = join(dir, name);
      const where = { file: `${origin}/${path}` };
      const s = await lstat(full);
      const reason = unsafePathReason(path);
      if (reason !== undefined) {
        diagnostics.push(error('release-unsafe-file', `${JSON.stringify(path)}: ${reason}`, { file: origin }, 'rename it: release paths are plain relative names'));
      } else if (s.isDirectory()) {
        await walk(full, path);
      } else if (s.isFile()) {
        found.push({ path, full, size: s.size });
        total += s.size;
        if (s.size > limits.maxFileBytes) {
          diagnostics.push(error('release-too-large', `${path} is ${s.size} bytes, over the ${limits.maxFileBytes}-byte limit for one file`, where, 'keep large assets out of the release'));
        }
      } else {
        const what = s.isSymbolicLink() ? 'a symbolic link' : 'not a regular file';
        diagnostics.push(error('release-unsafe-file', `${path} is ${what}`, where, 'replace it with a copy of the file it stands for, or remove it'));
      }
    }
  };
  await walk(root, '');

  if (found.length > limits.maxEntries) {
    diagnostics.push(error('release-too-large', `${origin} holds ${found.length} files, over the limit of ${limits.maxEntries}`, { file: origin }));
  }
  if (total > limits.maxTotalBytes) {
    diagnostics.push(error('release-too-large', `${origin} holds ${total} bytes, over the limit of ${limits.maxTotalBytes}`, { file: origin }));
  }
  if (hasErrors(diagnostics)) return { value: undefined, diagnostics };

  found.sort((a, b) => comparePaths(a.path, b.path));
  const files = new Map<string, Buffer>();
  for (const f of found) files.set(f.path, await readFile(f.full));
  return { value: { files, kind: 'dir', origin }, diagnostics };
}
