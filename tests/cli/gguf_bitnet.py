#!/usr/bin/python3
# An independent reader of GGUF v3 files (written here from the format's layout, sharing no
# code with bd) and a numpy forward pass of llama.cpp's "bitnet" graph, for gguf_bitnet.sh.
#
#   gguf_bitnet.py check FILE HEADER.json TENSORS.jsonl WTYPE
#       HEADER.json: `bd-cat --header` of the student; TENSORS.jsonl: `bd-cat --full` of it;
#       WTYPE f32|f16|tq2_0. Checks the architecture and hyper-parameter keys, every tensor's
#       name, shape and ggml type, and that the norms (sub-norms included) and the embedding
#       equal the student's tensors bit for bit. Prints one line; exit 1 on the first mismatch.
#   gguf_bitnet.py same TYPED.gguf F32.gguf
#       Every tensor of TYPED (any type below) dequantized, in float32 arithmetic as ggml's
#       dequantize_row_* computes it, equals the tensor of the same name in F32 (bd's exact f32
#       export of the same student) bit for bit. Prints the ggml types counted; exit 1 otherwise.
#   gguf_bitnet.py lcpp FILE IDS.json N_CTX [--sub-eps E]
#       The perplexity llama-perplexity -c N_CTX reports, computed by the numpy bitnet graph
#       below on ids from `llama-tokenize --ids` (a JSON list): for checking a runtime's
#       result on bd's file against bd's own arithmetic.
#   gguf_bitnet.py nll FILE IDS.jsonl T [--sub-eps E] [--rope neox|norm]
#       Mean negative log-likelihood over non-overlapping windows of T ids (every position
#       after the first of a window scored, the tail dropped: bd-eval's protocol), computed
#       in float64 from the file's tensors with llama.cpp's bitnet graph: RMSNorm(attn_norm),
#       q/k/v, RoPE (NEOX: pairs i, i + HS/2, as llama.cpp rotates bitnet), causal attention
#       scaled by 1/sqrt(HS), RMSNorm(attn_sub_norm), attn_output, residual; RMSNorm(ffn_norm),
#       silu(gate) * up, RMSNorm(ffn_sub_norm), ffn_down, residual; output_norm, logits with
#       token_embd. Every norm uses the file's epsilon unless --sub-eps gives the sub-norms
#       their own. --rope norm rotates pairs (2i, 2i+1) instead (a control that must differ).
import json
import struct
import sys

import numpy as np

GGML = {0: "f32", 1: "f16", 10: "q2_K", 11: "q3_K", 12: "q4_K", 34: "tq1_0", 35: "tq2_0", 135: "iq2_bn"}
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


class Reader:
    def __init__(self, buf):
        self.b, self.pos = buf, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.b[self.pos : self.pos + n]
        if len(s) != n:
            fail("string past the end of the file")
        self.pos += n
        return s.decode("utf-8")

    def value(self, t):
        if t in SCALAR:
            return self.take(SCALAR[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            return [self.value(et) for _ in range(n)]
        fail("unknown metadata type %d" % t)


def dequant_tq1_0(raw, n):
    # Blocks of 256 weights in 54 bytes: 48 bytes of five base-3 codes, 4 of four, an f16 scale.
    # A byte b holds ceil(v * 256 / 243) for the 5-digit base-3 number v (first code most
    # significant), so v = floor(b * 243 / 256). Byte m < 32: weights m + 32k; 32 <= m < 48:
    # 160 + (m - 32) + 16k; qh byte j: 240 + j + 4k (digit k of 4, a fifth digit 0).
    blk = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 54)
    v = (blk[:, :52].astype(np.int64) * 243) >> 8
    d = blk[:, 52:54].copy().view(np.float16).astype(np.float64)
    out = np.empty((blk.shape[0], 256))
    for i in range(52):
        for k in range(5 if i < 48 else 4):
            w = i + 32 * k if i < 32 else 160 + (i - 32) + 16 * k if i < 48 else 240 + (i - 48) + 4 * k
            out[:, w] = (v[:, i] // 3 ** (4 - k)) % 3 - 1
    return (out * d).reshape(-1)[:n]


def dequant_tq2_0(raw, n):
    # Blocks of 256 weights: 64 bytes of 2-bit codes (weight 128h + 32l + m at bits 2l of
    # qs[32h + m]), then an f16 scale d; the value is (code - 1) * d.
    blk = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 66)
    qs, d = blk[:, :64], blk[:, 64:66].copy().view(np.float16).astype(np.float64)
    out = np.empty((blk.shape[0], 256))
    for i in range(256):
        h, l, m = i // 128, i % 128 // 32, i % 32
        out[:, i] = ((qs[:, 32 * h + m] >> (2 * l)) & 3).astype(np.float64) - 1
    return (out * d).reshape(-1)[:n]


F32 = np.float32


def halves(b):  # (nb, 2) bytes -> (nb,) float32 of the f16 they hold
    return b.copy().view("<f2").astype(F32).reshape(-1)


def dequant_q2_K(raw, n):
    # 84-byte blocks: scales[16] (low nibble scale, high nibble min), qs[64], f16 d, f16 dmin.
    # Weight i = 128h + 32s + l: code at bits 2s of qs[32h + l]; sub-block i // 16;
    # value (d * scale) * code - dmin * min, each product rounded to float32.
    blk = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 84)
    sc, qs, d, dmin = blk[:, :16], blk[:, 16:80], halves(blk[:, 80:82]), halves(blk[:, 82:84])
    out = np.empty((blk.shape[0], 256), dtype=F32)
    for i in range(256):
        h, s, l, j = i // 128, i % 128 // 32, i % 32, i // 16
        code = ((qs[:, 32 * h + l] >> (2 * s)) & 3).astype(F32)
        dl, ml = d * (sc[:, j] & 15).astype(F32), dmin * (sc[:, j] >> 4).astype(F32)
        out[:, i] = dl * code - ml
    return out.reshape(-1)[:n]


