import semver from 'semver';

/**
 * Version patterns of appup entries (`from:` / `to:`): an exact version or a
 * semver range, as npm understands them. Matching is the one rule the planner
 * and the appup checks must agree on, so it lives here and nowhere else.
 */

/** Semantic Versioning 2.0.0, the regular expression published at semver.org. */
export const EXACT_VERSION =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** A full version such as `1.2.3`, `1.3.0-rc.1` or `1.2.3+build.5`; not `v1.2.3`, not `1.2`. */
export function isExactVersion(pattern: string): boolean {
  // semver.valid adds the limits the pattern cannot express: length and safe-integer parts.
  return EXACT_VERSION.test(pattern) && semver.valid(pattern) !== null;
}

/** An exact version or a non-blank semver range (`>=1.2.0 <1.2.3`, `^1.1.0`, `1.1.x`, `*`). */
export function isVersionPattern(pattern: string): boolean {
  if (isExactVersion(pattern)) return true;
  // validRange("") is "*": a blank pattern is a mistake, not "any version".
  return pattern.trim() !== '' && semver.validRange(pattern) !== null;
}

/**
 * Whether an entry's pattern selects `version`: string equality for an exact
 * version (so `1.2.2` never matches `1.2.2+build`), `semver.satisfies` for a
 * range (pre-releases only match ranges that name a pre-release of the same
 * major.minor.patch, as in npm). Never throws; an invalid pattern matches nothing.
 */
export function entryMatches(pattern: string, version: string): boolean {
  if (isExactVersion(pattern)) return pattern === version;
  return semver.satisfies(version, pattern);
}

/** The first entry whose `versions` matches `version`: entries are tried in order and the first match wins. */
export function matchEntry<E extends { readonly versions: string }>(
  entries: readonly E[],
  version: string,
): { entry: E; index: number } | undefined {
  for (let index = 0; index < entries.length; index++) {
    const entry = entries[index]!;
    if (entryMatches(entry.versions, version)) return { entry, index };
  }
  return undefined;
}
