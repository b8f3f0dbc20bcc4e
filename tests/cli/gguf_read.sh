# GGUF input: a GGUF file is a model wherever bd reads one. stories260K written to GGUF f32 by
# bd-pack evaluates to the source model's loss (same weights; llama's RoPE layout is the
# checkpoint's); a q2_K student's GGUF (ggml blocks) to the student's loss; a SubLN student as
# llama.cpp's bitnet (q/k rows permuted to NEOX halves, read back as a half-split model) to the
# student's loss when its sub-norm epsilon is the model's; a GGUF model trains a student
# exactly as its source does; a truncated file or a pipe fails in one line.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
head -c 20000 "$TXT" >"$T/tr.txt"
tail -c 6000 "$TXT" >"$T/ev.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/tr.bdz" "$T/tr.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/ev.bdz" "$T/ev.txt"
# same A B: |A - B| <= 1e-6 |B|
same() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * b) }'; }
e="-T 64 --json --threads 1"

# stories260K: f32 GGUF = the checkpoint; f16 GGUF within f16 rounding.
expect_ok bd-pack --model "$M/stories260K.bin" --format gguf -k "$M/tok512.bin" -o "$T/s.gguf"
expect_ok bd-eval --model "$M/stories260K.bin" $e "$T/ev.bdz"
ref=$(nll)
expect_ok bd-eval --model "$T/s.gguf" $e "$T/ev.bdz"
same "$(nll)" "$ref" || fail "GGUF f32 nll $(nll), checkpoint $ref"
expect_ok bd-eval --model "$T/s.gguf" -T 64 --threads 1 "$T/ev.bdz"
expect_out_contains "rope=interleaved tied"
expect_ok bd-pack --model "$M/stories260K.bin" --format gguf --gguf-type f16 -k "$M/tok512.bin" -o "$T/s16.gguf"
expect_ok bd-eval --model "$T/s16.gguf" $e "$T/ev.bdz"
awk -v a="$(nll)" -v b="$ref" 'BEGIN { d = a - b; exit !(d < 1e-3 && d > -1e-3) }' ||
    fail "GGUF f16 nll $(nll), checkpoint $ref"

# A GGUF model as the start of a student: the same student as from the checkpoint.
q="--loss ce --steps 2 -b 2 -T 32 --lr 1e-3 --threads 1"
expect_ok bd-qat -m "$M/stories260K.bin" --quant int --bits 2 --group 32 $q -o "$T/a.bdz" "$T/tr.bdz"
expect_ok bd-qat -m "$T/s.gguf" --quant int --bits 2 --group 32 $q -o "$T/b.bdz" "$T/tr.bdz"
expect_ok bd-eval --model "$T/a.bdz" $e "$T/ev.bdz"
a=$(nll)
expect_ok bd-eval --model "$T/b.bdz" $e "$T/ev.bdz"
[ "$(nll)" = "$a" ] || fail "student of the GGUF: nll $(nll), of the checkpoint $a"

# A q2_K student of a 256-wide model: its GGUF's blocks are its fake-quantized weights.
expect_ok $PY "$(dirname "$0")/make_hf_model.py" "$T/hf" 256 512 2 4 512 7
expect_ok bd-qat -m "$T/hf" --quant q2_K $q -o "$T/q2.bdz" "$T/tr.bdz"
expect_ok bd-pack --model "$T/q2.bdz" --format gguf -k "$M/tok512.bin" -o "$T/q2.gguf"
expect_ok bd-eval --model "$T/q2.bdz" $e "$T/ev.bdz"
a=$(nll)
expect_ok bd-eval --model "$T/q2.gguf" $e "$T/ev.bdz"
same "$(nll)" "$a" || fail "q2_K GGUF nll $(nll), student $a"

# A SubLN student as llama.cpp's bitnet: with --subln-eps equal to the model's norm epsilon
# (1e-5) the file holds its every number.
expect_ok bd-qat -m "$M/stories260K.bin" --subln --subln-eps 1e-5 $q -o "$T/sub.bdz" "$T/tr.bdz"
expect_ok bd-pack --model "$T/sub.bdz" --format gguf --gguf-type f32 -k "$M/tok512.bin" -o "$T/sub.gguf"
expect_ok bd-eval --model "$T/sub.bdz" $e "$T/ev.bdz"
a=$(nll)
expect_ok bd-eval --model "$T/sub.gguf" $e "$T/ev.bdz"
same "$(nll)" "$a" || fail "bitnet GGUF nll $(nll), student $a"
expect_ok bd-eval --model "$T/sub.gguf" -T 64 --threads 1 "$T/ev.bdz"
expect_out_contains "rope=half tied subln=paper"

# Refused in one line, exit 1: a truncated file, a pipe.
head -c 30000 "$T/s.gguf" >"$T/trunc.gguf"
expect_fail 1 bd-eval --model "$T/trunc.gguf" $e "$T/ev.bdz"
expect_err_contains "$T/trunc.gguf: GGUF tensor"
expect_err_contains "end past the end of the file"
[ "$(wc -l <"$T/err")" = 1 ] || fail "more than one line: $(cat "$T/err")"
expect_fail 1 bd-eval --model - $e "$T/ev.bdz" <"$T/s.gguf"
expect_err_contains "a GGUF model is read from a file it names"
exit 0
