import { describe, expect, it } from 'vitest';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { codes, FILE, found, yaml } from './appup-text.js';

describe('parseAppup: YAML and the frame', () => {
  it('reports YAML syntax errors from YamlSource and stops there', () => {
    const r = parseAppup('version: 1.2.3\nup: [\n', FILE);
    expect(r.value).toBeUndefined();
    expect(r.diagnostics.map((d) => d.code)).toContain('yaml-syntax');
    expect(r.diagnostics.every((d) => d.code === 'yaml-syntax' && d.file === FILE && d.line !== undefined)).toBe(true);
  });

  it('reports a duplicated key as a syntax error', () => {
    expect(codes('version: 1.2.3\nversion: 1.2.4\n')).toEqual(['yaml-syntax']);
  });

  it('refuses an empty file and a top level that is not a map', () => {
    expect(found('')).toEqual([{ code: 'appup-invalid', severity: 'error', line: 1, column: 1 }]);
    expect(found('# only a comment\n')).toMatchObject([{ code: 'appup-invalid' }]);
    expect(found('- version: 1.2.3\n')).toMatchObject([{ code: 'appup-invalid', line: 1 }]);
    expect(found('just text\n')).toMatchObject([{ code: 'appup-invalid', line: 1 }]);
  });

  it('refuses an alias bomb without throwing', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 8; i++) bomb.push(`${'bcdefghi'[i]}: &${'bcdefghi'[i]} [${Array(10).fill(`*${i === 0 ? 'a' : 'bcdefghi'[i - 1]}`).join(', ')}]`);
    const r = parseAppup(`${bomb.join('\n')}\n`, FILE);
    expect(r.value).toBeUndefined();
    expect(r.diagnostics).toMatchObject([{ code: 'appup-invalid', file: FILE, line: 1 }]);
  });

  it('reports a missing version at the map and a version of the wrong type at its value', () => {
    expect(found('up: []\ndown: []\n')).toEqual([{ code: 'appup-invalid', severity: 'error', line: 1, column: 1 }]);
    expect(found('version: 1.2\n')).toEqual([{ code: 'appup-version-invalid', severity: 'error', line: 1, column: 10 }]);
  });

  it('reports a version that is not a full semantic version (appup-version-invalid)', () => {
    for (const bad of ['v1.2.3', '1.2', '1.2.3.4', '01.2.3', 'latest', `1.2.${'9'.repeat(20)}`]) {
      expect(found(`version: "${bad}"\n`), bad).toEqual([{ code: 'appup-version-invalid', severity: 'error', line: 1, column: 10 }]);
    }
    for (const good of ['1.2.3', '0.0.0', '1.3.0-rc.1', '1.2.3+build.7']) {
      expect(codes(`version: ${good}\nup: [{from: 0.0.0-0, instructions: []}]\n`), good).toEqual([]);
    }
  });

  it('reports from/to that are neither a version nor a range (appup-version-pattern-invalid)', () => {
    const text = yaml`
      version: 1.2.3
      up:
        - from: latest
          instructions: []
        - from: 1.1
          instructions: []
        - from: ""
          instructions: []
      down:
        - to: "1.2.2 || nope"
          instructions: []
    `;
    expect(found(text)).toEqual([
      { code: 'appup-version-pattern-invalid', severity: 'error', line: 3, column: 11 },
      { code: 'appup-version-pattern-invalid', severity: 'error', line: 5, column: 11 },
      { code: 'appup-version-pattern-invalid', severity: 'error', line: 7, column: 11 },
      { code: 'appup-version-pattern-invalid', severity: 'error', line: 10, column: 9 },
    ]);
  });

  it('reports unknown keys at the key, with a did-you-mean, and still runs the rules', () => {
    const text = yaml`
      version: 1.2.3
      up:
        - from: 1.2.2
          instrutions: []
          instructions: []
      dwon: []
      upp: []
    `;
    const r = parseAppup(text, FILE);
    expect(r.value).toBeUndefined();
    expect(r.diagnostics.map((d) => ({ code: d.code, line: d.line, column: d.column }))).toEqual([
      { code: 'appup-unknown-key', line: 4, column: 5 },
      { code: 'appup-unknown-key', line: 6, column: 1 },
      { code: 'appup-unknown-key', line: 7, column: 1 },
    ]);
    // The unknown keys do not hide rule findings elsewhere.
    expect(codes(`version: 1.2.3\nextra: 1\nup: [{from: 1.2.3, instructions: []}]\n`)).toEqual(['appup-unknown-key', 'appup-direction']);
  });

  it('reports from in a down entry (and to in an up entry) once, at the key', () => {
    const text = yaml`
      version: 1.2.3
      up:
        - to: 1.2.2
          instructions: []
      down:
        - from: 1.2.2
          instructions: []
    `;
    expect(found(text)).toEqual([
      { code: 'appup-unknown-key', severity: 'error', line: 3, column: 5 },
      { code: 'appup-unknown-key', severity: 'error', line: 6, column: 5 },
    ]);
  });

  it('reports missing instructions and entries of the wrong shape (appup-invalid)', () => {
    const text = yaml`
      version: 1.2.3
      up:
        - from: 1.2.2
        - 1.2.1
      down: {to: 1.2.2}
    `;
    expect(found(text)).toEqual([
      { code: 'appup-invalid', severity: 'error', line: 3, column: 5 },
      { code: 'appup-invalid', severity: 'error', line: 4, column: 5 },
      { code: 'appup-invalid', severity: 'error', line: 5, column: 7 },
    ]);
  });
});

