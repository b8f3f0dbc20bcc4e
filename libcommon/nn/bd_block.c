// The decoder block and its walk over named activations, with the kernels chosen per call
// (fast or _ref) and the attention op chosen per call. Dimension key: C dim, NH/KV heads, HS
// head dim, QD = NH*HS, KD = KV*HS, F ffn dim, V vocab, B batch, T sequence, N = B*T rows.
#include "bd_block.h"

#include "bd_kernels.h"
#include "bd_packed.h"

// ---- activations ----

typedef struct {
    size_t C, NH, KV, QD, KD, F, qkn;  // qkn: 1 with q/k norm, else 0
} dims;

static dims dims_of(const bd_config *c) {
    size_t HS = (size_t)c->head_dim;
    dims d = {(size_t)c->dim,          (size_t)c->n_heads,         (size_t)c->n_kv_heads,
              (size_t)c->n_heads * HS, (size_t)c->n_kv_heads * HS, (size_t)c->ffn_dim,
              c->qk_norm ? 1u : 0u};
    return d;
}

enum { BD_ACT_LAYER, BD_ACT_STREAM, BD_ACT_ONE };

float *bd_arena_take(float *arena, size_t *off, size_t n) {
    float *p = n && arena ? arena + *off : NULL;
    *off += (n + 15) & ~(size_t)15;
    return p;
}

void bd_acts_layout(bd_acts *a, float *arena, size_t *off, const bd_config *c, size_t N, size_t nl, size_t nx) {
    dims d = dims_of(c);
    size_t slots[] = {[BD_ACT_LAYER] = nl, [BD_ACT_STREAM] = nx, [BD_ACT_ONE] = 1};
#define TAKE(name, sl, width) a->name = bd_arena_take(arena, off, slots[BD_ACT_##sl] * N * (width));
    BD_ACTS(TAKE)
#undef TAKE
}

bd_acts bd_block_acts(const bd_block_run *r, int l) {
    dims d = dims_of(&r->m->cfg);
    size_t rows[] = {[BD_ACT_LAYER] = r->layer_rows, [BD_ACT_STREAM] = r->x_rows, [BD_ACT_ONE] = 0};
    const bd_acts *b = r->acts;
    bd_acts a;
#define AT(name, sl, width) a.name = b->name ? b->name + (size_t)l * rows[BD_ACT_##sl] * (width) : NULL;
    BD_ACTS(AT)
#undef AT
    return a;
}

bool bd_same_shape(const bd_config *a, const bd_config *b) {
    return a->dim == b->dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim && a->ffn_dim == b->ffn_dim &&
           a->vocab == b->vocab && a->qk_norm == b->qk_norm && a->rope_theta == b->rope_theta;
}

// ---- linear slots ----

bd_linear_slot bd_linear_at(const bd_weights *w, const bd_config *c, int l, bd_linear k) {
    size_t L = (size_t)l;
    int C = c->dim, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim, F = c->ffn_dim;
    bd_linear_slot s = {NULL, NULL, C, C};
    switch (k) {
    case BD_WQ: s = (bd_linear_slot){w->wq + L * QD * C, w->bq ? w->bq + L * QD : NULL, C, QD}; break;
    case BD_WK: s = (bd_linear_slot){w->wk + L * KD * C, w->bk ? w->bk + L * KD : NULL, C, KD}; break;
    case BD_WV: s = (bd_linear_slot){w->wv + L * KD * C, w->bv ? w->bv + L * KD : NULL, C, KD}; break;
    case BD_WO: s = (bd_linear_slot){w->wo + L * C * QD, NULL, QD, C}; break;
    case BD_W1: s = (bd_linear_slot){w->w1 + L * F * C, NULL, C, F}; break;
    case BD_W2: s = (bd_linear_slot){w->w2 + L * C * F, NULL, F, C}; break;
    case BD_W3: s = (bd_linear_slot){w->w3 + L * F * C, NULL, C, F}; break;
    case BD_HEAD: s = (bd_linear_slot){w->wcls, NULL, C, c->vocab}; break;
    }
    return s;
}

// ---- kernels ----

