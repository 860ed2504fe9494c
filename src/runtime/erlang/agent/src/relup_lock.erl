%% The state directory's lock, the same file as the Node.js host's
%% (src/fs/directory-lock.ts): `<state>/node.lock` names its holder
%% {pid, started, host, since} — the BEAM's OS pid and its start time from
%% /proc. Two nodes on one history would overwrite each other's records, so
%% a second node on a directory in use is refused (state-dir-locked). The
%% lock is created complete and atomically (written aside, then hard-linked
%% into place, which fails if it exists). A lock whose holder is gone (the
%% node was SIGKILLed; or its pid now belongs to another process, told apart
%% by the start time) is stale and taken over; one from another host is
%% never judged stale.
-module(relup_lock).
-export([take/1, release/2]).

-define(LOCK, "node.lock").

%% {ok, Text} (the lock's content, for release/2) | {ok, none} (the
%% process that started this BEAM holds the lock for it: `relup node start`
%% locks the state directory itself, src/cli/commands/node-start-command.ts)
%% | {error, Message}.
take(Dir) -> take(Dir, 0).

take(Dir, Attempt) when Attempt > 5 ->
    {error, iolist_to_binary(["state-dir-locked: cannot take the lock ", filename:join(Dir, ?LOCK),
                              ": it keeps changing; another node is starting on the same state directory: try again"])};
take(Dir, Attempt) ->
    Path = filename:join(Dir, ?LOCK),
    Text = iolist_to_binary([relup_json:encode(me()), $\n]),
    %% Another BEAM may be taking the same lock: its OS pid keeps the temporary names apart.
    Temp = filename:join(Dir, "." ?LOCK "." ++ os:getpid() ++ "-" ++ integer_to_list(erlang:unique_integer([positive])) ++ ".tmp"),
    ok = file:write_file(Temp, Text),
    _ = file:change_mode(Temp, 8#600),
    Linked = file:make_link(Temp, Path),
    _ = file:delete(Temp),
    case Linked of
        ok -> {ok, Text};
        {error, eexist} ->
            case file:read_file(Path) of
                {error, _} -> take(Dir, Attempt + 1);   %% released meanwhile
                {ok, Content} ->
                    case holder(Content) of
                        {ok, H = #{<<"pid">> := Pid}} ->
                            case {alive(H), parent_pid() =:= {ok, Pid}} of
                                %% `relup node start` locked the directory for the BEAM it started: ours to use, not to release.
                                {true, true} -> {ok, none};
                                {true, false} ->
                                    {error, iolist_to_binary(io_lib:format(
                                        "state-dir-locked: the state directory ~s is in use by another relup node (pid ~b, since ~s); stop that node first (kill ~b), or use another --state-dir",
                                        [Dir, Pid, maps:get(<<"since">>, H, <<"?">>), Pid]))};
                                {false, _} -> remove_if(Path, Content), take(Dir, Attempt + 1)
                            end;
                        error ->
                            %% Unreadable: a lock being written is complete when linked, so this is garbage; give it a moment anyway.
                            timer:sleep(100),
                            case Attempt >= 2 of true -> remove_if(Path, Content); false -> ok end,
                            take(Dir, Attempt + 1)
                    end
            end;
        {error, Why} -> {error, iolist_to_binary(io_lib:format("cannot take the lock ~s: ~p", [Path, Why]))}
    end.

%% Remove the lock if it is still ours.
release(_Dir, none) -> ok;
release(Dir, Text) -> remove_if(filename:join(Dir, ?LOCK), Text).

%% {ok, OsPid} of the process that started this BEAM, from /proc; error where unknown.
parent_pid() ->
    case file:read_file("/proc/" ++ os:getpid() ++ "/stat") of
        {ok, Bin} ->
            [_, After] = string:split(Bin, <<")">>, trailing),
            case string:lexemes(After, " ") of
                [_State, PPid | _] -> {ok, binary_to_integer(PPid)};
                _ -> error
            end;
        _ -> error
    end.

remove_if(Path, Content) ->
    case file:read_file(Path) of
        {ok, Content} -> _ = file:delete(Path), ok;
        _ -> ok
    end.

me() ->
    Pid = list_to_integer(os:getpid()),
    {ok, Host} = inet:gethostname(),
    #{pid => Pid, started => start_time(Pid), host => list_to_binary(Host), since => relup_history:now_iso()}.

holder(Content) ->
    case relup_json:decode(Content) of
        {ok, #{<<"pid">> := P, <<"host">> := H} = M} when is_integer(P), P > 0, is_binary(H) -> {ok, M};
        _ -> error
    end.

alive(#{<<"pid">> := Pid, <<"host">> := Host} = H) ->
    {ok, Mine} = inet:gethostname(),
    MyPid = list_to_integer(os:getpid()),
    case {Host =:= list_to_binary(Mine), Pid =:= MyPid} of
        {false, _} -> true;                                     %% another host: cannot be checked from here
        {true, true} -> false;                                  %% left by an earlier process that had our pid
        {true, false} ->
            case start_time(Pid) of
                null -> filelib:is_dir("/proc/" ++ integer_to_list(Pid)) orelse os_alive(Pid);
                Started -> maps:get(<<"started">>, H, null) =:= null orelse maps:get(<<"started">>, H) =:= Started
            end
    end.

%% Without /proc (not Linux): kill -0.
os_alive(Pid) ->
    case filelib:is_dir("/proc/self") of
        true -> false;
        false -> string:trim(os:cmd("kill -0 " ++ integer_to_list(Pid) ++ " 2>/dev/null && echo yes")) =:= "yes"
    end.

%% Field 22 of /proc/<pid>/stat (clock ticks since boot), as text; null where unknown.
start_time(Pid) ->
    case file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/stat") of
        {ok, Bin} ->
            [_, After] = string:split(Bin, <<")">>, trailing),
            Fields = string:lexemes(After, " "),
            case length(Fields) >= 20 of true -> lists:nth(20, Fields); false -> null end;
        _ -> null
    end.
