# bd-eval: perplexity on real data, generation, quantized baselines, bad input.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
expect_common_options bd-eval
head -c 60000 "$TXT" >"$T/val.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/val.bdz" "$T/val.txt"

# Perplexity: the JSON line has the fields, ppl = exp(nll), the loss is that of a real model.
expect_ok bd-eval --model "$M/stories260K.bin" -T 256 --json "$T/val.bdz"
expect_out_contains '"seq_len":256'
awk -F'[:,]' '{ nll=$2; ppl=$4; if (!(nll > 1.0 && nll < 2.0)) exit 1; d = exp(nll) - ppl; if (d > 1e-3 || d < -1e-3) exit 1 }' "$T/out" ||
    fail "implausible nll/ppl: $(cat "$T/out")"
# From a pipe, and as a bd.eval stream.
bd-eval --model "$M/stories260K.bin" -T 256 -o "$T/eval.bdz" --json <"$T/val.bdz" >"$T/out2" || fail "pipe input failed"
# (the data's path and hash differ: standard input has none)
strip() { sed 's/"seconds":[0-9.]*//; s/,"data":.*//' "$@"; }
strip "$T/out" | cmp -s - "$(strip "$T/out2" >"$T/o3"; echo "$T/o3")" || fail "file and pipe give different results"
expect_ok bd-cat --check --schema bd.eval "$T/eval.bdz"
expect_out_contains '"records":2'
# Sliding windows score every token after the first.
expect_ok bd-eval --model "$M/stories260K.bin" -T 128 --stride 64 --json "$T/val.bdz"
n=$(bd-cat "$T/val.bdz" | grep -o '"shape":\[[0-9]*\]' | grep -o '[0-9]*' | awk '{s+=$1} END {print s}')
expect_out_contains "\"tokens\":$((n - 1)),"
# Quantized baselines: 8-bit RTN is close to full precision, 2-bit RTN is far worse.
fp=$(bd-eval --model "$M/stories260K.bin" -T 256 --json "$T/val.bdz" | sed 's/.*"nll":\([0-9.]*\).*/\1/')
q8=$(bd-eval --model "$M/stories260K.bin" -T 256 --quant int --bits 8 --group 32 --json "$T/val.bdz" | sed 's/.*"nll":\([0-9.]*\).*/\1/')
q2=$(bd-eval --model "$M/stories260K.bin" -T 256 --quant int --bits 2 --group 32 --json "$T/val.bdz" | sed 's/.*"nll":\([0-9.]*\).*/\1/')
awk -v fp="$fp" -v q8="$q8" -v q2="$q2" 'BEGIN { exit !(q8 - fp < 0.01 && q8 - fp > -0.01 && q2 > fp + 0.3) }' ||
    fail "fp $fp, int8 $q8, int2 $q2: not as expected"
# Generation reproduces the data README's sample.
expect_ok bd-eval --model "$M/stories260K.bin" --generate 40
expect_out_contains "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

# Bad input: one-line errors, exit 1, nothing on stdout.
expect_fail 2 bd-eval "$T/val.bdz"
expect_err_contains "--model is required"
expect_fail 1 bd-eval --model "$T/nope.bin" "$T/val.bdz"
expect_err_contains "nope.bin"
head -c 100000 "$M/stories260K.bin" >"$T/cut.bin"
expect_fail 1 bd-eval --model "$T/cut.bin" "$T/val.bdz"
head -c 200 "$T/val.bdz" >"$T/cut.bdz"
expect_fail 1 bd-eval --model "$M/stories260K.bin" "$T/cut.bdz"
expect_err_contains "truncated"
expect_fail 1 bd-eval --model "$M/stories260K.bin" "$T/eval.bdz"
expect_err_contains 'expected "bd.tokens"'
bd-tokenize --tokenizer "$BD_DATA/tokenizers/llama2-32k/tokenizer.bin" -o "$T/big.bdz" "$T/val.txt" || fail "tokenize"
expect_fail 1 bd-eval --model "$M/stories260K.bin" "$T/big.bdz"
expect_err_contains "vocabulary"
expect_fail 2 bd-eval --model "$M/stories260K.bin" --quant int4 "$T/val.bdz"
expect_fail 1 bd-eval --model "$M/stories260K.bin" --quant nf3 --bits 2 "$T/val.bdz"
expect_err_contains "nf3 is a 3-bit grid"
expect_fail 2 bd-eval --model "$M/stories260K.bin" --stride 600 -T 512 "$T/val.bdz"
# Windows: never past the context (512), never shorter than --seq-len; the default fits a short stream.
expect_fail 2 bd-eval --model "$M/stories260K.bin" -T 600 "$T/val.bdz"
expect_err_contains "--seq-len 600 exceeds the model's context 512"
expect_fail 2 bd-eval --model "$M/stories260K.bin" -T 1000000 "$T/val.bdz"
printf 'Once upon a time there was a cat.\n' >"$T/short.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/short.bdz" "$T/short.txt"
expect_fail 1 bd-eval --model "$M/stories260K.bin" -T 64 "$T/short.bdz"
expect_err_contains "short.bdz\": 11 tokens, fewer than one window of --seq-len 64"
expect_ok bd-eval --model "$M/stories260K.bin" --json "$T/short.bdz"
expect_out_contains '"tokens":10,"seq_len":11,"windows":1'
expect_ok bd-eval --model "$M/stories260K.bin" -T 11 --json "$T/short.bdz"
expect_out_contains '"tokens":10,"seq_len":11,"windows":1'
expect_fail 1 bd-eval --model "$M/stories260K.bin" -o "$T/e2.bdz" "$T/cut.bdz"
[ ! -e "$T/e2.bdz" ] || fail "output left behind"
exit 0
