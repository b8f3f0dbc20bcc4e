// The decoder block, written once: its activations by name (BD_ACTS), its linear slots by name
// (bd_linear_at), and one walk (bd_block_forward, bd_decoder_forward) that every forward path
// runs: the batched forward, NLL and prefill (bd_forward.c), the KV-cache step, the training
// forward and its recomputation in backward (bd_train.c), and the reference forward. What
// differs between them is chosen per call in a bd_block_run: the kernels (bd_block_fast, or
// bd_block_ref: the _ref twins), the attention op (causal self-attention over the rows, or
// over a KV cache), where the activations live and whether kernels are timed.
//
// A model variant is added here: its activations are lines of BD_ACTS, its kernels calls in
// bd_block_forward (bd_block.c), its parameters entries of bd_model's table; training mirrors
// the kernels in bd_train.c's block_backward. Dimension key as in bd_model.h; N = B*T rows.
#ifndef BD_BLOCK_H
#define BD_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_model.h"
#include "bd_progress.h"

// The activation tensors, one line each: X(name, slots, floats per row). slots: LAYER (one per
// layer, or one slot reused by every layer), STREAM (L+1: the residual stream entering each
// layer, the last leaving the blocks; or one slot updated in place), ONE (a single slot).
// Widths are in terms of bd_block.c's dims d; width 0 (a variant's tensor the config does not
// use) leaves the pointer NULL. A variant's activation is one more line: e.g. SubLN's norms
// (sub_wq ... sub_w3, rstd_sub: d.sub[k] is linear k's input width where the config has its
// norm, else 0).
#define BD_ACTS(X)                                                                       \
    X(x, STREAM, d.C)     /* residual stream entering layer l; x[L] leaves the last */   \
    X(xn_att, LAYER, d.C) /* RMSNorm before attention */                                 \
    X(rstd_att, LAYER, 1)                                                                \
    X(q, LAYER, d.qkn *d.QD) /* q projection (+bias) before q-norm; only if qk_norm */   \
    X(k, LAYER, d.qkn *d.KD) /* k projection before k-norm; only if qk_norm */           \
    X(rstd_q, LAYER, d.qkn *d.NH)                                                        \
    X(rstd_k, LAYER, d.qkn *d.KV)                                                        \
    X(qr, LAYER, d.QD)    /* queries after q-norm and RoPE (attention input) */          \
    X(kr, LAYER, d.KD)    /* keys after k-norm and RoPE */                               \
    X(v, LAYER, d.KD)     /* values */                                                   \
    X(att, LAYER, d.QD)   /* attention output, before wo */                              \
    X(lse, LAYER, d.NH)   /* attention log-sum-exp per query row, laid out (B, NH, T) */ \
    X(x_mid, LAYER, d.C)  /* residual after attention */                                 \
    X(xn_ffn, LAYER, d.C) /* RMSNorm before the FFN */                                   \
    X(rstd_ffn, LAYER, 1)                                                                \
    X(h1, LAYER, d.F)              /* gate pre-activation (w1) */                        \
    X(h3, LAYER, d.F)              /* up projection (w3) */                              \
    X(hg, LAYER, d.F)              /* silu(h1) * h3, input of w2 */                      \
    X(sub_wq, LAYER, d.sub[BD_WQ]) /* SubLN "all": norm of xn_att, wq's input */         \
    X(sub_wk, LAYER, d.sub[BD_WK])                                                       \
    X(sub_wv, LAYER, d.sub[BD_WV])                                                       \
    X(sub_wo, LAYER, d.sub[BD_WO]) /* SubLN: norm of att, wo's input */                  \
    X(sub_w1, LAYER, d.sub[BD_W1]) /* SubLN "all": norm of xn_ffn, w1's input */         \
    X(sub_w2, LAYER, d.sub[BD_W2]) /* SubLN: norm of hg, w2's input */                   \
    X(sub_w3, LAYER, d.sub[BD_W3])                                                       \
    X(rstd_sub, LAYER, d.subr) /* SubLN rstd: linear k's rows at rstd_sub + k*N */       \
    X(xf, ONE, d.C)            /* final RMSNorm output (input of the head) */            \
    X(rstd_f, ONE, 1)                                                                    \
    X(proj, ONE, d.C) /* scratch: wo and w2 outputs before the residual add */

#define BD_ACT_MEMBER(name, slots, width) float *name;
// Pointers to the tensors: of layer 0 (or the one slot) in a state, of layer l in bd_block_acts.
typedef struct {
    BD_ACTS(BD_ACT_MEMBER)
} bd_acts;

// Points the tensors of a at 64-byte aligned pieces of arena from float *off on, for N rows
// with nl slots of each LAYER tensor and nx of the STREAM; *off advances past them. arena
// NULL: only *off advances (sizing), pointers are NULL.
void bd_acts_layout(bd_acts *a, float *arena, size_t *off, const bd_config *c, size_t N, size_t nl, size_t nx);
// One piece of n floats of an arena at *off (NULL if n == 0 or no arena); *off advances by n
// rounded up to 16 floats, so pieces stay 64-byte aligned relative to the arena.
float *bd_arena_take(float *arena, size_t *off, size_t n);

