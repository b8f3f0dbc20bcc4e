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

#include "bd_block.h"
#include "bd_model.h"

// Activation arena for bd_forward. Sized once for at most (B, T); calls may use smaller B,
// T. With keep, the block activations hold every layer (what backward needs: layer l of a
// LAYER tensor X starts at X + l * B*T*width, x has L+1 slots); without keep, only one
// layer's slot exists and is reused (inference: far less memory), and the layer index is
// ignored.
typedef struct {
    bd_config cfg;
    int B, T;      // capacity
    bool keep;     // all layers kept (for backward)
    float *arena;  // the one allocation
    size_t arena_floats;
    // The block activations (BD_ACTS in bd_block.h), as s->acts for the walk and by name
    // (s->x, s->xn_att, ..., s->xf, s->proj) for callers.
    union {
        bd_acts acts;
        struct {
            BD_ACTS(BD_ACT_MEMBER)
        };
    };
    float *att_scratch;  // bd_attention_scratch_floats(T, threads at init)
    long long att_scratch_floats;
    float *rope_cs;      // (T, HS/2, 2)   RoPE cos/sin of positions 0..T-1
    float *logit_chunk;  // (R, V)         head rows for the NLL, R = bd_fwd_nll_rows(B*T)
    float *losses;       // (B, T)         per-position NLL of the last bd_forward_nll
    float *loss_lse;     // (B, T)         log-sum-exp of those logits rows
    void *lin_scratch;   // the linears' scratch (bd_block_scratch_bytes), grown on use
    size_t lin_scratch_bytes;
    bd_fwd_timing timing;
    // The batched passes hand every block's activations to after_block (bd_block_run's), if set.
    void (*after_block)(void *ctx, const bd_acts *a, int l, int B, int T);
    void *after_block_ctx;
    char why[256];  // after an error: a one-line reason
} bd_fwd_state;

// Functions on a state (or cache) return a bd_err code and leave the reason in its why.
BD_MUST_CHECK int bd_fwd_state_init(bd_fwd_state *s, const bd_config *cfg, int B, int T, bool keep);
void bd_fwd_state_free(bd_fwd_state *s);
// Bytes bd_fwd_state_init allocates (at the current bd_num_threads(); the linears' scratch,
// grown on use, is bd_block_scratch_bytes of the model at B*T rows). For memory plans.
size_t bd_fwd_state_bytes(const bd_config *cfg, int B, int T, bool keep);
// Pointer to layer l of a per-layer tensor of s (width floats per position).
float *bd_fwd_layer(const bd_fwd_state *s, float *base, int l, size_t width);

// tokens (B, T), each in [0, V). logits (B, T, V), or NULL to stop after the final norm
// (s->xf). Errors: BD_ERR_ARG (sizes beyond capacity, config mismatch), BD_ERR_VALUE (token).
BD_MUST_CHECK int bd_forward(bd_fwd_state *s, const bd_model *m, const int32_t *tokens, int B, int T, float *logits);

// Mean negative log-likelihood of targets (B, T) under the model fed tokens (B, T).
// targets NULL: next-token prediction, target[b,t] = tokens[b,t+1], the last position
// unscored. Negative targets are skipped. The head is run in chunks of rows, so at most
// (R, V) logits exist at once. Per-position losses stay in s->losses. Returns the number of
// scored positions (>= 0) and *mean_nll (0 if none), or an error.
BD_MUST_CHECK int bd_forward_nll(bd_fwd_state *s, const bd_model *m, const int32_t *tokens, const int32_t *targets,
                                 int B, int T, double *mean_nll);
int bd_fwd_nll_rows(int N);

// Plain reference forward from the _ref kernels (own temporary buffers). logits (B, T, V).
// why (may be NULL) gets the reason of an error.
BD_MUST_CHECK int bd_forward_ref(const bd_model *m, const int32_t *tokens, int B, int T, float *logits, char *why,
                                 size_t why_size);

// KV cache for generation: keys (after k-norm and RoPE) and values of every layer for B
// sequences of up to max_T positions, plus the scratch bd_forward_step needs.
typedef struct {
    bd_config cfg;
    int B, max_T;
    float *k;           // (L, B, max_T, KV, HS)
    float *v;           // (L, B, max_T, KV, HS)
    float *mem;         // the one allocation (k, v and the scratch below)
    bd_acts acts;       // activations of one step: B rows, one slot each (bd_block.h)
    float *scores;      // (B, NH, max_T): a row per query head (the step's heads run in parallel)
    float *rope_cs;     // (max_T, HS/2, 2) RoPE cos/sin of positions 0..max_T-1
    void *lin_scratch;  // the linears' scratch for B rows (bd_block_scratch_bytes), grown on use
    size_t lin_scratch_bytes;
    char why[256];  // after an error: a one-line reason
} bd_kv_cache;

BD_MUST_CHECK int bd_kv_cache_init(bd_kv_cache *c, const bd_config *cfg, int B, int max_T);
void bd_kv_cache_free(bd_kv_cache *c);
// Bytes bd_kv_cache_init allocates (the linears' scratch aside, as for bd_fwd_state_bytes).
size_t bd_kv_cache_bytes(const bd_config *cfg, int B, int max_T);

// One token per sequence: tokens (B), pos (B) with pos[b] < max_T, positions 0..pos[b]-1 of
// sequence b already in the cache. Writes position pos[b] of the cache; logits (B, V).
BD_MUST_CHECK int bd_forward_step(bd_kv_cache *c, const bd_model *m, const int32_t *tokens, const int *pos, int B,
                                  float *logits);

// Batched forward of B prompts of T tokens that also fills positions 0..T-1 of the cache
// for sequences 0..B-1; last_logits (B, V) gets the logits of position T-1 (or NULL).
BD_MUST_CHECK int bd_forward_prefill(bd_fwd_state *s, bd_kv_cache *c, const bd_model *m, const int32_t *tokens, int B,
                                     int T, float *last_logits);

#endif
