#!/bin/sh
# Writes the real files under BD_DATA as inputs of the fuzz targets, framed as each target
# expects (see tests/fuzz/fuzz_*.c), into OUT/<target>/. Used as extra seeds by `make fuzz`
# and replayed by `make test`; never copied into the repository.
#   sh tests/fuzz/real_seeds.sh OUT
set -eu
OUT=${1:?usage: real_seeds.sh OUT}
D=${BD_DATA:-../shared/data}
M=$D/models/stories260K
mkdir -p "$OUT/llama2c" "$OUT/tokenizer_bin" "$OUT/task"
cp "$M/stories260K.bin" "$OUT/llama2c/stories260K.bin"
cp "$M/tok512.bin" "$OUT/tokenizer_bin/tok512.bin"
cp "$D/tokenizers/llama2-32k/tokenizer.bin" "$OUT/tokenizer_bin/llama2-32k.bin"
# task: a format byte (0 auto, 1 hellaswag, 2 piqa, 3 jsonl), the task, "\0BD\0", labels.
{ printf '\002'; cat "$D/eval/piqa/dev.jsonl"; printf '\000BD\000'; cat "$D/eval/piqa/dev-labels.lst"; } >"$OUT/task/piqa"
{ printf '\001'; cat "$D/eval/hellaswag/hellaswag_val_full.txt.bz2"; } >"$OUT/task/hellaswag.bz2"
