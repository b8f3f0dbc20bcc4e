# Group sizes that do not divide a row (bd-eval(1), bd-qat(1), bd-pack(1): the last group of a
# row is shorter): fake quantization, clipping and packing agree on them.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
head -c 20000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >"$T/val.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/val.bdz" "$T/val.txt"
# stories260K: rows of 64 and 172 weights, groups of 7 leave tails of 1 and 4.
expect_ok bd-eval --model "$M/stories260K.bin" --quant int --bits 3 --group 7 -T 64 --json "$T/val.bdz"
g7=$(nll)
expect_ok bd-eval --model "$M/stories260K.bin" --quant int --bits 3 --group 8 -T 64 --json "$T/val.bdz"
[ "$g7" != "$(nll)" ] || fail "--group 7 and --group 8 give the same loss"
expect_ok bd-clipsearch --model "$M/stories260K.bin" --calib "$T/val.bdz" --bits 3 --group 7 -T 64 --windows 2 -o "$T/clip.bdz"
expect_ok bd-eval --model "$M/stories260K.bin" --quant int --bits 3 --group 7 --clip "$T/clip.bdz" -T 64 --json "$T/val.bdz"
# The packed model runs exactly the fake-quantized weights (and the f32 head they have).
for q in "int --bits 2" "nf3 --bits 3" "r2q --bits 2"; do
    # shellcheck disable=SC2086
    expect_ok bd-pack --model "$M/stories260K.bin" --quant $q --group 7 --head-format f32 -o "$T/p.bdz"
    # shellcheck disable=SC2086
    expect_ok bd-eval --model "$M/stories260K.bin" --quant $q --group 7 -T 64 --json "$T/val.bdz"
    fq=$(nll)
    expect_ok bd-eval --model "$T/p.bdz" -T 64 --json "$T/val.bdz"
    awk -v a="$fq" -v b="$(nll)" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' ||
        fail "$q group 7: fake-quantized nll $fq, packed $(nll)"
done
exit 0
