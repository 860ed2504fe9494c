import { describe, expect, it } from 'vitest';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { codes, FILE, found, yaml } from './appup-text.js';

describe('appup rules', () => {
  it('warns about an appup without entries (appup-empty) and still returns it', () => {
    for (const text of ['version: 1.2.3\n', 'version: 1.2.3\nup: []\ndown: []\n']) {
      const r = parseAppup(text, FILE);
      expect(r.diagnostics.map((d) => ({ code: d.code, severity: d.severity, line: d.line }))).toEqual([{ code: 'appup-empty', severity: 'warning', line: 1 }]);
      expect(r.value).toMatchObject({ version: '1.2.3', up: [], down: [] });
    }
  });

  it('refuses up and down entries that can match the own version or a newer one (appup-direction)', () => {
    const text = yaml`
      version: 1.2.3
      up:
        - from: 1.2.3
          instructions: []
        - from: 1.3.0
          instructions: []
        - from: ^1.2.0
          instructions: []
        - from: "*"
          instructions: []
        - from: ">=1.2.0 <1.2.3"
          instructions: []
        - from: 1.2.2
          instructions: []
      down:
        - to: 1.2.4
          instructions: []
        - to: ">1.2.2"
          instructions: []
        - to: "<=1.2.2"
          instructions: []
    `;
    expect(found(text).filter((d) => d.code === 'appup-direction')).toEqual([
      { code: 'appup-direction', severity: 'error', line: 3, column: 11 },
      { code: 'appup-direction', severity: 'error', line: 5, column: 11 },
      { code: 'appup-direction', severity: 'error', line: 7, column: 11 },
      { code: 'appup-direction', severity: 'error', line: 9, column: 11 },
      { code: 'appup-direction', severity: 'error', line: 16, column: 9 },
      { code: 'appup-direction', severity: 'error', line: 18, column: 9 },
    ]);
    expect(parseAppup(text, FILE).value).toBeUndefined();
  });

  it('compares pre-releases by precedence: 1.3.0-rc.1 is older than 1.3.0', () => {
    expect(codes('version: 1.3.0\nup: [{from: 1.3.0-rc.1, instructions: []}]\n')).toEqual([]);
    expect(codes('version: 1.3.0-rc.1\nup: [{from: 1.3.0, instructions: []}]\n')).toEqual(['appup-direction']);
  });

  it('warns about an exact version an earlier exact or range entry already matches (appup-unreachable-entry)', () => {
    const text = yaml`
      version: 1.2.3
      up:
        - from: 1.2.2
          instructions: []
        - from: ">=1.1.0 <1.2.0"
          instructions: []
        - from: 1.2.2
          instructions: []
        - from: 1.1.4
          instructions: []
        - from: 1.0.9
          instructions: []
    `;
    const r = parseAppup(text, FILE);
    expect(r.diagnostics.map((d) => ({ code: d.code, severity: d.severity, line: d.line, column: d.column }))).toEqual([
      { code: 'appup-unreachable-entry', severity: 'warning', line: 7, column: 11 },
      { code: 'appup-unreachable-entry', severity: 'warning', line: 9, column: 11 },
    ]);
    // A warning: the appup is still usable.
    expect(r.value?.up.map((e) => e.versions)).toEqual(['1.2.2', '>=1.1.0 <1.2.0', '1.2.2', '1.1.4', '1.0.9']);
  });

  it('warns about a range inside an earlier range, or one that matches nothing; not about overlaps', () => {
    const text = yaml`
      version: 2.0.0
      down:
        - to: ^1.0.0
          instructions: []
        - to: ">=1.2.0 <1.5.0"
          instructions: []
        - to: ">=0.9.0 <1.1.0"
          instructions: []
        - to: ">1.9.0 <1.0.0"
          instructions: []
        - to: 0.x
          instructions: []
    `;
    expect(found(text)).toEqual([
      { code: 'appup-unreachable-entry', severity: 'warning', line: 5, column: 9 },
      { code: 'appup-unreachable-entry', severity: 'warning', line: 9, column: 9 },
    ]);
  });

  it('does not call an entry unreachable because of an entry in the other section', () => {
    expect(codes('version: 1.2.3\nup: [{from: 1.2.2, instructions: []}]\ndown: [{to: 1.2.2, instructions: []}]\n')).toEqual([]);
  });

  it('refuses a module or a process named twice in one entry (appup-duplicate-instruction)', () => {
    const text = yaml`
      version: 1.2.3
      up:
        - from: 1.2.2
          instructions:
            - update: game
            - load: route
            - apply: { module: game, function: warm }
            - apply: { module: game, function: warm }
            - restart: game
            - load: game
            - restart: game
        - from: 1.2.1
          instructions:
            - update: game
    `;
    expect(found(text)).toEqual([
      { code: 'appup-duplicate-instruction', severity: 'error', line: 10, column: 9 },
      { code: 'appup-duplicate-instruction', severity: 'error', line: 11, column: 9 },
    ]);
  });

  it('checks the direction only against a valid version', () => {
    expect(codes('version: 1.2\nup: [{from: 9.9.9, instructions: []}]\n')).toEqual(['appup-version-invalid']);
  });
});
