# bd-tokenize: common options, tokenize/decode round trips on real text, JSONL, bad input.
. "$(dirname "$0")/lib.sh"
TOK512=$BD_DATA/models/stories260K/tok512.bin
LLAMA=$BD_DATA/tokenizers/llama2-32k/tokenizer.bin
TS=$BD_DATA/eval/tinystories/tinystories_val_a.txt
expect_common_options bd-tokenize

# The stories: one record per blank-line-separated document, a valid stream.
expect_ok bd-tokenize -k "$TOK512" -o "$T/ts.bdz" "$TS"
[ ! -s "$T/out" ] || fail "output went to stdout with -o"
expect_ok bd-cat --check "$T/ts.bdz"
ndocs=$(awk 'length($0) == 0 { if (n) docs++; n = 0; next } { n++ } END { if (n) docs++; print docs }' "$TS")
expect_out_contains "\"schema\":\"bd.tokens\",\"records\":$ndocs,\"ok\":true"
expect_ok bd-cat --header "$T/ts.bdz"
expect_out_contains '"tokenizer":"llama2c:tok512.bin:'
expect_out_contains '"vocab_size":512,"bos":1,"eos":2,"add_bos":true,"add_eos":false'
# Every document starts with BOS (1) and has no EOS (2) at its end.
bd-cat --full "$T/ts.bdz" | grep '"doc"' >"$T/recs" || fail "bd-cat --full"
[ "$(grep -c '"data":\[1,' "$T/recs")" = "$ndocs" ] || fail "not every document starts with BOS"
grep -q ',2\]' "$T/recs" && fail "a document ends with EOS by default"

# Decoding gives the text back: documents joined by one blank line, ending with one newline.
awk 'length($0) == 0 { gap = 1; next } { if (gap && seen) print ""; print; gap = 0; seen = 1 }' "$TS" >"$T/ts.norm"
expect_ok bd-tokenize -k "$TOK512" --decode -o "$T/ts.dec" "$T/ts.bdz"
cmp "$T/ts.dec" "$T/ts.norm" || fail "tok512 decode differs from the input"
# Through a pipe, with the Llama 2 vocabulary, and from standard input.
bd-tokenize -k "$LLAMA" <"$TS" | bd-tokenize -k "$LLAMA" -d >"$T/ts.dec2" || fail "pipe round trip"
cmp "$T/ts.dec2" "$T/ts.norm" || fail "llama2 decode differs from the input"

# --whole: one document per file, byte for byte (the file ends with a newline).
printf 'Line one.\n\nLine  two, \377\344\270\255 \360\237\230\200\n\n\n' >"$T/a.txt"
printf 'second file\n' >"$T/b.txt"
expect_ok bd-tokenize -k "$LLAMA" --whole --eos -o "$T/w.bdz" "$T/a.txt" "$T/b.txt"
expect_ok bd-cat --check "$T/w.bdz"
expect_out_contains '"records":2,'
expect_ok bd-cat --full "$T/w.bdz"
expect_out_contains '"doc":1}'
expect_out_contains ',2]}'
expect_ok bd-tokenize -k "$LLAMA" -d "$T/w.bdz"
{ cat "$T/a.txt"; printf '\n'; cat "$T/b.txt"; } >"$T/w.want"
cmp "$T/out" "$T/w.want" || fail "--whole decode differs"
# --no-bos: "Hello world" is exactly [15043, 3186] with the Llama 2 vocabulary.
printf 'Hello world\n' >"$T/hw.txt"
expect_ok bd-tokenize -k "$LLAMA" --no-bos -o "$T/hw.bdz" "$T/hw.txt"
expect_ok bd-cat --full "$T/hw.bdz"
expect_out_contains '"data":[15043,3186]}'
expect_ok bd-tokenize -k "$LLAMA" --eos --no-eos -o "$T/hw2.bdz" "$T/hw.txt"
expect_ok bd-cat --full "$T/hw2.bdz"
expect_out_contains '"data":[1,15043,3186]}'

