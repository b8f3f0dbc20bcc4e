# bd-teacher-gen: the README's greedy sample, stream contents, prompts from text, JSONL
# (templates) and bd.tokens, reproducibility, interruption (signals, kill -9) and --resume,
# records checked on --resume, bad input (without leaks under make test SAN=1).
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
MODEL=$M/stories260K.bin
expect_common_options bd-teacher-gen

# records FILE: the records of a stream as JSON lines with their data (header dropped).
records() { bd-cat --full "$1" | tail -n +2; }

# Greedy from BOS reproduces the data README's sample.
expect_ok bd-teacher-gen -m "$MODEL" -n 1 -K 60 --temperature 0 --text
expect_out_contains "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."
expect_out_contains "=== sample 0: 1 prompt tokens, 60 new tokens, length"

# A stream: header fields, N records in order, the trailer.
expect_ok bd-teacher-gen -m "$MODEL" -n 12 -K 40 --seed 7 -o "$T/s.bdz"
expect_ok bd-cat --check --schema bd.samples "$T/s.bdz"
expect_out_contains '"records":12'
expect_ok bd-cat "$T/s.bdz"
for f in '"teacher":{"path"' '"description":"llama C=64 L=5' '"tokenizer":"llama2c:tok512.bin:' '"vocab_size":512' \
    '"prompt_source":{"kind":"bos"' '"sampling":{"temperature":0.69999' '"top_k":0' '"top_p":1' '"max_new":40' \
    '"seed":7' '"n":12' '"logits_top_k":0' '"index":11,' '"finished":"'; do
    expect_out_contains "$f"
done
# The same seed gives the same samples, at batch 1 and 16; another seed other samples.
records "$T/s.bdz" >"$T/s.json"
bd-teacher-gen -m "$MODEL" -n 12 -K 40 --seed 7 -b 1 -o "$T/s1.bdz" || fail "batch 1 run"
records "$T/s1.bdz" | cmp -s - "$T/s.json" || fail "batch 1 and batch 16 give different samples"
# ... and at batch 3 or 40, with 1 or 2 threads (more samples: a rounding difference in the
# logits would show as a changed draw somewhere).
bd-teacher-gen -m "$MODEL" -n 120 -K 64 --seed 9 -b 3 --threads 1 -o "$T/t1.bdz" || fail "batch 3 run"
bd-teacher-gen -m "$MODEL" -n 120 -K 64 --seed 9 -b 40 --threads 2 -o "$T/t2.bdz" || fail "batch 40 run"
records "$T/t1.bdz" >"$T/t1.json"
records "$T/t2.bdz" | cmp -s - "$T/t1.json" || fail "batch 3 / 1 thread and batch 40 / 2 threads give different samples"
# With bd's tiles (AVX-512) the logits agree too, bit for bit: steps of 8 and 40 rows, 1 and 2 threads.
if bd-teacher-gen --version | grep -q '^kernels: avx512$'; then
    bd-teacher-gen -m "$MODEL" -n 20 -K 32 --seed 9 -b 3 --threads 1 --logits 4 -o "$T/l1.bdz" || fail "logits batch 3"
    bd-teacher-gen -m "$MODEL" -n 20 -K 32 --seed 9 -b 33 --threads 2 --logits 4 -o "$T/l2.bdz" || fail "logits batch 33"
    records "$T/l1.bdz" >"$T/l1.json"
    grep -q '"top_logprobs"' "$T/l1.json" || fail "no logits in the records"
    records "$T/l2.bdz" | cmp -s - "$T/l1.json" || fail "batch 3 / 1 thread and batch 33 / 2 threads give different logits"
fi
bd-teacher-gen -m "$MODEL" -n 12 -K 40 --seed 8 -o "$T/s8.bdz" || fail "seed 8 run"
records "$T/s8.bdz" | cmp -s - "$T/s.json" && fail "seeds 7 and 8 give the same samples"
# To standard output too.
bd-teacher-gen -m "$MODEL" -n 12 -K 40 --seed 7 | bd-cat --full | tail -n +2 | cmp -s - "$T/s.json" ||
    fail "stdout and file output differ"

