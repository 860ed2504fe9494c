import { describe, expect, test } from 'vitest';
import { injectFaults, injectWriteFaults, parseFaults, parseWriteFaults } from '../../src/runtime/node-host/fault-injection.js';
import { wasRenamed } from '../../src/fs/write-file-atomic.js';
import { startNode } from '../../src/runtime/node/relup-node.js';
import { DEMO, UP } from './helpers/demo.js';
import { NODE_CONFIG } from './helpers/in-process.js';

describe('RELUP_FAULTS', () => {
  test('write faults: write:<what>:<how>, beside step faults, every durable write named', async () => {
    const spec = '12:throw,write:history-commit:enospc,write:bundle:eio-after';
    expect([...parseFaults(spec)]).toEqual([[12, 'throw']]);
    expect([...parseWriteFaults(spec)]).toEqual([
      ['history-commit', 'enospc'],
      ['bundle', 'eio-after'],
    ]);
    for (const bad of ['write:history:enospc', 'write:bundle:full', 'write:bundle', 'write:bundle:eio:1']) expect(() => parseWriteFaults(bad)).toThrow(/RELUP_FAULTS/);
    const wrap = injectWriteFaults(parseWriteFaults(spec));
    let wrote = 0;
    const write = async () => {
      wrote += 1;
    };
    await expect(wrap('history-commit', write)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(wrote).toBe(0);
    const after = await wrap('bundle', write).catch((e: unknown) => e);
    expect(after).toMatchObject({ code: 'EIO' });
    expect(wasRenamed(after)).toBe(true);
    expect(wrote).toBe(1);
    await wrap('history-outcome', write);
    expect(wrote).toBe(2);
  });

  test('parses the original kinds and the new ones, with counts where they take one', () => {
    expect([...parseFaults('12:throw, 3:hang,14:exit,5:after-exit')]).toEqual([
      [12, 'throw'],
      [3, 'hang'],
      [14, 'exit'],
      [5, 'after-exit'],
    ]);
    expect([...parseFaults('13:crash,12:pause,19:after-exit=5,2:pause=100')]).toEqual([
      [13, 'crash'],
      [12, 'pause'],
      [19, 'after-exit=5'],
      [2, 'pause=100'],
    ]);
    expect(parseFaults('')).toEqual(new Map());
  });

  test.each(['1:boom', 'x:throw', '-1:throw', '1:throw=2', '1:pause=', '1:pause=-1', '1:after-exit=1.5', '1:pause=2=3', '1'])('refuses %s', (spec) => {
    expect(() => parseFaults(spec)).toThrow(/RELUP_FAULTS/);
  });

  test('crash at a step that names no process fails that step as injected; pause=<ms> waits, says so, and goes on', async () => {
    const node = await startNode({ image: DEMO.v122, config: NODE_CONFIG });
    try {
      const switchConfig = UP.steps.findIndex((s) => s.op === 'switch' && s.module === 'config');
      const crashed = await node.applyScript(UP, DEMO.v123, { intercept: injectFaults(new Map([[switchConfig, 'crash']])) });
      expect(crashed).toMatchObject({ status: 'rolled-back', failure: { code: 'injected', step: { index: switchConfig } } });
      const lines: string[] = [];
      const t0 = performance.now();
      const paused = await node.applyScript(UP, DEMO.v123, { intercept: injectFaults(new Map([[15, 'pause=50']]), { log: (l) => lines.push(l) }) });
      expect(paused.status).toBe('committed');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
      expect(lines).toEqual(['RELUP_FAULTS: step 15 (suspend game) paused', 'RELUP_FAULTS: step 15 continues']);
    } finally {
      await node.stop();
    }
  });
});
