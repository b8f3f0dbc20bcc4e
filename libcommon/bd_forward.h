// The forward pass of a bd_model: batched over (B, T) with every activation a backward
// pass needs kept in one arena, the mean next-token NLL without materializing all logits,
// and a KV-cache path that advances B sequences by one token each. Dimension key as in
// bd_model.h: V vocab, C dim, L layers, NH/KV heads, HS head dim, QD = NH*HS, KD = KV*HS,
// F ffn dim, B batch, T sequence.
#ifndef BD_FORWARD_H
#define BD_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_model.h"

// Seconds spent per kind of kernel, accumulated over calls (for benchmarks).
typedef struct {
    double embed, norm, linear, rope, attention, swiglu, residual, head, loss;
} bd_fwd_timing;

// Activation arena for bd_forward. Sized once for at most (B, T); calls may use smaller B,
// T. With keep, tensors marked (L, ...) hold every layer (what backward needs: layer l of
// X starts at X + l * B*T*width); without keep, only one layer's slot exists and is reused
// (inference: far less memory), and the layer index is ignored.
typedef struct {
    bd_config cfg;
    int B, T;           // capacity
    bool keep;          // all layers kept (for backward)
    float *arena;       // the one allocation
    size_t arena_floats;
    float *x;           // (L+1, B, T, C) residual stream entering layer l; x[L] leaves the last
    float *xn_att;      // (L, B, T, C)   RMSNorm before attention
    float *rstd_att;    // (L, B, T)
    float *q;           // (L, B, T, QD)  q projection (+bias) before q-norm; only if qk_norm
    float *k;           // (L, B, T, KD)  k projection before k-norm; only if qk_norm
    float *rstd_q;      // (L, B, T, NH)  only if qk_norm
    float *rstd_k;      // (L, B, T, KV)  only if qk_norm
    float *qr;          // (L, B, T, QD)  queries after q-norm and RoPE (attention input)
    float *kr;          // (L, B, T, KD)  keys after k-norm and RoPE
    float *v;           // (L, B, T, KD)  values
    float *att;         // (L, B, T, QD)  attention output, before wo
    float *lse;         // (L, B, NH, T)  attention log-sum-exp per query row
    float *x_mid;       // (L, B, T, C)   residual after attention
    float *xn_ffn;      // (L, B, T, C)   RMSNorm before the FFN
    float *rstd_ffn;    // (L, B, T)
    float *h1;          // (L, B, T, F)   gate pre-activation (w1)
    float *h3;          // (L, B, T, F)   up projection (w3)
    float *hg;          // (L, B, T, F)   silu(h1) * h3, input of w2
    float *xf;          // (B, T, C)      final RMSNorm output (input of the head)
    float *rstd_f;      // (B, T)
    float *proj;        // (B, T, C)      scratch: wo and w2 outputs before the residual add
    float *att_scratch; // bd_attention_scratch_floats(T, threads at init)
    long long att_scratch_floats;
    float *rope_cs;     // (T, HS/2, 2)   RoPE cos/sin of positions 0..T-1
    float *logit_chunk; // (R, V)         head rows for the NLL, R = bd_fwd_nll_rows(B*T)
    float *losses;      // (B, T)         per-position NLL of the last bd_forward_nll
    float *loss_lse;    // (B, T)         log-sum-exp of those logits rows
    bd_fwd_timing timing;
} bd_fwd_state;

BD_MUST_CHECK int bd_fwd_state_init(bd_fwd_state *s, const bd_config *cfg, int B, int T, bool keep);
void bd_fwd_state_free(bd_fwd_state *s);
// Pointer to layer l of a per-layer tensor of s (width floats per position).
float *bd_fwd_layer(const bd_fwd_state *s, float *base, int l, size_t width);

// tokens (B, T), each in [0, V). logits (B, T, V), or NULL to stop after the final norm
// (s->xf). Errors: BD_ERR_ARG (sizes beyond capacity, config mismatch), BD_ERR_VALUE (token).
BD_MUST_CHECK int bd_forward(bd_fwd_state *s, const bd_model *m, const int32_t *tokens, int B, int T,
                             float *logits);

// Mean negative log-likelihood of targets (B, T) under the model fed tokens (B, T).
// targets NULL: next-token prediction, target[b,t] = tokens[b,t+1], the last position
// unscored. Negative targets are skipped. The head is run in chunks of rows, so at most
// (R, V) logits exist at once. Per-position losses stay in s->losses. Returns the number of
// scored positions (>= 0) and *mean_nll (0 if none), or an error.
BD_MUST_CHECK int bd_forward_nll(bd_fwd_state *s, const bd_model *m, const int32_t *tokens,
                                 const int32_t *targets, int B, int T, double *mean_nll);
int bd_fwd_nll_rows(int N);

// Plain reference forward from the _ref kernels (own temporary buffers). logits (B, T, V).
BD_MUST_CHECK int bd_forward_ref(const bd_model *m, const int32_t *tokens, int B, int T, float *logits);

// KV cache for generation: keys (after k-norm and RoPE) and values of every layer for B
// sequences of up to max_T positions, plus the scratch bd_forward_step needs.
typedef struct {
    bd_config cfg;
    int B, max_T;
    float *k;        // (L, B, max_T, KV, HS)
    float *v;        // (L, B, max_T, KV, HS)
    float *mem;      // the one allocation (k, v and the scratch below)
    float *x;        // (B, C)   residual stream
    float *xn;       // (B, C)
    float *rstd;     // (B, NH)  (norms of rows, q/k heads)
    float *q;        // (B, QD)  projection before q-norm
    float *qr;       // (B, QD)
    float *kn;       // (B, KD)  projection before k-norm
    float *kr;       // (B, KD)
    float *vn;       // (B, KD)
    float *att;      // (B, QD)
    float *proj;     // (B, C)
    float *h1;       // (B, F)
    float *h3;       // (B, F)
    float *scores;   // (NH/KV, max_T)
    float *rope_cs;  // (max_T, HS/2, 2) RoPE cos/sin of positions 0..max_T-1
} bd_kv_cache;

BD_MUST_CHECK int bd_kv_cache_init(bd_kv_cache *c, const bd_config *cfg, int B, int max_T);
void bd_kv_cache_free(bd_kv_cache *c);

// One token per sequence: tokens (B), pos (B) with pos[b] < max_T, positions 0..pos[b]-1 of
// sequence b already in the cache. Writes position pos[b] of the cache; logits (B, V).
BD_MUST_CHECK int bd_forward_step(bd_kv_cache *c, const bd_model *m, const int32_t *tokens,
                                  const int *pos, int B, float *logits);

// Batched forward of B prompts of T tokens that also fills positions 0..T-1 of the cache
// for sequences 0..B-1; last_logits (B, V) gets the logits of position T-1 (or NULL).
BD_MUST_CHECK int bd_forward_prefill(bd_fwd_state *s, bd_kv_cache *c, const bd_model *m,
                                     const int32_t *tokens, int B, int T, float *last_logits);

#endif
