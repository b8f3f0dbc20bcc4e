# What bench/side_by_side.sh and bench/batched.sh share (sourced after they set HERE): the
# environment's defaults, the helpers that summarise runs, and the models, made once in WORK: a
# random Llama with the Llama 2 32,000-token vocabulary and a tied f32 embedding/head, of
# SHAPE 110m (dim 768, 12 layers, 12 heads, ffn 2048) or 7b2 (a 7B-shaped layer stack: dim 4096,
# 2 layers, 32 heads, ffn 11008), as Hugging Face files ($M), and its students made and exported
# by bd: f32.gguf; q2_K / q4_K packed (f32 head) with f32 activations and with int8 ones (_i8),
# their GGUF files; tq2 (int8 activations) and its IQ2_BN GGUF.
SHAPE=${SHAPE:-110m}
case $SHAPE in
110m) M=m110 DIMS="768 2048 12 12" ;;
7b2) M=m7b2 DIMS="4096 11008 2 32" ;;
*) echo "SHAPE is 110m or 7b2, not $SHAPE" >&2 && exit 2 ;;
esac
BD_BIN=${BD_BIN:-$HERE/build/bin}
BD_DATA=${BD_DATA:-$HERE/../shared/data}
LLAMA_BIN=${LLAMA_BIN:-}
REPS=${REPS:-3}
WORK=${WORK:-$HERE/build/bench/side_by_side_$SHAPE}
PY=${BD_PYTHON:-/usr/bin/python3}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
tokens_per_s() { sed -n 's/.*(\([0-9.]*\) tokens\/s.*/\1/p'; }  # from bd-teacher-gen's summary line

TOK=$BD_DATA/tokenizers/llama2-32k/tokenizer.bin
PATH=$BD_BIN:$PATH
mkdir -p "$WORK"
cd "$WORK"
[ -s $M/model.safetensors ] || $PY "$HERE/tests/cli/make_hf_model.py" $M $DIMS 32000 1 1024
[ -s text.txt ] || head -c 5000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >text.txt
[ -s f32.gguf ] || bd-pack -m $M -k "$TOK" --format gguf -q -o f32.gguf
for k in q2_K q4_K; do
    [ -s $k.bdz ] || bd-pack -m $M -k "$TOK" --quant $k --head-format f32 -q -o $k.bdz
    [ -s $k.gguf ] || bd-pack -m $k.bdz -k "$TOK" --format gguf -q -o $k.gguf
done
for k in q2_K q4_K; do  # the same weights with int8 activations (as llama.cpp's K-quant dots quantize theirs)
    [ -s ${k}_i8.bdz ] || bd-pack -m $M -k "$TOK" --quant $k --act-quant int8 --head-format f32 -q -o ${k}_i8.bdz
done
[ -s tq2.bdz ] || bd-pack -m $M -k "$TOK" --quant ternary --act-quant int8 --head-format f32 -q -o tq2.bdz
[ -s iq2_bn.gguf ] || bd-pack -m tq2.bdz -k "$TOK" --format gguf --gguf-type iq2_bn -q -o iq2_bn.gguf
