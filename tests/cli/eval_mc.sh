# bd-eval --task: stories260K on the first 50 HellaSwag items (the .bz2 read directly) and
# 50 PIQA items; same results at 1 and 2 threads, from the bunzip2'd text, and after a jq
# conversion to the generic JSONL; bd.eval output; fake quantization; bad input.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K/stories260K.bin
HS=$BD_DATA/eval/hellaswag/hellaswag_val_full.txt.bz2
PQ=$BD_DATA/eval/piqa/dev.jsonl

# field NAME: the value of a JSON number field in $T/out
field() { sed -n "s/.*\"$1\":\([-0-9.e]*\).*/\1/p" "$T/out"; }
# not_below_chance: acc and acc_norm are within 3 standard errors of chance or above
check_run() {
    for k in task acc acc_stderr acc_norm acc_norm_stderr n items_per_s; do
        grep -q "\"$k\":" "$T/out" || fail "JSON lacks \"$k\": $(cat "$T/out")"
    done
    expect_out_contains "\"task\":\"$1\""
    expect_out_contains "\"n\":$2,"
    [ "$(wc -l <"$T/out")" = 1 ] || fail "--json printed more than one line"
    awk -v a="$(field acc)" -v an="$(field acc_norm)" -v n="$2" -v c="$3" 'BEGIN {
        se = sqrt(c * (1 - c) / (n - 1));
        if (!(a >= c - 3 * se && an >= c - 3 * se && a <= 1 && an <= 1)) exit 1 }' ||
        fail "$1: below chance $3 by more than 3 standard errors: $(cat "$T/out")"
    awk -v a="$(field acc)" -v e="$(field acc_stderr)" -v n="$2" 'BEGIN {
        d = sqrt(a * (1 - a) / (n - 1)) - e; if (d > 1e-5 || d < -1e-5) exit 1 }' || fail "acc_stderr is not sqrt(p(1-p)/(n-1))"
}
# (and the data's path, hash and layout: the same items from another file)
strip_time() { sed 's/"items_per_s":[0-9.]*//; s/"seconds":[0-9.]*//; s/,"data":.*//' "$@"; }

expect_ok bd-eval --model "$M" --task "$HS" --limit 50 --json -t 1
check_run hellaswag 50 0.25
strip_time "$T/out" >"$T/hs1"
expect_ok bd-eval --model "$M" --task "$HS" --limit 50 --json -t 2 -o "$T/hs.bdz"
strip_time "$T/out" | cmp -s - "$T/hs1" || fail "1 and 2 threads differ: $(cat "$T/hs1") vs $(cat "$T/out")"
expect_ok bd-cat --check --schema bd.eval "$T/hs.bdz"
expect_out_contains '"records":2'
bd-cat "$T/hs.bdz" | grep -q '"metric":"acc_norm"' || fail "no acc_norm record"
# the decompressed text gives the same
bzcat "$HS" | head -n 300 >"$T/hs.txt"
expect_ok bd-eval --model "$M" --task "$T/hs.txt" --task-format hellaswag --json
strip_time "$T/out" | cmp -s - "$T/hs1" || fail "bz2 and plain text differ"

expect_ok bd-eval --model "$M" --task "$PQ" --limit 50 --json
check_run piqa 50 0.5
strip_time "$T/out" | sed 's/"task":"piqa"//' >"$T/pq1"
if command -v jq >/dev/null; then
    # the man page's conversion of PIQA to the generic schema scores the same
    head -n 50 "$PQ" >"$T/p.jsonl"
    head -n 50 "$BD_DATA/eval/piqa/dev-labels.lst" >"$T/p-labels.lst"
    jq -nc --slurpfile l "$T/p-labels.lst" '[inputs] | to_entries[] | {context: ("Question: " + .value.goal + "\nAnswer:"), choices: [.value.sol1, .value.sol2], gold: $l[.key]}' \
        "$T/p.jsonl" >"$T/generic.jsonl" 2>"$T/err" || fail "jq: $(cat "$T/err")"
    expect_ok bd-eval --model "$M" --task "$T/generic.jsonl" --json
    expect_out_contains '"task":"generic"'
    strip_time "$T/out" | sed 's/"task":"generic"//' | cmp -s - "$T/pq1" || fail "generic JSONL differs from PIQA: $(cat "$T/out")"
