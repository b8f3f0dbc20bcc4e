#!/bin/sh
# Adversarial pass: hostile inputs and careless commands against every tool, each checked
# for the contract of bd-stream(5) and the man pages rather than for one message:
#   fail  exit 1 or 2, empty stdout, stderr one line starting with the tool's name, and
#         nothing left in the run's directory (no output, no temporary file);
#   ok    exit 0;
#   any   either of the above (the behaviour is a choice, not a defect);
# and never a signal, a sanitizer report or a hang (timeout 60 s). Every attempt runs in a
# fresh empty directory, so an output written there is seen. Prints one line per attempt
# and a summary by area; exits 1 if any attempt broke its contract.
#
# usage: BD_BIN=build/bin BD_DATA=../shared/data sh tests/adversarial/run.sh [AREA...]
# (`make adversarial`, or `make adversarial SAN=1` for the sanitized tools)
set -u
BD_BIN=$(cd "${BD_BIN:?set BD_BIN}" && pwd)
BD_DATA=$(cd "${BD_DATA:-../shared/data}" && pwd)
W=$(mktemp -d "${BD_TMP:-/tmp}/adv.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
PATH="$BD_BIN:$PATH"
export PATH BD_DATA LC_ALL=C
M=$BD_DATA/models/stories260K
I=$W/in
ONLY="$*"
n=0
bad=0
: >"$W/summary"

# try AREA EXPECT DESCRIPTION COMMAND: COMMAND is a shell string run in a fresh directory;
# inputs are under $I.
try() {
    area=$1 expect=$2 desc=$3 cmd=$4
    case " $ONLY " in "  ") ;; *" $area "*) ;; *) return 0 ;; esac
    n=$((n + 1))
    d=$W/run/$n
    mkdir -p "$d"
    (cd "$d" && I=$I M=$M timeout -s KILL 60 sh -c "$cmd" >"$W/out" 2>"$W/err")
    rc=$?
    left=$(ls -A "$d" | head -n 3 | tr '\n' ' ')
    why=""
    if grep -qE "runtime error|AddressSanitizer|LeakSanitizer|Segmentation|core dumped" "$W/err"; then
        why="sanitizer or crash: $(grep -m1 -E 'runtime error|Sanitizer|Segmentation' "$W/err")"
    elif [ $rc -ge 124 ]; then
        why="killed or timed out (exit $rc)"
    elif [ $rc -ne 0 ]; then
        lines=$(wc -l <"$W/err")
        if [ "$expect" = ok ]; then why="expected success: $(head -n 1 "$W/err")"
        elif [ $rc -gt 2 ] && [ $rc -ne 130 ]; then why="exit $rc"
        elif [ -s "$W/out" ] && ! printf '%s' "$cmd" | grep -q -- '--json\|| *bd-\||bd-'; then why="stdout not empty"
        elif [ "$lines" -ne 1 ] && ! { [ $rc = 2 ] && [ "$lines" = 2 ] && tail -n 1 "$W/err" | grep -q "^Try '.*--help'"; }; then why="$lines lines on stderr: $(head -n 2 "$W/err" | tr '\n' '|')"
        elif ! head -n 1 "$W/err" | grep -q "^bd-[a-z-]*: "; then why="message lacks the tool's name"
        elif [ -n "$left" ]; then why="left files: $left"
        fi
    elif [ "$expect" = fail ]; then
        why="expected failure, exit 0"
    fi
    msg=$(head -n 1 "$W/err" | cut -c1-150)
    if [ -n "$why" ]; then
        bad=$((bad + 1))
        printf 'BROKEN %-8s %-4s %s\n       exit %s: %s\n       %s\n' "$area" "$expect" "$desc" "$rc" "$why" "$cmd"
        echo "$area broken" >>"$W/summary"
    else
        printf 'ok     %-8s exit %-3s %-46s %s\n' "$area" "$rc" "$desc" "$msg"
        echo "$area ok" >>"$W/summary"
    fi
    rm -rf "$d"
}

