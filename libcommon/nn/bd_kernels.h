// Forward kernels of the Llama-family decoder. Dimension key (as in bd_model.h):
//   V vocab, C model dim, NH query heads, KV key/value heads, HS head dim, F feed-forward dim,
//   B batch, T sequence length, N rows (usually B*T), OC output channels of a linear layer.
// Every kernel is `bd_<op>_forward(out, saved..., inp, weights..., sizes)`; what it saves is
// what the matching backward pass needs. Each fast kernel has a plain `_ref` twin (naive
// loops, double accumulators, no BLAS) that the unit tests compare it with.
// Kernels never allocate and never fail: callers validate token ids and sizes. Large
// element-wise and row-wise kernels split their rows over bd_num_threads() threads; every
// element is computed the same way whatever the split, so results do not depend on it.
#ifndef BD_KERNELS_H
#define BD_KERNELS_H

#include <stdint.h>

#include "bd_model.h"

// out[n,:] = tok_emb[tokens[n],:]; tokens must lie in [0, V).
void bd_embedding_forward(float *out /* (N,C) */, const int32_t *tokens /* (N) */, const float *tok_emb /* (V,C) */,
                          int N, int C);
void bd_embedding_forward_ref(float *out, const int32_t *tokens, const float *tok_emb, int N, int C);

// RMSNorm per row: rstd = 1/sqrt(mean(x^2) + eps), out = x * rstd * weight.
// out may equal inp. Saves rstd for backward.
void bd_rmsnorm_forward(float *out /* (N,C) */, float *rstd /* (N) */, const float *inp /* (N,C) */,
                        const float *weight /* (C) */, int N, int C, float eps);
void bd_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);

// out = inp @ weight^T + bias (bias may be NULL). Fast path: one cblas_sgemm; N < 8 rows (generation)
// the f32 row dots of bd_pk_matmul, one per output, split over the thread pool.
void bd_linear_forward(float *out /* (N,OC) */, const float *inp /* (N,C) */, const float *weight /* (OC,C) */,
                       const float *bias /* (OC) or NULL */, int N, int C, int OC);
void bd_linear_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);

// Rotary position embedding of every head of x, at position pos0[b] + t (pos0 NULL: 0).
// Frequencies theta^(-2i/HS), i < HS/2; BD_ROPE_INTERLEAVED rotates pairs (2i, 2i+1),
// BD_ROPE_HALF pairs (i, i + HS/2). out may equal inp. Linear in inp: backward is the
// inverse rotation, nothing is saved. The fast kernel reads cos/sin from a table made by
// bd_rope_table for positions 0..P-1 (P > every pos0[b] + T - 1); the reference computes them.
void bd_rope_table(float *cs /* (P, HS/2, 2) cos, sin */, int P, int HS, float theta);
void bd_rope_forward(float *out /* (B,T,NH,HS) */, const float *inp /* (B,T,NH,HS) */,
                     const float *cs /* (P, HS/2, 2) */, const int *pos0 /* (B) or NULL */, int B, int T, int NH,
                     int HS, bd_rope_style style);
void bd_rope_forward_ref(float *out, const float *inp, const int *pos0, int B, int T, int NH, int HS, float theta,
                         bd_rope_style style);

// Causal grouped-query self-attention. Query head h reads key/value head h / (NH/KV).
// out[b,t,h,:] = sum_{s<=t} P[b,h,t,s] v[b,s,g,:], P = softmax_s(q[b,t,h,:].k[b,s,g,:] / sqrt(HS)).
// Saves lse[b,h,t] = log sum_s exp(score): backward recomputes P = exp(score - lse) from q and
// k, so the (T,T) probabilities are never stored. (b, head) pairs run on up to
// bd_num_threads() threads (OpenBLAS single-threaded meanwhile), one scratch slot each:
// scratch holds scratch_floats >= bd_attention_scratch_floats(T, 1) floats, and as many
// threads run as it has slots. Results do not depend on the thread count.
void bd_attention_forward(float *out /* (B,T,NH,HS) */, float *lse /* (B,NH,T) */, const float *q /* (B,T,NH,HS) */,
                          const float *k /* (B,T,KV,HS) */, const float *v /* (B,T,KV,HS) */, float *scratch,
                          long long scratch_floats, int B, int T, int NH, int KV, int HS);
void bd_attention_forward_ref(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T,
                              int NH, int KV, int HS);
// Floats of scratch bd_attention_forward needs for sequences of length T on `threads` threads.
long long bd_attention_scratch_floats(int T, int threads);

// Attention of one new query row per sequence against a key/value cache: for sequence b
// and head h, keys/values 0..pos[b] of kcache/vcache (rows of KV*HS floats, sequence b
// starting at b*cache_T rows). Used by the KV-cache generation path. scratch: B*NH*cache_T floats
// (the SIMD paths give each (b, head) a row and split them over threads; results do not depend
// on the thread count).
void bd_attention_step_forward(float *out /* (B,NH,HS) */, const float *q /* (B,NH,HS) */,
                               const float *kcache /* (B,cache_T,KV,HS) */, const float *vcache /* (B,cache_T,KV,HS) */,
                               const int *pos /* (B) */, float *scratch, int B, int cache_T, int NH, int KV, int HS);
void bd_attention_step_forward_ref(float *out, const float *q, const float *kcache, const float *vcache, const int *pos,
                                   int B, int cache_T, int NH, int KV, int HS);

// SwiGLU: out = silu(gate) * up, silu(x) = x / (1 + exp(-x)). Backward needs gate and up.
void bd_swiglu_forward(float *out /* (N,F) */, const float *gate /* (N,F) */, const float *up /* (N,F) */,
                       long long n /* N*F */);
void bd_swiglu_forward_ref(float *out, const float *gate, const float *up, long long n);

// Residual: out = a + b (out may equal a or b).
void bd_residual_forward(float *out /* (n) */, const float *a /* (n) */, const float *b /* (n) */, long long n);
void bd_residual_forward_ref(float *out, const float *a, const float *b, long long n);

// Log-softmax per row: out = x - logsumexp(x). out may equal inp.
void bd_logsoftmax_forward(float *out /* (N,V) */, const float *inp /* (N,V) */, int N, int V);
void bd_logsoftmax_forward_ref(float *out, const float *inp, int N, int V);

// Cross-entropy per row: losses[n] = lse[n] - logits[n, targets[n]], lse = logsumexp(row).
// A negative target masks the row (loss 0, lse still written). Backward needs lse
// (softmax = exp(logits - lse)).
void bd_crossentropy_forward(float *losses /* (N) */, float *lse /* (N) */, const float *logits /* (N,V) */,
                             const int32_t *targets /* (N) */, int N, int V);
void bd_crossentropy_forward_ref(float *losses, float *lse, const float *logits, const int32_t *targets, int N, int V);

#endif