// Activations laid out for config a serve a model of config b (same sizes, variant, RoPE).
bool bd_same_shape(const bd_config *a, const bd_config *b);
// The SubLN output of linear k (the input the linear sees) in a, NULL where the config has none;
// its rstd rows are a->rstd_sub + k*N.
float *bd_acts_sub(const bd_acts *a, bd_linear k);

// Linear slot k of layer l in w (BD_HEAD: the head, l ignored): weight (out, in), row-major,
// and bias (out) or NULL. w may hold parameters or their gradients (the same layout).
typedef struct {
    float *w, *b;
    int in, out;
} bd_linear_slot;
bd_linear_slot bd_linear_at(const bd_weights *w, const bd_config *c, int l, bd_linear k);

// Seconds spent per kind of kernel, accumulated over calls (for benchmarks).
typedef struct {
    double embed, norm, linear, rope, attention, swiglu, residual, head, loss;
} bd_fwd_timing;

// Runs stmt; when tm (a bd_fwd_timing *) is not NULL, adds its seconds to tm->field.
#define BD_TIMED(tm, field, stmt)              \
    do {                                       \
        bd_fwd_timing *tm_ = (tm);             \
        double t0_ = tm_ ? bd_now() : 0;       \
        stmt;                                  \
        if (tm_) tm_->field += bd_now() - t0_; \
    } while (0)

typedef struct bd_block_run bd_block_run;

// The kernels of a walk (defined in bd_block.c): the fast ones, or their _ref twins.
typedef struct bd_block_ops bd_block_ops;
extern const bd_block_ops bd_block_fast, bd_block_ref;

// The attention of layer l: a->att (and a->lse where the op keeps it) from a->qr, a->kr, a->v.
typedef void (*bd_attention_op)(const bd_block_run *r, const bd_acts *a, int l);
void bd_block_self_attention(const bd_block_run *r, const bd_acts *a, int l);      // causal, fast
void bd_block_self_attention_ref(const bd_block_run *r, const bd_acts *a, int l);  // causal, _ref

// One walk's choices.
struct bd_block_run {
    const bd_model *m;
    const bd_block_ops *ops;  // &bd_block_fast or &bd_block_ref
    bd_attention_op attention;
    void *att_ctx;              // the attention op's own context (a KV cache), or NULL
    const bd_acts *acts;        // the activations: layer 0 of each tensor, or its one slot
    size_t layer_rows, x_rows;  // rows from one layer's LAYER tensors (x) to the next; 0: one slot
    int B, T;                   // B sequences of T positions each
    const int *pos;             // (B) position of each sequence's first row, or NULL: all 0
    const float *rope_cs;       // RoPE table of the fast kernels (bd_rope_table)
    float *att_scratch;         // scratch of bd_attention_forward
    long long att_scratch_floats;
    void *lin_scratch;      // bd_block_linear's scratch for N rows (bd_block_scratch_bytes)
    bd_fwd_timing *timing;  // or NULL: not timed
    // Called by bd_decoder_forward after each block with that layer's activations (a reader
    // such as attention-relation distillation's teacher, which keeps one layer's q, k, v), or NULL.
    void (*after_block)(void *ctx, const bd_acts *a, int l, int B, int T);
    void *after_block_ctx;
};

// Layer l's view of r->acts.
bd_acts bd_block_acts(const bd_block_run *r, int l);
// Whether linear k of layer l (BD_HEAD: the head) quantizes its input to 8 bits per token in
// the f32 path: a W1.58A8 model (m->qpolicy.act_bits == 8) and a linear its policy quantizes. A
// packed linear does it in its kernel instead (m->packed->act_int8, the same rule).
bool bd_block_act_quant(const bd_model *m, int l, bd_linear k);
// Bytes of r->lin_scratch that bd_block_linear needs for model m at N rows: the packed
// kernels' scratch, or room for N quantized activation rows.
size_t bd_block_scratch_bytes(const bd_model *m, int N);
// The one linear op: out (N, OC) = slot k of layer l applied to inp (N, C), with the model's
// packed weights where it has them, else the f32 weight; in a W1.58A8 model (bd_block_act_quant)
// inp is quantized to int8 per token first (bd_act_quant.h; into r->lin_scratch).
void bd_block_linear(const bd_block_run *r, int l, bd_linear k, float *out, const float *inp, int N);
// The input linear k of layer l sees: inp itself, or (SubLN) its RMSNorm with the linear's
// sub-norm weight, computed into bd_acts_sub(a, k) (a: layer l's view).
const float *bd_block_sub_norm(const bd_block_run *r, const bd_acts *a, int l, bd_linear k, const float *inp);
// Block l: from x[l] through its activations to x[l+1].
void bd_block_forward(const bd_block_run *r, int l);
// tokens (B*T) in [0, V): embedding into x[0], every block, the final RMSNorm into xf.
void bd_decoder_forward(const bd_block_run *r, const int32_t *tokens);

#endif
