%% Releases as the agent sees them: bundles (.tar.gz with manifest.json),
%% the release hash (docs/release.md), and module code compiled or read
%% from the bundle. Nothing here touches the running code.
-module(relup_release).
-export([unpack/1, release_hash/1, sha256_hex/1, module_code/3, module_binary/3, find_by_hash/2]).

-define(OWN_FILES, [<<"manifest.json">>, <<"manifest.sig">>]).

%% Unpack bundle bytes in memory: #{Path => Bytes}. Links, absolute paths
%% and `..` are refused (a bundle never writes outside itself; here it never
%% writes at all).
-spec unpack(binary()) -> {ok, #{binary() => binary()}} | {error, binary()}.
unpack(Bytes) ->
    case erl_tar:extract({binary, Bytes}, [compressed, memory]) of
        {ok, Entries} -> check_paths(Entries, #{});
        {error, Why} -> {error, iolist_to_binary(io_lib:format("the bundle is not a readable .tar.gz: ~p", [Why]))}
    end.

check_paths([], Acc) -> {ok, Acc};
check_paths([{Name, Data} | Rest], Acc) ->
    Path = unicode:characters_to_binary(Name),
    Parts = binary:split(Path, <<"/">>, [global]),
    Bad = binary:first(Path) =:= $/ orelse lists:any(fun(P) -> P =:= <<"..">> orelse P =:= <<>> orelse P =:= <<".">> end, Parts),
    case Bad of
        true -> {error, <<"the bundle holds a path outside itself: ", Path/binary>>};
        false -> check_paths(Rest, Acc#{Path => Data})
    end.

%% sha256 of one line "<file sha256>  <path>\n" per file, sorted by path
%% (byte order equals code-unit order for the ASCII paths releases use).
-spec release_hash(#{binary() => binary()}) -> binary().
release_hash(Files) ->
    Lines = [[sha256_hex(Bytes), <<"  ">>, Path, <<"\n">>]
             || {Path, Bytes} <- lists:sort(maps:to_list(Files)), not lists:member(Path, ?OWN_FILES)],
    sha256_hex(iolist_to_binary(Lines)).

sha256_hex(Bytes) -> << <<(hex(N))>> || <<N:4>> <= crypto:hash(sha256, Bytes) >>.

hex(N) when N < 10 -> $0 + N;
hex(N) -> $a + N - 10.

%% The file of a release whose sha256 is Hash (a `stage` step names a module by its hash).
-spec find_by_hash(#{binary() => binary()}, binary()) -> {ok, binary(), binary()} | error.
find_by_hash(Files, Hash) ->
    case [{P, B} || {P, B} <- maps:to_list(Files), sha256_hex(B) =:= Hash] of
        [{P, B} | _] -> {ok, P, B};
        [] -> error
    end.

%% The object code of module Name from its release file: a .beam as is, an
%% .erl compiled in memory with +deterministic (so the same source gives the
%% same binary everywhere). Errors are located (file:line).
-spec module_code(atom(), binary(), binary()) -> {ok, binary()} | {error, binary()}.
module_code(Name, Path, Bytes) ->
    case filename:extension(Path) of
        <<".beam">> -> check_beam(Name, Path, Bytes);
        <<".erl">> -> compile_source(Name, Path, Bytes);
        Ext -> {error, <<"module file ", Path/binary, " is neither .erl nor .beam (", Ext/binary, ")">>}
    end.

module_binary(Name, Path, Bytes) -> module_code(Name, Path, Bytes).

check_beam(Name, Path, Bin) ->
    case beam_lib:info(Bin) of
        Info when is_list(Info) ->
            case proplists:get_value(module, Info) of
                Name -> {ok, Bin};
                Other -> {error, iolist_to_binary(io_lib:format("~s holds module ~p, expected ~p", [Path, Other, Name]))}
            end;
        {error, beam_lib, Why} -> {error, iolist_to_binary(io_lib:format("~s is not a valid .beam: ~p", [Path, Why]))}
    end.

%% compile needs a file: write the source to a private temporary directory.
compile_source(Name, Path, Source) ->
    Dir = filename:join(tmp_root(), "relup-compile-" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = file:make_dir(Dir),
    File = filename:join(Dir, filename:basename(binary_to_list(Path))),
    try
        ok = file:write_file(File, Source),
        case compile:file(File, [binary, deterministic, return_errors, return_warnings, {i, Dir}]) of
            {ok, Name, Bin, _Warnings} -> {ok, Bin};
            {ok, Other, _, _} -> {error, iolist_to_binary(io_lib:format("~s defines module ~p, expected ~p", [Path, Other, Name]))};
            {error, Errors, _Warnings} -> {error, format_errors(Path, Errors)}
        end
    after
        _ = file:delete(File),
        _ = file:del_dir(Dir)
    end.

tmp_root() ->
    case os:getenv("TMPDIR") of
        false -> "/tmp";
        "" -> "/tmp";
        T -> T
    end.

format_errors(Path, Errors) ->
    Lines = [io_lib:format("~s:~s: ~s", [Path, loc(Loc), Mod:format_error(Desc)])
             || {_File, Es} <- Errors, {Loc, Mod, Desc} <- Es],
    iolist_to_binary(lists:join("; ", Lines)).

loc({Line, Col}) -> io_lib:format("~b:~b", [Line, Col]);
loc(Line) when is_integer(Line) -> integer_to_list(Line);
loc(_) -> "1".
