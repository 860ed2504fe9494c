import fc from 'fast-check';
import { describe, it } from 'vitest';
import { stringify } from 'yaml';
import { holds } from './fuzz-invariants.js';

// Characters that mean something to YAML, so random strings reach past the first token.
const yamlish = fc.string({
  unit: fc.constantFrom(...'abcvu0123456789.-_:[]{},&*!|>\'"#%@`?~ \n\t^<>=xX'.split(''), 'version', 'up', 'down', 'from', 'to', 'instructions', 'update', 'load', '\n  - ', ': '),
  maxLength: 80,
});

// Mostly well-formed pieces with some garbage mixed in, so that many cases get past the frame to the rules.
const garbage = fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.string({ maxLength: 8 }), fc.constantFrom('', 'latest', '1.2', 'v1.0.0'));
const pattern = fc.constantFrom('1.2.3', '1.2.2', '1.1.0', '0.0.0', '2.0.0-rc.1', '1.2.3+b', '^1.0.0', '>=1.0.0 <1.2.3', '<1.2.0', '*', '1.x', '>2.0.0 <1.0.0');
const often = <T>(good: fc.Arbitrary<T>) => fc.oneof({ arbitrary: good, weight: 6 }, { arbitrary: garbage, weight: 1 });
const name = often(fc.constantFrom('a', 'b', 'game', 'route'));
const option = fc.dictionary(
  fc.constantFrom('deps', 'purge', 'migration', 'extra', 'timeout', 'mode', 'module', 'function', 'args', 'updte', '__proto__'),
  often(fc.oneof(fc.constantFrom('soft', 'brutal', 'dynamic', 'static', 'f', 100, 0), fc.array(fc.constantFrom('a', 'b', 'a b'), { maxLength: 3 }))),
  { maxKeys: 2 },
);
const instruction = fc.oneof(
  { arbitrary: fc.tuple(fc.constantFrom('load', 'update', 'add', 'delete', 'restart'), name, option).map(([op, n, rest]) => ({ [op]: n, ...rest })), weight: 6 },
  { arbitrary: fc.record({ apply: often(fc.record({ module: name, function: fc.constantFrom('f', '1'), args: often(fc.array(garbage, { maxLength: 2 })) }, { requiredKeys: [] })) }), weight: 1 },
  { arbitrary: option, weight: 1 },
  { arbitrary: garbage, weight: 1 },
);
const entry = (key: string) => often(fc.record({ [key]: often(pattern), instructions: often(fc.array(instruction, { maxLength: 4 })) }, { requiredKeys: [] }));
const appupLike = fc.record(
  {
    version: often(fc.constantFrom('1.2.3', '2.0.0', '1.0.0')),
    up: often(fc.array(entry('from'), { maxLength: 3 })),
    down: often(fc.array(entry('to'), { maxLength: 3 })),
    extra: garbage,
  },
  { requiredKeys: ['version'] },
);

// Two files of about equal cost, so that vitest's workers share the fuzzing.
describe('parseAppup under hostile text', () => {
  it('holds for 10,000 arbitrary strings', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 120 }), yamlish), holds), { numRuns: 10_000 });
  }, 60_000);

  // Fewer runs: each value is a whole (broken) appup, several times the work of a random string.
  it('holds for 1,500 appup-shaped values dumped as YAML', () => {
    fc.assert(
      fc.property(appupLike, (value) => holds(stringify(value))),
      { numRuns: 1_500 },
    );
  }, 60_000);
});
