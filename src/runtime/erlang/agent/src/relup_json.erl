%% A small JSON codec for the control protocol (OTP 25 has no json module).
%%
%% Decoding: objects become maps with binary keys, arrays lists, strings
%% UTF-8 binaries, numbers integers or floats, and true/false/null atoms.
%% Encoding takes the same terms back, plus atoms (as strings), tuples (as
%% arrays) and anything else printed with ~p, so any process state can be
%% shown; encode(decode(J)) keeps J's meaning.
-module(relup_json).
-export([decode/1, encode/1]).

%% ---- decode ----

-spec decode(binary()) -> {ok, term()} | {error, binary()}.
decode(Bin) when is_binary(Bin) ->
    try
        {Value, Rest} = value(skip(Bin)),
        case skip(Rest) of
            <<>> -> {ok, Value};
            _ -> {error, <<"trailing data after the JSON value">>}
        end
    catch
        throw:{json, Why} -> {error, Why};
        error:_ -> {error, <<"invalid JSON">>}
    end.

skip(<<C, Rest/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> skip(Rest);
skip(Bin) -> Bin.

value(<<${, Rest/binary>>) -> object(skip(Rest), #{});
value(<<$[, Rest/binary>>) -> array(skip(Rest), []);
value(<<$", Rest/binary>>) -> string(Rest, []);
value(<<"true", Rest/binary>>) -> {true, Rest};
value(<<"false", Rest/binary>>) -> {false, Rest};
value(<<"null", Rest/binary>>) -> {null, Rest};
value(<<C, _/binary>> = Bin) when C =:= $-; C >= $0, C =< $9 -> number(Bin);
value(_) -> throw({json, <<"unexpected character">>}).

object(<<$}, Rest/binary>>, Acc) when map_size(Acc) =:= 0 -> {Acc, Rest};
object(<<$", Rest/binary>>, Acc) ->
    {Key, R1} = string(Rest, []),
    <<$:, R2/binary>> = skip(R1),
    {Value, R3} = value(skip(R2)),
    case skip(R3) of
        <<$,, R4/binary>> -> object(skip(R4), Acc#{Key => Value});
        <<$}, R4/binary>> -> {Acc#{Key => Value}, R4};
        _ -> throw({json, <<"expected , or } in an object">>})
    end;
object(_, _) -> throw({json, <<"expected a string key">>}).

array(<<$], Rest/binary>>, []) -> {[], Rest};
array(Bin, Acc) ->
    {Value, R1} = value(Bin),
    case skip(R1) of
        <<$,, R2/binary>> -> array(skip(R2), [Value | Acc]);
        <<$], R2/binary>> -> {lists:reverse([Value | Acc]), R2};
        _ -> throw({json, <<"expected , or ] in an array">>})
    end.

string(<<$", Rest/binary>>, Acc) -> {unicode_bin(lists:reverse(Acc)), Rest};
string(<<$\\, E, Rest/binary>>, Acc) ->
    case E of
        $" -> string(Rest, [$" | Acc]);
        $\\ -> string(Rest, [$\\ | Acc]);
        $/ -> string(Rest, [$/ | Acc]);
        $b -> string(Rest, [$\b | Acc]);
        $f -> string(Rest, [$\f | Acc]);
        $n -> string(Rest, [$\n | Acc]);
        $r -> string(Rest, [$\r | Acc]);
        $t -> string(Rest, [$\t | Acc]);
        $u -> unicode_escape(Rest, Acc);
        _ -> throw({json, <<"bad escape in a string">>})
    end;
string(<<C/utf8, Rest/binary>>, Acc) when C >= 16#20 -> string(Rest, [C | Acc]);
string(_, _) -> throw({json, <<"bad character in a string">>}).

%% Surrogate pairs are joined; a lone surrogate is invalid JSON text for us.
unicode_escape(<<H:4/binary, $\\, $u, L:4/binary, Rest/binary>>, Acc) when true ->
    Hi = binary_to_integer(H, 16),
    Lo = binary_to_integer(L, 16),
    if
        Hi >= 16#D800, Hi =< 16#DBFF, Lo >= 16#DC00, Lo =< 16#DFFF ->
            string(Rest, [16#10000 + ((Hi - 16#D800) bsl 10) + (Lo - 16#DC00) | Acc]);
        true -> string(<<$\\, $u, L/binary, Rest/binary>>, [checked_cp(Hi) | Acc])
    end;
unicode_escape(<<H:4/binary, Rest/binary>>, Acc) ->
    string(Rest, [checked_cp(binary_to_integer(H, 16)) | Acc]).

checked_cp(C) when C >= 16#D800, C =< 16#DFFF -> throw({json, <<"lone surrogate">>});
checked_cp(C) -> C.

unicode_bin(Chars) ->
    case unicode:characters_to_binary(Chars) of
        B when is_binary(B) -> B;
        _ -> throw({json, <<"invalid unicode">>})
    end.

number(Bin) ->
    {Text, Rest} = number_chars(Bin, []),
    Value = case lists:any(fun(C) -> C =:= $. orelse C =:= $e orelse C =:= $E end, Text) of
        false -> list_to_integer(Text);
        true -> to_float(Text)
    end,
    {Value, Rest}.

number_chars(<<C, Rest/binary>>, Acc) when C >= $0, C =< $9; C =:= $-; C =:= $+; C =:= $.; C =:= $e; C =:= $E ->
    number_chars(Rest, [C | Acc]);
number_chars(Rest, Acc) -> {lists:reverse(Acc), Rest}.

%% Erlang's list_to_float wants a fraction: "1e3" and "1E3" become "1.0e3".
to_float(Text) ->
    case string:split(string:lowercase(Text), "e") of
        [Mant, Exp] ->
            M = case lists:member($., Mant) of true -> Mant; false -> Mant ++ ".0" end,
            list_to_float(M ++ "e" ++ Exp);
        [Mant] -> list_to_float(Mant)
    end.

%% ---- encode ----

-spec encode(term()) -> binary().
encode(Term) -> iolist_to_binary(enc(Term)).

enc(true) -> <<"true">>;
enc(false) -> <<"false">>;
enc(null) -> <<"null">>;
enc(undefined) -> <<"null">>;
enc(A) when is_atom(A) -> enc_string(atom_to_binary(A, utf8));
enc(I) when is_integer(I) -> integer_to_binary(I);
enc(F) when is_float(F) -> float_to_binary(F, [short]);
enc(B) when is_binary(B) ->
    case unicode:characters_to_binary(B) of
        U when is_binary(U) -> enc_string(U);
        _ -> enc_string(base64:encode(B))
    end;
enc(M) when is_map(M) ->
    Pairs = lists:sort([{key(K), V} || {K, V} <- maps:to_list(M)]),
    [${, lists:join($,, [[enc_string(K), $:, enc(V)] || {K, V} <- Pairs]), $}];
enc(L) when is_list(L) ->
    case is_proper(L) of
        true -> [$[, lists:join($,, [enc(E) || E <- L]), $]];
        false -> enc_string(iolist_to_binary(io_lib:format("~p", [L])))
    end;
enc(T) when is_tuple(T) -> enc(tuple_to_list(T));
enc(Other) -> enc_string(iolist_to_binary(io_lib:format("~p", [Other]))).

key(K) when is_binary(K) -> K;
key(K) when is_atom(K) -> atom_to_binary(K, utf8);
key(K) when is_integer(K) -> integer_to_binary(K);
key(K) when is_list(K) ->
    case io_lib:printable_unicode_list(K) of
        true -> unicode:characters_to_binary(K);
        false -> iolist_to_binary(io_lib:format("~p", [K]))
    end;
key(K) -> iolist_to_binary(io_lib:format("~p", [K])).

is_proper([]) -> true;
is_proper([_ | T]) -> is_proper(T);
is_proper(_) -> false.

enc_string(B) -> [$", escape(B, <<>>), $"].

escape(<<>>, Acc) -> Acc;
escape(<<$", R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\\"">>);
escape(<<$\\, R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\\\">>);
escape(<<$\n, R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\n">>);
escape(<<$\r, R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\r">>);
escape(<<$\t, R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\t">>);
escape(<<C, R/binary>>, Acc) when C < 16#20 ->
    Hex = iolist_to_binary(io_lib:format("\\u~4.16.0b", [C])),
    escape(R, <<Acc/binary, Hex/binary>>);
escape(<<C, R/binary>>, Acc) -> escape(R, <<Acc/binary, C>>).
