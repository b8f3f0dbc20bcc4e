# make bench-large: a random 7B-shaped Llama (dim 4096, 32 layers, 32 heads, ffn 11008, vocab
# 32000, untied) as bf16 safetensors (13.5 GB on disk, made once under $LARGE, default
# build/large), run through the tools that only read its weights, which keep the linears mapped
# in bf16 (bd(7) "Weights in the file's precision"): load, perplexity on 512 tokens, clipping
# search at 2 bits g128, packing to 2 bits, and generation at batch 1 packed vs bf16.
# Each line: wall seconds and peak RSS (GNU time), with the comparison point of the same run.
# Not part of make test or make bench (about 15-25 minutes on 2 cores once the model exists).
. "$(dirname "$0")/common.inc"
M=$LARGE/llama7b

if [ ! -s "$M/model.safetensors" ]; then
    echo "making $M (13.5 GB, once) ..."
    $PY "$MAKE_MODEL" "$M" 4096 11008 32 32 32 32000 bf16 1 4096
fi
FILE_GB=$(stat -c %s "$M/model.safetensors" | awk '{printf "%.2f", $1 / 2^30}')

# Reading the file once (what a mapped load costs at best), then the tools.
t0=$(date +%s.%N)
cat "$M/model.safetensors" | wc -c >"$W/bytes"
t1=$(date +%s.%N)
READ_S=$(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}')

head -c 2400 "$TXT" >"$W/eval.txt"  # about 600 tokens: one window of 512
"$BIN/bd-tokenize" -q -k "$TOK" --whole -o "$W/eval.bdz" "$W/eval.txt"
head -c 20 "$TXT" >"$W/tiny.txt"
run load "$BIN/bd-eval" -m "$M" -k "$TOK" --text "$W/tiny.txt" -T 4 --json --verbosity 2
LOAD_S=$(sed -n 's/.*--model: loaded in \([0-9.]*\) s.*/\1/p' "$W/load.err" | tail -1)
run eval "$BIN/bd-eval" -m "$M" -k "$TOK" -T 512 --json "$W/eval.bdz"
EVAL_TPS=$($PY -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.1f' % (d['tokens']/d['seconds']))" "$W/eval.out")
run clip "$BIN/bd-clipsearch" -m "$M" --calib "$W/eval.bdz" --bits 2 --group 128 -T 128 --windows 2 --tokens 32 \
    --shrink-steps 5 -o "$W/clip.bdz"
run pack "$BIN/bd-pack" -m "$M" --quant int --bits 2 --group 128 -o "$W/q2.bdz"
PACK_GB=$(stat -c %s "$W/q2.bdz" | awk '{printf "%.2f", $1 / 2^30}')
printf 'Once upon a time\n' >"$W/prompt.txt"
gen() {  # gen NAME MODEL: tokens/s of 16 new tokens at batch 1 (from bd-teacher-gen's summary line)
    run "$1" "$BIN/bd-teacher-gen" -m "$2" -k "$TOK" -p "$W/prompt.txt" -n 1 -K 16 -b 1 --unpadded --temperature 0 \
        -o "$W/$1.bdz"
    sed -n 's/.* \([0-9]*\) new tokens in \([0-9.]*\) s.*/\1 \2/p' "$W/$1.err" | tail -1 | awk '{printf "%.2f", $1 / $2}'
}
GEN_Q2=$(gen gen_q2 "$W/q2.bdz")
GEN_BF16=$(gen gen_bf16 "$M")

F32_GB=$(echo "$FILE_GB" | awk '{printf "%.2f", $1 * 2}')
echo
echo "7B-shaped Llama, bf16 safetensors $FILE_GB GiB (an f32 copy: $F32_GB GiB, more than this machine's memory)"
printf '%-42s %10s %10s  %s\n' "step" "seconds" "peak GiB" "comparison (same run)"
printf '%-42s %10s %10s  %s\n' "load, mapped (bd-eval's own timer)" "$LOAD_S" "" "reading the file once: $READ_S s ($(echo "$LOAD_S $READ_S" | awk '{printf "%.2f", $1 / $2}')x)"
printf '%-42s %10s %10s  %s\n' "bd-eval on 4 tokens (load, 2 passes, hash)" "$(secs load)" "$(rss load)" "the content hash reads all 13.5 GB (beside the load)"
printf '%-42s %10s %10s  %s\n' "bd-eval 512 tokens" "$(secs eval)" "$(rss eval)" "$EVAL_TPS tokens/s; f32 copy would need $F32_GB GiB ($(echo "$(rss eval) $F32_GB" | awk '{printf "%.2f", $1 / $2}')x)"
printf '%-42s %10s %10s  %s\n' "bd-clipsearch 2-bit g128 (2x128 calib)" "$(secs clip)" "$(rss clip)" "32 positions, 5x5 shrink grid"
printf '%-42s %10s %10s  %s\n' "bd-pack int 2-bit g128" "$(secs pack)" "$(rss pack)" "packed file $PACK_GB GiB vs $FILE_GB GiB bf16"
printf '%-42s %10s %10s  %s\n' "generation q2 packed, batch 1" "$(secs gen_q2)" "$(rss gen_q2)" "$GEN_Q2 tokens/s vs bf16 mapped $GEN_BF16 tokens/s ($(echo "$GEN_Q2 $GEN_BF16" | awk '{printf "%.2f", $1 / $2}')x)"
printf '%-42s %10s %10s\n' "generation bf16 mapped, batch 1" "$(secs gen_bf16)" "$(rss gen_bf16)"
