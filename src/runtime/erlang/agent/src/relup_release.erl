%% Releases as the agent sees them: bundles (.tar.gz with manifest.json),
%% the release hash (docs/release.md), and module code read from the
%% bundle's .beam files (or compiled from its sources when it has none).
%% Nothing here touches the running code.
-module(relup_release).
-export([unpack/1, release_hash/1, sha256_hex/1, module_code/3, find_by_hash/2, verify/2,
         release_files/1, code_origin/3]).

-define(OWN_FILES, [<<"manifest.json">>, <<"manifest.sig">>]).
%% Build artifacts (src/release/release-hash.ts): the .beam of each .erl,
%% compiled by `erlc +deterministic` when the bundle was packed. Listed in
%% manifest.json (so verified, and signed with it), but not part of the
%% release hash: the release is its sources.
-define(BUILD_DIR, "relup-build/").

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

%% Verify an unpacked bundle: every file matches manifest.json (sha256 and
%% size, nothing missing, nothing extra) and its releaseHash; and when the
%% node has a public key (32 raw ed25519 bytes), manifest.sig is a valid
%% signature of manifest.json's exact bytes by that key (docs/security.md).
%% The signature is checked first: nothing of an unsigned bundle is trusted.
-spec verify(#{binary() => binary()}, binary() | none) -> ok | {error, binary()}.
verify(Files, PublicKey) ->
    case check_signature(Files, PublicKey) of
        ok -> check_manifest(Files);
        E -> E
    end.

check_signature(_Files, none) -> ok;
check_signature(Files, Key) ->
    case {maps:find(<<"manifest.sig">>, Files), maps:find(<<"manifest.json">>, Files)} of
        {error, _} -> {error, <<"bundle-unsigned: the bundle has no manifest.sig and this node accepts only signed bundles">>};
        {_, error} -> {error, <<"bundle-manifest-missing: the bundle has no manifest.json">>};
        {{ok, SigJson}, {ok, Manifest}} ->
            case relup_json:decode(SigJson) of
                {ok, #{<<"format">> := 1, <<"algorithm">> := <<"ed25519">>, <<"signature">> := Sig64}} ->
                    Valid = try crypto:verify(eddsa, none, Manifest, base64:decode(Sig64), [Key, ed25519])
                            catch _:_ -> false end,
                    case Valid of
                        true -> ok;
                        false -> {error, <<"bundle-signature-invalid: manifest.sig is not a signature of this manifest by the node's key">>}
                    end;
                _ -> {error, <<"bundle-signature-invalid: manifest.sig is not a relup ed25519 signature">>}
            end
    end.

check_manifest(Files) ->
    case relup_json:decode(maps:get(<<"manifest.json">>, Files, <<>>)) of
        {ok, #{<<"files">> := Listed, <<"releaseHash">> := Declared}} when is_list(Listed) ->
            Bad = [P || #{<<"path">> := P, <<"sha256">> := H, <<"size">> := N} <- Listed,
                        case maps:find(P, Files) of
                            {ok, B} -> sha256_hex(B) =/= H orelse byte_size(B) =/= N;
                            error -> true
                        end],
            ListedPaths = [P || #{<<"path">> := P} <- Listed],
            Extra = [P || P <- maps:keys(Files), not lists:member(P, ListedPaths), not lists:member(P, ?OWN_FILES)],
            Hash = release_hash(Files),
            if
                Bad =/= [] -> {error, iolist_to_binary(["bundle-hash-mismatch: ", lists:join(", ", Bad), " do not match manifest.json"])};
                Extra =/= [] -> {error, iolist_to_binary(["bundle-file-extra: ", lists:join(", ", Extra), " are not listed in manifest.json"])};
                length(ListedPaths) =/= length(Listed) -> {error, <<"bundle-manifest-invalid: manifest.json lists an entry without a path">>};
                Hash =/= Declared -> {error, <<"bundle-release-hash-mismatch: manifest.json's releaseHash is not the hash of its files">>};
                true -> ok
            end;
        _ -> {error, <<"bundle-manifest-invalid: manifest.json is missing or not a relup manifest">>}
    end.

%% sha256 of one line "<file sha256>  <path>\n" per file of the release,
%% sorted by path (byte order equals code-unit order for the ASCII paths
%% releases use).
-spec release_hash(#{binary() => binary()}) -> binary().
release_hash(Files) ->
    Lines = [[sha256_hex(Bytes), <<"  ">>, Path, <<"\n">>] || {Path, Bytes} <- lists:sort(maps:to_list(release_files(Files)))],
    sha256_hex(iolist_to_binary(Lines)).

%% The files of the release itself: not the bundle's manifest and signature, not its build artifacts.
-spec release_files(#{binary() => binary()}) -> #{binary() => binary()}.
release_files(Files) ->
    maps:filter(fun(Path, _) -> not lists:member(Path, ?OWN_FILES) andalso not is_build_artifact(Path) end, Files).

is_build_artifact(<<?BUILD_DIR, _/binary>>) -> true;
is_build_artifact(_) -> false.

sha256_hex(Bytes) -> << <<(hex(N))>> || <<N:4>> <= crypto:hash(sha256, Bytes) >>.

hex(N) when N < 10 -> $0 + N;
hex(N) -> $a + N - 10.

%% The file of a release whose sha256 is Hash (a `stage` step names a module by its hash).
-spec find_by_hash(#{binary() => binary()}, binary()) -> {ok, binary(), binary()} | error.
find_by_hash(Files, Hash) ->
    case [{P, B} || {P, B} <- maps:to_list(release_files(Files)), sha256_hex(B) =:= Hash] of
        [{P, B} | _] -> {ok, P, B};
        [] -> error
    end.

%% The object code of module Name, whose release file is Path: the .beam
%% the bundle carries for it (relup-build/<Name>.beam) when it has one, so
%% nothing is compiled on the node; else the release file itself, a .beam
%% as is or an .erl compiled here in memory with +deterministic (a bundle
%% packed where erlc was missing). The .beam must define module Name.
%% Errors are located (file:line).
-spec module_code(atom(), binary(), #{binary() => binary()}) -> {ok, binary()} | {error, binary()}.
module_code(Name, Path, Files) ->
    case code_origin(Name, Path, Files) of
        {built, Beam} -> check_beam(Name, Beam, maps:get(Beam, Files));
        release ->
            Bytes = maps:get(Path, Files),
            case filename:extension(Path) of
                <<".beam">> -> check_beam(Name, Path, Bytes);
                <<".erl">> -> compile_source(Name, Path, Bytes);
                Ext -> {error, <<"module file ", Path/binary, " is neither .erl nor .beam (", Ext/binary, ")">>}
            end
    end.

%% Where the code of module Name comes from: the bundle's build artifact, or the release file.
-spec code_origin(atom(), binary(), #{binary() => binary()}) -> {built, binary()} | release.
code_origin(Name, Path, Files) ->
    Built = <<?BUILD_DIR, (atom_to_binary(Name, utf8))/binary, ".beam">>,
    case filename:extension(Path) =:= <<".erl">> andalso maps:is_key(Built, Files) of
        true -> {built, Built};
        false -> release
    end.

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
    %% unique_integer is unique in this BEAM only: the OS pid keeps nodes compiling at the same time apart.
    Dir = filename:join(tmp_root(), "relup-compile-" ++ os:getpid() ++ "-" ++ integer_to_list(erlang:unique_integer([positive]))),
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
