import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HistoryCorruptError, HistoryLog, previousOf, readHistory, recordEvent, writeHistory, type History } from '../../src/runtime/node-host/release-history.js';
import { testdir } from '../helpers/testdir.js';

const base: History = { format: 2, name: 'demo', current: '1.0.0', permanent: '1.0.0', installed: { '1.0.0': 'h100' }, events: [] };
const at = '2026-01-01T00:00:00.000Z';

describe('release history', () => {
  it('tracks current and permanent; previous is the installed releases older than the current one, newest first', () => {
    let h = recordEvent(base, { at, op: 'apply', from: '1.0.0', to: '1.1.0', status: 'committed' }, { current: '1.1.0', permanent: '1.1.0', installed: { version: '1.1.0', hash: 'h110' } });
    expect(h).toMatchObject({ current: '1.1.0', permanent: '1.1.0' });
    expect(previousOf(h)).toEqual(['1.0.0']);
    h = recordEvent(h, { at, op: 'apply', from: '1.1.0', to: '1.2.0', status: 'committed' }, { current: '1.2.0', installed: { version: '1.2.0', hash: 'h120' } });
    expect(h).toMatchObject({ current: '1.2.0', permanent: '1.1.0' });
    expect(previousOf(h)).toEqual(['1.1.0', '1.0.0']);
    // Back to 1.1.0: 1.2.0 ran before but is newer — it is not somewhere a rollback goes.
    h = recordEvent(h, { at, op: 'apply', from: '1.2.0', to: '1.1.0', status: 'committed' }, { current: '1.1.0' });
    expect(previousOf(h)).toEqual(['1.0.0']);
    h = recordEvent(h, { at, op: 'apply', from: '1.1.0', to: '1.0.0', status: 'committed' }, { current: '1.0.0' });
    expect(previousOf(h)).toEqual([]);
    h = recordEvent(h, { at, op: 'apply', from: '1.0.0', to: '1.3.0', status: 'rolled-back' });
    expect(h.current).toBe('1.0.0');
    expect(h.events).toHaveLength(5);
    // semver order, not text order.
    expect(previousOf({ current: '1.10.0', installed: { '1.9.0': 'a', '1.2.0': 'b', '1.11.0': 'c' } })).toEqual(['1.9.0', '1.2.0']);
  });

  it('is written atomically and read back; a torn or foreign file is a history-corrupt error with a fix, not a silent reset', async () => {
    const dir = await testdir();
    expect(await readHistory(dir)).toBeUndefined();
    await writeHistory(dir, base);
    expect(await readHistory(dir)).toEqual(base);
    const text = await readFile(join(dir, 'history.json'), 'utf8');
    for (const bad of [text.slice(0, text.length / 2), '', '{"format":2}', '[]']) {
      await writeFile(join(dir, 'history.json'), bad);
      const e = await readHistory(dir).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(HistoryCorruptError);
      expect((e as HistoryCorruptError).code).toBe('history-corrupt');
      expect((e as HistoryCorruptError).hint).toContain('history.json');
    }
  });

  it('reads a format-1 history (no hashes yet) as legacy', async () => {
    const dir = await testdir();
    await writeFile(join(dir, 'history.json'), JSON.stringify({ format: 1, name: 'demo', current: '1.0.0', permanent: '1.0.0', previous: ['0.9.0'], events: [] }));
    expect(await readHistory(dir)).toEqual({ format: 2, name: 'demo', current: '1.0.0', permanent: '1.0.0', installed: {}, events: [], legacy: true });
  });

  it('HistoryLog applies changes one at a time, in call order, and reports a value only once it is written', async () => {
    const dir = await testdir();
    const written: string[] = [];
    let fail = false;
    const log = new HistoryLog(dir, base, async (d, h) => {
      // Writes that finish out of order if they were allowed to overlap.
      await new Promise((r) => setTimeout(r, h.permanent === '1.0.1' ? 30 : 1));
      if (fail) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      await writeHistory(d, h);
      written.push(h.permanent);
    });
    const versions = ['1.0.1', '1.0.2', '1.0.3', '1.0.4'];
    const done = versions.map((v) => log.update((h) => recordEvent(h, { at, op: 'make_permanent', to: v, status: 'ok' }, { permanent: v })));
    expect(log.value.permanent).toBe('1.0.0');
    await Promise.all(done);
    expect(written).toEqual(versions);
    expect(log.value.permanent).toBe('1.0.4');
    expect((await readHistory(dir))!.permanent).toBe('1.0.4');
    fail = true;
    await expect(log.update((h) => ({ ...h, permanent: '9.9.9' }))).rejects.toThrow(/ENOSPC/);
    expect(log.value.permanent).toBe('1.0.4');
    expect((await readHistory(dir))!.permanent).toBe('1.0.4');
  });

  it('HistoryLog.prepare writes ahead; the update then only renames it, unless another write came in between', async () => {
    const dir = await testdir({});
    await writeHistory(dir, base);
    const calls: string[] = [];
    const log = new HistoryLog(
      dir,
      base,
      async (d, h, label) => {
        calls.push(`write ${label}`);
        await writeHistory(d, h);
      },
      async (file, label) => {
        calls.push(`rename ${label}`);
        await file.commit();
      },
    );
    const temps = async () => (await readdir(dir)).filter((n) => n.endsWith('.tmp'));
    const commit = (h: History) => recordEvent(h, { at, op: 'apply', from: '1.0.0', to: '1.1.0', status: 'committed' }, { current: '1.1.0', installed: { version: '1.1.0', hash: 'h110' } });

    const ahead = await log.prepare(commit);
    expect(ahead).toBeDefined();
    expect(await temps()).toHaveLength(1);
    // Nothing visible yet: the file and the value are the old ones.
    expect((await readHistory(dir))?.current).toBe('1.0.0');
    expect(log.value).toBe(base);
    const after = await log.update(() => {
      throw new Error('the prepared history is used: the change is not computed again');
    }, 'history-commit', ahead);
    expect(after).toBe(ahead!.next);
    expect(calls).toEqual(['rename history-commit']);
    expect((await readHistory(dir))?.current).toBe('1.1.0');
    expect(await temps()).toEqual([]);

    // A write between prepare and update (a make_permanent): the prepared file is dropped and the change runs on the latest.
    calls.length = 0;
    const down = (h: History) => recordEvent(h, { at, op: 'apply', from: '1.1.0', to: '1.0.0', status: 'committed' }, { current: '1.0.0' });
    const stale = await log.prepare(down);
    await log.update((h) => recordEvent(h, { at, op: 'make_permanent', to: '1.1.0', status: 'ok' }, { permanent: '1.1.0' }), 'history-permanent');
    const final = await log.update(down, 'history-commit', stale);
    expect(calls).toEqual(['write history-permanent', 'write history-commit']);
    expect(final).toMatchObject({ current: '1.0.0', permanent: '1.1.0' });
    expect(await readHistory(dir)).toMatchObject({ current: '1.0.0', permanent: '1.1.0' });
    expect(await temps()).toEqual([]);
  });
});
