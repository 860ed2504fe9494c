%% The seed-002 TCP service (../shared/reference/002), ported to a relup
%% release: plain processes, no OTP behaviour. A registered index actor
%% knows every connection; each connection has its own actor. Upgrades
%% reach them with a `code_change` message (sent by code_change/0, which the
%% appup applies after the switch): each actor answers with a fully-qualified
%% ?MODULE: self-call, which is the moment it moves to the new code.
%%
%% Line protocol: `name <who>`, `ping`, `count`, `score <points>`, `player`.
%% 1.1.0: `ping` names the version and the caller; `player` shows the level.
-module(chat_server).
-export([start/1, port/0, code_change/0]).
-export([acceptor/1, index/2, connection/3]).

-define(INDEX, chat_index).

start(Config) ->
    Port = maps:get(<<"port">>, Config, 0),
    Self = self(),
    %% The listening socket belongs to the index actor, not to a code version: it survives upgrades.
    Index = spawn(fun() ->
        {ok, L} = gen_tcp:listen(Port, [binary, {packet, line}, {active, false}, {reuseaddr, true}, {ip, {127, 0, 0, 1}}]),
        register(?INDEX, self()),
        spawn_link(?MODULE, acceptor, [L]),
        Self ! {listening, self()},
        ?MODULE:index([], L)
    end),
    receive {listening, Index} -> ok after 5000 -> {error, listen_timeout} end.

%% The TCP port the service listens on (asked by the demo through `relup invoke`-style calls).
port() ->
    ?INDEX ! {port, self()},
    receive {port, P} -> P after 2000 -> null end.

%% Applied by the appup after the switch: every actor moves to the new code.
code_change() ->
    ?INDEX ! code_change,
    ok.

%% Blocks in accept for at most 500 ms, then re-enters through ?MODULE:, so
%% the acceptor moves to new code even when no client connects (a process
%% blocked in old code for ever would keep the old code from being purged).
acceptor(L) ->
    case gen_tcp:accept(L, 500) of
        {ok, S} ->
            Pid = spawn(?MODULE, connection, [S, <<"anonymous">>, whereis(?INDEX)]),
            ok = gen_tcp:controlling_process(S, Pid),
            Pid ! go,
            ?INDEX ! {joined, Pid},
            ?MODULE:acceptor(L);
        {error, timeout} -> ?MODULE:acceptor(L);
        {error, closed} -> ok
    end.

index(Connected, L) ->
    receive
        code_change ->
            [P ! code_change || P <- Connected],
            ?MODULE:index(Connected, L);
        {joined, P} ->
            monitor(process, P),
            ?MODULE:index([P | Connected], L);
        {'DOWN', _, process, P, _} ->
            ?MODULE:index(lists:delete(P, Connected), L);
        {count, From} ->
            From ! {count, length(Connected)},
            ?MODULE:index(Connected, L);
        {port, From} ->
            {ok, P} = inet:port(L),
            From ! {port, P},
            ?MODULE:index(Connected, L)
    end.

connection(S, Name, Index) ->
    receive
        go ->
            ok = inet:setopts(S, [{active, once}]),
            ?MODULE:connection(S, Name, Index);
        code_change ->
            ?MODULE:connection(S, Name, Index);
        {tcp, S, Line} ->
            {Reply, Name1} = handle(string:trim(Line), Name, Index),
            ok = gen_tcp:send(S, [Reply, $\n]),
            ok = inet:setopts(S, [{active, once}]),
            ?MODULE:connection(S, Name1, Index);
        {tcp_closed, S} -> ok
    end.

handle(<<"name ", Who/binary>>, _Name, _Index) -> {<<"ok">>, Who};
handle(<<"ping">>, Name, _Index) -> {<<"pong from 1.1.0, ", Name/binary>>, Name};
handle(<<"count">>, Name, Index) ->
    Index ! {count, self()},
    receive {count, N} -> {integer_to_binary(N), Name} after 2000 -> {<<"error: index busy">>, Name} end;
handle(<<"score ", Points/binary>>, Name, _Index) ->
    {describe(game:add_score(Name, binary_to_integer(Points))), Name};
handle(<<"player">>, Name, _Index) -> {describe(game:player(Name)), Name};
handle(Other, Name, _Index) -> {<<"error: unknown command ", Other/binary>>, Name}.

describe(null) -> <<"no such player">>;
describe(#{score := S, level := L}) -> iolist_to_binary(io_lib:format("score ~b, level ~b", [S, L]));
%% A reply in 1.0.0's shape: a call made to the game while it was suspended
%% for a rollback is answered by 1.0.0's game after this actor switched.
%% Both shapes must be readable, or the actor (and its connection) is lost.
describe(#{score := S}) -> iolist_to_binary(io_lib:format("score ~b", [S])).
