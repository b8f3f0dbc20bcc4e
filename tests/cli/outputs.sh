# Outputs that are not regular files are written in place, never replaced: a character device
# made with mknod (as /dev/null), a FIFO, /dev/stdout, a symbolic link (the link stays, its
# target gets the data). Both writers are exercised: bd-cat (text) and bd-tokenize (a stream).
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
printf 'Once upon a time there was a cat.\n' >"$T/s.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/t.bdz" "$T/s.txt"

# A null device of our own (root only: CI runs as root; elsewhere this part is skipped).
if [ "$(id -u)" = 0 ] && mknod -m 666 "$T/null" c 1 3 2>/dev/null; then
    expect_ok bd-cat -o "$T/null" "$T/t.bdz"
    [ -c "$T/null" ] || fail "bd-cat -o replaced a character device"
    expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/null" "$T/s.txt"
    [ -c "$T/null" ] || fail "bd-tokenize -o replaced a character device"
    ls "$T" | grep -q 'null.tmp' && fail "temporary file left beside the device"
else
    echo "skip: cannot make a device node (not root)" >&2
fi

# A FIFO: the reader sees the whole output, the FIFO stays a FIFO.
mkfifo "$T/fifo"
cat "$T/fifo" >"$T/from_fifo.bdz" &
reader=$!
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/fifo" "$T/s.txt"
wait $reader
[ -p "$T/fifo" ] || fail "bd-tokenize -o replaced a FIFO"
# (the header records argv, so compare the records)
bd-cat "$T/from_fifo.bdz" | tail -n +2 >"$T/a.json" && bd-cat "$T/t.bdz" | tail -n +2 >"$T/b.json" || fail "bd-cat"
cmp -s "$T/a.json" "$T/b.json" || fail "the FIFO's reader got other records than a file output"

# /dev/stdout onto a regular file: the shell's file gets the data.
bd-cat -o /dev/stdout "$T/t.bdz" >"$T/via_stdout.json" 2>"$T/err" || fail "bd-cat -o /dev/stdout failed"
bd-cat "$T/t.bdz" >"$T/direct.json" || fail "bd-cat"
cmp -s "$T/via_stdout.json" "$T/direct.json" || fail "-o /dev/stdout lost the output"

# A symbolic link: stays a link, its target holds the new output.
echo old >"$T/target.json"
ln -s target.json "$T/link.json"
expect_ok bd-cat -o "$T/link.json" "$T/t.bdz"
[ -L "$T/link.json" ] || fail "bd-cat -o replaced a symbolic link"
cmp -s "$T/target.json" "$T/direct.json" || fail "the link's target did not get the output"

# Temporaries of killed runs (unlocked) are removed by the next run on the same output; a
# live writer's (locked) temporary makes a second run refuse; other outputs' files stay.
echo junk >"$T/o.bdz.tmp.99999.AbCdEf"
echo junk >"$T/other.bdz.tmp.99999.AbCdEf"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/o.bdz" "$T/s.txt"
[ ! -e "$T/o.bdz.tmp.99999.AbCdEf" ] || fail "a stale temporary of the output was left"
[ -e "$T/other.bdz.tmp.99999.AbCdEf" ] || fail "another output's temporary was removed"
cp "$T/o.bdz" "$T/o.before"
echo live >"$T/o.bdz.tmp.1.LiVeXx"
flock "$T/o.bdz.tmp.1.LiVeXx" sleep 30 &
holder=$!
sleep 0.3
expect_fail 1 bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/o.bdz" "$T/s.txt"
expect_err_contains "busy"
kill $holder; wait $holder 2>/dev/null
[ -e "$T/o.bdz.tmp.1.LiVeXx" ] || fail "a live writer's temporary was removed"
cmp -s "$T/o.bdz" "$T/o.before" || fail "the refused run touched the existing output"

# No pipeline, test, bench or script of the repository names /dev/null as a tool's output.
root="$(dirname "$0")/../.."
pat='-o[[:space:]]*/dev/null'
if grep -rnIE -e "$pat" "$root/pipelines" "$root/tests" "$root/bench" "$root/Makefile" "$root/.ci" "$root/README.md" \
    | grep -v "^$root/tests/cli/outputs.sh:"; then fail "a tool is given -o /dev/null above"; fi
# A closed standard output: one message (the write's), not a second one at exit.
bd-tokenize -q -k "$M/tok512.bin" "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >&- 2>"$T/err"
[ $? = 1 ] || fail "closed stdout: expected exit 1"
[ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err" >&2; fail "closed stdout: expected one line on stderr"; }
exit 0
