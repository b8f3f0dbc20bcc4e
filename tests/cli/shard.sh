# Shards: bd-teacher-gen --shard K/N on stories260K, the N streams joined by bd-cat
# --merge-shards, byte for byte the stream of the run without --shard (top-K log-probabilities
# included; N coprime with the batch and not); bd-eval --shard K/N on text and on tasks, the
# parts joined by bd-eval --combine into the whole run's report and bd.eval stream; a resumed
# shard; bad K/N specs; shards of other runs, missing, repeated, incomplete or cut refused.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
MODEL=$M/stories260K.bin
HS=$BD_DATA/eval/hellaswag/hellaswag_val_full.txt.bz2
PQ=$BD_DATA/eval/piqa/dev.jsonl
head -c 12000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >"$T/val.txt"

# at DIR CMD...: CMD run in $T/DIR (made if needed), so that every run writes the same
# relative -o name and the command lines, recorded in the headers, differ only by --shard.
at() {
    d=$T/$1
    shift
    mkdir -p "$d" && (cd "$d" && "$@")
}

# gen N ARGS...: the whole run in $T/whole, shard k of N in $T/kN (-o s.bdz everywhere).
gen() {
    n=$1
    shift
    at whole bd-teacher-gen -m "$MODEL" "$@" -o s.bdz 2>"$T/err" || { cat "$T/err"; fail "whole run: $*"; }
    k=0
    while [ $k -lt "$n" ]; do
        at "$k$n" bd-teacher-gen -m "$MODEL" "$@" --shard $k/$n -o s.bdz 2>"$T/err" || { cat "$T/err"; fail "shard $k/$n: $*"; }
        k=$((k + 1))
    done
}

# Three shards (coprime with the batch of 16), merged in any order: the same bytes.
gen 3 -n 41 -K 48 --logits 3 --seed 5
expect_ok bd-cat --check --schema bd.samples "$T/13/s.bdz"
expect_out_contains '"records":14'  # samples 1, 4, ..., 40
expect_ok bd-cat --header "$T/13/s.bdz"
expect_out_contains '"n":41'
expect_out_contains '"shard":{"k":1,"n":3,"units":41,"argv":["--shard","1/3"]}'
expect_ok at merged bd-cat --merge-shards ../23/s.bdz ../03/s.bdz ../13/s.bdz -o s.bdz
[ ! -s "$T/out" ] || fail "--merge-shards -o printed something"
cmp "$T/merged/s.bdz" "$T/whole/s.bdz" || fail "3 shards merged differ from the unsharded run"
# ... to standard output too.
bd-cat --merge-shards "$T/03/s.bdz" "$T/13/s.bdz" "$T/23/s.bdz" | cmp -s - "$T/whole/s.bdz" ||
    fail "the merge on standard output differs"
# The samples themselves, independently of the merge: each shard holds the unsharded run's
# records k, k+3, ... (bd-cat's JSON lines, every third one).
bd-cat --full "$T/whole/s.bdz" | sed '1d;$d' >"$T/whole.json"
for k in 0 1 2; do
    bd-cat --full "$T/${k}3/s.bdz" | sed '1d;$d' >"$T/k.json"
    awk -v k=$k '(NR - 1) % 3 == k' "$T/whole.json" | cmp -s - "$T/k.json" || fail "shard $k/3's records are not the run's"
done
# Four shards, sharing a factor with the batch (rows stay idle, with a warning), greedy this time.
gen 4 -n 30 -K 32 -b 8 --temperature 0
grep -q "only 2 of the batch's rows are this shard's" "$T/err" || fail "no warning of idle rows: $(cat "$T/err")"
expect_ok at merged4 bd-cat --merge-shards ../34/s.bdz ../14/s.bdz ../04/s.bdz ../24/s.bdz -o s.bdz
cmp "$T/merged4/s.bdz" "$T/whole/s.bdz" || fail "4 shards merged differ from the unsharded run"

