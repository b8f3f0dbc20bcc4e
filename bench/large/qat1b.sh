# make bench-large: one QAT step setting after another on a random TinyLlama-1.1B-shaped Llama
# (dim 2048, 22 layers, 32 heads, 4 KV heads, ffn 5632, vocab 32000; bf16 safetensors, 2.2 GB,
# made once under $LARGE) at B=1, T=512, 2-bit g128, 2 optimizer steps each: peak RSS and
# tokens/s for f32 and bf16 AdamW moments, with and without --recompute, with the live teacher
# (the mapped bf16 file) and with --teacher-logits (stored top-32 log-probabilities).
# Aim (issue "Real model sizes"): a step with the teacher on board within 20 GiB peak RSS.
. "$(dirname "$0")/common.inc"
M=$LARGE/tinyllama
if [ ! -s "$M/model.safetensors" ]; then
    echo "making $M (2.2 GB, once) ..."
    $PY "$MAKE_MODEL" "$M" 2048 5632 22 32 4 32000 bf16 2 2048
fi
head -c 12000 "$TXT" >"$W/train.txt"
"$BIN/bd-tokenize" -q -k "$TOK" -o "$W/train.bdz" "$W/train.txt"
Q="--quant int --bits 2 --group 128 -b 1 -T 512 --steps 2 --lr 1e-5"

# qat NAME [OPTIONS]: one run; tokens/s = 2 steps x 512 tokens / wall seconds (load included).
qat() {
    name=$1
    shift
    run "$name" "$BIN/bd-qat" -m "$M" $Q "$@" -o "$W/$name.bdz"
}
has_bf16=$("$BIN/bd-qat" --help | grep -c -- --optim-dtype || true)
qat f32 --loss fkl "$W/train.bdz"
qat f32_rc --loss fkl --recompute "$W/train.bdz"
if [ "$has_bf16" -gt 0 ]; then
    qat bf16 --loss fkl --optim-dtype bf16 "$W/train.bdz"
    qat bf16_rc --loss fkl --optim-dtype bf16 --recompute "$W/train.bdz"
fi
# Stored teacher: two samples of 512 tokens with their top-32 log-probabilities.
printf 'Once upon a time\nThe little dog\n' >"$W/prompts.txt"
run gen "$BIN/bd-teacher-gen" -m "$M" -k "$TOK" -p "$W/prompts.txt" -n 2 -K 500 -b 2 --logits 32 --temperature 0 \
    -o "$W/samples.bdz"
opt_rc="--recompute"
[ "$has_bf16" -gt 0 ] && opt_rc="--optim-dtype bf16 --recompute"
qat logits --loss fkl --teacher-logits --data "$W/samples.bdz" $opt_rc

tps() { awk -v s="$(secs "$1")" 'BEGIN {printf "%.1f", 2 * 512 / s}'; }
echo
echo "TinyLlama-1.1B-shaped QAT, 2-bit g128, B=1 T=512, 2 steps (tokens/s include loading)"
printf '%-44s %10s %10s %10s\n' "setting" "seconds" "tokens/s" "peak GiB"
line() { printf '%-44s %10s %10s %10s\n' "$1" "$(secs "$2")" "$(tps "$2")" "$(rss "$2")"; }
line "f32 moments, live teacher" f32
line "f32 moments, live teacher, --recompute" f32_rc
if [ "$has_bf16" -gt 0 ]; then
    line "bf16 moments, live teacher" bf16
    line "bf16 moments, live teacher, --recompute" bf16_rc
fi
line "$opt_rc, --teacher-logits" logits
echo "(teacher samples for --teacher-logits: $(secs gen) s, peak $(rss gen) GiB; aim: every setting under 20 GiB)"
