# bd-cat: common options, invalid invocations, invalid input.
. "$(dirname "$0")/lib.sh"
expect_common_options bd-cat
expect_fail 1 bd-cat "$T/does-not-exist.bdz"
expect_err_contains "does-not-exist.bdz"
printf 'hello world, not a stream' >"$T/junk"
expect_fail 1 bd-cat "$T/junk"
expect_err_contains "not a bd stream"
: >"$T/empty"
expect_fail 1 bd-cat "$T/empty"
expect_err_contains "empty input"
expect_fail 1 bd-cat --check "$T/empty"
expect_fail 2 bd-cat --records x "$T/empty"

# A stream made without bd at all (msgpack bytes by hand, the zstd command), read by bd-cat.
# Header {"magic":"bd","schema":"bd.x","version":[1,0]}, record {"t": f32 tensor [1.0, -2.0]},
# trailer {"end":true,"records":1}.
printf '\203\245magic\242bd\246schema\244bd.x\247version\222\001\000' >"$T/msg"
printf '\201\241t\204\244name\241w\245dtype\243f32\245shape\221\002\244data\304\010\000\000\200\077\000\000\000\300' >>"$T/msg"
cp "$T/msg" "$T/msg-notrailer"
printf '\202\243end\303\247records\001' >>"$T/msg"
zstd -q --check -c "$T/msg" >"$T/x.bdz"
zstd -q --check -c "$T/msg-notrailer" >"$T/notrailer.bdz"

# A frame without a content checksum is refused (bd-stream(5) requires one), from a file or a pipe.
zstd -q --no-check -c "$T/msg" >"$T/nocheck.bdz"
expect_fail 1 bd-cat --check "$T/nocheck.bdz"
expect_err_contains "without a content checksum"
bd-cat --check - <"$T/nocheck.bdz" >/dev/null 2>&1 && fail "a frame without a checksum read from a pipe"
expect_ok bd-cat "$T/x.bdz"
[ "$(wc -l <"$T/out")" = 3 ] || fail "expected 3 lines"
expect_out_contains '{"name":"w","dtype":"f32","shape":[2]}'
expect_out_contains '{"end":true,"records":1}'
expect_ok bd-cat --full "$T/x.bdz"
expect_out_contains '"data":[1,-2]'
expect_ok bd-cat --check "$T/x.bdz"
expect_out_contains '"records":1,"ok":true'
expect_ok bd-cat --schema bd.x - <"$T/x.bdz"
expect_fail 1 bd-cat --schema bd.tokens "$T/x.bdz"
expect_err_contains 'expected "bd.tokens"'
expect_fail 1 bd-cat --check "$T/notrailer.bdz"
expect_err_contains 'record 2: truncated'
# Output to a file: nothing left under the name when the input is bad.
expect_ok bd-cat -o "$T/ok.json" "$T/x.bdz"
[ -s "$T/ok.json" ] || fail "bd-cat -o wrote nothing"
expect_fail 1 bd-cat -o "$T/bad.json" "$T/notrailer.bdz"
[ ! -e "$T/bad.json" ] || fail "bd-cat left a partial output file"
ls "$T" | grep -q 'bad.json.tmp' && fail "temporary file left behind"
# --check refuses every tensor its readers refuse: tensor STREAM DTYPE SHAPE DATA writes a
# stream whose record {"t": [{"x": TENSOR}]} holds the tensor (msgpack bytes as printf escapes).
tensor() {
    printf '\203\245magic\242bd\246schema\244bd.x\247version\222\001\000' >"$T/t.msg"
    printf '\201\241t\221\201\241x\204\244name\241w\245dtype'"$2"'\245shape'"$3"'\244data'"$4" >>"$T/t.msg"
    printf '\202\243end\303\247records\001' >>"$T/t.msg"
    zstd -q --check -c "$T/t.msg" >"$T/$1.bdz"
}
tensor good '\243f32' '\221\002' '\304\010\000\000\200\077\000\000\000\300'
tensor bytes '\243f32' '\221\002' '\304\004\000\000\200\077'
tensor dtype '\243f64' '\221\001' '\304\010\000\000\000\000\000\000\360\077'
tensor dims9 '\243f32' '\231\001\001\001\001\001\001\001\001\001' '\304\004\000\000\200\077'
tensor negative '\243f32' '\221\377' '\304\000'
tensor float '\243f32' '\221\313\100\000\000\000\000\000\000\000' '\304\010\000\000\200\077\000\000\000\300'
tensor huge '\242u8' '\222\317\000\000\000\001\000\000\000\000\317\000\000\000\001\000\000\000\000' '\304\000'
expect_ok bd-cat --check "$T/good.bdz"
expect_out_contains '"ok":true'
expect_fail 1 bd-cat --check "$T/bytes.bdz"
expect_err_contains 'bytes.bdz" record 1: tensor data has 4 bytes, expected 8'
expect_fail 1 bd-cat --check "$T/dtype.bdz"
expect_err_contains 'record 1: tensor field "dtype" missing or unknown'
expect_fail 1 bd-cat --check "$T/dims9.bdz"
expect_err_contains 'over 8 dims'
expect_fail 1 bd-cat --check "$T/negative.bdz"
expect_err_contains 'shape[0] is not a non-negative integer'
expect_fail 1 bd-cat --check "$T/float.bdz"
expect_err_contains 'shape[0] is not a non-negative integer'
expect_fail 1 bd-cat --check "$T/huge.bdz"
expect_err_contains 'too many elements'
# Printing still shows what is there.
expect_ok bd-cat "$T/bytes.bdz"

# Streams cut at every byte: never a clean end.
n=$(wc -c <"$T/x.bdz")
i=0
while [ "$i" -lt "$n" ]; do
    head -c "$i" "$T/x.bdz" >"$T/cut.bdz"
    bd-cat --check "$T/cut.bdz" >/dev/null 2>&1 && fail "stream cut at byte $i read as complete"
    i=$((i + 1))
done
exit 0
