/**
 * The agent encodes history.json with each event's JSON remembered from its
 * previous write (relup_history:encode/1), so the commit record, written
 * inside every suspension window, encodes only its own event. What it
 * writes must stay byte for byte what the plain encoder (relup_json) writes,
 * whatever changed between two writes: events dropped from the front (the
 * 500-event bound), a placeholder replaced, an event equal but for 1 vs 1.0,
 * unicode and characters JSON escapes. Run in a real `erl` with the agent
 * compiled from its sources, and through a real file.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { compileAgent } from '../../../src/runtime/erlang/erlang-driver.js';
import { erlangGate } from './erlang-gate.js';
import { testdir } from '../../helpers/testdir.js';

const ok = await erlangGate('Erlang runtime tests (test/runtime/erlang)');

const CHECK = String.raw`-module(enc_check).
-export([main/1]).

ev(I, Extra) ->
    #{<<"at">> => relup_history:now_iso(), <<"op">> => <<"apply">>, <<"from">> => <<"1.0.0">>, <<"to">> => <<"1.1.0">>,
      <<"status">> => <<"committed">>, <<"durationMs">> => I,
      <<"message">> => unicode:characters_to_binary([<<"upgraded \"chat\" ">>, 8594, <<" \\ tab\t newline\n ">>, integer_to_binary(I)]),
      <<"suspensionMs">> => #{<<"0">> => 1.5, <<"1">> => null}, <<"extra">> => Extra}.

hist(Events) ->
    #{<<"format">> => 2, <<"name">> => <<"conf">>, <<"current">> => <<"1.1.0">>, <<"permanent">> => <<"1.0.0">>,
      <<"installed">> => #{<<"1.0.0">> => <<"aa">>, <<"1.1.0">> => <<"bb">>}, <<"events">> => Events}.

same(Label, H) ->
    Memo = iolist_to_binary(relup_history:encode(H)),
    case relup_json:encode(H) of
        Memo -> io:format("~s same~n", [Label]);
        Plain -> io:format("~s DIFFERENT~n~s~n~s~n", [Label, Memo, Plain])
    end.

main([Dir]) ->
    E = [ev(I, [I]) || I <- lists:seq(1, 500)],
    same("cold", hist(E)),
    %% The commit record: the oldest event dropped, the started placeholder gone, its own event added.
    same("warm", hist(tl(E) ++ [ev(501, [])])),
    %% An event equal to a remembered one but for 1 vs 1.0 encodes differently: never taken from the memo.
    same("float", hist([ev(1, [1.0]) | tl(E)])),
    same("empty", hist([])),
    ok = relup_history:write(Dir, hist(E)),
    {ok, Disk} = file:read_file(filename:join(Dir, "history.json")),
    Want = <<(relup_json:encode(hist(E)))/binary, "\n">>,
    case Disk of Want -> io:format("file same~n"); _ -> io:format("file DIFFERENT~n") end,
    halt().
`;

describe.runIf(ok)('Erlang nodes: the history encoding', { timeout: 60_000 }, () => {
  it('the remembered event encodings give the same bytes as encoding the whole history', async () => {
    const dir = await testdir();
    const ebin = await compileAgent(join(dir, 'agent'));
    await writeFile(join(dir, 'enc_check.erl'), CHECK);
    await execa('erlc', ['+{encoding,utf8}', '-o', dir, join(dir, 'enc_check.erl')], { stdin: 'ignore' });
    const r = await execa('erl', ['-noshell', '-pa', ebin, '-pa', dir, '-run', 'enc_check', 'main', dir], { stdin: 'ignore', reject: false });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['cold same', 'warm same', 'float same', 'empty same', 'file same']);
    const history = JSON.parse(await readFile(join(dir, 'history.json'), 'utf8'));
    expect(history.events).toHaveLength(500);
    expect(history.events[0].message).toBe('upgraded "chat" → \\ tab\t newline\n 1');
  });
});
