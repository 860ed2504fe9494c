import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { inProcessCells } from './helpers/cells.js';
import { demoScript, removeReleaseDirs, type Direction } from './helpers/demo.js';
import { pool, runInProcessCell } from './helpers/in-process.js';
import { KNOWN_ISSUES_TODAY } from './helpers/known-issues.js';
import { renderMatrix, type CellResult } from './helpers/matrix.js';
import { clientKillChain, crashCell, nodeKillChain, scratchProject } from './helpers/real-cells.js';

/**
 * The fault-injection matrix (docs/fault-matrix.md): every step of the demo
 * upgrade 1.2.2 → 1.2.3 and of its downgrade, × every fault that can happen
 * there. In process: throw, hang, real-code faults (NodeHost, the same code
 * as `relup node start`, with the RELUP_FAULTS injector). On real processes:
 * the migrated process crashing, the client SIGKILLed, the node SIGKILLed
 * and restarted. Traffic sent during a step runs at once before the point of
 * no return and is held at the node's entry after it, until the transaction
 * settles; either way every message must be handled exactly once, on the
 * final code and state. Prints the table; fails on any inconsistent cell
 * (helpers/known-issues.ts can excuse one while it is being fixed: it is
 * empty; RELUP_FAULT_MATRIX_STRICT=1 fails on known issues too).
 */

const steps = (d: Direction) => demoScript(d).steps.map((_, i) => i);
/**
 * `after-exit` (killed right after the step did its work) at the point of no
 * return and at the commit. Anywhere else it is, durably, the same as `exit`
 * at the next step: memory is lost either way and nothing is written before
 * the transaction ends. After `commit` the node has switched in memory but
 * not yet written its history. (Kills while the history is being written:
 * history-crash.test.ts.)
 */
const afterExitSteps = (d: Direction) => demoScript(d).steps.flatMap((s, i) => (s.op === 'point_of_no_return' || s.op === 'commit' ? [i] : []));
const halves = (list: number[]) => [list.slice(0, Math.ceil(list.length / 2)), list.slice(Math.ceil(list.length / 2))];
const migrateProcessSteps = (d: Direction) => demoScript(d).steps.flatMap((s, i) => (s.op === 'migrate' && s.processes.length > 0 ? [i] : []));

/** `n` chains of client-kill cells, each alternating up and down on one node (a clean attempt fills in where a chain lacks an up cell). */
function clientKillChains(n: number): { direction: Direction; step: number; filler?: boolean }[][] {
  const chains: { direction: Direction; step: number; filler?: boolean }[][] = Array.from({ length: n }, () => []);
  const ups = steps('up');
  for (const [k, step] of steps('down').entries()) {
    const chain = chains[k % n]!;
    chain.push(ups.includes(step) ? { direction: 'up', step } : { direction: 'up', step: -1, filler: true });
    chain.push({ direction: 'down', step });
  }
  return chains;
}

let project: string | undefined;
afterAll(async () => {
  await removeReleaseDirs();
  if (project !== undefined) await rm(project, { recursive: true, force: true });
});

describe('fault matrix', () => {
  test('every step × every fault leaves the node consistent', { timeout: 240_000 }, async () => {
    const t0 = performance.now();
    project = await scratchProject();
    const dir = project;
    const real = pool<CellResult[]>(
      [
        ...clientKillChains(3).map((chain) => () => clientKillChain(dir, chain)),
        ...(['up', 'down'] as const).flatMap((d) => halves(steps(d)).map((part) => () => nodeKillChain(dir, d, 'node kill', part))),
        () => nodeKillChain(dir, 'up', 'node kill after', afterExitSteps('up')),
        () => nodeKillChain(dir, 'down', 'node kill after', afterExitSteps('down')),
        ...(['up', 'down'] as const).flatMap((d) => migrateProcessSteps(d).map((step) => async () => [await crashCell(dir, d, step)])),
      ],
      4,
    );
    const inProcess = pool(inProcessCells().map((cell) => () => runInProcessCell(cell)), 8);
    const seconds = (p: Promise<unknown>) => p.then(() => ((performance.now() - t0) / 1000).toFixed(1));
    const [inProcessS, realS] = await Promise.all([seconds(inProcess), seconds(real)]);
    const results = [...(await inProcess), ...(await real).flat()];
    const report = renderMatrix(results, KNOWN_ISSUES_TODAY);
    const file = join(tmpdir(), 'relup-fault-matrix.txt');
    await writeFile(file, `${report.table}\n`);
    console.log(`${report.table}\n\n${results.length} cells in ${((performance.now() - t0) / 1000).toFixed(1)} s (in process done after ${inProcessS} s, real processes after ${realS} s, side by side); the table is also in ${file}`);

    const strict = process.env['RELUP_FAULT_MATRIX_STRICT'] === '1';
    expect(report.unexplained.map((v) => `${v.cell.direction} ${v.cell.step} × ${v.cell.column}: ${v.cell.problems.join('; ')}`)).toEqual([]);
    expect(report.unused, 'known issues that no cell shows any more: fixed? remove them from known-issues.ts and docs/fault-matrix.md').toEqual([]);
    if (strict) expect(report.inconsistent, 'RELUP_FAULT_MATRIX_STRICT=1: every inconsistency fails').toBe(0);
  });
});
