# bd-task on the real SST-2 files: training samples whose prompt and completion are the
# tokenizer's encodings of the context and of context + " " + word (checked through
# bd-tokenize), trained on briefly by bd-qat --mask-prompt; the full dev set as a bd-eval task
# file (872 items, gold counted independently with awk) scored by bd-eval; JSONL input and
# standard input; every bad input: exit status, one line, no output file.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TRAIN=$BD_DATA/tasks/sst2/train.tsv
DEV=$BD_DATA/tasks/sst2/dev.tsv
TPL='Review: {2}\nSentiment:'
VB='0=negative,1=positive'
expect_common_options bd-task

# one_line: the last command's message is a single line.
one_line() { [ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err" >&2; fail "message is not one line"; }; }
# ids FILE FIELD: each record's FIELD values of a stream, one JSON array per line.
ids() { bd-cat --full "$1" | jq -c "select(.$2) | .$2.data"; }

# --- training samples: the first 50 training examples, the sentence column by name ---
expect_ok bd-task --template 'Review: {sentence}\nSentiment:' --verbalizer "$VB" --samples -k "$M/tok512.bin" \
    --limit 50 -o "$T/train.bdz" "$TRAIN"
[ ! -s "$T/out" ] || fail "output went to stdout with -o"
expect_ok bd-cat --check --schema bd.samples "$T/train.bdz"
expect_out_contains '"records":50,"ok":true'
expect_ok bd-cat --header "$T/train.bdz"
expect_out_contains '"teacher":{"path":"'"$TRAIN"'","description":"labelled data"}'
expect_out_contains '"template":"Review: {sentence}\\nSentiment:"'
expect_out_contains '"sampling":{"temperature":0,"top_k":0,"top_p":0,"max_new":0}'
expect_out_contains '"n":50,'
bd-cat "$T/train.bdz" | grep -c '"finished":"label"' | grep -qx 50 || fail "not every record is finished \"label\""
# The same texts built with awk and tokenized by bd-tokenize: the prompt is the context's
# encoding (with BOS), prompt + completion the encoding of context + " " + word.
awk -F '\t' 'NR > 1 && NR <= 51 { sub(/\r$/, ""); print $1 "\t" $2 }' "$TRAIN" >"$T/first50"  # CRLF lines
jq -Rc 'split("\t") | {c: ("Review: " + .[1] + "\nSentiment:"), w: (if .[0] == "0" then "negative" else "positive" end)}
        | {ctx: .c, all: (.c + " " + .w)}' "$T/first50" >"$T/texts.jsonl" || fail "jq"
expect_ok bd-tokenize -k "$M/tok512.bin" --field ctx -o "$T/ctx.bdz" "$T/texts.jsonl"
expect_ok bd-tokenize -k "$M/tok512.bin" --field all -o "$T/all.bdz" "$T/texts.jsonl"
ids "$T/train.bdz" prompt >"$T/prompts"
ids "$T/ctx.bdz" ids >"$T/ctx.ids"
[ "$(wc -l <"$T/prompts")" = 50 ] || fail "expected 50 prompts"
cmp -s "$T/prompts" "$T/ctx.ids" || fail "a prompt is not the encoding of its context"
bd-cat --full "$T/train.bdz" | jq -c 'select(.prompt) | .prompt.data + .completion.data' >"$T/joint"
ids "$T/all.bdz" ids | cmp -s - "$T/joint" || fail "prompt + completion is not the encoding of context + \" \" + word"
# The completion is the label word alone: one token sequence per label, two different ones.
ids "$T/train.bdz" completion | paste "$T/first50" - | awk -F '\t' '{ print $1 "\t" $3 }' | sort -u >"$T/pairs"
[ "$(wc -l <"$T/pairs")" = 2 ] || { cat "$T/pairs" >&2; fail "expected one completion per label"; }
[ "$(cut -f 2 "$T/pairs" | sort -u | wc -l)" = 2 ] || fail "the two labels have the same completion"
# bd-qat trains on them with the prompt masked.
expect_ok bd-qat -m "$M/stories260K.bin" --data "$T/train.bdz" --mask-prompt --loss ce -b 4 -T 128 --steps 2 \
    -o "$T/student.bdz"
expect_ok bd-cat --check "$T/student.bdz"
# --max-len: every example fits, the word whole (the same completions), BOS kept.
expect_ok bd-task --template "$TPL" --verbalizer "$VB" --samples -k "$M/tok512.bin" --limit 50 --max-len 40 \
    -o "$T/cut.bdz" "$TRAIN"
expect_err_contains "examples were cut to --max-len 40 tokens"
bd-cat --full "$T/cut.bdz" | jq -e -s '[.[] | select(.prompt) | (.prompt.data | length) + (.completion.data | length) <= 40
    and .prompt.data[0] == 1] | all' >/dev/null || fail "--max-len: an example is longer than 40 or lost its BOS"
ids "$T/train.bdz" completion >"$T/c_full"
ids "$T/cut.bdz" completion | cmp -s - "$T/c_full" || fail "--max-len changed a completion"

# --- the eval task file: the full dev set, {2} for its "content" column ---
expect_ok bd-task --template "$TPL" --verbalizer "$VB" --eval-task -o "$T/dev.jsonl" "$DEV"
[ "$(wc -l <"$T/dev.jsonl")" = 872 ] || fail "expected 872 items, got $(wc -l <"$T/dev.jsonl")"
awk -F '\t' 'NR > 1 { n[$1]++ } END { print n[0] + 0, n[1] + 0 }' "$DEV" >"$T/want_gold"
jq -r .gold "$T/dev.jsonl" | awk '{ n[$1]++ } END { print n[0] + 0, n[1] + 0 }' >"$T/got_gold"
cmp -s "$T/want_gold" "$T/got_gold" || fail "gold counts $(cat "$T/got_gold"), labels $(cat "$T/want_gold")"
# item by item: gold = the line's label, context = the template around its text
jq -r .gold "$T/dev.jsonl" >"$T/golds"
awk -F '\t' 'NR > 1 { print $1 }' "$DEV" | cmp -s - "$T/golds" || fail "gold differs from the labels, item by item"
head -n 1 "$T/dev.jsonl" | jq -e '.context == "Review: one long string of cliches .\nSentiment:" and
    .choices == ["negative", "positive"] and .gold == 0' >/dev/null || fail "first item: $(head -n 1 "$T/dev.jsonl")"
expect_ok bd-eval -m "$M/stories260K.bin" --task "$T/dev.jsonl" --json
expect_out_contains '"n":872,'
# JSONL input (made with jq from the first 20 rows), from standard input: the same items.
awk -F '\t' 'NR > 1 && NR <= 21' "$DEV" | jq -Rc 'split("\t") | {content: .[1], label: (.[0] | tonumber)}' >"$T/dev.jsonl.in"
bd-task --template 'Review: {content}\nSentiment:' --verbalizer "$VB" --eval-task <"$T/dev.jsonl.in" >"$T/dev20" ||
    fail "JSONL from standard input"
head -n 20 "$T/dev.jsonl" | cmp -s - "$T/dev20" || fail "JSONL input gives other items than TSV"

# --- bad input: exit 1, one line naming file and line, no output file ---
bad() {  # bad WANT_TEXT ARGS...: exit 1, one line holding WANT_TEXT, no $T/bad.out
    text=$1; shift  # not "want": expect_fail sets that
    expect_fail 1 bd-task "$@" -o "$T/bad.out"
    one_line
    expect_err_contains "$text"
    [ ! -e "$T/bad.out" ] || fail "output left behind: $*"
    ls "$T" | grep -q '^bad\.out\.tmp' && fail "temporary output left behind: $*"
    return 0
}
first1=$(awk -F '\t' 'NR > 1 && $1 == "1" { print NR; exit }' "$DEV")
bad "\"$DEV\" line $first1: label \"1\" is not in the verbalizer (its labels: 0, 2)" \
    --template "$TPL" --verbalizer '0=negative,2=positive' --eval-task "$DEV"
bad "\"$DEV\" line 1: template field \"sentence\" is not a column of the header; the columns are: label, content" \
    --template 'Review: {sentence}' --verbalizer "$VB" --eval-task "$DEV"
bad "line 1: template field {3} is past the header's 2 columns" --template '{3}' --verbalizer "$VB" --eval-task "$DEV"
bad "line 1: label field \"gold\" is not a column" --template "$TPL" --verbalizer "$VB" --label-field gold --eval-task "$DEV"
: >"$T/empty.tsv"
bad "\"$T/empty.tsv\": empty input" --template "$TPL" --verbalizer "$VB" --samples -k "$M/tok512.bin" "$T/empty.tsv"
head -n 1 "$DEV" >"$T/header.tsv"
bad "no labelled records after the TSV header" --template "$TPL" --verbalizer "$VB" --eval-task "$T/header.tsv"
awk -F '\t' 'NR == 4 { print $0 "\textra"; next } NR <= 6' "$DEV" >"$T/cols.tsv"
bad "\"$T/cols.tsv\" line 4: 3 tab-separated columns, expected 2 as in the header" \
    --template "$TPL" --verbalizer "$VB" --samples -k "$M/tok512.bin" "$T/cols.tsv"
{ head -n 2 "$T/dev.jsonl.in"; printf '{"content": "x", "label": 1\n'; } >"$T/badjson.jsonl"
bad "\"$T/badjson.jsonl\" line 3: invalid JSON" --template '{content}' --verbalizer "$VB" --eval-task "$T/badjson.jsonl"
bad "line 1: template field \"sentence\" is missing; the record has fields: content, label" \
    --template '{sentence}' --verbalizer "$VB" --eval-task "$T/dev.jsonl.in"
printf 'label\ttext\n0\ta\0b\n' >"$T/nul.tsv"
bad "\"$T/nul.tsv\" line 2: NUL byte" --template '{text}' --verbalizer "$VB" --eval-task "$T/nul.tsv"
bad "the label word \"negative\" and one prompt token do not fit in --max-len 3" \
    --template "$TPL" --verbalizer "$VB" --samples -k "$M/tok512.bin" --max-len 3 "$DEV"
# An existing output is kept as it was when the run fails.
echo keep >"$T/keep.jsonl"
expect_fail 1 bd-task --template '{nope}' --verbalizer "$VB" --eval-task -o "$T/keep.jsonl" "$DEV"
[ "$(cat "$T/keep.jsonl")" = keep ] || fail "a failed run replaced its output"
# The output may not be the input.
cp "$T/header.tsv" "$T/same.tsv"
expect_fail 1 bd-task --template "$TPL" --verbalizer "$VB" --eval-task -o "$T/same.tsv" "$T/same.tsv"
one_line
cmp -s "$T/same.tsv" "$T/header.tsv" || fail "the input was overwritten"

# --- usage errors: exit 2, no output file ---
usage() {  # usage WANT_TEXT ARGS...
    text=$1; shift
    expect_fail 2 bd-task "$@" -o "$T/bad.out"
    expect_err_contains "$text"
    [ ! -e "$T/bad.out" ] || fail "output left behind: $*"
}
usage "has no field" --template 'Review: text\nSentiment:' --verbalizer "$VB" --eval-task "$DEV"
usage "\"{\" without \"}\"" --template 'Review: {2' --verbalizer "$VB" --eval-task "$DEV"
usage "--verbalizer: \"0negative\" has no \"=\"" --template "$TPL" --verbalizer '0negative,1=positive' --eval-task "$DEV"
usage "has one label" --template "$TPL" --verbalizer '0=negative' --eval-task "$DEV"
usage "word \"good\" appears twice" --template "$TPL" --verbalizer '0=good,1=good' --eval-task "$DEV"
usage "starts or ends with whitespace" --template "$TPL" --verbalizer '0= negative,1= positive' --eval-task "$DEV"
usage "give one of --samples and --eval-task" --template "$TPL" --verbalizer "$VB" "$DEV"
usage "give one of --samples and --eval-task" --template "$TPL" --verbalizer "$VB" --samples --eval-task "$DEV"
usage "--samples needs --tokenizer" --template "$TPL" --verbalizer "$VB" --samples "$DEV"
usage "--template is required" --verbalizer "$VB" --eval-task "$DEV"
usage "--format: \"csv\"" --template "$TPL" --verbalizer "$VB" --format csv --eval-task "$DEV"
usage "--limit" --template "$TPL" --verbalizer "$VB" --limit 0 --eval-task "$DEV"
usage "one INPUT at most" --template "$TPL" --verbalizer "$VB" --eval-task "$DEV" "$DEV"
usage "unknown option" --template "$TPL" --verbalizer "$VB" --eval-task --no-such-option "$DEV"
exit 0
