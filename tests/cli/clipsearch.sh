# bd-clipsearch: a search on real data lowers the 2-bit error; the stream is valid; bad input.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
expect_common_options bd-clipsearch
head -c 40000 "$TXT" >"$T/calib.txt"
tail -c 60000 "$TXT" >"$T/val.txt"
bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/calib.bdz" "$T/calib.txt" || fail "tokenize"
bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/val.bdz" "$T/val.txt" || fail "tokenize"
expect_ok bd-clipsearch --model "$M/stories260K.bin" --calib "$T/calib.bdz" --bits 2 --group 32 -T 256 -o "$T/clip.bdz"
[ ! -s "$T/out" ] || fail "stdout not empty with -o"
expect_ok bd-cat --check --schema bd.clip "$T/clip.bdz"
# 5 layers x 5 linears (q and k are not clipped).
expect_out_contains '"records":25'
expect_ok bd-cat "$T/clip.bdz"
grep -q '"tensor":"wq"' "$T/out" && fail "wq clipped without --include-qk"
expect_out_contains '"name":"layers.4.w2","tensor":"w2","layer":4,"max":{"name":"max","dtype":"f32","shape":[64,6]}'
expect_ok bd-clipsearch --model "$M/stories260K.bin" --calib "$T/calib.bdz" --bits 2 --group 32 -T 256 --include-qk --exclude 'w2' -o "$T/clip2.bdz"
expect_ok bd-cat --check "$T/clip2.bdz"
expect_out_contains '"records":30'
# Clipping helps 2-bit RTN on held-out text.
rtn=$(bd-eval --model "$M/stories260K.bin" --quant int --bits 2 --group 32 -T 256 --json "$T/val.bdz" | sed 's/.*"nll":\([0-9.]*\).*/\1/')
clp=$(bd-eval --model "$M/stories260K.bin" --quant int --bits 2 --group 32 --clip "$T/clip.bdz" -T 256 --json "$T/val.bdz" | sed 's/.*"nll":\([0-9.]*\).*/\1/')
awk -v a="$rtn" -v b="$clp" 'BEGIN { exit !(b < a - 0.2) }' || fail "clip+RTN $clp not clearly below RTN $rtn"
# The ranges are for group 32: another group is refused.
expect_fail 1 bd-eval --model "$M/stories260K.bin" --quant int --bits 2 --group 64 --clip "$T/clip.bdz" "$T/val.bdz"
expect_err_contains "group 32"
# ... and so is another quantizer or bit width.
expect_fail 1 bd-eval --model "$M/stories260K.bin" --quant nf3 --bits 3 --group 32 --clip "$T/clip.bdz" "$T/val.bdz"
expect_err_contains "searched for int 2-bit, but the quantizer is nf3 3-bit"
# Bad input.
expect_fail 2 bd-clipsearch --model "$M/stories260K.bin" --bits 2 -o "$T/x.bdz"
expect_fail 2 bd-clipsearch --model "$M/stories260K.bin" --calib "$T/calib.bdz" --quant ternary --bits 2
expect_fail 2 bd-clipsearch --model "$M/stories260K.bin" --calib "$T/calib.bdz" --bits 2 --steps 30
head -c 300 "$T/calib.bdz" >"$T/cut.bdz"
expect_fail 1 bd-clipsearch --model "$M/stories260K.bin" --calib "$T/cut.bdz" --bits 2 -o "$T/x.bdz"
[ ! -e "$T/x.bdz" ] || fail "output left behind"
printf 'x' >"$T/tiny.txt"
bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/tiny.bdz" "$T/tiny.txt" || fail "tokenize"
expect_fail 1 bd-clipsearch --model "$M/stories260K.bin" --calib "$T/tiny.bdz" --bits 2 -o "$T/x.bdz"
expect_err_contains "fewer than one window"
expect_fail 1 bd-eval --model "$M/stories260K.bin" --quant int --bits 2 --group 32 --clip "$T/calib.bdz" "$T/val.bdz"
expect_err_contains 'expected "bd.clip"'
exit 0
