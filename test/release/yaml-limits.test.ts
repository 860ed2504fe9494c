import { describe, expect, it } from 'vitest';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { releaseFromFiles } from '../../src/release/release-from-files.js';
import { YAML_LIMITS, YamlSource } from '../../src/yaml/yaml-source.js';

/** Issue 9 item 10: the limits and the linear structural checks of every YAML file relup reads. */

const found = (text: string) => YamlSource.parse(text, 'f.yaml').diagnostics.map((d) => [d.code, d.line, d.column]);

describe('YAML structure, checked in one linear pass', () => {
  it('reports a repeated key where it repeats, as yaml did with uniqueKeys', () => {
    expect(found('a: 1\nb: 2\na: 3\n')).toEqual([['yaml-syntax', 3, 1]]);
  });

  it('treats 1 and "1" as the same key: they become the same property', () => {
    expect(found('1: a\n"1": b\n')).toEqual([['yaml-syntax', 2, 1]]);
  });

  it('refuses a key that is a list, a map or an alias', () => {
    expect(found('? [a]\n: 1\n')).toEqual([['yaml-syntax', 1, 3]]);
    expect(found('a: &x k\n*x : 1\n')).toEqual([['yaml-syntax', 2, 1]]);
  });

  it('refuses __proto__ as a key at any depth', () => {
    expect(found('a:\n  b:\n    - __proto__: 1\n')).toEqual([['yaml-reserved-key', 3, 7]]);
    expect(found('{"__proto__": {}}')).toEqual([['yaml-reserved-key', 1, 2]]);
  });

  it(`refuses a map of more than ${YAML_LIMITS.maxKeysPerMap} keys, at the first key over`, () => {
    const n = YAML_LIMITS.maxKeysPerMap;
    expect(found(Array.from({ length: n }, (_, i) => `k${i}: 1`).join('\n'))).toEqual([]);
    expect(found(Array.from({ length: n + 1 }, (_, i) => `k${i}: 1`).join('\n'))).toEqual([['yaml-too-large', n + 1, 1]]);
  });

  it(`refuses nesting deeper than ${YAML_LIMITS.maxDepth}, in block and in flow style`, () => {
    const block = Array.from({ length: YAML_LIMITS.maxDepth + 2 }, (_, i) => `${' '.repeat(i)}k:`).join('\n');
    expect(found(block).map(([code]) => code)).toEqual(['yaml-too-large']);
    const flow = `a: ${'['.repeat(YAML_LIMITS.maxDepth + 1)}${']'.repeat(YAML_LIMITS.maxDepth + 1)}`;
    expect(found(flow)).toEqual([['yaml-too-large', 1, 4 + YAML_LIMITS.maxDepth]]);
  });

  it('refuses megabytes of brackets before yaml parses them, and a file over the size limit', () => {
    // yaml took ~13 s to refuse a million `[`; the scan refuses it at the 257th.
    expect(found(`a: ${'['.repeat(1_000_000)}`).map(([code]) => code)).toEqual(['yaml-too-large']);
    expect(found(`a: [${Array.from({ length: YAML_LIMITS.maxFlowCollections }, () => '[]').join(',')}]`).map(([code]) => code)).toEqual(['yaml-too-large']);
    expect(found(`a: "${'x'.repeat(YAML_LIMITS.maxChars)}"`)).toEqual([['yaml-too-large', 1, 1]]);
  });

  it('passes the limits on to release.yaml and appups with their own diagnostics untouched', () => {
    const yaml = `name: big\nversion: 1.0.0\nruntime: node\nmodules:\n${Array.from({ length: YAML_LIMITS.maxKeysPerMap + 1 }, (_, i) => `  m${i}: {file: m.js}`).join('\n')}\n`;
    const release = releaseFromFiles({ files: new Map([['release.yaml', Buffer.from(yaml)], ['m.js', Buffer.from('x')]]), kind: 'dir', origin: 'rel' });
    expect(release.diagnostics.map((d) => [d.code, d.file, d.line])).toEqual([['yaml-too-large', 'rel/release.yaml', YAML_LIMITS.maxKeysPerMap + 5]]);
    const appup = parseAppup('version: 1.0.1\nup: []\ndown: []\nup: []\n', 'appups/1.0.1.yaml');
    expect(appup.diagnostics.map((d) => [d.code, d.line])).toEqual([['yaml-syntax', 4]]);
  });
});
