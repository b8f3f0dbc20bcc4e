#!/bin/sh
# The demo's table from the files the demo graph made in OUT (eval_RUN.json perplexity,
# task_RUN.json HellaSwag, packed models, gen_*.txt speeds). Usage: demo_table.sh OUT MODEL "RUNS"
set -eu
out=$1; model=$2; runs=$3
num() { sed "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/" "$1"; }
echo "| model | bits | perplexity | HellaSwag acc_norm | size (bytes) | generation tokens/s |"
echo "|---|---|---|---|---|---|"
for r in $runs; do
    bits=$(num "$out/eval_$r.json" bits)
    case $r in
        fp) name="full precision"; size=$(wc -c <"$model"); gen=$(cat "$out/gen_fp.txt") ;;
        rtn_*) name="RTN"; size=$(wc -c <"$out/packed_$r.bdz"); gen="-" ;;
        clip_*) name="clip + RTN"; size=$(wc -c <"$out/packed_rtn_${r#clip_}.bdz"); gen="-" ;;
        qat_*) tag=${r#qat_}; name="BitDistiller ($(echo "$tag" | sed 's/.*_g[0-9]*_\([a-z]*\)_.*/\1/' | tr a-z A-Z))"
               size=$(wc -c <"$out/packed_$tag.bdz"); gen=$(cat "$out/gen_$tag.txt") ;;
    esac
    ppl=$(num "$out/eval_$r.json" ppl)
    hs=$(num "$out/task_$r.json" acc_norm)
    printf '| %s | %s | %.3f | %.4f | %s | %s |\n' "$name" "$bits" "$ppl" "$hs" "$size" "$gen"
done