describe('parseAppup: instructions', () => {
  const entry = (instructions: string) => `version: 1.2.3\nup:\n  - from: 1.2.2\n    instructions:\n${instructions}`;
  // Line 5 is the first instruction.

  it('reports an instruction without an operation at the key that looks like one (appup-instruction-no-op)', () => {
    const r = parseAppup(entry('      - updte: game\n        migration: addLevels\n'), FILE);
    expect(r.diagnostics.map((d) => ({ code: d.code, line: d.line, column: d.column }))).toEqual([{ code: 'appup-instruction-no-op', line: 5, column: 9 }]);
    expect(r.diagnostics[0]!.hint).toContain('update');
  });

  it('reports an instruction without an operation, or an empty one, at the instruction', () => {
    expect(found(entry('      - migration: addLevels\n'))).toEqual([{ code: 'appup-instruction-no-op', severity: 'error', line: 5, column: 9 }]);
    expect(found(entry('      - {}\n'))).toEqual([{ code: 'appup-instruction-no-op', severity: 'error', line: 5, column: 9 }]);
    expect(found(entry('      - module: m\n        function: f\n'))).toMatchObject([{ code: 'appup-instruction-no-op', line: 5 }]);
  });

  it('reports several operations in one instruction at the second one (appup-instruction-many-ops)', () => {
    expect(found(entry('      - update: game\n        load: route\n'))).toEqual([{ code: 'appup-instruction-many-ops', severity: 'error', line: 6, column: 9 }]);
  });

  it('reports an instruction that is not a map', () => {
    expect(found(entry('      - update game\n      - null\n      - [load, x]\n'))).toEqual([
      { code: 'appup-invalid', severity: 'error', line: 5, column: 9 },
      { code: 'appup-invalid', severity: 'error', line: 6, column: 9 },
      { code: 'appup-invalid', severity: 'error', line: 7, column: 9 },
    ]);
  });

  it('suggests the closest option of the operation for a misspelt key (appup-unknown-key)', () => {
    const r = parseAppup(entry('      - update: game\n        migraton: addLevels\n'), FILE);
    expect(r.diagnostics.map((d) => ({ code: d.code, line: d.line, column: d.column }))).toEqual([{ code: 'appup-unknown-key', line: 6, column: 9 }]);
    expect(r.diagnostics[0]!.message).toContain('migration');
  });

  it('names the operation an option belongs to when it sits on another one', () => {
    const r = parseAppup(entry('      - load: route\n        migration: x\n        timeout: 10\n      - delete: old\n        deps: []\n'), FILE);
    expect(r.diagnostics.map((d) => ({ code: d.code, line: d.line, column: d.column }))).toEqual([
      { code: 'appup-unknown-key', line: 6, column: 9 },
      { code: 'appup-unknown-key', line: 7, column: 9 },
      { code: 'appup-unknown-key', line: 9, column: 9 },
    ]);
    expect(r.diagnostics[0]!.hint).toContain('`update`');
    expect(r.diagnostics[2]!.hint).toContain('`add`');
  });

  it('checks apply: unknown keys inside it, and the missing key they stand for is not reported twice', () => {
    expect(found(entry('      - apply: { module: m, funtion: f }\n'))).toEqual([{ code: 'appup-unknown-key', severity: 'error', line: 5, column: 29 }]);
    expect(found(entry('      - apply: { module: m }\n'))).toEqual([{ code: 'appup-invalid', severity: 'error', line: 5, column: 16 }]);
    expect(found(entry('      - apply: m:f\n'))).toEqual([{ code: 'appup-invalid', severity: 'error', line: 5, column: 16 }]);
    expect(found(entry('      - apply: { module: m, function: f, args: 3 }\n'))).toEqual([{ code: 'appup-invalid', severity: 'error', line: 5, column: 48 }]);
  });

  it('checks option values: names, enums, timeouts, deps', () => {
    const text = entry(
      [
        '      - update: "my module"', // 5
        '      - update: a', // 6
        '        mode: dynamc', // 7
        '        purge: hard', // 8
        '      - update: b', // 9
        '        timeout: 0', // 10
        '      - update: c', // 11
        '        timeout: 1.5', // 12
        '      - update: d', // 13
        `        timeout: ${2 ** 31}`, // 14
        '      - update: e', // 15
        '        migration: 2fast', // 16
        '      - load: f', // 17
        '        deps: route', // 18
        '      - restart: 1.5', // 19
        '      - add: g', // 20
        '        deps: [ok, "not ok"]', // 21
      ].join('\n') + '\n',
    );
    expect(found(text).map((d) => [d.code, d.line])).toEqual([
      ['appup-invalid', 5],
      ['appup-invalid', 7],
      ['appup-invalid', 8],
      ['appup-invalid', 10],
      ['appup-invalid', 12],
      ['appup-invalid', 14],
      ['appup-invalid', 16],
      ['appup-invalid', 18],
      ['appup-invalid', 19],
      ['appup-invalid', 21],
    ]);
  });

  it('reports every broken instruction, not just the first, and keeps going past them', () => {
    const r = parseAppup(entry('      - updte: a\n      - load: b\n      - load: b\n      - lod: c\n'), FILE);
    expect(r.value).toBeUndefined();
    expect(r.diagnostics.map((d) => [d.code, d.line])).toEqual([
      ['appup-instruction-no-op', 5],
      ['appup-duplicate-instruction', 7],
      ['appup-instruction-no-op', 8],
    ]);
  });

  it('gives every diagnostic the file, a line and a column, and a hint', () => {
    const r = parseAppup(entry('      - updte: a\n      - load: b\n        purge: x\n      - apply: {}\n'), FILE);
    expect(r.diagnostics.length).toBeGreaterThan(2);
    for (const d of r.diagnostics) {
      expect(d).toMatchObject({ file: FILE, line: expect.any(Number), column: expect.any(Number), hint: expect.any(String) });
      expect(d.code).toMatch(/^appup-/);
    }
  });
});
