# bd-qat as BitDistiller: a 2-bit student distilled (CAKLD) from the teacher's own samples
# beats round-to-nearest by far; the student carries its spec; bad combinations fail.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
head -c 60000 "$TXT" >"$T/val.txt"
bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/val.bdz" "$T/val.txt" || fail "tokenize"
bd-teacher-gen --model "$M/stories260K.bin" -n 64 --max-new 128 --seed 3 --batch 16 -o "$T/samples.bdz" 2>/dev/null || fail "teacher-gen"
expect_ok bd-clipsearch --model "$M/stories260K.bin" --calib "$T/samples.bdz" --bits 2 --group 32 -o "$T/clip.bdz"
expect_ok bd-qat --model "$M/stories260K.bin" --data "$T/samples.bdz" --quant int --bits 2 --group 32 \
    --clip "$T/clip.bdz" --loss cakld -b 8 -T 128 --steps 30 --lr 2e-3 --schedule constant --threads 1 \
    --eval "$T/val.bdz" --eval-every 15 --keep-best --log "$T/log.bdz" -o "$T/student.bdz"
[ -s "$T/student.bdz" ] && [ -s "$T/student.bdz.best" ] || fail "no student or no best checkpoint"
expect_ok bd-cat --check --schema bd.metrics "$T/log.bdz"
expect_out_contains '"records":30'
# The student carries its quantization: bd-eval quantizes it on load, --latent does not.
expect_ok bd-cat --header "$T/student.bdz"
expect_out_contains '"quant":{"kind":"int","bits":2,"group":32'
expect_ok bd-eval --model "$T/student.bdz" -T 128 --json "$T/val.bdz"
expect_out_contains '"quant":"int","bits":2'
qat=$(nll)
expect_ok bd-eval --model "$T/student.bdz" --latent -T 128 --json "$T/val.bdz"
latent=$(nll)
expect_ok bd-eval --model "$M/stories260K.bin" --quant int --bits 2 --group 32 --clip "$T/clip.bdz" -T 128 --json "$T/val.bdz"
cliprtn=$(nll)
awk -v q="$qat" -v c="$cliprtn" -v l="$latent" 'BEGIN { exit !(q < c - 0.5 && q != l) }' ||
    fail "QAT nll $qat is not clearly below clip+RTN $cliprtn (latent $latent)"
# Distilling from stored top-K teacher log-probabilities instead of running the teacher.
bd-teacher-gen --model "$M/stories260K.bin" -n 64 --max-new 128 --seed 3 --batch 16 --logits 16 -o "$T/samples_lp.bdz" 2>/dev/null || fail "teacher-gen --logits"
expect_ok bd-qat --model "$M/stories260K.bin" --data "$T/samples_lp.bdz" --teacher-logits --quant int --bits 2 --group 32 \
    --clip "$T/clip.bdz" --loss cakld -b 8 -T 128 --steps 30 --lr 2e-3 --schedule constant --threads 1 -o "$T/student_lp.bdz"
expect_ok bd-eval --model "$T/student_lp.bdz" --tokenizer "$M/tok512.bin" -T 128 --json "$T/val.bdz"
stored=$(nll)
awk -v q="$stored" -v c="$cliprtn" 'BEGIN { exit !(q < c - 0.5) }' || fail "stored-logits QAT nll $stored is not clearly below clip+RTN $cliprtn"
expect_fail 1 bd-qat --model "$M/stories260K.bin" --data "$T/samples.bdz" --teacher-logits --loss fkl -o "$T/x.bdz"
expect_err_contains "no teacher log-probabilities"
expect_fail 2 bd-qat --model "$M/stories260K.bin" --data "$T/samples_lp.bdz" --teacher-logits --loss ce -o "$T/x.bdz"
# Other losses run; a student cannot be quantized twice; --gamma belongs to cakld.
for loss in fkl rkl jsd ce; do
    expect_ok bd-qat --model "$M/stories260K.bin" --data "$T/samples.bdz" --quant nf3 --bits 3 --group 32 \
        --loss $loss -b 4 -T 64 --steps 2 --threads 1 --mask-prompt --reduction seqsum -o "$T/s_$loss.bdz"
done
expect_fail 1 bd-qat --model "$T/student.bdz" --data "$T/samples.bdz" --quant int --bits 2 --loss cakld -o "$T/x.bdz"
expect_err_contains "already a student"
expect_fail 2 bd-qat --model "$M/stories260K.bin" --data "$T/samples.bdz" --loss fkl --gamma 0.5 -o "$T/x.bdz"
expect_fail 2 bd-qat --model "$M/stories260K.bin" --data "$T/samples.bdz" --loss cakld --bits 2 -o "$T/x.bdz"
expect_fail 2 bd-qat --model "$M/stories260K.bin" --mask-prompt --loss ce -o "$T/x.bdz" "$T/val.bdz"
# --data takes a bd.tokens file too (as TOKENS; see bd(7)).
expect_ok bd-qat --model "$M/stories260K.bin" --data "$T/val.bdz" --loss ce --steps 2 -T 32 -o "$T/x.bdz"
rm "$T/x.bdz"
# Any other stream is refused naming the schema it should have.
expect_fail 1 bd-qat --model "$M/stories260K.bin" --data "$T/clip.bdz" --loss ce -o "$T/x.bdz"
expect_err_contains 'expected "bd.samples"'
[ ! -e "$T/x.bdz" ] || fail "output left behind"
exit 0
