%% The relup script evaluator on an Erlang node: one transaction with a
%% deadline, the same rules and the same outcome and journal shape as the
%% Node.js node (src/runtime/node/transaction.ts, node-steps.ts).
%%
%% Rollback rules, each with its reason:
%% - Before the point of no return nothing changes: code is compiled and
%%   prepared aside (code:prepare_loading, never load_binary, which kills
%%   processes still in old code), and every process a switch would kill is
%%   found (erlang:check_process_code/2) and named in a refusal.
%% - Every undo is registered before its change, so a step that fails half
%%   way is undone as far as it got.
%% - A process's state is snapshotted (sys:get_state) right after it is
%%   suspended, before any migration; a rollback puts the snapshot back with
%%   sys:replace_state, so a code_change that changed state and crashed
%%   leaves no trace.
%% - Old code is restored from the binary the node ran (kept by the agent):
%%   the new code's old slot is released with code:soft_purge only, never
%%   code:purge: a rollback never kills a process. When a process still runs
%%   the code it would have to purge, the rollback says so and is reported
%%   as `rollback-failed`, never `rolled-back`.
%% - A `resume` takes effect when the transaction settles: a message handled
%%   in between would act on state a later failure restores, and its
%%   acknowledged effect would be lost. Messages wait in the mailbox.
%% - Every process this transaction suspended is resumed at the end,
%%   whatever failed: a process left suspended is a node that silently
%%   stopped working.
%% - An `apply` has effects outside the agent's books; its undo is nothing.
-module(relup_txn).
-export([apply/6]).

-define(DEFAULT_DEADLINE_MS, 30000).
-define(PURGE_WAIT_MS, 1000).
-define(BACKGROUND_PURGE_MS, 60000).
-define(PRE_PONR, [<<"verify_release">>, <<"check_version">>, <<"stage">>, <<"check_function">>, <<"check_process">>]).

-record(t, {
    agent, sock, id, script, files = #{}, bytes, spec, code, dry_run, permanent,
    installed = #{},       %% Version => release hash: what the history records as installed
    started, deadline,
    staged = #{},          %% Mod => {Bin, Prepared}
    snapshots = #{},       %% Name => State
    suspended = [],        %% [{Name, Pid, Group}] newest first
    resume_at_end = [],
    suspended_at = #{}, resumed_at = #{}, migrated = #{},
    stopped = [], brutal = [],
    soft_purges = [],      %% modules whose old code a `purge` (soft) step releases once the processes resumed (settle/2), newest first
    verified = false, version_checked = false,
    hold_at = none,        %% when outside work started to be held (the point of no return)
    prepared = none,       %% none | installed | {Final, Tmp}: the bundle written before the point of no return (prepare_bundle/3)
    commit_event = none,   %% the history event of the commit, made before the point of no return (prepare_commit/2)
    version,
    journal = [],          %% newest first
    undo = []              %% [{Ref, [{What, Fun | none}]}] newest first
}).

%% ---- entry point (runs in its own process, spawned by relup_conn) ----

