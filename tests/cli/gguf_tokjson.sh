# GGUF export of Hugging Face tokenizer.json vocabularies: a byte-level BPE (tokenizer.ggml.model
# "gpt2": pieces as stored, the merges in rank order as "left right", the pre-tokenizer named
# after the split pattern, special tokens as control) and a SentencePiece-style one (model
# "llama": pieces with U+2581, scores that make llama.cpp's SentencePiece merging follow the
# ranks: -k for the piece merge k makes first, -1e9 for pieces no merge makes). An independent
# Python reader compares the file with the tokenizer.json itself.
. "$(dirname "$0")/lib.sh"
FIX=$(cd "$(dirname "$0")/../fixtures" && pwd)
need_numpy
cat >"$T/check.py" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[1])
from gguf_bitnet import read_gguf
kv, _ = read_gguf(sys.argv[2])
tj = json.load(open(sys.argv[3]))
kind = sys.argv[4]
vocab = tj["model"]["vocab"]
for a in tj.get("added_tokens", []):
    vocab[a["content"]] = a["id"]
pieces = [None] * (max(vocab.values()) + 1)
for p, i in vocab.items():
    pieces[i] = p
merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
toks, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
assert toks == pieces, "tokens differ from the vocab"
special = {a["id"] for a in tj.get("added_tokens", []) if a.get("special")}
if kind == "bytelevel":
    assert kv["tokenizer.ggml.model"] == "gpt2", kv["tokenizer.ggml.model"]
    assert kv["tokenizer.ggml.pre"] == "qwen2", kv["tokenizer.ggml.pre"]
    assert kv["tokenizer.ggml.merges"] == merges, "merges differ"
    assert "tokenizer.ggml.scores" not in kv
    for i, t in enumerate(types):
        assert t == (3 if i in special else 1), (i, t)
else:
    assert kv["tokenizer.ggml.model"] == "llama"
    assert "tokenizer.ggml.merges" not in kv
    want = [-1e9] * len(pieces)
    for k in reversed(range(len(merges))):
        a, b = merges[k].split(" ")
        want[vocab[a + b]] = -float(k)
    got = kv["tokenizer.ggml.scores"]
    assert all(abs(g - w) <= 1e-3 * max(1, abs(w)) for g, w in zip(got, want)), (got, want)
    for i, p in enumerate(pieces):
        w = 2 if p == "<unk>" else 3 if i in special or p in ("<s>", "</s>") else 6 if p.startswith("<0x") else 1
        assert types[i] == w, (i, p, types[i], w)
print("ok: %d tokens, %d merges, model %s" % (len(toks), len(merges), kv["tokenizer.ggml.model"]))
EOF
# Random models with the fixtures' vocabulary sizes (265 with the added token, 21).
expect_ok $PY "$(dirname "$0")/make_hf_model.py" "$T/hb" 64 128 1 4 265 3
expect_ok $PY "$(dirname "$0")/make_hf_model.py" "$T/hs" 64 128 1 4 21 3
expect_ok bd-pack --model "$T/hb" -k "$FIX/tok_bytelevel/tokenizer.json" --format gguf -o "$T/hb.gguf"
expect_ok $PY "$T/check.py" "$(dirname "$0")" "$T/hb.gguf" "$FIX/tok_bytelevel/tokenizer.json" bytelevel
expect_out_contains "model gpt2"
expect_ok bd-pack --model "$T/hs" -k "$FIX/tok_spm/tokenizer.json" --format gguf -o "$T/hs.gguf"
expect_ok $PY "$T/check.py" "$(dirname "$0")" "$T/hs.gguf" "$FIX/tok_spm/tokenizer.json" spm
expect_out_contains "model llama"
# The checker fails on the other kind's file.
! $PY "$T/check.py" "$(dirname "$0")" "$T/hs.gguf" "$FIX/tok_spm/tokenizer.json" bytelevel >"$T/out" 2>&1 ||
    fail "the checker passes a SentencePiece file as byte-level"
# A vocabulary of another size than the model's: one line, no file.
expect_fail 1 bd-pack --model "$T/hs" -k "$FIX/tok_bytelevel/tokenizer.json" --format gguf -o "$T/x.gguf"
expect_err_contains "the tokenizer has 265 tokens, the model's vocabulary 21"
[ ! -e "$T/x.gguf" ] || fail "a refused export left a file"
exit 0
