#!/bin/sh
# Assembles results.md and results.csv in OUT from every eval_*.bdz (bd.eval streams) there.
# Usage: pipelines/results.sh OUT BD_BIN
set -eu
out=$1
bin=$2
mkdir -p "$out"
csv=$out/results.csv
md=$out/results.md
echo "run,quant,bits,group,ppl,nll,tokens,model_bytes" >"$csv"
for f in "$out"/eval_*.bdz; do
    [ -e "$f" ] || continue
    run=$(basename "$f" .bdz | sed 's/^eval_//')
    "$bin/bd-cat" "$f" >"$out/.rows" || { echo "results: $f is not a valid bd.eval stream" >&2; exit 1; }
    field() { grep "\"metric\":\"$1\"" "$out/.rows" | sed "s/.*\"$2\":\([^,}]*\).*/\1/" | tr -d '"'; }
    quant=$(head -n 1 "$out/.rows" | sed 's/.*"quant":"\([^"]*\)".*/\1/')
    bits=$(field ppl bits); group=$(field ppl group); ppl=$(field ppl value); nll=$(field nll value); n=$(field ppl n)
    # Size of what would be shipped: the packed file for QAT runs, else nothing measured.
    packed=$(echo "$f" | sed 's/eval_qat_/packed_/')
    size=""
    [ "$packed" != "$f" ] && [ -e "$packed" ] && size=$(wc -c <"$packed" | tr -d ' ')
    echo "$run,$quant,$bits,$group,$ppl,$nll,$n,$size" >>"$csv"
done
rm -f "$out/.rows"
{
    echo "| run | quant | bits | group | perplexity | nll | tokens | packed bytes |"
    echo "|---|---|---|---|---|---|---|---|"
    tail -n +2 "$csv" | sort -t, -k3,3nr -k1,1 | awk -F, '{ printf "| %s | %s | %s | %s | %.3f | %.4f | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
} >"$md"
cat "$md"