fi
# labels next to a copy, and given by name
head -n 20 "$PQ" >"$T/dev.jsonl"
head -n 20 "$BD_DATA/eval/piqa/dev-labels.lst" >"$T/lab.txt"
expect_ok bd-eval --model "$M" --task "$T/dev.jsonl" --labels "$T/lab.txt"
expect_out_contains "acc_norm"

# Fake quantization applies before scoring: 8-bit is full precision within a few items.
expect_ok bd-eval --model "$M" --task "$HS" --limit 50 --json --quant int --bits 8 --group 32
expect_out_contains '"bits":8'
awk -v a="$(field acc)" -v b="$(sed -n 's/.*"acc":\([0-9.]*\).*/\1/p' "$T/hs1")" 'BEGIN { d = a - b; if (d > 0.061 || d < -0.061) exit 1 }' ||
    fail "8-bit accuracy far from full precision"

# Bad input: one line naming file and line, exit 1, nothing on stdout.
printf 'ctx\n7\na\nb\nc\nd\n' >"$T/badgold.txt"
expect_fail 1 bd-eval --model "$M" --task "$T/badgold.txt" --task-format hellaswag
expect_err_contains '"'"$T"'/badgold.txt" line 2: expected the gold index 0..3'
printf 'ctx\n1\na\nb\nc\nd\nctx\n2\na\n' >"$T/cut.txt"
bzip2 -c "$T/cut.txt" >"$T/cut.bz2"
expect_fail 1 bd-eval --model "$M" --task "$T/cut.bz2"
expect_err_contains 'cut.bz2" line 10: item 2 is truncated: 1 of 4 endings'
head -c 300 "$HS" >"$T/hs_cut.bz2"
expect_fail 1 bd-eval --model "$M" --task "$T/hs_cut.bz2"
expect_err_contains "truncated bzip2"
printf '{"context":"c","choices":["a","b"],"gold":2}\n' >"$T/g.jsonl"
expect_fail 1 bd-eval --model "$M" --task "$T/g.jsonl" --json
expect_err_contains 'g.jsonl" line 1: "gold" is 2, expected an index in [0, 2)'
head -n 5 "$PQ" >"$T/nolab.jsonl"
expect_fail 1 bd-eval --model "$M" --task "$T/nolab.jsonl"
expect_err_contains 'nolab.jsonl" line 1: field "label" is missing'
head -n 4 "$BD_DATA/eval/piqa/dev-labels.lst" >"$T/nolab-labels.lst"
expect_fail 1 bd-eval --model "$M" --task "$T/nolab.jsonl" -o "$T/never.bdz"
expect_err_contains 'nolab-labels.lst" line 5: only 4 labels for the 5 items'
[ ! -e "$T/never.bdz" ] || fail "output left behind"
expect_fail 1 bd-eval --model "$M" --task "$T/nolab.jsonl" --labels "$T/missing.lst"
expect_err_contains "missing.lst"
expect_fail 1 bd-eval --model "$M" --task "$T/badgold.txt" --labels "$T/nolab-labels.lst"
expect_fail 1 bd-eval --model "$M" --task "$T/nothere.jsonl"
expect_err_contains "nothere.jsonl"
# usage errors
expect_fail 2 bd-eval --model "$M" --task "$PQ" --task-format csv
expect_fail 2 bd-eval --model "$M" --limit 5 "$T/g.jsonl"
expect_fail 2 bd-eval --model "$M" --task "$PQ" --limit 0
expect_fail 2 bd-eval --model "$M" --task "$PQ" --text "$T/hs.txt"
expect_fail 2 bd-eval --model "$M" --task "$PQ" --task-format jsonl --labels "$T/lab.txt"
exit 0
