// OTP's own release_handler on the same app as relup's Erlang demo (issue
// 10, "Speed": side by side). Builds a release_handler-managed copy of the
// demo — the same chat_server.erl and game.erl of examples/erlang, plus an
// application module, a supervisor and .appup files from
// examples/erlang-release-handler — with systools (make_script, make_relup,
// make_tar), sets up a target directory (the 1.0.0 tarball unpacked,
// RELEASES from release_handler:create_RELEASES/4), boots it with
// `erl -boot <root>/releases/1.0.0/start -mode interactive` (erlexec with
// ROOTDIR=<root>, so code:root_dir() is the target and release_handler
// unpacks there), and under the same load as the relup scenario:
//
//   - unpack_release("chat-1.1.0"), then rounds of install_release("1.1.0") +
//     make_permanent and install_release("1.0.0") (the downgrade, in place,
//     with the 1.1.0 relup's down instructions) + make_permanent;
//   - install_release("1.2.0"): 1.1.0 with a game:code_change/3 that raises,
//     i.e. an upgrade that fails after its point of no return.
//
// The node is driven through bench/erlang-release-handler/rh_ctl.erl on its
// stdin (no distribution, epmd or cookie). Everything listens on 127.0.0.1;
// every process started is stopped at the end, by pid.
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { execa } from 'execa';
import { REPO, alive, freePort, onCleanup, sleep, summary } from './lib.js';

const EXAMPLE = join(REPO, 'examples', 'erlang-release-handler');
const CTL = join(REPO, 'bench', 'erlang-release-handler', 'rh_ctl.erl');

/** The versions of erts, kernel, stdlib and sasl of the installed OTP, and where erts's binaries are. */
async function otpVersions() {
  const r = await execa('erl', ['-noshell', '-eval', `application:load(sasl), V = fun(A) -> element(3, lists:keyfind(A, 1, application:loaded_applications())) end, io:format("~s ~s ~s ~s ~s ~s", [erlang:system_info(version), V(kernel), V(stdlib), V(sasl), code:root_dir(), erlang:system_info(otp_release)]), halt().`], { stdin: 'ignore' });
  const [erts, kernel, stdlib, sasl, root, otp] = r.stdout.trim().split(' ');
  return { erts, kernel, stdlib, sasl, root, otp, bindir: join(root, `erts-${erts}`, 'bin') };
}

/** 1.2.0 = 1.1.0 with a code_change/3 that raises going up: an upgrade that fails after the point of no return. */
export function failingGame(source) {
  const marker = 'code_change({down, _Vsn}';
  if (!source.includes(marker)) throw new Error('examples/erlang 1.1.0 game.erl changed: no code_change({down, _Vsn} clause to put the failing clause before');
  return source.replace(marker, `code_change(OldVsn, _S, _Extra) when not is_tuple(OldVsn) -> erlang:error({bench_failing_code_change, OldVsn});\n${marker}`);
}

/**
 * Build the release_handler releases of the demo under `dir`: lib/chat-V/ebin
 * and rel/V/{chat-V.rel,.boot,.script,relup,chat-V.tar.gz} for every version.
 * `sources`: version → directory of the demo's .erl files for that version.
 */
