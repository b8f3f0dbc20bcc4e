#!/bin/sh
# Fingerprint of what bd computes, for refactors that must change nothing a user sees: runs
# every stage on the shared stories260K with one thread (deterministic) and prints one line
# per result: evaluation numbers to every printed digit and hashes of the records of every
# stream written (headers hold argv and paths, so they are left out). Run it before and
# after a change and diff the two outputs: they must be identical.
#   sh tests/regress/fingerprint.sh BIN_DIR [WORK_DIR] > before.txt
set -eu
B=$(cd "${1:?usage: fingerprint.sh BIN_DIR [WORK_DIR]}" && pwd)
W=${2:-$(mktemp -d)}
mkdir -p "$W"
D=$(cd "${BD_DATA:-$(dirname "$0")/../../../shared/data}" && pwd)
M=$D/models/stories260K
V=$D/eval/tinystories/tinystories_val_a.txt
HS=$D/eval/hellaswag/hellaswag_val.txt.bz2
[ -e "$HS" ] || HS=$(ls "$D"/eval/hellaswag/* | head -1)
cd "$W"
export OPENBLAS_NUM_THREADS=1
t="--threads 1"
# Packed models with an f32 head, as bd-pack wrote them before --head-format (whose default is
# q8 since): the same fingerprint from binaries before and after it.
hf=
"$B/bd-pack" --help 2>&1 | grep -q -- --head-format && hf="--head-format f32"
# Hash of a stream's records and trailer (every tensor's data in full).
h() { printf '%s %s\n' "$1" "$("$B/bd-cat" --full "$2" | tail -n +2 | sha256sum | cut -c1-16)"; }
# The numbers of a --json line, without timings.
# (bd-eval's label of what it measured, from "model" on, holds paths: left out too)
j() { printf '%s %s\n' "$1" "$(sed 's/,"seconds":[0-9.e+-]*//; s/,"tokens_per_s":[0-9.e+-]*//; s/,"items_per_s":[0-9.e+-]*//; s/,"model":.*/}/')"; }

head -c 100000 "$V" >val.txt
"$B/bd-tokenize" --tokenizer "$M/tok512.bin" --whole val.txt -o val.bdz
h tokens val.bdz
"$B/bd-teacher-gen" --model "$M/stories260K.bin" -n 128 --max-new 128 --seed 1 --batch 16 $t -q -o samples.bdz
h samples samples.bdz
"$B/bd-teacher-gen" --model "$M/stories260K.bin" -n 32 --max-new 64 --seed 2 --batch 8 --logits 8 $t -q -o samples_lp.bdz
h samples_logits samples_lp.bdz
"$B/bd-teacher-gen" --model "$M/stories260K.bin" -n 4 --max-new 40 --seed 3 --batch 1 --unpadded $t -q -o samples_b1.bdz
h samples_unpadded samples_b1.bdz
"$B/bd-eval" --model "$M/stories260K.bin" -T 256 --json $t val.bdz | j fp
"$B/bd-eval" --model "$M/stories260K.bin" -T 256 --stride 128 --json $t val.bdz | j fp_stride
"$B/bd-eval" --model "$M/stories260K.bin" --generate 60 $t | sha256sum | cut -c1-16 | sed 's/^/greedy /'
"$B/bd-eval" --model "$M/stories260K.bin" --task "$HS" --limit 40 --json $t | j hellaswag_fp

# Training engine alone: CE with accumulation and recomputation.
"$B/bd-qat" --model "$M/stories260K.bin" --loss ce --steps 6 -T 64 -b 2 --grad-accum 2 --recompute \
    --schedule cosine --warmup 2 --seed 5 $t -q -o ce.bdz val.bdz
h train_ce ce.bdz

for spec in "int 2 32" "int 3 64" "nf3 3 32" "sym 4 32" "ternary 2 128" "r2q 2 32"; do
    set -- $spec
    q="--quant $1 --bits $2 --group $3"
    n="$1$2_g$3"
    "$B/bd-eval" --model "$M/stories260K.bin" $q -T 256 --json $t val.bdz | j "rtn_$n"
    clip=
    if [ "$1" = int ] || [ "$1" = nf3 ]; then
        "$B/bd-clipsearch" --model "$M/stories260K.bin" --calib samples.bdz $q $t -q -o "clip_$n.bdz"
        h "clip_$n" "clip_$n.bdz"
        "$B/bd-eval" --model "$M/stories260K.bin" $q --clip "clip_$n.bdz" -T 256 --json $t val.bdz | j "cliprtn_$n"
        clip="--clip clip_$n.bdz"
    fi
    "$B/bd-qat" --model "$M/stories260K.bin" --data samples.bdz $q $clip --loss cakld -b 4 -T 128 --steps 12 \
        --lr 1e-3 --seed 1 $t -q -o "student_$n.bdz"
    h "student_$n" "student_$n.bdz"
    "$B/bd-eval" --model "student_$n.bdz" -T 256 --json $t val.bdz | j "qat_$n"
    "$B/bd-pack" --model "student_$n.bdz" $hf $t -q -o "packed_$n.bdz"
    h "packed_$n" "packed_$n.bdz"
    "$B/bd-eval" --model "packed_$n.bdz" -T 256 --json $t val.bdz | j "packed_$n"
    "$B/bd-eval" --model "packed_$n.bdz" -T 256 --act int8 --json $t val.bdz | j "packed_int8_$n"
    "$B/bd-teacher-gen" --model "packed_$n.bdz" --tokenizer "$M/tok512.bin" -n 4 --max-new 40 --seed 4 --batch 2 $t -q \
        -o "gen_$n.bdz"
    h "gen_packed_$n" "gen_$n.bdz"
done
for loss in fkl rkl jsd ce; do
    "$B/bd-qat" --model "$M/stories260K.bin" --data samples.bdz --quant int --bits 2 --group 32 --loss $loss -b 4 -T 128 \
        --steps 6 --lr 1e-3 --seed 1 $t -q -o "loss_$loss.bdz"
    h "loss_$loss" "loss_$loss.bdz"
done
"$B/bd-qat" --model "$M/stories260K.bin" --data samples_lp.bdz --teacher-logits --quant int --bits 2 --group 32 \
    --loss cakld -b 4 -T 64 --steps 6 --lr 1e-3 --seed 1 $t -q -o tl.bdz
h teacher_logits tl.bdz
"$B/bd-eval" --model student_int2_g32.bdz --tokenizer "$M/tok512.bin" --task "$HS" --limit 40 --json $t | j hellaswag_int2
"$B/bd-pack" --model "$M/stories260K.bin" --format gguf -k "$M/tok512.bin" $t -q -o fp.gguf
printf 'gguf_f32 %s\n' "$(sha256sum <fp.gguf | cut -c1-16)"
"$B/bd-pack" --model student_ternary2_g128.bdz --format gguf -k "$M/tok512.bin" $t -q -o t.gguf 2>/dev/null &&
    printf 'gguf_ternary %s\n' "$(sha256sum <t.gguf | cut -c1-16)" || echo "gguf_ternary refused"
for simd in avx2 scalar; do
    for n in int2_g32 nf33_g32 ternary2_g128; do
        BD_SIMD=$simd "$B/bd-eval" --model "packed_$n.bdz" -T 256 --act int8 --json $t val.bdz | j "packed_int8_${n}_$simd"
        BD_SIMD=$simd "$B/bd-eval" --model "packed_$n.bdz" -T 256 --json $t val.bdz | j "packed_${n}_$simd"
    done
done
"$B/bd-eval" --model "$M/stories260K.bin" -T 256 --json --threads 2 val.bdz | j fp_2threads
"$B/bd-qat" --model "$M/stories260K.bin" --data samples.bdz --quant int --bits 2 --group 32 --loss cakld -b 4 -T 128 \
    --steps 4 --lr 1e-3 --seed 1 --threads 2 -q -o t2.bdz
h student_2threads t2.bdz
