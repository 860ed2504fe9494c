%% The players of the game example at 1.1.0: a player has a level (one per
%% 100 points). code_change/3 migrates the state both ways: OTP passes the
%% old version going up and {down, Version} going down.
-module(game).
-behaviour(gen_server).
-export([add_score/2, player/1]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

add_score(Name, Points) -> gen_server:call(game, {add_score, Name, Points}).
player(Name) -> gen_server:call(game, {player, Name}).

init(_Args) -> {ok, #{players => #{}}}.

handle_call({add_score, Name, Points}, _From, S = #{players := Ps}) ->
    P = maps:get(Name, Ps, #{score => 0, level => 1}),
    Score = maps:get(score, P) + Points,
    P1 = P#{score := Score, level => level(Score)},
    {reply, P1, S#{players := Ps#{Name => P1}}};
handle_call({player, Name}, _From, S = #{players := Ps}) ->
    {reply, maps:get(Name, Ps, null), S}.

handle_cast(_Msg, S) -> {noreply, S}.

%% Down to 1.0.0: players have a score only.
code_change({down, _Vsn}, S = #{players := Ps}, _Extra) ->
    {ok, S#{players := maps:map(fun(_, P) -> maps:with([score], P) end, Ps)}};
%% Up from 1.0.0: existing players get the level their score earns.
code_change(_OldVsn, S = #{players := Ps}, _Extra) ->
    {ok, S#{players := maps:map(fun(_, P = #{score := Score}) -> P#{level => level(Score)} end, Ps)}}.

level(Score) -> 1 + Score div 100.
