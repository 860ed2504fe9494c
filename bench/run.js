// `npm run bench [-- --quick]`: runs every benchmark, prints a readable summary
// and writes the figures as JSON (and the summary as Markdown) under
// bench/results/. Benchmarks are not tests. Method: docs/performance.md.
//
// Options (after `--`):
//   --quick                 short run (under a minute with the build)
//   --only=planner,cli,memory,state,big,load,connections,silly,erlang
//   --scenarios=relup,relup-10k,restart,pm2   (load)
//   --rate=N --long-lived=N --rounds=N   (load)
//   --cycles=N              (memory)
//   --long                  memory over 10,000 upgrade+rollback cycles (issue 14's span)
//
// Every load targets 127.0.0.1 and is bounded in count and time; every child
// process (nodes, load generator, PM2 and its daemon) is stopped at the end,
// also on Ctrl-C.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, getPriority, loadavg, platform, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runCliBench } from './cli-bench.js';
import { markStopping, runCleanups } from './lib.js';
import { runLoadBench } from './load-bench.js';
import { runMemoryBench } from './memory-bench.js';
import { runPlanBench } from './plan-bench.js';
import { summaryLines } from './summary.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const opt = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const num = (name) => (opt(name) === undefined ? undefined : Number(opt(name)));
const ALL = ['planner', 'cli', 'memory', 'state', 'big', 'load', 'connections', 'silly', 'erlang'];
const only = opt('only')?.split(',') ?? ALL;
const log = (line) => process.stdout.write(`${line}\n`);

let interrupted = false;
// `on`, not `once`: execa's signal-exit re-raises a signal that no other listener handles, which would
// kill this process before the children are stopped. A second signal exits at once.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    markStopping();
    process.stderr.write(`\n${signal}: stopping every child process…\n`);
    await runCleanups();
    process.exit(130);
  });
}

const load1 = () => loadavg().map((x) => Math.round(x * 100) / 100);
const machine = { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGb: Math.round(totalmem() / 2 ** 30), platform: `${platform()} ${release()}`, nice: getPriority(), loadAverageAtStart: load1() };
const results = { date: new Date().toISOString(), quick, machine };
const started = performance.now();
const sections = {};

async function section(name, fn) {
  if (!only.includes(name)) return;
  const t0 = performance.now();
  log(`${name}…`);
  results[name] = await fn();
  sections[name] = { seconds: Math.round((performance.now() - t0) / 100) / 10, loadAverageAfter: load1() };
}

try {
  await section('planner', () => runPlanBench({ quick }));
  await section('cli', () => runCliBench({ quick }));
  await section('memory', () => runMemoryBench({ quick, long: argv.includes('--long'), cycles: num('cycles'), log }));
  // Issue 14 item 1: the suspension window against the size of the state (no load; the load section has the 10,000-player scenario).
  await section('state', async () => (await import('./state-growth-bench.js')).runStateGrowthBench({ quick, log }));
  // Issue 14 item 4: a live upgrade of a release of 1,000 modules (100 changed) and 1,000 processes.
  await section('big', async () => (await import('./big-release-bench.js')).runBigReleaseBench({ quick, log }));
  await section('load', () => {
    const overrides = Object.fromEntries(Object.entries({ rate: num('rate'), longLived: num('long-lived'), rounds: num('rounds') }).filter(([, v]) => v !== undefined));
    return runLoadBench({ quick, overrides, scenarios: opt('scenarios')?.split(',') ?? ['relup', 'relup-10k', 'restart', 'pm2'], log });
  });
  // Issue 12: 1,000 WebSockets and 1,000 raw TCP connections through upgrade and rollback (bench/connections-bench.js).
  await section('connections', async () => (await import('./connections-bench.js')).runConnectionsBench({ quick, log }));
  // The Lua runtime: a Silly node under load through upgrade + rollback vs a hand-written INJECT (bench/silly-bench.js).
  await section('silly', async () => (await import('./silly-bench.js')).runSillyBench({ quick, log }));
  // The Erlang runtime: an Erlang node under load through upgrade + rollback vs a restart (bench/erlang-bench.js).
  await section('erlang', async () => (await import('./erlang-bench.js')).runErlangBench({ quick, log }));
} catch (e) {
  // Interrupted: the signal handler is stopping the children and will exit; don't race it.
  if (interrupted) await new Promise(() => {});
  throw e;
} finally {
  await runCleanups();
}
if (interrupted) await new Promise(() => {});

results.seconds = Math.round((performance.now() - started) / 100) / 10;
results.sections = sections;
const summary = summaryLines(results).join('\n');
log(`\n${summary}`);

const dir = fileURLToPath(new URL('./results/', import.meta.url));
await mkdir(dir, { recursive: true });
const partial = only.length < ALL.length || argv.some((a) => /^--(scenarios|rate|long-lived|rounds|cycles)=/.test(a));
const mode = `${quick ? 'quick' : 'full'}${partial ? '-partial' : ''}`;
await writeFile(`${dir}bench-${mode}.json`, `${JSON.stringify(results, null, 2)}\n`);
await writeFile(`${dir}summary-${mode}.md`, `${summary}\n`);
log(`results written to ${dir}bench-${mode}.json and summary-${mode}.md`);
