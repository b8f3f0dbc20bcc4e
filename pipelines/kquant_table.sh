#!/bin/sh
# llama.cpp's K-quants in bd: post-training rounding, clip search and QAT of a model whose rows
# hold 256-weight super-blocks, exported to GGUF byte for byte, against llama.cpp's own
# llama-quantize of the same model. stories260K's rows (64, 172) hold none, so the model is
# "tiny256": a 256-wide, 2-layer Llama (ffn 512, 4 heads, tok512 vocabulary) that bd trains from
# random weights on 6,000 stories260K samples (bd-teacher-gen), evaluated on the last 60 KB of
# tinystories_val_a.
#   sh pipelines/kquant_table.sh OUT        (OUT holds every file; a file that exists is reused,
#                                            so delete OUT to rerun from scratch)
# Environment: BD_BIN (default build/bin), BD_DATA, THREADS (2), QAT_STEPS (200),
# LLAMA_BIN: an ik_llama.cpp or llama.cpp build's bin directory (llama-quantize,
# llama-perplexity); without it the llama.cpp columns are left empty.
# Prints a Markdown table: format, bits/weight, GGUF bytes, bd-eval perplexity (256-token
# windows, every position scored), and llama-perplexity's on the same GGUF file (-c 256, the
# second half of each window scored, as llama.cpp does).
set -eu
OUT=${1:?usage: kquant_table.sh OUT}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BD_BIN=${BD_BIN:-$HERE/build/bin}
BD_DATA=${BD_DATA:-$HERE/../shared/data}
THREADS=${THREADS:-2}
QAT_STEPS=${QAT_STEPS:-200}
LLAMA_BIN=${LLAMA_BIN:-}
PY=${BD_PYTHON:-/usr/bin/python3}
M=$BD_DATA/models/stories260K
TOK=$M/tok512.bin
PATH=$BD_BIN:$PATH
mkdir -p "$OUT"
cd "$OUT"
step() { echo "kquant_table: $*" >&2; }

# The model: trained by bd from random weights on stories260K's samples.
[ -s samples.bdz ] || { step "samples"; bd-teacher-gen -m "$M/stories260K.bin" -n 6000 --temperature 1.0 -K 256 -b 32 --threads "$THREADS" -o samples.bdz; }
[ -d hf ] || $PY "$HERE/tests/cli/make_hf_model.py" hf 256 512 2 4 512 11
[ -s ev.txt ] || tail -c 60000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >ev.txt
[ -s ev.bdz ] || bd-tokenize -k "$TOK" --whole -o ev.bdz ev.txt
[ -s fp.bdz ] || { step "training tiny256"; bd-qat -m hf --data samples.bdz --loss ce -b 16 -T 256 --steps 600 --lr 2e-3 --warmup 30 --threads "$THREADS" --eval ev.bdz -o fp.bdz; }
# BitDistiller's data: the model's own generations.
[ -s self.bdz ] || { step "self-generated data"; bd-teacher-gen -m fp.bdz -k "$TOK" -n 1024 --temperature 0.7 -K 256 -b 32 --threads "$THREADS" -o self.bdz; }
[ -s calib.bdz ] || bd-tokenize -k "$TOK" -o calib.bdz "$BD_DATA/eval/tinystories/tinystories_val_a.txt"

gguf() {  # gguf MODEL OUT.gguf [bd-pack options]: export (reused when present)
    src=$1 dst=$2
    shift 2
    [ -s "$dst" ] || bd-pack -m "$src" -k "$TOK" --format gguf -q "$@" -o "$dst"
}
bd_ppl() { bd-eval -m "$1" -T 256 --json --threads "$THREADS" ev.bdz | sed 's/.*"ppl":\([0-9.]*\).*/\1/'; }
lcpp_ppl() {
    [ -n "$LLAMA_BIN" ] || { echo ""; return; }
    "$LLAMA_BIN/llama-perplexity" -m "$1" -f ev.txt -c 256 -t "$THREADS" >"$1.ppl.log" 2>&1 || { echo "failed"; return; }
    sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p; s/.*PPL over [0-9]* chunks for n_ctx=[0-9]* = \([0-9.]*\).*/\1/p' "$1.ppl.log" | tail -n 1
}
row() {  # row LABEL BITS GGUF BD-MODEL
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$(wc -c <"$3" | tr -d ' ')" "$(bd_ppl "$4")" "$(lcpp_ppl "$3")"
}

gguf fp.bdz fp.gguf --gguf-type f32
for k in q2_K q3_K q4_K; do
    # Round to nearest with bd's scale rule; with bd-clipsearch ranges first; QAT (CAKLD on the
    # self-generated data, the BitDistiller recipe).
    [ -s rtn_$k.bdz ] || bd-pack -m fp.bdz --quant $k --head-format f32 -q -o rtn_$k.bdz
    gguf rtn_$k.bdz rtn_$k.gguf
    [ -s clip_$k.bdz ] || { step "clip search $k"; bd-clipsearch -m fp.bdz --calib calib.bdz --quant $k -T 256 --threads "$THREADS" -q -o clip_$k.bdz; }
    [ -s rtnclip_$k.bdz ] || bd-pack -m fp.bdz --quant $k --clip clip_$k.bdz --head-format f32 -q -o rtnclip_$k.bdz
    gguf rtnclip_$k.bdz rtnclip_$k.gguf
    [ -s qat_$k.bdz ] || { step "QAT $k"; bd-qat -m fp.bdz --data self.bdz --quant $k --clip clip_$k.bdz --loss cakld -b 8 -T 256 --steps "$QAT_STEPS" --lr 2e-4 --schedule constant --threads "$THREADS" -q -o qat_$k.bdz; }
    gguf qat_$k.bdz qat_$k.gguf
    if [ -n "$LLAMA_BIN" ] && [ ! -s lq_$k.gguf ]; then
        "$LLAMA_BIN/llama-quantize" --pure --output-tensor-type f32 --token-embedding-type f32 fp.gguf lq_$k.gguf "$(echo $k | tr a-z A-Z)" >lq_$k.log 2>&1
    fi
done

echo "| model | bits/weight (linears) | GGUF bytes | bd-eval PPL | llama-perplexity PPL |"
echo "|---|---|---|---|---|"
row "full precision (f32)" 32 fp.gguf fp.bdz
for k in q2_K q3_K q4_K; do
    b=$(case $k in q2_K) echo 2.625 ;; q3_K) echo 3.4375 ;; q4_K) echo 4.5 ;; esac)
    row "$k RTN (bd's scale rule)" $b rtn_$k.gguf rtn_$k.bdz
    row "$k clip search + RTN" $b rtnclip_$k.gguf rtnclip_$k.bdz
    row "$k QAT (CAKLD, $QAT_STEPS steps)" $b qat_$k.gguf qat_$k.bdz
    if [ -s lq_$k.gguf ]; then
        # bd reads GGUF too where it can: then the same file's perplexity in bd.
        p=$(bd_ppl lq_$k.gguf 2>/dev/null || true)
        printf '| %s | %s | %s | %s | %s |\n' "$k llama-quantize --pure" $b "$(wc -c <lq_$k.gguf | tr -d ' ')" "$p" "$(lcpp_ppl lq_$k.gguf)"
    fi
done
