%% The Erlang demo (examples/erlang) as an OTP application, so that OTP's
%% own release_handler can upgrade it: release_handler finds the processes
%% to suspend and code_change through the supervision tree, so the game
%% gen_server is started by a supervisor here (relup finds it by its
%% registered name instead). chat_server and game are the demo's files,
%% unchanged, copied in by the build (bench/erlang-release-handler-bench.js).
-module(chat_app).
-behaviour(application).
-export([start/2, stop/1]).

start(_Type, _Args) ->
    {ok, Port} = application:get_env(chat, port),
    {ok, Sup} = chat_sup:start_link(),
    %% The seed-002 TCP service: plain processes, outside the supervision
    %% tree, as in the relup demo (release_handler cannot suspend them either).
    ok = chat_server:start(#{<<"port">> => Port}),
    {ok, Sup}.

stop(_State) -> ok.
