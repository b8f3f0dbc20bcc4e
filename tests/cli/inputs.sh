# Inputs at their edges: FIFOs and process substitution read once (never reopened), NUL in
# text refused with its line, an empty first document (memcpy of nothing into nothing).
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
MODEL=$M/stories260K.bin
TOK=$M/tok512.bin
# to_fifo FILE: a new FIFO $T/fifo that a background writer fills with FILE (killed on exit).
to_fifo() {
    rm -f "$T/fifo"
    mkfifo "$T/fifo" || fail "mkfifo"
    cat "$1" >"$T/fifo" 2>/dev/null &
}
# A hang is a failure, not a stuck test run: limit CMD..., and expect_fail within that limit.
limit() { timeout 120 "$@"; }
expect_fail_soon() {
    want=$1
    shift
    timeout 120 "$@" >"$T/out" 2>"$T/err"
    got=$?
    [ "$got" = "$want" ] || { cat "$T/err" >&2; fail "expected exit $want, got $got: $*"; }
    [ ! -s "$T/out" ] || fail "expected empty stdout: $*"
    head -n 1 "$T/err" | grep -q "^$(basename "$1"): " || fail "message does not start with the tool name"
}

head -c 20000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >"$T/val.txt"
expect_ok bd-tokenize --tokenizer "$TOK" --whole -o "$T/val.bdz" "$T/val.txt"
printf 'Once upon a time\nTom had a red\n' >"$T/p.txt"
expect_ok bd-teacher-gen -m "$MODEL" -p "$T/p.txt" -K 8 --temperature 0 --text
cp "$T/out" "$T/p.want"

# Text prompts, token prompts, the model, tokens, text and tasks from a FIFO: as from the file.
to_fifo "$T/p.txt"
expect_ok limit bd-teacher-gen -m "$MODEL" -p "$T/fifo" -K 8 --temperature 0 --text
cmp -s "$T/out" "$T/p.want" || fail "prompts from a FIFO differ from the file's"
expect_ok bd-tokenize --tokenizer "$TOK" -o "$T/p.bdz" "$T/p.txt"
expect_ok bd-teacher-gen -m "$MODEL" -p "$T/p.bdz" -K 8 --temperature 0 --text
cp "$T/out" "$T/pt.want"
to_fifo "$T/p.bdz"
expect_ok limit bd-teacher-gen -m "$MODEL" -p "$T/fifo" -K 8 --temperature 0 --text
cmp -s "$T/out" "$T/pt.want" || fail "token prompts from a FIFO differ from the file's"
expect_ok bd-pack --model "$MODEL" --quant int --bits 4 --group 32 -o "$T/packed.bdz"
expect_ok bd-eval --model "$T/packed.bdz" -T 64 --json "$T/val.bdz"
# (the scores; the label from "model" on names the path, and a FIFO has no hash)
sed 's/"seconds":[0-9.]*//; s/,"model":.*//' "$T/out" >"$T/e.want"
to_fifo "$T/packed.bdz"
expect_ok limit bd-eval --model "$T/fifo" -T 64 --json "$T/val.bdz"
sed 's/"seconds":[0-9.]*//; s/,"model":.*//' "$T/out" | cmp -s - "$T/e.want" || fail "a packed model from a FIFO scores differently"
expect_ok limit bd-eval --model - -T 64 --json "$T/val.bdz" <"$T/packed.bdz"
expect_ok bd-qat --model "$MODEL" --loss ce -T 32 -b 2 --steps 1 -o "$T/student.bdz" "$T/val.bdz"
to_fifo "$T/student.bdz"
expect_ok limit bd-eval --model "$T/fifo" -T 64 --json "$T/val.bdz"
# A llama2.c checkpoint is read from its file: through a pipe it is refused, not waited for.
to_fifo "$MODEL"
expect_fail_soon 1 bd-eval --model "$T/fifo" -T 64 "$T/val.bdz"
expect_err_contains "only bd.model and bd.packed streams come through pipes"
wait
to_fifo "$T/val.bdz"
expect_ok limit bd-eval --model "$MODEL" -T 64 --json "$T/fifo"
to_fifo "$T/val.txt"
expect_ok limit bd-eval --model "$MODEL" -T 64 --json --text "$T/fifo"
to_fifo "$T/val.bdz"
expect_ok limit bd-clipsearch --model "$MODEL" --calib "$T/fifo" --bits 2 --group 32 -T 64 --windows 2 -o "$T/clip.bdz"
printf '{"context":"The cat sat on the","choices":["mat.","moon."],"gold":0}\n' >"$T/task.jsonl"
to_fifo "$T/task.jsonl"
expect_ok limit bd-eval --model "$MODEL" --task "$T/fifo" --task-format jsonl --json
# Process substitution (/dev/fd/N, a pipe): the sniff must not eat the prompts.
if command -v bash >/dev/null 2>&1; then
    expect_ok limit bash -c 'bd-teacher-gen -m "$1" -p <(cat "$2") -K 8 --temperature 0 --text' sh "$MODEL" "$T/p.txt"
    cmp -s "$T/out" "$T/p.want" || fail "prompts through <(...) differ from the file's"
    expect_ok limit bash -c 'bd-teacher-gen -m "$1" -p <(cat "$2") -K 8 --temperature 0 --text' sh "$MODEL" "$T/p.bdz"
    cmp -s "$T/out" "$T/pt.want" || fail "token prompts through <(...) differ from the file's"
    expect_ok limit bash -c 'bd-eval --model <(cat "$1") -T 64 --json "$2"' sh "$T/packed.bdz" "$T/val.bdz"
