%% The node's release history (same file and shape as the Node.js node's,
%% src/runtime/node-host/release-history.ts, format 2): current, permanent,
%% every installed release with the release hash its bundle must have, and
%% every boot and upgrade attempt. Written atomically: a temporary file in
%% the same directory, fsynced, then renamed over history.json, so a crash
%% leaves the old or the new file, never a torn one.
%%
%% `previous` is not stored: it is derived (previous/1) as in OTP's
%% `which_releases`, where releases older than the current one stay
%% installed as `old`: the installed releases whose version is lower than
%% the current one, newest first. A rollback goes to previous[0] and never
%% to a newer release, so rolling back twice walks further back, never forth.
-module(relup_history).
-export([read/1, write/2, prepare/2, install_prepared/2, record/3, new/3, mark_interrupted/1, without_started/1, remove_temp_files/1, now_iso/0, iso/1,
         previous/1, installed/1, compare_versions/2, max_installed/0, write_durably/3,
         prepare_durably/2, rename_into_place/2, temp_name/1, encode/1]).

-define(HISTORY_FILE, "history.json").
-define(EVENT_MEMO, relup_history_event_json).
-define(MAX_EVENTS, 500).
%% Installed releases kept, current and permanent always among them (as the
%% Node.js host): a node upgraded every day for years must not grow on disk
%% or in its history file. Past this many, the oldest releases that are
%% neither current nor permanent are forgotten and their bundles deleted.
-define(MAX_INSTALLED, 20).

max_installed() -> ?MAX_INSTALLED.

