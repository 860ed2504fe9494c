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

describe('checkReleaseModules: npm packages and code that outlives its version (issue 12)', () => {
  const withPackages = (packages: string[]): Release => ({ ...release('node'), packages });
  const check = (source: string, r: Release = release('node')) => checkReleaseModules(r, new Map([['m.js', Buffer.from(source)]]));

  it('allows a declared package (and a path inside it), refuses an undeclared one and node:module', async () => {
    expect(await check('exports.a = () => [require("ws"), require("ws/package.json")];\n', withPackages(['ws']))).toEqual([]);
    expect(await check('exports.a = () => require("ws");\n')).toEqual([expect.objectContaining({ code: 'module-require-denied', line: 1 })]);
    expect(await check('exports.a = () => require("node:module").createRequire(__filename);\n', withPackages(['ws']))).toEqual([expect.objectContaining({ code: 'module-require-denied' })]);
  });

  it('warns about servers of its own and listeners on process-wide objects', async () => {
    const ds = await check('const net = require("node:net");\nexports.start = () => {\n  net.createServer(() => {}).listen(0);\n  process.on("SIGHUP", () => {});\n  req.on("data", () => {});\n};\n');
    expect(ds).toEqual([expect.objectContaining({ code: 'module-raw-server', severity: 'warning', line: 3, column: 7 }), expect.objectContaining({ code: 'module-raw-listener', severity: 'warning', line: 4, column: 11 })]);
  });
});
