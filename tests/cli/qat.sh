# bd-qat --loss ce: training on real text lowers the held-out loss, the output is a model
# bd-eval reads, the metrics log is a valid stream; a run killed with kill -9 (during
# training, and during a checkpoint write) and resumed reaches the same bytes as an
# uninterrupted run (one thread), and its log holds every step once with the same values;
# a resume on other data is refused; bad input fails cleanly.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
expect_common_options bd-qat
head -c 60000 "$TXT" >"$T/tr.txt"
tail -c 20000 "$TXT" >"$T/ev.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/tr.bdz" "$T/tr.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/ev.bdz" "$T/ev.txt"

# Training lowers the loss on its text (a pretrained model fine-tuned on 60 KB: the held-out
# loss barely moves); the log has one record per step and the eval losses.
expect_ok bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/a.bdz" --lr 1e-3 --steps 20 -T 64 -b 8 \
    --eval "$T/tr.bdz" --eval-every 10 --log "$T/log.bdz" --threads 1 "$T/tr.bdz"
[ ! -s "$T/out" ] || fail "bd-qat wrote to stdout"
expect_ok bd-cat --check --schema bd.metrics "$T/log.bdz"
expect_out_contains '"records":20'
n=$(bd-cat "$T/log.bdz" | grep -c '"eval_loss"')
[ "$n" = 2 ] || fail "expected 2 eval records, got $n"
before=$(bd-eval --model "$M/stories260K.bin" -T 64 --json "$T/tr.bdz" | sed 's/.*"nll":\([0-9.]*\).*/\1/')
after=$(bd-eval --model "$T/a.bdz" -T 64 --json "$T/tr.bdz" | sed 's/.*"nll":\([0-9.]*\).*/\1/')
awk -v b="$before" -v a="$after" 'BEGIN { exit !(a < b - 0.05) }' || fail "training-text loss $before -> $after did not fall"
# From standard input, with accumulation and recomputation: same length of log.
bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/b.bdz" --steps 3 -T 32 -b 2 --grad-accum 2 --recompute \
    --schedule constant --threads 1 <"$T/tr.bdz" || fail "stdin run failed"
expect_ok bd-cat --check --schema bd.model "$T/b.bdz"

# Kill and resume. The reference runs uninterrupted; the other is killed twice and resumed
# with the same command line (same argv, so the output bytes must be identical). run is always
# called inside one subshell, "( run DIR ) &", and execs the tool, so $! is the tool itself and
# kill -9 stops it (not only a shell around it, which would leave it running beside the next).
mkdir "$T/ref" "$T/k"
run() { cd "$1" && exec bd-qat --model "$M/stories260K.bin" --loss ce -o model.bdz --lr 1e-3 --steps 150 -T 64 -b 4 \
    --save-every 10 --resume --seed 7 --threads 1 --log log.bdz ../tr.bdz; }
(run "$T/ref") 2>"$T/err" || { cat "$T/err" >&2; fail "reference run failed"; }
# 1. kill -9 in the middle of a checkpoint write (the test hook slows checkpoints down).
(BD_CKPT_TEST_DELAY_MS=300; export BD_CKPT_TEST_DELAY_MS; run "$T/k") 2>/dev/null &
pid=$!
i=0
until [ -e "$T/k/model.bdz.state" ] && ls "$T/k"/model.bdz.state.tmp.* >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 400 ] || { kill -9 $pid; fail "no checkpoint write seen"; }
    sleep 0.05
