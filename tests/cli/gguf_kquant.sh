# Students in llama.cpp's own low-bit types: bd-qat --quant q2_K / q3_K / q4_K trains with
# fake quantizers whose outputs are ggml's K-quant blocks, and bd-pack --format gguf writes
# those blocks. An independent Python reader (gguf_bitnet.py same) dequantizes every block of
# the file in float32 as ggml does and finds the very floats of the same student's exact f32
# export. Ternary students go out as TQ2_0 (mainline llama.cpp) or IQ2_BN (ik_llama.cpp), both
# exact. stories260K's rows (64, 172) hold no 256-weight super-block, so the model here is a
# random Llama with rows of 256 and 512 (make_hf_model.py).
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
G="$PY $(dirname "$0")/gguf_bitnet.py"
need_numpy
expect_ok $PY "$(dirname "$0")/make_hf_model.py" "$T/hf" 256 512 2 4 512 7
head -c 20000 "$TXT" >"$T/tr.txt"
tail -c 6000 "$TXT" >"$T/ev.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/tr.bdz" "$T/tr.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/ev.bdz" "$T/ev.txt"
q="--loss ce --steps 2 -b 2 -T 32 --lr 1e-3 --threads 1"

for k in q2_K q3_K q4_K; do
    expect_ok bd-qat -m "$T/hf" --quant $k $q -o "$T/$k.bdz" "$T/tr.bdz"
    # Default GGUF type of a K-quant student: its own; every linear in it, exact.
    expect_ok bd-pack --model "$T/$k.bdz" --format gguf -k "$M/tok512.bin" --verbosity 2 -o "$T/$k.gguf"
    expect_err_contains "14 linears $k"
    expect_ok bd-pack --model "$T/$k.bdz" --format gguf --gguf-type f32 -k "$M/tok512.bin" -o "$T/${k}f.gguf"
    expect_ok $G same "$T/$k.gguf" "$T/${k}f.gguf"
    expect_out_contains "same: 6 f32, 14 $k"
    # The packed student (its rows are those blocks) gives the same file, and bd-eval finds the
    # latent student's loss on it.
    expect_ok bd-pack --model "$T/$k.bdz" --head-format f32 -o "$T/${k}p.bdz"
    expect_ok bd-pack --model "$T/${k}p.bdz" --format gguf -k "$M/tok512.bin" -o "$T/${k}p.gguf"
    cmp -s "$T/$k.gguf" "$T/${k}p.gguf" || fail "$k: GGUF of the packed student differs from the latent one's"
    expect_ok bd-eval --model "$T/$k.bdz" -T 32 --json --threads 1 "$T/ev.bdz"
    a=$(nll)
    expect_ok bd-eval --model "$T/${k}p.bdz" -T 32 --json --threads 1 "$T/ev.bdz"
    within "$(nll)" "$a" 1e-4 || fail "$k: packed nll $(nll), latent $a"
done
# File sizes follow the block sizes: q2_K < q3_K < q4_K < f32.
s2=$(wc -c <"$T/q2_K.gguf") s3=$(wc -c <"$T/q3_K.gguf") s4=$(wc -c <"$T/q4_K.gguf") sf=$(wc -c <"$T/q2_Kf.gguf")
[ "$s2" -lt "$s3" ] && [ "$s3" -lt "$s4" ] && [ "$s4" -lt "$sf" ] || fail "sizes $s2 $s3 $s4 $sf"

# The checker sees a changed block (one code byte of the first q2_K tensor flipped).
cp "$T/q2_K.gguf" "$T/bad.gguf"
off=$(($(wc -c <"$T/q2_K.gguf") - 1000))
printf '\377' | dd of="$T/bad.gguf" bs=1 seek=$off conv=notrunc 2>/dev/null
! $G same "$T/bad.gguf" "$T/q2_Kf.gguf" >"$T/out" 2>"$T/err" || fail "a corrupted block passes"

# Round-to-nearest of the full-precision model straight to GGUF (the PTQ baseline).
expect_ok bd-pack --model "$T/hf" --quant q3_K --format gguf -k "$M/tok512.bin" -o "$T/rtn.gguf"
expect_ok bd-pack --model "$T/hf" --quant q3_K --format gguf --gguf-type f32 -k "$M/tok512.bin" -o "$T/rtnf.gguf"
expect_ok $G same "$T/rtn.gguf" "$T/rtnf.gguf"
expect_out_contains "14 q3_K"