# ---- inputs ---------------------------------------------------------------------------
mkdir -p "$I" && cd "$I" || exit 1
set -e
cp "$M/stories260K.bin" m.bin
cp "$M/tok512.bin" tok.bin
head -c 6000 "$BD_DATA/eval/tinystories/tinystories_val_a.txt" >story.txt
bd-tokenize -q -k tok.bin -o t.bdz story.txt
printf 'Once upon a time\nThe cat\nA dog ran\n' >prompts.txt
printf '{"q":"Once upon a time"}\n{"q":"The cat"}\n' >prompts.jsonl
bd-teacher-gen -q -m m.bin -k tok.bin -p prompts.txt -n 6 -K 24 --seed 1 -o s.bdz
bd-teacher-gen -q -m m.bin -k tok.bin -p prompts.txt -n 4 -K 16 --logits 4 --seed 1 -o sl.bdz
bd-clipsearch -q -m m.bin -c t.bdz --bits 2 --group 32 -T 64 --windows 2 --tokens 64 -o clip2.bdz
bd-qat -q -m m.bin --data s.bdz --quant int --bits 2 --group 32 --loss fkl -T 64 -b 2 --steps 2 -o st.bdz
bd-pack -q -m st.bdz -o pk.bdz
bd-eval -q -m m.bin -T 64 -o ev.bdz t.bdz
printf '{"context":"The cat sat","choices":[" on the mat"," in the sky"],"gold":0}\n' >task.jsonl
mkdir -p hf empty
set +e
# A small llama2.c header: dim hidden layers heads kv_heads vocab seq (int32 little endian).
hdr() { python3 -c "import struct,sys; sys.stdout.buffer.write(struct.pack('<7i',*map(int,sys.argv[1:])))" "$@"; }
# Stream surgery: raw msgpack out of a stream, back in with a checksum.
raw() { zstd -dcq "$1"; }
pack() { zstd -q --check -c; }
flip() { cp "$1" "$2"; printf '\377' | dd of="$2" bs=1 seek="$3" conv=notrunc 2>/dev/null; }
for f in t s clip2 st pk ev; do
    sz=$(wc -c <$f.bdz)
    head -c 0 $f.bdz >${f}_empty.bdz
    head -c 4 $f.bdz >${f}_4.bdz
    head -c $((sz / 2)) $f.bdz >${f}_half.bdz
    head -c $((sz - 1)) $f.bdz >${f}_m1.bdz
    flip $f.bdz ${f}_flip.bdz $((sz / 3))
    raw $f.bdz | head -c $(($(raw $f.bdz | wc -c) - 3)) | pack >${f}_cut.bdz   # a valid frame, a cut record
    { cat $f.bdz; printf 'garbage'; } >${f}_tail.bdz
    raw $f.bdz | zstd -q --no-check -c >${f}_nocheck.bdz
done
head -c 100000 /dev/urandom >random.bin
printf 'hello\n' >plain.txt
printf 'a\0b\n' >nul.txt
printf '\377\376bad utf8\n' >badutf8.txt
printf 'x\r\ny\r\n\r\nz\r\n' >crlf.txt
: >empty.txt
printf '\n\n\n' >blank.txt
python3 -c "print('word ' * 200000)" >longline.txt
cp m.bin nan.bin
printf '\000\000\300\177' | dd of=nan.bin bs=1 seek=4000 conv=notrunc 2>/dev/null
cp m.bin inf.bin
printf '\000\000\200\177' | dd of=inf.bin bs=1 seek=40000 conv=notrunc 2>/dev/null
head -c 1000 m.bin >m_trunc.bin
head -c 28 m.bin >m_hdr.bin
{ hdr 64 172 5 8 4 512 512; tail -c +29 m.bin; } >m_same.bin
{ hdr 0 172 5 8 4 512 512; tail -c +29 m.bin; } >m_dim0.bin
{ hdr 64 172 5 7 4 512 512; tail -c +29 m.bin; } >m_heads7.bin
{ hdr 64 172 5 8 3 512 512; tail -c +29 m.bin; } >m_kv3.bin
{ hdr 64 172 5 8 4 -512 512; tail -c +29 m.bin; } >m_vneg.bin
{ hdr 2147483647 172 5 8 4 512 512; tail -c +29 m.bin; } >m_huge.bin
{ hdr 64 172 5 8 4 512 0; tail -c +29 m.bin; } >m_seq0.bin
{ hdr 64 172 5 8 4 512 2147483647; tail -c +29 m.bin; } >m_seqhuge.bin
{ hdr 64 172 100 8 4 512 512; tail -c +29 m.bin; } >m_layers100.bin
{ hdr 64 172 5 8 4 600 512; tail -c +29 m.bin; } >m_vocab600.bin
printf 'GGUF\003\000\000\000' >m.gguf
"$BD_BIN/bd-pack" -q -m m.bin -k tok.bin --format gguf -o good.gguf
gsz=$(wc -c <good.gguf)
head -c $((gsz / 2)) good.gguf >g_half.gguf    # inside the tensor data
head -c 3000 good.gguf >g_meta.gguf            # inside the vocabulary
cp good.gguf g_nan.gguf
printf '\000\000\300\177' | dd of=g_nan.gguf bs=1 seek=$((gsz - 400)) conv=notrunc 2>/dev/null
head -c 1000 tok.bin >tok_trunc.bin
printf '{"model":{"type":"BPE","vocab":{}}' >tok_bad.json
printf '{"model":{"type":"Unigram"}}' >tok_uni.json
# Hugging Face directories, each with one thing wrong.
hfdir() { mkdir -p "$1"; printf '%s' "$2" >"$1/config.json"; }
hfdir hf_badjson '{"hidden_size": 64,'
hfdir hf_nofields '{}'
hfdir hf_neg '{"hidden_size":-64,"intermediate_size":172,"num_hidden_layers":5,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":512,"max_position_embeddings":512}'
hfdir hf_str '{"hidden_size":"64","intermediate_size":172,"num_hidden_layers":5,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":512,"max_position_embeddings":512}'
hfdir hf_noweights '{"hidden_size":64,"intermediate_size":172,"num_hidden_layers":5,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":512,"max_position_embeddings":512}'
cp -r hf_noweights hf_st && printf '\377\377\377\377\377\377\377\177{}' >hf_st/model.safetensors
cp -r hf_noweights hf_st2 && printf '\010\000\000\000\000\000\000\000{"a":1}' >hf_st2/model.safetensors
cp -r hf_noweights hf_st3 && { printf '\100\000\000\000\000\000\000\000'; printf '%-64s' '{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'; } >hf_st3/model.safetensors
# Task files.
printf '' >task_empty.jsonl
printf '{"context":"a","choices":[" b"," c"]}\n' >task_nogold.jsonl
printf '{"context":"a","choices":[" b"," c"],"gold":2}\n' >task_gold2.jsonl
printf '{"context":"a","choices":[" b"," c"],"gold":-1}\n' >task_goldneg.jsonl
printf '{"context":"a","choices":[" b"," c"],"gold":0.5}\n' >task_goldf.jsonl
printf '{"context":"a","choices":[],"gold":0}\n' >task_nochoice.jsonl
printf '{"context":"a","choices":[" b"],"gold":0}\n' >task_onechoice.jsonl
printf '{"context":"a","choices":[" b"," c"],"gold":0}\nnot json\n' >task_badline.jsonl
printf '{"context":"","choices":["",""],"gold":0}\n' >task_emptystr.jsonl
printf '{"context":5,"choices":[" b"," c"],"gold":0}\n' >task_ctxnum.jsonl
printf '{"goal":"a","sol1":"b","sol2":"c"}\n' >piqa.jsonl
printf 'abc\n' | bzip2 >task.bz2
head -c 20 task.bz2 >task_trunc.bz2
printf 'BZh9garbage' >task_garbage.bz2
printf 'ctx\nx\n' >hs_short.txt
# Labelled data for bd-task.
printf 'label\tsentence\n0\tgood film\n1\tbad film\n' >lab.tsv
printf 'label\tsentence\n0\tgood\n7\tbad\n' >lab_badlabel.tsv
printf 'label\tsentence\n0\tgood\textra\n' >lab_cols.tsv
printf 'label\tsentence\n' >lab_header.tsv
printf '{"label":0,"sentence":"a"}\n{"label":1,"sentence":' >lab_trunc.jsonl
printf '{"label":0,"sentence":5}\n' >lab_num.jsonl
printf 'label\tsentence\n0\ta\000b\n' >lab_nul.tsv
# Run states and logs.
mkdir -p runs
cd "$I"
cd /

