%% The relup agent: lives inside an Erlang node, listens on a Unix control
%% socket (mode 0600), speaks docs/protocol.md and evaluates relup scripts
%% on the node (relup_txn), so a client that dies mid-way never leaves the
%% node half-upgraded.
%%
%% Two ways in:
%% - release mode (`relup node start` on a `runtime: erlang` release): the
%%   agent loads the release's modules, starts its processes and its main
%%   module, from the permanent release in the state directory;
%% - embedded: `relup_agent:start_link(#{socket => Path, state_dir => Dir,
%%   release => Bundle, processes => [Name]})` in an existing supervision
%%   tree; the application loaded its code and runs its processes itself.
-module(relup_agent).
-behaviour(gen_server).

-export([start_link/1, start/1, stop/0, enter/1, leave/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(SERVER, ?MODULE).
-define(HOLD_GRACE_MS, 50).

-record(st, {
    socket_path, listen, state_dir, mode,
    lock = none,   %% the content of <state>/node.lock we wrote (relup_lock)
    spec,          %% #{name, version, hash, modules => #{Mod => #{file, hash}}, processes => [#{name, module, args}], start, config}
    code,          %% #{Mod => Binary}: the object code the node runs, kept for an in-place rollback
    history,
    txn = none,    %% none | {Pid, From, To}
    suspended = #{},
    history_problem = none,  %% set when something could not be recorded (a full disk): said by status
    placeholders = [],       %% this attempt's events (started, the commit record), replaced by its outcome
    committed = none,        %% {Spec, Code, History} before the commit record of the running transaction: its undo
    history_gen = 0,         %% counts the history's writes: a commit record written ahead is used only if none came after it
    prepared_commit = none,  %% none | {Gen, {Event, Permanent, Version, Hash}, Tmp}: the commit record written ahead (prepare_commit/5)
    %% Outside work held past the point of no return (see enter/1):
    holding = false,         %% false | {true, Waiter | none}
    held = [],               %% callers of enter/1 waiting for the transaction to settle, newest first
    inflight = 0,            %% control-socket calls/invokes running now
    %% The running release's soak (docs/protocol.md, Soak): none | {Version, StartedMs, DeadlineMs}, system
    %% time. In memory only: a restart boots the permanent release, never the one in soak.
    soak = none
}).

start_link(Opts) -> gen_server:start_link({local, ?SERVER}, ?MODULE, Opts, []).
start(Opts) -> gen_server:start({local, ?SERVER}, ?MODULE, Opts, []).
stop() -> gen_server:stop(?SERVER).

init(Opts) ->
    process_flag(trap_exit, true),
    StateDir = to_list(maps:get(state_dir, Opts)),
    ok = filelib:ensure_path(StateDir),
    ok = file:change_mode(StateDir, 8#700),
    %% Before anything in the directory is read or written: two nodes on one history would overwrite each other.
    case relup_lock:take(StateDir) of
        {error, Why} -> {stop, Why};
        {ok, Lock} ->
            case init_locked(Opts, StateDir) of
                {ok, St} -> {ok, St#st{lock = Lock}};
                Stop -> relup_lock:release(StateDir, Lock), Stop
            end
    end.

init_locked(Opts, StateDir) ->
    ok = filelib:ensure_path(filename:join(StateDir, "releases")),
    relup_history:remove_temp_files(StateDir),
    Mode = maps:get(mode, Opts, embedded),
    Fresh = relup_history:read(StateDir) =:= none,
    case relup_faults:check() =:= ok andalso boot(Mode, StateDir, Opts) of
        false -> {stop, element(2, relup_faults:check())};
        {ok, Spec, Code, History} ->
            %% A node whose boot is not on record would disagree with its disk (the history could still name another current release).
            case relup_faults:durable('history-boot', fun() -> relup_history:write(StateDir, History) end) of
                ok -> listen_and_run(Opts, StateDir, Mode, Spec, Code, History);
                {error, Why} ->
                    %% A new state directory had no history: leave none (a failed write may have put the new file in place).
                    Fresh andalso file:delete(filename:join(StateDir, "history.json")),
                    {stop, iolist_to_binary(io_lib:format("state-write-failed: cannot write ~s: ~0p; free space in ~s (or fix the disk), then start the node again",
                                                          [filename:join(StateDir, "history.json"), Why, StateDir]))}
            end;
        {error, Why} -> {stop, Why}
    end.

listen_and_run(Opts, StateDir, Mode, Spec, Code, History) ->
            Path = to_list(maps:get(socket, Opts)),
            case listen(Path) of
                {ok, L} ->
                    Self = self(),
                    spawn_link(fun() -> accept_loop(Self, L, Spec) end),
                    {ok, #st{socket_path = Path, listen = L, state_dir = StateDir, mode = Mode,
                             spec = Spec, code = Code, history = History}};
                {error, Why} -> {stop, {listen_failed, Path, Why}}
            end.

%% ---- boot ----

boot(Mode, StateDir, Opts) ->
    case relup_history:read(StateDir) of
        {Kind, H0} when Kind =:= ok; Kind =:= legacy ->
            #{<<"permanent">> := Perm, <<"current">> := Cur} = H0,
            case verify_installed(Kind, StateDir, H0, Opts) of
                {ok, Installed, PermFiles} ->
                    %% A restart boots the permanent release: an upgrade not made permanent does not survive it.
                    Event = #{<<"at">> => relup_history:now_iso(), <<"op">> => <<"boot">>, <<"from">> => Cur,
                              <<"to">> => Perm, <<"status">> => <<"booted">>},
                    H1 = (relup_history:mark_interrupted(H0))#{<<"installed">> => Installed},
                    H = relup_history:record(H1, Event, #{current => Perm}),
                    start_release(Mode, PermFiles, StateDir, Opts, H);
                {error, Why} -> {error, Why}
            end;
        none ->
            case maps:find(release, Opts) of
                {ok, BundlePath} ->
                    {ok, Bytes} = file:read_file(BundlePath),
                    case verified(relup_release:unpack(Bytes), Opts) of
                        {ok, Files} ->
                            {Name, Version} = manifest_id(Files),
                            case relup_faults:durable(bundle, fun() -> install(StateDir, Name, Version, Bytes) end) of
                                ok -> start_release(Mode, Files, StateDir, Opts, relup_history:new(Name, Version, relup_release:release_hash(Files)));
                                {error, Why} -> {error, iolist_to_binary(io_lib:format("state-write-failed: cannot install ~s: ~0p; free space in ~s (or fix the disk), then start the node again",
                                                                                       [bundle_path(StateDir, Name, Version), Why, StateDir]))}
                            end;
                        {error, Why} -> {error, Why}
                    end;
                error -> {error, <<"the state directory holds no release yet: pass release => Bundle">>}
            end;
        {error, Why} -> {error, Why}
    end.

%% Every bundle the history records is verified before anything of it runs,
%% as the Node.js host does: a bundle someone replaced (even one with a
%% valid manifest of its own) stops the node with bundle-tampered. A
%% recorded release whose bundle is gone is forgotten (a rollback can no
%% longer go there) unless it is the permanent one; bundles the history does
%% not name were never run (an install cut short) and are ignored. A
%% format-1 history records no hashes: they are taken now, from the bundles
%% that verify.
verify_installed(Kind, Dir, H, Opts) ->
    #{<<"name">> := Name, <<"permanent">> := Perm, <<"installed">> := Recorded} = H,
    Candidates = case Kind of
        ok -> maps:to_list(Recorded);
        legacy -> [{V, any} || V <- bundle_versions(Dir, Name)]
    end,
    Result = lists:foldl(fun
        (_, {error, _} = E) -> E;
        ({V, Hash}, {ok, Acc, PermFiles}) ->
            Path = bundle_path(Dir, Name, V),
            case file:read_file(Path) of
                {error, enoent} ->
                    logger:notice("relup: ~s is gone: ~s can no longer be rolled back to", [Path, V]),
                    {ok, Acc, PermFiles};
                {error, Why} -> {error, iolist_to_binary(io_lib:format("cannot read ~s: ~p", [Path, Why]))};
                {ok, Bytes} ->
                    Checked = case relup_release:unpack(Bytes) of
                        {ok, Files} ->
                            case {relup_release:verify(Files, maps:get(public_key, Opts, none)), catch manifest_id(Files)} of
                                {ok, {Name, V}} -> {ok, Files, relup_release:release_hash(Files)};
                                {ok, _} -> {error, <<"its manifest names another release">>};
                                {{error, W}, _} -> {error, W}
                            end;
                        {error, W} -> {error, W}
                    end,
                    case Checked of
                        {ok, Fs, Hash} -> {ok, Acc#{V => Hash}, pick(V, Perm, Fs, PermFiles)};
                        {ok, Fs, Actual} when Hash =:= any -> {ok, Acc#{V => Actual}, pick(V, Perm, Fs, PermFiles)};
                        {error, _} when Kind =:= legacy -> {ok, Acc, PermFiles};
                        Bad ->
                            What = case Bad of
                                {ok, _, Actual} -> io_lib:format("it holds release ~s..., the history recorded ~s... when ~s was installed",
                                                                 [binary:part(Actual, 0, 16), binary:part(Hash, 0, 16), V]);
                                {error, Problem} -> io_lib:format("it does not verify: ~s", [Problem])
                            end,
                            {error, iolist_to_binary(io_lib:format(
                                "bundle-tampered: ~s is not the release ~s ~s this node installed: ~s; nothing of it ran. Restore the original bundle, or move the state directory aside to boot afresh",
                                [Path, Name, V, What]))}
                    end
            end
    end, {ok, #{}, none}, Candidates),
    case Result of
        {ok, _, none} ->
            {error, iolist_to_binary(io_lib:format("the history names ~s ~s as permanent, but its bundle ~s is missing; restore it, or move the state directory aside to boot afresh",
                                                   [Name, Perm, bundle_path(Dir, Name, Perm)]))};
        {ok, Installed, PermFiles} ->
            [logger:notice("relup: ~s is not in the history (an install cut short?): ignored", [bundle_path(Dir, Name, V)])
             || V <- bundle_versions(Dir, Name), not maps:is_key(V, Installed)],
            Kind =:= legacy andalso logger:notice("relup: history format 1: recorded the release hashes of ~b installed bundles", [map_size(Installed)]),
            {ok, Installed, PermFiles};
        {error, _} = E -> E
    end.

pick(V, V, Files, _) -> Files;
pick(_, _, _, PermFiles) -> PermFiles.

%% Every bundle the node boots is verified like an upload (signature first when the node has a key).
verified({ok, Files}, Opts) ->
    case relup_release:verify(Files, maps:get(public_key, Opts, none)) of
        ok -> {ok, Files};
        {error, Why} -> {error, <<"the release to boot does not verify: ", Why/binary>>}
    end;
verified(Error, _Opts) -> Error.

bundle_path(StateDir, Name, Version) ->
    filename:join([StateDir, "releases", binary_to_list(<<Name/binary, "-", Version/binary, ".tar.gz">>)]).

%% Written to a temporary file, fsynced, then renamed: a crash leaves the
%% old state or the whole bundle, never a torn one.
install(StateDir, Name, Version, Bytes) ->
    Final = bundle_path(StateDir, Name, Version),
    relup_history:write_durably(relup_history:temp_name(Final), Final, Bytes).

%% Where an upgrade to Version (release Hash) prepares its bundle before its
%% point of no return: `installed` when that exact release is installed
%% already (the commit then writes no bundle), else {Final, Tmp}: the
%% transaction writes and fsyncs the bytes to Tmp, the commit renames Tmp to
%% Final (commit_record), and a transaction that does not commit deletes Tmp.
bundle_target(#st{state_dir = Dir, history = H, spec = #{name := Name}}, V, Hash) ->
    Final = bundle_path(Dir, Name, V),
    case maps:get(V, maps:get(<<"installed">>, H), none) =:= Hash andalso filelib:is_regular(Final) of
        true -> installed;
        false -> {Final, relup_history:temp_name(Final)}
    end.

manifest_id(Files) ->
    {ok, M} = relup_json:decode(maps:get(<<"manifest.json">>, Files)),
    {maps:get(<<"name">>, M), maps:get(<<"version">>, M)}.

%% The spec of a release: identity from manifest.json, modules from its
%% .erl/.beam files (an Erlang module's name is its file's name; the
%% bundle's build artifacts are not modules of their own), processes
%% and start from the boot options (release.yaml, read by the driver).
spec_of(Files, Opts) ->
    {Name, Version} = manifest_id(Files),
    #{name => Name, version => Version, hash => relup_release:release_hash(Files),
      modules => modules_of(Files),
      processes => maps:get(processes, Opts, []),
      start => maps:get(start, Opts, #{}),
      config => maps:get(config, Opts, #{}),
      public_key => maps:get(public_key, Opts, none)}.

modules_of(Files) ->
    maps:from_list([{binary_to_atom(filename:basename(P, filename:extension(P)), utf8),
                     #{file => P, hash => relup_release:sha256_hex(B)}}
                    || {P, B} <- maps:to_list(relup_release:release_files(Files)), lists:member(filename:extension(P), [<<".erl">>, <<".beam">>])]).

start_release(Mode, Files, _StateDir, Opts, History) ->
    Spec = spec_of(Files, Opts),
    case compile_all(Spec, Files) of
        {ok, Code} when Mode =:= release ->
            case load_and_start(Spec, Code) of
                ok -> {ok, Spec, Code, History};
                {error, _} = E -> E
            end;
        {ok, Code} -> {ok, Spec, Code, History};
        {error, _} = E -> E
    end.

compile_all(#{modules := Mods}, Files) ->
    maps:fold(fun(Mod, #{file := P}, {ok, Acc}) ->
                      case relup_release:module_code(Mod, P, Files) of
                          {ok, Bin} -> {ok, Acc#{Mod => Bin}};
                          {error, _} = E -> E
                      end;
                 (_, _, E) -> E
              end, {ok, #{}}, Mods).

load_and_start(#{processes := Procs, start := Start, config := Config}, Code) ->
    Loads = [{M, atom_to_list(M) ++ ".beam", B} || {M, B} <- maps:to_list(Code)],
    case code:atomic_load(Loads) of
        ok ->
            Started = [start_process(P) || P <- Procs],
            case [E || {error, _} = E <- Started] of
                [] -> start_main(Start, Config);
                [E | _] -> E
            end;
        {error, Why} -> {error, iolist_to_binary(io_lib:format("loading the release failed: ~p", [Why]))}
    end.

start_process(#{name := Name, module := Mod, args := Args}) ->
    case gen_server:start({local, Name}, Mod, Args, []) of
        {ok, _} -> ok;
        Other -> {error, iolist_to_binary(io_lib:format("process ~s did not start: ~p", [Name, Other]))}
    end.

start_main(Start, Config) ->
    case maps:find(<<"main">>, Start) of
        {ok, Main} ->
            Mod = binary_to_atom(Main, utf8),
            case erlang:function_exported(Mod, start, 1) of
                true -> ok_or_error(Mod:start(Config));
                false -> ok_or_error(Mod:start())
            end;
        error -> ok
    end.

ok_or_error(ok) -> ok;
ok_or_error({ok, _}) -> ok;
ok_or_error(Other) -> {error, iolist_to_binary(io_lib:format("start of the main module failed: ~p", [Other]))}.

%% ---- the control socket ----

%% Bound under a temporary name, made 0600, then renamed into place: no
%% moment exists in which another user could connect to it.
listen(Path) ->
    _ = file:delete(Path),
    Tmp = Path ++ ".tmp-" ++ os:getpid(),
    _ = file:delete(Tmp),
    %% Frames (4-byte length + JSON) are read and written by relup_conn itself.
    Opts = [binary, {packet, raw}, {active, false}, {ifaddr, {local, Tmp}}, {backlog, 64}],
    case gen_tcp:listen(0, Opts) of
        {ok, L} ->
            ok = file:change_mode(Tmp, 8#600),
            ok = file:rename(Tmp, Path),
            {ok, L};
        E -> E
    end.

accept_loop(Agent, L, Spec) ->
    case gen_tcp:accept(L) of
        {ok, S} ->
            Pid = spawn(fun() -> receive {go, S} -> relup_conn:serve(Agent, S) end end),
            ok = gen_tcp:controlling_process(S, Pid),
            Pid ! {go, S},
            accept_loop(Agent, L, Spec);
        {error, closed} -> ok;
        {error, _} -> accept_loop(Agent, L, Spec)
    end.

%% ---- requests (from relup_conn) ----

handle_call(info, _From, St = #st{spec = #{name := N, version := V}}) ->
    {reply, #{name => N, version => V, runtime => erlang}, St};
handle_call(enter, From, St = #st{holding = {true, _}}) ->
    {noreply, St#st{held = [From | St#st.held]}};
handle_call(enter, _From, St) ->
    {reply, ok, St#st{inflight = St#st.inflight + 1}};
handle_call(hold, From, St = #st{txn = {_, _, _}}) ->
    %% Work already running gets up to HOLD_GRACE_MS to finish, like the Node.js node's 50 ms.
    case St#st.inflight of
        0 -> {reply, ok, St#st{holding = {true, none}}};
        _ ->
            erlang:send_after(?HOLD_GRACE_MS, self(), hold_grace),
            {noreply, St#st{holding = {true, From}}}
    end;
handle_call(status, _From, St) ->
    {reply, status(St), St};
handle_call({apply_begin, Script, Opts}, {TxnPid, _}, St = #st{txn = none}) ->
    From = maps:get(<<"version">>, maps:get(<<"from">>, Script)),
    To = maps:get(<<"version">>, maps:get(<<"to">>, Script)),
    Begin = fun(St0) ->
        %% Watched: a transaction process that dies of a bug must not leave the node busy for ever.
        Ref = erlang:monitor(process, TxnPid),
        {reply, {ok, St0#st.spec, St0#st.code, maps:get(<<"installed">>, St0#st.history)},
         St0#st{txn = {Ref, From, To}, committed = none}}
    end,
    case maps:get(dry_run, Opts) of
        true -> Begin(St#st{placeholders = []});
        false ->
            %% Recorded before anything changes, so an attempt cut short by a crash of the node is in the history.
            Started = #{<<"at">> => relup_history:now_iso(), <<"op">> => <<"apply">>, <<"from">> => From, <<"to">> => To, <<"status">> => <<"started">>},
            case write_history(St, 'history-started', relup_history:record(St#st.history, Started, #{})) of
                {ok, St1} -> Begin(St1#st{placeholders = [Started]});
                {error, Why, St1} ->
                    %% Nothing has changed yet: refused, like the Node.js host.
                    {reply, {refused, <<"state-write-failed">>,
                             iolist_to_binary(io_lib:format("cannot record the attempt in ~s (~s); free space in the state directory", [history_path(St), Why])),
                             #{permanent => maps:get(<<"permanent">>, St1#st.history), previous => previous(St1)}}, St1}
            end
    end;
handle_call({apply_begin, _, _}, _From, St = #st{txn = {_, F, T}}) ->
    {reply, {busy, iolist_to_binary(io_lib:format("an upgrade ~s -> ~s is running", [F, T]))}, St};
handle_call({prepare_commit, Event, Permanent, V, Hash}, _From, St = #st{txn = {_, _, _}}) ->
    {reply, ok, prepare_commit(Event, Permanent, V, Hash, St)};
handle_call({bundle_target, V, Hash}, _From, St = #st{txn = {_, _, _}}) ->
    {reply, bundle_target(St, V, Hash), St};
handle_call({commit_record, NewSpec, NewCode, Prepared, Event, Permanent}, _From, St = #st{txn = {_, _, _}}) ->
    commit_record(NewSpec, NewCode, Prepared, Event, Permanent, St);
handle_call(commit_undo, _From, St = #st{txn = {_, _, _}}) ->
    commit_undo(St);
handle_call({apply_end, Outcome}, _From, St = #st{txn = {Ref, _, _}}) ->
    erlang:demonitor(Ref, [flush]),
    St1 = soak_after(Outcome, record_outcome(Outcome, discard_prepared_commit(St))),
    #st{history = H} = St1,
    {reply, {maps:get(<<"permanent">>, H), previous(St1)}, St1#st{txn = none, suspended = #{}, placeholders = [], committed = none}};
handle_call({make_permanent, Version}, _From, St = #st{spec = #{name := Name}}) ->
    case installed_intact(St, Version) of
        true ->
            H = relup_history:record(St#st.history, #{<<"at">> => relup_history:now_iso(), <<"op">> => <<"make_permanent">>,
                                                     <<"to">> => Version, <<"status">> => <<"ok">>}, #{permanent => Version}),
            %% The permanent release changes only once it is on disk: a restart must boot what status says.
            case write_history(St, 'history-permanent', H) of
                %% Making the release in soak permanent is the soak's verdict: it passed.
                {ok, St1 = #st{soak = {Version, _, _}}} -> {reply, {ok, #{permanent => Version}}, St1#st{soak = none}};
                {ok, St1} -> {reply, {ok, #{permanent => Version}}, St1};
                {error, Why, St1} ->
                    {reply, {error, iolist_to_binary(["state-write-failed: cannot record ", Version, " as permanent in ", history_path(St), ": ", Why,
                                                      "; the permanent release is still ", maps:get(<<"permanent">>, St1#st.history)])}, St1}
            end;
        false ->
            {reply, {error, iolist_to_binary([Name, " ", Version, " is not installed on this node (installed: ",
                                              lists:join(", ", relup_history:installed(St#st.history)), "); apply it first"])}, St}
    end;
handle_call(processes, _From, St) ->
    {reply, process_names(St#st.spec), St};
handle_call(_, _From, St) -> {reply, {error, unknown}, St}.

handle_cast(leave, St = #st{inflight = N}) ->
    St1 = St#st{inflight = max(0, N - 1)},
    case St1 of
        #st{inflight = 0, holding = {true, Waiter}} when Waiter =/= none ->
            gen_server:reply(Waiter, ok),
            {noreply, St1#st{holding = {true, none}}};
        _ -> {noreply, St1}
    end;
handle_cast(release_hold, St) ->
    {noreply, release_hold(St)};
handle_cast({suspended, Name, Flag}, St) ->
    {noreply, St#st{suspended = (St#st.suspended)#{Name => Flag}}};
handle_cast(_, St) -> {noreply, St}.

handle_info({'DOWN', Ref, process, _, Why}, St = #st{txn = {Ref, F, T}}) ->
    %% The evaluator died of a bug: nothing may stay suspended behind it.
    [catch sys:resume(Name, 2000) || {Name, true} <- maps:to_list(St#st.suspended)],
    %% A commit it recorded is undone: the evaluator's own undo did not run, and the code it switched is not known to be consistent.
    St0 = case commit_undo(discard_prepared_commit(St)) of {reply, _, S} -> S end,
    Event = #{<<"at">> => relup_history:now_iso(), <<"op">> => <<"apply">>, <<"from">> => F, <<"to">> => T,
              <<"status">> => <<"rollback-failed">>,
              <<"message">> => iolist_to_binary(io_lib:format("internal error in the agent's evaluator: ~0p", [Why]))},
    St1 = outcome_event(Event, St0),
    {noreply, release_hold(St1#st{txn = none, suspended = #{}, placeholders = [], committed = none})};
handle_info(hold_grace, St = #st{holding = {true, Waiter}}) when Waiter =/= none ->
    gen_server:reply(Waiter, ok),
    {noreply, St#st{holding = {true, none}}};
handle_info(_, St) -> {noreply, St}.

%% The transaction settled (its outcome is sent): held work is let go in the order it
%% reached the agent and runs, each request in its own process, on what the outcome left.
release_hold(St = #st{holding = Holding, held = Held}) ->
    case Holding of
        {true, Waiter} when Waiter =/= none -> gen_server:reply(Waiter, ok);
        _ -> ok
    end,
    [gen_server:reply(From, ok) || From <- lists:reverse(Held)],
    St#st{holding = false, held = [], inflight = St#st.inflight + length(Held)}.

%% Outside work through the control socket (`call`, `invoke`) enters here
%% and leaves when it is answered. From the point of no return until the
%% transaction settles it waits at this entry, as on a Node.js node: nothing
%% is handled on code or state that a later failure would restore, so a
%% rollback never erases an answer already given. (gen_servers the script
%% suspends hold their own mailboxes; what else the node's own code does —
%% plain processes, its own sockets — is not held: docs/runtime-erlang.md.)
enter(Agent) -> gen_server:call(Agent, enter, infinity).
leave(Agent) -> gen_server:cast(Agent, leave).

terminate(_Reason, #st{listen = L, socket_path = Path, state_dir = Dir, lock = Lock}) ->
    catch gen_tcp:close(L),
    _ = file:delete(Path),
    %% A node stopped without terminate (SIGKILL, init:stop) leaves a stale lock: the next start takes it over.
    Lock =:= none orelse relup_lock:release(Dir, Lock),
    ok.

%% The durable half of the commit step (as the Node.js host's recordCommit):
%% run by the evaluator at `commit`, before the transaction settles. The
%% agent adopts the new release, installs its bundle (unless that exact
%% release is installed: the bytes were written and fsynced before the point
%% of no return, see bundle_target/3, so this is a rename) and writes the
%% history naming it. If a write fails
%% the step fails and the whole upgrade rolls back in place
%% (state-write-failed); the evaluator registered the undo (commit_undo)
%% before calling, rule 1. So memory, status and disk never disagree about
%% what runs and what a restart boots.
commit_record(NewSpec0, NewCode, Prepared, Event, Permanent, St = #st{state_dir = Dir, spec = Spec0, history = H0}) ->
    #{name := Name, version := V, hash := Hash} = NewSpec0,
    Path = bundle_path(Dir, Name, V),
    Install = case Prepared of
        installed -> ok;
        %% Prepared by the transaction before its point of no return (bundle_target/3): only the rename is left.
        {_Final, Tmp} -> relup_faults:durable(bundle, fun() -> relup_history:rename_into_place(Tmp, Path) end);
        %% Every apply that can reach its commit prepared its bundle (relup_txn:prepare_bundle/3): a bug, and the upgrade rolls back.
        none -> {error, <<"the bundle was not prepared before the point of no return">>}
    end,
    case Install of
        {error, Why} ->
            {reply, {error, iolist_to_binary(io_lib:format("cannot install ~s: ~s; free space in ~s (or fix the disk), then apply again", [Path, reason(Why), Dir]))}, St};
        ok ->
            H1 = commit_history(H0, St#st.placeholders, Event, Permanent, V, Hash),
            %% Written ahead (prepare_commit/5) when no other history write came in between: then only renamed here.
            %% (Not named Prepared: that is the bundle's, bound above; rebinding it was a badmatch that crashed the agent.)
            Ahead = case St#st.prepared_commit of
                {Gen, {Event, Permanent, V, Hash}, HistoryTmp} when Gen =:= St#st.history_gen -> HistoryTmp;
                _ -> none
            end,
            case write_history(St, 'history-commit', H1, Ahead) of
                {error, Why, St1} ->
                    {reply, {error, iolist_to_binary(io_lib:format("cannot record the commit in ~s: ~s; free space in ~s (or fix the disk), then apply again",
                                                                   [history_path(St), Why, Dir]))}, St1};
                {ok, St1} ->
                    %% Releases the history no longer names (past relup_history's MAX_INSTALLED) are uninstalled after the
                    %% write, so a crash leaves at worst a bundle nobody names (ignored at boot).
                    Kept = maps:get(<<"installed">>, H1),
                    [file:delete(bundle_path(Dir, Name, Old)) || Old <- maps:keys(maps:get(<<"installed">>, H0)), not maps:is_key(Old, Kept)],
                    NewSpec = NewSpec0#{processes => maps:get(processes, Spec0), start => maps:get(start, Spec0), config => maps:get(config, Spec0),
                                        public_key => maps:get(public_key, Spec0)},
                    {reply, ok, St1#st{spec = NewSpec, code = NewCode, committed = {Spec0, St#st.code, H0},
                                       placeholders = [Event | St#st.placeholders]}}
            end
    end.

%% The history the commit step of this attempt writes.
commit_history(H0, Placeholders, Event, Permanent, V, Hash) ->
    Change = case Permanent of true -> #{current => V, permanent => V}; false -> #{current => V} end,
    relup_history:record(without_placeholders(H0, Placeholders), Event, Change#{installed => {V, Hash}}).

%% The commit record, written and fsynced under a temporary name before the
%% transaction's point of no return (as the Node.js host's HistoryLog.prepare),
%% so that the commit step inside the suspension window only renames it. It
%% is used only if the history was not written in between (a make_permanent):
%% otherwise the commit writes in full, as without it. A failure here changes
%% nothing and costs nothing but that: the commit then writes in full too.
prepare_commit(Event, Permanent, V, Hash, St0 = #st{state_dir = Dir}) ->
    St = discard_prepared_commit(St0),
    case relup_history:prepare(Dir, commit_history(St#st.history, St#st.placeholders, Event, Permanent, V, Hash)) of
        {ok, Tmp} -> St#st{prepared_commit = {St#st.history_gen, {Event, Permanent, V, Hash}, Tmp}};
        {error, Why} ->
            logger:notice("relup: the commit record could not be written ahead (~0p); the commit writes it in full", [Why]),
            St
    end.

%% A commit record written ahead and not renamed into place is deleted (after a rename there is nothing to delete).
discard_prepared_commit(St = #st{prepared_commit = none}) -> St;
discard_prepared_commit(St = #st{prepared_commit = {_, _, Tmp}}) ->
    _ = file:delete(Tmp),
    St#st{prepared_commit = none}.

%% Undo of commit_record: the release that was running is adopted again and
%% the history names it again (current and permanent as before; the bundle
%% stays installed: nothing of it is lost, and a later apply finds it).
commit_undo(St = #st{committed = none}) -> {reply, ok, St};
commit_undo(St = #st{committed = {Spec, Code, Before}, history = H}) ->
    St0 = St#st{spec = Spec, code = Code, committed = none},
    Back = H#{<<"current">> => maps:get(<<"current">>, Before), <<"permanent">> => maps:get(<<"permanent">>, Before)},
    case write_history(St0, 'history-outcome', Back) of
        {ok, St1} -> {reply, ok, St1};
        {error, Why, St1} ->
            {reply, {error, iolist_to_binary(io_lib:format("the history still names ~s as current and ~s as permanent: putting it back failed: ~s",
                                                           [maps:get(<<"current">>, H), maps:get(<<"permanent">>, H), Why]))}, St1}
    end.

%% A committed apply ends any soak (the release in soak no longer runs, or
%% runs again by a new decision); one with soakMs starts its release's,
%% from now (the commit just settled). A refused, rolled-back or dry-run
%% apply leaves the soak as it was.
soak_after(#{status := <<"committed">>, version := V, soak_ms := Ms}, St) when is_integer(Ms) ->
    Now = erlang:system_time(millisecond),
    St#st{soak = {V, Now, Now + Ms}};
soak_after(#{status := <<"committed">>}, St) -> St#st{soak = none};
soak_after(_, St) -> St.

%% After a transaction: this attempt's placeholder events (started, the
%% commit record) are replaced by its outcome. The release fields were
%% settled durably by the transaction itself (commit step or its undo), so
%% a failure here loses figures, never which release runs: status says so.
record_outcome(Outcome, St) ->
    Status = maps:get(status, Outcome),
    case lists:member(Status, [<<"noop">>, <<"dry-run">>]) of
        true ->
            case St#st.placeholders of
                [] -> St;
                Ps -> element(2, write_or_note(St, 'history-outcome', without_placeholders(St#st.history, Ps), "the outcome of the last upgrade"))
            end;
        false ->
            Event0 = #{<<"at">> => relup_history:now_iso(), <<"op">> => <<"apply">>,
                       <<"from">> => maps:get(from, Outcome), <<"to">> => maps:get(to, Outcome),
                       <<"status">> => Status, <<"message">> => maps:get(message, Outcome),
                       <<"durationMs">> => round2(maps:get(durationMs, Outcome)),
                       <<"suspensionMs">> => maps:from_list([{integer_to_binary(maps:get(id, G)), maps:get(suspensionMs, G)} || G <- maps:get(groups, Outcome)])},
            Event = case maps:find(failure, Outcome) of
                {ok, #{step := #{index := I, op := Op, target := T}}} ->
                    Event0#{<<"failedStep">> => string:trim(iolist_to_binary([integer_to_binary(I + 1), " ", Op, " ", T]))};
                _ -> Event0
            end,
            outcome_event(Event, St)
    end.

outcome_event(Event, St) ->
    H = relup_history:record(without_placeholders(St#st.history, St#st.placeholders), Event, #{}),
    element(2, write_or_note(St, 'history-outcome', H, "the outcome of the last upgrade")).

without_placeholders(H = #{<<"events">> := Events}, Placeholders) ->
    H#{<<"events">> => [E || E <- Events, not lists:member(E, Placeholders)]}.

round2(X) -> round(X * 100) / 100.

history_path(#st{state_dir = Dir}) -> filename:join(Dir, "history.json").

%% The one writer of the history (as the Node.js host's HistoryLog): a
%% change becomes the value the agent reports only once it is written, so
%% status always says what a restart would boot. A failed write changes
%% nothing in memory; if the new file was already renamed into place (the
%% write failed after it), the old content is written back so disk and
%% memory agree; if that fails too, status says the file may differ.
write_history(St, What, New) -> write_history(St, What, New, none).

%% Prepared: none, or the temporary file New was written to ahead (relup_history:prepare/2), renamed here.
write_history(St = #st{state_dir = Dir, history = Old}, What, New, Prepared) ->
    Write = case Prepared of
        none -> fun() -> relup_history:write(Dir, New) end;
        Tmp -> fun() -> relup_history:install_prepared(Dir, Tmp) end
    end,
    case relup_faults:durable(What, Write) of
        ok -> {ok, St#st{history = New, history_problem = none, history_gen = St#st.history_gen + 1}};
        {error, Why} ->
            Problem = case Why of
                {_, renamed} ->
                    case relup_faults:durable(none, fun() -> relup_history:write(Dir, Old) end) of
                        ok -> St#st.history_problem;
                        {error, Again} ->
                            iolist_to_binary(io_lib:format("history.json may hold a change that failed to be written (~s), and restoring it failed too (~s)",
                                                           [reason(Why), reason(Again)]))
                    end;
                _ -> St#st.history_problem
            end,
            {error, reason(Why), St#st{history_problem = Problem}}
    end.

%% A write whose failure must not take the agent down (the outcome's
%% figures): the node keeps running and status says what was not recorded.
write_or_note(St, What, New, Label) ->
    case write_history(St, What, New) of
        {ok, St1} -> {ok, St1};
        {error, Why, St1} ->
            Problem = iolist_to_binary([Label, " could not be written to ", history_path(St), ": ", Why]),
            logger:error("relup: ~s", [Problem]),
            {error, St1#st{history_problem = Problem}}
    end.

reason({Why, renamed}) -> reason(Why);
reason(Why) when is_atom(Why) -> atom_to_binary(Why, utf8);
reason(Why) when is_binary(Why) -> Why;
reason(Why) -> iolist_to_binary(io_lib:format("~0p", [Why])).

%% ---- status ----

status(#st{spec = Spec, history = H, txn = Txn, suspended = Susp, state_dir = Dir, history_problem = Problem, soak = Soak}) ->
    #{name := Name, version := V, hash := Hash, modules := Mods} = Spec,
    Status = #{name => Name, version => V, hash => Hash,
      modules => [#{name => atom_to_binary(M, utf8), hash => maps:get(hash, Info), version => V}
                  || {M, Info} <- lists:sort(maps:to_list(Mods))],
      processes => [process_status(N, M, Susp) || {N, M} <- lists:sort(process_names(Spec))],
      upgrading => Txn =/= none,
      %% No servers or timers: an Erlang node's sockets and timers belong to its own processes, which relup does not
      %% own; the protocol lets a node omit them rather than claim none (src/protocol/status-result.ts).
      permanent => maps:get(<<"permanent">>, H), previous => relup_history:previous(H#{<<"current">> => V}),
      installed => relup_history:installed(H),
      history => lists:nthtail(max(0, length(maps:get(<<"events">>, H)) - 50), maps:get(<<"events">>, H)),
      stateDir => list_to_binary(Dir)},
    WithProblem = case Problem of none -> Status; _ -> Status#{historyProblem => Problem} end,
    case Soak of
        none -> WithProblem;
        %% Overdue is computed when asked: the node does not act on a deadline, it only says it passed.
        {SoakV, Started, Deadline} ->
            WithProblem#{soak => #{version => SoakV, startedAt => relup_history:iso(Started), deadline => relup_history:iso(Deadline),
                                  overdue => erlang:system_time(millisecond) > Deadline}}
    end.

%% The releases a rollback can return to: installed, older than the one running, newest first.
previous(#st{history = H, spec = #{version := V}}) -> relup_history:previous(H#{<<"current">> => V}).

%% Version is installed and its bundle still holds the release the history recorded.
installed_intact(#st{history = H, state_dir = Dir, spec = #{name := Name} = Spec}, Version) ->
    case maps:find(Version, maps:get(<<"installed">>, H)) of
        error -> false;
        {ok, Hash} ->
            case file:read_file(bundle_path(Dir, Name, Version)) of
                {ok, Bytes} ->
                    case relup_release:unpack(Bytes) of
                        {ok, Files} -> relup_release:verify(Files, maps:get(public_key, Spec, none)) =:= ok andalso relup_release:release_hash(Files) =:= Hash;
                        _ -> false
                    end;
                _ -> false
            end
    end.

process_names(#{processes := Procs}) ->
    [{N, M} || #{name := N, module := M} <- Procs].

process_status(Name, Mod, Susp) ->
    Pid = whereis(Name),
    Mailbox = case Pid of
        undefined -> 0;
        _ -> case erlang:process_info(Pid, message_queue_len) of {message_queue_len, Q} -> Q; _ -> 0 end
    end,
    #{name => atom_to_binary(Name, utf8), module => atom_to_binary(Mod, utf8),
      suspended => maps:get(Name, Susp, false), mailbox => Mailbox, handling => false}.

%% The versions of the bundles of Name in the state directory.
bundle_versions(Dir, Name) ->
    Prefix = binary_to_list(Name) ++ "-",
    {ok, Files} = file:list_dir(filename:join(Dir, "releases")),
    [list_to_binary(lists:sublist(F, length(Prefix) + 1, length(F) - length(Prefix) - 7))
     || F <- Files, lists:prefix(Prefix, F), lists:suffix(".tar.gz", F)].

to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) when is_list(L) -> L.
