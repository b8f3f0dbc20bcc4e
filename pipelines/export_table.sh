#!/bin/sh
# Which bd student formats leave bd exactly: for each format, round-to-nearest students of a
# model are exported to GGUF in the ggml type that holds them best, then read back by bd itself
# (bd-eval --model FILE.gguf); the table gives the bits per weight of bd's packed form of the
# linears (codes plus scales), the GGUF size, the
# student's perplexity in bd, the read-back file's, and whether they agree (to 1e-6 relative).
#   sh pipelines/export_table.sh OUT [TINY256]
# OUT: scratch directory. TINY256: kquant_table.sh's output directory (its fp.bdz, a 256-wide
# model whose rows hold K-quant super-blocks); without it only stories260K's rows are made.
# Perplexity: the last 60 KB of tinystories_val_a.txt, 256-token windows.
set -eu
OUT=${1:?usage: export_table.sh OUT [TINY256]}
TINY=${2:-}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BD_BIN=${BD_BIN:-$HERE/build/bin}
BD_DATA=${BD_DATA:-$HERE/../shared/data}
M=$BD_DATA/models/stories260K
TOK=$M/tok512.bin
PATH=$BD_BIN:$PATH
mkdir -p "$OUT"
cd "$OUT"
[ -s ev.txt ] || tail -c 60000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >ev.txt
[ -s ev.bdz ] || bd-tokenize -k "$TOK" --whole -q -o ev.bdz ev.txt

echo "| model | student | bits/weight in bd (linears) | GGUF type | GGUF bytes | PPL in bd | PPL of the GGUF read back | same |"
echo "|---|---|---|---|---|---|---|---|"
row() {  # MODEL NAME TAG BITS GGUF-TYPE QUANT-OPTIONS...
    model=$1 name=$2 tag=$3 bits=$4 gt=$5
    shift 5
    f=$(echo "$name.$tag.$gt" | tr ' ' '_').gguf
    [ -s "$f" ] || bd-pack -m "$model" -k "$TOK" "$@" --format gguf --gguf-type "$gt" -q -o "$f" 2>/dev/null || {
        echo "| $name | $tag | $bits | $gt | refused | | | |"
        return
    }
    a=$(bd-eval -m "$model" -k "$TOK" "$@" -T 256 --json -q ev.bdz | sed 's/.*"ppl":\([0-9.]*\).*/\1/')
    b=$(bd-eval -m "$f" -k "$TOK" -T 256 --json -q ev.bdz | sed 's/.*"ppl":\([0-9.]*\).*/\1/')
    # The same to 1e-6 relative: a Hugging Face model's q/k rows are permuted to GGUF's RoPE
    # layout and back, which moves the last digit of a sum, nothing more.
    same=$(awk -v a="$a" -v b="$b" 'BEGIN { d = (a - b) / a; if (d < 0) d = -d; print (d <= 1e-6 ? "yes" : sprintf("no (%.1e)", d)) }')
    echo "| $name | $tag | $bits | $gt | $(wc -c <"$f" | tr -d ' ') | $a | $b | $same |"
}
S=$M/stories260K.bin
row "$S" stories260K "full precision" 32 f32
row "$S" stories260K "full precision" 32 f16
row "$S" stories260K "int2 g32" 4.0 f32 --quant int --bits 2 --group 32
row "$S" stories260K "int3 g32" 5.0 f32 --quant int --bits 3 --group 32
row "$S" stories260K "nf3 g32" 5.0 f32 --quant nf3 --bits 3 --group 32
row "$S" stories260K "r2q g32" 6.0 f32 --quant r2q --bits 2 --group 32
row "$S" stories260K "ternary" 2.0 f32 --quant ternary
row "$S" stories260K "ternary" 2.0 tq2_0 --quant ternary
row "$S" stories260K "ternary" 2.0 iq2_bn --quant ternary
row "$S" stories260K "q2_K" 2.625 q2_K --quant q2_K
if [ -n "$TINY" ]; then
    F=$TINY/fp.bdz
    row "$F" tiny256 "full precision" 32 f32
    for k in q2_K q3_K q4_K; do
        b=$(case $k in q2_K) echo 2.625 ;; q3_K) echo 3.4375 ;; q4_K) echo 4.5 ;; esac)
        row "$F" tiny256 $k "$b" $k --quant $k
    done
    row "$F" tiny256 "int2 g128" 2.5 f32 --quant int --bits 2 --group 128
    row "$F" tiny256 "ternary" 2.0 tq2_0 --quant ternary
    row "$F" tiny256 "ternary" 2.0 iq2_bn --quant ternary
fi