%% {ok, H} (format 2) | {legacy, H} (format 1: no hashes yet; `installed` is
%% empty and the caller records the hashes of the bundles it verifies) |
%% none (a new state directory) | {error, Why}.
read(StateDir) ->
    Path = filename:join(StateDir, ?HISTORY_FILE),
    case file:read_file(Path) of
        {ok, Bin} ->
            case relup_json:decode(Bin) of
                {ok, #{<<"format">> := 2, <<"permanent">> := _, <<"current">> := _, <<"installed">> := I} = H} when is_map(I) -> {ok, H};
                {ok, #{<<"format">> := 1, <<"permanent">> := _, <<"current">> := _} = H} ->
                    {legacy, (maps:without([<<"previous">>], H))#{<<"format">> => 2, <<"installed">> => #{}}};
                _ -> {error, iolist_to_binary(["history-corrupt: ", Path, " is not a valid relup history; restore it from a backup, or move it aside (mv ",
                                               Path, " ", Path, ".bad) and start the node with --release to start afresh"])}
            end;
        {error, enoent} -> none;
        {error, Why} -> {error, iolist_to_binary(io_lib:format("cannot read ~s: ~p", [Path, Why]))}
    end.

write(StateDir, History) ->
    case prepare(StateDir, History) of
        {ok, Tmp} -> install_prepared(StateDir, Tmp);
        {error, _} = E -> E
    end.

%% The first half of write/2, done ahead: History written and fsynced under
%% a temporary name ({ok, Tmp}), not yet history.json. The agent writes the
%% commit record so before an upgrade's point of no return; its commit step
%% then only renames it (install_prepared/2).
prepare(StateDir, History) ->
    Events = maps:get(<<"events">>, History),
    Bounded = maps:with([<<"format">>, <<"name">>, <<"current">>, <<"permanent">>, <<"installed">>, <<"events">>],
                        History#{<<"events">> => lists:nthtail(max(0, length(Events) - ?MAX_EVENTS), Events)}),
    Tmp = filename:join(StateDir, "." ?HISTORY_FILE ".tmp-" ++ integer_to_list(erlang:unique_integer([positive]))),
    case prepare_durably(Tmp, [encode(Bounded), $\n]) of
        ok -> {ok, Tmp};
        {error, _} = E -> E
    end.

install_prepared(StateDir, Tmp) ->
    rename_into_place(Tmp, filename:join(StateDir, ?HISTORY_FILE)).

%% The history's JSON: exactly relup_json:encode(H) (keys in sorted order),
%% but each event's encoding is remembered from the previous write by this
%% process (the agent's gen_server, the history's one writer), so a write
%% encodes only the events new since then. Why: the commit record is written
%% inside every suspension window — it must be on disk before the
%% transaction reports `committed` and before any suspended process resumes
%% (relup_txn:settle/2 runs after the commit step) — and encoding 500 events
%% there took 5.9 ms. The attempt's `started` record, written before the
%% point of no return, encodes them all, so the commit encodes only its own
%% event. Events never change once recorded; the memo holds only the events
%% of the last write, so it never grows past the history itself.
encode(#{<<"current">> := Current, <<"events">> := Events, <<"format">> := Format, <<"installed">> := Installed,
         <<"name">> := Name, <<"permanent">> := Permanent} = H) when map_size(H) =:= 6 ->
    Memo = case get(?EVENT_MEMO) of M when is_map(M) -> M; _ -> #{} end,
    Encoded = [case Memo of #{E := B} -> B; _ -> relup_json:encode(E) end || E <- Events],
    put(?EVENT_MEMO, maps:from_list(lists:zip(Events, Encoded))),
    [<<"{\"current\":">>, relup_json:encode(Current), <<",\"events\":[">>, lists:join($,, Encoded),
     <<"],\"format\":">>, relup_json:encode(Format), <<",\"installed\":">>, relup_json:encode(Installed),
     <<",\"name\":">>, relup_json:encode(Name), <<",\"permanent\":">>, relup_json:encode(Permanent), $}];
encode(H) -> relup_json:encode(H).

%% Written to a temporary file, fsynced, then renamed: a crash leaves the old
%% file or the whole new one, never a torn one. Used for the history and for
%% installed bundles.
write_durably(Tmp, Final, Bytes) ->
    case prepare_durably(Tmp, Bytes) of
        ok -> rename_into_place(Tmp, Final);
        {error, _} = E -> E
    end.

%% The first half of write_durably, done ahead: the bytes are on disk (synced)
%% under Tmp, not yet at their final name. An upgrade prepares its bundle so
%% before its point of no return, and its commit step only renames it. A
%% failed write leaves no temp file behind.
prepare_durably(Tmp, Bytes) ->
    try
        {ok, Fd} = file:open(Tmp, [write, raw, binary]),
        try
            ok = file:write(Fd, Bytes),
            ok = file:sync(Fd)
        after
            file:close(Fd)
        end,
        ok = file:change_mode(Tmp, 8#600)
    catch error:{badmatch, {error, Why}} ->
        _ = file:delete(Tmp),
        {error, Why}
    end.

%% The second half: the prepared file takes its final name (atomically).
rename_into_place(Tmp, Final) ->
    case file:rename(Tmp, Final) of
        ok -> ok;
        {error, Why} ->
            _ = file:delete(Tmp),
            {error, Why}
    end.

%% Temporary files of a write cut short by a crash (the history's in the
%% state directory; bundles' in releases/, a prepared bundle of an upgrade
%% the node did not live to commit or discard among them): never read, only
%% removed.
remove_temp_files(StateDir) ->
    {ok, Names} = file:list_dir(StateDir),
    [file:delete(filename:join(StateDir, N)) || N <- Names, lists:prefix("." ?HISTORY_FILE ".tmp-", N)],
    Releases = filename:join(StateDir, "releases"),
    case file:list_dir(Releases) of
        {ok, Bundles} ->
            %% .<bundle>.tmp-N, and <bundle>.tmp-N as agents before this one named them.
            [file:delete(filename:join(Releases, N)) || N <- Bundles, string:find(N, ".tar.gz.tmp-") =/= nomatch];
        {error, _} -> ok
    end,
    ok.

%% The temporary name a bundle is written under before it is renamed to
%% Final: hidden (a leading dot), so no listing of installed bundles sees it,
%% and matched by remove_temp_files/1.
temp_name(Final) ->
    filename:join(filename:dirname(Final), "." ++ filename:basename(Final) ++ ".tmp-" ++ integer_to_list(erlang:unique_integer([positive]))).

new(Name, Version, Hash) ->
    #{<<"format">> => 2, <<"name">> => Name, <<"current">> => Version, <<"permanent">> => Version,
      <<"installed">> => #{Version => Hash},
      <<"events">> => [#{<<"at">> => now_iso(), <<"op">> => <<"boot">>, <<"to">> => Version, <<"status">> => <<"booted">>}]}.

%% A new history after Event; Change may set current, permanent and
%% installed ({Version, Hash}: a release installed by this change).
record(History, Event, Change) ->
    #{<<"events">> := Events, <<"installed">> := Installed0} = History,
    Current = maps:get(current, Change, maps:get(<<"current">>, History)),
    Permanent = maps:get(permanent, Change, maps:get(<<"permanent">>, History)),
    Installed = case maps:find(installed, Change) of
        {ok, {V, H}} -> bounded(Installed0#{V => H}, Current, Permanent);
        error -> Installed0
    end,
    All = Events ++ [Event],
    History#{<<"current">> => Current, <<"permanent">> => Permanent, <<"installed">> => Installed,
             %% Bounded in memory too, not only on disk: a long-lived node must not grow with its history.
             <<"events">> => lists:nthtail(max(0, length(All) - ?MAX_EVENTS), All)}.

bounded(Installed, _Current, _Permanent) when map_size(Installed) =< ?MAX_INSTALLED -> Installed;
bounded(Installed, Current, Permanent) ->
    Removable = lists:sort(fun(A, B) -> compare_versions(A, B) =< 0 end,
                           [V || V <- maps:keys(Installed), V =/= Current, V =/= Permanent]),
    maps:without(lists:sublist(Removable, map_size(Installed) - ?MAX_INSTALLED), Installed).

%% The releases a rollback can return to: installed and older than the current one, newest first (OTP's `old`).
previous(#{<<"current">> := Current, <<"installed">> := Installed}) ->
    newest_first([V || V <- maps:keys(Installed), compare_versions(V, Current) < 0]).

%% Every installed release, newest first.
installed(#{<<"installed">> := Installed}) -> newest_first(maps:keys(Installed)).

newest_first(Vs) -> lists:sort(fun(A, B) -> compare_versions(A, B) >= 0 end, Vs).

%% Semantic versions: numeric parts as numbers (1.10.0 > 1.9.0), a
%% pre-release below its release (1.0.0-rc.1 < 1.0.0), build metadata ignored.
compare_versions(A, B) ->
    case {version_key(A), version_key(B)} of
        {K, K} -> 0;
        {KA, KB} when KA < KB -> -1;
        _ -> 1
    end.

version_key(V) ->
    [NoBuild | _] = binary:split(V, <<"+">>),
    {Core, Pre} = case binary:split(NoBuild, <<"-">>) of
        [C] -> {C, [1]};                       %% a release sorts after its pre-releases
        [C, P] -> {C, [0, [ident(X) || X <- binary:split(P, <<".">>, [global])]]}
    end,
    {[ident(X) || X <- binary:split(Core, <<".">>, [global])], Pre}.

%% Numeric identifiers sort below alphanumeric ones, as semver says.
ident(X) ->
    case string:to_integer(X) of {I, <<>>} -> {0, I}; _ -> {1, X} end.

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

now_iso() -> iso(erlang:system_time(millisecond)).

%% ISO 8601 in UTC with milliseconds, of a system time in ms (as JavaScript's toISOString writes it).
iso(Ms) ->
    list_to_binary(calendar:system_time_to_rfc3339(Ms, [{unit, millisecond}, {offset, "Z"}])).
