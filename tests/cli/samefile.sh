# Every tool refuses, before any work, an output that is the same file as another output or as
# an input (compared by device and inode: the same name, "./x", a hard link, a symbolic link;
# for new files by directory and name), and an input named like the files an output makes and
# removes: exit 1, one line naming both, nothing written, the input intact. Outputs written in
# place (/dev/stdout, FIFOs) are exempt.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
MODEL=$M/stories260K.bin
head -c 20000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >"$T/s.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/t.bdz" "$T/s.txt"
cp "$T/t.bdz" "$T/t.orig"

# refused OPT_A OPT_B CMD...: exit 1 before any work, the message names both options.
refused() {
    a=$1 b=$2
    shift 2
    expect_fail 1 "$@"
    expect_err_contains "$a"
    expect_err_contains "$b"
    [ "$(wc -l <"$T/err")" = 1 ] || fail "more than one line: $(cat "$T/err")"
}
# intact: the inputs and the directory are as before (no output appeared, none was removed).
intact() {
    cmp -s "$T/t.bdz" "$T/t.orig" || fail "the input t.bdz changed"
    for f in out.bdz out.bdz.state out.bdz.best log.bdz e.bdz; do [ ! -e "$T/$f" ] || fail "$f was written"; done
    ! ls "$T"/*.tmp.* >/dev/null 2>&1 || fail "a temporary was left: $(ls "$T")"
}

# bd-qat: the issue's case (the log would replace the trained model), the data, the checkpoint
# (the log named OUT.state), a checkpoint generation (removed by the next checkpoint), the best model.
Q="bd-qat -m $MODEL --loss ce -T 32 -b 2 --steps 2"
refused '-o "'"$T/out.bdz"'"' '--log "'"$T/out.bdz"'"' $Q --log "$T/out.bdz" -o "$T/out.bdz" "$T/t.bdz"
expect_err_contains "are the same file"
intact
refused "-o" "TOKENS" $Q -o "$T/t.bdz" "$T/t.bdz"
refused "--log" "TOKENS" $Q -o "$T/out.bdz" --log "$T/./t.bdz" "$T/t.bdz"
refused "--log" "the checkpoint" $Q --save-every 1 --log "$T/out.bdz.state" -o "$T/out.bdz" "$T/t.bdz"
refused "--log" "--save-every" $Q --save-every 1 --log "$T/out.bdz.state.w1" -o "$T/out.bdz" "$T/t.bdz"
expect_err_contains '"'"$T/out.bdz.state.w*"'"'
cp "$T/t.bdz" "$T/out.bdz.state.w7"
refused "TOKENS" "--save-every" $Q --save-every 1 -o "$T/out.bdz" "$T/out.bdz.state.w7"
rm "$T/out.bdz.state.w7"
refused "--log" "--keep-best" $Q --eval "$T/t.bdz" --keep-best --log "$T/out.bdz.best" -o "$T/out.bdz" "$T/t.bdz"
refused "--log" "--eval" $Q --eval "$T/t.bdz" --log "$T/t.bdz" -o "$T/out.bdz" "$T/s.bdz"
refused "-o" "--data" $Q --data "$T/t.bdz" -o "$T/t.bdz"
refused "-o" "--model" $Q -m "$T/t.bdz" -o "$T/t.bdz" "$T/s.bdz"
intact
# The same file under other names: a hard link, a symbolic link, a path through "..".
ln "$T/t.bdz" "$T/hard.bdz"
ln -s t.bdz "$T/sym.bdz"
mkdir "$T/sub"
refused "-o" "TOKENS" $Q -o "$T/hard.bdz" "$T/t.bdz"
refused "-o" "TOKENS" $Q -o "$T/sym.bdz" "$T/t.bdz"
refused "-o" "--log" $Q -o "$T/sub/../out.bdz" --log "$T/out.bdz" "$T/t.bdz"
intact
# Outputs written in place are exempt: two of them on standard output are fine.
expect_ok $Q -o /dev/stdout --log /dev/stdout "$T/t.bdz"

# The other tools and their inputs.
refused "-o" "FILE" bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/s.txt" "$T/s.txt"
cp "$M/tok512.bin" "$T/tok.bin"
refused "-o" "--tokenizer" bd-tokenize --tokenizer "$T/tok.bin" -o "$T/tok.bin" "$T/s.txt"
refused "-o" "FILE" bd-cat -o "$T/sym.bdz" "$T/t.bdz"
cp "$T/t.bdz" "$T/t.bdz.tmp.1.x"  # an input the sweep of -o's stale temporaries would remove
refused "FILE" "-o" bd-cat -o "$T/t.bdz" "$T/t.bdz.tmp.1.x"
expect_err_contains "temporary file"
cmp -s "$T/t.bdz.tmp.1.x" "$T/t.orig" || fail "the input named like a temporary was touched"
rm "$T/t.bdz.tmp.1.x"
refused "-o" "--calib" bd-clipsearch -m "$MODEL" --calib "$T/t.bdz" --bits 2 -o "$T/hard.bdz"
refused "-o" "--model" bd-pack -m "$T/t.bdz" --quant int --bits 2 -o "$T/t.bdz"
refused "-o" "--clip" bd-pack -m "$MODEL" --quant int --bits 2 --clip "$T/t.bdz" -o "$T/t.bdz"
refused "-o" "TOKENS" bd-eval -m "$MODEL" -o "$T/t.bdz" "$T/t.bdz"
refused "-o" "--text" bd-eval -m "$MODEL" -o "$T/s.txt" --text "$T/s.txt"
printf '{"goal":"a","sol1":"b","sol2":"c","label":0}\n' >"$T/task.jsonl"
printf '0\n' >"$T/task-labels.lst"
refused "-o" "--task" bd-eval -m "$MODEL" --task "$T/task.jsonl" -o "$T/task.jsonl"
refused "-o" "the labels next to --task" bd-eval -m "$MODEL" --task "$T/task.jsonl" -o "$T/task-labels.lst"
refused "-o" "--labels" bd-eval -m "$MODEL" --task "$T/task.jsonl" --labels "$T/task-labels.lst" -o "$T/task-labels.lst"
refused "-o" "--prompts" bd-teacher-gen -m "$MODEL" -p "$T/s.txt" -o "$T/s.txt"
# The tokenizer next to the model, and the files of a model directory.
mkdir "$T/m"
cp "$MODEL" "$M/tok512.bin" "$T/m/"
refused "-o" "the tokenizer next to --model" bd-teacher-gen -m "$T/m/stories260K.bin" -n 1 -o "$T/m/tok512.bin"
refused "-o" "the tokenizer next to --model" bd-eval -m "$T/m/stories260K.bin" --text "$T/s.txt" -o "$T/m/tok512.bin"
echo '{}' >"$T/m/config.json"
refused "-o" "--model" bd-eval -m "$T/m" -o "$T/m/config.json" "$T/t.bdz"
cmp -s "$T/m/tok512.bin" "$M/tok512.bin" || fail "the model directory's tokenizer changed"
[ "$(cat "$T/m/config.json")" = '{}' ] || fail "config.json changed"
intact
exit 0
