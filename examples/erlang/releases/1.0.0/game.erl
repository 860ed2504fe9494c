%% The players of the game example (Silly guide, example 2) as a gen_server:
%% its state is the players map, kept across upgrades and migrated by
%% code_change/3.
-module(game).
-behaviour(gen_server).
-export([add_score/2, player/1]).
-export([init/1, handle_call/3, handle_cast/2]).

add_score(Name, Points) -> gen_server:call(game, {add_score, Name, Points}).
player(Name) -> gen_server:call(game, {player, Name}).

init(_Args) -> {ok, #{players => #{}}}.

handle_call({add_score, Name, Points}, _From, S = #{players := Ps}) ->
    P = maps:get(Name, Ps, #{score => 0}),
    P1 = P#{score := maps:get(score, P) + Points},
    {reply, P1, S#{players := Ps#{Name => P1}}};
handle_call({player, Name}, _From, S = #{players := Ps}) ->
    {reply, maps:get(Name, Ps, null), S}.

handle_cast(_Msg, S) -> {noreply, S}.