# Ternary: TQ2_0 and IQ2_BN. IQ2_BN is exact; ik_llama.cpp runs it only on rows of at least 512
# weights, so a model with 512-wide rows everywhere (one layer) is used for it.
expect_ok $PY "$(dirname "$0")/make_hf_model.py" "$T/hf512" 512 512 1 8 512 8
expect_ok bd-qat -m "$T/hf512" --quant ternary $q -o "$T/t.bdz" "$T/tr.bdz"
expect_ok bd-pack --model "$T/t.bdz" --format gguf --gguf-type f32 -k "$M/tok512.bin" -o "$T/tf.gguf"
expect_ok bd-pack --model "$T/t.bdz" --format gguf --gguf-type iq2_bn -k "$M/tok512.bin" -o "$T/tb.gguf"
! grep -q warning: "$T/err" || fail "iq2_bn of 512-wide rows warns: $(cat "$T/err")"
expect_ok $G same "$T/tb.gguf" "$T/tf.gguf"
expect_out_contains "7 iq2_bn"
# Rows of 256: f16 instead, said in one line.
expect_ok bd-qat -m "$T/hf" --quant ternary $q -o "$T/t256.bdz" "$T/tr.bdz"
expect_ok bd-pack --model "$T/t256.bdz" --format gguf --gguf-type iq2_bn -k "$M/tok512.bin" -o "$T/tb256.gguf"
expect_err_contains "12 of 14 ternary linears written as f16, not iq2_bn (rows of 256 weights; IQ2_BN needs a multiple of 64, at least 512)"
# TQ2_0 rounds D to f16: equal to the f32 file only up to that one factor, so count types.
expect_ok bd-pack --model "$T/t256.bdz" --format gguf -k "$M/tok512.bin" --verbosity 2 -o "$T/tq.gguf"
expect_err_contains "14 linears tq2_0"
# TQ1_0 (1.6875 bits per weight) holds the same codes and the same f16 scale: its weights,
# decoded by the independent reader, equal TQ2_0's bit for bit, in a smaller file.
expect_ok bd-pack --model "$T/t256.bdz" --format gguf --gguf-type tq1_0 -k "$M/tok512.bin" --verbosity 2 -o "$T/tq1.gguf"
expect_err_contains "14 linears tq1_0"
expect_ok $G same "$T/tq1.gguf" "$T/tq.gguf"
[ "$(stat -c %s "$T/tq1.gguf")" -lt "$(stat -c %s "$T/tq.gguf")" ] || fail "tq1_0 file not smaller than tq2_0"
# bd reads TQ1_0 back: the same loss as the TQ2_0 file.
a=$(expect_ok bd-eval --model "$T/tq1.gguf" -k "$M/tok512.bin" -T 32 --json --threads 1 "$T/ev.bdz"; nll)
b=$(expect_ok bd-eval --model "$T/tq.gguf" -k "$M/tok512.bin" -T 32 --json --threads 1 "$T/ev.bdz"; nll)
[ "$a" = "$b" ] || fail "TQ1_0 read back: nll $a, TQ2_0 $b"

# Wrong pairs: one line naming what fits, and no file.
expect_fail 1 bd-pack --model "$T/q3_K.bdz" --format gguf --gguf-type q2_K -k "$M/tok512.bin" -o "$T/x.gguf"
expect_err_contains "its quantization is q3_K 3-bit, not q2_K (train or round it with --quant q2_K)"
[ ! -e "$T/x.gguf" ] || fail "a refused export left a file"
expect_fail 1 bd-pack --model "$T/t.bdz" --format gguf --gguf-type q4_K -k "$M/tok512.bin" -o "$T/x.gguf"
expect_err_contains "its quantization is ternary 2-bit, not q4_K"
expect_fail 2 bd-pack --model "$T/t.bdz" --format gguf --gguf-type q5_K -k "$M/tok512.bin" -o "$T/x.gguf"
expect_err_contains "q2_K, q3_K, q4_K, tq1_0, tq2_0 or iq2_bn"
# stories260K has rows of 64: no K-quant fits, said before any training.
expect_fail 1 bd-qat -m "$M/stories260K.bin" --quant q2_K $q -o "$T/x.bdz" "$T/tr.bdz"
expect_err_contains "q2_K needs rows of a multiple of 256 weights, not 64"
[ ! -e "$T/x.bdz" ] || fail "a refused run left a file"
expect_fail 1 bd-qat -m "$T/hf" --quant q2_K --group 128 $q -o "$T/x.bdz" "$T/tr.bdz"
expect_err_contains "fixed 256-weight super-blocks"
expect_fail 1 bd-qat -m "$T/hf" --quant q4_K --bits 2 $q -o "$T/x.bdz" "$T/tr.bdz"
expect_err_contains "q4_K takes --bits 4"
exit 0
