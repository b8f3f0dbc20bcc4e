# bd-qat --optim-dtype bf16: AdamW's moments stored in bf16. A short 2-bit QAT run on real text
# ends within a stated tolerance of the same run with f32 moments (and not bit-identical to it:
# the rounding happens); the checkpoint records the moments' dtype and stores them as bf16; a
# resume with the other --optim-dtype converts them (with a warning); bad values are refused.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
head -c 60000 "$TXT" >"$T/tr.txt"
tail -c 20000 "$TXT" >"$T/ev.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/tr.bdz" "$T/tr.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/ev.bdz" "$T/ev.txt"

# f32 against bf16 moments: 100 steps of int 2-bit group 32 QAT at lr 1e-3. Measured (seeds 1-3):
# held-out loss 2.870/2.870, 2.869/2.878, 2.868/2.855, the mean training loss of the last 20 steps
# within 0.8%. Tolerances: 0.04 on the held-out loss, 2% on the last 20 steps' mean loss.
for dt in f32 bf16; do
    expect_ok bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/$dt.bdz" --lr 1e-3 --steps 100 -T 64 -b 8 \
        --quant int --bits 2 --group 32 --eval "$T/ev.bdz" --threads 1 --seed 2 --optim-dtype $dt \
        --log "$T/$dt.log" --verbosity 2 "$T/tr.bdz"
    expect_err_contains "AdamW moments"
    sed -n 's/.*final eval loss \([0-9.]*\).*/\1/p' "$T/err" >"$T/$dt.eval"
    bd-cat "$T/$dt.log" | tail -n 20 | sed 's/.*"loss":\([0-9.e+-]*\),.*/\1/' |
        awk '{ s += $1 } END { printf "%.6f\n", s / NR }' >"$T/$dt.mean"
done
grep -q "AdamW moments [0-9]* MB (bf16)" "$T/err" || fail "the bf16 run does not report bf16 moments"
ef=$(cat "$T/f32.eval") eb=$(cat "$T/bf16.eval") mf=$(cat "$T/f32.mean") mb=$(cat "$T/bf16.mean")
[ -n "$ef" ] && [ -n "$eb" ] || fail "no final eval loss"
within "$ef" "$eb" 0.04 || fail "held-out loss f32 $ef, bf16 $eb: differ by more than 0.04"
within "$mb" "$mf" "$(awk -v m="$mf" 'BEGIN { print 0.02 * m }')" ||
    fail "last 20 steps' mean loss f32 $mf, bf16 $mb: differ by more than 2%"
! cmp -s "$T/f32.bdz" "$T/bf16.bdz" || fail "bf16 moments gave the f32 run's model bit for bit"

# The checkpoint: "moments_dtype" and bf16 records, half the bytes of f32 moments.
mkdir "$T/c"
expect_ok bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/c/m.bdz" --steps 2 -T 32 -b 2 --save-every 2 \
    --optim-dtype bf16 "$T/tr.bdz"
expect_ok bd-cat "$T/c/m.bdz.state"
expect_out_contains '"moments_dtype":"bf16"'
n=$(grep -c '"name":"adam_[mv]","dtype":"bf16"' "$T/out")
[ "$n" = 2 ] || fail "expected 2 bf16 moment records, got $n"
# Resuming with f32 moments converts them (bf16 -> f32 is exact), and back.
expect_ok bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/c/m.bdz" --steps 4 -T 32 -b 2 --save-every 2 \
    --resume "$T/tr.bdz"
expect_err_contains "holds bf16 moments; continuing with --optim-dtype f32"
expect_ok bd-cat "$T/c/m.bdz.state"
expect_out_contains '"moments_dtype":"f32"'
expect_ok bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/c/m.bdz" --steps 6 -T 32 -b 2 --save-every 2 \
    --resume --optim-dtype bf16 "$T/tr.bdz"
expect_err_contains "holds f32 moments; continuing with --optim-dtype bf16"

# Bad input.
expect_fail 2 bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/x.bdz" --optim-dtype f16 "$T/tr.bdz"
expect_err_contains "is not f32 or bf16"
[ ! -e "$T/x.bdz" ] || fail "output left behind"
exit 0
