#!/bin/sh
# The demo's table from the files the demo graph made in OUT. Usage: demo_table.sh OUT MODEL "RUNS"
set -eu
out=$1; model=$2; runs=$3
num() { sed "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/" "$1"; }
echo "| model | bits | perplexity | HellaSwag acc_norm | size (bytes) | generation tokens/s |"
echo "|---|---|---|---|---|---|"
for r in $runs; do
    case $r in
        fp) name="full precision"; bits=32; size=$(wc -c <"$model"); gen=$(cat "$out/gen_fp.txt") ;;
        rtn_*) name="RTN"; bits=$(echo "$r" | sed 's/rtn_int\([0-9]*\)_.*/\1/'); size=$(wc -c <"$out/packed_rtn_int$bits.bdz"); gen="-" ;;
        clip_*) name="clip + RTN"; bits=$(echo "$r" | sed 's/clip_int\([0-9]*\)_.*/\1/'); size=$(wc -c <"$out/packed_rtn_int$bits.bdz"); gen="-" ;;
        qat_*) tag=${r#qat_}; name="BitDistiller (CAKLD)"; bits=$(echo "$tag" | sed 's/int\([0-9]*\)_.*/\1/');
               size=$(wc -c <"$out/packed_$tag.bdz"); gen=$(cat "$out/gen_$tag.txt") ;;
    esac
    ppl=$(num "$out/eval_$r.json" ppl)
    hs=$(num "$out/hs_$r.json" acc_norm)
    printf '| %s | %s | %.3f | %.4f | %s | %s |\n' "$name" "$bits" "$ppl" "$hs" "$size" "$gen"
done
