import { describe, expect, it } from 'vitest';
import { releaseFromFiles } from '../../src/release/release-from-files.js';
import type { ReleaseFiles } from '../../src/release/release-files.js';
import { readRelease } from '../../src/release/read-release.js';
import { releaseHash, sha256Hex } from '../../src/release/release-hash.js';
import { packRelease } from '../../src/release/pack-release.js';
import { testdir } from '../helpers/testdir.js';
import { DEMO_123 } from './fixtures.js';

function tree(yaml: string, extra: Record<string, string> = {}, kind: 'dir' | 'bundle' = 'dir'): ReleaseFiles {
  const files = new Map<string, Buffer>([['release.yaml', Buffer.from(yaml)]]);
  for (const [k, v] of Object.entries(extra)) files.set(k, Buffer.from(v));
  return { files, kind, origin: 'rel' };
}

const files = { 'a.js': 'A', 'b.js': 'B' };

function codes(yaml: string, extra: Record<string, string> = files) {
  return releaseFromFiles(tree(yaml, extra)).diagnostics.map((d) => [d.code, d.line]);
}

describe('releaseFromFiles', () => {
  it('builds the Release the planner consumes', () => {
    const yaml = [
      'name: tiny', //                      1
      'version: 2.0.0', //                  2
      'runtime: lua', //                    3
      'modules:', //                        4
      '  b:', //                            5
      '    file: b.js', //                  6
      '    deps: [a]', //                   7
      '    exports: [z, y]', //             8
      '  a:', //                            9
      '    file: a.js', //                  10
      'processes:', //                      11
      '  worker:', //                       12
      '    module: b', //                   13
      '    args: { n: 1 }', //              14
      '  idle:', //                         15
      '    module: a', //                   16
      '',
    ].join('\n');
    const result = releaseFromFiles(tree(yaml, files), 'releases/2.0.0');
    expect(result.diagnostics).toEqual([]);
    expect(result.value).toEqual({
      name: 'tiny',
      version: '2.0.0',
      runtime: 'lua',
      modules: [
        { name: 'a', file: 'a.js', hash: sha256Hex('A'), deps: [], exports: undefined, line: 9 },
        { name: 'b', file: 'b.js', hash: sha256Hex('B'), deps: ['a'], exports: ['z', 'y'], line: 5 },
      ],
      processes: [
        { name: 'idle', module: 'a', args: undefined, line: 15 },
        { name: 'worker', module: 'b', args: { n: 1 }, line: 12 },
      ],
      start: {},
      hash: releaseHash(tree(yaml, files).files),
      origin: 'releases/2.0.0',
      manifestFile: 'releases/2.0.0/release.yaml',
    });
  });

  it('names release.yaml inside a bundle as bundle:release.yaml', () => {
    const result = releaseFromFiles(tree('name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  a:\n    file: nope.js\n', files, 'bundle'), 'b.tar.gz');
    expect(result.diagnostics.map((d) => [d.code, d.file, d.line])).toEqual([['release-module-file-missing', 'b.tar.gz:release.yaml', 6]]);
  });

  it('reads the demo release', async () => {
    const result = await readRelease(DEMO_123, 'releases/1.2.3');
    expect(result.diagnostics).toEqual([]);
    const r = result.value!;
    expect([r.name, r.version, r.runtime]).toEqual(['demo', '1.2.3', 'node']);
    expect(r.modules.map((m) => m.name)).toEqual(['chat', 'config', 'game', 'http_api', 'route']);
    expect(r.modules.find((m) => m.name === 'http_api')).toMatchObject({ deps: ['config', 'game', 'route'], line: 22 });
    expect(r.processes).toEqual([{ name: 'game', module: 'game', args: undefined, line: 27 }]);
    expect(r.start).toEqual({ main: 'http_api' });
    expect(r.manifestFile).toBe('releases/1.2.3/release.yaml');
  });

  it('gives the same Release for the demo directory and its bundle', async () => {
    const out = await testdir();
    const packed = await packRelease(DEMO_123, { outDir: out });
    const fromDir = (await readRelease(DEMO_123, 'x')).value!;
    const fromBundle = (await readRelease(packed.value!.bundlePath, 'x')).value!;
    expect({ ...fromBundle, manifestFile: '' }).toEqual({ ...fromDir, manifestFile: '' });
    expect(fromBundle.manifestFile).toBe('x:release.yaml');
  });

  it('reports a missing release.yaml', () => {
    const result = releaseFromFiles({ files: new Map(), kind: 'dir', origin: 'rel' });
    expect(result.diagnostics.map((d) => d.code)).toEqual(['release-yaml-missing']);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(codes('name: tiny\nversion: [1.0.0\n')).toEqual([['yaml-syntax', 3]]);
  });

  it('reports an unknown key with its line and a suggestion', () => {
    const result = releaseFromFiles(tree('name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  a:\n    file: a.js\n    dep: [b]\n  b:\n    file: b.js\n', files));
    expect(result.diagnostics.map((d) => [d.code, d.line])).toEqual([['release-unknown-key', 7]]);
    expect(result.diagnostics[0]!.message).toContain('"deps"');
  });

  it('reports a wrong runtime with its line', () => {
    expect(codes('name: tiny\nversion: 1.0.0\nruntime: deno\nmodules: {}\n')).toEqual([['release-invalid', 3]]);
  });

  it('reports an invalid version with a hint to strip the v', () => {
    const result = releaseFromFiles(tree('name: tiny\nversion: v1.0.0\nruntime: node\nmodules: {}\n'));
    expect(result.value).toBeUndefined();
    expect(result.diagnostics.map((d) => [d.code, d.line, d.column])).toEqual([['release-version-invalid', 2, 10]]);
    expect(result.diagnostics[0]!.hint).toContain('"1.0.0"');
    expect(codes('name: tiny\nversion: "1.0"\nruntime: node\nmodules: {}\n')).toEqual([['release-version-invalid', 2]]);
  });

  it('reports a module file missing from the release', () => {
    expect(codes('name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  a:\n    file: lib/a.js\n')).toEqual([['release-module-file-missing', 6]]);
  });

  it('reports an unknown dependency with a suggestion', () => {
    const yaml = 'name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  alpha:\n    file: a.js\n    deps:\n      - beta\n      - betta\n  beta:\n    file: b.js\n';
    const result = releaseFromFiles(tree(yaml, files));
    expect(result.diagnostics.map((d) => [d.code, d.line])).toEqual([['release-dep-unknown', 9]]);
    expect(result.diagnostics[0]!.message).toContain('did you mean "beta"');
  });

  it('does not take Object.prototype names for modules', () => {
    // Refused as a reserved name (issue 9 item 4), no longer looked up at all.
    expect(codes('name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  a:\n    file: a.js\n    deps: [constructor]\n')).toEqual([['release-invalid', 7]]);
  });

  it('reports a module depending on itself', () => {
    expect(codes('name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  a:\n    file: a.js\n    deps: [a]\n')).toEqual([['release-dep-self', 7]]);
  });

  it('warns about a repeated dependency and keeps it once', () => {
    const result = releaseFromFiles(tree('name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  a:\n    file: a.js\n    deps: [b, b]\n  b:\n    file: b.js\n', files));
    expect(result.diagnostics.map((d) => [d.code, d.severity, d.line])).toEqual([['release-dep-duplicate', 'warning', 7]]);
    expect(result.value!.modules[0]!.deps).toEqual(['b']);
  });

  it('reports a process running an unknown module', () => {
    expect(codes('name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  a:\n    file: a.js\nprocesses:\n  p:\n    module: gmae\n')).toEqual([['release-process-module-unknown', 9]]);
  });

  it('warns when two modules share a file, and still gives the release', () => {
    const result = releaseFromFiles(tree('name: tiny\nversion: 1.0.0\nruntime: node\nmodules:\n  a:\n    file: a.js\n  b:\n    file: a.js\n', files));
    expect(result.diagnostics.map((d) => [d.code, d.severity, d.line])).toEqual([['release-module-file-shared', 'warning', 8]]);
    expect(result.value?.modules).toHaveLength(2);
  });

  it('refuses release.yaml that is not UTF-8', () => {
    const t: ReleaseFiles = { files: new Map([['release.yaml', Buffer.from([0xff, 0xfe, 0x00])]]), kind: 'dir', origin: 'rel' };
    expect(releaseFromFiles(t).diagnostics.map((d) => d.code)).toEqual(['release-invalid']);
  });
});