# ---- A: corrupt streams, given to every consumer -------------------------------------------
for v in empty 4 half m1 flip cut tail nocheck; do
    try stream fail "bd-cat --check t_$v" "bd-cat --check \$I/t_$v.bdz"
    try stream fail "bd-eval tokens t_$v" "bd-eval -q -m \$I/m.bin -T 64 -o e.bdz \$I/t_$v.bdz"
    try stream fail "bd-qat tokens t_$v" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 1 -o o.bdz \$I/t_$v.bdz"
    try stream fail "bd-clipsearch calib t_$v" "bd-clipsearch -q -m \$I/m.bin -c \$I/t_$v.bdz --bits 2 --group 32 -T 32 -o c.bdz"
    try stream fail "bd-tokenize --decode t_$v" "bd-tokenize -q -k \$I/tok.bin --decode -o d.txt \$I/t_$v.bdz"
    try stream fail "bd-qat --data s_$v" "bd-qat -q -m \$I/m.bin --data \$I/s_$v.bdz --loss fkl --quant int --bits 2 --group 32 -T 64 -b 2 --steps 1 -o o.bdz"
    try stream fail "bd-eval -m st_$v" "bd-eval -q -m \$I/st_$v.bdz -T 64 \$I/t.bdz"
    try stream fail "bd-eval -m pk_$v" "bd-eval -q -m \$I/pk_$v.bdz -T 64 \$I/t.bdz"
    try stream fail "bd-pack -m st_$v" "bd-pack -q -m \$I/st_$v.bdz -o p.bdz"
    try stream fail "bd-eval --clip clip2_$v" "bd-eval -q -m \$I/m.bin --quant int --bits 2 --group 32 --clip \$I/clip2_$v.bdz -T 64 \$I/t.bdz"
    try stream fail "bd-cat --check ev_$v" "bd-cat --check \$I/ev_$v.bdz"
done
try stream fail "tokens from stdin, empty" "bd-eval -q -m \$I/m.bin -T 64 < \$I/empty.txt"
try stream fail "tokens from stdin, truncated" "bd-eval -q -m \$I/m.bin -T 64 < \$I/t_half.bdz"
try stream fail "random bytes as tokens" "bd-eval -q -m \$I/m.bin -T 64 \$I/random.bin"
try stream fail "text given as tokens" "bd-eval -q -m \$I/m.bin -T 64 \$I/plain.txt"
try stream fail "a directory as tokens" "bd-eval -q -m \$I/m.bin -T 64 \$I/empty"
try stream fail "missing tokens file" "bd-eval -q -m \$I/m.bin -T 64 \$I/nope.bdz"
try stream fail "samples as tokens (schema)" "bd-eval -q -m \$I/m.bin -T 64 \$I/s.bdz"
try stream fail "clip as calibration" "bd-clipsearch -q -m \$I/m.bin -c \$I/clip2.bdz --bits 2 --group 32 -T 32 -o c.bdz"
try stream fail "clip as --data" "bd-qat -q -m \$I/m.bin --data \$I/clip2.bdz --loss fkl --quant int --bits 2 --group 32 -T 64 -b 2 --steps 1 -o o.bdz"
try stream fail "tokens as --data with --mask-prompt" "bd-qat -q -m \$I/m.bin --data \$I/t.bdz --mask-prompt --loss fkl --quant int --bits 2 --group 32 -T 64 -b 2 --steps 1 -o o.bdz"
try stream fail "tokens as --clip" "bd-eval -q -m \$I/m.bin --quant int --bits 2 --group 32 --clip \$I/t.bdz -T 64 \$I/t.bdz"
try stream fail "--schema mismatch" "bd-cat --check -s bd.samples \$I/t.bdz"
try stream fail "two streams concatenated in one file" "cat \$I/t.bdz \$I/t.bdz > /tmp/adv_cc.\$\$; bd-cat --check /tmp/adv_cc.\$\$; r=\$?; rm -f /tmp/adv_cc.\$\$; exit \$r"
try stream fail "bd-cat -n -1" "bd-cat -n -1 \$I/t.bdz"
try stream fail "bd-cat -n abc" "bd-cat -n abc \$I/t.bdz"
try stream ok "bd-cat -n 0" "bd-cat -n 0 \$I/t.bdz > /tmp/adv_o.\$\$; r=\$?; rm -f /tmp/adv_o.\$\$; exit \$r"