# Text prompts: one per line, blank lines skipped, BOS first; default N = one per prompt.
printf 'Once upon a time\n\nTom had a red\nThe cat sat\n' >"$T/p.txt"
expect_ok bd-teacher-gen -m "$MODEL" -p "$T/p.txt" -K 20 --text --temperature 0
expect_out_contains "=== sample 2:"
expect_out_contains "Tom had a red"
grep -q "=== sample 3:" "$T/out" && fail "blank line became a prompt"
expect_ok bd-teacher-gen -m "$MODEL" -p "$T/p.txt" -K 20 -n 5 -o "$T/p.bdz"
expect_ok bd-cat --full "$T/p.bdz"
expect_out_contains '"kind":"text"'
prompt_of() { sed -n "/\"index\":$1,/s/.*\"prompt\":\({[^}]*}\).*/\1/p" "$T/out"; }
[ "$(prompt_of 4)" = "$(prompt_of 1)" ] || fail "sample 4 does not reuse prompt 1"
prompt_of 1 | grep -q '"data":\[1,' || fail "prompt does not start with BOS"
# JSONL with a field and the Alpaca template (the Input section only when "input" is non-empty).
printf '{"instruction":"Tell a story about a dog.","input":""}\n{"instruction":"Continue:","input":"Lily saw a bird."}\n' >"$T/p.jsonl"
expect_ok bd-teacher-gen -m "$MODEL" -p "$T/p.jsonl" --field instruction --template alpaca -K 8 --text
expect_out_contains "### Instruction:"
expect_out_contains "Tell a story about a dog."
expect_out_contains "### Input:"
expect_out_contains "Lily saw a bird."
[ "$(grep -c '### Input:' "$T/out")" = 1 ] || fail "alpaca: Input section for an empty input"
expect_ok bd-teacher-gen -m "$MODEL" -p "$T/p.jsonl" --field instruction --template 'Q: {}\n({input})\nA:' -K 8 --text
expect_out_contains "Q: Continue:"
expect_out_contains "(Lily saw a bird.)"
# bd.tokens prompts: the first --prompt-len tokens of each document.
printf 'Once upon a time there was a big dog named Max.\n\nThe sun was hot and the kids went to the pool.\n' >"$T/d.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/d.bdz" "$T/d.txt"
expect_ok bd-teacher-gen -m "$MODEL" -p "$T/d.bdz" --prompt-len 6 -K 10 -o "$T/dt.bdz"
expect_ok bd-cat "$T/dt.bdz"
expect_out_contains '"kind":"tokens"'
expect_out_contains '"prompt_len":6'
[ "$(grep -c '"prompt":{"name":"prompt","dtype":"u32","shape":\[6\]}' "$T/out")" = 2 ] || fail "token prompts are not 6 tokens"
# A prompt longer than the context is cut, with a warning.
awk 'BEGIN { for (i = 0; i < 400; i++) printf "the big dog ran. "; print "" }' >"$T/long.txt"
expect_ok bd-teacher-gen -m "$MODEL" -p "$T/long.txt" -K 4 -o "$T/long.bdz"
expect_err_contains "longer than the context (512) cut to their last 256 tokens"

