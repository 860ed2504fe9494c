import { join } from 'node:path';
import { execa } from 'execa';
import { LUA_LIB_DIR, REPO_ROOT, buildSilly, sillySource } from '../../../src/runtime/lua/silly-build.js';
import { runtimeGate } from '../../helpers/runtimes.js';

/**
 * What the Lua tests need, found once: plain lua5.4 for the join's unit
 * tests, the vendored Silly source (for silly.patch) and the built Silly
 * binary for the tests with a real node.
 */
export async function findLua(): Promise<string | undefined> {
  for (const candidate of [process.env['LUA'], 'lua5.4']) {
    if (candidate === undefined || candidate === '') continue;
    const r = await execa(candidate, ['-v'], { reject: false });
    if (r.exitCode === 0) return candidate;
  }
  return undefined;
}

export function luaPath(extra: string[] = []): string {
  return [join(LUA_LIB_DIR, '?.lua'), ...extra.map((d) => join(d, '?.lua')), ';'].join(';');
}

export interface LuaEnv {
  lua: string | undefined;
  sillyDir: string | undefined;
  missing: string | undefined;
}

export async function luaEnv(): Promise<LuaEnv> {
  const lua = await findLua();
  const tree = await sillySource();
  const missing =
    lua === undefined
      ? 'plain Lua 5.4 is not installed: apt-get install -y lua5.4 (or set LUA=<interpreter>)'
      : tree === undefined
        ? `the vendored Silly source was not found next to the clone (${join(REPO_ROOT, '..', 'shared', 'vendor')}): set SILLY_VENDOR=<silly-*.tar.gz>`
        : undefined;
  return { lua, sillyDir: tree?.dir, missing };
}

/** The built Silly binary (built on first use), or why there is none. */
export async function sillyBinary(): Promise<{ binary?: string; missing?: string }> {
  if (process.env['SILLY'] !== undefined && process.env['SILLY'] !== '') return { binary: process.env['SILLY'] };
  try {
    const tree = await buildSilly();
    if (tree === undefined) return { missing: `no vendored Silly to build: put silly-*.tar.gz in ${join(REPO_ROOT, '..', 'shared', 'vendor')} or set SILLY_VENDOR (or SILLY=<binary>)` };
    return { binary: tree.binary };
  } catch (e) {
    return { missing: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * Whether a Lua suite can run: through test/helpers/runtimes.ts, so a missing
 * piece is a loud skip locally and a failure under CI=true or
 * RELUP_REQUIRE_RUNTIMES=lua.
 */
export async function luaGate(suite: string, missing: string | undefined): Promise<boolean> {
  return runtimeGate('lua', suite, async () =>
    missing === undefined ? { ok: true } : { ok: false, reason: missing, install: 'apt-get install -y lua5.4 gcc make libssl-dev, and the vendored Silly in ../shared/vendor (built on first use into .cache/silly)' },
  );
}