# ---- B: models -------------------------------------------------------------------------
for f in m_trunc m_hdr m_dim0 m_heads7 m_kv3 m_vneg m_huge m_seq0 m_seqhuge m_layers100 m_vocab600 nan inf random; do
    try model fail "bd-eval -m $f" "bd-eval -q -m \$I/$f.bin -T 64 \$I/t.bdz"
    try model fail "bd-pack -m $f" "bd-pack -q -m \$I/$f.bin --quant int --bits 2 --group 32 -o p.bdz"
done
try model ok "llama2c with the same header rewritten" "bd-eval -q -m \$I/m_same.bin -T 64 \$I/t.bdz"
for f in m_dim0 m_huge nan inf m_vocab600; do
    try model fail "bd-qat -m $f" "bd-qat -q -m \$I/$f.bin --loss ce -T 32 -b 2 --steps 1 -o o.bdz \$I/t.bdz"
    try model fail "bd-teacher-gen -m $f" "bd-teacher-gen -q -m \$I/$f.bin -k \$I/tok.bin -n 1 -K 4 -o s.bdz"
    try model fail "bd-clipsearch -m $f" "bd-clipsearch -q -m \$I/$f.bin -c \$I/t.bdz --bits 2 --group 32 -T 32 -o c.bdz"
done
for d in hf empty hf_badjson hf_nofields hf_neg hf_str hf_noweights hf_st hf_st2 hf_st3; do
    try model fail "HF dir $d" "bd-eval -q -m \$I/$d -T 64 \$I/t.bdz"
done
try model fail "GGUF as model" "bd-eval -q -m \$I/m.gguf -T 64 \$I/t.bdz"
try model ok "a GGUF bd wrote" "bd-eval -q -m \$I/good.gguf -T 64 \$I/t.bdz"
for f in g_half g_meta g_nan; do
    try model fail "GGUF $f" "bd-eval -q -m \$I/$f.gguf -T 64 \$I/t.bdz"
done
try model fail "GGUF through a pipe" "bd-eval -q -m - -T 64 \$I/t.bdz < \$I/good.gguf"
try model fail "q2_K on rows of 64" "bd-qat -q -m \$I/m.bin --quant q2_K --loss ce -T 32 -b 2 --steps 1 -o o.bdz \$I/t.bdz"
try model fail "GGUF q2_K of an int student" "bd-pack -q -m \$I/m.bin --quant int --bits 2 --group 32 --format gguf --gguf-type q2_K -k \$I/tok.bin -o p.gguf"
try output fail "--format hf onto an existing directory" "mkdir hf_out; bd-pack -q -m \$I/m.bin --format hf -k \$I/tok.bin -o hf_out; r=\$?; rmdir hf_out; exit \$r"
try output ok "--format hf" "bd-pack -q -m \$I/m.bin --format hf -k \$I/tok.bin -o hf_out && rm -r hf_out"
try model fail "tokens stream as model" "bd-eval -q -m \$I/t.bdz -T 64 \$I/t.bdz"
try model fail "clip stream as model" "bd-pack -q -m \$I/clip2.bdz -o p.bdz"
try model fail "missing model" "bd-eval -q -m \$I/none.bin -T 64 \$I/t.bdz"
try model fail "model is /dev/zero" "bd-eval -q -m /dev/zero -T 64 \$I/t.bdz"
try model fail "model is a FIFO with no writer data" "mkfifo f; (printf xx > f &); bd-eval -q -m f -T 64 \$I/t.bdz; r=\$?; rm -f f; exit \$r"
try model fail "tokens beyond the vocabulary (32k tokenizer, 512 model)" "bd-tokenize -q -k \$BD_DATA/tokenizers/llama2-32k -o - \$I/story.txt | bd-eval -q -m \$I/m.bin -T 64"
try model fail "packed model to bd-qat" "bd-qat -q -m \$I/pk.bdz --loss ce -T 32 -b 2 --steps 1 -o o.bdz \$I/t.bdz"
try model any "student to bd-qat (continue training)" "bd-qat -q -m \$I/st.bdz --loss ce -T 32 -b 2 --steps 1 -o o.bdz \$I/t.bdz"
try model fail "pack a packed model with --quant" "bd-pack -q -m \$I/pk.bdz --quant int --bits 3 -o p.bdz"

