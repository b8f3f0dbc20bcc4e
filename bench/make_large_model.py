#!/usr/bin/python3
# Writes a random Llama as a Hugging Face directory (config.json + model.safetensors) one tensor
# at a time, so a 7B-shaped model (13.5 GB in bf16) is made with a few hundred MB of memory:
#   make_large_model.py OUTDIR DIM FFN LAYERS HEADS KV_HEADS VOCAB DTYPE(bf16|f32) [SEED] [CONTEXT]
# Untied embeddings (as Llama 2). Linear weights ~ N(0, 1/fan_in), norms 1 + small noise,
# embedding and head ~ N(0, 0.02^2). Used by bench/large.sh (make bench-large), never by tests.
import json
import os
import struct
import sys

import numpy as np


def bf16_bytes(a):
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()


def main(argv):
    out, C, F, L, NH, KV, V, dtype = argv[0], *map(int, argv[1:7]), argv[7]
    seed = int(argv[8]) if len(argv) > 8 else 1
    ctx = int(argv[9]) if len(argv) > 9 else 4096
    HS = C // NH
    esize = {"bf16": 2, "f32": 4}[dtype]
    shapes = {"model.embed_tokens.weight": (V, C), "lm_head.weight": (V, C), "model.norm.weight": (C,)}
    lin = {"self_attn.q_proj": (NH * HS, C), "self_attn.k_proj": (KV * HS, C), "self_attn.v_proj": (KV * HS, C),
           "self_attn.o_proj": (C, NH * HS), "mlp.gate_proj": (F, C), "mlp.up_proj": (F, C), "mlp.down_proj": (C, F)}
    for l in range(L):
        p = "model.layers.%d." % l
        for name, shape in lin.items():
            shapes[p + name + ".weight"] = shape
        shapes[p + "input_layernorm.weight"] = (C,)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
    header, off = {}, 0
    for name in sorted(shapes):
        n = int(np.prod(shapes[name])) * esize
        header[name] = {"dtype": dtype.upper(), "shape": list(shapes[name]), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "model.safetensors.part")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name in sorted(shapes):
            shape = shapes[name]
            if len(shape) == 1:
                a = 1 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
            elif "embed" in name or "lm_head" in name:
                a = 0.02 * rng.standard_normal(shape, dtype=np.float32)
            else:
                a = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(shape[1]))
            f.write(bf16_bytes(a) if dtype == "bf16" else a.astype("<f4").tobytes())
    os.replace(tmp, os.path.join(out, "model.safetensors"))
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": C, "intermediate_size": F,
           "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": KV, "vocab_size": V,
           "max_position_embeddings": ctx, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
           "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
           "torch_dtype": "bfloat16" if dtype == "bf16" else "float32"}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
