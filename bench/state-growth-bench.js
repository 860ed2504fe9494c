// The suspension window against the size of the state it guards (issue 14 item 1).
//
// The demo service (releases/1.2.2 → 1.2.3 and back, appups/1.2.3.yaml) booted
// in this process with `startNode` (dist/), its `game` process loaded with N
// players (100 / 1,000 / 10,000 / 100,000), then upgraded and rolled back
// `repeats` times. Per size: the game group's suspension window, the node-wide
// hold, the point of no return (where the rollback copies of the states are made,
// ahead of the hold, docs/performance.md) and the whole transaction, from each
// apply outcome. No load here: bench/load-bench.js measures the window under load.
//
// Run alone: `node bench/state-growth-bench.js [--quick]` (after `npm run build`).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAppup } from '../dist/appup/parse-appup.js';
import { plan } from '../dist/planner/plan.js';
import { releaseFromFiles } from '../dist/release/release-from-files.js';
import { startNode } from '../dist/runtime/node/relup-node.js';
import { REPO, round, summary } from './lib.js';

function readTree(dir, prefix = '', files = new Map()) {
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    const path = prefix === '' ? name : `${prefix}/${name}`;
    if (statSync(full).isDirectory()) readTree(full, path, files);
    else files.set(path, readFileSync(full));
  }
  return files;
}

export function demoImage(version) {
  const dir = join(REPO, 'releases', version);
  const parsed = releaseFromFiles({ files: readTree(dir), kind: 'dir', origin: dir }, dir);
  if (parsed.value === undefined) throw new Error(`${dir}: ${JSON.stringify(parsed.diagnostics)}`);
  return { release: parsed.value, files: readTree(dir) };
}

export function demoScripts() {
  const from = demoImage('1.2.2');
  const to = demoImage('1.2.3');
  const file = join(REPO, 'appups', '1.2.3.yaml');
  const appup = parseAppup(readFileSync(file, 'utf8'), file);
  if (appup.value === undefined) throw new Error(`${file}: ${JSON.stringify(appup.diagnostics)}`);
  const appups = new Map([['1.2.3', appup.value]]);
  const up = plan({ from: from.release, to: to.release, appups }).script;
  const down = plan({ from: to.release, to: from.release, appups }).script;
  if (up === undefined || down === undefined) throw new Error('the demo does not plan');
  return { from, to, up, down };
}

/** The 1.2.2 game state with `n` players (the shape its handlers create). */
export function gameState(n) {
  const players = {};
  for (let i = 0; i < n; i++) players[`p${i}`] = { name: `player ${i}`, score: (i * 37) % 1000 };
  return { players, ticks: 0 };
}

function windowOf(outcome) {
  const game = outcome.groups.find((g) => g.processes.includes('game'));
  const ponr = outcome.journal.find((j) => j.op === 'point_of_no_return');
  return { windowMs: game?.suspensionMs ?? null, holdMs: outcome.holdMs, ponrMs: ponr?.durationMs ?? null, transactionMs: outcome.durationMs };
}

export async function runStateGrowthBench({ quick = false, sizes = quick ? [100, 1000, 10_000] : [100, 1000, 10_000, 100_000], log = () => {} } = {}) {
  const { from, to, up, down } = demoScripts();
  const rows = [];
  for (const n of sizes) {
    const repeats = n >= 100_000 ? (quick ? 2 : 3) : quick ? 3 : 7;
    const node = await startNode({ image: from, config: { port: 0 }, log: () => {}, states: { processes: { game: gameState(n) } } });
    const samples = [];
    try {
      for (let r = 0; r < repeats; r++) {
        for (const [script, image] of [[up, to], [down, from]]) {
          const outcome = await node.applyScript(script, image);
          if (outcome.status !== 'committed') throw new Error(`${n} players, ${script.direction}: ${outcome.status} ${outcome.message}`);
          samples.push({ direction: script.direction, ...windowOf(outcome) });
        }
      }
      const players = Object.keys(node.states().processes.game.players).length;
      if (players !== n) throw new Error(`${n} players went in, ${players} came out`);
    } finally {
      await node.stop();
    }
    const of = (k) => summary(samples.map((s) => s[k]).filter((x) => x !== null));
    const row = { players: n, transitions: samples.length, windowMs: of('windowMs'), holdMs: of('holdMs'), holdMinusWindowMs: summary(samples.map((s) => s.holdMs - s.windowMs)), pointOfNoReturnMs: of('ponrMs'), transactionMs: of('transactionMs') };
    rows.push(row);
    log(`  ${String(n).padStart(7)} players: window p50 ${row.windowMs.p50} ms max ${row.windowMs.max} · hold − window max ${round(row.holdMinusWindowMs.max, 3)} ms · point of no return (copies ahead) p50 ${row.pointOfNoReturnMs.p50} ms · transaction p50 ${row.transactionMs.p50} ms`);
  }
  return { rows };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await runStateGrowthBench({ quick: process.argv.includes('--quick'), log: (l) => process.stdout.write(`${l}\n`) });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
