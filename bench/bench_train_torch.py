# The training step of bench_train.c in PyTorch eager mode on the CPU: the same 110M-shaped
# Llama (dim 768, 12 layers, 12 heads, ffn 2048, vocab 32000, tied embeddings, RMSNorm,
# interleaved RoPE, causal attention, SwiGLU), cross-entropy on next tokens, AdamW with
# global-norm clipping. Usage: bench_train_torch.py B THREADS [STEPS]. Prints one line
# "torch B tokens/s peak_MB" (peak resident memory of this process). Exits 3 if torch is
# missing, so the wrapper can skip the comparison.
import math
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch unavailable", file=sys.stderr)
    sys.exit(3)

B, threads = int(sys.argv[1]), int(sys.argv[2])
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
T, C, L, NH, FF, V = 512, 768, 12, 12, 2048, 32000
HS = C // NH
torch.set_num_threads(threads)
torch.manual_seed(0)


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w


def rope(x, cos, sin):  # x (B, NH, T, HS), interleaved pairs
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(C), RMSNorm(C)
        self.wq, self.wk, self.wv, self.wo = (torch.nn.Linear(C, C, bias=False) for _ in range(4))
        self.w1, self.w3 = torch.nn.Linear(C, FF, bias=False), torch.nn.Linear(C, FF, bias=False)
        self.w2 = torch.nn.Linear(FF, C, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        h = self.n1(x)
        q = self.wq(h).view(b, t, NH, HS).transpose(1, 2)
        k = self.wk(h).view(b, t, NH, HS).transpose(1, 2)
        v = self.wv(h).view(b, t, NH, HS).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # Debian 12's torch 1.13: explicit masked softmax
            s = (q @ k.transpose(-2, -1)) / math.sqrt(HS)
            s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
            a = torch.softmax(s, dim=-1) @ v
        x = x + self.wo(a.transpose(1, 2).reshape(b, t, C))
        h = self.n2(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(V, C)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.norm = RMSNorm(C)
        for p in self.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.02)
        inv = 10000.0 ** (-torch.arange(0, HS, 2).float() / HS)
        ang = torch.arange(T).float()[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())

    def forward(self, idx):
        x = self.emb(idx)
        for blk in self.blocks:
            x = blk(x, self.cos, self.sin)
        return F.linear(self.norm(x), self.emb.weight)  # tied head


model = Model()
decay = [p for p in model.parameters() if p.dim() > 1]
rest = [p for p in model.parameters() if p.dim() <= 1]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                        lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
tok = torch.randint(0, V, (B, T))


def step():
    logits = model(tok)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), tok[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


step()  # warm-up
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = (time.perf_counter() - t0) / steps
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(f"torch {B} {B * T / dt:.1f} {peak:.0f}")
