# Pipes, names and messages (bd(7)): --model - and --prompts - read standard input; a binary
# stream is not written to a terminal; a student and a packed model remember their tokenizer
# (-k only overrides; a changed file is refused); the settled option names work and the old
# spellings still do, with one deprecation warning; common mistakes get errors that say what
# to do.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
MODEL=$M/stories260K.bin
head -c 20000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >"$T/t.txt"
expect_ok bd-tokenize -k "$M/tok512.bin" -o "$T/t.bdz" "$T/t.txt"

# A student remembers --model's tokenizer; bd-pack passes it on (or records -k).
expect_ok bd-qat -m "$MODEL" --quant int --bits 2 --group 32 --loss ce -b 4 -T 32 --steps 3 --threads 1 \
    -o "$T/st.bdz" "$T/t.bdz"
bd-cat --header "$T/st.bdz" | grep -q '"tokenizer":{"path":"[^"]*/tok512.bin","id":"llama2c:tok512.bin:' ||
    fail "the student does not remember its tokenizer"
expect_ok bd-pack -m "$T/st.bdz" -o "$T/p.bdz"
bd-cat --header "$T/p.bdz" | grep -q '"tokenizer":{"path":"[^"]*/tok512.bin"' || fail "the packed model forgot it"
# No -k needed from anywhere, and through pipes (--model -).
cd "$T" || fail "cd"
expect_ok bd-eval -m st.bdz --max-new 8 --threads 1
[ -s "$T/out" ] || fail "bd-eval --max-new printed nothing"
bd-eval -m - --max-new 8 --threads 1 <"$T/p.bdz" >"$T/o1" 2>"$T/err" || { cat "$T/err"; fail "bd-eval -m - failed"; }
bd-eval -m "$T/p.bdz" -K 8 --threads 1 >"$T/o2" 2>"$T/err" || fail "bd-eval -K failed"
cmp -s "$T/o1" "$T/o2" || fail "bd-eval -m - and -m FILE differ"
bd-qat -m "$MODEL" --loss ce -b 4 -T 32 --steps 2 --threads 1 -o - "$T/t.bdz" 2>"$T/err" |
    bd-pack -m - --quant int --bits 4 2>>"$T/err" | bd-eval -m - -K 5 --threads 1 >"$T/o3" 2>>"$T/err" ||
    { cat "$T/err" >&2; fail "bd-qat -o - | bd-pack -m - | bd-eval -m -"; }
[ -s "$T/o3" ] || fail "the piped pipeline generated nothing"
bd-eval -m - -T 32 --json --threads 1 "$T/t.bdz" <"$T/st.bdz" >"$T/out" 2>"$T/err" || fail "bd-eval -m - TOKENS"
grep -q '"ppl"' "$T/out" || fail "bd-eval -m - TOKENS: no result"
printf 'Once upon a time\nThe cat\n' | bd-teacher-gen -m "$T/p.bdz" --prompts - -K 4 --threads 1 -o "$T/s.bdz" \
    2>"$T/err" || { cat "$T/err" >&2; fail "bd-teacher-gen --prompts - failed"; }
expect_ok bd-cat --check --schema bd.samples "$T/s.bdz"
expect_out_contains '"records":2'
expect_fail 2 bd-eval -m - -T 32
expect_err_contains "both read standard input"
expect_fail 2 bd-teacher-gen -m - --prompts - -n 2
expect_fail 2 bd-qat -m - --loss fkl -o "$T/x.bdz" "$T/t.bdz"
expect_err_contains "--teacher"
: | bd-eval -m - -K 3 >"$T/out" 2>"$T/err" && fail "an empty piped model was accepted"
grep -q "empty (nothing came through the pipe" "$T/err" || { cat "$T/err" >&2; fail "empty pipe not named"; }
# -k overrides; a changed remembered tokenizer is refused naming both ids; a gone one falls back.
cp "$M/tok512.bin" "$T/tok.bin"
expect_ok bd-pack -m "$T/st.bdz" -k "$T/tok.bin" -o "$T/p2.bdz"
expect_ok bd-eval -m "$T/p2.bdz" -K 3
printf 'x' >>"$T/tok.bin"
expect_fail 1 bd-eval -m "$T/p2.bdz" -K 3
expect_err_contains "that --model \"$T/p2.bdz\" remembers"
expect_ok bd-eval -m "$T/p2.bdz" -K 3 -k "$M/tok512.bin"
python3 - "$T/tok.bin" "$M/tok512.bin" <<'PY' || fail "python3"
import sys
b = bytearray(open(sys.argv[2], 'rb').read()); b[-1] ^= 1  # same size, other bytes: another hash
open(sys.argv[1], 'wb').write(bytes(b))
PY
expect_fail 1 bd-eval -m "$T/p2.bdz" -K 3
expect_err_contains "has changed since"
rm "$T/tok.bin"
expect_fail 1 bd-eval -m "$T/p2.bdz" -K 3
expect_err_contains "is gone"

# A binary stream is not written to a terminal (script gives the command a pseudo-terminal).
if command -v script >/dev/null 2>&1; then
    for cmd in "bd-tokenize -k $M/tok512.bin $T/t.txt" "bd-pack -m $T/st.bdz" \
        "bd-teacher-gen -m $MODEL -n 1 -K 2" "bd-clipsearch -m $MODEL --calib $T/t.bdz --bits 2"; do
        script -qec "$cmd" "$T/typescript" >"$T/tty" 2>&1 </dev/null
        rc=$?
        [ "$rc" = 2 ] || { cat "$T/tty" >&2; fail "$cmd on a terminal: exit $rc, expected 2"; }
        grep -q "refusing to write a binary bd stream to the terminal" "$T/tty" || fail "$cmd: no refusal"
    done
    # Text to a terminal is fine.
    script -qec "bd-teacher-gen -m $MODEL -n 1 -K 2 --format text" "$T/typescript" >"$T/tty" 2>&1 </dev/null ||
        { cat "$T/tty" >&2; fail "--format text on a terminal"; }
    grep -q "=== sample 0" "$T/tty" || fail "--format text on a terminal printed no sample"
