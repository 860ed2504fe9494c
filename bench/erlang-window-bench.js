// Where the Erlang suspension window's time goes, and what would bring its
// p99 under 5 ms (issue 10, "Speed"). Runs the relup scenario of
// erlang-bench.js (the same load: a rate stream plus long-lived connections,
// in a separate process) against the agent as it is and against copies of the
// agent changed in one way each — compiled into a temporary directory and put
// first on the node's code path with ERL_ZFLAGS="-pa <dir>" (a later -pa goes first); the agent's
// sources are not touched. A variant proves it ran (relup_txn:bench_variant/0
// answers its name through `invoke`) or the run fails.
//
//   node bench/erlang-window-bench.js [--variants=as-is,no-commit-write,…] [--rounds=N]
//        [--rate=N] [--long-lived=N] [--generator-nice=N] [--quick]
//
// Variants (each one change to a copy of src/runtime/erlang/agent/src; by default
// as-is, no-commit-write, resume-at-step; `defer-purge`, measured here first, is what the agent does now):
//   as-is         the agent as it is
//   no-fsync      no fsync in the durable writes: the upper bound of taking the commit's fsyncs
//                 out of the window (NOT safe as such: a measurement only)
//   high-priority the transaction's process runs at `process_flag(priority, high)`
//   resume-at-step  NOT safe, a floor: each process resumed at its `resume` step (as release_handler does)
//   no-commit-write  NOT safe, a measurement: the commit writes no history (as if prepared before the window)
//   agent-high    the agent's gen_server (which does the commit's writes) at priority high, from its init
//   (and combinations, joined by +, as listed in PATCHES)
//   sbwt-none     the agent as it is, the emulator started with +sbwt none (+sbwtdcpu, +sbwtdio): no busy-waiting schedulers
//   all           no-fsync + high-priority + sbwt-none
// Everything listens on 127.0.0.1; every child process is stopped at the end, by pid.
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { REPO, round, runCleanups } from './lib.js';
import { relupScenario, settingsFor } from './erlang-bench.js';

const AGENT = join(REPO, 'src', 'runtime', 'erlang', 'agent', 'src');
const load1 = () => loadavg().map((x) => round(x, 2));

/** Each patch: [file, from, to] text replacements; every `from` must be found (or the patch is stale). */
// `defer-purge` (soft purges after the resume), measured here first (p50 16 → 7 ms), is now what the agent does.
const PATCHES = {
  'no-fsync': [['relup_history.erl', '            ok = file:sync(Fd)', '            ok']],
  'high-priority': [['relup_txn.erl', 'apply(Agent, Sock, Id, Script, B64, Params) ->\n    Started = now_ms(),', 'apply(Agent, Sock, Id, Script, B64, Params) ->\n    process_flag(priority, high),\n    Started = now_ms(),']],
};
// The agent's gen_server too (the commit's durable half runs there, called by the transaction).
PATCHES['agent-high'] = [['relup_agent.erl', 'init(Opts) ->\n    process_flag(trap_exit, true),', 'init(Opts) ->\n    process_flag(trap_exit, true),\n    process_flag(priority, high),']];
PATCHES['high-priority+agent-high'] = [...PATCHES['high-priority'], ...PATCHES['agent-high']];
// A measurement of the floor, NOT safe: each process is resumed at its `resume` step (as release_handler
// does), not when the transaction settles, and the window is timed to there. What the window would be if it
// held only the group's own steps (suspend, switch, migrate), under the same load.
PATCHES['resume-at-step'] = [
  ['relup_txn.erl', 'perform(<<"resume">>, #{<<"process">> := Name}, T0) ->\n    _ = live(Name, T0),', 'perform(<<"resume">>, #{<<"process">> := Name}, T0) ->\n    EarlyPid = live(Name, T0),\n    _ = (catch sys:resume(EarlyPid, 5000)),\n    put(early_resumed_at, now_ms()),'],
  ['relup_txn.erl', '{{ok, S}, R} when is_number(R) -> R - S;', '{{ok, S}, R} when is_number(R) -> case get(early_resumed_at) of undefined -> R - S; E -> E - S end;'],
];
// A measurement only, NOT safe: the commit does not write the history (the bundle install, done once per
// version, stays). What the window would be if the commit's history were prepared before the first suspend
// and the commit only renamed a file into place (that rename is not in this figure).
PATCHES['no-commit-write'] = [['relup_agent.erl', "case write_history(St, 'history-commit', H1) of", 'case {ok, St#st{history = H1}} of']];
// Emulator flags only (the agent as it is): schedulers that do not busy-wait leave the shared cores to the others.
PATCHES['sbwt-none'] = [];
PATCHES['all'] = [...PATCHES['no-fsync'], ...PATCHES['high-priority']];
const FLAGS = { 'sbwt-none': '+sbwt none +sbwtdcpu none +sbwtdio none', all: '+sbwt none +sbwtdcpu none +sbwtdio none' };