# ---- C: tokenizers and text ---------------------------------------------------------------
for f in empty.txt random.bin tok_trunc.bin tok_bad.json tok_uni.json nope.bin; do
    try tok fail "tokenizer $f" "bd-tokenize -q -k \$I/$f -o t.bdz \$I/story.txt"
done
try tok fail "tokenizer is a directory without one" "bd-tokenize -q -k \$I/empty -o t.bdz \$I/story.txt"
try tok fail "text with NUL bytes" "bd-tokenize -q -k \$I/tok.bin -o t.bdz \$I/nul.txt"
try tok any "invalid UTF-8 text" "bd-tokenize -q -k \$I/tok.bin -o t.bdz \$I/badutf8.txt"
try tok ok "CRLF text" "bd-tokenize -q -k \$I/tok.bin -o t.bdz \$I/crlf.txt"
try tok any "empty text" "bd-tokenize -q -k \$I/tok.bin -o t.bdz \$I/empty.txt"
try tok any "only blank lines" "bd-tokenize -q -k \$I/tok.bin -o t.bdz \$I/blank.txt"
try tok ok "one 1 MB line" "bd-tokenize -q -k \$I/tok.bin -o t.bdz \$I/longline.txt"
try tok fail "JSONL field missing" "bd-tokenize -q -k \$I/tok.bin --field nope -o t.bdz \$I/prompts.jsonl"
try tok fail "JSONL field on plain text" "bd-tokenize -q -k \$I/tok.bin --field q -o t.bdz \$I/story.txt"
try tok fail "missing input file" "bd-tokenize -q -k \$I/tok.bin -o t.bdz \$I/none.txt"
try tok fail "a directory as input" "bd-tokenize -q -k \$I/tok.bin -o t.bdz \$I/empty"
try tok fail "decode with a tokenizer too small for the ids" "bd-tokenize -q -k \$BD_DATA/tokenizers/llama2-32k -o - \$I/story.txt | bd-tokenize -q -k \$I/tok.bin --decode -o d.txt"
try tok fail "output to a full disk" "bd-tokenize -q -k \$I/tok.bin -o /dev/full \$I/story.txt"
try tok fail "stdout to a full disk" "bd-tokenize -q -k \$I/tok.bin \$I/story.txt > /dev/full"
try tok fail "--text with NUL bytes (bd-eval)" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --text \$I/nul.txt -T 64"
try tok fail "bd-eval --text of an empty file" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --text \$I/empty.txt -T 64"

# ---- D: options ----------------------------------------------------------------------------
for t in bd-cat bd-tokenize bd-teacher-gen bd-clipsearch bd-qat bd-eval bd-pack bd-task; do
    try option fail "$t unknown option" "$t --no-such-option"
    try option fail "$t missing argument" "$t --threads"
    try option ok "$t --threads 0 (all CPUs)" "$t --threads 0 --help"
    try option fail "$t --threads huge" "$t --threads 99999999999999999999 --help"
    try option fail "$t --verbosity 9" "$t --verbosity 9 --help"
    try option fail "$t --seed abc" "$t --seed abc --help"
done
E="bd-eval -q -m \$I/m.bin"
for a in "-T 0" "-T -5" "-T 1" "-T 600" "-T 1000000" "-b 0" "-b -1" "--stride 0" "--stride 65" "--group 0" "--group -1" \
         "--quant foo" "--quant int --bits 1" "--quant int --bits 9" "--quant nf3 --bits 2" "--quant ternary --bits 3" \
         "--bits 3" "--act int9" "--act int8" "--limit -1" "--generate -1" "--generate 0"; do
    try option any "bd-eval $a" "$E $a \$I/t.bdz"
done
try option fail "bd-eval -T 600 (above the 512 context)" "$E -T 600 \$I/t.bdz"
try option fail "bd-eval two token files" "$E -T 64 \$I/t.bdz \$I/t.bdz"
try option fail "bd-eval --text and tokens" "$E -k \$I/tok.bin --text \$I/story.txt \$I/t.bdz"
try option fail "bd-eval no model" "bd-eval -T 64 \$I/t.bdz"
Q="bd-qat -q -m \$I/m.bin --loss ce -o o.bdz"
for a in "--lr nan" "--lr -1" "--lr inf" "--lr 1e400" "--steps 0" "--steps -1" "--grad-accum 0" "-b 0" "-T 0" "-T 1000" \
         "--loss foo" "--schedule foo" "--warmup -1" "--beta2 1" "--beta2 nan" "--grad-clip -1" "--weight-decay nan" \
         "--epochs 0" "--eval-every 0" "--save-every -1" "--gamma 2" "--gamma nan" "--reduction foo" "--mask-prompt" \
         "--teacher-logits" "--keep-best" "--min-lr -1"; do
    try option any "bd-qat $a" "$Q -T 32 -b 2 --steps 1 $a \$I/t.bdz"
