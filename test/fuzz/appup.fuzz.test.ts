import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { parse } from 'yaml';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { DEMO_APPUPS } from '../helpers/repo-paths.js';
import { checkChecked, fuzz, lineCount, noThrow, runs, Summary, timeoutFor } from './kit.js';
import { keysOf, lenient, mutants, YAML_TOKENS } from './mutate.js';

/**
 * Appups already have 21,500 fuzz cases in test/appup/ (10,000 random
 * strings, 10,000 JSON values, 1,500 appup-shaped values). What they lack is
 * mutation of a real appup, so this adds that: the demo's appups/1.2.3.yaml,
 * broken by the same text and structural edits as the other YAML files.
 */
const summary = new Summary('appup');

const TEXT = readFileSync(join(DEMO_APPUPS, '1.2.3.yaml'), 'utf8');
const VALUE = parse(TEXT) as unknown;
const FILE = 'appups/1.2.3.yaml';

describe('fuzz: appup', () => {
  it(
    'appups/1.2.3.yaml: mutants never throw; every diagnostic is coded, located and in the file; a value exactly when there is no error',
    () => {
      const arb = mutants({ text: TEXT, value: VALUE }, { serialisers: ['yaml', 'yaml', 'yaml-flow', 'json'], tokens: YAML_TOKENS, keys: [...keysOf(VALUE), 'apply', 'module', 'function', 'args', 'purge', 'mode', 'deps'], share: true });
      fuzz(
        summary,
        'appup',
        'mutants of appups/1.2.3.yaml',
        arb,
        (m) => {
          const text = lenient(m.bytes);
          // The invariants of test/appup/fuzz-invariants.ts (codes, file, lines, value exactly without errors), plus severity and message.
          const result = noThrow('parseAppup', () => parseAppup(text, FILE));
          checkChecked(result, { code: /^(appup-[a-z-]+|yaml-syntax|yaml-reserved-key|yaml-too-large)$/, file: FILE, lines: lineCount(text) });
          const appup = result.value;
          if (appup !== undefined && (appup.file !== FILE || appup.line < 1 || [...appup.up, ...appup.down].some((e) => e.line < 1 || e.instructions.some((i) => i.line < 1)))) {
            throw new Error('an accepted appup with a bad file or line');
          }
        },
        { numRuns: runs(1_200), seed: 0xa99a9 },
      );
    },
    timeoutFor(30_000),
  );
});