export async function buildReleases(dir, otp, sources) {
  const versions = Object.keys(sources);
  for (const v of versions) {
    const lib = join(dir, 'lib', `chat-${v}`);
    await mkdir(join(lib, 'ebin'), { recursive: true });
    await mkdir(join(lib, 'src'), { recursive: true });
    for (const f of ['chat_server.erl', 'game.erl']) await cp(join(sources[v], f), join(lib, 'src', f));
    for (const f of await readdir(join(EXAMPLE, 'src'))) await cp(join(EXAMPLE, 'src', f), join(lib, 'src', f));
    const srcs = (await readdir(join(lib, 'src'))).filter((n) => n.endsWith('.erl')).map((n) => join(lib, 'src', n));
    await execa('erlc', ['+deterministic', '-o', join(lib, 'ebin'), ...srcs], { stdin: 'ignore' });
    await writeFile(
      join(lib, 'ebin', 'chat.app'),
      `{application, chat, [{description, "The relup Erlang demo, managed by release_handler"}, {vsn, "${v}"},\n` +
        `  {modules, [chat_app, chat_sup, chat_server, game]}, {registered, [chat_sup, game, chat_index]},\n` +
        `  {applications, [kernel, stdlib, sasl]}, {mod, {chat_app, []}}, {env, [{port, 0}]}]}.\n`,
    );
    try {
      await cp(join(EXAMPLE, `chat-${v}.appup`), join(lib, 'ebin', 'chat.appup'));
    } catch {
      // the first version has no appup
    }
    await mkdir(join(dir, 'rel', v), { recursive: true });
    await writeFile(join(dir, 'rel', v, `chat-${v}.rel`), `{release, {"chat", "${v}"}, {erts, "${otp.erts}"}, [{kernel, "${otp.kernel}"}, {stdlib, "${otp.stdlib}"}, {sasl, "${otp.sasl}"}, {chat, "${v}"}]}.\n`);
  }
  // Every version after the first upgrades from (and downgrades to) the first.
  const [first, ...later] = versions;
  const q = (s) => JSON.stringify(s);
  const ebin = (v) => join(dir, 'lib', `chat-${v}`, 'ebin');
  const expr = [
    ...versions.map((v) => `{ok, _, _} = systools:make_script(${q(join(dir, 'rel', v, `chat-${v}`))}, [{path, [${q(ebin(v))}]}, {outdir, ${q(join(dir, 'rel', v))}}, silent])`),
    ...later.map((v) => `{ok, _, _, _} = systools:make_relup(${q(join(dir, 'rel', v, `chat-${v}`))}, [${q(join(dir, 'rel', first, `chat-${first}`))}], [${q(join(dir, 'rel', first, `chat-${first}`))}], [{path, [${q(ebin(v))}, ${q(ebin(first))}]}, {outdir, ${q(join(dir, 'rel', v))}}, silent])`),
    ...versions.map((v) => `{ok, _, _} = systools:make_tar(${q(join(dir, 'rel', v, `chat-${v}`))}, [{path, [${q(ebin(v))}]}, {outdir, ${q(join(dir, 'rel', v))}}, silent])`),
    'halt()',
  ].join(', ');
  const r = await execa('erl', ['-noshell', '-eval', `${expr}.`], { stdin: 'ignore', reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`systools failed: ${r.all}`);
  return versions.map((v) => join(dir, 'rel', v, `chat-${v}.tar.gz`));
}

/** A target directory: the first release unpacked, RELEASES created, the other tarballs in releases/ for unpack_release. */
export async function makeTarget(root, tarballs) {
  const [first, ...later] = tarballs;
  await mkdir(join(root, 'releases'), { recursive: true });
  await execa('tar', ['xzf', first, '-C', root]);
  const v = /chat-(.*)\.tar\.gz$/.exec(first)[1];
  const q = (s) => JSON.stringify(s);
  const r = await execa('erl', ['-noshell', '-eval', `ok = release_handler:create_RELEASES(${q(root)}, ${q(join(root, 'releases'))}, ${q(join(root, 'releases', v, `chat-${v}.rel`))}, []), halt().`], { stdin: 'ignore', reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`release_handler:create_RELEASES failed: ${r.all}`);
  for (const t of later) await cp(t, join(root, 'releases', t.split('/').at(-1)));
  return v;
}

/**
 * Boot the target system on its permanent release (as its start script
 * would: releases/start_erl.data names it; here RELEASES does) with rh_ctl on
 * stdin. `cmd(expr)` evaluates an Erlang expression on the node.
 */
export async function bootTarget(root, otp, ctlEbin, port, version) {
  const child = spawn(join(otp.bindir, 'erlexec'), ['-boot', join(root, 'releases', version, 'start'), '-mode', 'interactive', '-noshell', '-chat', 'port', String(port), '-pa', ctlEbin, '-s', 'rh_ctl', 'main'], {
    env: { ...process.env, ROOTDIR: root, BINDIR: otp.bindir, EMU: 'beam', PROGNAME: 'erl' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const forget = onCleanup(async () => {
    if (alive(child.pid)) child.kill('SIGKILL');
  });
  let out = '';
  let buffer = '';
  let readies = 0;
  const waiting = [];
  let readyResolve;
  const ready = new Promise((r) => (readyResolve = r));
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal, at: performance.timeOrigin + performance.now() })));
  const onData = (d) => {
    out += d.toString();
    buffer += d.toString();
    let k;
    while ((k = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, k);
      buffer = buffer.slice(k + 1);
      if (line === 'rh_ctl ready') {
        readies += 1;
        readyResolve();
      }
      const m = /^rh_ctl ([\d.]+) (.*)$/.exec(line);
      if (m) waiting.shift()?.({ ms: Number(m[1]), result: m[2] });
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', (d) => (out += d.toString()));
  child.stdin.on('error', () => undefined);
  const dead = exited.then((e) => {
    for (const w of waiting.splice(0)) w({ ms: null, result: null, exited: e });
    return e;
  });
  await Promise.race([ready, dead.then((e) => Promise.reject(new Error(`the release_handler node exited (${e.code ?? e.signal}) before it was ready: ${out.slice(-2000)}`))), sleep(30_000).then(() => Promise.reject(new Error(`the release_handler node did not start: ${out.slice(-2000)}`)))]);
  return {
    pid: child.pid,
    output: () => out,
    exited: dead,
    /** How many times rh_ctl started: 2 after the node restarted itself (init:restart/0). */
    readies: () => readies,
    cmd(expr) {
      return new Promise((resolve) => {
        waiting.push(resolve);
        child.stdin.write(`${expr}\n`);
      });
    },
    async stop() {
      if (alive(child.pid)) {
        // stdin closed: rh_ctl halts the node.
        child.stdin.end();
        await Promise.race([dead, sleep(5000)]);
        if (alive(child.pid)) child.kill('SIGKILL');
        await dead;
      }
      forget();
    },
  };
}

/** Is the service answering on the port? (one `ping` on a fresh connection) */
function pingOnce(port) {
  return new Promise((resolve) => {
    const s = createConnection(port, '127.0.0.1');
    const t = setTimeout(() => (s.destroy(), resolve(false)), 500);
    s.on('connect', () => s.write('ping\n'));
    s.on('data', (d) => (clearTimeout(t), s.destroy(), resolve(d.toString().startsWith('pong'))));
    s.on('error', () => (clearTimeout(t), resolve(false)));
  });
}

const parseWindows = (r) => (r.result?.startsWith('[') ? JSON.parse(r.result) : []);

export async function releaseHandlerScenario(work, settings, { log = () => undefined, startLoad, loadFigures }) {
  const otp = await otpVersions();
  const dir = join(work, 'release-handler');
  const failing = join(dir, 'failing-src');
  await mkdir(failing, { recursive: true });
  await cp(join(work, 'releases', '1.1.0', 'chat_server.erl'), join(failing, 'chat_server.erl'));
  await writeFile(join(failing, 'game.erl'), failingGame(await readFile(join(work, 'releases', '1.1.0', 'game.erl'), 'utf8')));
  const t0 = performance.now();
  const tarballs = await buildReleases(join(dir, 'build'), otp, { '1.0.0': join(work, 'releases', '1.0.0'), '1.1.0': join(work, 'releases', '1.1.0'), '1.2.0': failing });
  const buildMs = performance.now() - t0;
  const root = join(dir, 'target');
  const first = await makeTarget(root, tarballs);
  const ctlEbin = join(dir, 'ctl');
  await mkdir(ctlEbin, { recursive: true });
  await execa('erlc', ['-o', ctlEbin, CTL], { stdin: 'ignore' });
  const port = await freePort();
  let node = await bootTarget(root, otp, ctlEbin, port, first);
  const ok = (what, r, re) => {
    if (r.result === null || !re.test(r.result)) throw new Error(`${what}: ${r.result ?? `the node exited (${JSON.stringify(r.exited)})`}\n${node.output().slice(-3000)}`);
    return r;
  };
  const steps = [];
  const changeWindows = [];
  let gen = await startLoad(port, settings, { reconnect: true });
  let report;
  let failure;
  try {
    await sleep(settings.settleMs);
    const unpack = ok('unpack_release("chat-1.1.0")', await node.cmd('release_handler:unpack_release("chat-1.1.0").'), /^\{ok,"1\.1\.0"\}$/);
    steps.push({ op: 'unpack_release 1.1.0', ms: unpack.ms });
    await node.cmd('rh_ctl:windows().');
    for (let i = 0; i < settings.rounds; i++) {
      for (const [v, dirn] of [['1.1.0', 'up'], ['1.0.0', 'down']]) {
        const a = performance.timeOrigin + performance.now();
        const inst = ok(`install_release("${v}")`, await node.cmd(`release_handler:install_release("${v}").`), /^\{ok,/);
        const b = performance.timeOrigin + performance.now();
        changeWindows.push([a, b + 200]);
        const perm = ok(`make_permanent("${v}")`, await node.cmd(`release_handler:make_permanent("${v}").`), /^ok$/);
        const windows = parseWindows(await node.cmd('rh_ctl:windows().'));
        steps.push({ op: `install_release ${v}`, direction: dirn, installMs: inst.ms, makePermanentMs: perm.ms, suspendMs: windows });
        await sleep(settings.settleMs);
      }
    }
  } finally {
    report = await gen.stop();
  }
  const rounds = { load: loadFigures(report, changeWindows) };
  // The failing upgrade, under a fresh load (its figures apart from the rounds').
  gen = await startLoad(port, settings, { reconnect: true, prefix: 'f' });
  let failReport;
  try {
    await sleep(settings.settleMs);
    ok('unpack_release("chat-1.2.0")', await node.cmd('release_handler:unpack_release("chat-1.2.0").'), /^\{ok,"1\.2\.0"\}$/);
    const before = await node.cmd('sys:get_state(game).');
    const a = performance.timeOrigin + performance.now();
    const inst = await node.cmd('release_handler:install_release("1.2.0").');
    const answeredAt = performance.timeOrigin + performance.now();
    // What happened to the node. release_handler's install_release/1 answers {error, …} and then calls
    // init:restart/0 (its error_action, restart by default): the node restarts in the same OS process,
    // every application stopped and booted again on the permanent release. `reboot` would end the OS process
    // (heart would start it again). Watch for either, and for the service to answer again.
    let how = 'the node kept running';
    let restartedMs = null;
    let oldNodeLog = null;
    const until = Date.now() + 20_000;
    let gone = null;
    while (Date.now() < until && node.readies() < 2 && gone === null) {
      gone = await Promise.race([node.exited, sleep(25).then(() => null)]);
    }
    if (gone) {
      oldNodeLog = node.output().slice(-3000);
      how = `the node's OS process exited (code ${gone.code ?? gone.signal}) ${Math.round(gone.at - a)} ms after install_release was called; started again by the bench, as heart would`;
      await node.stop();
      node = await bootTarget(root, otp, ctlEbin, port, first);
    } else if (node.readies() >= 2) {
      how = 'release_handler restarted the node in place (init:restart/0: every application stopped and booted again on the permanent release, same OS process)';
    }
    if (gone || node.readies() >= 2) {
      for (let k = 0; k < 400 && !(await pingOnce(port)); k++) await sleep(25);
      restartedMs = performance.timeOrigin + performance.now() - a;
    }
    const which = await node.cmd('release_handler:which_releases().');
    const after = await node.cmd('sys:get_state(game).');
    await sleep(settings.settleMs);
    failure = { installResult: inst.result, installMs: inst.ms ?? answeredAt - a, how, backInServiceMs: restartedMs, releasesAfter: which.result, stateBefore: before.result?.slice(0, 200), stateAfter: after.result?.slice(0, 200), oldNodeLog };
    changeWindows.push([a, (restartedMs === null ? answeredAt : a + restartedMs) + 200]);
  } finally {
    failReport = await gen.stop();
  }
  failure.load = loadFigures(failReport, [changeWindows.at(-1)]);
  await node.stop();
  const installs = steps.filter((s) => s.installMs !== undefined);
  const suspendMs = installs.flatMap((s) => s.suspendMs);
  const failedSummary = failure.backInServiceMs !== null
    ? `node restarted (${failure.how.startsWith('release_handler restarted') ? 'init:restart/0' : 'process exit'}): back in ${Math.round(failure.backInServiceMs)} ms, ${failure.load.droppedLongLived} connections dropped, ${failure.load.failed} requests failed, state lost`
    : `install_release answered ${failure.installResult}`;
  log(`  release_handler: built in ${Math.round(buildMs)} ms; failing upgrade: ${failure.how}`);
  return {
    otp,
    buildMs,
    load: rounds.load,
    steps,
    suspendMs: suspendMs.length > 0 ? summary(suspendMs) : null,
    installMs: { up: summary(installs.filter((s) => s.direction === 'up').map((s) => s.installMs)), down: summary(installs.filter((s) => s.direction === 'down').map((s) => s.installMs)) },
    failedUpgrade: { ...failure, summary: failedSummary },
  };
}