# --logits K: top-K ids and log-probabilities for every generated position; greedy
# picks the top-1 id.
expect_ok bd-teacher-gen -m "$MODEL" -n 2 -K 16 --logits 5 --temperature 0 -o "$T/l.bdz"
expect_ok bd-cat --full "$T/l.bdz"
expect_out_contains '"logits_top_k":5'
expect_out_contains '"top_ids":{"name":"top_ids","dtype":"u32","shape":[16,5]'
expect_out_contains '"top_logprobs":{"name":"top_logprobs","dtype":"f32","shape":[16,5]'
tail -n +2 "$T/out" | head -n 1 | awk '{
    match($0, /"completion":[^]]*"data":\[[0-9,]*/); c = substr($0, RSTART, RLENGTH); sub(/.*\[/, "", c);
    match($0, /"top_ids":[^]]*"data":\[[0-9,]*/); t = substr($0, RSTART, RLENGTH); sub(/.*\[/, "", t);
    nc = split(c, cs, ","); split(t, ts, ",");
    for (i = 1; i <= nc; i++) if (cs[i] != ts[5 * (i - 1) + 1]) exit 1 }' || fail "greedy tokens are not the top-1 ids"

# Interruption (SIGINT, SIGTERM) leaves a valid stream of the finished samples, exit 130;
# --resume continues to N and gives the uninterrupted result.
expect_ok bd-teacher-gen -m "$MODEL" -n 200 -K 96 -b 8 -o "$T/full.bdz"
records "$T/full.bdz" >"$T/full.json"
for sig in INT TERM; do
    rm -f "$T/part.bdz"
    bd-teacher-gen -m "$MODEL" -n 200 -K 96 -b 8 -o "$T/part.bdz" 2>"$T/err" &
    pid=$!
    sleep 0.25
    kill -"$sig" "$pid"
    wait "$pid"
    rc=$?
    if [ "$rc" = 130 ]; then
        expect_err_contains "interrupted: wrote"
        expect_err_contains "--resume"
        bd-cat --check --schema bd.samples "$T/part.bdz" >"$T/out" || fail "interrupted output is not a valid stream"
        n=$(sed 's/.*"records":\([0-9]*\).*/\1/' "$T/out")
        [ "$n" -lt 200 ] || fail "interrupted run wrote all samples"
    else
        [ "$rc" = 0 ] || fail "interrupted run: exit $rc"  # finished before the signal: still fine
    fi
    expect_ok bd-teacher-gen -m "$MODEL" -n 200 -K 96 -b 8 -o "$T/part.bdz" --resume
    records "$T/part.bdz" | cmp -s - "$T/full.json" || fail "SIG$sig + --resume differs from the uninterrupted run"
done
# Resuming a complete file changes nothing; other settings are refused.
expect_ok bd-teacher-gen -m "$MODEL" -n 200 -K 96 -b 8 -o "$T/part.bdz" --resume
records "$T/part.bdz" | cmp -s - "$T/full.json" || fail "resuming a complete file changed it"
expect_fail 1 bd-teacher-gen -m "$MODEL" -n 200 -K 96 --temperature 0.8 -o "$T/part.bdz" --resume
expect_err_contains '"sampling" differs'
expect_fail 1 bd-teacher-gen -m "$MODEL" -n 200 -K 96 --seed 9 -o "$T/part.bdz" --resume
expect_err_contains '"seed" differs'
expect_fail 1 bd-teacher-gen -m "$MODEL" -n 10 -K 96 -o "$T/part.bdz" --resume
expect_err_contains "more than 10 samples"
records "$T/part.bdz" | cmp -s - "$T/full.json" || fail "a refused resume changed the file"
head -c 3000 "$T/full.bdz" >"$T/cut.bdz"
expect_fail 1 bd-teacher-gen -m "$MODEL" -n 200 -K 96 -o "$T/cut.bdz" --resume
expect_err_contains "cannot resume"
# kill -9 leaves only the temporary of the unfinished stream; the next run on that output
# (here --resume, which finds no stream yet) removes it and gives the uninterrupted result.
bd-teacher-gen -m "$MODEL" -n 200 -K 96 -b 8 -o "$T/k9.bdz" 2>/dev/null &
pid=$!
i=0
until ls "$T"/k9.bdz.tmp.* >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 200 ] || { kill -9 $pid; fail "no temporary seen"; }
    sleep 0.05
done
sleep 0.2
kill -9 $pid
wait $pid 2>/dev/null
ls "$T"/k9.bdz.tmp.* >/dev/null 2>&1 || [ -e "$T/k9.bdz" ] || fail "the killed run left neither output nor temporary"
expect_ok bd-teacher-gen -m "$MODEL" -n 200 -K 96 -b 8 -o "$T/k9.bdz" --resume
! ls "$T"/k9.bdz.tmp.* >/dev/null 2>&1 || fail "a killed run's temporary was left"
records "$T/k9.bdz" | cmp -s - "$T/full.json" || fail "kill -9 + --resume differs from the uninterrupted run"

# --resume checks each record it keeps against this run: an id outside the vocabulary (patched
# into the first completion of a real stream) is refused, naming the file and record.
expect_ok bd-teacher-gen -m "$MODEL" -n 3 -K 8 --seed 5 -o "$T/g.bdz"
zstd -q -d -c "$T/g.bdz" >"$T/g.raw"
# The second "completion" is the first record's tensor name; its ids start 35 bytes further (the
# name, "dtype": "u32", "shape": [n], "data" and the bin header).
pos=$(grep -boa completion "$T/g.raw" | sed -n 2p | cut -d: -f1)
printf '\237\206\001\000' | dd of="$T/g.raw" bs=1 seek=$((pos + 35)) conv=notrunc 2>/dev/null
zstd -q -f --check -c "$T/g.raw" >"$T/g.bdz"
bd-cat --full "$T/g.bdz" | grep -q '"completion":{[^}]*"data":\[99999,' || fail "the patch missed the first id"
cp "$T/g.bdz" "$T/g.before"
expect_fail 1 bd-teacher-gen -m "$MODEL" -n 6 -K 8 --seed 5 -o "$T/g.bdz" --resume
expect_err_contains "g.bdz\" record 1: field \"completion\" holds id 99999 at 0, outside the vocabulary of 512"
cmp -s "$T/g.bdz" "$T/g.before" || fail "a refused resume changed the file"

