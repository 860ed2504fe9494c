// The readable summary of a bench run (Markdown tables: readable in a
// terminal, and pasted as-is into docs/performance.md).
const fmt = (x, digits = 2) => (x === null || x === undefined ? '–' : typeof x === 'number' ? (Number.isInteger(x) ? x.toLocaleString('en-US') : x.toFixed(digits)) : String(x));
const ms = (x) => (x === null || x === undefined ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const lat = (w) => `${ms(w.p50)} / ${ms(w.p99)} / ${ms(w.max)}`;
const yes = (b) => (b === null ? '' : b ? 'met' : '**missed**');

function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

const NAMES = { relup: 'relup apply / rollback', restart: 'plain restart', pm2: 'PM2 cluster `pm2 reload`' };

function loadSection(load) {
  const out = [];
  const s = load.settings;
  out.push(`### Upgrade under load (${fmt(s.rate)} req/s + ${fmt(s.longLived)} long-lived connections at 1 msg/s; ${s.rounds} round(s) of 1.2.2 → 1.2.3 → 1.2.2)`, '');
  const kinds = Object.keys(load.scenarios);
  out.push(
    ...table(
      ['', 'achieved req/s (rate + long-lived)', 'baseline latency p50 / p99 / max ms', 'step windows latency p50 / p99 / max ms', 'failed requests', 'dropped connections', 'lost updates', 'state exact after every step', 'step time ms (median)'],
      kinds.map((k) => {
        const r = load.scenarios[k];
        const stepTimes = r.perStep.map((p) => p.stepMs).sort((a, b) => a - b);
        return [
          NAMES[k] ?? k,
          `${fmt(r.baseline.rate.ratePerSec)} + ${fmt(r.baseline.long.ratePerSec)}`,
          lat(r.baseline.all),
          lat(r.steps.all),
          fmt(r.disruption.failedRequests),
          fmt(r.disruption.droppedConnections),
          `${fmt(r.disruption.lostUpdates)} (${fmt(r.disruption.lostHelloCounts)} hits, ${fmt(r.disruption.lostScoreMessages)} scores)`,
          r.stateExact ? 'yes' : 'no',
          fmt(stepTimes[Math.floor(stepTimes.length / 2)], 0),
        ];
      }),
    ),
  );
  for (const [k, why] of Object.entries(load.failed ?? {})) out.push('', `**${NAMES[k] ?? k} failed**: ${why}`);
  const relup = load.scenarios.relup;
  if (relup?.suspension) {
    const sp = relup.suspension;
    const tx = relup.transactions?.all;
    if (relup.hold) out.push('', `relup hold (every request, timer tick and control call that arrives between the point of no return and the end of the transaction waits), ${relup.hold.count} transactions: ${relup.hold.values.map(ms).join(', ')} ms; p50 ${ms(relup.hold.p50)}, max ${ms(relup.hold.max)} ms.`);
    out.push('', `relup suspension windows (game group, from the node's journal, ${sp.count} windows: ${relup.perStep.flatMap((p) => p.groups.filter((g) => g.suspensionMs !== null).map((g) => ms(g.suspensionMs))).join(', ')} ms): p50 ${ms(sp.p50)} ms, p99 ${ms(sp.p99)} ms, max ${ms(sp.max)} ms; node transaction ${relup.perStep.map((p) => ms(p.nodeDurationMs)).join(', ')} ms${tx ? `; requests in flight during a transaction (±20 ms): ${fmt(tx.sent)}, latency ${lat(tx)} ms, ${fmt(tx.failed)} failed` : ''}.`);
  }
  const strays = kinds.flatMap((k) => load.scenarios[k].strayProcesses ?? []);
  out.push('', strays.length === 0 ? 'No process was left running after any scenario (nodes, workers, PM2 daemon, load generator).' : `**Processes left running: ${strays.join(', ')}**`);
  for (const k of kinds) {
    const c = load.scenarios[k].achieved.cpu;
    const g = load.scenarios[k].achieved.generator;
    out.push(`${NAMES[k] ?? k}: service ${fmt(c.servicePercentOfCore, 0)}% of a core (${c.serviceProcesses} process${c.serviceProcesses === 1 ? '' : 'es'}), load generator ${fmt(c.generatorPercentOfCore, 0)}% (event loop ${fmt(g.eventLoopUtilization * 100, 0)}% busy), ${fmt(load.scenarios[k].achieved.rateSkipped)} rate requests not sent on time.`);
  }
  if (Object.keys(load.ratios).length > 0) {
    out.push('', 'Disruption, relup against the alternatives (over all step windows; – where the alternative had none either):', '');
    const rows = [];
    const metrics = { failedRequests: 'failed requests', droppedConnections: 'dropped long-lived connections', lostUpdates: 'lost updates (state)', worstLatencyMs: 'worst latency of an answered request, ms' };
    for (const [key, label] of Object.entries(metrics)) {
      const rr = load.ratios['relup/restart']?.[key];
      const rp = load.ratios['relup/pm2']?.[key];
      rows.push([label, fmt(rr?.relup ?? rp?.relup), fmt(rr?.restart), fmt(rp?.pm2), fmt(rr?.ratio, 3), fmt(rp?.ratio, 3)]);
    }
    out.push(...table(['', 'relup', 'restart', 'PM2', 'relup / restart', 'relup / PM2'], rows));
  }
  return out;
}

function memorySection(mem) {
  const out = [`### Memory across ${fmt(mem.cycles)} upgrade + rollback cycles of a ~100 KB module`, ''];
  const cps = mem.checkpoints.filter((c) => [10, 100, 1000, mem.cycles].includes(c));
  const at = (r, c, key) => fmt(r.points.find((p) => p.cycle === c)?.[key], 1);
  const row = (label, r, n) => [label, fmt(n), ...cps.map((c) => `${at(r, c, 'heapMb')} / ${at(r, c, 'rssMb')}`), fmt(r.heapGrowthMb), fmt(r.rssGrowthMb), `${fmt(r.heapPerReloadKb, 1)} / ${fmt(r.rssPerReloadKb, 1)}`];
  out.push(
    ...table(
      ['', 'code loads', ...cps.map((c) => `heap / RSS MB at ${fmt(c)}`), `heap growth ${cps[0]}→${fmt(mem.cycles)} MB`, `RSS growth ${cps[0]}→${fmt(mem.cycles)} MB`, 'per load KB (heap / RSS)'],
      [
        row('relup node process (control socket, bundles, history)', mem.relup, mem.relup.applies),
        ...(mem.relupSemiSpace8 ? [row('relup node process, `--max-semi-space-size=8`', mem.relupSemiSpace8, mem.relupSemiSpace8.applies)] : []),
        row('relup runtime alone (startNode in-process)', mem.runtimeOnly, mem.runtimeOnly.applies),
        ...(mem.esmReimport ? [row('ES-module re-import (`import(file?v=N)`)', mem.esmReimport, mem.esmReimport.reloads)] : []),
      ],
    ),
  );
  return out;
}

function plannerSection(planner) {
  const out = ['### Planner', ''];
  out.push(...table(['modules', 'changed', 'steps', 'groups', 'median ms', 'min ms', 'heap Δ MB'], planner.rows.map((r) => [fmt(r.modules), fmt(r.changed), fmt(r.steps), fmt(r.groups), fmt(r.medianMs), fmt(r.minMs), fmt(r.heapDeltaMb)])));
  out.push('', `Growth: ${planner.growth.map((g) => `${fmt(g.from)} → ${fmt(g.to)}: time ~ n^${g.exponent}`).join('; ')}.`);
  return out;
}

function stateSection(state) {
  const out = ['### Suspension window against the state (demo `game` process, N players, upgrade + rollback, no load)', ''];
  out.push(
    ...table(
      ['players', 'transitions', 'window p50 / max ms', 'hold − window max ms', 'point of no return p50 ms (copies made ahead)', 'transaction p50 ms'],
      state.rows.map((r) => [fmt(r.players), fmt(r.transitions), `${ms(r.windowMs.p50)} / ${ms(r.windowMs.max)}`, ms(r.holdMinusWindowMs.max), ms(r.pointOfNoReturnMs.p50), ms(r.transactionMs.p50)]),
    ),
  );
  return out;
}

function bigSection(big) {
  const out = [`### Big release: ${fmt(big.release.modules)} modules, ${big.release.changed} changed, ${fmt(big.release.processes)} processes (${fmt(big.release.steps)} steps, ${big.release.groups} groups), median of ${big.transitions} transitions`, ''];
  out.push(
    ...table(
      ['bundle', 'pack', 'apply request (client)', 'upload, unpack, verify, writes', 'transaction', 'staging', 'hold', 'windows p50 / p99 / max'],
      [[`${fmt(Math.round(big.bundleBytes / 1024))} KiB`, `${ms(big.packMs)} ms`, `${ms(big.requestMs)} ms`, `${ms(big.outsideTransactionMs)} ms`, `${ms(big.transactionMs)} ms`, `${ms(big.stagingMs)} ms`, `${ms(big.holdMs)} ms`, `${ms(big.windowsMs.p50)} / ${ms(big.windowsMs.p99)} / ${ms(big.windowsMs.max)} ms`]],
    ),
  );
  return out;
}

function cliSection(cli) {
  const out = ['### CLI, whole process (median), beside `node -e 0` run just before each', ''];
  const rows = ['help', 'plan', 'apply', 'status'].map((k) => {
    const c = cli[k];
    return [`\`${c.command}\``, fmt(c.runs), ms(c.medianMs), `${ms(c.minMs)}–${ms(c.maxMs)}`, ms(c.nodeMedianMs), `${fmt(c.ratio)}×`, `≤ ${c.goalRatio}×`, yes(c.met)];
  });
  // The first run of a command after a build compiles without a code cache: paid once per command per build, no goal.
  const first = cli.planFirstRun;
  if (first) rows.push([`\`${first.command}\``, fmt(first.runs), ms(first.medianMs), `${ms(first.minMs)}–${ms(first.maxMs)}`, ms(first.nodeMedianMs), `${fmt(first.ratio)}×`, '–', '']);
  out.push(...table(['command', 'runs', 'median ms', 'range ms', 'node -e 0 ms', 'ratio', 'goal', ''], rows));
  return out;
}

/** Every goal of the issue, with our figure. */
export function goals(results) {
  const g = [];
  const load = results.load?.goals;
  if (load && Object.keys(load).length > 0) {
    g.push(['suspension window p99, 1,000 players under load', '≤ 5 ms', `${ms(load.suspensionP99Ms.value)} ms`, load.suspensionP99Ms.met]);
    g.push(['suspension window max, 1,000 players under load', `≤ ${load.suspensionMaxMs.goal} ms`, `${ms(load.suspensionMaxMs.value)} ms`, load.suspensionMaxMs.met]);
    if (load.suspension10kP99Ms) g.push(['suspension window p99, 10,000 players under load', '≤ 10 ms', `${ms(load.suspension10kP99Ms.value)} ms`, load.suspension10kP99Ms.met]);
    if (load.holdOverWindowMaxMs) g.push(['node-wide hold minus the suspension window, max', '≤ 1 ms', `${ms(load.holdOverWindowMaxMs.value)} ms`, load.holdOverWindowMaxMs.met]);
    if (load.holdP99Ms?.value !== null && load.holdP99Ms !== undefined) {
      g.push(['hold of all outside work, p99 (the same bound, applied to the node-wide hold)', '≤ 5 ms', `${ms(load.holdP99Ms.value)} ms`, load.holdP99Ms.met]);
      g.push(['hold of all outside work, max', '≤ 20 ms', `${ms(load.holdMaxMs.value)} ms`, load.holdMaxMs.met]);
    }
    g.push(['failed requests during upgrades', '0', fmt(load.failedRequests.value), load.failedRequests.met]);
    g.push(['dropped connections', '0', fmt(load.droppedConnections.value), load.droppedConnections.met]);
    g.push(['state exact after every step', 'yes', load.stateExact.value ? 'yes' : 'no', load.stateExact.met]);
  }
  const conn = results.connections;
  if (conn) {
    g.push([`${fmt(conn.webSockets)} WebSockets + ${fmt(conn.tcpConnections)} TCP connections through upgrade and rollback: connections dropped`, '0', fmt(conn.connectionsDropped), conn.connectionsDropped === 0]);
    g.push([`the same: messages lost (of ${fmt(conn.messagesSent)})`, '0', fmt(conn.messagesLost), conn.messagesLost === 0]);
  }
  const state = results.state;
  if (state) {
    for (const r of state.rows) g.push([`suspension window, ${fmt(r.players)} players, no load (p50 / max; the migration's own cost)`, 'shown', `${ms(r.windowMs.p50)} / ${ms(r.windowMs.max)} ms`, null]);
  }
  const big = results.big;
  if (big) {
    g.push([`big release (${fmt(big.release.modules)} modules, ${big.release.changed} changed, ${fmt(big.release.processes)} processes): transaction, median`, '< 100 ms', `${ms(big.transactionMs)} ms`, big.goals.transactionUnder100Ms.met]);
    g.push(['big release: longest suspension window', '≤ 10 ms', `${ms(big.windowsMs.max)} ms`, big.goals.noWindowOver10Ms.met]);
  }
  // The Erlang runtime (bench/erlang-bench.js): relup beside OTP's release_handler on the same app.
  const erl = results.erlang?.goals;
  if (erl) {
    g.push(['Erlang node: failed requests through upgrade + rollback under load', '0', fmt(erl.failed.value), erl.failed.met]);
    g.push(['Erlang node: dropped connections', '0', fmt(erl.dropped.value), erl.dropped.met]);
    g.push(['Erlang node: suspension window p99 under load', '≤ 5 ms', `${ms(erl.suspensionP99Ms.value)} ms`, erl.suspensionP99Ms.met]);
    if (erl.inPlaceRollback) g.push(['Erlang node: an upgrade whose code_change raises is rolled back in place (release_handler restarts the node)', 'rolled-back', `${erl.inPlaceRollback.value}${erl.inPlaceRollback.releaseHandler ? `; release_handler: ${erl.inPlaceRollback.releaseHandler}` : ''}`, erl.inPlaceRollback.met]);
  }
  const mem = results.memory?.goal;
  if (mem) {
    const span = mem.to < 10_000 ? ` (the issue's span is 100 → 10,000: \`--long\`)` : '';
    g.push([`heap growth, cycle ${mem.from} → ${fmt(mem.to)}${span}`, `< ${mem.heapGoalMb} MB`, `${fmt(mem.heapGrowthMb)} MB`, mem.met]);
    g.push([`RSS growth, cycle ${mem.from} → ${fmt(mem.to)}, default flags`, `< ${mem.rssGoalMb} MB`, `${fmt(mem.rssGrowthMb)} MB`, mem.rssMet]);
    if (mem.rssGrowthSemiSpace8Mb !== undefined) g.push([`RSS growth, the same with \`node --max-semi-space-size=8\``, `< ${mem.rssGoalMb} MB`, `${fmt(mem.rssGrowthSemiSpace8Mb)} MB`, mem.rssSemiSpace8Met]);
  }
  const planner = results.planner?.goal;
  if (planner) {
    const row = results.planner.rows.find((r) => r.modules === 10000);
    g.push(['planner, 10,000 modules', '< 250 ms', `${fmt(row?.medianMs)} ms`, planner.met]);
  }
  const cli = results.cli;
  if (cli) {
    for (const [k, label] of [['help', '`relup --help`'], ['plan', '`relup plan 1.2.2 1.2.3`'], ['apply', '`relup apply`, one-module change, warm node'], ['status', '`relup status`, warm node']]) {
      g.push([`${label} ÷ \`node -e 0\``, `≤ ${cli[k].goalRatio}×`, `${fmt(cli[k].ratio)}× (${ms(cli[k].medianMs)} / ${ms(cli[k].nodeMedianMs)} ms)`, cli[k].met]);
    }
  }
  return g;
}

export function summaryLines(results) {
  const m = results.machine;
  const out = [`## relup bench, ${results.quick ? 'quick' : 'full'} run, ${results.date}`, '', `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GiB, Node.js ${m.node}, ${m.platform}; load average at start ${m.loadAverageAtStart.join(', ')}${m.nice ? `; run at nice ${m.nice}` : ''}; run took ${fmt(results.seconds, 0)} s.`, ''];
  const g = goals(results);
  if (g.length > 0) out.push('### Goals', '', ...table(['goal', 'target', 'ours', ''], g.map(([a, b, c, d]) => [a, b, c, yes(d)])), '');
  if (results.load) out.push(...loadSection(results.load), '');
  if (results.memory) out.push(...memorySection(results.memory), '');
  if (results.planner) out.push(...plannerSection(results.planner), '');
  if (results.cli) out.push(...cliSection(results.cli), '');
  if (results.state) out.push(...stateSection(results.state), '');
  if (results.big) out.push(...bigSection(results.big), '');
  if (results.erlang?.summary) out.push(...results.erlang.summary, '');
  return out;
}
