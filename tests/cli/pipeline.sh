# The Make graphs: a tiny BitDistiller run end to end, each stage a file; changing LOSS
# reruns only training and what follows; the results table lists every run.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no repository root"
head -c 30000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >"$T/val.txt"
V="OUT=$T/exp BD_BIN=$BD_BIN BD_DATA=$BD_DATA EVAL_TEXT=$T/val.txt SEQ_LEN=128 N_SAMPLES=16 MAX_NEW=64 STEPS=4 BATCH=4 TRAIN_LEN=64 THREADS=1"
# shellcheck disable=SC2086
make -s -f pipelines/bitdistiller.mk $V BITS=2 GROUP=32 LOSS=cakld >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "bitdistiller.mk failed"; }
for f in eval.bdz samples_n16_k64_s1.bdz clip_int2_g32_n16.bdz student_int2_g32_cakld_s4.bdz \
         eval_qat_int2_g32_cakld_s4.bdz packed_int2_g32_cakld_s4.bdz results.md results.csv; do
    [ -s "$T/exp/$f" ] || fail "stage output $f missing"
done
# Changing LOSS: the plan runs bd-qat, bd-eval and bd-pack, not the teacher or the clip search.
# shellcheck disable=SC2086
make -n -f pipelines/bitdistiller.mk $V BITS=2 GROUP=32 LOSS=fkl >"$T/plan" 2>&1 || fail "make -n failed"
grep -q "bd-qat" "$T/plan" && grep -q "bd-pack" "$T/plan" || fail "changing LOSS did not plan training and packing"
grep -q "bd-teacher-gen\|bd-clipsearch\|bd-tokenize" "$T/plan" && fail "changing LOSS reruns earlier stages: $(cat "$T/plan")"
# Baselines at the same settings land in the same table.
# shellcheck disable=SC2086
make -s -f pipelines/baselines.mk $V BITS=2 GROUP=32 >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "baselines.mk failed"; }
for run in fp rtn_int2_g32 clip_int2_g32 qat_int2_g32_cakld_s4; do
    grep -q "^$run," "$T/exp/results.csv" || fail "results.csv lacks $run"
done
# A calibration text instead of the samples (the swappable stage), with a user's tokenizer stage.
# shellcheck disable=SC2086
make -s -f pipelines/baselines.mk $V BITS=3 GROUP=32 CALIB_TEXT="$T/val.txt" >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "CALIB_TEXT run failed"; }
[ -s "$T/exp/calib.bdz" ] && [ -s "$T/exp/clip_int3_g32_text.bdz" ] || fail "calibration text not used"
exit 0
