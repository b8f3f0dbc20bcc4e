#!/usr/bin/python3
# Writes a random Llama model as a Hugging Face directory (config.json + model.safetensors, f32,
# tied embeddings) for tests that need shapes the real stories260K lacks (rows that are
# multiples of 256 for llama.cpp's K-quants and TQ2_0).
#   make_hf_model.py OUTDIR DIM FFN LAYERS HEADS VOCAB SEED [CONTEXT (256)]
# Linear weights ~ N(0, 1/fan_in), norms 1 + small noise, embedding ~ N(0, 0.05^2) (logits O(1)).
import json
import os
import struct
import sys

import numpy as np


def main(argv):
    out, C, F, L, NH, V, seed = argv[0], *map(int, argv[1:7])
    ctx = int(argv[7]) if len(argv) > 7 else 256
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    t = {"model.embed_tokens.weight": 0.05 * rng.standard_normal((V, C)), "model.norm.weight": 1 + 0.1 * rng.standard_normal(C)}
    lin = {"self_attn.q_proj": (C, C), "self_attn.k_proj": (C, C), "self_attn.v_proj": (C, C),
           "self_attn.o_proj": (C, C), "mlp.gate_proj": (F, C), "mlp.up_proj": (F, C), "mlp.down_proj": (C, F)}
    for l in range(L):
        p = "model.layers.%d." % l
        for name, shape in lin.items():
            t[p + name + ".weight"] = rng.standard_normal(shape) / np.sqrt(shape[1])
        t[p + "input_layernorm.weight"] = 1 + 0.1 * rng.standard_normal(C)
        t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.standard_normal(C)
    header, off, blobs = {}, 0, []
    for name in sorted(t):
        a = np.ascontiguousarray(t[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": C, "intermediate_size": F,
           "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": NH, "vocab_size": V,
           "max_position_embeddings": ctx, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
           "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