fi

# The settled names, and the old spellings (one warning each, silenced by -q).
expect_ok bd-cat -n 1 "$T/s.bdz"
[ "$(wc -l <"$T/out")" = 3 ] || fail "bd-cat -n 1: header, one record, trailer"
expect_ok bd-cat --limit 1 "$T/s.bdz"
[ ! -s "$T/err" ] || fail "bd-cat --limit warned"
expect_ok bd-cat --records 1 "$T/s.bdz"
[ "$(wc -l <"$T/out")" = 3 ] || fail "bd-cat --records 1"
expect_err_contains "bd-cat: warning: --records is a deprecated spelling of --limit"
expect_ok bd-clipsearch -m "$MODEL" --calib "$T/t.bdz" --bits 2 -T 64 --windows 2 --shrink-steps 4 -o "$T/c1.bdz"
expect_ok bd-clipsearch -m "$MODEL" -c "$T/t.bdz" --bits 2 -T 64 --windows 2 --steps 4 -o "$T/c2.bdz"
expect_err_contains "-c is a deprecated spelling of --calib"
expect_err_contains "--steps is a deprecated spelling of --shrink-steps"
# same_records A B: the streams' records are equal (their headers name their own argv).
same_records() { [ "$(bd-cat --full "$1" | tail -n +2)" = "$(bd-cat --full "$2" | tail -n +2)" ]; }
same_records "$T/c1.bdz" "$T/c2.bdz" || fail "bd-clipsearch: the old spellings give another result"
expect_fail 2 bd-clipsearch -m "$MODEL" --calib "$T/t.bdz" --bits 2 --shrink-steps 30 -o "$T/c3.bdz"
expect_err_contains "--shrink-steps 30 exceeds --grid 20"
expect_ok bd-teacher-gen -m "$MODEL" -n 2 -K 4 --seed 3 --format text -o "$T/g1.txt"
expect_ok bd-teacher-gen -m "$MODEL" -n 2 -K 4 --seed 3 --text -o "$T/g2.txt"
expect_err_contains "--text is a deprecated spelling of --format text"
cmp -s "$T/g1.txt" "$T/g2.txt" || fail "bd-teacher-gen --text and --format text differ"
expect_fail 2 bd-teacher-gen -m "$MODEL" -n 2 --format json
expect_ok bd-eval -m "$MODEL" --generate 5 --threads 1
expect_err_contains "--generate N is a deprecated spelling of --max-new N"
cp "$T/out" "$T/gen_old"
expect_ok bd-eval -m "$MODEL" --max-new 5 --threads 1 -q
cmp -s "$T/out" "$T/gen_old" || fail "bd-eval --generate and --max-new differ"
[ ! -s "$T/err" ] || fail "-q printed: $(cat "$T/err")"
printf 'label\tsentence\n0\tbad\n1\tgood\n1\tfine\n' >"$T/d.tsv"
expect_ok bd-task --template '{sentence}:' --verbalizer '0=no,1=yes' --eval-task --input-format tsv -n 2 "$T/d.tsv"
[ "$(wc -l <"$T/out")" = 2 ] || fail "bd-task -n 2"
expect_ok bd-task --template '{sentence}:' --verbalizer '0=no,1=yes' --eval-task --format tsv "$T/d.tsv"
expect_err_contains "--format is a deprecated spelling of --input-format"
cp "$T/out" "$T/d.jsonl"
expect_ok bd-eval -m "$MODEL" --task "$T/d.jsonl" -n 2 --json
expect_out_contains '"n":2'

# Errors that say what to do.
expect_fail 1 bd-eval -m "$MODEL" "$T/t.txt"
expect_err_contains "is text, not a bd stream: score it with --text $T/t.txt, or tokenize it first (bd-tokenize"
expect_fail 1 bd-qat -m "$MODEL" --loss ce -o "$T/x.bdz" --data "$T/t.txt"
expect_err_contains "tokenize it first (bd-tokenize"
expect_fail 1 bd-clipsearch -m "$MODEL" --calib "$T/t.txt" --bits 2 -o "$T/x.bdz"
expect_err_contains "tokenize it first"
expect_fail 1 bd-eval -m "$M" -K 3
expect_err_contains "holds the llama2.c checkpoint $M/stories260K.bin: give that file as the model"
mkdir "$T/empty"
expect_fail 1 bd-eval -m "$T/empty" -K 3
expect_err_contains "neither a Hugging Face model nor holding a llama2.c checkpoint"
# bd-qat --data takes a bd.tokens file as it takes TOKENS: the same model.
expect_ok bd-qat -m "$MODEL" --loss ce -b 4 -T 32 --steps 2 --threads 1 -o "$T/d1.bdz" --data "$T/t.bdz"
expect_ok bd-qat -m "$MODEL" --loss ce -b 4 -T 32 --steps 2 --threads 1 -o "$T/d2.bdz" "$T/t.bdz"
same_records "$T/d1.bdz" "$T/d2.bdz" || fail "bd-qat --data tokens.bdz and TOKENS differ"
expect_fail 2 bd-qat -m "$MODEL" --loss ce -o "$T/d3.bdz" --data "$T/t.bdz" --mask-prompt
expect_err_contains "is bd.tokens"
exit 0
