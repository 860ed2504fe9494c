import fc from 'fast-check';
import { describe, it } from 'vitest';
import { scriptSchema, type RelupScript } from '../../src/script/script-schema.js';
import { parseScript, serializeScript } from '../../src/script/serialize-script.js';
import { demoImage, planScript } from '../runtime/helpers/release-image.js';
import { checkChecked, fuzz, noThrow, runs, Summary, timeoutFor } from './kit.js';
import { applyStructOps, JSON_TOKENS, keysOf, lenient, mutants, structOp } from './mutate.js';

/**
 * The relup script as a file or a wire message (parseScript), and its schema
 * on values that never went through JSON (scriptSchema). Seeds: the real
 * scripts the planner makes for the demo, both ways.
 */
const summary = new Summary('relup script');

const UP: RelupScript = planScript(demoImage('1.2.2'), demoImage('1.2.3'));
const DOWN: RelupScript = planScript(demoImage('1.2.3'), demoImage('1.2.2'));
const FILE = 'plan-1.2.2-1.2.3.json';
const KEYS = keysOf([UP, DOWN]);

function checkScriptText(text: string): void {
  const result = noThrow('parseScript', () => parseScript(text, FILE));
  checkChecked(result, { code: /^script-(json-invalid|invalid)$/, file: FILE });
  const s = result.value;
  if (s === undefined) return;
  // An accepted script is one the schema accepts, with its point of no return where it says, and it round-trips byte for byte.
  if (s.steps[s.pointOfNoReturn]?.op !== 'point_of_no_return') throw new Error('accepted a script whose pointOfNoReturn is not the point_of_no_return step');
  const again = parseScript(serializeScript(s), FILE);
  if (again.value === undefined || serializeScript(again.value) !== serializeScript(s)) throw new Error('an accepted script does not round-trip');
}

const textOf = (m: { bytes: Buffer }) => lenient(m.bytes);
const options = { serialisers: ['json', 'json-pretty'] as const, tokens: JSON_TOKENS, keys: KEYS, share: false };
const scriptText = fc.oneof(
  mutants({ text: serializeScript(UP), value: JSON.parse(serializeScript(UP)) as unknown }, options).map(textOf),
  mutants({ text: serializeScript(DOWN), value: JSON.parse(serializeScript(DOWN)) as unknown }, options).map(textOf),
);

// Values a caller in the same process could hand to applyScript: shared references, NaN, -0, Infinity, no JSON in between.
const scriptValue = fc.tuple(fc.constantFrom(UP, DOWN), fc.array(structOp(KEYS), { minLength: 1, maxLength: 5 })).map(([seed, ops]) => applyStructOps(seed, ops, true));

describe('fuzz: relup script', () => {
  it(
    'parseScript: mutants of the demo scripts never throw; every rejection is script-invalid or script-json-invalid; an accepted one round-trips',
    () => {
      fuzz(summary, 'relup script', 'parseScript on mutated text', scriptText, checkScriptText, { numRuns: runs(10_000), seed: 0x5c121 });
    },
    timeoutFor(30_000),
  );

  it(
    'scriptSchema: mutated values never make safeParse throw, and what it accepts has the shape the runtime reads',
    () => {
      fuzz(
        summary,
        'relup script',
        'scriptSchema.safeParse on mutated values',
        scriptValue,
        (value) => {
          const r = noThrow('scriptSchema.safeParse', () => scriptSchema.safeParse(value));
          if (!r.success) {
            if (r.error.issues.length === 0) throw new Error('a rejection without issues');
            return;
          }
          const s = r.data;
          if (!Array.isArray(s.steps) || !Number.isInteger(s.pointOfNoReturn) || s.pointOfNoReturn < 0) throw new Error('accepted a script with a bad shape');
          if (s.steps.some((step) => typeof step.op !== 'string')) throw new Error('accepted a step without an op');
        },
        { numRuns: runs(3_000), seed: 0x5c122 },
      );
    },
    timeoutFor(30_000),
  );
});
