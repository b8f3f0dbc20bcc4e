# Memory plans: every planning tool shows its plan at --verbosity 2 and refuses a run that does
# not fit in BD_MEM_AVAILABLE bytes (exit 1, one line naming the largest part and the option that
# shrinks it, no output file); the option named makes the run fit; the plan of a QAT run is close
# to the peak resident memory measured.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/tok.bdz" "$BD_DATA/eval/tinystories/tinystories_val_a.txt" ||
    fail "tokenize"

# plan_total: the "total" of the plan in the last command's stderr, in bytes.
plan_total() {
    awk '$2 == "total" { u = $4; m = u == "B" ? 1 : u == "KiB" ? 1024 : u == "MiB" ? 1048576 : 1073741824;
                         printf "%.0f\n", $3 * m; exit }' "$T/err"
}
# refused OUT CMD...: the command is refused for memory (exit 1, no OUT); its plan's total is in $total.
refused() {
    out=$1; shift
    expect_fail 1 "$@" --verbosity 2
    expect_err_contains "not enough memory: needs "
    expect_err_contains "memory plan:"
    [ ! -e "$out" ] || fail "output left behind: $out"
    total=$(plan_total)
    [ -n "$total" ] || fail "no total in the plan"
}
# fits_smaller OUT LARGEST SHRINK BIG SMALL: the command line BIG (split into words) is refused
# at 1 byte naming the largest part LARGEST and the option SHRINK; SMALL, with that option used,
# plans less; with the memory halfway between the two plans BIG is still refused and leaves no
# OUT, and SMALL runs and writes OUT.
fits_smaller() {
    out=$1 largest=$2 shrink=$3 big_cmd=$4 small_cmd=$5
    BD_MEM_AVAILABLE=1 refused "$out" $big_cmd
    big=$total
    expect_err_contains "(largest: $largest"
    expect_err_contains "$shrink"
    BD_MEM_AVAILABLE=1 refused "$out" $small_cmd
    [ "$total" -lt "$big" ] || fail "$small_cmd: the plan does not shrink ($total >= $big)"
    mid=$(( (big + total) / 2 ))
    BD_MEM_AVAILABLE=$mid expect_fail 1 $big_cmd
    [ ! -e "$out" ] || fail "$big_cmd left its output"
    BD_MEM_AVAILABLE=$mid expect_ok $small_cmd
    [ -s "$out" ] || fail "$small_cmd wrote nothing"
}

# bd-qat: activations are the largest part; --recompute shrinks them enough.
QAT="bd-qat --model $M/stories260K.bin --loss ce --steps 1 -b 16 -T 256"
BD_MEM_AVAILABLE=1 refused "$T/q.bdz" $QAT -o "$T/q.bdz" "$T/tok.bdz"
big=$total
grep "not enough memory" "$T/err" | grep -q "(largest: activations .* shrink with --recompute or smaller -b/-T), 1 B available" ||
    fail "bd-qat: $(cat "$T/err")"
BD_MEM_AVAILABLE=1 refused "$T/q.bdz" $QAT --recompute -o "$T/q.bdz" "$T/tok.bdz"
small=$total
[ "$small" -lt "$big" ] || fail "--recompute does not shrink the plan ($small >= $big)"
mid=$(( (big + small) / 2 ))
BD_MEM_AVAILABLE=$mid expect_fail 1 $QAT -o "$T/q.bdz" "$T/tok.bdz"
expect_err_contains "shrink with --recompute"
[ ! -e "$T/q.bdz" ] || fail "bd-qat left its output"
BD_MEM_AVAILABLE=$mid expect_ok $QAT --recompute -o "$T/q.bdz" "$T/tok.bdz"
[ -s "$T/q.bdz" ] || fail "bd-qat --recompute wrote nothing"
# A model that comes through standard input is planned once loaded, and still refused.
BD_MEM_AVAILABLE=1 expect_fail 1 bd-qat --model - --loss ce --steps 1 -b 16 -T 256 -o "$T/q2.bdz" "$T/tok.bdz" <"$T/q.bdz"
expect_err_contains "not enough memory"
[ ! -e "$T/q2.bdz" ] || fail "bd-qat left its output"

