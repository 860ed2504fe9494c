import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, rename, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { x as untar } from 'tar';

/**
 * Silly, the Lua server framework the Lua runtime runs on, built once from
 * the vendored source into `<repo>/.cache/silly/` (ignored by git): used by
 * the tests, the demo and CI. Offline: `make MALLOC=glibc` needs no
 * submodule (see ../shared/vendor/README.md).
 */

/** The repository root (this file is src/runtime/lua/ or dist/runtime/lua/). */
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** The agent's and the join's Lua code: `require "relup.join"` finds it through `<dir>/?.lua`. */
export const LUA_LIB_DIR = join(REPO_ROOT, 'src', 'runtime', 'lua');

const TARBALL_PREFIX = 'silly-';

export interface SillyTree {
  /** The source tree (`lualib/silly/patch.lua` is there before any build). */
  dir: string;
  /** The `silly` binary, once built. */
  binary: string;
}

/** Where the vendored Silly tarball is: $SILLY_VENDOR (a file or directory), else ../shared/vendor next to the clone. */
export async function findSillyTarball(root = REPO_ROOT): Promise<string | undefined> {
  const hint = process.env['SILLY_VENDOR'];
  const candidates = hint !== undefined && hint !== '' ? [resolve(hint)] : [resolve(root, '..', 'shared', 'vendor')];
  for (const c of candidates) {
    const s = await stat(c).catch(() => undefined);
    if (s?.isFile() === true) return c;
    if (s?.isDirectory() === true) {
      const name = (await readdir(c)).filter((n) => n.startsWith(TARBALL_PREFIX) && n.endsWith('.tar.gz')).sort()[0];
      if (name !== undefined) return join(c, name);
    }
  }
  return undefined;
}

function cacheDir(root: string): string {
  return join(root, '.cache', 'silly');
}

/** Unpack the vendored source (once) and return its tree; undefined when no tarball is found. */
export async function sillySource(root = REPO_ROOT): Promise<SillyTree | undefined> {
  const dir = join(cacheDir(root), 'silly');
  if (existsSync(join(dir, 'Makefile'))) return { dir, binary: join(dir, 'silly') };
  const tarball = await findSillyTarball(root);
  if (tarball === undefined) return undefined;
  // Unpacked aside then renamed: a concurrent caller never sees half a tree.
  const tmp = join(cacheDir(root), `unpack-${process.pid}-${Date.now()}`);
  await mkdir(tmp, { recursive: true });
  try {
    await untar({ file: tarball, cwd: tmp });
    if (!existsSync(dir)) await rename(join(tmp, 'silly'), dir).catch((e: unknown) => {
      if (!existsSync(join(dir, 'Makefile'))) throw e;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { dir, binary: join(dir, 'silly') };
}

/**
 * Build Silly once (about 25 s on 2 cores) and return its tree. Concurrent
 * callers (parallel test files) wait for one build through a lock directory.
 * Throws with the build log's tail when make fails.
 */
export async function buildSilly(root = REPO_ROOT, log: (line: string) => void = () => undefined): Promise<SillyTree | undefined> {
  const tree = await sillySource(root);
  if (tree === undefined) return undefined;
  if (existsSync(tree.binary)) return tree;
  const lock = join(cacheDir(root), 'build.lock');
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      // Someone else builds: wait for the binary, or for a stale lock (a killed build) to be old enough to take over.
      const s = await stat(lock).catch(() => undefined);
      if (s !== undefined && Date.now() - s.mtimeMs > 10 * 60_000) await rm(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 500));
      if (existsSync(tree.binary)) return tree;
    }
  }
  try {
    if (existsSync(tree.binary)) return tree;
    log(`building Silly in ${tree.dir} (make -j2 MALLOC=glibc, about 25 s)`);
    const result = await execa('make', ['-j2', 'MALLOC=glibc'], { cwd: tree.dir, all: true, reject: false });
    if (result.exitCode !== 0 || !existsSync(tree.binary)) {
      const tail = (result.all ?? '').split('\n').slice(-20).join('\n');
      throw new Error(`building Silly failed (make exited ${result.exitCode}); it needs gcc, make and libssl-dev:\n${tail}`);
    }
    return tree;
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/**
 * The silly binary to run: an explicit path (flag or config) wins, then
 * $SILLY, then the build under .cache/silly (built on demand when `build`).
 */
export async function resolveSilly(options: { path?: string; build?: boolean; root?: string } = {}): Promise<string | undefined> {
  const explicit = options.path ?? (process.env['SILLY'] !== undefined && process.env['SILLY'] !== '' ? process.env['SILLY'] : undefined);
  if (explicit !== undefined) return resolve(explicit);
  const root = options.root ?? REPO_ROOT;
  const tree = options.build === true ? await buildSilly(root) : await sillySource(root);
  return tree !== undefined && existsSync(tree.binary) ? tree.binary : undefined;
}

/** `node dist/runtime/lua/silly-build.js`: build once and print the binary's path (CI, by hand). */
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildSilly(REPO_ROOT, (line) => process.stderr.write(`${line}\n`)).then(
    (tree) => {
      if (tree === undefined) {
        process.stderr.write(`no vendored Silly found: put silly-*.tar.gz in ${resolve(REPO_ROOT, '..', 'shared', 'vendor')} or set SILLY_VENDOR\n`);
        process.exitCode = 2;
        return;
      }
      process.stdout.write(`${tree.binary}\n`);
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 2;
    },
  );
}
