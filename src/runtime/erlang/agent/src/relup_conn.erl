%% One control connection (docs/protocol.md) on the Unix socket: plain
%% frames ({packet, 4}), auth "none". The hello comes first; then requests,
%% each answered by exactly one result or error. Slow requests (apply,
%% states, call, invoke) run in their own processes so `status` answers at
%% any time, during an upgrade too.
-module(relup_conn).
-export([serve/2, send/2]).

-define(PROTOCOLS, [1, 2]).
-define(IDLE_MS, 600000).
-define(MAX_FRAME, 64 * 1024 * 1024).

serve(Agent, S) ->
    case recv(S) of
        {ok, #{<<"type">> := <<"hello">>, <<"protocol">> := P}} ->
            case lists:member(P, ?PROTOCOLS) of
                true ->
                    Info = gen_server:call(Agent, info),
                    send(S, #{type => hello, protocol => P, node => Info, auth => none}),
                    loop(Agent, S);
                false ->
                    error_and_close(S, null, protocol_mismatch,
                                    iolist_to_binary(io_lib:format("this node speaks protocol ~w, the client ~w", [?PROTOCOLS, P])))
            end;
        {ok, _} -> error_and_close(S, null, bad_message, <<"the first frame must be a hello">>);
        {error, bad_frame} -> error_and_close(S, null, bad_frame, <<"invalid JSON or UTF-8">>);
        {error, emsgsize} -> error_and_close(S, null, bad_frame, <<"frame longer than the node's limit (64 MiB)">>);
        {error, _} -> gen_tcp:close(S)
    end.

loop(Agent, S) ->
    case recv(S) of
        {ok, #{<<"type">> := <<"request">>, <<"id">> := Id, <<"op">> := Op} = Req} when is_integer(Id), Id >= 1 ->
            Params = maps:get(<<"params">>, Req, #{}),
            request(Agent, S, Id, Op, Params),
            loop(Agent, S);
        {ok, _} ->
            send(S, error_msg(null, bad_message, <<"expected a request">>)),
            loop(Agent, S);
        {error, bad_frame} -> error_and_close(S, null, bad_frame, <<"invalid JSON or UTF-8">>);
        {error, emsgsize} -> error_and_close(S, null, bad_frame, <<"frame longer than the node's limit (64 MiB)">>);
        {error, _} -> gen_tcp:close(S)
    end.

%% Frames are read by hand ({packet, raw}): a length past the limit is
%% refused as soon as the header arrives, with an answer (the inet driver's
%% own {packet, 4} limit closes the socket without one).
recv(S) ->
    case gen_tcp:recv(S, 4, ?IDLE_MS) of
        {ok, <<Len:32>>} when Len > ?MAX_FRAME -> {error, emsgsize};
        {ok, <<0:32>>} -> {error, bad_frame};
        {ok, <<Len:32>>} ->
            case gen_tcp:recv(S, Len, ?IDLE_MS) of
                {ok, Bin} ->
                    case relup_json:decode(Bin) of
                        {ok, Msg} when is_map(Msg) -> {ok, Msg};
                        _ -> {error, bad_frame}
                    end;
                {error, _} = E -> E
            end;
        {error, _} = E -> E
    end.

request(Agent, S, Id, <<"status">>, _) ->
    send(S, result(Id, gen_server:call(Agent, status)));
request(Agent, S, Id, <<"make_permanent">>, #{<<"version">> := V}) when is_binary(V) ->
    case gen_server:call(Agent, {make_permanent, V}) of
        {ok, R} -> send(S, result(Id, R));
        {error, Why} -> send(S, error_msg(Id, bad_request, Why))
    end;
request(Agent, S, Id, <<"apply">>, #{<<"script">> := Script, <<"bundle">> := B64} = P) when is_map(Script), is_binary(B64) ->
    case soak_problem(P) of
        none ->
            %% The transaction runs in its own process, not linked to this
            %% connection: if the client goes away it finishes or rolls back anyway.
            spawn(fun() -> relup_txn:apply(Agent, S, Id, Script, B64, P) end);
        Problem ->
            %% Refused before anything happens: no attempt is recorded (docs/protocol.md, Soak).
            send(S, error_msg(Id, bad_request, Problem))
    end;
request(Agent, S, Id, <<"states">>, _) ->
    spawn(fun() -> send(S, result(Id, #{modules => #{}, processes => states(Agent)})) end);
request(Agent, S, Id, <<"call">>, #{<<"process">> := Name, <<"message">> := Msg}) when is_binary(Name) ->
    spawn(fun() ->
        %% Held past an upgrade's point of no return until it settles (relup_agent:enter/1).
        relup_agent:enter(Agent),
        try gen_server:call(binary_to_existing_atom(Name, utf8), Msg, 60000) of
            Reply -> send(S, result(Id, Reply))
        catch
            error:badarg -> send(S, error_msg(Id, bad_request, <<"unknown process ", Name/binary>>));
            exit:Why -> send(S, error_msg(Id, call_failed, iolist_to_binary(io_lib:format("~0p", [Why]))))
        after
            relup_agent:leave(Agent)
        end
    end);
request(Agent, S, Id, <<"invoke">>, #{<<"module">> := M, <<"function">> := F} = P) when is_binary(M), is_binary(F) ->
    Args = maps:get(<<"args">>, P, []),
    spawn(fun() ->
        relup_agent:enter(Agent),
        try erlang:apply(binary_to_existing_atom(M, utf8), binary_to_existing_atom(F, utf8), Args) of
            Reply -> send(S, result(Id, Reply))
        catch
            Class:Why -> send(S, error_msg(Id, call_failed, iolist_to_binary(io_lib:format("~p:~0p", [Class, Why]))))
        after
            relup_agent:leave(Agent)
        end
    end);
request(_Agent, S, Id, Op, _) when Op =:= <<"apply">>; Op =:= <<"make_permanent">>; Op =:= <<"call">>; Op =:= <<"invoke">> ->
    send(S, error_msg(Id, bad_request, <<"invalid params for ", Op/binary>>));
request(_Agent, S, Id, Op, _) ->
    send(S, error_msg(Id, unknown_op, <<"unknown op ", (to_bin(Op))/binary>>)).

%% `soakMs` (docs/protocol.md, Soak): an integer of ms from 1 to 7 days, and
%% only with `permanent: false` (permanent defaults to true): a release in
%% soak is by definition not permanent yet.
soak_problem(#{<<"soakMs">> := Ms}) when not is_integer(Ms); Ms < 1; Ms > 604800000 ->
    <<"soakMs must be an integer number of ms from 1 to 604800000 (7 days)">>;
soak_problem(#{<<"soakMs">> := _} = P) ->
    case maps:get(<<"permanent">>, P, true) of
        false -> none;
        _ -> <<"soakMs needs permanent: false (a release in soak is not permanent yet)">>
    end;
soak_problem(_) -> none.

states(Agent) ->
    maps:from_list([{atom_to_binary(N, utf8), state_of(N)} || {N, _} <- gen_server:call(Agent, processes)]).

state_of(Name) ->
    try sys:get_state(Name, 5000) catch _:_ -> null end.

result(Id, R) -> #{type => result, id => Id, result => R}.
error_msg(Id, Code, Message) -> #{type => error, id => Id, code => Code, message => Message}.

error_and_close(S, Id, Code, Message) ->
    send(S, error_msg(Id, Code, Message)),
    gen_tcp:close(S).

%% Any process may send on the socket; a whole frame is one port command, so frames never interleave.
send(S, Msg) ->
    Body = relup_json:encode(Msg),
    _ = gen_tcp:send(S, [<<(byte_size(Body)):32>>, Body]),
    ok.

to_bin(B) when is_binary(B) -> B;
to_bin(X) -> iolist_to_binary(io_lib:format("~0p", [X])).
