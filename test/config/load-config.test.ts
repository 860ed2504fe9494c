import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, resolveDir, resolveTarget } from '../../src/config/load-config.js';
import { ConfigError, UserError } from '../../src/errors/errors.js';
import { testdir } from '../helpers/testdir.js';

describe('relup.config.yaml', () => {
  it('is optional', async () => {
    const dir = await testdir();
    const loaded = await loadConfig(dir);
    expect(loaded.file).toBeUndefined();
    expect(resolveDir(dir, loaded, undefined, 'releases')).toBe(join(dir, 'releases'));
  });

  it('names directories, a default target and targets, relative to the config file', async () => {
    const dir = await testdir({
      'relup.config.yaml': 'releases: build/releases\ndefaultTarget: local\ntargets:\n  local:\n    socket: run/node.sock\n  prod:\n    host: 127.0.0.1\n    port: 7070\n    secretEnv: RELUP_SECRET\n',
    });
    const loaded = await loadConfig(dir);
    expect(resolveDir(dir, loaded, undefined, 'releases')).toBe(join(dir, 'build/releases'));
    expect(resolveDir(dir, loaded, 'other', 'releases')).toBe(join(dir, 'other'));
    expect(resolveTarget(loaded, undefined)).toEqual({ target: { kind: 'unix', path: join(dir, 'run/node.sock') }, name: 'local' });
    expect(resolveTarget(loaded, 'prod')).toMatchObject({ target: { kind: 'tcp', host: '127.0.0.1', port: 7070 }, secretEnv: 'RELUP_SECRET' });
    expect(resolveTarget(loaded, '/tmp/x.sock').target).toEqual({ kind: 'unix', path: '/tmp/x.sock' });
    expect(resolveTarget(loaded, '[::1]:7070').target).toEqual({ kind: 'tcp', host: '::1', port: 7070 });
    expect(() => resolveTarget(loaded, 'prd')).toThrow(/did you mean "prod"/);
  });

  it('reports unknown keys with line, column and a suggestion', async () => {
    const dir = await testdir({ 'relup.config.yaml': 'releases: r\ndefaultTarge: local\n' });
    const e = await loadConfig(dir).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).diagnostics).toMatchObject([{ code: 'config-unknown-key', file: 'relup.config.yaml', line: 2, column: 1 }]);
    expect((e as ConfigError).diagnostics[0]!.message).toContain('defaultTarget');
  });

  it('refuses a wrong type and a missing default target', async () => {
    const dir = await testdir({ 'relup.config.yaml': 'targets:\n  a:\n    host: h\n    port: "x"\n' });
    const e = (await loadConfig(dir).catch((x: unknown) => x)) as ConfigError;
    expect(e.diagnostics.map((d) => d.code)).toContain('config-invalid');
    expect(e.diagnostics[0]!.line).toBeGreaterThanOrEqual(2);
    const empty = await loadConfig(await testdir());
    expect(() => resolveTarget(empty, undefined)).toThrow(UserError);
  });
});
