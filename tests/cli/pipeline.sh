# The Make graphs: a tiny BitDistiller run end to end, each stage a file under OUT (nothing in
# the repository); run again it does nothing; every setting that changes a stage reruns that
# stage and those after it, and nothing before (make -n plans); the results table lists every
# run with its settings, task accuracy and size; the demo graph reuses the same files.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no repository root"
ls -A "$ROOT" >"$T/root.before"
head -c 30000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >"$T/val.txt"
V="OUT=$T/exp BD_BIN=$BD_BIN BD_DATA=$BD_DATA EVAL_TEXT=$T/val.txt SEQ_LEN=128 N_SAMPLES=16 MAX_NEW=64 STEPS=4 BATCH=4 TRAIN_LEN=64 EVAL_EVERY=2 MC_TASK=$BD_DATA/eval/piqa/dev.jsonl MC_ITEMS=5 THREADS=1"
B="$BD_BIN/bd-"
run() { # shellcheck disable=SC2086
    make -s "$@" >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "make $*"; }
}
# plan ARGS...: the commands make -n would run (in $T/plan).
plan() { # shellcheck disable=SC2086
    make -n "$@" >"$T/plan" 2>&1 || { cat "$T/plan" >&2; fail "make -n $*"; }
}
plans() { for t in "$@"; do grep -q "^$B$t " "$T/plan" || fail "the plan lacks $t: $(cat "$T/plan")"; done; }
plans_not() { for t in "$@"; do grep -q "^$B$t " "$T/plan" && fail "the plan reruns $t: $(cat "$T/plan")"; done; return 0; }
nothing() { grep -q "$B" "$T/plan" && fail "$1: the plan is not empty: $(cat "$T/plan")"; return 0; }

# shellcheck disable=SC2086
run -f pipelines/bitdistiller.mk $V BITS=2 GROUP=32 LOSS=cakld
TAG=int2_g32_cakld_s4_lr2e-4
for f in eval.bdz samples_n16_k64_s1.bdz clip_int2_g32_n16.bdz student_$TAG.bdz log_$TAG.bdz eval_qat_$TAG.bdz \
         eval_qat_$TAG.json task_qat_$TAG.bdz task_qat_$TAG.json packed_$TAG.bdz results.md results.csv; do
    [ -s "$T/exp/$f" ] || fail "stage output $f missing"
done
bd-cat "$T/exp/log_$TAG.bdz" | grep -q '"eval_loss"' || fail "the training log has no held-out loss"

# Nothing changed: nothing to run.
# shellcheck disable=SC2086
plan -f pipelines/bitdistiller.mk $V BITS=2 GROUP=32 LOSS=cakld
nothing "the same settings again"
# Changing LOSS or LR: a new student (its name says so), its evaluations and packing; not the
# teacher's samples, the clip search or the tokenizer.
for change in LOSS=fkl LR=1e-3; do
    # shellcheck disable=SC2086
    plan -f pipelines/bitdistiller.mk $V BITS=2 GROUP=32 LOSS=cakld $change
    plans qat eval pack
    plans_not teacher-gen clipsearch tokenize
done
grep -q "student_int2_g32_cakld_s4_lr1e-3.bdz" "$T/plan" || fail "LR is not in the student's name: $(cat "$T/plan")"
# Settings not in the file names (the stamps): the same student file is retrained.
for change in BATCH=2 TRAIN_LEN=32 QAT_FLAGS=--recompute; do
    # shellcheck disable=SC2086
    plan -f pipelines/bitdistiller.mk $V BITS=2 GROUP=32 LOSS=cakld $change
    plans qat eval pack
    plans_not teacher-gen clipsearch tokenize
    grep -q "^${B}qat .*-o $T/exp/student_$TAG.bdz" "$T/plan" || fail "$change: not the student_$TAG: $(cat "$T/plan")"