def dequant_q3_K(raw, n):
    # 110-byte blocks: hmask[32], qs[64], scales[12], f16 d. Code = low 2 bits (as q2_K) plus
    # 4 * (bit i // 32 of hmask[i % 32]); 6-bit scale j: low 4 bits in scales[j % 8] (low
    # nibble for j < 8, high nibble above), high 2 bits at bits 2 (j // 4) of scales[8 + j % 4];
    # value (d * (scale - 32)) * (code - 4).
    blk = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 110)
    hm, qs, sc, d = blk[:, :32], blk[:, 32:96], blk[:, 96:108].astype(np.int32), halves(blk[:, 108:110])
    out = np.empty((blk.shape[0], 256), dtype=F32)
    for i in range(256):
        h, s, l, j = i // 128, i % 128 // 32, i % 32, i // 16
        low4 = sc[:, j] & 15 if j < 8 else sc[:, j - 8] >> 4
        scale = low4 | ((sc[:, 8 + j % 4] >> (2 * (j // 4))) & 3) << 4
        code = ((qs[:, 32 * h + l] >> (2 * s)) & 3).astype(np.int32) + 4 * ((hm[:, l] >> (i // 32)) & 1)
        out[:, i] = (d * (scale - 32).astype(F32)) * (code - 4).astype(F32)
    return out.reshape(-1)[:n]


def dequant_q4_K(raw, n):
    # 144-byte blocks: f16 d, f16 dmin, scales[12], qs[128]. Weight i = 64h + 32s + l: low
    # (s = 0) or high nibble of qs[32h + l]; sub-block j = i // 32 has a 6-bit scale and min:
    # j < 4: scales[j], scales[j + 4] (low 6 bits); else low 4 bits in the low / high nibble
    # of scales[j + 4], high 2 bits in bits 6-7 of scales[j - 4] / scales[j].
    blk = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 144)
    d, dmin, sc, qs = halves(blk[:, 0:2]), halves(blk[:, 2:4]), blk[:, 4:16].astype(np.int32), blk[:, 16:144]
    out = np.empty((blk.shape[0], 256), dtype=F32)
    for i in range(256):
        h, s, l, j = i // 64, i % 64 // 32, i % 32, i // 32
        if j < 4:
            scale, mn = sc[:, j] & 63, sc[:, j + 4] & 63
        else:
            scale = (sc[:, j + 4] & 15) | (sc[:, j - 4] >> 6) << 4
            mn = (sc[:, j + 4] >> 4) | (sc[:, j] >> 6) << 4
        code = ((qs[:, 32 * h + l] >> (4 * s)) & 15).astype(F32)
        out[:, i] = (d * scale.astype(F32)) * code - dmin * mn.astype(F32)
    return out.reshape(-1)[:n]


def dequant_iq2_bn(raw, rows, cols):
    # Each row: an f32 scale D, then per 64 weights 16 bytes; weight 16s + j of a block at bits
    # 2s of byte j, code q + 1; value (code - 1) * D.
    rb = 4 + cols // 4
    b = np.frombuffer(raw, dtype=np.uint8).reshape(rows, rb)
    D = b[:, :4].copy().view("<f4").reshape(-1)
    qs = b[:, 4:].reshape(rows, cols // 64, 16)
    out = np.empty((rows, cols // 64, 64), dtype=F32)
    for k in range(64):
        out[:, :, k] = ((qs[:, :, k % 16] >> (2 * (k // 16))) & 3).astype(F32) - 1
    return (out.reshape(rows, cols) * D[:, None]).reshape(-1)


KBLOCK = {10: (84, dequant_q2_K), 11: (110, dequant_q3_K), 12: (144, dequant_q4_K)}


def read_gguf(path):
    buf = open(path, "rb").read()
    r = Reader(buf)
    if buf[:4] != b"GGUF":
        fail("no GGUF magic")
    r.pos = 4
    if r.take("<I") != 3:
        fail("not GGUF version 3")
    nt, nkv = r.take("<Q"), r.take("<Q")
    kv = {}
    for _ in range(nkv):
        k = r.string()
        kv[k] = r.value(r.take("<I"))
    align = kv.get("general.alignment", 32)
    infos = []
    for _ in range(nt):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        infos.append((name, ne, r.take("<I"), r.take("<Q")))
    data0 = (r.pos + align - 1) // align * align
    tensors = {}
    for name, ne, t, off in infos:
        if off % align:
            fail("%s: offset %d not aligned" % (name, off))
        n = int(np.prod(ne))
        start = data0 + off
        if t == 0:
            a = np.frombuffer(buf, dtype="<f4", count=n, offset=start).astype(np.float64)
            end = start + 4 * n
        elif t == 1:
            a = np.frombuffer(buf, dtype="<f2", count=n, offset=start).astype(np.float64)
            end = start + 2 * n
        elif t == 35:
            if ne[0] % 256:
                fail("%s: TQ2_0 row of %d weights" % (name, ne[0]))
            end = start + n // 256 * 66
            a = dequant_tq2_0(buf[start:end], n)
        elif t == 34:
            if ne[0] % 256:
                fail("%s: TQ1_0 row of %d weights" % (name, ne[0]))
            end = start + n // 256 * 54
            a = dequant_tq1_0(buf[start:end], n)
        elif t in KBLOCK:
            if ne[0] % 256:
                fail("%s: %s row of %d weights" % (name, GGML[t], ne[0]))
            end = start + n // 256 * KBLOCK[t][0]
            a = KBLOCK[t][1](buf[start:end], n).astype(np.float64)
        elif t == 135:
            if ne[0] % 64:
                fail("%s: IQ2_BN row of %d weights" % (name, ne[0]))
            rows = n // ne[0]
            end = start + rows * (4 + ne[0] // 4)
            a = dequant_iq2_bn(buf[start:end], rows, ne[0]).astype(np.float64)
        else:
            fail("%s: unexpected ggml type %d" % (name, t))
        if end > len(buf):
            fail("%s: data past the end of the file" % name)
        tensors[name] = (GGML[t], ne, a.reshape(list(reversed(ne))))  # numpy: rows, columns
    return kv, tensors


def check(path, header_path, tensors_path, wtype):
    kv, ts = read_gguf(path)
    cfg = json.load(open(header_path))["config"]
    C, L, NH, KV, HS, F, V = (cfg[k] for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab"))
    want_kv = {
        "general.architecture": "bitnet",
        "bitnet.context_length": cfg["max_seq"],
        "bitnet.embedding_length": C,
        "bitnet.block_count": L,
        "bitnet.feed_forward_length": F,
        "bitnet.attention.head_count": NH,
        "bitnet.attention.head_count_kv": KV,
        "bitnet.rope.dimension_count": HS,
        "bitnet.rope.freq_base": np.float32(cfg["rope_theta"]),
        "bitnet.attention.layer_norm_rms_epsilon": np.float32(cfg["norm_eps"]),
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.bos_token_id": cfg["bos"],
        "tokenizer.ggml.eos_token_id": cfg["eos"],
    }
    for k, v in want_kv.items():
        if k not in kv or kv[k] != v:
            fail("key %s = %r, expected %r" % (k, kv.get(k), v))
    if len(kv.get("tokenizer.ggml.tokens", [])) != V:
        fail("tokenizer.ggml.tokens has %d pieces, expected %d" % (len(kv.get("tokenizer.ggml.tokens", [])), V))

    def lin(cols):  # the type of a ternary linear with rows of cols weights
        return wtype if wtype != "tq2_0" else ("tq2_0" if cols % 256 == 0 else "f16")

    want = {"token_embd.weight": ("f32" if wtype != "f16" else "f16", [C, V]), "output_norm.weight": ("f32", [C])}
    for l in range(L):
        b = "blk.%d." % l
        want.update({
            b + "attn_norm.weight": ("f32", [C]),
            b + "attn_q.weight": (lin(C), [C, NH * HS]),
            b + "attn_k.weight": (lin(C), [C, KV * HS]),
            b + "attn_v.weight": (lin(C), [C, KV * HS]),
            b + "attn_sub_norm.weight": ("f32", [C]),
            b + "attn_output.weight": (lin(NH * HS), [NH * HS, C]),
            b + "ffn_norm.weight": ("f32", [C]),
            b + "ffn_gate.weight": (lin(C), [C, F]),
            b + "ffn_up.weight": (lin(C), [C, F]),
            b + "ffn_sub_norm.weight": ("f32", [F]),
            b + "ffn_down.weight": (lin(F), [F, C]),
        })
    if set(ts) != set(want):
        fail("tensors: missing %s, unexpected %s" % (sorted(set(want) - set(ts)), sorted(set(ts) - set(want))))
    for name, (t, ne) in want.items():
        if ts[name][0] != t or ts[name][1] != ne:
            fail("%s: %s %s, expected %s %s" % (name, ts[name][0], ts[name][1], t, ne))
    # The norms and the embedding are the student's own values, bit for bit.
    src = {}
    for line in open(tensors_path):
        rec = json.loads(line)
        if "name" in rec and "data" in rec:
            src[rec["name"]] = np.array(rec["data"], dtype=np.float32).reshape(rec["shape"])
    pairs = [("rms_att", "attn_norm"), ("rms_ffn", "ffn_norm"), ("attn_sub_norm", "attn_sub_norm"),
             ("ffn_sub_norm", "ffn_sub_norm")]
    for bd_name, gg in pairs:
        for l in range(L):
            got = ts["blk.%d.%s.weight" % (l, gg)][2].astype(np.float32)
            if not np.array_equal(got, src[bd_name][l]):
                fail("blk.%d.%s differs from the student's %s[%d]" % (l, gg, bd_name, l))
    if not np.array_equal(ts["output_norm.weight"][2].astype(np.float32), src["rms_final"]):
        fail("output_norm differs from the student's rms_final")
    if wtype != "f16" and not np.array_equal(ts["token_embd.weight"][2].astype(np.float32), src["tok_emb"]):
        fail("token_embd differs from the student's tok_emb")
    print("ok: bitnet, %d tensors, %d keys" % (len(ts), len(kv)))


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, theta, neox):  # x: (T, heads, HS)
    T, _, HS = x.shape
    half = HS // 2
    freq = theta ** (-np.arange(half) * 2.0 / HS)
    ang = np.arange(T)[:, None] * freq[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    if neox:
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
    return out


def forward(kv, ts, ids, sub_eps, neox):
    W = lambda n: ts[n][2]
    L, NH, KV = kv["bitnet.block_count"], kv["bitnet.attention.head_count"], kv["bitnet.attention.head_count_kv"]
    eps, theta = float(kv["bitnet.attention.layer_norm_rms_epsilon"]), float(kv["bitnet.rope.freq_base"])
    se = eps if sub_eps is None else sub_eps
    x = W("token_embd.weight")[ids]
    T = len(ids)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(L):
        b = "blk.%d." % l
        h = rms(x, W(b + "attn_norm.weight"), eps)
        q, k, v = (h @ W(b + n + ".weight").T for n in ("attn_q", "attn_k", "attn_v"))
        HS = q.shape[1] // NH
        q = rope(q.reshape(T, NH, HS), theta, neox)
        k = rope(k.reshape(T, KV, HS), theta, neox)
        v = v.reshape(T, KV, HS)
        o = np.empty((T, NH, HS))
        for hd in range(NH):
            kh = hd // (NH // KV)
            s = q[:, hd] @ k[:, kh].T / np.sqrt(HS) + mask
            p = np.exp(s - s.max(axis=1, keepdims=True))
            o[:, hd] = (p / p.sum(axis=1, keepdims=True)) @ v[:, kh]
        o = rms(o.reshape(T, NH * HS), W(b + "attn_sub_norm.weight"), se)
        x = x + o @ W(b + "attn_output.weight").T
        h = rms(x, W(b + "ffn_norm.weight"), eps)
        g, u = h @ W(b + "ffn_gate.weight").T, h @ W(b + "ffn_up.weight").T
        a = rms(g / (1 + np.exp(-g)) * u, W(b + "ffn_sub_norm.weight"), se)
        x = x + a @ W(b + "ffn_down.weight").T
    return rms(x, W("output_norm.weight"), eps) @ W("token_embd.weight").T


def nll(path, ids_path, T, sub_eps, neox):
    kv, ts = read_gguf(path)
    ids = []
    for line in open(ids_path):
        rec = json.loads(line)
        if "ids" in rec:
            ids += rec["ids"]["data"]
    total, n = 0.0, 0
    for w in range(len(ids) // T):
        win = np.array(ids[w * T : (w + 1) * T])
        z = forward(kv, ts, win, sub_eps, neox)[:-1]
        z = z - z.max(axis=1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        total -= lp[np.arange(T - 1), win[1:]].sum()
        n += T - 1
    print("%.6f" % (total / n))


def lcpp_ppl(path, ids_path, n_ctx, sub_eps):
    # llama-perplexity's protocol on ids from `llama-tokenize --ids` (BOS first): chunks of
    # n_ctx ids, each chunk's first id replaced by BOS, positions n_ctx/2 .. n_ctx-2 scored
    # (each predicting the next id); PPL = exp(mean nll).
    kv, ts = read_gguf(path)
    ids = json.loads(open(ids_path).read())
    bos, first = kv["tokenizer.ggml.bos_token_id"], n_ctx // 2
    total, n = 0.0, 0
    for c in range(len(ids) // n_ctx):
        win = np.array(ids[c * n_ctx : (c + 1) * n_ctx])
        inp = win.copy()
        inp[0] = bos
        z = forward(kv, ts, inp, sub_eps, True)[first : n_ctx - 1]
        z = z - z.max(axis=1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        total -= lp[np.arange(n_ctx - 1 - first), win[first + 1 :]].sum()
        n += n_ctx - 1 - first
    print("PPL %.4f over %d chunks (%d scored)" % (np.exp(total / n), len(ids) // n_ctx, n))


def same(typed_path, f32_path):
    _, a = read_gguf(typed_path)
    _, b = read_gguf(f32_path)
    if sorted(a) != sorted(b):
        fail("tensor names differ")
    counts = {}
    for name, (ty, ne, x) in a.items():
        if b[name][1] != ne:
            fail("%s: shape %s vs %s" % (name, ne, b[name][1]))
        y = b[name][2]
        if not np.array_equal(x, y):
            k = int(np.argmax((x != y).reshape(-1)))
            fail("%s (%s): element %d is %r, the f32 file has %r" % (name, ty, k, x.reshape(-1)[k], y.reshape(-1)[k]))
        counts[ty] = counts.get(ty, 0) + 1
    print("same: " + ", ".join("%d %s" % (counts[t], t) for t in sorted(counts)))


def main(argv):
    if len(argv) >= 5 and argv[0] == "check":
        check(argv[1], argv[2], argv[3], argv[4])
    elif len(argv) >= 4 and argv[0] == "nll":
        sub_eps, neox, rest = None, True, argv[4:]
        while rest:
            if rest[0] == "--sub-eps":
                sub_eps = float(rest[1])
            elif rest[0] == "--rope":
                neox = rest[1] == "neox"
            else:
                fail("unknown option %s" % rest[0])
            rest = rest[2:]
        nll(argv[1], argv[2], int(argv[3]), sub_eps, neox)
    elif len(argv) >= 4 and argv[0] == "lcpp":
        lcpp_ppl(argv[1], argv[2], int(argv[3]), float(argv[5]) if len(argv) > 5 and argv[4] == "--sub-eps" else None)
    elif len(argv) == 3 and argv[0] == "same":
        same(argv[1], argv[2])
    else:
        fail("usage: gguf_bitnet.py check FILE HEADER TENSORS WTYPE | same TYPED F32 | nll FILE IDS T [--sub-eps E] [--rope R]")


if __name__ == "__main__":
    main(sys.argv[1:])
