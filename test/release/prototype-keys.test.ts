import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { parseManifest } from '../../src/release/bundle-manifest.js';
import { releaseFromFiles } from '../../src/release/release-from-files.js';
import { startNode } from '../../src/runtime/node/relup-node.js';
import { runCli } from '../helpers/run-cli.js';
import { testdir } from '../helpers/testdir.js';
import { imageFromFiles } from '../runtime/helpers/release-image.js';

/** Issue 9 item 4: names that are also members of Object.prototype. */

const HEAD = 'name: tiny\nversion: 1.0.0\nruntime: node\n';
const located = (yaml: string, files: Record<string, string> = { 'm.js': 'exports.run = () => 1;\n' }) => {
  const tree = new Map<string, Buffer>([['release.yaml', Buffer.from(yaml)], ...Object.entries(files).map(([k, v]) => [k, Buffer.from(v)] as [string, Buffer])]);
  const result = releaseFromFiles({ files: tree, kind: 'dir', origin: 'rel' });
  return { value: result.value, found: result.diagnostics.map((d) => [d.code, d.line, d.column]) };
};

describe('prototype keys in release.yaml', () => {
  it('refuses a module named __proto__ (with a missing file and an unknown dep) instead of dropping it', () => {
    // Before: no diagnostic at all, and a release without that module (zod's record assigned it as the prototype).
    const r = located(`${HEAD}modules:\n  m:\n    file: m.js\n  __proto__:\n    file: missing.js\n    deps: [nope]\n`);
    expect(r.found).toEqual([['yaml-reserved-key', 7, 3]]);
    expect(r.value).toBeUndefined();
  });

  it('refuses a process named __proto__ instead of dropping it', () => {
    const r = located(`${HEAD}modules:\n  m:\n    file: m.js\nprocesses:\n  __proto__:\n    module: m\n`);
    expect(r.found).toEqual([['yaml-reserved-key', 8, 3]]);
  });

  it('refuses __proto__ anywhere, even in data handed to the runtime', () => {
    const r = located(`${HEAD}start:\n  main: m\n  __proto__: {polluted: true}\nmodules:\n  m:\n    file: m.js\n`);
    expect(r.found).toEqual([['yaml-reserved-key', 6, 3]]);
  });

  it.each([
    ['a module', `${HEAD}modules:\n  m:\n    file: m.js\n  constructor:\n    file: m.js\n`, [['release-invalid', 7, 3]]],
    ['a module', `${HEAD}modules:\n  m:\n    file: m.js\n  toString:\n    file: m.js\n`, [['release-invalid', 7, 3]]],
    ['a process', `${HEAD}modules:\n  m:\n    file: m.js\nprocesses:\n  hasOwnProperty:\n    module: m\n`, [['release-invalid', 8, 3]]],
    ['a dependency', `${HEAD}modules:\n  m:\n    file: m.js\n    deps: [valueOf]\n`, [['release-invalid', 7, 12]]],
    ['a process module', `${HEAD}modules:\n  m:\n    file: m.js\nprocesses:\n  p:\n    module: prototype\n`, [['release-invalid', 9, 13]]],
    ['an export', `${HEAD}modules:\n  m:\n    file: m.js\n    exports: [run, constructor]\n`, [['release-invalid', 7, 20]]],
  ])('refuses a reserved name as %s, located', (_what, yaml, expected) => {
    expect(located(yaml).found).toEqual(expected);
  });

  it('keeps a dependency on Object.prototype names from resolving: deps must be declared modules', () => {
    // `deps: [constructor]` was release-dep-unknown; it is now refused as a reserved name, at the same line.
    expect(located(`${HEAD}modules:\n  m:\n    file: m.js\n    deps: [constructor]\n`).found).toEqual([['release-invalid', 7, 12]]);
  });

  it('makes `relup release verify` fail on a __proto__ module, where it exited 0', { timeout: 30_000 }, async () => {
    const dir = await testdir({ 'rel/release.yaml': `${HEAD}modules:\n  m:\n    file: m.js\n  __proto__:\n    file: missing.js\n    deps: [nope]\n`, 'rel/m.js': 'x\n' });
    const result = await runCli(['release', 'verify', join(dir, 'rel'), '--json'], dir);
    expect(result.exitCode).toBe(1);
    expect((JSON.parse(result.stdout).diagnostics as { code: string; line: number }[]).map((d) => [d.code, d.line])).toEqual([['yaml-reserved-key', 7]]);
  });
});

describe('prototype keys in appups and manifests', () => {
  const appup = (instruction: string) => parseAppup(`version: 1.0.1\nup:\n  - from: 1.0.0\n    instructions:\n      - ${instruction}\ndown: []\n`, 'appups/1.0.1.yaml').diagnostics.map((d) => [d.code, d.line]);

  it.each([['update: __proto__'], ['load: constructor'], ['update: m\n        deps: [hasOwnProperty]']])('refuses a reserved name in an appup instruction: %s', (instruction) => {
    const found = appup(instruction);
    expect(found.length).toBeGreaterThan(0);
    expect(found.every(([code, line]) => /^(appup-invalid|yaml-reserved-key)$/.test(String(code)) && Number(line) >= 5)).toBe(true);
  });

  it('refuses a __proto__ key in manifest.json', () => {
    const text = '{"format":1,"name":"tiny","version":"1.0.0","runtime":"node","releaseHash":"' + '0'.repeat(64) + '","files":[],"__proto__":{"files":[]}}';
    expect(parseManifest(Buffer.from(text), 'b.tar.gz:manifest.json').diagnostics.map((d) => d.code)).toEqual(['bundle-manifest-invalid']);
  });
});

describe('the Node runtime checks declared exports as own properties', () => {
  it.each([['toString'], ['hasOwnProperty'], ['valueOf']])('refuses to load a module that declares %s without exporting it', async (name) => {
    const image = imageFromFiles({
      'release.yaml': `${HEAD}start:\n  main: m\nmodules:\n  m:\n    file: m.js\n    exports: [run, ${name}]\n`,
      'm.js': 'exports.run = () => 1;\n',
    });
    // Before: Object.prototype's function passed the check, and the node started.
    await expect(startNode({ image })).rejects.toThrow(new RegExp(`does not export ${name}`));
  });

  it('accepts the same name when the module really exports it', async () => {
    const image = imageFromFiles({
      'release.yaml': `${HEAD}start:\n  main: m\nmodules:\n  m:\n    file: m.js\n    exports: [run, toString]\n`,
      'm.js': 'exports.run = () => 1;\nexports.toString = () => "m";\n',
    });
    const node = await startNode({ image });
    await node.stop();
  });
});
