import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SUSPEND_TIMEOUT_MS, type Appup } from '../../src/appup/appup-model.js';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { DEMO_APPUPS } from '../helpers/repo-paths.js';
import { FILE, yaml } from './appup-text.js';

function parsed(text: string): Appup {
  const r = parseAppup(text, FILE);
  expect(r.diagnostics).toEqual([]);
  return r.value!;
}

describe('normalisation', () => {
  it('applies the defaults: purge soft, mode dynamic, timeout 5000, no migration, args []', () => {
    const appup = parsed(yaml`
      version: 1.2.3
      up:
        - from: 1.2.2
          instructions:
            - load: a
            - update: b
            - add: c
            - delete: d
            - apply: { module: e, function: f }
            - restart: g
    `);
    expect(DEFAULT_SUSPEND_TIMEOUT_MS).toBe(5000);
    expect(appup.up[0]!.instructions).toStrictEqual([
      { op: 'load', module: 'a', deps: undefined, purge: 'soft', line: 5 },
      { op: 'update', module: 'b', deps: undefined, purge: 'soft', migration: undefined, extra: undefined, timeout: 5000, mode: 'dynamic', line: 6 },
      { op: 'add', module: 'c', deps: undefined, line: 7 },
      { op: 'delete', module: 'd', purge: 'soft', line: 8 },
      { op: 'apply', module: 'e', function: 'f', args: [], line: 9 },
      { op: 'restart', process: 'g', line: 10 },
    ]);
  });

  it('keeps every option as written: deps absent is undefined, deps [] is []', () => {
    const appup = parsed(yaml`
      version: 2.0.0
      down:
        - to: ">=1.0.0 <2.0.0"
          instructions:
            - load: a
              deps: []
              purge: brutal
            - update: b
              deps: [a, c]
              purge: brutal
              migration: down_v2
              extra: { keep: [1, 2], note: ~ }
              timeout: 250
              mode: static
            - add: c
              deps: [a]
            - delete: d
              purge: brutal
            - apply:
                module: e
                function: $warm_up
                args: [1, "two", { three: 3 }, null]
    `);
    expect(appup.down[0]).toStrictEqual({
      versions: '>=1.0.0 <2.0.0',
      line: 3,
      instructions: [
        { op: 'load', module: 'a', deps: [], purge: 'brutal', line: 5 },
        {
          op: 'update',
          module: 'b',
          deps: ['a', 'c'],
          purge: 'brutal',
          migration: 'down_v2',
          extra: { keep: [1, 2], note: null },
          timeout: 250,
          mode: 'static',
          line: 8,
        },
        { op: 'add', module: 'c', deps: ['a'], line: 15 },
        { op: 'delete', module: 'd', purge: 'brutal', line: 17 },
        { op: 'apply', module: 'e', function: '$warm_up', args: [1, 'two', { three: 3 }, null], line: 19 },
      ],
    });
  });

  it('places the instruction line at its operation key, even when an option comes first', () => {
    const appup = parsed('version: 1.2.3\nup:\n  - from: 1.2.2\n    instructions:\n      - migration: m\n        update: game\n');
    expect(appup.up[0]!.instructions[0]).toMatchObject({ op: 'update', line: 6 });
  });

  it('keeps entries in file order, with their lines, and the line of version', () => {
    const appup = parsed(yaml`
      # comment
      version: 1.2.3
      up:
        - from: 1.2.2
          instructions: []
        - from: ">=1.0.0 <1.2.2"
          instructions: []
      down:
        - instructions: []
          to: 1.2.2
    `);
    expect(appup).toStrictEqual({
      file: FILE,
      version: '1.2.3',
      line: 2,
      up: [
        { versions: '1.2.2', instructions: [], line: 4 },
        { versions: '>=1.0.0 <1.2.2', instructions: [], line: 6 },
      ],
      down: [{ versions: '1.2.2', instructions: [], line: 9 }],
    });
  });

  it('gives no value while any error remains, and one with warnings only', () => {
    expect(parseAppup('version: 1.2.3\nup: [{from: 1.2.2, instructions: [{load: a}, {load: a}]}]\n', FILE).value).toBeUndefined();
    expect(parseAppup('version: 1.2.3\nup: [{from: 1.2.2, instructions: []}, {from: 1.2.2, instructions: []}]\n', FILE).value).toBeDefined();
  });
});

describe('the demo appup', () => {
  it('parses with no diagnostics into the expected structure', async () => {
    const file = 'appups/1.2.3.yaml';
    const r = parseAppup(await readFile(join(DEMO_APPUPS, '1.2.3.yaml'), 'utf8'), file);
    expect(r.diagnostics).toEqual([]);
    const update = { op: 'update', deps: undefined, purge: 'soft', extra: undefined, timeout: 5000, mode: 'dynamic' } as const;
    expect(r.value).toStrictEqual({
      file,
      version: '1.2.3',
      line: 2,
      up: [
        {
          versions: '1.2.2',
          line: 4,
          instructions: [
            { ...update, module: 'config', migration: 'addNewSettings', line: 7 },
            { ...update, module: 'route', migration: undefined, line: 10 },
            { ...update, module: 'game', migration: 'addLevels', extra: { startLevel: 1 }, timeout: 2000, line: 12 },
            { ...update, module: 'chat', migration: 'addJoinedAt', line: 17 },
          ],
        },
      ],
      down: [
        {
          versions: '1.2.2',
          line: 20,
          instructions: [
            { ...update, module: 'config', migration: 'removeNewSettings', line: 22 },
            { ...update, module: 'route', migration: 'dropErrorCount', line: 24 },
            { ...update, module: 'game', migration: 'dropLevels', timeout: 2000, line: 26 },
            { ...update, module: 'chat', migration: 'dropJoinedAt', line: 29 },
          ],
        },
      ],
    });
  });
});
