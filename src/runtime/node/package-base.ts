import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import type { BasePackage } from '../../release/release-model.js';
import { RuntimeError, messageOf } from './runtime-error.js';

/**
 * The node's base: the npm packages a release declares (`packages:` in
 * release.yaml). Like OTP's kernel and stdlib they are loaded once, with
 * Node's own loader (so its module cache), and shared by every version of
 * every module: they are never hot-swapped. What was loaded is recorded
 * (name, version, hash of the installed tree) so that a changed
 * `node_modules` is refused instead of silently mixing old and new code.
 */
export class PackageBase {
  private readonly load: NodeJS.Require;
  /** What the node loaded (or would load) per package, fixed at the first look. */
  private readonly seen = new Map<string, BasePackage>();

  /** `from`: the directory whose node_modules hold the base (the project root). */
  constructor(readonly from: string) {
    this.load = createRequire(join(from, 'relup-base.js'));
  }

  /** Require `id` (a package or a path inside one) for module code; only packages the release declares. */
  require(id: string, declared: readonly string[], filename: string): unknown {
    const name = packageNameOf(id);
    if (name === undefined || !declared.includes(name)) {
      throw new RuntimeError(
        'require-denied',
        `require(${JSON.stringify(id)}) in ${filename}: only Node.js built-in modules and the packages the release declares can be required (${name === undefined ? 'a relative or absolute path is not a package' : `package "${name}" is not under packages: in release.yaml`})`,
        name === undefined ? 'code the module needs must be a module of the release: call it through relup.module(name)' : `add it to packages: in release.yaml (packages: [${name}]), install it in ${this.from}/node_modules, and restart the node on that release`,
      );
    }
    this.describe(name);
    return this.load(id);
  }

  /** Name, version and tree hash of `name` as the node saw it first. */
  describe(name: string): BasePackage {
    let known = this.seen.get(name);
    if (known === undefined) {
      known = describeInstalled(name, this.from);
      this.seen.set(name, known);
    }
    return known;
  }

  /**
   * The base a release would run on must be the one already loaded: Node keeps
   * a package's code once required, so a `node_modules` changed since would
   * give the new version old code for some packages and new for others.
   */
  checkUnchanged(packages: readonly string[], what: string): void {
    const changed: string[] = [];
    for (const name of packages) {
      const was = this.seen.get(name);
      if (was === undefined) continue;
      const now = describeInstalled(name, this.from);
      if (now.hash !== was.hash) changed.push(`${name} ${was.version} → ${now.version}${now.version === was.version ? ' (same version, other files)' : ''}`);
    }
    if (changed.length > 0) {
      throw new RuntimeError('base-changed', `${what} would run on a changed base: ${changed.join(', ')} in ${this.from}/node_modules differ from what this node loaded`, 'a package is loaded once and never hot-swapped: restart the node on the new release, or restore node_modules as the node loaded it');
    }
  }

  list(): BasePackage[] {
    return [...this.seen.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

/** `ws` → ws, `ws/lib/x.js` → ws, `@a/b/c` → @a/b; a relative or absolute path → undefined. */
export function packageNameOf(id: string): string | undefined {
  if (typeof id !== 'string' || id === '' || id.startsWith('.') || id.startsWith('/') || id.includes('\\') || id.includes(':')) return undefined;
  const parts = id.split('/');
  if (id.startsWith('@')) return parts.length >= 2 && parts[1] !== '' ? `${parts[0]}/${parts[1]}` : undefined;
  return parts[0];
}

/**
 * Name, version and a hash of the installed package: every file under its
 * directory (its own node_modules included), plus, recursively, the packages
 * its package.json depends on as Node resolves them from there.
 */
export function describeInstalled(name: string, from: string): BasePackage {
  const hash = createHash('sha256');
  let version = '?';
  const done = new Set<string>();
  const visit = (pkg: string, base: string, top: boolean): void => {
    let manifestPath: string;
    try {
      manifestPath = createRequire(join(base, 'relup-base.js')).resolve(`${pkg}/package.json`);
    } catch (e) {
      if (!top) return; // an optional dependency that is not installed
      throw new RuntimeError('base-missing', `package "${pkg}" is not installed in ${from}/node_modules (${messageOf(e)})`, `npm install ${pkg} in ${from}, or remove it from packages: in release.yaml`);
    }
    const dir = dirname(manifestPath);
    if (done.has(dir)) return;
    done.add(dir);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version?: string; dependencies?: Record<string, string> };
    if (top) version = manifest.version ?? '?';
    hash.update(`package ${pkg}@${manifest.version ?? '?'}\n`);
    for (const file of listFiles(dir)) hash.update(`${createHash('sha256').update(readFileSync(join(dir, file))).digest('hex')}  ${file}\n`);
    for (const dep of Object.keys(manifest.dependencies ?? {}).sort()) visit(dep, dir, false);
  };
  visit(name, from, true);
  return { name, version, hash: hash.digest('hex') };
}

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() || (entry.isSymbolicLink() && statSync(path, { throwIfNoEntry: false })?.isFile() === true)) out.push(relative(root, path).split(sep).join('/'));
    }
  };
  walk(root);
  return out;
}