apply(Agent, Sock, Id, Script, B64, Params) ->
    Started = now_ms(),
    DryRun = maps:get(<<"dryRun">>, Params, false) =:= true,
    Permanent = maps:get(<<"permanent">>, Params, true) =/= false,
    case gen_server:call(Agent, {apply_begin, Script, #{dry_run => DryRun}}, infinity) of
        {busy, Message} ->
            relup_conn:send(Sock, #{type => error, id => Id, code => busy, message => Message});
        {refused, Code, Message, #{permanent := Perm, previous := Prev}} ->
            %% The attempt could not be recorded before anything changed (a full disk): refused, nothing changed.
            Info = gen_server:call(Agent, info),
            Refused = #{status => <<"refused">>, ok => false, name => maps:get(name, Info), version => maps:get(version, Info),
                        from => version_of(Script, <<"from">>), to => version_of(Script, <<"to">>), direction => maps:get(<<"direction">>, Script, null),
                        failure => #{code => Code, message => Message}, message => <<"refused: ", Message/binary, "; nothing changed">>,
                        journal => [], groups => [], absent => #{}, holdMs => null, durationMs => now_ms() - Started,
                        permanent => Perm, previous => Prev},
            relup_conn:send(Sock, #{type => result, id => Id, result => Refused});
        {ok, Spec, Code, Installed} ->
            Deadline = Started + case maps:get(<<"deadlineMs">>, Params, undefined) of
                D when is_integer(D), D > 0 -> D;
                _ -> ?DEFAULT_DEADLINE_MS
            end,
            T0 = #t{agent = Agent, sock = Sock, id = Id, script = Script, spec = Spec, code = Code,
                    dry_run = DryRun, permanent = Permanent, started = Started, deadline = Deadline,
                    version = maps:get(version, Spec), installed = Installed},
            Outcome0 = try run(T0, B64)
                catch C:W:St ->
                    %% A bug in the evaluator: answer the client, and let the agent (which watches this process) record it.
                    relup_conn:send(Sock, #{type => error, id => Id, code => internal,
                                            message => iolist_to_binary(io_lib:format("~p:~0p ~0p", [C, W, St]))}),
                    erlang:raise(C, W, St)
                end,
            Outcome = Outcome0#{dry_run => DryRun, permanent => Permanent, soak_ms => maps:get(<<"soakMs">>, Params, none)},
            {Perm, Prev} = gen_server:call(Agent, {apply_end, Outcome}, infinity),
            Final = maps:without([dry_run, soak_ms], Outcome#{permanent => Perm, previous => Prev}),
            relup_conn:send(Sock, #{type => result, id => Id, result => Final}),
            %% Held outside work runs once the outcome is out (relup_agent:enter/1).
            gen_server:cast(Agent, release_hold)
    end.

run(T, B64) ->
    Script = T#t.script,
    From = version_of(Script, <<"from">>),
    To = version_of(Script, <<"to">>),
    #{name := Name, version := Running, hash := Hash} = T#t.spec,
    Base = #{name => Name, from => From, to => To, direction => maps:get(<<"direction">>, Script, null),
             journal => [], groups => [], absent => #{}, holdMs => null, version => Running},
    Refuse = fun(Code, Msg) ->
        Base#{status => <<"refused">>, ok => false, failure => #{code => Code, message => Msg},
              message => <<"refused: ", Msg/binary, "; nothing changed">>, durationMs => now_ms() - T#t.started}
    end,
    ToHash = case Script of #{<<"to">> := #{<<"hash">> := H}} -> H; _ -> null end,
    Shape = shape_problem(Script),
    if
        Shape =/= ok -> Refuse(<<"invalid-script">>, Shape);
        To =:= Running, ToHash =:= Hash ->
            Base#{status => <<"noop">>, ok => true, message => <<"nothing to do: ", Name/binary, " already runs ", Running/binary>>,
                  durationMs => now_ms() - T#t.started};
        true ->
            case maps:get(<<"runtime">>, Script) =:= <<"erlang">> andalso maps:get(<<"name">>, Script) =:= Name of
                false -> Refuse(<<"wrong-release">>, iolist_to_binary(io_lib:format("the script is for ~s on ~s; this node runs ~s on erlang",
                                                                                  [maps:get(<<"name">>, Script), maps:get(<<"runtime">>, Script), Name])));
                true ->
                    case decode_bundle(B64) of
                        {ok, Files, Bytes} ->
                          case relup_release:verify(Files, maps:get(public_key, T#t.spec, none)) of
                           {error, Why} -> Refuse(<<"bundle-invalid">>, <<"the uploaded bundle does not verify: ", Why/binary>>);
                           ok ->
                            %% Like the Node.js host: a bundle of other content than the planned release is refused before anything in it is used.
                            Recorded = maps:get(To, T#t.installed, ToHash),
                            case relup_release:release_hash(Files) of
                                %% A rebuilt release is a new version: two contents under one version would make the history lie.
                                ToHash when Recorded =/= ToHash ->
                                    Refuse(<<"version-conflict">>, <<"this node already has a different ", Name/binary, " ", To/binary,
                                                                     " installed (a rebuilt release is a new version: bump it)">>);
                                ToHash -> prepare_bundle(T#t{files = Files, bytes = Bytes}, Base, Refuse);
                                Other -> Refuse(<<"bundle-invalid">>, iolist_to_binary(io_lib:format(
                                           "the uploaded bundle does not verify: bundle-release-hash-unexpected: uploaded bundle holds release ~s..., not ~s... that the script upgrades to",
                                           [binary:part(Other, 0, 16), binary:part(ToHash, 0, 16)])))
                            end
                          end;
                        {error, Why} -> Refuse(<<"bundle-invalid">>, <<"the uploaded bundle does not verify: ", Why/binary>>)
                    end
            end
    end.

decode_bundle(B64) ->
    try base64:decode(B64) of
        Bytes -> case relup_release:unpack(Bytes) of {ok, F} -> {ok, F, Bytes}; E -> E end
    catch _:_ -> {error, <<"bundle is not base64">>}
    end.

version_of(Script, Key) ->
    case Script of #{Key := #{<<"version">> := V}} when is_binary(V) -> V; _ -> <<"?">> end.

shape_problem(#{<<"format">> := 1, <<"steps">> := Steps, <<"pointOfNoReturn">> := P, <<"from">> := #{<<"version">> := _},
                <<"to">> := #{<<"version">> := _, <<"hash">> := _}, <<"groups">> := Groups}) when is_list(Steps), is_integer(P), is_list(Groups) ->
    Indexed = lists:zip(lists:seq(0, length(Steps) - 1), Steps),
    Ops = [{I, maps:get(<<"op">>, S, null)} || {I, S} <- Indexed],
    case lists:keyfind(P, 1, Ops) of
        {P, <<"point_of_no_return">>} ->
            Bad = [I || {I, Op} <- Ops, (I < P andalso not lists:member(Op, ?PRE_PONR))
                                         orelse (I > P andalso (lists:member(Op, ?PRE_PONR) orelse Op =:= <<"point_of_no_return">>))],
            Commits = [I || {I, <<"commit">>} <- Ops],
            case Bad of
                [I | _] -> iolist_to_binary(io_lib:format("step ~b (~s) is on the wrong side of the point of no return", [I, element(2, lists:keyfind(I, 1, Ops))]));
                [] when length(Steps) > P + 1, Commits =/= [length(Steps) - 1] -> <<"the last step must be the only commit">>;
                [] -> ok
            end;
        _ -> iolist_to_binary(io_lib:format("pointOfNoReturn (~b) does not index the point_of_no_return step", [P]))
    end;
shape_problem(_) -> <<"the script is not a relup script of format 1">>.

%% The bundle's bytes go to disk now (written and fsynced under a temporary
%% name in the releases directory), before the point of no return, so that
%% the commit step — inside every suspension window — only renames them into
%% place (relup_agent:commit_record/6). A disk that cannot take them refuses
%% the upgrade here, with nothing changed (state-write-failed). The
%% temporary file is deleted however the transaction ends (after a commit it
%% is already renamed); one left by a crash of the node is removed at its
%% next boot (relup_history:remove_temp_files/1). A dry run writes nothing.
prepare_bundle(T = #t{dry_run = true}, Base, _Refuse) -> transact(T, Base);
prepare_bundle(T = #t{script = Script}, Base, Refuse) ->
    #{<<"to">> := #{<<"version">> := To, <<"hash">> := ToHash}} = Script,
    case gen_server:call(T#t.agent, {bundle_target, To, ToHash}, infinity) of
        installed -> transact(prepare_commit(T#t{prepared = installed}, To), Base);
        {Final, Tmp} = Target ->
            case relup_faults:durable('bundle-prepare', fun() -> relup_history:prepare_durably(Tmp, T#t.bytes) end) of
                ok ->
                    try transact(prepare_commit(T#t{prepared = Target}, To), Base)
                    after _ = file:delete(Tmp)
                    end;
                {error, Why} ->
                    %% The write may have happened before the error (eio-after): nothing of it is kept.
                    _ = file:delete(Tmp),
                    Refuse(<<"state-write-failed">>, iolist_to_binary(io_lib:format("cannot write ~s (~s); free space in the state directory (or fix the disk), then apply again",
                                                                                   [Final, write_error(Why)])))
            end
    end.

%% The commit's history record, made now and written ahead by the agent
%% (relup_agent:prepare_commit/5) for the same reason as the bundle: the
%% commit step then renames it into place. (So its `at` is this moment and it
%% has no durationMs; it is a placeholder the outcome record replaces.)
prepare_commit(T = #t{script = S}, To) ->
    Event = #{<<"at">> => relup_history:now_iso(), <<"op">> => <<"apply">>, <<"from">> => version_of(S, <<"from">>),
              <<"to">> => To, <<"status">> => <<"committed">>,
              <<"message">> => iolist_to_binary(io_lib:format("committed at step ~b (commit)", [length(maps:get(<<"steps">>, S))]))},
    ok = gen_server:call(T#t.agent, {prepare_commit, Event, T#t.permanent, To, maps:get(<<"hash">>, maps:get(<<"to">>, S))}, infinity),
    T#t{commit_event = Event}.

write_error({Why, renamed}) -> write_error(Why);
write_error(Why) when is_atom(Why) -> atom_to_list(Why);
write_error(Why) -> io_lib:format("~0p", [Why]).

%% ---- the transaction ----

transact(T0, Base) ->
    Steps = maps:get(<<"steps">>, T0#t.script),
    P = maps:get(<<"pointOfNoReturn">>, T0#t.script),
    Last = case T0#t.dry_run of true -> P; false -> length(Steps) - 1 end,
    Indexed = lists:sublist(lists:zip(lists:seq(0, length(Steps) - 1), Steps), Last + 1),
    {Status, Failure, Rollback, T} = steps(Indexed, P, T0),
    outcome(Base, Status, Failure, Rollback, T).

steps([], _P, T) ->
    case T#t.dry_run of
        true -> {<<"dry-run">>, none, settle(discarded, T), T};
        false -> {<<"committed">>, none, settle(committed, T), T}
    end;
steps([{I, Step} | Rest], P, T) ->
    Op = maps:get(<<"op">>, Step),
    Ref = #{index => I, op => Op, target => target(Step)},
    event(T, Ref#{status => start, durationMs => 0}),
    Before = I =< P,
    T1 = case Before of true -> T; false -> T#t{undo = [{Ref, []} | T#t.undo]} end,
    T0 = now_ms(),
    Result = try
        case now_ms() > T1#t.deadline of
            true -> throw({fail, <<"deadline">>, deadline_message(T1), T1});
            false -> ok
        end,
        inject(fault(I), Step, T1),
        case Before of
            true -> {ok, check(Op, Step, T1#t{})};
            false -> {ok, perform(Op, Step, T1)}
        end
    catch
        throw:{fail, C0, M0, TF} -> {fail, C0, M0, TF};
        Class:Why:Stack -> {fail, <<"internal">>, iolist_to_binary(io_lib:format("~p:~0p in ~0p", [Class, Why, hd(Stack ++ [none])])), T1}
    end,
    Dur = now_ms() - T0,
    case Result of
        {ok, T2} ->
            event(T2, Ref#{status => ok, durationMs => Dur}),
            steps(Rest, P, T2#t{journal = [Ref#{status => ok, durationMs => Dur} | T2#t.journal]});
        {fail, Code, Msg, T2} ->
            event(T2, Ref#{status => failed, durationMs => Dur, error => Msg}),
            T3 = T2#t{journal = [Ref#{status => failed, durationMs => Dur, error => Msg} | T2#t.journal]},
            Failure = #{code => Code, message => Msg, step => Ref},
            case Before of
                true -> {<<"refused">>, Failure, settle(discarded, T3), T3};
                false ->
                    {Undone, Problems, T4} = roll_back(T3),
                    More = settle(rolled_back, T4),
                    All = Problems ++ More,
                    Rollback = #{complete => All =:= [], undone => Undone, problems => All},
                    {case All of [] -> <<"rolled-back">>; _ -> <<"rollback-failed">> end, Failure, {report, Rollback}, T4}
            end
    end.

deadline_message(T) ->
    iolist_to_binary(io_lib:format("the transaction's deadline of ~b ms passed", [round(T#t.deadline - T#t.started)])).

fail(Code, Msg, T) -> throw({fail, Code, Msg, T}).

remaining(T) -> max(0, trunc(T#t.deadline - now_ms())).

%% Register how to undo the change the step is about to make.
undo(T = #t{undo = [{Ref, Entries} | Rest]}, What, Fun) ->
    T#t{undo = [{Ref, [{What, Fun} | Entries]} | Rest]}.

roll_back(T) ->
    {Undone, Problems, Journal} = lists:foldl(fun({Ref, Entries}, {N, Ps, J}) ->
        T0 = now_ms(),
        {Errors, Notes} = lists:foldl(fun
            ({What, none}, {Es, Ns}) -> {Es, [What | Ns]};
            ({What, Fun}, {Es, Ns}) ->
                R = try Fun() catch C:W -> {error, iolist_to_binary(io_lib:format("~p:~0p", [C, W]))} end,
                case R of
                    ok -> {Es, Ns};
                    {error, E} -> {[<<What/binary, ": ", E/binary>> | Es], Ns}
                end
        end, {[], []}, Entries),  %% Entries are newest first: undone in reverse order of registration
        Dur = now_ms() - T0,
        Note = case {Notes, Entries} of
            {[], []} -> #{note => <<"nothing to undo">>};
            {[], _} -> #{};
            _ -> #{note => iolist_to_binary(lists:join(<<"; ">>, lists:reverse(Notes)))}
        end,
        Index = maps:get(index, Ref),
        case Errors of
            [] ->
                event(T, maps:merge(Ref#{status => undone, durationMs => Dur}, Note)),
                {N + 1, Ps, set_undo(J, Index, maps:merge(#{status => undone, durationMs => Dur}, Note))};
            _ ->
                E = iolist_to_binary(lists:join(<<"; ">>, lists:reverse(Errors))),
                event(T, maps:merge(Ref#{status => 'undo-failed', durationMs => Dur, error => E}, Note)),
                {N, [#{message => E, step => Ref} | Ps], set_undo(J, Index, maps:merge(#{status => 'undo-failed', durationMs => Dur, error => E}, Note))}
        end
    end, {0, [], T#t.journal}, T#t.undo),
    {Undone, lists:reverse(Problems), T#t{journal = Journal, undo = []}}.

set_undo(Journal, Index, Undo) ->
    [case maps:get(index, J) of Index -> J#{undo => Undo}; _ -> J end || J <- Journal].

%% ---- fault injection (chaos drills and the fault-matrix tests) ----

%% RELUP_FAULTS=<index>:<kind>[,…] in the node's environment (never through
%% the protocol), the same variable as the Node.js node's
%% (src/runtime/node-host/fault-injection.ts), for the kinds
%% throw | hang | exit | crash. Indices are 0-based positions in `steps`.
fault(I) ->
    Spec = case os:getenv("RELUP_FAULTS") of false -> ""; V -> V end,
    Faults = [string:split(F, ":") || F <- string:lexemes(Spec, ","), F =/= ""],
    case [K || [Idx, K] <- Faults, string:to_integer(Idx) =:= {I, ""}] of
        [Kind | _] -> Kind;
        [] -> none
    end.

inject(none, _Step, _T) -> ok;
inject("throw", _Step, T) -> fail(<<"injected">>, <<"fault injected by RELUP_FAULTS (throw)">>, T);
inject("hang", _Step, T) ->
    %% Never finishes by itself: the transaction's deadline ends it.
    timer:sleep(remaining(T)),
    fail(<<"deadline">>, deadline_message(T), T);
inject("exit", _Step, _T) ->
    %% A crash or an operator's kill -9 at this exact moment.
    os:cmd("kill -9 " ++ os:getpid()),
    timer:sleep(infinity);
inject("crash", Step, T) ->
    Names = case Step of
        #{<<"processes">> := Ps} -> Ps;
        #{<<"process">> := P} -> [P];
        _ -> []
    end,
    Names =:= [] andalso fail(<<"injected">>, <<"fault injected by RELUP_FAULTS (crash): the step names no process">>, T),
    [exit(Pid, kill) || N <- Names, Pid <- [whereis_bin(N)], Pid =/= undefined],
    timer:sleep(10),
    ok;
inject(Other, _Step, T) -> fail(<<"injected">>, list_to_binary(["unknown fault kind in RELUP_FAULTS: ", Other]), T).

%% ---- before the point of no return: may fail, changes nothing ----

check(<<"verify_release">>, #{<<"version">> := V, <<"hash">> := H}, T = #t{files = Files, script = S}) ->
    {Name, Version, Runtime} = manifest(Files),
    Hash = relup_release:release_hash(Files),
    SpecName = maps:get(name, T#t.spec),
    if
        Version =/= V -> fail(<<"version-mismatch">>, <<"the release given is ", Version/binary, ", the script installs ", V/binary>>, T);
        Hash =/= H -> fail(<<"hash-mismatch">>, iolist_to_binary(io_lib:format("release ~s hashes to ~s..., the script expects ~s...: its files differ from the release the script was planned from; plan the script again from this bundle", [V, binary:part(Hash, 0, 12), binary:part(H, 0, 12)])), T);
        Name =/= SpecName -> fail(<<"wrong-release">>, <<"the node runs \"", SpecName/binary, "\" but the release given is \"", Name/binary, "\"">>, T);
        Runtime =/= <<"erlang">> -> fail(<<"wrong-release">>, <<"release ", V/binary, " is for the ", Runtime/binary, " runtime, not erlang">>, T);
        true ->
            #{<<"to">> := #{<<"version">> := TV, <<"hash">> := TH}} = S,
            T#t{verified = T#t.verified orelse (V =:= TV andalso H =:= TH)}
    end;
check(<<"check_version">>, #{<<"expect">> := E}, T = #t{spec = #{name := N, version := V}, script = S}) ->
    case V =:= E of
        true -> T#t{version_checked = T#t.version_checked orelse E =:= version_of(S, <<"from">>)};
        false -> fail(<<"version-mismatch">>, <<"the node runs ", N/binary, "@", V/binary, "; this script upgrades from ", E/binary, " only">>, T)
    end;
check(<<"stage">>, #{<<"module">> := M, <<"hash">> := H}, T = #t{files = Files}) ->
    Mod = binary_to_atom(M, utf8),
    case relup_release:find_by_hash(Files, H) of
        error -> fail(<<"hash-mismatch">>, <<"no file of the release has the hash the script gives module ", M/binary>>, T);
        {ok, Path, _Source} ->
            %% The bundle's .beam when it carries one (compiled when it was packed), else the source compiled here.
            case relup_release:module_code(Mod, Path, Files) of
                {error, Why} -> fail(<<"compile-error">>, Why, T);
                {ok, Bin} ->
                    %% Prepared aside: nothing of the running code changes until finish_loading.
                    case code:prepare_loading([{Mod, binary_to_list(Path), Bin}]) of
                        {ok, Prepared} -> T#t{staged = (T#t.staged)#{Mod => {Bin, Prepared}}};
                        {error, Why} -> fail(<<"stage-failed">>, iolist_to_binary(io_lib:format("module ~s cannot be loaded: ~0p~s", [M, Why, built_hint(Mod, Path, Files)])), T)
                    end
            end
    end;
check(<<"check_function">>, #{<<"module">> := M, <<"function">> := F, <<"release">> := R}, T) ->
    case has_function(binary_to_atom(M, utf8), F, R, any, T) of
        true -> T;
        false -> fail(<<"unknown-function">>, <<M/binary, ":", F/binary, " is not exported by the ", R/binary, " code">>, T)
    end;
check(<<"check_process">>, #{<<"process">> := P}, T) ->
    case whereis_bin(P) of
        undefined -> fail(<<"unknown-process">>, <<"process ", P/binary, " does not run">>, T);
        _ -> T
    end;
check(<<"point_of_no_return">>, _, T) ->
    check_rest(T),
    case T#t.dry_run of
        true -> T;
        false ->
            %% From here until the transaction settles, outside work through the
            %% control socket waits at the agent's entry (relup_agent:enter/1).
            ok = gen_server:call(T#t.agent, hold, infinity),
            T#t{hold_at = now_ms()}
    end.

%% Walk the steps after the point of no return against what runs and what
%% was staged, so a missing module, function or process — or a process a
%% switch would kill — is found while nothing has changed yet.
check_rest(T = #t{script = S}) ->
    P = maps:get(<<"pointOfNoReturn">>, S),
    Fail = fun(I, Msg) -> fail(<<"invalid-script">>, iolist_to_binary([io_lib:format("step ~b: ", [I]), Msg]), T) end,
    T#t.verified orelse Fail(P, <<"no verify_release step checks the release before the point of no return">>),
    T#t.version_checked orelse Fail(P, <<"no check_version step guards the version the node runs">>),
    Steps = lists:nthtail(P + 1, maps:get(<<"steps">>, S)),
    lists:foldl(fun(Step, I) ->
        case Step of
            #{<<"op">> := Op, <<"process">> := Name} when Op =:= <<"suspend">>; Op =:= <<"resume">>; Op =:= <<"stop">> ->
                whereis_bin(Name) =/= undefined orelse Fail(I, [<<"process ">>, Name, <<" does not run">>]);
            #{<<"op">> := Op, <<"process">> := Name} when Op =:= <<"start">>; Op =:= <<"restart">> ->
                Fail(I, [Op, <<" ">>, Name, <<": starting or restarting processes is not supported by the Erlang agent yet; stop it and start it from your own supervisor with an apply instruction">>]);
            #{<<"op">> := <<"switch">>, <<"module">> := M} ->
                maps:is_key(binary_to_atom(M, utf8), T#t.staged) orelse Fail(I, [<<"switch ">>, M, <<": the module was not staged">>]),
                killable(binary_to_atom(M, utf8), I, T);
            #{<<"op">> := <<"delete">>, <<"module">> := M} -> killable(binary_to_atom(M, utf8), I, T);
            #{<<"op">> := <<"migrate">>, <<"module">> := M, <<"function">> := F, <<"release">> := R, <<"processes">> := Ps} ->
                [whereis_bin(N) =/= undefined orelse Fail(I, [<<"process ">>, N, <<" does not run">>]) || N <- Ps],
                F =:= <<"code_change">> orelse has_function(binary_to_atom(M, utf8), F, R, 2, T)
                    orelse Fail(I, [M, <<":">>, F, <<"/2 (a migration) is not exported by the ">>, R, <<" code">>]);
            #{<<"op">> := <<"apply">>, <<"module">> := M, <<"function">> := F, <<"args">> := A} ->
                has_function(binary_to_atom(M, utf8), F, <<"to">>, length(A), T)
                    orelse Fail(I, [M, <<":">>, F, io_lib:format("/~b", [length(A)]), <<" is not exported by the new code">>]);
            _ -> ok
        end,
        I + 1
    end, P + 1, Steps),
    ok.

%% Loading a new version of M makes the current code old and purges the
%% old one first: every process still running that old code would be
%% killed. Refuse, naming them, before anything changed.
killable(Mod, I, T) ->
    case erlang:check_old_code(Mod) of
        false -> ok;
        true ->
            %% A process about to move (its next fully-qualified call) is given a moment; waiting here changes nothing.
            case in_old_code(Mod, min(?PURGE_WAIT_MS, remaining(T))) of
                [] -> ok;
                Ps -> fail(<<"process-in-old-code">>, iolist_to_binary(io_lib:format(
                        "step ~b: switching ~s would kill ~s, still running its old code; relup never kills a process: let them move to the current code (a fully-qualified call) and try again",
                        [I, Mod, describe_pids(Ps)])), T)
            end
    end.

in_old_code(Mod, Ms) ->
    case [P || P <- processes(), erlang:check_process_code(P, Mod)] of
        [] -> [];
        Ps when Ms =< 0 -> Ps;
        _ -> timer:sleep(10), in_old_code(Mod, Ms - 10)
    end.

describe_pids(Ps) ->
    lists:join(", ", [describe_pid(P) || P <- Ps]).

describe_pid(P) ->
    Name = case erlang:process_info(P, registered_name) of {registered_name, N} -> io_lib:format(" (~s)", [N]); _ -> "" end,
    Fn = case erlang:process_info(P, current_function) of {current_function, {M, F, A}} -> io_lib:format(" in ~s:~s/~b", [M, F, A]); _ -> "" end,
    io_lib:format("~p~s~s", [P, Name, Fn]).

has_function(Mod, F, Release, Arity, T) ->
    Exports = case {Release, maps:find(Mod, T#t.staged)} of
        {<<"to">>, {ok, {Bin, _}}} ->
            {ok, {_, [{exports, E}]}} = beam_lib:chunks(Bin, [exports]), E;
        _ ->
            case code:is_loaded(Mod) of
                false -> [];
                _ -> Mod:module_info(exports)
            end
    end,
    Fun = binary_to_atom(F, utf8),
    lists:any(fun({N, A}) -> N =:= Fun andalso (Arity =:= any orelse A =:= Arity) end, Exports).

%% ---- after it: perform, registering the undo first ----

perform(<<"suspend">>, #{<<"process">> := Name, <<"group">> := G, <<"timeout">> := TO}, T0) ->
    Pid = live(Name, T0),
    %% Resumed by settle() whatever happens, even if sys:suspend times out
    %% (the suspend message may still be handled later).
    T1 = undo(T0, <<Name/binary, " resumes when the rollback ends">>, none),
    T2 = T1#t{suspended = [{Name, Pid, G} | T1#t.suspended],
              suspended_at = maps:merge(#{G => now_ms()}, T1#t.suspended_at)},
    try sys:suspend(Pid, min(TO, remaining(T2)))
    catch exit:Why -> fail(<<"suspend-timeout">>, iolist_to_binary(io_lib:format("process ~s did not suspend within ~b ms: ~0p", [Name, min(TO, remaining(T2)), Why])), T2)
    end,
    gen_server:cast(T2#t.agent, {suspended, binary_to_atom(Name, utf8), true}),
    snapshot(Name, Pid, T2);
perform(<<"switch">>, #{<<"module">> := M, <<"kind">> := Kind}, T0) ->
    Mod = binary_to_atom(M, utf8),
    {Bin, Prepared} = maps:get(Mod, T0#t.staged),
    Old = maps:get(Mod, T0#t.code, undefined),
    T1 = undo(T0, <<"restore ", M/binary, "'s code">>, fun() -> restore_code(Mod, Old) end),
    free_old_slot(Mod, T1),
    case code:finish_loading(Prepared) of
        ok -> T1#t{code = (T1#t.code)#{Mod => Bin}};
        {error, Why} -> fail(<<"switch-failed">>, iolist_to_binary(io_lib:format("~s ~s: ~0p", [Kind, M, Why])), T1)
    end;
perform(<<"migrate">>, #{<<"module">> := M, <<"function">> := F, <<"processes">> := Ps, <<"group">> := G} = Step, T0) ->
    lists:foldl(fun(Name, T) -> migrate_process(binary_to_atom(M, utf8), F, Name, G, Step, T) end, T0, Ps);
perform(<<"resume">>, #{<<"process">> := Name}, T0) ->
    _ = live(Name, T0),
    T1 = undo(T0, <<Name/binary, " resumes when the rollback ends">>, none),
    T1#t{resume_at_end = T1#t.resume_at_end ++ [Name]};
perform(<<"stop">>, #{<<"process">> := Name}, T0) ->
    Pid = live(Name, T0),
    T1 = undo(T0, <<"put process ", Name/binary, " back">>, none),
    T2 = T1#t{suspended = [{Name, Pid, none} | T1#t.suspended]},
    try sys:suspend(Pid, remaining(T2)) catch exit:Why -> fail(<<"suspend-timeout">>, iolist_to_binary(io_lib:format("~0p", [Why])), T2) end,
    T2#t{stopped = [Name | T2#t.stopped]};
perform(<<"apply">>, #{<<"module">> := M, <<"function">> := F, <<"args">> := Args}, T0) ->
    T1 = undo(T0, <<M/binary, ":", F/binary, " was applied: its effects cannot be undone">>, none),
    case run_limited(fun() -> erlang:apply(binary_to_atom(M, utf8), binary_to_atom(F, utf8), Args) end, remaining(T1)) of
        {ok, _} -> T1;
        {error, Why} -> fail(<<"module-error">>, iolist_to_binary(io_lib:format("~s:~s failed: ~s", [M, F, Why])), T1)
    end;
perform(<<"delete">>, #{<<"module">> := M}, T0) ->
    Mod = binary_to_atom(M, utf8),
    Old = maps:get(Mod, T0#t.code, undefined),
    T1 = undo(T0, <<"load ", M/binary, " again">>, fun() -> restore_code(Mod, Old) end),
    free_old_slot(Mod, T1),
    true = code:delete(Mod),
    T1#t{code = maps:remove(Mod, T1#t.code)};
perform(<<"purge">>, #{<<"module">> := M, <<"mode">> := Mode}, T0) ->
    Mod = binary_to_atom(M, utf8),
    T1 = undo(T0, <<"purge of ", M/binary, " releases only code nothing runs: nothing to undo">>, none),
    case Mode of
        <<"brutal">> -> T1#t{brutal = [Mod | T1#t.brutal]};
        _ ->
            %% Soft: done when the transaction commits, right after every
            %% process is resumed (soft_purges/1), not here: code:soft_purge
            %% checks every process of the node (~1,000 in the demo, 3-5 ms),
            %% and inside the window each suspended gen_server waits for it.
            %% Releasing old code nothing runs changes nothing a process can
            %% see, and a rollback never needs it (restore_code/2 frees the
            %% slot itself, with the same soft purge).
            T1#t{soft_purges = [Mod | T1#t.soft_purges]}
    end;
perform(<<"commit">>, #{<<"version">> := V}, T0) ->
    Dead = [N || {N, _, _} <- T0#t.suspended, not lists:member(N, T0#t.stopped), whereis_bin(N) =:= undefined],
    Dead =:= [] orelse fail(<<"process-stopped">>, iolist_to_binary(["process ", lists:join(", ", Dead), " died during the upgrade"]), T0),
    %% The durable half of the commit (relup_agent:commit_record): the agent
    %% adopts the new release, installs its bundle and writes the history
    %% naming it. Its undo is registered first (rule 1): a failed write
    %% rolls the whole upgrade back in place, and so does a later failure.
    %% It stays here, inside the suspension window, on purpose: settle/2
    %% resumes the processes only after this step, so the commit record is
    %% on disk (fsynced) before any process acts on the new release and
    %% before the transaction reports `committed`: whenever the node
    %% crashes, its disk names every release a resumed process ran. What
    %% is left to do here is kept small instead: the bundle and this
    %% history record were written and fsynced before the point of no
    %% return (prepare_bundle/3, prepare_commit/2), so each is a rename;
    %% should the history have been written in between (a make_permanent),
    %% the record is written in full, its earlier events' JSON remembered
    %% from their first write (relup_history:encode/1).
    T1 = undo(T0, <<"put the history back on the release that was running">>,
              fun() -> gen_server:call(T0#t.agent, commit_undo, infinity) end),
    Event = case T1#t.commit_event of
        none -> #{<<"at">> => relup_history:now_iso(), <<"op">> => <<"apply">>, <<"from">> => version_of(T1#t.script, <<"from">>),
                  <<"to">> => V, <<"status">> => <<"committed">>,
                  <<"message">> => iolist_to_binary(io_lib:format("committed at step ~b (commit)", [length(maps:get(<<"steps">>, T1#t.script))])),
                  <<"durationMs">> => round(now_ms() - T1#t.started)};
        Made -> Made
    end,
    case gen_server:call(T1#t.agent, {commit_record, new_spec(T1), T1#t.code, T1#t.prepared, Event, T1#t.permanent}, infinity) of
        ok -> T1#t{version = V};
        {error, Why} -> fail(<<"state-write-failed">>, Why, T1)
    end;
perform(Op, _, T) ->
    fail(<<"invalid-script">>, <<Op/binary, " cannot be performed after the point of no return">>, T).

migrate_process(Mod, F, Name, G, Step, T0) ->
    Pid = live(Name, T0),
    %% sys:change_code needs a suspended process: one the script did not
    %% suspend is suspended here and resumed when the transaction settles.
    T1 = case lists:keymember(Name, 1, T0#t.suspended) of
        true -> T0;
        false ->
            Ta = T0#t{suspended = [{Name, Pid, G} | T0#t.suspended]},
            try sys:suspend(Pid, remaining(Ta)) catch exit:W -> fail(<<"suspend-timeout">>, iolist_to_binary(io_lib:format("~0p", [W])), Ta) end,
            snapshot(Name, Pid, Ta)
    end,
    T2 = undo(T1, <<"restore the state of process ", Name/binary>>, restore_state_fun(Name, Pid, T1)),
    Limit = min(maps:get(<<"timeout">>, Step), remaining(T2)),
    Extra = maps:get(<<"extra">>, Step, null),
    Version = maps:get(<<"version">>, Step),
    Result = case F of
        <<"code_change">> ->
            %% OTP's own convention: OldVsn going up, {down, Vsn} going down.
            Vsn = case maps:get(<<"direction">>, Step) of <<"down">> -> {down, Version}; _ -> Version end,
            try sys:change_code(Pid, Mod, Vsn, Extra, Limit) of
                ok -> ok;
                {error, {'EXIT', {Why, _Stack}}} -> {error, iolist_to_binary(io_lib:format("code_change raised ~0p", [Why]))};
                {error, Why} -> {error, iolist_to_binary(io_lib:format("~0p", [Why]))}
            catch _:Why -> {error, iolist_to_binary(io_lib:format("~0p", [Why]))}
            end;
        _ ->
            %% A named migration: Mod:F(State, Info) -> NewState, run inside the
            %% process; if it raises, sys leaves the state as it was.
            Fun = binary_to_atom(F, utf8),
            Info = #{direction => maps:get(<<"direction">>, Step), from => version_of(T2#t.script, <<"from">>),
                     to => version_of(T2#t.script, <<"to">>), extra => Extra, target => process, process => Name},
            try sys:replace_state(Pid, fun(S) -> Mod:Fun(S, Info) end, Limit) of
                _ -> ok
            catch
                _:{callback_failed, _, {Class, Why}} -> {error, iolist_to_binary(io_lib:format("~p:~0p", [Class, Why]))};
                _:Why -> {error, iolist_to_binary(io_lib:format("~0p", [Why]))}
            end
    end,
    case Result of
        ok -> T2#t{migrated = maps:update_with(G, fun(L) -> L ++ [Name] end, [Name], T2#t.migrated)};
        {error, E} -> fail(<<"module-error">>, iolist_to_binary(io_lib:format("~s:~s failed on process ~s: ~s", [Mod, F, Name, E])), T2)
    end.

snapshot(Name, Pid, T) ->
    case maps:is_key(Name, T#t.snapshots) of
        true -> T;
        false ->
            State = try sys:get_state(Pid, remaining(T))
                    catch exit:Why -> fail(<<"process-stopped">>, iolist_to_binary(io_lib:format("cannot read the state of ~s: ~0p", [Name, Why])), T)
                    end,
            T1 = T#t{snapshots = (T#t.snapshots)#{Name => State}},
            undo(T1, <<"restore the state of process ", Name/binary>>, restore_state_fun(Name, Pid, T1))
    end.

restore_state_fun(Name, Pid, T) ->
    Snap = maps:get(Name, T#t.snapshots),
    fun() ->
        %% A process that died meanwhile is started again with this snapshot when the transaction settles (revive_dead).
        try is_process_alive(Pid) andalso sys:replace_state(Pid, fun(_) -> Snap end, 5000), ok
        catch exit:Why -> {error, iolist_to_binary(io_lib:format("process ~s: ~0p", [Name, Why]))}
        end
    end.

%% The slot for old code must be free before loading: free it only if no
%% process runs it (checked before the point of no return; checked again).
free_old_slot(Mod, T) ->
    case code:soft_purge(Mod) of
        true -> ok;
        false ->
            Ps = [P || P <- processes(), erlang:check_process_code(P, Mod)],
            fail(<<"process-in-old-code">>, iolist_to_binary(io_lib:format("~s: ~s still run its old code; relup never kills a process", [Mod, describe_pids(Ps)])), T)
    end.

%% Undo of a switch or delete: make the code the node ran current again.
%% Only soft_purge: if a process still runs the code that would have to go,
%% wait a moment for it to move, then report — never kill it.
restore_code(Mod, Old) ->
    case wait_soft_purge(Mod, ?PURGE_WAIT_MS) of
        false ->
            Ps = [P || P <- processes(), erlang:check_process_code(P, Mod)],
            {error, iolist_to_binary(io_lib:format("~s: ~s still run the code that would have to be purged to restore it; relup did not kill them, and ~s's new code stays current",
                                                   [Mod, describe_pids(Ps), Mod]))};
        true when Old =:= undefined ->
            %% The module was added by this transaction: remove it again.
            _ = code:delete(Mod),
            case wait_soft_purge(Mod, ?PURGE_WAIT_MS) of
                true -> ok;
                false -> {error, iolist_to_binary(io_lib:format("~s was removed but processes still run it", [Mod]))}
            end;
        true ->
            case code:prepare_loading([{Mod, atom_to_list(Mod) ++ ".beam", Old}]) of
                {ok, Prepared} ->
                    case code:finish_loading(Prepared) of
                        ok -> ok;
                        {error, Why} -> {error, iolist_to_binary(io_lib:format("~s: ~0p", [Mod, Why]))}
                    end;
                {error, Why} -> {error, iolist_to_binary(io_lib:format("~s: ~0p", [Mod, Why]))}
            end
    end.

wait_soft_purge(Mod, Ms) ->
    case code:soft_purge(Mod) of
        true -> true;
        false when Ms =< 0 -> false;
        false -> timer:sleep(10), wait_soft_purge(Mod, Ms - 10)
    end.

live(Name, T) ->
    case whereis_bin(Name) of
        undefined -> fail(<<"process-stopped">>, <<"process ", Name/binary, " does not run (it died during the upgrade?)">>, T);
        Pid -> Pid
    end.

whereis_bin(Name) ->
    try whereis(binary_to_existing_atom(Name, utf8)) catch error:badarg -> undefined end.

run_limited(Fun, Ms) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({done, Fun()}) end),
    receive
        {'DOWN', Ref, process, Pid, {done, R}} -> {ok, R};
        {'DOWN', Ref, process, Pid, Why} -> {error, iolist_to_binary(io_lib:format("~0p", [Why]))}
    after Ms ->
        exit(Pid, kill),
        {error, <<"did not finish before the transaction's deadline">>}
    end.

%% ---- the end ----

%% Called exactly once. Every process this transaction suspended is resumed
%% (in reverse suspension order); returns the problems that left the node
%% inconsistent.
settle(Result, T) ->
    Problems0 = case Result of
        rolled_back -> revive_dead(T);
        _ -> []
    end,
    case Result of
        committed ->
            [catch gen_server:stop(binary_to_atom(N, utf8), shutdown, 5000) || N <- T#t.stopped],
            [brutal_purge(M) || M <- T#t.brutal];
        _ -> ok
    end,
    Problems = lists:foldl(fun({Name, Pid, _G}, Ps) ->
        R = (catch sys:resume(Pid, 5000)),
        gen_server:cast(T#t.agent, {suspended, binary_to_atom(Name, utf8), false}),
        case R of
            ok -> Ps;
            _ when Result =:= committed -> Ps;
            _ -> case lists:member(Name, T#t.stopped) orelse is_process_alive(Pid) =:= false of
                     true -> Ps;
                     false -> [#{message => <<"process ", Name/binary, " could not be resumed">>} | Ps]
                 end
        end
    end, Problems0, T#t.suspended),
    put(resumed_at, now_ms()),
    put(purge_notes, case Result of committed -> soft_purges(T); _ -> [] end),
    lists:reverse(Problems).

%% The `purge` (soft) steps of a committed transaction, in script order,
%% once every process is resumed: the old code is released if nothing runs
%% it. A plain process moves at its next fully-qualified call, which may be
%% a while (an acceptor blocked in accept), so the old code may stay loaded
%% — nobody is killed — and is purged in the background once they have
%% moved; the outcome says so (the notes returned), and until then a new
%% switch of the module is refused before its point of no return.
soft_purges(T) ->
    lists:filtermap(fun(Mod) ->
        case code:soft_purge(Mod) of
            true -> false;
            false ->
                Ps = [P || P <- processes(), erlang:check_process_code(P, Mod)],
                spawn(fun() -> background_purge(Mod, ?BACKGROUND_PURGE_MS) end),
                {true, iolist_to_binary(io_lib:format("the old code of ~s stays loaded until ~s move to the current code (purged in the background then)", [Mod, describe_pids(Ps)]))}
        end
    end, lists:reverse(T#t.soft_purges)).

%% A process that died during the transaction is started again on the
%% restored code with the state it had before: the rollback owes the node
%% every process it had. One the agent does not know how to start is
%% reported as lost — never hidden.
revive_dead(T) ->
    Procs = maps:get(processes, T#t.spec),
    lists:foldl(fun({Name, Pid, _}, Ps) ->
        case is_process_alive(Pid) orelse lists:member(Name, T#t.stopped) of
            true -> Ps;
            false ->
                Atom = binary_to_atom(Name, utf8),
                case [P || #{name := N} = P <- Procs, N =:= Atom] of
                    [#{module := Mod, args := Args}] when is_map_key(Name, T#t.snapshots) ->
                        case gen_server:start({local, Atom}, Mod, Args, []) of
                            {ok, New} ->
                                Snap = maps:get(Name, T#t.snapshots),
                                _ = (catch sys:replace_state(New, fun(_) -> Snap end, 5000)),
                                Ps;
                            Other -> [#{message => iolist_to_binary(io_lib:format("process ~s died during the upgrade and could not be restarted: ~0p", [Name, Other]))} | Ps]
                        end;
                    _ -> [#{message => <<"process ", Name/binary, " died during the upgrade and was lost (the agent does not start it)">>} | Ps]
                end
        end
    end, [], T#t.suspended) ++ missing_processes(T).

%% A declared process that is not running after the rollback and had no
%% snapshot (it died before this transaction suspended it): the state it had
%% is gone. Started afresh when the agent started it, and reported either
%% way: the rollback did not restore everything.
missing_processes(T) ->
    Touched = [N || {N, _, _} <- T#t.suspended],
    lists:filtermap(fun(#{name := Atom, module := Mod, args := Args}) ->
        Name = atom_to_binary(Atom, utf8),
        case whereis(Atom) =:= undefined andalso not lists:member(Name, T#t.stopped) andalso not lists:member(Name, Touched) of
            false -> false;
            true ->
                Started = gen_server:start({local, Atom}, Mod, Args, []),
                {true, #{message => iolist_to_binary(io_lib:format(
                    "process ~s died during the upgrade before its state was saved; ~s",
                    [Name, case Started of {ok, _} -> "it was started again with a fresh state"; _ -> "it could not be started again" end]))}}
        end
    end, maps:get(processes, T#t.spec)).

%% Old code left by a soft purge: released as soon as no process runs it.
%% Gives up (and says so in the log) after Ms; the code then stays loaded,
%% harmless, and the next upgrade of the module names the processes.
background_purge(Mod, Ms) when Ms =< 0 ->
    logger:warning("relup: the old code of ~s is still in use; it stays loaded", [Mod]);
background_purge(Mod, Ms) ->
    case code:soft_purge(Mod) of
        true -> ok;
        false -> timer:sleep(20), background_purge(Mod, Ms - 20)
    end.

brutal_purge(Mod) ->
    %% Asked for by the appup (purge: brutal): processes in the old code are killed. Said in the log.
    Ps = [P || P <- processes(), erlang:check_process_code(P, Mod)],
    Ps =/= [] andalso logger:warning("relup: brutal purge of ~s kills ~s", [Mod, describe_pids(Ps)]),
    code:purge(Mod).

%% ---- the outcome (same shape as the Node.js node's ApplyOutcome) ----

outcome(Base, Status, Failure, Settled, T) ->
    ResumedAt = get(resumed_at),
    Groups = [group_report(G, T, ResumedAt) || G <- maps:get(<<"groups">>, T#t.script)],
    Rollback = case Settled of
        {report, R} -> R;
        [] -> none;
        Ps when is_list(Ps) -> #{complete => false, undone => 0, problems => Ps}
    end,
    Version = case Status of <<"committed">> -> T#t.version; _ -> maps:get(version, T#t.spec) end,
    Journal = lists:reverse(T#t.journal),
    Duration = now_ms() - T#t.started,
    HoldMs = case {T#t.hold_at, ResumedAt} of
        {HoldAt, SettledAt} when is_number(HoldAt), is_number(SettledAt) -> SettledAt - HoldAt;
        _ -> null
    end,
    O0 = Base#{status => Status, holdMs => HoldMs, ok => Status =:= <<"committed">> orelse Status =:= <<"dry-run">>,
               version => Version, journal => Journal, groups => Groups, durationMs => Duration,
               message => describe(Status, Failure, Rollback, T, Version, Duration)},
    O1 = case Failure of none -> O0; _ -> O0#{failure => Failure} end,
    O2 = case Rollback of none -> O1; _ -> O1#{rollback => Rollback} end,
    %% Old code a soft purge had to leave loaded is said in the message (the outcome's shape is the same for every runtime).
    %% (Found after the resume, by soft_purges/1, in script order.)
    O3 = case get(purge_notes) of
        Notes when is_list(Notes), Notes =/= [] ->
            O2#{message => unicode:characters_to_binary([maps:get(message, O2), "; ", lists:join("; ", Notes)])};
        _ -> O2
    end,
    O3.

%% The spec of the release this transaction installs.
new_spec(T) ->
    #{version := V} = manifest_map(T#t.files),
    (T#t.spec)#{version => V, hash => relup_release:release_hash(T#t.files), modules => modules_of(T#t.files)}.

manifest_map(Files) ->
    {_, V, _} = manifest(Files),
    #{version => V}.

modules_of(Files) ->
    maps:from_list([{binary_to_atom(filename:basename(P, filename:extension(P)), utf8),
                     #{file => P, hash => relup_release:sha256_hex(B)}}
                    || {P, B} <- maps:to_list(relup_release:release_files(Files)), lists:member(filename:extension(P), [<<".erl">>, <<".beam">>])]).

group_report(#{<<"id">> := Id} = G, T, ResumedAt) ->
    Susp = case {maps:find(Id, T#t.suspended_at), ResumedAt} of
        {{ok, S}, R} when is_number(R) -> R - S;
        _ -> null
    end,
    #{id => Id, modules => maps:get(<<"modules">>, G), processes => maps:get(<<"processes">>, G),
      suspensionMs => Susp, migrated => #{modules => [], processes => maps:get(Id, T#t.migrated, [])}}.

describe(Status, Failure, Rollback, T, Version, Duration) ->
    S = T#t.script,
    From = version_of(S, <<"from">>), To = version_of(S, <<"to">>),
    Where = case Failure of
        #{step := #{index := I, op := Op, target := Tg}} ->
            unicode:characters_to_binary(io_lib:format("step ~b (~ts~ts)", [I + 1, Op, case Tg of <<>> -> ""; _ -> [" ", Tg] end]));
        _ -> <<"the script">>
    end,
    Why = case Failure of #{message := M} -> M; _ -> <<"unknown">> end,
    unicode:characters_to_binary(case Status of
        <<"committed">> ->
            io_lib:format("~ts ~ts ~ts → ~ts in ~b ms", [case maps:get(<<"direction">>, S) of <<"up">> -> "upgraded"; _ -> "downgraded" end,
                                                    maps:get(<<"name">>, S), From, To, round(Duration)]);
        <<"dry-run">> -> io_lib:format("dry run: every check before the point of no return passed for ~ts → ~ts; nothing changed", [From, To]);
        <<"refused">> -> io_lib:format("refused before the point of no return: ~ts failed: ~ts; nothing changed, still on ~ts", [Where, Why, Version]);
        <<"rolled-back">> -> io_lib:format("~ts failed: ~ts; rolled back to ~ts: old code and state restored, every process resumed", [Where, Why, Version]);
        <<"rollback-failed">> ->
            Ps = [maps:get(message, P) || P <- maps:get(problems, Rollback)],
            io_lib:format("~ts failed: ~ts; the rollback did NOT complete: ~ts", [Where, Why, lists:join("; ", Ps)])
    end).

%% ---- helpers ----

%% A .beam packed by a newer OTP than the node's does not load (badfile): say where it came from.
built_hint(Mod, Path, Files) ->
    case relup_release:code_origin(Mod, Path, Files) of
        {built, Beam} -> io_lib:format(" (its code is ~s, compiled when the bundle was packed; this node runs OTP ~s: pack the release with an OTP no newer than the node's)",
                                       [Beam, erlang:system_info(otp_release)]);
        release -> ""
    end.


manifest(Files) ->
    case relup_json:decode(maps:get(<<"manifest.json">>, Files, <<>>)) of
        {ok, #{<<"name">> := N, <<"version">> := V, <<"runtime">> := R}} -> {N, V, R};
        _ -> {<<"?">>, <<"?">>, <<"?">>}
    end.

target(#{<<"op">> := Op} = S) ->
    case Op of
        <<"verify_release">> -> maps:get(<<"version">>, S);
        <<"check_version">> -> maps:get(<<"expect">>, S);
        <<"commit">> -> maps:get(<<"version">>, S);
        <<"point_of_no_return">> -> <<>>;
        _ when Op =:= <<"check_function">>; Op =:= <<"migrate">>; Op =:= <<"apply">> ->
            <<(maps:get(<<"module">>, S))/binary, ".", (maps:get(<<"function">>, S))/binary>>;
        _ when Op =:= <<"stage">>; Op =:= <<"switch">>; Op =:= <<"delete">>; Op =:= <<"purge">> -> maps:get(<<"module">>, S);
        _ -> maps:get(<<"process">>, S, <<>>)
    end.

event(T, Event) ->
    relup_conn:send(T#t.sock, #{type => event, id => T#t.id, event => Event}).

now_ms() -> erlang:monotonic_time(microsecond) / 1000.