# bd-eval: smaller -b fits.
EVAL="bd-eval --model $M/stories260K.bin -T 512 -o $T/e.bdz $T/tok.bdz"
fits_smaller "$T/e.bdz" "activations" "shrink with smaller -b/-T" "$EVAL -b 64" "$EVAL -b 1"
BD_MEM_AVAILABLE=1 expect_fail 1 bd-eval --model - -T 64 "$T/tok.bdz" <"$T/q.bdz"
expect_err_contains "not enough memory"

# bd-teacher-gen: the KV cache of a large batch; a smaller -b fits.
GEN="bd-teacher-gen --model $M/stories260K.bin -n 40 -K 200 -o $T/s.bdz"
fits_smaller "$T/s.bdz" "KV cache and sampling" "shrink with smaller -b/-K" "$GEN -b 64" "$GEN -b 1"

# bd-clipsearch: the calibration activations of every layer; fewer --windows fit.
CLIP="bd-clipsearch --model $M/stories260K.bin --calib $T/tok.bdz --bits 2 --group 32 -T 256 -o $T/c.bdz"
fits_smaller "$T/c.bdz" "calibration activations" "shrink with fewer --windows or a smaller -T" "$CLIP --windows 32" \
    "$CLIP --windows 2"

# bd-eval --task: one scorer per thread, each sized by the task's longest item; fewer --threads fit.
HS="bd-eval --model $M/stories260K.bin -k $M/tok512.bin --task $BD_DATA/eval/hellaswag/hellaswag_val_full.txt.bz2 -n 8"
fits_smaller "$T/h.txt" "scorers' activations" "shrink with fewer --threads" "$HS -o $T/h.txt -t 2" "$HS -o $T/h.txt -t 1"

# bd-pack: the weights, which no option shrinks (the total shown is rounded: 10% more fits).
BD_MEM_AVAILABLE=1000 refused "$T/p.bdz" bd-pack --model "$M/stories260K.bin" --quant int --bits 2 --group 32 -o "$T/p.bdz"
expect_err_contains "(largest: weights 1015.8 KiB), 1000 B available"
BD_MEM_AVAILABLE=$(( total * 11 / 10 )) expect_ok bd-pack --model "$M/stories260K.bin" --quant int --bits 2 --group 32 -o "$T/p.bdz"

# A GGUF model is planned from its header as the llama2.c file it came from.
expect_ok bd-pack --model "$M/stories260K.bin" --format gguf -k "$M/tok512.bin" -o "$T/s.gguf"
BD_MEM_AVAILABLE=1 refused "$T/g.bdz" bd-eval --model "$T/s.gguf" -T 64 -o "$T/g.bdz" "$T/tok.bdz"
grep -q "^bd-eval:   weights  *1015.8 KiB$" "$T/err" || fail "the GGUF model's weights: $(cat "$T/err")"

# The plan against the peak resident memory of a real QAT run (GNU time's maximum RSS): a
# random 4.2M-parameter model, 8 x 256 tokens a step. The plan counts the run's big buffers; the
# rest (program, libraries, the tokens, the mapped safetensors file) stays under 48 MiB. Not in
# a sanitized build (SAN=1), whose shadow memory and redzones add to every allocation.
bd-qat --version | grep -q "SAN=1" && exit 0
need_numpy
[ -x /usr/bin/time ] || fail "/usr/bin/time (GNU time) is needed to measure the peak memory"
$PY "$(dirname "$0")/make_hf_model.py" "$T/hf" 256 688 4 4 4096 7 512 || fail "make_hf_model.py"
/usr/bin/time -f "maxrss %M" -o "$T/rss" bd-qat --model "$T/hf" --loss ce --steps 1 -b 8 -T 256 --threads 2 \
    --verbosity 2 -o "$T/hq.bdz" "$T/tok.bdz" 2>"$T/err" || { cat "$T/err" >&2; fail "bd-qat on the random model"; }
plan=$(plan_total)
rss=$(( $(sed -n 's/^maxrss //p' "$T/rss") * 1024 ))
echo "QAT plan $plan bytes, peak RSS $rss bytes"
[ "$rss" -ge $(( plan * 9 / 10 )) ] || fail "peak RSS $rss is far below the plan $plan (the plan overcounts)"
[ "$rss" -le $(( plan + 48 * 1048576 )) ] || fail "peak RSS $rss exceeds the plan $plan by more than 48 MiB"
exit 0
