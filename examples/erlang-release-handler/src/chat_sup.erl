%% Supervises the game gen_server. `modules => [game]` is how
%% release_handler knows that an upgrade of module game must suspend and
%% code_change this process.
-module(chat_sup).
-behaviour(supervisor).
-export([start_link/0, init/1]).

start_link() -> supervisor:start_link({local, chat_sup}, ?MODULE, []).

init([]) ->
    Game = #{id => game, start => {gen_server, start_link, [{local, game}, game, [], []]}, modules => [game]},
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, [Game]}}.