done
# The teacher's temperature (not in the samples' name) reruns generation and all after it.
# shellcheck disable=SC2086
plan -f pipelines/bitdistiller.mk $V BITS=2 GROUP=32 LOSS=cakld TEMP=1.0
plans teacher-gen clipsearch qat eval pack
plans_not tokenize
# The evaluation window: only the perplexity evaluation.
# shellcheck disable=SC2086
plan -f pipelines/bitdistiller.mk $V BITS=2 GROUP=32 LOSS=cakld SEQ_LEN=64
plans eval
plans_not teacher-gen clipsearch tokenize qat pack
# A plan writes nothing: back at the settings of the run, nothing to do.
# shellcheck disable=SC2086
plan -f pipelines/bitdistiller.mk $V BITS=2 GROUP=32 LOSS=cakld
nothing "after other plans"

# Baselines at the same settings land in the same table, with sizes, task accuracy and the
# students' training settings.
# shellcheck disable=SC2086
run -f pipelines/baselines.mk $V BITS=2 GROUP=32
for run in fp rtn_int2_g32 clip_int2_g32 qat_$TAG; do
    grep -q "^$run," "$T/exp/results.csv" || fail "results.csv lacks $run"
done
col() { awk -F, -v r="$1" -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i } $1 == r { print $h[c] }' "$T/exp/results.csv"; }
[ "$(col qat_$TAG lr)" = 2e-4 ] && [ "$(col qat_$TAG steps)" = 4 ] && [ "$(col qat_$TAG samples)" = 16 ] &&
    [ "$(col qat_$TAG loss)" = cakld ] || fail "the student's settings: $(grep "^qat_" "$T/exp/results.csv")"
for run in fp rtn_int2_g32 clip_int2_g32 qat_$TAG; do
    [ -n "$(col "$run" model_bytes)" ] || fail "$run has no size: $(cat "$T/exp/results.csv")"
    [ "$(col "$run" task_items)" = 5 ] || fail "$run has no task accuracy: $(cat "$T/exp/results.csv")"
    col "$run" model_hash | grep -q '^[0-9a-f]\{16\}$' || fail "$run has no model hash"
done
[ "$(col fp bits)" = 32 ] && [ "$(col qat_$TAG bits)" = 2 ] && [ "$(col qat_$TAG group)" = 32 ] ||
    fail "bits/group: $(cat "$T/exp/results.csv")"
# A calibration text instead of the samples (the swappable stage), with a user's tokenizer stage.
# shellcheck disable=SC2086
run -f pipelines/baselines.mk $V BITS=3 GROUP=32 CALIB_TEXT="$T/val.txt"
[ -s "$T/exp/calib.bdz" ] && [ -s "$T/exp/clip_int3_g32_text.bdz" ] || fail "calibration text not used"

# The demo graph over the same files: only what the demo adds runs (packing the RTN model at
# 3 bits was done above; generation speed, the table, the plot); then nothing.
D="$V DEMO_BITS=2 HS_ITEMS=5"
# shellcheck disable=SC2086
plan -f pipelines/demo.mk $D
# (The speed runs are loops of three: their lines start with "for", not with the tool.)
grep -q "${B}teacher-gen .*--unpadded" "$T/plan" || fail "no speed run in the demo plan: $(cat "$T/plan")"
grep "^$B" "$T/plan" | grep -v -- "--unpadded" >"$T/plan2"; mv "$T/plan2" "$T/plan"
plans_not teacher-gen clipsearch tokenize qat eval
# shellcheck disable=SC2086
run -f pipelines/demo.mk $D
[ -s "$T/exp/demo.md" ] && [ -s "$T/exp/loss.png" ] || fail "the demo's table or plot is missing"
grep -q "BitDistiller (CAKLD) | 2 |" "$T/exp/demo.md" || fail "demo table: $(cat "$T/exp/demo.md")"
# shellcheck disable=SC2086
plan -f pipelines/demo.mk $D
nothing "the demo again"
grep -q "demo_table\|loss_plot" "$T/plan" && fail "the demo again remakes its table or plot: $(cat "$T/plan")"

# The BitNet Distillation graph shares the stamps: its plan trains, and writes nothing.
# shellcheck disable=SC2086
plan -f pipelines/bitnet-distill.mk $V OUT="$T/bn" table1
plans task qat eval
[ ! -e "$T/bn" ] || fail "make -n wrote files: $(ls "$T/bn")"

ls -A "$ROOT" | cmp -s - "$T/root.before" || fail "the graphs wrote into the repository: $(ls -A "$ROOT" | diff "$T/root.before" -)"
exit 0
