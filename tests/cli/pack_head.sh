# bd-pack --head-format (bd-pack(1), "Head formats"): the output head of stories260K (tied, so
# also its embedding) stored as q8 or q6 in a packed 2-bit model. The perplexity moves by less
# than a stated bound from the f32-head model's, the file shrinks, bd-eval, generation,
# bd-teacher-gen and GGUF export run it unchanged; a packed f32-head file is re-packed to the
# same model; bad values and combinations are refused in one line.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
head -c 30000 "$TXT" >"$T/val.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/val.bdz" "$T/val.txt"
size() { wc -c <"$1" | tr -d ' '; }

q="--quant int --bits 2 --group 32"
expect_ok bd-pack --model "$M/stories260K.bin" $q --head-format f32 -o "$T/f32.bdz"
expect_ok bd-cat --header "$T/f32.bdz"
case "$(cat "$T/out")" in *head_format*) fail "an f32 head writes head_format" ;; esac
expect_ok bd-eval --model "$T/f32.bdz" -T 256 --json "$T/val.bdz"
base=$(nll)
# The f32 head is the fake-quantized model's: the packed perplexity equals it (as pack.sh checks).
expect_ok bd-eval --model "$M/stories260K.bin" $q -T 256 --json "$T/val.bdz"
within "$base" "$(nll)" 1e-4 || fail "f32 head: packed nll $base, fake-quantized $(nll)"
for hf in q8 q6; do
    expect_ok bd-pack --model "$M/stories260K.bin" $q --head-format $hf -o "$T/$hf.bdz" --verbosity 2
    expect_err_contains "head $hf"
    expect_ok bd-cat --header "$T/$hf.bdz"
    expect_out_contains "\"head_format\":\"$hf\""
    bd-cat "$T/$hf.bdz" | grep -q '"name":"tok_emb"' && fail "$hf: a tied model stores tok_emb besides its head"
    [ "$(size "$T/$hf.bdz")" -lt "$(size "$T/f32.bdz")" ] || fail "$hf: not smaller than the f32-head file"
    expect_ok bd-eval --model "$T/$hf.bdz" -T 256 --json "$T/val.bdz"
    a=$(nll)
    # Stated bounds: q8 within 0.003 nats of the f32 head, q6 within 0.015 (measured: -0.0013 and +0.0082).
    tol=0.003
    [ $hf = q6 ] && tol=0.015
    within "$a" "$base" $tol || fail "$hf head: nll $a, f32 head $base (bound $tol)"
    [ "$a" != "$base" ] || fail "$hf head: nll $a is the f32 head's to every digit"
    expect_ok bd-eval --model "$T/$hf.bdz" --tokenizer "$M/tok512.bin" --generate 20
    expect_ok bd-teacher-gen --model "$T/$hf.bdz" --tokenizer "$M/tok512.bin" -n 2 --max-new 8 -q -o "$T/g.bdz"
    # A packed f32-head file re-packed with the head format is the same model.
    expect_ok bd-pack --model "$T/f32.bdz" --head-format $hf -o "$T/re.bdz"
    expect_ok bd-eval --model "$T/re.bdz" -T 256 --json "$T/val.bdz"
    [ "$(nll)" = "$a" ] || fail "$hf: re-packed nll $(nll), packed at once $a"
    # ... and a packed input keeps its head when --head-format is not given.
    expect_ok bd-pack --model "$T/$hf.bdz" -o "$T/keep.bdz"
    expect_ok bd-cat --header "$T/keep.bdz"
    expect_out_contains "\"head_format\":\"$hf\""
    # GGUF: the embedding is the quantized head, dequantized.
    expect_ok bd-pack --model "$T/$hf.bdz" --tokenizer "$M/tok512.bin" --format gguf -o "$T/$hf.gguf"
    [ "$(head -c 4 "$T/$hf.gguf")" = "GGUF" ] || fail "$hf: no GGUF magic"
done
# The default when bd-pack packs: q8 (the same file as --head-format q8).
expect_ok bd-pack --model "$M/stories260K.bin" $q -o "$T/def.bdz"
expect_ok bd-cat --header "$T/def.bdz"
expect_out_contains '"head_format":"q8"'
bd-cat "$T/def.bdz" | tail -n +2 >"$T/def.rec"
bd-cat "$T/q8.bdz" | tail -n +2 | cmp -s - "$T/def.rec" || fail "the default differs from --head-format q8"
expect_fail 1 bd-pack --model "$T/q8.bdz" --head-format q6 -o "$T/x.bdz"
expect_err_contains "already stored as q8"
[ ! -e "$T/x.bdz" ] || fail "output left behind"

# Bad values and combinations: usage errors, one line, no output.
expect_fail 2 bd-pack --model "$M/stories260K.bin" $q --head-format q4 -o "$T/x.bdz"
expect_err_contains '--head-format: "q4" is not f32, q8 or q6'
[ "$(grep -c . "$T/err")" -le 2 ] || fail "more than the message and the hint: $(cat "$T/err")"
expect_fail 2 bd-pack --model "$M/stories260K.bin" $q --head-format "" -o "$T/x.bdz"
expect_fail 2 bd-pack --model "$M/stories260K.bin" --head-format q8 --format gguf -o "$T/x.gguf"
expect_err_contains "--head-format is for packed output"
[ ! -e "$T/x.bdz" ] && [ ! -e "$T/x.gguf" ] || fail "output left behind"
exit 0
