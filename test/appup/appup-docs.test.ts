import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { DEMO_APPUPS, REPO } from '../helpers/repo-paths.js';

/** The YAML examples of docs/appup.md that are whole appups (they have a version). */
async function docExamples(): Promise<string[]> {
  const doc = await readFile(join(REPO, 'docs', 'appup.md'), 'utf8');
  return [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((text) => /^version:/m.test(text));
}

describe('docs/appup.md', () => {
  it('shows the demo appup exactly as it is in appups/', async () => {
    const [demo] = await docExamples();
    expect(demo).toBe(await readFile(join(DEMO_APPUPS, '1.2.3.yaml'), 'utf8'));
  });

  it('has examples that parse without a single diagnostic', async () => {
    const examples = await docExamples();
    expect(examples.length).toBeGreaterThanOrEqual(2);
    for (const text of examples) expect(parseAppup(text, 'docs/appup.md').diagnostics).toEqual([]);
  });

  it('lists every diagnostic code the appup layer emits', async () => {
    const doc = await readFile(join(REPO, 'docs', 'appup.md'), 'utf8');
    const sources = await Promise.all(['parse-appup.ts', 'load-appups.ts'].map((f) => readFile(join(REPO, 'src', 'appup', f), 'utf8')));
    const emitted = new Set(sources.flatMap((s) => [...s.matchAll(/'(appup-[a-z-]+)'/g)].map((m) => m[1]!)));
    expect(emitted.size).toBeGreaterThan(10);
    for (const code of emitted) expect(doc, code).toContain(`| \`${code}\` |`);
  });
});
