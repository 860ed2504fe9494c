%% `relup node start` on a `runtime: erlang` release runs
%%   erl -noshell -pa <agent ebin> -run relup_boot main <boot.json>
%% boot.json (written by src/runtime/erlang/erlang-driver.ts) holds the
%% socket path, the state directory, the bundle to boot when the state
%% directory is fresh, and the processes and start settings of release.yaml.
-module(relup_boot).
-export([main/1]).

main([BootFile]) ->
    case boot(BootFile) of
        {ok, Pid} ->
            watch_parent(),
            io:format("relup agent ~p listening~n", [Pid]);
        {error, Why} ->
            io:format(standard_error, "relup: the Erlang node did not start: ~ts~n", [format(Why)]),
            erlang:halt(2)
    end.

boot(BootFile) ->
    {ok, Bin} = file:read_file(BootFile),
    {ok, Boot} = relup_json:decode(Bin),
    Opts = #{mode => release,
             socket => maps:get(<<"socket">>, Boot),
             state_dir => maps:get(<<"stateDir">>, Boot),
             release => maps:get(<<"release">>, Boot),
             processes => [#{name => binary_to_atom(N, utf8), module => binary_to_atom(M, utf8), args => A}
                           || #{<<"name">> := N, <<"module">> := M, <<"args">> := A} <- maps:get(<<"processes">>, Boot, [])],
             start => maps:get(<<"start">>, Boot, #{}),
             config => maps:get(<<"config">>, Boot, #{}),
             %% 32 raw ed25519 bytes (base64 in boot.json): only bundles signed by this key are accepted.
             public_key => case maps:get(<<"publicKey">>, Boot, null) of null -> none; K -> base64:decode(K) end},
    case relup_agent:start(Opts) of
        {ok, Pid} -> {ok, Pid};
        {error, Why} -> {error, Why}
    end.

%% The driver keeps our stdin open; when the process that started us dies,
%% it closes and the node stops instead of lingering as an orphan.
watch_parent() ->
    case os:getenv("RELUP_WATCH_STDIN") of
        "1" ->
            spawn(fun() ->
                Port = open_port({fd, 0, 1}, [in, eof, binary]),
                wait_eof(Port)
            end);
        _ -> ok
    end.

wait_eof(Port) ->
    receive
        {Port, eof} -> erlang:halt(0);
        {Port, _} -> wait_eof(Port)
    end.

format(B) when is_binary(B) -> B;
format(Other) -> io_lib:format("~0p", [Other]).