async function buildVariant(dir, name) {
  const src = join(dir, `src-${name.replaceAll('+', '-')}`);
  const ebin = join(dir, `ebin-${name.replaceAll('+', '-')}`);
  await cp(AGENT, src, { recursive: true });
  for (const [file, from, to] of PATCHES[name] ?? []) {
    const text = await readFile(join(src, file), 'utf8');
    if (!text.includes(from)) throw new Error(`variant ${name}: the agent changed, ${file} no longer holds:\n${from}`);
    await writeFile(join(src, file), text.replace(from, to));
  }
  // The proof that the variant is the code that ran.
  const txn = await readFile(join(src, 'relup_txn.erl'), 'utf8');
  await writeFile(join(src, 'relup_txn.erl'), txn.replace('-export([apply/6]).', `-export([apply/6, bench_variant/0]).\nbench_variant() -> <<"${name}">>.`));
  await execa('mkdir', ['-p', ebin]);
  const names = (await readdir(src)).filter((n) => n.endsWith('.erl'));
  await execa('erlc', ['+deterministic', '-o', ebin, ...names.map((n) => join(src, n))], { stdin: 'ignore' });
  return ebin;
}

export async function runWindowBench({ quick = false, variants = ['as-is', 'no-commit-write', 'resume-at-step'], overrides = {}, log = () => undefined } = {}) {
  const settings = settingsFor(quick, { rounds: 3, failing: false, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) });
  const work = await mkdtemp(join(tmpdir(), 'relup-erlang-window-'));
  const rows = [];
  try {
    await cp(join(REPO, 'examples', 'erlang'), join(work, 'app'), { recursive: true });
    for (const [n, v] of variants.entries()) {
      if (v !== 'as-is' && !PATCHES[v]) throw new Error(`unknown variant ${v}; known: as-is, ${Object.keys(PATCHES).join(', ')}`);
      const ebin = await buildVariant(work, v);
      const before = load1();
      log(`variant ${v} (load average ${before.join(', ')})`);
      // Short: the node's Unix socket lives there (a path is at most 107 bytes).
      const app = join(work, `app-${n}`);
      await cp(join(work, 'app'), app, { recursive: true });
      const r = await relupScenario(app, settings, { env: { ERL_ZFLAGS: `${FLAGS[v] ?? ''} -pa ${ebin}` }, expectVariant: PATCHES[v]?.length ? v : 'as-is' });
      const b = r.breakdown;
      const part = (re) => Object.entries(b).filter(([k]) => re.test(k));
      rows.push({
        variant: v,
        loadAverageBefore: before,
        loadAverageAfter: load1(),
        failed: r.load.failed,
        dropped: r.load.droppedLongLived,
        window: b.window,
        purgeP50Ms: round(part(/^purge/).reduce((s, [, x]) => s + x.p50, 0), 3),
        commitMs: b['commit (durable writes)'],
        outsideStepsMs: b['outside the steps'],
        breakdown: b,
      });
      log(`  window p50 ${b.window.p50} p99 ${b.window.p99} max ${b.window.max} ms; commit p50 ${b['commit (durable writes)']?.p50} max ${b['commit (durable writes)']?.max}; purges p50 ${rows.at(-1).purgeP50Ms}; outside steps p50 ${b['outside the steps'].p50}; failed ${r.load.failed}, dropped ${r.load.droppedLongLived}`);
    }
    return { settings, rows };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && process.argv[1].endsWith('erlang-window-bench.js')) {
  const argv = process.argv.slice(2);
  const opt = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const num = (name) => (opt(name) === undefined ? undefined : Number(opt(name)));
  try {
    const result = await runWindowBench({
      quick: argv.includes('--quick'),
      variants: opt('variants')?.split(','),
      overrides: { rounds: num('rounds'), rate: num('rate'), longLived: num('long-lived'), generatorNice: num('generator-nice') },
      log: (l) => process.stderr.write(`${l}\n`),
    });
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await runCleanups();
  }
}
