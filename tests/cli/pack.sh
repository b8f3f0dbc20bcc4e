# bd-pack: round-to-nearest packing of stories260K; the packed model's perplexity and greedy
# text equal the fake-quantized model's; GGUF export; bad input. The exact comparisons pack
# with --head-format f32 (the fake-quantized model's head is f32; the default q8 head moves
# the perplexity by about 1e-3 nats: pack_head.sh).
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
expect_common_options bd-pack
head -c 30000 "$TXT" >"$T/val.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/val.bdz" "$T/val.txt"

# Packed == fake-quantized, within 1e-4 nats (f32 activations: the same weights, only the
# summation order differs); int8 activations move it a little, not a lot.
for spec in "int 2 32" "nf3 3 32" "r2q 2 64" "ternary 2 128" "sym 3 48"; do
    set -- $spec
    expect_ok bd-pack --model "$M/stories260K.bin" --quant "$1" --bits "$2" --group "$3" --head-format f32 -o "$T/p.bdz"
    expect_ok bd-eval --model "$T/p.bdz" -T 256 --json "$T/val.bdz"
    expect_out_contains "\"quant\":\"$1\",\"bits\":$2"
    a=$(nll)
    expect_ok bd-eval --model "$M/stories260K.bin" --quant "$1" --bits "$2" --group "$3" -T 256 --json "$T/val.bdz"
    b=$(nll)
    awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4) }' || fail "$spec: packed nll $a, fake-quantized $b"
done
expect_ok bd-pack --model "$M/stories260K.bin" --quant int --bits 2 --group 32 --head-format f32 -o "$T/p2.bdz"
[ "$(wc -c <"$T/p2.bdz")" -lt 400000 ] || fail "2-bit packed file is not smaller than a third of the f32 model"
expect_ok bd-eval --model "$T/p2.bdz" -T 256 --json --act int8 "$T/val.bdz"
a8=$(nll)
expect_ok bd-eval --model "$T/p2.bdz" -T 256 --json "$T/val.bdz"
a=$(nll)
awk -v a="$a" -v b="$a8" 'BEGIN { d = a - b; exit !(d < 0.05 && d > -0.05 && d != 0) }' || fail "int8 activations: nll $a8 vs $a"
# Greedy generation (the matrix-vector kernels) gives the fake-quantized model's text.
expect_ok bd-eval --model "$T/p2.bdz" --tokenizer "$M/tok512.bin" --generate 40
cp "$T/out" "$T/gen_packed"
expect_ok bd-eval --model "$M/stories260K.bin" --quant int --bits 2 --group 32 --generate 40
cmp -s "$T/out" "$T/gen_packed" || fail "packed generation differs: $(cat "$T/gen_packed") vs $(cat "$T/out")"

# GGUF: f32 export of a packed model; the header is GGUF version 3.
expect_ok bd-pack --model "$T/p2.bdz" --tokenizer "$M/tok512.bin" --format gguf -o "$T/m.gguf"
[ "$(head -c 4 "$T/m.gguf")" = "GGUF" ] || fail "no GGUF magic"
[ "$(od -An -tu4 -j4 -N4 "$T/m.gguf" | tr -d ' ')" = 3 ] || fail "GGUF version is not 3"
expect_ok bd-pack --model "$M/stories260K.bin" --format gguf --gguf-type f16 -o "$T/m16.gguf"
# TQ2_0 needs rows of a multiple of 256 weights: stories260K's are 64 and 172, so every ternary
# linear goes out as f16 (the same values), said in one warning line (then the summary).
expect_ok bd-pack --model "$M/stories260K.bin" --quant ternary --format gguf -o "$T/t.gguf"
expect_err_contains "35 of 35 ternary linears written as f16, not tq2_0"
[ "$(grep -c warning: "$T/err")" = 1 ] || fail "more than one warning: $(cat "$T/err")"
[ "$(wc -l <"$T/err")" = 2 ] || fail "expected the warning and the summary line: $(cat "$T/err")"
expect_err_contains "wrote GGUF $T/t.gguf"
[ -s "$T/t.gguf" ] || fail "no GGUF file"
expect_fail 1 bd-pack --model "$T/p2.bdz" --format gguf --gguf-type tq2_0 --tokenizer "$M/tok512.bin" -o "$T/t.gguf"
expect_err_contains "its quantization is int 2-bit, not ternary (train or round it with --quant ternary)"

# Bad input and usage.
expect_fail 1 bd-pack --model "$M/stories260K.bin" -o "$T/x.bdz"
expect_err_contains "full-precision model"
[ ! -e "$T/x.bdz" ] || fail "output left behind"
expect_fail 2 bd-pack --model "$M/stories260K.bin" --quant int4
expect_fail 2 bd-pack --model "$M/stories260K.bin" --format zip
expect_fail 2 bd-pack --model "$M/stories260K.bin" --format gguf
expect_fail 1 bd-pack --model "$M/stories260K.bin" --quant nf3 --bits 2 -o "$T/x.bdz"
expect_err_contains "nf3 is a 3-bit grid"
expect_fail 1 bd-pack --model "$T/p2.bdz" --quant int --bits 2 -o "$T/x.bdz"
expect_err_contains "already carries a quantization"
expect_fail 1 bd-eval --model "$T/p2.bdz" --latent "$T/val.bdz"
expect_err_contains "packed model"
expect_fail 1 bd-eval --model "$M/stories260K.bin" --act int8 "$T/val.bdz"
expect_err_contains "not a packed model"
expect_fail 1 bd-eval --model "$T/p2.bdz" --quant int --bits 4 "$T/val.bdz"
head -c 50000 "$T/p2.bdz" >"$T/cut.bdz"
expect_fail 1 bd-eval --model "$T/cut.bdz" "$T/val.bdz"
expect_err_contains "truncated"
exit 0