# A shard interrupted and resumed equals the shard run at once, and merges the same.
bd-teacher-gen -m "$MODEL" -n 240 -K 48 -b 8 --shard 1/4 -o "$T/part.bdz" 2>/dev/null &
pid=$!
sleep 0.3
kill -INT $pid
wait $pid
rc=$?
[ $rc = 130 ] || [ $rc = 0 ] || fail "interrupted shard: exit $rc"
expect_ok bd-teacher-gen -m "$MODEL" -n 240 -K 48 -b 8 --shard 1/4 -o "$T/part.bdz" --resume
expect_ok bd-teacher-gen -m "$MODEL" -n 240 -K 48 -b 8 --shard 1/4 -o "$T/part_once.bdz"
bd-cat --full "$T/part.bdz" | sed 1d >"$T/a.json"
bd-cat --full "$T/part_once.bdz" | sed 1d | cmp -s - "$T/a.json" || fail "a resumed shard differs"
expect_fail 1 bd-teacher-gen -m "$MODEL" -n 240 -K 48 -b 8 --shard 2/4 -o "$T/part.bdz" --resume
expect_err_contains 'its "shard" differs'
expect_fail 1 bd-teacher-gen -m "$MODEL" -n 240 -K 48 -b 8 -o "$T/part.bdz" --resume
expect_err_contains 'its "shard" differs'

# Shards that are not one run, missing, repeated, incomplete or cut: refused naming the file,
# nothing written.
at seed8 bd-teacher-gen -m "$MODEL" -n 41 -K 48 --logits 3 --seed 8 --shard 2/3 -o s.bdz 2>/dev/null
expect_fail 1 bd-cat --merge-shards "$T/03/s.bdz" "$T/13/s.bdz" "$T/seed8/s.bdz" -o "$T/m.bdz"
expect_err_contains "seed8/s.bdz\" header: its \"seed\" differs from"
expect_fail 1 bd-cat --merge-shards "$T/03/s.bdz" "$T/13/s.bdz" -o "$T/m.bdz"
expect_err_contains "shard 2/3 is missing (2 files given)"
expect_fail 1 bd-cat --merge-shards "$T/03/s.bdz" "$T/13/s.bdz" "$T/13/s.bdz" -o "$T/m.bdz"
expect_err_contains "13/s.bdz\" is shard 1/3 again"
expect_fail 1 bd-cat --merge-shards "$T/03/s.bdz" "$T/13/s.bdz" "$T/24/s.bdz" -o "$T/m.bdz"
expect_err_contains "24/s.bdz\" is shard 2/4, "
expect_fail 1 bd-cat --merge-shards "$T/03/s.bdz" "$T/13/s.bdz" "$T/whole/s.bdz" -o "$T/m.bdz"
expect_err_contains "whole/s.bdz\" header: no \"shard\""
head -c 3000 "$T/23/s.bdz" >"$T/cut.bdz"
expect_fail 1 bd-cat --merge-shards "$T/03/s.bdz" "$T/13/s.bdz" "$T/cut.bdz" -o "$T/m.bdz"
expect_err_contains "cut.bdz\" header: truncated stream"
# Interrupted shards (valid streams with fewer samples) are not the whole run.
for k in 0 1 2; do
    at "big$k" sh -c "bd-teacher-gen -m '$MODEL' -n 3000 -K 64 --shard $k/3 -o s.bdz 2>/dev/null & p=\$!; sleep 0.5; kill -INT \$p; wait \$p"
done
expect_fail 1 bd-cat --merge-shards "$T/big0/s.bdz" "$T/big1/s.bdz" "$T/big2/s.bdz" -o "$T/m.bdz"
expect_err_contains "(an interrupted run? finish it with --resume)"
[ ! -e "$T/m.bdz" ] || fail "a refused merge left an output"

# Bad K/N: a usage error naming it, nothing on stdout, no output file.
for spec in 3/2 0/0 1/ -1/2 a/b 2/2 /3 1/3x; do
    expect_fail 2 bd-teacher-gen -m "$MODEL" -n 4 --shard "$spec" -o "$T/bad.bdz"
    expect_err_contains "--shard: \"$spec\" is not K/N with 0 <= K < N"
    expect_fail 2 bd-eval -m "$MODEL" --text "$T/val.txt" --shard="$spec" -o "$T/bad.bdz"
    expect_err_contains "--shard: \"$spec\" is not K/N"
done
[ ! -e "$T/bad.bdz" ] || fail "a bad --shard left an output"
expect_fail 2 bd-cat --merge-shards --full "$T/03/s.bdz"
expect_fail 2 bd-cat --merge-shards