fi

# NUL in text: refused with the line (a line of NULs was a prompt of BOS alone).
printf 'Once upon a time\n\000\000\000\n' >"$T/nul.txt"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/nul.txt" -K 8 --text
expect_err_contains "nul.txt\" line 2: NUL byte in a text prompt"
printf '{"q":"a"}\n{"q":"a\\u0000b"}\n' >"$T/nul.jsonl"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/nul.jsonl" --field q -K 8 --text
expect_err_contains "nul.jsonl\" line 2: NUL byte or \\u0000 escape in a text prompt"
expect_fail 1 bd-tokenize --tokenizer "$TOK" --field q -o "$T/n.bdz" "$T/nul.jsonl"
expect_err_contains "nul.jsonl\" line 2: NUL byte or \\u0000 escape"
[ ! -e "$T/n.bdz" ] || fail "bd-tokenize left an output behind"
printf 'a story\n\nand its e\000nd\n' >"$T/nul2.txt"
expect_fail 1 bd-tokenize --tokenizer "$TOK" -o "$T/n.bdz" "$T/nul2.txt"
expect_err_contains "nul2.txt\" line 3: NUL byte in text"
expect_fail 1 bd-tokenize --tokenizer "$TOK" --whole -o "$T/n.bdz" "$T/nul2.txt"
expect_err_contains "nul2.txt\" line 3: NUL byte in text"
expect_fail 1 bd-eval --model "$MODEL" --text "$T/nul2.txt"
expect_err_contains "nul2.txt\" line 3: NUL byte in text"
printf '{"context":"The cat\\u0000","choices":["a","b"],"gold":0}\n' >"$T/nul_task.jsonl"
expect_fail 1 bd-eval --model "$MODEL" --task "$T/nul_task.jsonl" --json
expect_err_contains "nul_task.jsonl\" line 1: NUL byte or \\u0000 escape"

# An empty first document: every reader of token streams takes it (UBSan watches under SAN=1).
: >"$T/empty.txt"
expect_ok bd-tokenize --tokenizer "$TOK" --whole --no-bos -o "$T/ef.bdz" "$T/empty.txt" "$T/val.txt"
expect_ok bd-eval --model "$MODEL" -T 64 --json "$T/ef.bdz"
expect_ok bd-clipsearch --model "$MODEL" --calib "$T/ef.bdz" --bits 2 --group 32 -T 64 --windows 2 -o "$T/c2.bdz"
expect_ok bd-qat --model "$MODEL" --loss ce -T 32 -b 2 --steps 1 --eval "$T/ef.bdz" -o "$T/q.bdz" "$T/ef.bdz"
expect_ok bd-teacher-gen -m "$MODEL" -p "$T/ef.bdz" -K 4 -n 1 --text
exit 0