# JSONL with --field: one document per line; blank lines skipped.
printf '{"text": "Hello world", "n": 1}\n\n{"n": 2, "text": "a\\nb \\u00e9"}\n' >"$T/in.jsonl"
expect_ok bd-tokenize -k "$LLAMA" --field text -o "$T/j.bdz" "$T/in.jsonl"
expect_ok bd-cat --full "$T/j.bdz"
expect_out_contains '"data":[1,15043,3186]},"doc":0}'
expect_out_contains '"data":[1,263,13,29890,904]},"doc":1}'
expect_ok bd-tokenize -k "$LLAMA" -d "$T/j.bdz"
printf 'Hello world\n\na\nb \303\251\n' >"$T/j.want"
cmp "$T/out" "$T/j.want" || fail "JSONL decode differs"
# Real JSONL: the PIQA goals, one record per item.
expect_ok bd-tokenize -k "$TOK512" --field goal -o "$T/piqa.bdz" "$BD_DATA/eval/piqa/dev.jsonl"
expect_ok bd-cat --check "$T/piqa.bdz"
expect_out_contains "\"records\":$(grep -c . "$BD_DATA/eval/piqa/dev.jsonl"),"
# A tokenizer.json directory works too.
expect_ok bd-tokenize -k "$(dirname "$0")/../fixtures/tok_bytelevel" --no-bos -o "$T/bl.bdz" "$T/a.txt"
expect_ok bd-tokenize -k "$(dirname "$0")/../fixtures/tok_bytelevel" -d "$T/bl.bdz"
{ printf 'Line one.\n\nLine  two, \377\344\270\255 \360\237\230\200\n'; } >"$T/bl.want"
cmp "$T/out" "$T/bl.want" || fail "byte-level decode differs"

# Bad input: one line naming the file and line, exit 1, nothing written.
printf '{"text": "fine"}\n{"text": broken\n' >"$T/bad.jsonl"
expect_fail 1 bd-tokenize -k "$LLAMA" --field text -o "$T/bad.bdz" "$T/bad.jsonl"
expect_err_contains "bad.jsonl\" line 2: invalid JSON"
[ ! -e "$T/bad.bdz" ] || fail "output left behind after invalid JSON"
expect_fail 1 bd-tokenize -k "$LLAMA" --field text "$T/bad.jsonl"
printf '{"text": "fine"}\n{"other": 1}\n' >"$T/miss.jsonl"
expect_fail 1 bd-tokenize -k "$LLAMA" --field text -o "$T/bad.bdz" "$T/miss.jsonl"
expect_err_contains "miss.jsonl\" line 2: field \"text\" is missing"
printf '{"text": 5}\n' >"$T/num.jsonl"
expect_fail 1 bd-tokenize -k "$LLAMA" --field text "$T/num.jsonl"
expect_err_contains "line 1: field \"text\" is not a string"
printf '[1, 2]\n' >"$T/arr.jsonl"
expect_fail 1 bd-tokenize -k "$LLAMA" --field text "$T/arr.jsonl"
expect_err_contains "line 1: invalid JSON"
expect_fail 1 bd-tokenize -k "$LLAMA" -o "$T/bad.bdz" "$T/hw.txt" "$T/no-such-file.txt"
expect_err_contains "no-such-file.txt"
[ ! -e "$T/bad.bdz" ] || fail "output left behind after an unreadable file"
expect_fail 1 bd-tokenize -k "$T/hw.txt" "$T/hw.txt"
expect_err_contains "unknown tokenizer format"
expect_fail 1 bd-tokenize -k "$T/no-such-tokenizer" "$T/hw.txt"
expect_fail 1 bd-tokenize -k "$(dirname "$0")/../fixtures/tok_bytelevel" "$T/hw.txt"
expect_err_contains "no BOS"
expect_fail 2 bd-tokenize "$T/hw.txt"
expect_err_contains "--tokenizer is required"
expect_fail 2 bd-tokenize -k "$LLAMA" --field text --whole "$T/hw.txt"
expect_fail 1 bd-tokenize -k "$LLAMA" -d "$T/hw.txt"
expect_err_contains "not a bd stream"
# A stream made with another tokenizer is refused; a truncated stream fails.
expect_fail 1 bd-tokenize -k "$LLAMA" -d -o "$T/bad.txt" "$T/ts.bdz"
expect_err_contains "made with tokenizer llama2c:tok512.bin:"
[ ! -e "$T/bad.txt" ] || fail "decode output left behind"
head -c 100 "$T/ts.bdz" >"$T/cut.bdz"
expect_fail 1 bd-tokenize -k "$TOK512" -d "$T/cut.bdz"

# A full disk (standard output on /dev/full) fails with one line, exit 1; under make test SAN=1
# also without a leak (the input list was once left allocated on this path).
for args in "$T/hw.txt" "--whole $T/hw.txt" "$T/hw.txt $T/a.txt" "--field text $T/in.jsonl" "-d $T/ts.bdz"; do
    # shellcheck disable=SC2086
    bd-tokenize -k "$TOK512" $args >/dev/full 2>"$T/err"
    rc=$?
    no_sanitizer_report bd-tokenize $args
    [ "$rc" = 1 ] || { cat "$T/err" >&2; fail "bd-tokenize $args >/dev/full: exit $rc, expected 1"; }
    expect_err_contains "No space left on device"
done
exit 0
