/**
 * The embedding path (an existing Erlang application adds relup_agent to its
 * supervision tree, docs/runtime-erlang.md) and `relup check` on Erlang
 * sources (a compile error is a located diagnostic, never an apply-time
 * surprise).
 */
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { compileAgent, parseErlcErrors } from '../../../src/runtime/erlang/erlang-driver.js';
import { REPO } from '../../helpers/repo-paths.js';
import { runCli } from '../../helpers/run-cli.js';
import { erlangGate } from './erlang-gate.js';
import { testdir } from '../../helpers/testdir.js';

const ok = await erlangGate('Erlang embedding and check tests (test/runtime/erlang)');

describe('erlc output parsing', () => {
  it('keeps errors of the compiled file with their line and column, and drops warnings', () => {
    const out = 'game.erl:14:1: syntax error before: handle_call\ngame.erl:3:2: Warning: export_all\nother.erl:1:1: nope\n';
    const d = parseErlcErrors(out, 'game.erl', 'releases/1.1.0/game.erl');
    expect(d.map((x) => [x.code, x.file, x.line, x.column])).toEqual([['erlang-compile-error', 'releases/1.1.0/game.erl', 14, 1]]);
  });
});

const children: { kill: (signal: 'SIGKILL') => unknown }[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

describe.runIf(ok)('Erlang: check and embedding', { timeout: 60_000 }, () => {
  it('relup check reports an Erlang compile error at its file and line', async () => {
    const dir = await testdir();
    await cp(join(REPO, 'examples', 'erlang'), dir, { recursive: true });
    const file = join(dir, 'releases', '1.1.0', 'game.erl');
    const { readFile } = await import('node:fs/promises');
    await writeFile(file, (await readFile(file, 'utf8')).replace('init(_Args) -> {ok, #{players => #{}}}.', 'init(_Args) -> {ok, #{players => #{}}'));
    const r = await runCli(['check', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const diagnostics = JSON.parse(r.stdout).diagnostics as { code: string; file: string; line: number }[];
    expect(diagnostics.some((d) => d.code === 'erlang-compile-error' && d.file === 'releases/1.1.0/game.erl' && d.line === 14)).toBe(true);
  });

  it('an application that adds relup_agent to its own supervision tree is upgraded and rolled back in place', async () => {
    const dir = await testdir();
    await cp(join(REPO, 'test', 'conformance', 'app', 'erlang'), join(dir, 'releases'), { recursive: true });
    await cp(join(REPO, 'test', 'conformance', 'app', 'appups'), join(dir, 'appups'), { recursive: true });
    // The application's own code, built its own way, and its supervisor (the example of docs/runtime-erlang.md).
    const ebin = join(dir, 'ebin');
    await mkdir(ebin);
    await writeFile(join(dir, 'conf_sup.erl'), CONF_SUP);
    await execa('erlc', ['-o', ebin, join(dir, 'conf_sup.erl'), join(dir, 'releases', '1.0.0', 'counter.erl')]);
    // What the agent compares upgrades against: the bundle of the release the application runs.
    expect((await runCli(['release', 'pack', 'releases/1.0.0', '--out-dir', 'bundles'], dir)).exitCode).toBe(0);
    const agent = await compileAgent(join(dir, 'agent-cache'));
    const socket = join(dir, 'relup.sock');
    const child = execa('erl', ['-noshell', '-pa', agent, '-pa', ebin, '-eval', `{ok, Sup} = conf_sup:start_link(<<"${socket}">>, <<"${join(dir, 'state')}">>, <<"${join(dir, 'bundles', 'conf-1.0.0.tar.gz')}">>), unlink(Sup), io:format("ready~n").`], { reject: false, stdin: 'ignore', all: true });
    children.push(child);
    let output = '';
    child.all?.on('data', (d: Buffer) => (output += d.toString()));
    for (let i = 0; i < 200 && !output.includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(output).toContain('ready');
    const c = await Connection.open({ kind: 'unix', path: socket });
    await c.request('call', { process: 'counter', message: { op: 'incr' } });
    const up = await runCli(['apply', '--to', '1.1.0', '--target', socket, '--json'], dir);
    expect(up.exitCode, up.stderr + up.stdout).toBe(0);
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.1.0');
    expect(await c.request('states', {})).toEqual({ modules: {}, processes: { counter: { count: 1, step: 1 } } });
    const down = await runCli(['rollback', '--target', socket, '--json'], dir);
    expect(down.exitCode, down.stderr + down.stdout).toBe(0);
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');
    expect(await c.request('states', {})).toEqual({ modules: {}, processes: { counter: { count: 1 } } });
    c.close();
  });
});

const CONF_SUP = `-module(conf_sup).
-behaviour(supervisor).
-export([start_link/3, init/1]).

start_link(Socket, StateDir, Bundle) ->
    supervisor:start_link({local, conf_sup}, ?MODULE, {Socket, StateDir, Bundle}).

init({Socket, StateDir, Bundle}) ->
    Counter = #{id => counter, start => {gen_server, start_link, [{local, counter}, counter, [], []]}},
    Agent = #{id => relup_agent,
              start => {relup_agent, start_link, [#{socket => Socket, state_dir => StateDir, release => Bundle,
                                                    processes => [#{name => counter, module => counter, args => []}]}]}},
    {ok, {#{strategy => one_for_one}, [Counter, Agent]}}.
`;
