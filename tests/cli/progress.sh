# Feedback on long work without a terminal (stderr to a file, as under make, nohup or CI):
# plain progress lines every BD_PROGRESS seconds (no carriage returns, no escape codes), a
# note before cakld's silent measurement of g, and one summary line at the end of every run
# at the default verbosity; -q and BD_PROGRESS=0 silence the progress.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K

# no_control FILE: neither a carriage return nor an escape byte.
no_control() {
    ! tr -d '\n' <"$1" | LC_ALL=C grep -q "$(printf '[\r\033]')" || { cat -A "$1" >&2; fail "control bytes in $1"; }
}

BD_PROGRESS=0.01 bd-teacher-gen --model "$M/stories260K.bin" -n 32 --max-new 48 --threads 1 -o "$T/s.bdz" \
    2>"$T/gen.err" || { cat "$T/gen.err" >&2; fail "bd-teacher-gen failed"; }
no_control "$T/gen.err"
grep -q '^bd-teacher-gen: generate .* samples (.*%) .* ETA ' "$T/gen.err" || { cat "$T/gen.err" >&2; fail "no progress line"; }
tail -n 1 "$T/gen.err" | grep -q '^bd-teacher-gen: 32 samples, [0-9]* new tokens in .* tokens/s' ||
    { cat "$T/gen.err" >&2; fail "bd-teacher-gen: no summary line at the end"; }

BD_PROGRESS=0.01 bd-qat --model "$M/stories260K.bin" --data "$T/s.bdz" --quant int --bits 2 --group 32 --loss cakld \
    -b 4 -T 48 --steps 12 --threads 1 -o "$T/st.bdz" 2>"$T/qat.err" || { cat "$T/qat.err" >&2; fail "bd-qat failed"; }
no_control "$T/qat.err"
grep -q "^bd-qat: cakld: measuring g" "$T/qat.err" || { cat "$T/qat.err" >&2; fail "cakld's g measurement unannounced"; }
grep -q "^bd-qat: cakld: g = 0\.[0-9]*" "$T/qat.err" || { cat "$T/qat.err" >&2; fail "cakld's g not reported"; }
grep -q "^bd-qat: step [0-9]*/12 loss [0-9.]* .* tok/s ETA " "$T/qat.err" || { cat "$T/qat.err" >&2; fail "no step line"; }
tail -n 1 "$T/qat.err" | grep -q "^bd-qat: 12 steps, 2304 tokens in .* tok/s), last loss [0-9.]*; wrote $T/st.bdz" ||
    { cat "$T/qat.err" >&2; fail "bd-qat: no summary line at the end"; }

# Every long tool ends with its summary line.
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/t.bdz" "$BD_DATA/eval/tinystories/tinystories_val_a.txt"
expect_err_contains "bd-tokenize: "
expect_err_contains " tokens from "

# The default interval (30 s) shows no progress line in a short run (a second or two, even on
# a loaded machine): the summary alone.
head -c 20000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >"$T/short.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/short.bdz" "$T/short.txt"
expect_ok bd-eval --model "$M/stories260K.bin" -T 32 "$T/short.bdz"
[ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err" >&2; fail "bd-eval: expected the summary line alone"; }
expect_err_contains "bd-eval: perplexity "
no_control "$T/err"

# -q: nothing at all; BD_PROGRESS=0: the summary only.
BD_PROGRESS=0.01 bd-qat --model "$M/stories260K.bin" --data "$T/s.bdz" --loss ce -b 4 -T 48 --steps 4 --threads 1 \
    -q -o "$T/q.bdz" 2>"$T/q.err" || fail "bd-qat -q failed"
[ ! -s "$T/q.err" ] || { cat "$T/q.err" >&2; fail "bd-qat -q printed something"; }
BD_PROGRESS=0 bd-qat --model "$M/stories260K.bin" --data "$T/s.bdz" --loss ce -b 4 -T 48 --steps 4 --threads 1 \
    -o "$T/q.bdz" 2>"$T/q.err" || fail "bd-qat BD_PROGRESS=0 failed"
[ "$(wc -l <"$T/q.err")" = 1 ] || { cat "$T/q.err" >&2; fail "BD_PROGRESS=0: expected the summary alone"; }

expect_ok bd-clipsearch --model "$M/stories260K.bin" --calib "$T/t.bdz" --bits 2 --group 32 -T 64 --windows 2 \
    --tokens 64 -o "$T/c.bdz"
expect_err_contains "bd-clipsearch: searched "
expect_ok bd-pack --model "$T/st.bdz" -o "$T/p.bdz"
expect_err_contains "bd-pack: int 2-bit group 32"
expect_err_contains "wrote $T/p.bdz"
exit 0
