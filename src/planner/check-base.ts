import { error, type Diagnostic } from '../diagnostics/diagnostic.js';
import type { BasePackage, Release } from '../release/release-model.js';

/**
 * The base (packages a release loads with its runtime's own loader: npm
 * packages for Node.js) is loaded once and never hot-swapped, as OTP's kernel
 * and stdlib. A plan whose two releases declare different packages, or record
 * a different version or installed tree of one, cannot be honoured in place:
 * it is refused, naming the packages and the way out. Pure: the base is data.
 */
export function checkBase(from: Release, to: Release): Diagnostic[] {
  const before = new Map((from.packages ?? []).map((name) => [name, recorded(from, name)]));
  const after = new Map((to.packages ?? []).map((name) => [name, recorded(to, name)]));
  const changes: string[] = [];
  for (const [name, was] of before) {
    if (!after.has(name)) changes.push(`${name} removed`);
    else {
      const now = after.get(name);
      if (was !== undefined && now !== undefined && (was.version !== now.version || was.hash !== now.hash)) {
        changes.push(was.version === now.version ? `${name} ${was.version} (other installed files)` : `${name} ${was.version} → ${now.version}`);
      }
    }
  }
  for (const name of after.keys()) if (!before.has(name)) changes.push(`${name} added`);
  if (changes.length === 0) return [];
  return [
    error(
      'plan-base-changed',
      `the base changes between ${from.version} and ${to.version} (${changes.join(', ')}): packages are loaded once and never hot-swapped, so a live upgrade cannot honour it`,
      { file: to.manifestFile, line: to.packagesLine ?? 1 },
      `restart the node on ${to.version} (relup node start --release …), or keep packages: and node_modules as ${from.version} has them`,
    ),
  ];
}

function recorded(release: Release, name: string): BasePackage | undefined {
  return release.base?.find((p) => p.name === name);
}
