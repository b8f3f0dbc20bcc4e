# bd-qat under mpirun (data parallelism, built with MPI when mpicc is found): 2 ranks of batch B
# train as 1 process of batch 2B within float tolerance (the sum over ranks is in another order),
# plain and 2-bit QAT with a distillation loss and gradient accumulation; a run whose rank is
# killed with kill -9 and resumed reaches the bytes of an uninterrupted run; a checkpoint of 2
# ranks resumes in 1 process; ranks that disagree on settings or data end with one message.
. "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: no mpirun (Debian: openmpi-bin, libopenmpi-dev; make deps)"; exit 0; }
bd-qat --version | grep -q "MPI=1" || fail "mpirun is installed but bd-qat was built without MPI ($(bd-qat --version | tail -n 1))"
MPIRUN="mpirun --oversubscribe"
[ "$(id -u)" != 0 ] || MPIRUN="$MPIRUN --allow-run-as-root"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
head -c 60000 "$TXT" >"$T/tr.txt"
tail -c 20000 "$TXT" >"$T/ev.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/tr.bdz" "$T/tr.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/ev.bdz" "$T/ev.txt"
losses() { bd-cat "$1" | sed -n 's/^{"step":[0-9]*,"loss":\([^,]*\),.*/\1/p'; }
# same_losses A B TOL: the step losses of two logs agree within a relative TOL, step by step.
same_losses() {
    losses "$1" >"$T/la" && losses "$2" >"$T/lb"
    [ "$(wc -l <"$T/la")" = "$(wc -l <"$T/lb")" ] && [ -s "$T/la" ] || fail "logs $1 and $2 differ in length"
    paste "$T/la" "$T/lb" | awk -v t="$3" '{ d = $1 - $2; if (d < 0) d = -d; if (!(d <= t * $1)) { print "step " NR ": " $1 " vs " $2; bad = 1 } } END { exit bad }' >&2 ||
        fail "the step losses of $1 and $2 differ by more than $3 (relative)"
}

# 1. 2 ranks x batch 2 (x 2 micro-batches) against 1 process x batch 4: plain training, then
# 2-bit QAT with cakld (a distillation head whose weights count the whole step's positions).
# Measured: the losses agree to 1e-7 relative, the final held-out loss to 1e-6.
common="--model $M/stories260K.bin --lr 1e-3 -T 64 --grad-accum 2 --threads 1 --seed 3"
expect_ok $MPIRUN -np 2 bd-qat $common --loss ce --steps 20 -b 2 -o "$T/p2.bdz" --log "$T/p2.log" "$T/tr.bdz"
expect_err_contains "2 ranks:"
expect_ok bd-qat $common --loss ce --steps 20 -b 4 -o "$T/p1.bdz" --log "$T/p1.log" "$T/tr.bdz"
same_losses "$T/p1.log" "$T/p2.log" 1e-5
q="--loss cakld --gamma 0.5 --quant int --bits 2 --group 32 --steps 10"
expect_ok $MPIRUN -np 2 bd-qat $common $q -b 2 -o "$T/q2.bdz" --log "$T/q2.log" "$T/tr.bdz"
expect_ok bd-qat $common $q -b 4 -o "$T/q1.bdz" --log "$T/q1.log" "$T/tr.bdz"
same_losses "$T/q1.log" "$T/q2.log" 1e-5
expect_ok bd-eval --model "$T/q1.bdz" -T 64 --json "$T/ev.bdz"
a=$(nll)
expect_ok bd-eval --model "$T/q2.bdz" -T 64 --json "$T/ev.bdz"
within "$a" "$(nll)" 1e-4 || fail "held-out loss of 1 process $a, of 2 ranks $(nll)"

# 2. kill -9 of one rank, then --resume (same command): the bytes of an uninterrupted run. run
# execs mpirun, so $! is mpirun and its children are the ranks.
mkdir "$T/ref" "$T/k"
run() { cd "$1" && exec $MPIRUN -np 2 bd-qat --model "$M/stories260K.bin" --loss ce -o model.bdz --lr 1e-3 \
    --steps 60 -T 64 -b 2 --save-every 10 --resume --seed 7 --threads 1 --log log.bdz ../tr.bdz; }
(run "$T/ref") >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "reference run failed"; }
(run "$T/k") >/dev/null 2>&1 &
pid=$!
i=0
until [ -e "$T/k/model.bdz.state" ]; do
    i=$((i + 1)); [ $i -lt 600 ] || { kill -9 $pid; fail "no checkpoint seen"; }
    sleep 0.05
done
rank=$(ps -o pid= --ppid $pid | tail -n 1)
[ -n "$rank" ] || fail "no rank process under mpirun $pid"
kill -9 $rank
wait $pid && fail "mpirun succeeded after a rank was killed"
[ ! -e "$T/k/model.bdz" ] || fail "a killed run left its output"
cp -r "$T/k" "$T/r"  # for 3.
(run "$T/k") >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "resumed run failed"; }
expect_err_contains "(resumed)"
cmp -s "$T/ref/model.bdz" "$T/k/model.bdz" || fail "the resumed 2-rank run's model differs from the uninterrupted run's"

# 3. The killed run's checkpoint (2 ranks x batch 2) resumes in 1 process x batch 4 (the same
# sequences per step; another batch is refused) and ends near the 2-rank run.
expect_fail 1 bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/r/model.bdz" --lr 1e-3 --steps 60 -T 64 -b 2 \
    --save-every 10 --resume --seed 7 --threads 1 "$T/tr.bdz"
expect_err_contains "on 1 ranks: --batch 4/1"
expect_ok bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/r/model.bdz" --lr 1e-3 --steps 60 -T 64 -b 4 \
    --save-every 10 --resume --seed 7 --threads 1 "$T/tr.bdz"
expect_ok bd-eval --model "$T/ref/model.bdz" -T 64 --json "$T/ev.bdz"
a=$(nll)
expect_ok bd-eval --model "$T/r/model.bdz" -T 64 --json "$T/ev.bdz"
within "$a" "$(nll)" 1e-3 || fail "held-out loss after resuming in 1 process $(nll), 2 ranks throughout $a"

# 4. Ranks that disagree (mpirun's MPMD form gives them other arguments): rank 0 names the first
# difference once, every rank ends, no output.
one="bd-qat --model $M/stories260K.bin --loss ce -o $T/x.bdz --steps 2 -T 32 -b 2 --threads 1"
$MPIRUN -np 1 $one --lr 1e-3 "$T/tr.bdz" : -np 1 $one --lr 2e-3 "$T/tr.bdz" >"$T/out" 2>"$T/err" && fail "ranks with other --lr ran"
[ "$(grep -c "^bd-qat: mpirun: rank 1 has other settings" "$T/err")" = 1 ] || { cat "$T/err" >&2; fail "expected one message on the settings"; }
$MPIRUN -np 1 $one "$T/tr.bdz" : -np 1 $one "$T/ev.bdz" >"$T/out" 2>"$T/err" && fail "ranks with other data ran"
[ "$(grep -c "^bd-qat: mpirun: rank 1 has other training data" "$T/err")" = 1 ] || { cat "$T/err" >&2; fail "expected one message on the data"; }
[ ! -e "$T/x.bdz" ] || fail "output left behind"
# Resuming on other data is refused (by every rank).
$MPIRUN -np 2 bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/ref/model.bdz" --steps 70 -T 64 -b 2 \
    --save-every 10 --resume --seed 7 --threads 1 "$T/ev.bdz" >"$T/out" 2>"$T/err" && fail "resume on other data ran"
expect_err_contains "trained on other data"
exit 0
