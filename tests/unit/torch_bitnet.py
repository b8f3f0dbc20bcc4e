# One training step of a tiny ternary W1.58A8 SubLN student in PyTorch, the reference for
# test_bitnet.c's test_torch_step. Usage: torch_bitnet.py DIR. DIR holds what the test wrote:
# model.txt (sizes, hyperparameters, then bd's parameter table: name offset numel is_linear
# shape...), params.f32 (the flat parameters in bd's layout) and tokens.i32 (B*T ids). Written
# here: torch_grads.f32 (d loss / d latent parameters, before clipping) and torch_params.f32
# (after one AdamW step), both in bd's layout; the loss on stdout as "loss X".
#
# The model is BitDistill's BitLinear (microsoft/BitNet bitdistill/, core.py) on a Llama block
# with SubLN before wo and w2: every block linear quantizes its input per token to 8 bits and
# its weight to ternary, both with straight-through estimators x + (q(x) - x).detach(); the
# head stays full precision. Weight rule as bd's (D = mean|W|, round(W / (D + 1e-5)) clamped to
# [-1, 1], times D); activation rule as bd's (level * max/127, the official level / (127/max)
# up to one rounding of the factor). float32 throughout.
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

d = sys.argv[1]
lines = open(d + "/model.txt").read().split("\n")
head = lines[0].split()
cfg = {head[i]: float(head[i + 1]) for i in range(0, len(head), 2)}
C, L, NH, KV, HS, FF, V, B, T = (int(cfg[k]) for k in ("C", "L", "NH", "KV", "HS", "F", "V", "B", "T"))
table = []
for ln in lines[1:]:
    if ln.strip():
        nm, off, n, lin, s0, s1, s2 = ln.split()
        table.append((nm, int(off), int(n), int(lin), [int(x) for x in (s0, s1, s2) if int(x) > 0]))
flat = np.fromfile(d + "/params.f32", dtype=np.float32)
tok = torch.from_numpy(np.fromfile(d + "/tokens.i32", dtype=np.int32).astype(np.int64)).view(B, T)
P = {nm: torch.tensor(flat[off:off + n].reshape(shape), requires_grad=True) for nm, off, n, lin, shape in table}


def act_quant(x):  # per token (last dim), 8 bits
    amax = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    q = torch.clamp(torch.round(x * (127.0 / amax)), -128, 127) * (amax / 127.0)
    return x + (q - x).detach()


def weight_quant(w):  # per matrix, ternary
    D = w.abs().mean()
    q = torch.clamp(torch.round(w / (D + 1e-5)), -1, 1) * D
    return w + (q - w).detach()


def bitlinear(x, w):
    return act_quant(x) @ weight_quant(w).t()


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x):  # (B, T, H, HS), interleaved pairs, cos/sin rounded to float as bd's table
    pos = np.arange(T)[:, None]
    ang = pos * np.power(float(cfg["theta"]), -2.0 * np.arange(HS // 2) / HS)[None, :]
    c = torch.tensor(np.cos(ang).astype(np.float32))[None, :, None, :]
    s = torch.tensor(np.sin(ang).astype(np.float32))[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


eps, seps = cfg["eps"], cfg["subln_eps"]
x = P["tok_emb"][tok]
mask = torch.ones(T, T, dtype=torch.bool).triu(1)
for l in range(L):
    xn = rms(x, P["rms_att"][l], eps)
    q = rope(bitlinear(xn, P["wq"][l]).view(B, T, NH, HS)).transpose(1, 2)
    k = rope(bitlinear(xn, P["wk"][l]).view(B, T, KV, HS)).transpose(1, 2)
    v = bitlinear(xn, P["wv"][l]).view(B, T, KV, HS).transpose(1, 2)
    k, v = k.repeat_interleave(NH // KV, dim=1), v.repeat_interleave(NH // KV, dim=1)
    s = (q @ k.transpose(-2, -1)) / math.sqrt(HS)
    a = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
    a = a.transpose(1, 2).reshape(B, T, NH * HS)
    x = x + bitlinear(rms(a, P["attn_sub_norm"][l], seps), P["wo"][l])
    xn = rms(x, P["rms_ffn"][l], eps)
    hg = F.silu(bitlinear(xn, P["w1"][l])) * bitlinear(xn, P["w3"][l])
    x = x + bitlinear(rms(hg, P["ffn_sub_norm"][l], seps), P["w2"][l])
logits = rms(x, P["rms_final"], eps) @ P["wcls"].t()
loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), tok[:, 1:].reshape(-1))
loss.backward()
print("loss %.9f" % loss.item())

grads = np.zeros_like(flat)
for nm, off, n, lin, shape in table:
    grads[off:off + n] = P[nm].grad.numpy().reshape(-1)
grads.tofile(d + "/torch_grads.f32")

# One AdamW step as bd's trainer: decay on the linears, the embeddings (tok_emb, wcls) and the
# SubLN gains (Hugging Face's trainer, which BitDistill's code uses, exempts only names with
# "bias", "layernorm" or "rmsnorm"), global-norm clipping, betas (0.9, 0.95), eps 1e-8.
def decayed(nm, lin):
    return lin or nm in ("tok_emb", "wcls") or nm.endswith("_sub_norm")
decay = [P[nm] for nm, off, n, lin, shape in table if decayed(nm, lin)]
rest = [P[nm] for nm, off, n, lin, shape in table if not decayed(nm, lin)]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["wd"]}, {"params": rest, "weight_decay": 0.0}],
                        lr=cfg["lr"], betas=(0.9, 0.95), eps=1e-8)
torch.nn.utils.clip_grad_norm_([P[nm] for nm, *_ in table], cfg["clip"])
opt.step()
after = np.zeros_like(flat)
for nm, off, n, lin, shape in table:
    after[off:off + n] = P[nm].detach().numpy().reshape(-1)
after.tofile(d + "/torch_params.f32")