# bd-eval: perplexity on text in 3 shards (forward passes of 2 windows), joined.
# evals N ARGS...: the whole run and N shard runs as gen does, then --combine in $T/comb.
evals() {
    n=$1
    shift
    at ewhole bd-eval -m "$MODEL" "$@" -o e.bdz >"$T/whole.out" 2>"$T/err" || { cat "$T/err"; fail "whole eval: $*"; }
    parts=
    k=0
    while [ $k -lt "$n" ]; do
        at "e$k$n" bd-eval -m "$MODEL" "$@" --shard $k/$n -o e.bdz >"$T/shard.out" 2>"$T/err" ||
            { cat "$T/err"; fail "eval shard $k/$n: $*"; }
        [ ! -s "$T/shard.out" ] || fail "a shard printed on stdout: $(cat "$T/shard.out")"
        parts="$parts ../e$k$n/e.bdz"
        k=$((k + 1))
    done
    json=
    case " $* " in *" --json "*) json=--json ;; esac
    # shellcheck disable=SC2086
    at comb bd-eval --combine $parts $json -o e.bdz >"$T/comb.out" 2>"$T/err" || { cat "$T/err"; fail "combine: $*"; }
    strip_time "$T/whole.out" >"$T/a"
    strip_time "$T/comb.out" | cmp -s - "$T/a" || fail "combined report differs: $(cat "$T/comb.out") vs $(cat "$T/whole.out")"
    cmp "$T/comb/e.bdz" "$T/ewhole/e.bdz" || fail "combined bd.eval stream differs: $*"
}
strip_time() { sed 's/"seconds":[0-9.]*//; s/"items_per_s":[0-9.]*//; /^time /d' "$@"; }
evals 3 --text ../val.txt -T 64 -b 2 --json
grep -q '"windows":' "$T/comb.out" || fail "no JSON report"
bd-cat --header "$T/e13/e.bdz" | grep -q '"schema":"bd.eval-part"' || fail "a part is not a bd.eval-part stream"
evals 2 --text ../val.txt -T 64 --stride 40
grep -q "^ppl " "$T/comb.out" || fail "no readable report"
# Multiple choice: HellaSwag in 4 shards (JSON), PIQA in 3 (readable).
evals 4 --task "$HS" --limit 14 --json
grep -q '"n":14,' "$T/comb.out" || fail "combined HellaSwag is not 14 items: $(cat "$T/comb.out")"
evals 3 --task "$PQ" --limit 16
grep -q "^acc_norm " "$T/comb.out" || fail "no readable task report"
# The numbers, independently of bd-eval's own sums: acc from the parts' items (awk over bd-cat).
for k in 0 1 2; do bd-cat "$T/e${k}3/e.bdz" | sed '1d;$d'; done >"$T/items.json"
awk -F'[:,}]' '{ for (i = 1; i < NF; i++) { if ($i == "\"gold\"") g = $(i + 1); if ($i == "\"pred\"") p = $(i + 1) }
    n++; c += g == p } END { printf "%.4f\n", c / n }' "$T/items.json" >"$T/acc"
grep -q "^acc       $(cat "$T/acc") " "$T/comb.out" || fail "acc is not the parts' $(cat "$T/acc"): $(cat "$T/comb.out")"

# Parts that are not one run, missing or repeated: refused naming the file.
at e_other bd-eval -m "$MODEL" --task "$PQ" --limit 17 --shard 2/3 -o e.bdz 2>/dev/null
expect_fail 1 bd-eval --combine "$T/e03/e.bdz" "$T/e13/e.bdz" "$T/e_other/e.bdz"
expect_err_contains "e_other/e.bdz\" header: its \"settings\" differs"
expect_fail 1 bd-eval --combine "$T/e03/e.bdz" "$T/e23/e.bdz"
expect_err_contains "shard 1/3 is missing (2 files given)"
expect_fail 1 bd-eval --combine "$T/e03/e.bdz" "$T/e13/e.bdz" "$T/e13/e.bdz"
expect_err_contains "is shard 1/3 again"
expect_fail 1 bd-eval --combine "$T/ewhole/e.bdz"
expect_err_contains 'schema is "bd.eval", expected "bd.eval-part"'
expect_fail 1 bd-cat --merge-shards "$T/e03/e.bdz" "$T/e13/e.bdz" "$T/e23/e.bdz"
expect_err_contains "bd-eval --combine joins these"
expect_fail 2 bd-eval --combine -m "$MODEL" "$T/e03/e.bdz"
expect_fail 2 bd-eval --combine
expect_fail 2 bd-eval -m "$MODEL" --max-new 4 --shard 0/2
exit 0