done
try option fail "bd-qat --lr nan" "$Q -T 32 -b 2 --steps 1 --lr nan \$I/t.bdz"
try option fail "bd-qat --loss fkl without --quant is a copy" "bd-qat -q -m \$I/m.bin --loss cakld --gamma 5 -T 32 -b 2 --steps 1 -o o.bdz \$I/t.bdz"
try option fail "bd-qat no -o" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 1 \$I/t.bdz"
G="bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -o s.bdz"
for a in "-n 0" "-n -1" "-K 0" "-K -1" "-b 0" "--temperature -1" "--temperature nan" "--top-k -1" "--top-p 0" "--top-p 2" \
         "--top-p nan" "--logits 0" "--logits 65" "--logits -1" "--prompt-len 0" "-n 1 --field q" "--resume" "--template" \
         "-n 2 --template '{}'" "-n 2 --template '{nope}'" "-n 2 --template '{'" "-n 2 --template alpaca"; do
    try option any "bd-teacher-gen $a" "$G -K 4 $a"
done
try option fail "bd-teacher-gen --top-p 2" "$G -n 1 -K 4 --top-p 2"
try option fail "bd-teacher-gen --logits 65" "$G -n 1 -K 4 --logits 65"
C="bd-clipsearch -q -m \$I/m.bin -c \$I/t.bdz -o c.bdz -T 32 --windows 1 --tokens 16"
for a in "--bits 1" "--bits 9" "--group 0" "--group 7 --bits 2" "--quant nf3 --bits 2" "--grid 0" "--steps 0" "--steps 100" \
         "--windows 0" "--tokens 0" "--exclude '['" "--quant sym --bits 2" "--bits 2 --group 32 --include-qk"; do
    try option any "bd-clipsearch $a" "$C $a"
done
P="bd-pack -q"
for a in "-m \$I/st.bdz --format foo -o p.bdz" "-m \$I/st.bdz --format gguf" "-m \$I/st.bdz --format gguf -o -" \
         "-m \$I/st.bdz --format gguf --gguf-type q4_0 -o p.gguf" "-m \$I/st.bdz --format gguf --gguf-type tq2_0 -o p.gguf" \
         "-m \$I/m.bin -o p.bdz" "-m \$I/m.bin --quant ternary --bits 2 --format gguf -o p.gguf" \
         "-m \$I/m.bin --quant int --bits 2 --group 7 -o p.bdz" "-m \$I/m.bin --quant-head --quant int --bits 2 -o p.bdz"; do
    try option any "bd-pack $a" "$P $a"
done

# ---- E: outputs ---------------------------------------------------------------------------
try output fail "-o into a missing directory" "bd-eval -q -m \$I/m.bin -T 64 -o no/dir/e.bdz \$I/t.bdz"
try output fail "-o is a directory" "mkdir d; bd-eval -q -m \$I/m.bin -T 64 -o d \$I/t.bdz; r=\$?; rmdir d; exit \$r"
try output fail "-o empty string" "bd-eval -q -m \$I/m.bin -T 64 -o '' \$I/t.bdz"
try output fail "-o equal to the input" "cp \$I/t.bdz x.bdz; bd-cat -o x.bdz x.bdz; r=\$?; cmp -s x.bdz \$I/t.bdz || r=99; rm -f x.bdz; exit \$r"
try output fail "-o equal to the input through a link" "cp \$I/t.bdz x.bdz; ln -s x.bdz y.bdz; bd-tokenize -q -k \$I/tok.bin --decode -o y.bdz x.bdz; r=\$?; cmp -s x.bdz \$I/t.bdz || r=99; rm -f x.bdz y.bdz; exit \$r"
try output fail "bd-qat --log equal to -o" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 2 --log o.bdz -o o.bdz \$I/t.bdz"
try output fail "bd-qat -o equal to the data" "cp \$I/t.bdz x.bdz; bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 1 -o x.bdz x.bdz; r=\$?; rm -f x.bdz; exit \$r"
try output fail "bd-qat -o equal to the model" "bd-qat -q -m \$I/st.bdz --loss ce -T 32 -b 2 --steps 1 -o \$I/st.bdz \$I/t.bdz; r=\$?; bd-cat --check \$I/st.bdz >/dev/null || r=99; exit \$r"
try output fail "bd-qat --log equal to OUT.state" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 2 --save-every 1 --log o.bdz.state -o o.bdz \$I/t.bdz"
try output fail "bd-teacher-gen -o equal to prompts" "cp \$I/prompts.txt p.txt; bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p p.txt -K 4 -o p.txt; r=\$?; cmp -s p.txt \$I/prompts.txt || r=99; rm -f p.txt; exit \$r"
try output fail "bd-eval -o equal to the tokens" "cp \$I/t.bdz x.bdz; bd-eval -q -m \$I/m.bin -T 64 -o x.bdz x.bdz; r=\$?; rm -f x.bdz; exit \$r"
try output fail "bd-pack -o equal to the model" "cp \$I/st.bdz x.bdz; bd-pack -q -m x.bdz -o x.bdz; r=\$?; cmp -s x.bdz \$I/st.bdz || r=99; rm -f x.bdz; exit \$r"
try output fail "bd-clipsearch -o equal to calib" "cp \$I/t.bdz x.bdz; bd-clipsearch -q -m \$I/m.bin -c x.bdz --bits 2 --group 32 -T 32 -o x.bdz; r=\$?; rm -f x.bdz; exit \$r"
try output fail "bd-eval -o to /dev/full" "bd-eval -q -m \$I/m.bin -T 64 -o /dev/full \$I/t.bdz"
try output fail "bd-cat stdout to /dev/full" "bd-cat \$I/t.bdz > /dev/full"
try output ok "-o - to a pipe" "bd-cat -o - \$I/t.bdz | head -c 10 >/dev/null"
try output ok "-o onto a null device" "mknod -m666 n c 1 3; bd-eval -q -m \$I/m.bin -T 64 -o n \$I/t.bdz; r=\$?; [ -c n ] || r=99; rm -f n; exit \$r"
try output fail "binary stream to a terminal-less closed stdout" "bd-tokenize -q -k \$I/tok.bin \$I/story.txt >&-"

