# BitNet Distillation's stage 3 from the command line: bd-qat --loss ce plus the logits term
# (--kd-weight, --kd-temp) and the attention-relation term (--ad-weight, --ad-layer,
# --ad-heads) against a --teacher that is not the student's starting point; the linear
# schedule; and every refusal in one line with no output file. The numbers of the terms are
# checked in the unit tests (test_backward.c: finite differences through the model).
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
head -c 30000 "$TXT" >"$T/tr.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/tr.bdz" "$T/tr.txt"
common="--steps 3 -b 2 -T 32 --threads 1 --lr 1e-3"
q="--quant ternary --act-quant int8"

# Stage 2 stand-in: a SubLN W1.58A8 student trained with ce and the linear schedule.
expect_ok bd-qat -m "$M/stories260K.bin" --loss ce $q --subln $common --schedule linear --warmup 1 \
    --weight-decay 0.1 --log "$T/s2.log" -o "$T/s2.bdz" "$T/tr.bdz"
# The linear schedule: warmup to the peak at step 1, then lr * (3 - t) / 2 to 0.
expect_ok bd-cat "$T/s2.log"
lrs=$(grep -o '"lr":[0-9.e-]*' "$T/out" | cut -d: -f2 | xargs printf '%.6g ')
[ "$lrs" = "0.001 0.001 0.0005 " ] || fail "linear schedule: lrs $lrs"

# Stage 3: the student (from s2) against the full-precision teacher, both terms.
expect_ok bd-qat -m "$T/s2.bdz" --teacher "$M/stories260K.bin" --loss ce --kd-weight 1 --kd-temp 5 \
    --ad-weight 100 --ad-layer -1 $common --verbosity 2 -o "$T/s3.bdz" "$T/tr.bdz"
expect_err_contains "student layer 4, teacher layer 4, 4 relation heads"
# ce alone with --teacher is a usage error (no term uses the teacher); without it, a ce run.
expect_fail 2 bd-qat -m "$T/s2.bdz" --teacher "$M/stories260K.bin" --loss ce $common -o "$T/x.bdz" "$T/tr.bdz"
expect_ok bd-qat -m "$T/s2.bdz" --loss ce $common -o "$T/ce.bdz" "$T/tr.bdz"
cmp -s "$T/s3.bdz" "$T/ce.bdz" && fail "the distillation terms changed nothing"
# Each term alone changes the result; the relation term at another layer too.
expect_ok bd-qat -m "$T/s2.bdz" --teacher "$M/stories260K.bin" --loss ce --kd-weight 1 $common -o "$T/kd.bdz" "$T/tr.bdz"
expect_ok bd-qat -m "$T/s2.bdz" --teacher "$M/stories260K.bin" --loss ce --ad-weight 100 $common -o "$T/ad.bdz" \
    "$T/tr.bdz"
expect_ok bd-qat -m "$T/s2.bdz" --teacher "$M/stories260K.bin" --loss ce --ad-weight 100 --ad-layer 0 --ad-heads 2 \
    $common -o "$T/ad0.bdz" "$T/tr.bdz"
for f in kd ad ad0; do cmp -s "$T/$f.bdz" "$T/ce.bdz" && fail "$f: the same model as ce alone"; done
cmp -s "$T/ad.bdz" "$T/ad0.bdz" && fail "--ad-layer 0 gives the last layer's result"
# The teacher defaults to --model (BitDistiller's self-distillation).
expect_ok bd-qat -m "$M/stories260K.bin" --loss ce $q --kd-weight 1 $common -o "$T/self.bdz" "$T/tr.bdz"

# Refusals: one line (usage errors add the --help hint), no output.
bad() {
    code=$1
    shift
    rm -f "$T/bad.bdz"
    expect_fail "$code" "$@" -o "$T/bad.bdz" "$T/tr.bdz"
    [ "$code" = 2 ] || [ "$(wc -l <"$T/err")" = 1 ] || fail "more than one line: $(cat "$T/err")"
    [ ! -e "$T/bad.bdz" ] || fail "an output was left: $*"
}
tm="--teacher $M/stories260K.bin"
bad 1 bd-qat -m "$T/s2.bdz" $tm --loss ce --ad-weight 1 --ad-layer 5 $common
expect_err_contains "--ad-layer 5: the student has layers 0..4"
bad 1 bd-qat -m "$T/s2.bdz" $tm --loss ce --ad-weight 1 --ad-layer -6 $common
bad 1 bd-qat -m "$T/s2.bdz" $tm --loss ce --ad-weight 1 --ad-layer 0:9 $common
expect_err_contains "the teacher has layers 0..4"
bad 1 bd-qat -m "$T/s2.bdz" $tm --loss ce --ad-weight 1 --ad-heads 3 $common
expect_err_contains "--ad-heads 3 does not divide"
bad 2 bd-qat -m "$T/s2.bdz" $tm --loss fkl --kd-weight 1 $common
expect_err_contains "add to --loss ce"
bad 2 bd-qat -m "$T/s2.bdz" $tm --loss ce --kd-temp 2 $common
bad 2 bd-qat -m "$T/s2.bdz" $tm --loss ce --ad-layer 1 $common
bad 2 bd-qat -m "$T/s2.bdz" $tm --loss ce --ad-heads 2 $common
bad 2 bd-qat -m "$T/s2.bdz" $tm --loss ce --kd-weight 1 --reduction seqsum $common
bad 2 bd-qat -m "$T/s2.bdz" $tm --loss ce --ad-weight 1 --ad-layer x $common
bad 2 bd-qat -m "$T/s2.bdz" $tm --loss ce --kd-weight -1 $common
bad 2 bd-qat -m "$T/s2.bdz" $tm --loss ce --schedule steps $common
bad 1 bd-qat -m "$T/s2.bdz" --teacher "$T/none.bin" --loss ce --kd-weight 1 $common
# A teacher that comes with another tokenizer of the same size.
mkdir "$T/other"
cp "$M/stories260K.bin" "$T/other/"
cp "$M/tok512.bin" "$T/other/tok512.bin"
printf '\001' | dd of="$T/other/tok512.bin" bs=1 seek=5 conv=notrunc 2>/dev/null  # one score's byte
bad 1 bd-qat -m "$M/stories260K.bin" $q --teacher "$T/other/stories260K.bin" --loss ce --kd-weight 1 $common
expect_err_contains "comes with another tokenizer"
# A student resumed with SubLN settings it was not trained with.
expect_ok bd-qat -m "$M/stories260K.bin" --loss ce $q $common --save-every 3 -o "$T/nos.bdz" "$T/tr.bdz"
cp "$T/nos.bdz" "$T/nos.keep"
expect_fail 1 bd-qat -m "$M/stories260K.bin" --loss ce $q --subln --resume --steps 4 -b 2 -T 32 --threads 1 \
    --lr 1e-3 --save-every 3 -o "$T/nos.bdz" "$T/tr.bdz"
expect_err_contains "holds a model without SubLN"
cmp -s "$T/nos.bdz" "$T/nos.keep" || fail "a refused resume changed the output"
exit 0
