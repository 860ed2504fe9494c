import { describe, expect, it } from 'vitest';
import { checkReleaseModules } from '../../src/project/check-modules.js';
import type { Release, RuntimeKind } from '../../src/release/release-model.js';

const release = (runtime: string): Release => ({
  name: 'x',
  version: '1.0.0',
  runtime: runtime as RuntimeKind,
  modules: [{ name: 'm', file: 'm.js', hash: '0'.repeat(64), deps: [], exports: undefined, line: 5 }],
  processes: [],
  start: {},
  hash: '0'.repeat(64),
  origin: 'releases/1.0.0',
  manifestFile: 'releases/1.0.0/release.yaml',
});

describe('checkReleaseModules', () => {
  it('says plainly when a runtime has no driver, instead of passing silently', async () => {
    const ds = await checkReleaseModules(release('cobol'), new Map([['m.js', Buffer.from('anything')]]));
    expect(ds).toEqual([expect.objectContaining({ code: 'check-runtime-no-driver', severity: 'warning', file: 'releases/1.0.0/release.yaml' })]);
  });

  it('compiles node modules and locates the error in the module file', async () => {
    const ds = await checkReleaseModules(release('node'), new Map([['m.js', Buffer.from('exports.a = 1;\nexports.b = (;\n')]]));
    expect(ds).toEqual([expect.objectContaining({ code: 'module-compile-error', file: 'releases/1.0.0/m.js', line: 2, column: 14 })]);
    expect(await checkReleaseModules(release('node'), new Map([['m.js', Buffer.from('exports.a = () => require("node:fs");\n')]]))).toEqual([]);
    const timer = await checkReleaseModules(release('node'), new Map([['m.js', Buffer.from('exports.start = () => setInterval(() => {}, 50);\n')]]));
    expect(timer).toEqual([expect.objectContaining({ code: 'module-plain-timer', severity: 'warning', line: 1, column: 23 })]);
  });
});
