// Backward kernels, the twins of bd_kernels.h. Dimension key (as in bd_model.h):
//   V vocab, C model dim, NH query heads, KV key/value heads, HS head dim, F feed-forward dim,
//   B batch, T sequence length, N rows (usually B*T), OC output channels of a linear layer.
// Every kernel is `bd_<op>_backward(dinp..., dweights..., dout, saved..., inp, weights..., sizes)`
// and ACCUMULATES (+=) into every gradient it is given, parameters and activations alike
// (callers zero the buffers), except where a comment says "written". Each fast kernel has a
// `_ref` twin (naive loops, double internally, no BLAS) that the unit tests compare it
// with; the _ref twins are themselves checked against central finite differences of a
// double-precision forward. Threaded kernels split work so that every output element is
// computed the same way whatever the thread count (deterministic for a fixed count; the
// BLAS calls depend only on OpenBLAS's own determinism).
#ifndef BD_BACKWARD_H
#define BD_BACKWARD_H

#include <stdint.h>

#include "bd_model.h"

// dtok_emb[tokens[n],:] += dout[n,:]. Serial over n: repeated tokens add in row order.
void bd_embedding_backward(float *dtok_emb /* (V,C) */, const float *dout /* (N,C) */, const int32_t *tokens /* (N) */,
                           int N, int C);
void bd_embedding_backward_ref(float *dtok_emb, const float *dout, const int32_t *tokens, int N, int C);

// RMSNorm out = x * rstd * w: with g = dout * w,
//   dinp += rstd * g - x * rstd^3 * (g . x) / C,   dweight += sum_n dout * x * rstd.
// dweight may be NULL. rstd is what the forward saved.
void bd_rmsnorm_backward(float *dinp /* (N,C) */, float *dweight /* (C) */, const float *dout /* (N,C) */,
                         const float *inp /* (N,C) */, const float *rstd /* (N) */, const float *weight /* (C) */,
                         int N, int C);
void bd_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp, const float *rstd,
                             const float *weight, int N, int C);

// out = inp @ weight^T + bias: dinp += dout @ weight, dweight += dout^T @ inp,
// dbias += sum_n dout. Any of dinp, dweight, dbias may be NULL (skipped). Fast path: sgemm.
void bd_linear_backward(float *dinp /* (N,C) */, float *dweight /* (OC,C) */, float *dbias /* (OC) */,
                        const float *dout /* (N,OC) */, const float *inp /* (N,C) */, const float *weight /* (OC,C) */,
                        int N, int C, int OC);
void bd_linear_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC);

// RoPE is a rotation: dinp = R^T dout, written (dinp may equal dout: in place).
void bd_rope_backward(float *dinp /* (B,T,NH,HS) */, const float *dout /* (B,T,NH,HS) */,
                      const float *cs /* (P, HS/2, 2) */, const int *pos0 /* (B) or NULL */, int B, int T, int NH,
                      int HS, bd_rope_style style);
void bd_rope_backward_ref(float *dinp, const float *dout, const int *pos0, int B, int T, int NH, int HS, float theta,
                          bd_rope_style style);

// Causal GQA attention. With P = exp(q.k/sqrt(HS) - lse) recomputed per block of query rows
// and D[t] = dout[t] . out[t]:  dv += P^T dout,  dS = P * (dout v^T - D),
// dq += dS k / sqrt(HS),  dk += dS^T q / sqrt(HS). Work is split over (b, KV head) pairs,
// each handling its NH/KV query heads in order (no two threads touch the same dk/dv rows).
// scratch: scratch_floats >= bd_attention_backward_scratch_floats(T, 1) per thread slot.
void bd_attention_backward(float *dq /* (B,T,NH,HS) */, float *dk /* (B,T,KV,HS) */, float *dv /* (B,T,KV,HS) */,
                           const float *dout /* (B,T,NH,HS) */, const float *out /* (B,T,NH,HS) */,
                           const float *lse /* (B,NH,T) */, const float *q /* (B,T,NH,HS) */,
                           const float *k /* (B,T,KV,HS) */, const float *v /* (B,T,KV,HS) */, float *scratch,
                           long long scratch_floats, int B, int T, int NH, int KV, int HS);
// The reference recomputes the softmax in double from q and k (lse and out unused).
void bd_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                               const float *q, const float *k, const float *v, int B, int T, int NH, int KV, int HS);
long long bd_attention_backward_scratch_floats(int T, int threads);

// out = silu(gate) * up: dgate += dout * up * s * (1 + gate * (1 - s)), s = sigmoid(gate);
// dup += dout * silu(gate).
void bd_swiglu_backward(float *dgate /* (n) */, float *dup /* (n) */, const float *dout /* (n) */,
                        const float *gate /* (n) */, const float *up /* (n) */, long long n);
void bd_swiglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                            long long n);

// out = a + b: da += dout, db += dout (either may be NULL).
void bd_residual_backward(float *da /* (n) */, float *db /* (n) */, const float *dout /* (n) */, long long n);
void bd_residual_backward_ref(float *da, float *db, const float *dout, long long n);

// Cross-entropy of the rows of logits given the lse the forward saved: dlogits is WRITTEN
// (it starts the chain) as scale * (softmax(row) - onehot(target)); rows with a negative
// target get zeros. dlogits may equal logits (in place). Returns scale * sum of the losses of
// the scored rows (computed from lse, in double).
double bd_crossentropy_backward(float *dlogits /* (N,V) */, const float *logits /* (N,V) */, const float *lse /* (N) */,
                                const int32_t *targets /* (N) */, float scale, int N, int V);
double bd_crossentropy_backward_ref(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                                    float scale, int N, int V);

#endif
