#!/bin/sh
# bd against llama.cpp on the same weights: a random 110M-shaped Llama (dim 768, 12 layers, 12
# heads, ffn 2048, the Llama 2 32,000-token vocabulary, tied f32 embedding/head) is written once,
# then each format is made by bd and exported by bd to GGUF (the K-quants and IQ2_BN byte for byte,
# so both engines compute with the very same weights):
#   f32     bd: the model itself               llama.cpp: bd's f32 GGUF
#   q2_K    bd: packed q2_K (RTN)              llama.cpp: bd's Q2_K GGUF of the same student
#   q4_K    bd: packed q4_K (RTN)              llama.cpp: bd's Q4_K GGUF
#   q2_K, q4_K +int8-acts: the same with bd-pack --act-quant int8 (bd's per-token int8 activations;
#           llama.cpp's K-quant dots quantize activations to 8 bits per 256, Q8_K)
#   ternary bd: packed tq2, int8 activations   llama.cpp: bd's IQ2_BN GGUF (ik_llama.cpp's type)
# Like for like: build/bench/bench_model (bd's llama-bench: one warm process, pp 512 = one batched
# prompt pass with the head at the last position, tg 128 = 128 steps from an empty cache, medians
# of REPS runs) against llama-bench pp512 / tg128 (its own -r REPS runs; ik_llama.cpp's llama-bench
# takes generation threads from -tgb, not -t: both are given). Two more columns give what bd's
# tools deliver in one cold process each (medians of REPS): bd-eval -K 1 reading a 512-token
# prompt (the first 1803 bytes of the text) and bd-teacher-gen --unpadded -b 1 (greedy, 2 samples
# of 128 new tokens). Tokens/s at 1 and 2 threads. The bandwidth column: the weights a generated
# token reads (bench_model's "bytes": every linear and the head as stored; llama.cpp reads the
# same bytes, the GGUF holding the same blocks) times generation's tokens/s, over the read loop's
# GB/s at that thread count (bench_model --bandwidth, measured before the table), bd / llama.cpp. LLAMA_BIN: an ik_llama.cpp (or llama.cpp) bin
# directory with llama-bench; without it bd's figures alone. The machine is shared and noisy: read
# ratios, not digits. Environment: BD_BIN, BD_BENCH (build/bench), BD_DATA, LLAMA_BIN, REPS (3),
# WORK (build/bench/side_by_side: the models, about 600 MB, kept between runs), PROMPT (1; 0:
# generation only).
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
PROMPT=${PROMPT:-1}
BD_BENCH=${BD_BENCH:-$HERE/build/bench}
. "$HERE/bench/lib/sbs_common.sh"

PROMPT_TEXT=$(head -c 1803 text.txt)  # 512 tokens with BOS (Llama 2 tokenizer)
bd_bench() {  # MODEL THREADS: "pp tg bytes": tokens/s of bench_model (its own medians of REPS)
    "$BD_BENCH/bench_model" "$1" "$2" "$([ "$PROMPT" = 0 ] && echo 0 || echo 512)" 128 "$REPS" |
        awk '$1 == "pp" { pp = $3 } $1 == "tg" { tg = $3 } $1 == "bytes" { b = $2 }
             END { print (pp ? pp : "-"), (tg ? tg : "-"), (b ? b : "-") }'
}
share() {  # BYTES TOK/S GB/S: percent of the bandwidth
    awk -v b="$1" -v t="$2" -v w="$3" 'BEGIN { if (b + 0 > 0 && t + 0 > 0 && w + 0 > 0) printf "%.0f%%", 100 * b * t / (w * 1e9); else printf "-" }'
}
BW=$("$BD_BENCH/bench_model" --bandwidth | awk '{ printf "%s ", $3 }')
echo "memory read bandwidth (bench_model --bandwidth): $(echo $BW | cut -d' ' -f1) GB/s at 1 thread, $(echo $BW | cut -d' ' -f2) GB/s at 2"
echo
tool_prompt() {  # MODEL THREADS: bd-eval's prompt pass, tokens/s
    [ "$PROMPT" = 0 ] && { echo -; return; }
    for r in $(seq "$REPS"); do
        bd-eval -m "$1" -k "$TOK" --threads "$2" -K 1 --prompt "$PROMPT_TEXT" 2>&1 >/dev/null |
            sed -n 's/.*read a prompt of 512 tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p'
    done | median
}
tool_gen() {  # MODEL THREADS: bd-teacher-gen at batch 1, new tokens/s
    for r in $(seq "$REPS"); do
        bd-teacher-gen -m "$1" -k "$TOK" -n 2 -K 128 --temperature 0 -b 1 --unpadded --threads "$2" -o gen.bdz 2>&1 |
            tokens_per_s
    done | median
}
lcpp() {  # GGUF THREADS: "pp tg" tokens/s from llama-bench (its own repetitions), the better of
    # its weights read in place from the mapped file (its default) and copied into memory (-mmp 0,
    # as bench_model copies bd's): on this VM the page cache has read at 9.5-17 GB/s while
    # anonymous memory held 15-18, so either can be llama.cpp's faster setting on a given day
    [ -n "$LLAMA_BIN" ] || { echo "- -"; return; }
    "$LLAMA_BIN/llama-bench" -m "$1" -p "$([ "$PROMPT" = 0 ] && echo 0 || echo 512)" -n 128 -t "$2" -tgb "$2,$2" -mmp 1,0 -r "$REPS" -o csv 2>/dev/null >lb.csv || { echo "failed failed"; return; }
    $PY -c 'import csv, sys
pp = tg = 0.0
for r in csv.DictReader(open(sys.argv[1])):
    if int(r["n_prompt"]) > 0: pp = max(pp, float(r["avg_ts"]))
    else: tg = max(tg, float(r["avg_ts"]))
print("%.1f %.1f" % (pp, tg))' lb.csv
}

echo "| format (bd / llama.cpp) | threads | prompt bd | prompt llama.cpp | ratio | generation bd | generation llama.cpp | ratio | bandwidth bd / llama.cpp | bd-eval prompt | bd-teacher-gen |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for f in "f32 $M f32.gguf" "q2_K q2_K.bdz q2_K.gguf" "q2_K+int8-acts q2_K_i8.bdz q2_K.gguf" "q4_K q4_K.bdz q4_K.gguf" \
    "q4_K+int8-acts q4_K_i8.bdz q4_K.gguf" "tq2/IQ2_BN tq2.bdz iq2_bn.gguf"; do
    set -- $f
    for t in 1 2; do
        set -- $1 $2 $3 $(bd_bench "$2" $t) $(lcpp "$3" $t) $(tool_prompt "$2" $t) $(tool_gen "$2" $t)
        bw=$(echo $BW | cut -d' ' -f$t)  # $6: bytes per token
        echo "| $1 | $t | $4 | $7 | $(ratio "$4" "$7") | $5 | $8 | $(ratio "$5" "$8") | $(share "$6" "$5" "$bw") / $(share "$6" "$8" "$bw") | $9 | ${10} |"
    done
done
