# bd-pack --format hf: a Hugging Face directory (config.json, model.safetensors, the tokenizer)
# holding what the model computes with: the real stories260K (interleaved RoPE, so q/k rows are
# permuted to transformers' half-split layout), a q2_K student (its fake-quantized weights) and
# a packed int student (its decoded rows). bd reads each back to the same loss; an independent
# Python reader checks the safetensors layout and names as transformers' Llama expects them.
. "$(dirname "$0")/lib.sh"
M=$BD_DATA/models/stories260K
TXT=$BD_DATA/eval/tinystories/tinystories_val_a.txt
need_numpy
head -c 20000 "$TXT" >"$T/tr.txt"
tail -c 6000 "$TXT" >"$T/ev.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" -o "$T/tr.bdz" "$T/tr.txt"
expect_ok bd-tokenize --tokenizer "$M/tok512.bin" --whole -o "$T/ev.bdz" "$T/ev.txt"
ev() { expect_ok bd-eval --model "$1" -k "$M/tok512.bin" -T 64 --json --threads 1 "$T/ev.bdz"; nll; }

# The independent reader: safetensors header, names, shapes, dtype; config keys.
cat >"$T/check.py" <<'EOF'
import json, struct, sys
d, dtype, L = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = json.load(open(d + "/config.json"))
b = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8 : 8 + n])
h.pop("__metadata__", None)
C, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
KD = cfg["num_key_value_heads"] * cfg["head_dim"]
want = {"model.embed_tokens.weight": [V, C], "model.norm.weight": [C]}
for l in range(L):
    p = "model.layers.%d." % l
    want.update({p + "input_layernorm.weight": [C], p + "post_attention_layernorm.weight": [C],
                 p + "self_attn.q_proj.weight": [C, C], p + "self_attn.k_proj.weight": [KD, C],
                 p + "self_attn.v_proj.weight": [KD, C], p + "self_attn.o_proj.weight": [C, C],
                 p + "mlp.gate_proj.weight": [F, C], p + "mlp.up_proj.weight": [F, C], p + "mlp.down_proj.weight": [C, F]})
assert sorted(h) == sorted(want), sorted(set(h) ^ set(want))
end = 0
for k, v in h.items():
    assert v["shape"] == want[k], (k, v["shape"], want[k])
    assert v["dtype"] == dtype, (k, v["dtype"])
    size = 2 if dtype == "BF16" else 4
    o = v["data_offsets"]
    assert o[1] - o[0] == size * eval("*".join(map(str, v["shape"]))), k
    end = max(end, o[1])
assert 8 + n + end == len(b), "data block size"
assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"]
assert cfg["torch_dtype"] == {"F32": "float32", "BF16": "bfloat16"}[dtype]
assert cfg["tie_word_embeddings"] is True and cfg["num_hidden_layers"] == L
print("ok: %d tensors %s" % (len(h), dtype))
EOF