# --resume of a file that does not exist yet starts from 0.
expect_ok bd-teacher-gen -m "$MODEL" -n 12 -K 40 --seed 7 -o "$T/new.bdz" --resume
records "$T/new.bdz" | cmp -s - "$T/s.json" || fail "--resume of a new file differs from a plain run"

# Bad input and usage: one-line errors, nothing on stdout, no output left behind.
expect_fail 2 bd-teacher-gen -n 2
expect_err_contains "--model is required"
expect_fail 2 bd-teacher-gen -m "$MODEL"
expect_err_contains "-n N"
expect_fail 2 bd-teacher-gen -m "$MODEL" -n 2 --top-p 0
expect_fail 2 bd-teacher-gen -m "$MODEL" -n 2 --top-p 1.5
expect_fail 2 bd-teacher-gen -m "$MODEL" -n 2 --temperature -1
expect_fail 2 bd-teacher-gen -m "$MODEL" -n 2 --logits 65
expect_fail 2 bd-teacher-gen -m "$MODEL" -n 2 --resume
expect_fail 2 bd-teacher-gen -m "$MODEL" -n 2 -K 0
expect_fail 2 bd-teacher-gen -m "$MODEL" -n 2 --field text
expect_fail 1 bd-teacher-gen -m "$T/nope.bin" -n 2
expect_err_contains "nope.bin"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/nope.txt" -o "$T/e.bdz"
expect_err_contains "nope.txt"
printf '{"instruction":"a"}\n{"text":"b"}\n' >"$T/bad.jsonl"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/bad.jsonl" --field instruction -o "$T/e.bdz"
expect_err_contains 'line 2: field "instruction" is missing'
printf '{"instruction":"a"}\n{"instruction":\n' >"$T/bad2.jsonl"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/bad2.jsonl" --field instruction -o "$T/e.bdz"
expect_err_contains "line 2: invalid JSON"
bd-tokenize --tokenizer "$BD_DATA/tokenizers/llama2-32k/tokenizer.bin" -o "$T/big.bdz" "$T/d.txt" || fail "tokenize"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/big.bdz" -o "$T/e.bdz"
expect_err_contains "vocabulary"
# A bd.tokens stream made by hand (msgpack bytes, the zstd command) whose second record is bad:
# refused naming the record (and, under SAN=1, without leaking the prompt buffer).
tokens_with() {
    printf '\204\245magic\242bd\246schema\251bd.tokens\247version\222\001\000\252vocab_size\315\002\000' >"$T/m"
    printf '\201\243ids\204\244name\243ids\245dtype\243u32\245shape\221\002\244data\304\010\001\000\000\000\005\000\000\000' >>"$T/m"
    printf "$1" >>"$T/m"
    printf '\202\243end\303\247records\002' >>"$T/m"
    zstd -q -f --check -c "$T/m" >"$2"
}
tokens_with '\201\243ids\300' "$T/noids.bdz"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/noids.bdz" -o "$T/e.bdz"
expect_err_contains 'noids.bdz" record 2: field "ids"'
tokens_with '\201\243ids\204\244name\243ids\245dtype\243u32\245shape\221\003\244data\304\010\001\000\000\000\005\000\000\000' "$T/short.bdz"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/short.bdz" -o "$T/e.bdz"
expect_err_contains 'short.bdz" record 2: field "ids": tensor data has 8 bytes'
tokens_with '\201\243ids\204\244name\243ids\245dtype\243u32\245shape\221\002\244data\304\010\001\000\000\000\237\206\001\000' "$T/oov.bdz"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/oov.bdz" -o "$T/e.bdz"
expect_err_contains 'oov.bdz" record 2: '
printf '\n\n' >"$T/empty.txt"
expect_fail 1 bd-teacher-gen -m "$MODEL" -p "$T/empty.txt" -o "$T/e.bdz"
expect_err_contains "no prompts"
[ ! -e "$T/e.bdz" ] || fail "output left behind"
exit 0
