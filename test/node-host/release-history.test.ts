import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readHistory, recordEvent, writeHistory, type History } from '../../src/runtime/node-host/release-history.js';
import { testdir } from '../helpers/testdir.js';

const base: History = { format: 1, name: 'demo', current: '1.0.0', permanent: '1.0.0', previous: [], events: [] };
const at = '2026-01-01T00:00:00.000Z';

describe('release history', () => {
  it('tracks current, permanent and previous releases without repeats', () => {
    let h = recordEvent(base, { at, op: 'apply', from: '1.0.0', to: '1.1.0', status: 'committed' }, { current: '1.1.0', permanent: '1.1.0' });
    expect(h).toMatchObject({ current: '1.1.0', permanent: '1.1.0', previous: ['1.0.0'] });
    h = recordEvent(h, { at, op: 'apply', from: '1.1.0', to: '1.2.0', status: 'committed' }, { current: '1.2.0' });
    expect(h).toMatchObject({ current: '1.2.0', permanent: '1.1.0', previous: ['1.1.0', '1.0.0'] });
    h = recordEvent(h, { at, op: 'apply', from: '1.2.0', to: '1.0.0', status: 'committed' }, { current: '1.0.0' });
    expect(h.previous).toEqual(['1.2.0', '1.1.0']);
    h = recordEvent(h, { at, op: 'apply', from: '1.0.0', to: '1.3.0', status: 'rolled-back' });
    expect(h).toMatchObject({ current: '1.0.0', previous: ['1.2.0', '1.1.0'] });
    expect(h.events).toHaveLength(4);
  });

  it('is written atomically and read back; a torn or foreign file is an error, not a silent reset', async () => {
    const dir = await testdir();
    expect(await readHistory(dir)).toBeUndefined();
    await writeHistory(dir, base);
    expect(await readHistory(dir)).toEqual(base);
    const text = await readFile(join(dir, 'history.json'), 'utf8');
    await writeFile(join(dir, 'history.json'), text.slice(0, text.length / 2));
    await expect(readHistory(dir)).rejects.toThrow(/not a valid relup history/);
  });
});