# The real model: same loss from the export (f32); bf16 close.
ref=$(ev "$M/stories260K.bin")
expect_ok bd-pack --model "$M/stories260K.bin" --format hf -o "$T/fp"
for f in config.json model.safetensors tokenizer.bin tokenizer.model; do [ -s "$T/fp/$f" ] || fail "no $f"; done
cmp -s "$T/fp/tokenizer.bin" "$M/tok512.bin" || fail "tokenizer.bin is not the model's"
cmp -s "$T/fp/tokenizer.model" "$M/tok512.model" || fail "tokenizer.model is not the SentencePiece file beside it"
expect_ok $PY "$T/check.py" "$T/fp" F32 5
a=$(ev "$T/fp")
within "$a" "$ref" 1e-5 || fail "HF export of stories260K: nll $a, the original $ref"
expect_ok bd-pack --model "$M/stories260K.bin" --format hf --hf-dtype bf16 -o "$T/fp16"
expect_ok $PY "$T/check.py" "$T/fp16" BF16 5
a=$(ev "$T/fp16")
within "$a" "$ref" 2e-2 || fail "bf16 export: nll $a, the original $ref"
[ "$a" != "$ref" ] || fail "bf16 rounding changed nothing"
# bd-eval maps a Hugging Face model's linears in the file's dtype: the bf16 rows computed with
# directly give the loss of the same values widened to f32 in a file (up to summation order).
expect_ok bd-pack --model "$T/fp16" --format hf -o "$T/fp16as32"
b=$(ev "$T/fp16as32")
within "$a" "$b" 1e-6 || fail "bf16 rows mapped: nll $a, the same values as f32 $b"
expect_ok bd-eval --model "$T/fp16" -k "$M/tok512.bin" -T 64 --threads 1 "$T/ev.bdz"
grep -q "linears mapped from the file" "$T/out" || fail "bd-eval does not say the bf16 model is mapped"
# bd-pack packs a mapped model one matrix at a time: the same records from bf16 rows as from the
# same values in f32; a model without storage for its linears cannot be exported to HF again.
expect_ok bd-pack --model "$T/fp16" --quant int --bits 2 --group 32 -o "$T/pm.bdz"
expect_ok bd-pack --model "$T/fp16as32" --quant int --bits 2 --group 32 -o "$T/pc.bdz"
expect_ok bd-cat --full "$T/pm.bdz"
tail -n +2 "$T/out" >"$T/pm.json"
expect_ok bd-cat --full "$T/pc.bdz"
tail -n +2 "$T/out" >"$T/pc.json"
cmp -s "$T/pm.json" "$T/pc.json" || fail "packing mapped bf16 rows differs from packing their f32 values"
grep -q '"name":"layers.0.wq","dtype":"u8"' "$T/pm.json" || fail "wq of layer 0 is not packed in the mapped model's packing"

# A q2_K student (a 256-wide model): its fake-quantized weights, exactly.
expect_ok $PY "$(dirname "$0")/make_hf_model.py" "$T/hf" 256 512 2 4 512 7
expect_ok bd-qat -m "$T/hf" --quant q2_K --loss ce --steps 2 -b 2 -T 32 --threads 1 -o "$T/s.bdz" "$T/tr.bdz"
ref=$(ev "$T/s.bdz")
expect_ok bd-pack --model "$T/s.bdz" -k "$M/tok512.bin" --format hf -o "$T/s"
a=$(ev "$T/s")
[ "$a" = "$ref" ] || fail "q2_K student as HF: nll $a, the student $ref"
# A packed int student: the decoded rows.
expect_ok bd-pack --model "$M/stories260K.bin" --quant int --bits 2 --group 32 --head-format f32 -o "$T/p.bdz"
ref=$(ev "$T/p.bdz")
expect_ok bd-pack --model "$T/p.bdz" -k "$M/tok512.bin" --format hf -o "$T/p"
a=$(ev "$T/p")
within "$a" "$ref" 1e-4 || fail "packed student as HF: nll $a, packed $ref"

# Refusals: one line, nothing written.
expect_fail 1 bd-pack --model "$M/stories260K.bin" --format hf -o "$T/fp"
expect_err_contains "exists; --format hf writes a new directory"
expect_fail 2 bd-pack --model "$M/stories260K.bin" --format hf -o -
expect_fail 2 bd-pack --model "$M/stories260K.bin" --hf-dtype bf16 -o "$T/x.bdz"
expect_err_contains "--hf-dtype needs --format hf"
expect_fail 2 bd-pack --model "$M/stories260K.bin" --format hf --hf-dtype f16 -o "$T/x"
expect_ok bd-qat -m "$M/stories260K.bin" --loss ce --quant ternary --subln --steps 1 -b 2 -T 32 --threads 1 -o "$T/sub.bdz" "$T/tr.bdz"
expect_fail 1 bd-pack --model "$T/sub.bdz" --format hf -o "$T/sub"
expect_err_contains "SubLN"
[ ! -e "$T/sub" ] || fail "a refused export left a directory"
ls "$T" | grep -q "sub.tmp" && fail "a refused export left its temporary directory"
exit 0
