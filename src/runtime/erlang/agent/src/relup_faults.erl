%% Failing writes to the state directory, for chaos drills and the tests:
%% RELUP_FAULTS=write:<what>:<how> in the node's environment (never through
%% the protocol), the same form as the Node.js node's
%% (src/runtime/node-host/fault-injection.ts), e.g.
%% RELUP_FAULTS=write:history-commit:enospc. <what> is one of the node's
%% durable writes: history-boot, history-started, bundle-prepare (an
%% upgrade's bundle written and fsynced under a temporary name before the
%% point of no return), bundle (installed at boot, or the prepared bundle
%% renamed into place at commit), history-commit, history-outcome,
%% history-permanent; <how>:
%% - enospc: the write fails before anything is written;
%% - eio: the same with EIO;
%% - eio-after: the new file is written and renamed into place, then the
%%   writer sees an error (the sync of its directory failed): the new
%%   content is already visible, the hardest case for an undo.
%% Step faults (<index>:<kind>) are read by relup_txn.
-module(relup_faults).
-export([check/0, durable/2]).

-define(WHATS, ["history-boot", "history-started", "bundle-prepare", "bundle", "history-commit", "history-outcome", "history-permanent"]).
-define(HOWS, ["enospc", "eio", "eio-after"]).

%% ok, or why RELUP_FAULTS has a write part that is not write:<what>:<how>.
check() ->
    Bad = [P || P <- write_parts(), not valid(P)],
    case Bad of
        [] -> ok;
        [P | _] -> {error, iolist_to_binary(["RELUP_FAULTS: \"", P, "\" is not write:<", lists:join("|", ?WHATS), ">:<", lists:join("|", ?HOWS), ">"])}
    end.

%% Run Fun (a write returning ok | {error, Why}, or raising), failing as
%% RELUP_FAULTS asks for What. Returns ok | {error, Why}; {error, {Why,
%% renamed}} when the new content is in place although the write failed.
durable(What, Fun) ->
    case fault(What) of
        none -> safe(Fun);
        "enospc" -> {error, enospc};
        "eio" -> {error, eio};
        "eio-after" ->
            case safe(Fun) of
                ok -> {error, {eio, renamed}};
                E -> E
            end
    end.

safe(Fun) ->
    try Fun() of
        ok -> ok;
        {error, Why} -> {error, Why};
        Other -> {error, Other}
    catch _:Why -> {error, Why}
    end.

fault(What) ->
    Name = atom_to_list(What),
    case [How || P <- write_parts(), valid(P), ["write", W, How] <- [string:split(P, ":", all)], W =:= Name] of
        [How | _] -> How;
        [] -> none
    end.

write_parts() ->
    Spec = case os:getenv("RELUP_FAULTS") of false -> ""; V -> V end,
    [string:trim(P) || P <- string:lexemes(Spec, ","), lists:prefix("write:", string:trim(P))].

valid(P) ->
    case string:split(P, ":", all) of
        ["write", W, H] -> lists:member(W, ?WHATS) andalso lists:member(H, ?HOWS);
        _ -> false
    end.