# ---- F: task files ---------------------------------------------------------------------------
for f in task_empty.jsonl task_nogold.jsonl task_gold2.jsonl task_goldneg.jsonl task_goldf.jsonl task_nochoice.jsonl \
         task_badline.jsonl task_ctxnum.jsonl piqa.jsonl task.bz2 task_trunc.bz2 task_garbage.bz2 hs_short.txt random.bin empty; do
    try task fail "task $f" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --task \$I/$f"
done
try task any "one choice" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --task \$I/task_onechoice.jsonl"
try task any "empty strings" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --task \$I/task_emptystr.jsonl"
try task ok "a valid task" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --task \$I/task.jsonl"
try task fail "--task-format foo" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --task \$I/task.jsonl --task-format foo"
try task fail "jsonl read as hellaswag" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --task \$I/task.jsonl --task-format hellaswag"
try task fail "piqa labels count mismatch" "printf '0\n1\n' > l.lst; bd-eval -q -m \$I/m.bin -k \$I/tok.bin --task \$I/piqa.jsonl --labels l.lst; r=\$?; rm -f l.lst; exit \$r"
try task fail "piqa label 7" "printf '7\n' > l.lst; bd-eval -q -m \$I/m.bin -k \$I/tok.bin --task \$I/piqa.jsonl --labels l.lst; r=\$?; rm -f l.lst; exit \$r"
try task fail "task from empty stdin" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --task - < \$I/empty.txt"

# ---- G: prompts and generation -----------------------------------------------------------
for f in empty.txt blank.txt nul.txt random.bin t_half.bdz clip2.bdz s.bdz; do
    try prompt any "prompts $f" "bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p \$I/$f -K 4 -o s.bdz"
done
try prompt fail "prompts with NUL" "bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p \$I/nul.txt -K 4 -o s.bdz"
try prompt fail "JSONL prompts without --field" "bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p \$I/prompts.jsonl --field nope -K 4 -o s.bdz"
try prompt ok "prompts from a FIFO" "mkfifo f; (cat \$I/prompts.txt > f &); bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p f -K 4 -o s.bdz; r=\$?; rm -f f s.bdz; exit \$r"
try prompt ok "prompts from stdin" "bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p - -K 4 -o s.bdz < \$I/prompts.txt; r=\$?; rm -f s.bdz; exit \$r"
try prompt ok "token prompts from a pipe" "bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p - -K 4 -o s.bdz < \$I/t.bdz; r=\$?; rm -f s.bdz; exit \$r"
try prompt fail "--resume onto a clip stream" "cp \$I/clip2.bdz s.bdz; bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p \$I/prompts.txt -K 4 --resume -o s.bdz; r=\$?; cmp -s s.bdz \$I/clip2.bdz || r=99; rm -f s.bdz; exit \$r"
try prompt fail "--resume onto a truncated stream" "cp \$I/s_half.bdz s.bdz; bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p \$I/prompts.txt -n 8 -K 24 --seed 1 --resume -o s.bdz; r=\$?; rm -f s.bdz; exit \$r"
try prompt fail "--resume with other settings" "cp \$I/s.bdz s.bdz; bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p \$I/prompts.txt -n 8 -K 12 --seed 1 --resume -o s.bdz; r=\$?; cmp -s s.bdz \$I/s.bdz || r=99; rm -f s.bdz; exit \$r"
try prompt fail "--resume without -o" "bd-teacher-gen -q -m \$I/m.bin -k \$I/tok.bin -p \$I/prompts.txt -K 4 --resume"
try prompt ok "bd-eval --generate with a control character in the prompt" "bd-eval -q -m \$I/m.bin -k \$I/tok.bin --generate 4 --prompt \"\$(printf 'a\\001b')\" >/dev/null"

# ---- G2: labelled data (bd-task) and BitNet Distillation's terms -----------------------------
K="bd-task -q --template 'R: {sentence}' --verbalizer '0=a,1=b'"
try task ok "bd-task samples" "$K --samples -k \$I/tok.bin -o s.bdz \$I/lab.tsv; r=\$?; rm -f s.bdz; exit \$r"
try task ok "bd-task eval task" "$K --eval-task -o e.jsonl \$I/lab.tsv; r=\$?; rm -f e.jsonl; exit \$r"
for f in lab_badlabel.tsv lab_cols.tsv lab_header.tsv lab_trunc.jsonl lab_num.jsonl lab_nul.tsv empty.txt story.txt t.bdz nul.txt; do
    try task fail "bd-task on $f" "$K --samples -k \$I/tok.bin -o s.bdz \$I/$f"