done
kill -9 $pid
wait $pid 2>/dev/null
[ ! -e "$T/k/model.bdz" ] || fail "a killed run left its output"
# 2. resume, and kill -9 again during training.
(run "$T/k") 2>/dev/null &
pid=$!
sleep 0.4
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
# 3. resume to the end.
(run "$T/k") 2>"$T/err" || { cat "$T/err" >&2; fail "resumed run failed"; }
cmp -s "$T/ref/model.bdz" "$T/k/model.bdz" || fail "the resumed run's model differs from the uninterrupted run's"
# The log goes on across the resumes: steps 1..150 once each, the same values as the uninterrupted
# run's (timing fields aside); no temporary of a killed run is left.
steps_of() { bd-cat "$1" | tail -n +2 | sed -n 's/^{"step":\([0-9]*\),.*/\1/p'; }
values_of() { bd-cat "$1" | tail -n +2 | sed 's/"tokens_per_s":[^,]*,//; s/"seconds":[^,}]*//'; }
seq 1 150 >"$T/steps.want"
steps_of "$T/k/log.bdz" | cmp -s - "$T/steps.want" || fail "the resumed run's log does not hold steps 1..150 once each"
values_of "$T/ref/log.bdz" >"$T/ref.values"
values_of "$T/k/log.bdz" | cmp -s - "$T/ref.values" || fail "the resumed run's log differs from the uninterrupted run's"
! ls "$T/k"/*.tmp.* >/dev/null 2>&1 || fail "temporaries of killed runs left: $(ls "$T/k")"
expect_ok bd-eval --model "$T/k/model.bdz.state.w150" -T 64 --json "$T/ev.bdz"
# A resume with other settings is refused.
(cd "$T/k" && bd-qat --model "$M/stories260K.bin" --loss ce -o model.bdz --steps 150 -T 64 -b 2 --resume --seed 7 ../tr.bdz) \
    >"$T/out" 2>"$T/err" && fail "resume with another --batch succeeded"
expect_err_contains "give the same"
# The checkpoint records the data's identity: other data is refused, the same data through
# another name or a pipe resumes.
mkdir "$T/d"
expect_ok bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/d/m.bdz" --steps 2 -T 32 -b 2 --save-every 2 "$T/tr.bdz"
expect_fail 1 bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/d/m.bdz" --steps 4 -T 32 -b 2 --save-every 2 \
    --resume "$T/ev.bdz"
expect_err_contains "trained on other data"
cp "$T/tr.bdz" "$T/tr-copy.bdz"
expect_ok bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/d/m.bdz" --steps 3 -T 32 -b 2 --save-every 3 \
    --resume --verbosity 2 "$T/tr-copy.bdz"
expect_err_contains "(resumed)"
bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/d/m.bdz" --steps 4 -T 32 -b 2 --save-every 4 --resume \
    --verbosity 2 <"$T/tr.bdz" 2>"$T/err" || { cat "$T/err" >&2; fail "resume from a pipe"; }
expect_err_contains "(resumed)"

# Bad input: usage errors exit 2, data errors exit 1, no output left behind.
expect_fail 2 bd-qat --model "$M/stories260K.bin" -o "$T/x.bdz" "$T/tr.bdz"
expect_err_contains "--loss is required"
expect_fail 2 bd-qat --model "$M/stories260K.bin" --loss kl -o "$T/x.bdz" "$T/tr.bdz"
expect_fail 2 bd-qat --model "$M/stories260K.bin" --loss ce "$T/tr.bdz"
expect_fail 2 bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/x.bdz" --lr 1e-3x "$T/tr.bdz"
expect_fail 2 bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/x.bdz" --steps 2 --epochs 1 "$T/tr.bdz"
head -c 300 "$T/tr.bdz" >"$T/cut.bdz"
expect_fail 1 bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/x.bdz" "$T/cut.bdz"
expect_err_contains "truncated"
bd-tokenize --tokenizer "$BD_DATA/tokenizers/llama2-32k/tokenizer.bin" -o "$T/big.bdz" "$T/ev.txt" || fail "tokenize"
expect_fail 1 bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/x.bdz" "$T/big.bdz"
expect_err_contains "vocabulary"
expect_fail 1 bd-qat --model "$M/stories260K.bin" --loss ce -o "$T/x.bdz" -T 512 -b 64 "$T/ev.bdz"
expect_err_contains "fewer than one step"
[ ! -e "$T/x.bdz" ] || fail "output left behind"
exit 0
