# Results say what they are: every bd-eval JSON line and bd.eval stream names the model (path
# and content hash), its quantization as evaluated (a student's own, in task mode too), the
# data (path and hash) and the settings.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TASK=$BD_DATA/eval/piqa/dev.jsonl
head -c 20000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >"$T/val.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/val.bdz" "$T/val.txt"
expect_ok bd-qat --model "$M/stories260K.bin" --quant int --bits 2 --group 32 --loss ce -b 2 -T 32 --steps 2 \
    -o "$T/student.bdz" "$T/val.bdz"
cp "$T/student.bdz" "$T/copy.bdz"
hash() { bd-eval --model "$1" --tokenizer "$M/tok512.bin" --task "$TASK" --limit 4 --json | jq -r .model_hash; }

# Task mode on a 2-bit student: its own quantization, not "none"/32.
expect_ok bd-eval --model "$T/student.bdz" --tokenizer "$M/tok512.bin" --task "$TASK" --limit 4 --json -o "$T/task.bdz"
jq -e '.quant == "int" and .bits == 2 and .group == 32 and .model == "'"$T/student.bdz"'"
       and (.model_hash | test("^[0-9a-f]{16}$")) and .data == "'"$TASK"'" and (.data_hash | test("^[0-9a-f]{16}$"))
       and .limit == 4 and .act == "f32" and .packed == false' "$T/out" >/dev/null || fail "task JSON line: $(cat "$T/out")"
expect_ok bd-cat "$T/task.bdz"
head -n 1 "$T/out" | jq -e '.quant == "int" and .bits == 2 and .task == "piqa" and .settings.limit == 4
       and (.model_hash | length) == 16 and .data_hash != null' >/dev/null || fail "task stream header: $(head -n 1 "$T/out")"
sed -n 2p "$T/out" | jq -e '.bits == 2' >/dev/null || fail "task stream record: $(sed -n 2p "$T/out")"

# The hash is the content's: a copy has the same, the full-precision model another.
[ "$(hash "$T/student.bdz")" = "$(hash "$T/copy.bdz")" ] || fail "a copy of the student hashes differently"
[ "$(hash "$T/student.bdz")" != "$(hash "$M/stories260K.bin")" ] || fail "the student and the FP model hash the same"

# Perplexity: the same label, the settings in the stream header; standard input has no hash.
expect_ok bd-eval --model "$T/student.bdz" -T 64 --json -o "$T/ppl.bdz" "$T/val.bdz"
jq -e '.quant == "int" and .bits == 2 and .group == 32 and .data == "'"$T/val.bdz"'" and .data_hash != null
       and .clip == null' "$T/out" >/dev/null || fail "perplexity JSON line: $(cat "$T/out")"
expect_ok bd-cat "$T/ppl.bdz"
head -n 1 "$T/out" | jq -e '.settings.seq_len == 64 and .settings.input == "tokens" and .group == 32' >/dev/null ||
    fail "perplexity stream header: $(head -n 1 "$T/out")"
bd-eval --model "$M/stories260K.bin" --quant int --bits 3 --group 32 -T 64 --json <"$T/val.bdz" >"$T/out" 2>"$T/err" ||
    fail "bd-eval from standard input"
jq -e '.quant == "int" and .bits == 3 and .data == "-" and .data_hash == null' "$T/out" >/dev/null ||
    fail "standard input JSON line: $(cat "$T/out")"
# A model read from a FIFO (once) has no hash: null, not an error.
mkfifo "$T/fifo"
cat "$T/student.bdz" >"$T/fifo" &
bd-eval --model "$T/fifo" -T 64 --json "$T/val.bdz" >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "bd-eval from a FIFO"; }
wait
jq -e '.model_hash == null and .bits == 2' "$T/out" >/dev/null || fail "FIFO model JSON line: $(cat "$T/out")"
exit 0
