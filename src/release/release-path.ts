/**
 * Path rules shared by the directory reader, the bundle reader and unpacking.
 * A release path is relative, `/`-separated, and can only name something
 * inside the release: anything else could write outside the target on unpack
 * or make the release hash ambiguous (one line per file, so no newlines).
 */

/** Why `path` is not a safe release path, or undefined when it is. */
export function unsafePathReason(path: string): string | undefined {
  if (path === '') return 'the path is empty';
  if (path.startsWith('/')) return 'the path is absolute';
  if (/^[A-Za-z]:/.test(path)) return 'the path starts with a drive letter';
  if (path.includes('\\')) return 'the path contains a backslash';
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'the path contains a control character';
  for (const segment of path.split('/')) {
    if (segment === '..') return 'the path contains a ".." segment';
    if (segment === '.') return 'the path contains a "." segment';
    if (segment === '') return 'the path contains an empty segment';
  }
  return undefined;
}

/**
 * Tar tools commonly write `./a/b` and `dir/`; accept those spellings and
 * check the rest strictly.
 */
export function normalizeEntryPath(path: string): string {
  let p = path;
  while (p.startsWith('./')) p = p.slice(2);
  while (p.endsWith('/') && p.length > 1) p = p.slice(0, -1);
  return p;
}

/** Plain code-unit order, the order of every list relup writes. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The ancestors of `path`: `a/b/c` → `a`, `a/b`. */
export function parentPaths(path: string): string[] {
  const parts = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}