done
for a in "--template ''" "--template 'no field'" "--template '{'" "--template '{nope}'" "--verbalizer ''" \
         "--verbalizer '0=a'" "--verbalizer '0=a,0=b'" "--verbalizer '0=a,1=a'" "--verbalizer '0= a,1=b'" "--max-len 1" \
         "--max-len -1" "--limit 0" "--format xml" "--label-field nope"; do
    try task fail "bd-task $a" "bd-task -q --template 'R: {sentence}' --verbalizer '0=a,1=b' --samples -k \$I/tok.bin $a -o s.bdz \$I/lab.tsv"
done
try task fail "bd-task --samples without a tokenizer" "$K --samples -o s.bdz \$I/lab.tsv"
try task fail "bd-task -o equal to the input" "cp \$I/lab.tsv x.tsv; $K --eval-task -o x.tsv x.tsv; r=\$?; cmp -s x.tsv \$I/lab.tsv || r=99; rm -f x.tsv; exit \$r"
D="bd-qat -q -m \$I/st.bdz --loss ce -T 32 -b 2 --steps 1 -o o.bdz"
for a in "--kd-weight 1 --teacher \$I/none.bin" "--kd-weight 1 --teacher \$I/t.bdz" \
         "--ad-weight 1 --ad-layer 99" "--ad-weight 1 --ad-layer -99" "--ad-weight 1 --ad-heads 7" "--ad-weight 1 --ad-heads 0" \
         "--ad-weight nan" "--kd-weight inf" "--kd-temp 0" "--kd-weight 1 --kd-temp nan" "--ad-weight 1 --ad-layer 1:x" \
         "--teacher \$I/m.bin" "--kd-weight 1 --loss fkl" "--ad-layer 0"; do
    try train fail "bd-qat $a" "$D $a \$I/t.bdz"
done
try train ok "bd-qat --kd-weight --ad-weight against --teacher" "$D --teacher \$I/m.bin --kd-weight 1 --ad-weight 10 \$I/t.bdz; r=\$?; rm -f o.bdz; exit \$r"

# ---- H: training data and state -------------------------------------------------------------
try train fail "--teacher-logits with samples without logits" "bd-qat -q -m \$I/m.bin --data \$I/s.bdz --teacher-logits --loss fkl --quant int --bits 2 --group 32 -T 64 -b 2 --steps 1 -o o.bdz"
try train ok "--teacher-logits with logits" "bd-qat -q -m \$I/m.bin --data \$I/sl.bdz --teacher-logits --loss fkl --quant int --bits 2 --group 32 -T 64 -b 2 --steps 1 -o o.bdz; r=\$?; rm -f o.bdz; exit \$r"
try train fail "--clip for 2 bits into 3-bit QAT" "bd-qat -q -m \$I/m.bin --data \$I/s.bdz --clip \$I/clip2.bdz --loss fkl --quant int --bits 3 --group 32 -T 64 -b 2 --steps 1 -o o.bdz"
try train fail "--clip for group 32 into group 64" "bd-qat -q -m \$I/m.bin --data \$I/s.bdz --clip \$I/clip2.bdz --loss fkl --quant int --bits 2 --group 64 -T 64 -b 2 --steps 1 -o o.bdz"
try train fail "--eval with a corrupt stream" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 1 --eval \$I/t_half.bdz -o o.bdz \$I/t.bdz"
try train fail "data shorter than one sequence" "printf 'Hi.\n' > a.txt; bd-tokenize -q -k \$I/tok.bin -o a.bdz a.txt; bd-qat -q -m \$I/m.bin --loss ce -T 64 -b 2 --steps 1 -o o.bdz a.bdz; r=\$?; rm -f a.txt a.bdz; exit \$r"
try train fail "--resume onto a corrupt state" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 2 --save-every 1 -o o.bdz \$I/t.bdz && head -c 500 o.bdz.state > x && mv x o.bdz.state && bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 3 --save-every 1 --resume -o o.bdz \$I/t.bdz; r=\$?; rm -f o.bdz*; exit \$r"
try train fail "--resume with another -b" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 2 --save-every 1 -o o.bdz \$I/t.bdz && rm o.bdz && bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 4 --steps 3 --save-every 1 --resume -o o.bdz \$I/t.bdz; r=\$?; rm -f o.bdz*; exit \$r"
try train fail "--resume with other data" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 2 --save-every 1 -o o.bdz \$I/t.bdz && rm o.bdz && bd-tokenize -q -k \$I/tok.bin -o u.bdz \$I/longline.txt && bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 3 --save-every 1 --resume -o o.bdz u.bdz; r=\$?; rm -f o.bdz* u.bdz; exit \$r"
try train fail "--mask-prompt without --data" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 1 --mask-prompt -o o.bdz \$I/t.bdz"
try train fail "NaN learning rate in the middle: --lr 1e30" "bd-qat -q -m \$I/m.bin --loss ce -T 32 -b 2 --steps 3 --lr 1e30 -o o.bdz \$I/t.bdz"

echo
echo "attempts: $n, broken: $bad"
sort "$W/summary" | uniq -c | awk '{printf "  %-8s %-7s %d\n", $2, $3, $1}'
[ $bad -eq 0 ]
