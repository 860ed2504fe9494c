%% The conformance app's counter at 1.0.0 (test/conformance/harness.ts).
-module(counter).
-behaviour(gen_server).
-export([init/1, handle_call/3, handle_cast/2]).
-define(VSN, <<"1.0.0">>).

init(_Args) -> {ok, #{<<"count">> => 0}}.

handle_call(#{<<"op">> := <<"incr">>}, _From, S = #{<<"count">> := N}) -> {reply, N + 1, S#{<<"count">> := N + 1}};
handle_call(#{<<"op">> := <<"get">>}, _From, S = #{<<"count">> := N}) -> {reply, N, S};
handle_call(#{<<"op">> := <<"version">>}, _From, S) -> {reply, ?VSN, S};
handle_call(#{<<"op">> := <<"state">>}, _From, S) -> {reply, S, S};
handle_call(#{<<"op">> := <<"sleep">>, <<"ms">> := Ms}, _From, S) -> timer:sleep(Ms), {reply, <<"slept">>, S}.

handle_cast(_Msg, S) -> {noreply, S}.
