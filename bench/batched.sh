#!/bin/sh
# Batched generation, the throughput self-generated training data costs: bd-teacher-gen at batch B
# (default 32; B samples of K = 128 new tokens from BOS, greedy) against llama.cpp's
# llama-batched-bench on the same weights (-npp 1 -ntg 128 -npl B: B sequences from one prompt
# token each; its S_TG column, which it prints on standard error), at 1 and 2 threads, for f32,
# q2_K with int8 activations / Q2_K and tq2 / IQ2_BN (the models of bench/side_by_side.sh,
# bench/lib/sbs_common.sh). New tokens per second over all sequences, medians of REPS runs
# (default 3), and bd / llama.cpp. Without LLAMA_BIN (a bin directory with llama-batched-bench) bd
# alone. Environment as side_by_side.sh: BD_BIN, BD_DATA, LLAMA_BIN, REPS, WORK, B.
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-32}
. "$HERE/bench/lib/sbs_common.sh"

K=128
bd_batched() {  # MODEL THREADS: new tokens/s of bd-teacher-gen at batch B
    for r in $(seq "$REPS"); do
        bd-teacher-gen -m "$1" -k "$TOK" -n "$B" -K $K -b "$B" --temperature 0 --threads "$2" -o batched.bdz 2>&1 |
            tokens_per_s
    done | median
}
lcpp_batched() {  # GGUF THREADS: S_TG of llama-batched-bench
    [ -n "$LLAMA_BIN" ] || { echo -; return; }
    for r in $(seq "$REPS"); do
        "$LLAMA_BIN/llama-batched-bench" -m "$1" -c $((B * (K + 8))) -b 2048 -ub 512 -npp 1 -ntg $K -npl "$B" \
            -t "$2" -tb "$2" 2>&1 | awk -F'|' -v b="$B" '$4 + 0 == b { gsub(/ /, "", $9); print $9 }'
    done | median
}

echo "| format (bd / llama.cpp) | threads | batch | bd tokens/s | llama.cpp tokens/s | ratio |"
echo "|---|---|---|---|---|---|"
for f in "f32 $M f32.gguf" "q2_K+int8-acts q2_K_i8.bdz q2_K.gguf" "tq2/IQ2_BN tq2.bdz iq2_bn.gguf"; do
    set -- $f
    for t in 1 2; do
        g=$(bd_batched "$2" $t)
        l=$(lcpp_batched "$3" $t)
        echo "| $1 | $t | $B | $g | $l | $(ratio "$g" "$l") |"
    done
done
rm -f batched.bdz