struct bd_block_ops {
    void (*embedding)(float *out, const int32_t *tokens, const float *tok_emb, int N, int C);
    void (*rmsnorm)(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
    void (*linear)(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
    void (*pk_matmul)(float *out, const float *inp, const bd_pk_tensor *t, int N, bool act_int8, void *scratch);
    void (*rope)(const bd_block_run *r, float *x, int heads);  // the heads of x in place, at r's positions
    void (*swiglu)(float *out, const float *gate, const float *up, long long n);
    void (*residual)(float *out, const float *a, const float *b, long long n);
};

static void rope_fast(const bd_block_run *r, float *x, int heads) {
    bd_rope_forward(x, x, r->rope_cs, r->pos, r->B, r->T, heads, r->m->cfg.head_dim, r->m->cfg.rope);
}

static void rope_ref(const bd_block_run *r, float *x, int heads) {
    const bd_config *c = &r->m->cfg;
    bd_rope_forward_ref(x, x, r->pos, r->B, r->T, heads, c->head_dim, c->rope_theta, c->rope);
}

const bd_block_ops bd_block_fast = {bd_embedding_forward, bd_rmsnorm_forward, bd_linear_forward,
                                    bd_pk_matmul,         rope_fast,          bd_swiglu_forward,
                                    bd_residual_forward};
const bd_block_ops bd_block_ref = {
        bd_embedding_forward_ref, bd_rmsnorm_forward_ref, bd_linear_forward_ref, bd_pk_matmul_ref, rope_ref,
        bd_swiglu_forward_ref,    bd_residual_forward_ref};

void bd_block_self_attention(const bd_block_run *r, const bd_acts *a, int l) {
    const bd_config *c = &r->m->cfg;
    bd_attention_forward(a->att, a->lse, a->qr, a->kr, a->v, r->att_scratch, r->att_scratch_floats, r->B, r->T,
                         c->n_heads, c->n_kv_heads, c->head_dim);
}

void bd_block_self_attention_ref(const bd_block_run *r, const bd_acts *a, int l) {
    const bd_config *c = &r->m->cfg;
    bd_attention_forward_ref(a->att, a->lse, a->qr, a->kr, a->v, r->B, r->T, c->n_heads, c->n_kv_heads, c->head_dim);
}

// Every linear of every walk comes through here: the place for what all of them share (the
// packed dispatch; 8-bit activation quantization of inp would go here too).
void bd_block_linear(const bd_block_run *r, int l, bd_linear k, float *out, const float *inp, int N) {
    bd_linear_slot s = bd_linear_at(&r->m->w, &r->m->cfg, l, k);
    const bd_pk_tensor *p = bd_pk_model_slot(r->m, l, (int)k);
    if (!p) {
        r->ops->linear(out, inp, s.w, s.b, N, s.in, s.out);
        return;
    }
    r->ops->pk_matmul(out, inp, p, N, r->m->packed->act_int8, r->pk_scratch);
    if (s.b)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < s.out; o++) out[(size_t)n * s.out + o] += s.b[o];
}

// ---- the block ----

// stmt, timed into the run r's timing (when it has one).
#define TIMED(field, stmt) BD_TIMED(r->timing, field, stmt)

void bd_block_forward(const bd_block_run *r, int l) {
    const bd_config *c = &r->m->cfg;
    const bd_weights *w = &r->m->w;
    const bd_block_ops *op = r->ops;
    int C = c->dim, NH = c->n_heads, KV = c->n_kv_heads, HS = c->head_dim, F = c->ffn_dim, N = r->B * r->T;
    float eps = c->norm_eps;
    bd_acts a = bd_block_acts(r, l);
    float *x_out = a.x + r->x_rows * (size_t)C;  // x[l+1] (x[l] itself when x is one slot)
    // Attention: x_mid = x + wo(attention(rope(norm_q(wq xn)), rope(norm_k(wk xn)), wv xn)), xn = norm(x).
    TIMED(norm, op->rmsnorm(a.xn_att, a.rstd_att, a.x, w->rms_att + (size_t)l * C, N, C, eps));
    if (c->qk_norm) {  // Qwen3: RMSNorm per head of q and k before RoPE
        TIMED(linear, bd_block_linear(r, l, BD_WQ, a.q, a.xn_att, N));
        TIMED(linear, bd_block_linear(r, l, BD_WK, a.k, a.xn_att, N));
        TIMED(norm, op->rmsnorm(a.qr, a.rstd_q, a.q, w->q_norm + (size_t)l * HS, N * NH, HS, eps));
        TIMED(norm, op->rmsnorm(a.kr, a.rstd_k, a.k, w->k_norm + (size_t)l * HS, N * KV, HS, eps));
    } else {
        TIMED(linear, bd_block_linear(r, l, BD_WQ, a.qr, a.xn_att, N));
        TIMED(linear, bd_block_linear(r, l, BD_WK, a.kr, a.xn_att, N));
    }
    TIMED(linear, bd_block_linear(r, l, BD_WV, a.v, a.xn_att, N));
    TIMED(rope, op->rope(r, a.qr, NH));
    TIMED(rope, op->rope(r, a.kr, KV));
    TIMED(attention, r->attention(r, &a, l));
    // SubLN (BitNet Distillation) goes here: an RMSNorm of a.att into its own activation (a
    // BD_ACTS line) as wo's input, and below one of a.hg as w2's.
    TIMED(linear, bd_block_linear(r, l, BD_WO, a.proj, a.att, N));
    TIMED(residual, op->residual(a.x_mid, a.x, a.proj, (long long)N * C));
    // FFN: x[l+1] = x_mid + w2(silu(w1 xn2) * w3 xn2), xn2 = norm(x_mid).
    TIMED(norm, op->rmsnorm(a.xn_ffn, a.rstd_ffn, a.x_mid, w->rms_ffn + (size_t)l * C, N, C, eps));
    TIMED(linear, bd_block_linear(r, l, BD_W1, a.h1, a.xn_ffn, N));
    TIMED(linear, bd_block_linear(r, l, BD_W3, a.h3, a.xn_ffn, N));
    TIMED(swiglu, op->swiglu(a.hg, a.h1, a.h3, (long long)N * F));
    TIMED(linear, bd_block_linear(r, l, BD_W2, a.proj, a.hg, N));
    TIMED(residual, op->residual(x_out, a.x_mid, a.proj, (long long)N * C));
}

void bd_decoder_forward(const bd_block_run *r, const int32_t *tokens) {
    const bd_config *c = &r->m->cfg;
    const bd_acts *a = r->acts;
    int C = c->dim, L = c->n_layers, N = r->B * r->T;
    TIMED(embed, r->ops->embedding(a->x, tokens, r->m->w.tok_emb, N, C));
    for (int l = 0; l < L; l++) bd_block_forward(r, l);
    const float *x_last = a->x + (size_t)L * r->x_rows * C;
    TIMED(norm, r->ops->rmsnorm(a->xf, a->rstd_f, x_last, r->m->w.rms_final, N, C, c->norm_eps));
}
