import fc from 'fast-check';
import { describe, it } from 'vitest';
import { stringify } from 'yaml';
import { holds } from './fuzz-invariants.js';

describe('parseAppup under hostile values', () => {
  it('holds for 10,000 arbitrary JSON-ish values dumped as YAML', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (value) => holds(stringify(value))),
      { numRuns: 10_000 },
    );
  }, 60_000);
});
