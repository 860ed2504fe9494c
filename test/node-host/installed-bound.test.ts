import { describe, expect, it } from 'vitest';
import { MAX_INSTALLED, previousOf, recordEvent, type History } from '../../src/runtime/node-host/release-history.js';

const at = '2026-01-01T00:00:00.000Z';

describe('installed releases are bounded (issue 14: memory flat for good)', () => {
  it(`keeps the newest ${MAX_INSTALLED}, never the current or permanent one, whatever their age`, () => {
    // 1.0.0 stays permanent while 1.0.1 … 1.0.40 are applied without --permanent.
    let h: History = { format: 2, name: 'demo', current: '1.0.0', permanent: '1.0.0', installed: { '1.0.0': 'h0' }, events: [] };
    for (let n = 1; n <= 40; n++) h = recordEvent(h, { at, op: 'apply', to: `1.0.${n}`, status: 'committed' }, { current: `1.0.${n}`, installed: { version: `1.0.${n}`, hash: `h${n}` } });
    const versions = Object.keys(h.installed);
    expect(versions).toHaveLength(MAX_INSTALLED);
    expect(versions).toContain('1.0.0');
    expect(versions).toContain('1.0.40');
    expect(versions).not.toContain('1.0.1');
    // Rollback still walks back through the newest older ones.
    expect(previousOf(h).slice(0, 3)).toEqual(['1.0.39', '1.0.38', '1.0.37']);
    expect(h.installed['1.0.40']).toBe('h40');
  });

  it('a history under the bound is left as it is', () => {
    const h: History = { format: 2, name: 'demo', current: '1.0.0', permanent: '1.0.0', installed: { '1.0.0': 'h0' }, events: [] };
    const next = recordEvent(h, { at, op: 'apply', to: '1.0.1', status: 'committed' }, { current: '1.0.1', permanent: '1.0.1', installed: { version: '1.0.1', hash: 'h1' } });
    expect(next.installed).toEqual({ '1.0.0': 'h0', '1.0.1': 'h1' });
  });
});
