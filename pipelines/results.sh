#!/bin/sh
# Assembles results.md and results.csv in OUT from every eval_RUN.bdz (bd.eval streams) there:
# what was measured (from the stream's header: the model, its content hash, its quantization),
# perplexity, the task accuracy of task_RUN.bdz beside it, a QAT student's training settings
# (loss, learning rate, steps, teacher samples: from the student's own header, bd-qat's argv),
# and the size of what would be shipped (a student's packed_TAG.bdz, a baseline's
# packed_rtn_Q.bdz, the full-precision model's files). Needs jq.
# Usage: pipelines/results.sh OUT BD_BIN
set -eu
out=$1
bin=$2
mkdir -p "$out"
csv=$out/results.csv
md=$out/results.md
rows=$out/.rows.$$
trap 'rm -f "$rows"' EXIT
echo "run,method,quant,bits,group,loss,lr,steps,samples,ppl,nll,tokens,task,acc,acc_norm,task_items,model_bytes,model,model_hash" >"$csv.tmp"
# The value after option $1 in the JSON array $2 of argv ("" if absent).
opt() { printf '%s\n' "$2" | jq -r --arg o "$1" 'index($o) as $i | if $i then .[$i + 1] else "" end'; }
# Bytes of a model: a file, or a Hugging Face directory's config.json and safetensors.
bytes() {
    if [ -d "$1" ]; then cat "$1"/config.json "$1"/*.safetensors | wc -c | tr -d ' '
    elif [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; fi
}
for f in "$out"/eval_*.bdz; do
    [ -e "$f" ] || continue
    run=$(basename "$f" .bdz | sed 's/^eval_//')
    "$bin/bd-cat" "$f" >"$rows" || { echo "results: $f is not a valid bd.eval stream" >&2; exit 1; }
    head -n 1 "$rows" | jq -e '.model_hash' >/dev/null 2>&1 ||
        { echo "results: $f has no model_hash (made by an older bd-eval); remove it and rerun" >&2; exit 1; }
    hdr=$(head -n 1 "$rows")
    h() { printf '%s\n' "$hdr" | jq -r "$1"; }
    model=$(h .model); hash=$(h .model_hash); quant=$(h .quant); bits=$(h .bits); group=$(h .group)
    ppl=$(grep '"metric":"ppl"' "$rows" | jq -r .value)
    nll=$(grep '"metric":"nll"' "$rows" | jq -r .value)
    n=$(grep '"metric":"ppl"' "$rows" | jq -r .n)
    loss=""; lr=""; steps=""; samples=""; size=""
    case $run in
        fp) method="full precision"; size=$(bytes "$model") ;;
        rtn_*) method="RTN"; q=${run#rtn_} ;;
        clip_*) method="clip + RTN"; q=${run#clip_} ;;
        qat_*) method="BitDistiller" ;;
        *) method="" ;;
    esac
    case $run in rtn_* | clip_*) [ -e "$out/packed_rtn_$q.bdz" ] && size=$(bytes "$out/packed_rtn_$q.bdz") ;; esac
    # A student made by bd-qat: its training settings from its own header.
    if [ -f "$model" ] && argv=$("$bin/bd-cat" --header "$model" 2>/dev/null | jq -c 'select(.producer.tool == "bd-qat") | .producer.argv') &&
        [ -n "$argv" ]; then
        loss=$(opt --loss "$argv"); lr=$(opt --lr "$argv"); steps=$(opt --steps "$argv")
        [ -n "$lr" ] || lr="default"
        data=$(opt --data "$argv")
        [ -n "$data" ] && [ -f "$data" ] && samples=$("$bin/bd-cat" --header "$data" | jq -r '.n // ""')
        packed=$out/packed_${run#qat_}.bdz
        [ "$packed" != "$out/packed_$run.bdz" ] && [ -e "$packed" ] && size=$(bytes "$packed")
    fi
    task=""; acc=""; acc_norm=""; items=""
    if [ -e "$out/task_$run.bdz" ]; then
        "$bin/bd-cat" "$out/task_$run.bdz" >"$rows" || { echo "results: $out/task_$run.bdz is not a valid bd.eval stream" >&2; exit 1; }
        task=$(head -n 1 "$rows" | jq -r '.task')
        acc=$(grep '"metric":"acc"' "$rows" | jq -r .value)
        acc_norm=$(grep '"metric":"acc_norm"' "$rows" | jq -r .value)
        items=$(grep '"metric":"acc"' "$rows" | jq -r .n)
    fi
    echo "$run,$method,$quant,$bits,$group,$loss,$lr,$steps,$samples,$ppl,$nll,$n,$task,$acc,$acc_norm,$items,$size,$model,$hash" >>"$csv.tmp"
done
mv "$csv.tmp" "$csv"
{
    echo "| run | method | quant | bits | group | loss | lr | steps | samples | perplexity | nll | tokens | task | acc | acc_norm | items | size (bytes) | model hash |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    tail -n +2 "$csv" | sort -t, -k4,4nr -k1,1 | awk -F, '
        function num(v, fmt) { return v == "" ? "" : sprintf(fmt, v) }
        { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.3f | %.4f | %s | %s | %s | %s | %s | %s | %s |\n",
                 $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, num($14, "%.4f"), num($15, "%.4f"), $16, $17, $19 }'
} >"$md"
cat "$md"
