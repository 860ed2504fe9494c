import { describe, expect, it } from 'vitest';
import { luaDriver } from '../../../src/runtime/lua/lua-driver.js';
import type { Release } from '../../../src/release/release-model.js';
import { luaEnv, luaGate } from './lua-env.js';

/** The Lua driver's static checks: luac -p on every module; no restart policies for processes. */
const env = await luaEnv();
const ready = await luaGate('the Lua driver tests (test/runtime/lua/lua-driver.test.ts)', env.lua === undefined ? 'plain Lua 5.4 is not installed: apt-get install -y lua5.4' : undefined);

const release = (processes: Release['processes'] = []): Release => ({
  name: 'x',
  version: '1.0.0',
  runtime: 'lua',
  modules: [{ name: 'm', file: 'm.lua', hash: '0'.repeat(64), deps: [], exports: undefined, line: 5 }],
  processes,
  start: {},
  hash: '0'.repeat(64),
  origin: 'releases/1.0.0',
  manifestFile: 'releases/1.0.0/release.yaml',
});
const files = (text: string) => async () => Buffer.from(text);

describe.runIf(ready)('luaDriver.checkModules', () => {
  it('compiles a good module without running it', async () => {
    expect(await luaDriver.checkModules(release(), files('local M = {}\nfunction M.f() error("not run") end\nreturn M\n'))).toEqual([]);
  });
  it('locates a syntax error in the module file', async () => {
    const ds = await luaDriver.checkModules(release(), files('local M = {}\nfunction M.f()\n  return (1\nend\nreturn M\n'));
    expect(ds).toEqual([expect.objectContaining({ code: 'module-compile-error', severity: 'error', file: 'releases/1.0.0/m.lua', line: 4 })]);
  });
  it('accepts processes (the agent owns them) but refuses a restart policy it cannot honour, at its line', async () => {
    expect(await luaDriver.checkModules(release([{ name: 'p', module: 'm', args: undefined, line: 9 }]), files('return {}\n'))).toEqual([]);
    const ds = await luaDriver.checkModules(release([{ name: 'p', module: 'm', args: undefined, restart: { type: 'permanent', maxRestarts: 3, periodMs: 5000 }, line: 9 }]), files('return {}\n'));
    expect(ds).toEqual([expect.objectContaining({ code: 'lua-process-restart', file: 'releases/1.0.0/release.yaml', line: 9 })]);
  });
  it('reports an unreadable module file', async () => {
    const ds = await luaDriver.checkModules(release(), async () => {
      throw new Error('ENOENT');
    });
    expect(ds).toEqual([expect.objectContaining({ code: 'module-unreadable', line: 5 })]);
  });
});
