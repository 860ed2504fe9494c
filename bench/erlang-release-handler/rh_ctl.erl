%% The bench's hand on a release_handler-managed node
%% (bench/erlang-release-handler-bench.js), loaded with -pa, not part of the
%% release. No distribution, epmd or cookie: it reads one Erlang expression
%% per line on stdin (e.g. `release_handler:install_release("1.1.0").`),
%% evaluates it and prints `rh_ctl <milliseconds> <result>` on one line. When
%% stdin closes (the bench is gone) the node halts. `rh_ctl ready` is printed
%% at every start (again after an init:restart/0).
%%
%% It also times the game gen_server's suspensions: a receive trace, filtered
%% to the {system, _, suspend | resume} messages sys:suspend/1 and
%% sys:resume/1 send, with monotonic timestamps; windows/0 pairs them. That is
%% the same window relup reports (from the suspend request to the resume).
-module(rh_ctl).
-export([main/0, trace_game/0, windows/0]).

main() ->
    spawn(fun() ->
        _ = trace_game(),
        io:format("rh_ctl ready~n"),
        loop()
    end).

loop() ->
    case io:get_line('') of
        Gone when Gone =:= eof; element(1, Gone) =:= error -> stdin_gone();
        Line ->
            T0 = erlang:monotonic_time(microsecond),
            R = try eval(Line) catch C:W -> {C, W} end,
            Ms = (erlang:monotonic_time(microsecond) - T0) / 1000,
            io:format("rh_ctl ~.3f ~0p~n", [Ms, R]),
            loop()
    end.

%% stdin closed: the bench is gone, halt. Unless the node is restarting
%% (release_handler's init:restart/0 after a failed install stops every
%% application and the I/O server with it): then this process just ends, and
%% the restarted node runs `-s rh_ctl main` again, on the same stdin.
stdin_gone() ->
    case init:get_status() of
        {started, _} -> erlang:halt(0);
        _ -> exit(normal)
    end.

eval(Line) ->
    {ok, Ts, _} = erl_scan:string(Line),
    {ok, Es} = erl_parse:parse_exprs(Ts),
    {value, V, _} = erl_eval:exprs(Es, []),
    V.

trace_game() ->
    case whereis(rh_trace) of
        undefined -> register(rh_trace, spawn(fun() -> collect([]) end));
        _ -> ok
    end,
    erlang:trace_pattern('receive', [{['_', '_', {system, '_', '$1'}], [{'orelse', {'=:=', '$1', suspend}, {'=:=', '$1', resume}}], []}], []),
    erlang:trace(whereis(game), true, ['receive', monotonic_timestamp, {tracer, whereis(rh_trace)}]).

collect(Acc) ->
    receive
        {trace_ts, _, 'receive', {system, _, What}, Ts} -> collect([{What, Ts} | Acc]);
        {get, From} -> From ! {events, lists:reverse(Acc)}, collect([]);
        _ -> collect(Acc)
    end.

%% Milliseconds from each suspend request to the next resume, since the last call.
windows() ->
    rh_trace ! {get, self()},
    receive {events, Es} -> pair(Es, [])
    after 2000 -> []
    end.

pair([{suspend, S} | Rest], Acc) ->
    case [R || {resume, R} <- Rest] of
        [R | _] -> pair(lists:dropwhile(fun({W, _}) -> W =/= resume end, Rest), [(R - S) / 1000000 | Acc]);
        [] -> lists:reverse(Acc)
    end;
pair([_ | Rest], Acc) -> pair(Rest, Acc);
pair([], Acc) -> lists:reverse(Acc).
