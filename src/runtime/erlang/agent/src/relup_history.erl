%% The node's release history (same file and shape as the Node.js node's,
%% src/runtime/node-host/release-history.ts): current, permanent, previous,
%% and every boot and upgrade attempt. Written atomically: a temporary file
%% in the same directory, fsynced, then renamed over history.json, so a
%% crash leaves the old or the new file, never a torn one.
-module(relup_history).
-export([read/1, write/2, record/3, new/2, mark_interrupted/1, without_started/1, remove_temp_files/1, now_iso/0]).

-define(HISTORY_FILE, "history.json").
-define(MAX_EVENTS, 500).

read(StateDir) ->
    case file:read_file(filename:join(StateDir, ?HISTORY_FILE)) of
        {ok, Bin} ->
            case relup_json:decode(Bin) of
                {ok, #{<<"format">> := 1, <<"permanent">> := _} = H} -> {ok, H};
                _ -> {error, <<"history.json is not a valid relup history; move it aside to start fresh">>}
            end;
        {error, enoent} -> none;
        {error, Why} -> {error, iolist_to_binary(io_lib:format("cannot read history.json: ~p", [Why]))}
    end.

write(StateDir, History) ->
    Events = maps:get(<<"events">>, History),
    Bounded = History#{<<"events">> => lists:nthtail(max(0, length(Events) - ?MAX_EVENTS), Events)},
    Final = filename:join(StateDir, ?HISTORY_FILE),
    Tmp = filename:join(StateDir, "." ?HISTORY_FILE ".tmp-" ++ integer_to_list(erlang:unique_integer([positive]))),
    Bytes = [relup_json:encode(Bounded), $\n],
    {ok, Fd} = file:open(Tmp, [write, raw, binary]),
    ok = file:write(Fd, Bytes),
    ok = file:sync(Fd),
    ok = file:close(Fd),
    ok = file:change_mode(Tmp, 8#600),
    ok = file:rename(Tmp, Final).

%% Temporary files of a write cut short by a crash: never read, only removed.
remove_temp_files(StateDir) ->
    {ok, Names} = file:list_dir(StateDir),
    [file:delete(filename:join(StateDir, N)) || N <- Names, lists:prefix("." ?HISTORY_FILE ".tmp-", N)],
    ok.

new(Name, Version) ->
    #{<<"format">> => 1, <<"name">> => Name, <<"current">> => Version, <<"permanent">> => Version,
      <<"previous">> => [],
      <<"events">> => [#{<<"at">> => now_iso(), <<"op">> => <<"boot">>, <<"to">> => Version, <<"status">> => <<"booted">>}]}.

%% A new history after Event; Change may set current and/or permanent.
record(History, Event, Change) ->
    #{<<"current">> := Current, <<"previous">> := Previous, <<"events">> := Events} = History,
    NewCurrent = maps:get(current, Change, Current),
    NewPrevious = case NewCurrent =/= Current of
        true -> [Current | [V || V <- Previous, V =/= Current, V =/= NewCurrent]];
        false -> Previous
    end,
    All = Events ++ [Event],
    History#{<<"current">> => NewCurrent,
             <<"permanent">> => maps:get(permanent, Change, maps:get(<<"permanent">>, History)),
             <<"previous">> => NewPrevious,
             <<"events">> => lists:nthtail(max(0, length(All) - ?MAX_EVENTS), All)}.

%% An attempt still `started` at boot was cut short by a crash of the node.
mark_interrupted(#{<<"events">> := Events} = H) ->
    case lists:reverse(Events) of
        [#{<<"op">> := <<"apply">>, <<"status">> := <<"started">>} = Last | Rest] ->
            Marked = Last#{<<"status">> => <<"interrupted">>,
                           <<"message">> => <<"the node stopped during this upgrade (killed or crashed); it restarted on its permanent release">>},
            H#{<<"events">> => lists:reverse([Marked | Rest])};
        _ -> H
    end.

without_started(#{<<"events">> := Events} = H) ->
    case lists:reverse(Events) of
        [#{<<"op">> := <<"apply">>, <<"status">> := <<"started">>} | Rest] -> H#{<<"events">> => lists:reverse(Rest)};
        _ -> H
    end.

now_iso() ->
    list_to_binary(calendar:system_time_to_rfc3339(erlang:system_time(millisecond), [{unit, millisecond}, {offset, "Z"}])).
