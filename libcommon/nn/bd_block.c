// The decoder block and its walk over named activations, with the kernels chosen per call
// (fast or _ref) and the attention op chosen per call. Dimension key: C dim, NH/KV heads, HS
// head dim, QD = NH*HS, KD = KV*HS, F ffn dim, V vocab, B batch, T sequence, N = B*T rows.
#include "bd_block.h"

#include "bd_act_quant.h"
#include "bd_kernels.h"
#include "bd_packed.h"
#include "bd_qmodel.h"

// ---- activations ----

typedef struct {
    size_t C, NH, KV, QD, KD, F, qkn;  // qkn: 1 with q/k norm, else 0
    size_t sub[BD_N_LINEARS];          // SubLN: linear k's input width where it has a norm, else 0
    size_t subr;                       // SubLN: BD_N_LINEARS rstd rows (one per linear), else 0
} dims;

static dims dims_of(const bd_config *c) {
    size_t HS = (size_t)c->head_dim;
    dims d = {(size_t)c->dim,
              (size_t)c->n_heads,
              (size_t)c->n_kv_heads,
              (size_t)c->n_heads * HS,
              (size_t)c->n_kv_heads * HS,
              (size_t)c->ffn_dim,
              c->qk_norm ? 1u : 0u,
              {0},
              c->subln ? BD_N_LINEARS : 0};
    for (int k = 0; k < BD_N_LINEARS; k++) d.sub[k] = bd_subln_has(c, k) ? (size_t)bd_linear_in(c, k) : 0;
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
           a->vocab == b->vocab && a->qk_norm == b->qk_norm && a->rope_theta == b->rope_theta && a->subln == b->subln;
}

float *bd_acts_sub(const bd_acts *a, bd_linear k) {
    switch (k) {
    case BD_WQ: return a->sub_wq;
    case BD_WK: return a->sub_wk;
    case BD_WV: return a->sub_wv;
    case BD_WO: return a->sub_wo;
    case BD_W1: return a->sub_w1;
    case BD_W2: return a->sub_w2;
    case BD_W3: return a->sub_w3;
    default: return NULL;
    }
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
    void (*act_quant)(float *out, const float *x, int N, int C);  // 8-bit fake quantization per row
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
                                    bd_residual_forward,  bd_act_fakequant};
const bd_block_ops bd_block_ref = {
        bd_embedding_forward_ref, bd_rmsnorm_forward_ref,  bd_linear_forward_ref, bd_pk_matmul_ref, rope_ref,
        bd_swiglu_forward_ref,    bd_residual_forward_ref, bd_act_fakequant_ref};

void bd_block_self_attention(const bd_block_run *r, const bd_acts *a, int l) {
    const bd_config *c = &r->m->cfg;
    bd_attention_forward(a->att, a->lse, a->qr, a->kr, a->v, r->att_scratch, r->att_scratch_floats, r->B, r->T,
                         c->n_heads, c->n_kv_heads, c->head_dim);
}

void bd_block_self_attention_ref(const bd_block_run *r, const bd_acts *a, int l) {
    const bd_config *c = &r->m->cfg;
    bd_attention_forward_ref(a->att, a->lse, a->qr, a->kr, a->v, r->B, r->T, c->n_heads, c->n_kv_heads, c->head_dim);
}

bool bd_block_act_quant(const bd_model *m, int l, bd_linear k) {
    if (m->qpolicy.act_bits != 8) return false;
    if (k == BD_HEAD) return bd_qpolicy_covers(&m->qpolicy, "wcls", -1);
    return bd_qpolicy_covers(&m->qpolicy, bd_linear_names[k], l);
}

size_t bd_block_scratch_bytes(const bd_model *m, int N) {
    size_t pk = bd_pk_model_scratch_bytes(m, N);
    // A packed model's quantized linears are all packed (their kernels quantize activations).
    if (m->qpolicy.act_bits != 8 || m->packed) return pk;
    const bd_config *c = &m->cfg;
    size_t widest = (size_t)c->dim;
    if ((size_t)c->n_heads * c->head_dim > widest) widest = (size_t)c->n_heads * c->head_dim;
    if ((size_t)c->ffn_dim > widest) widest = (size_t)c->ffn_dim;
    size_t aq = (size_t)N * widest * sizeof(float);
    return aq > pk ? aq : pk;
}

// Every linear of every walk comes through here: the place for what all of them share (the
// packed dispatch, and the 8-bit activation quantization of a W1.58A8 model).
void bd_block_linear(const bd_block_run *r, int l, bd_linear k, float *out, const float *inp, int N) {
    bd_linear_slot s = bd_linear_at(&r->m->w, &r->m->cfg, l, k);
    const bd_pk_tensor *p = bd_pk_model_slot(r->m, l, (int)k);
    if (!p) {
        if (bd_block_act_quant(r->m, l, k)) {
            float *xq = r->lin_scratch;  // (N, in): the quantized input
            r->ops->act_quant(xq, inp, N, s.in);
            inp = xq;
        }
        r->ops->linear(out, inp, s.w, s.b, N, s.in, s.out);
        return;
    }
    r->ops->pk_matmul(out, inp, p, N, bd_pk_model_act_int8(r->m->packed, k), r->lin_scratch);
    if (s.b)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < s.out; o++) out[(size_t)n * s.out + o] += s.b[o];
}

// ---- the block ----

// stmt, timed into the run r's timing (when it has one).
#define TIMED(field, stmt) BD_TIMED(r->timing, field, stmt)

const float *bd_block_sub_norm(const bd_block_run *r, const bd_acts *a, int l, bd_linear k, const float *inp) {
    const bd_config *c = &r->m->cfg;
    if (!bd_subln_has(c, k)) return inp;
    int N = r->B * r->T, in = bd_linear_in(c, k);
    float *out = bd_acts_sub(a, k), *rstd = a->rstd_sub + (size_t)k * N;
    const float *w = r->m->w.sub_norm[k] + (size_t)l * in;
    TIMED(norm, r->ops->rmsnorm(out, rstd, inp, w, N, in, c->subln_eps));
    return out;
}

void bd_block_forward(const bd_block_run *r, int l) {
    const bd_config *c = &r->m->cfg;
    const bd_weights *w = &r->m->w;
    const bd_block_ops *op = r->ops;
    int C = c->dim, NH = c->n_heads, KV = c->n_kv_heads, HS = c->head_dim, F = c->ffn_dim, N = r->B * r->T;
    float eps = c->norm_eps;
    bd_acts a = bd_block_acts(r, l);
    float *x_out = a.x + r->x_rows * (size_t)C;  // x[l+1] (x[l] itself when x is one slot)
    // Attention: x_mid = x + wo(attention(rope(norm_q(wq xn)), rope(norm_k(wk xn)), wv xn)), xn = norm(x).
    // SubLN: each linear k with a sub norm sees sub(in) = RMSNorm(in) * sub_norm[k] instead of in
    // (bd_block_sub_norm; identity otherwise): before wo and w2 (paper), or before all seven.
    TIMED(norm, op->rmsnorm(a.xn_att, a.rstd_att, a.x, w->rms_att + (size_t)l * C, N, C, eps));
    const float *in_q = bd_block_sub_norm(r, &a, l, BD_WQ, a.xn_att);
    const float *in_k = bd_block_sub_norm(r, &a, l, BD_WK, a.xn_att);
    if (c->qk_norm) {  // Qwen3: RMSNorm per head of q and k before RoPE
        TIMED(linear, bd_block_linear(r, l, BD_WQ, a.q, in_q, N));
        TIMED(linear, bd_block_linear(r, l, BD_WK, a.k, in_k, N));
        TIMED(norm, op->rmsnorm(a.qr, a.rstd_q, a.q, w->q_norm + (size_t)l * HS, N * NH, HS, eps));
        TIMED(norm, op->rmsnorm(a.kr, a.rstd_k, a.k, w->k_norm + (size_t)l * HS, N * KV, HS, eps));
    } else {
        TIMED(linear, bd_block_linear(r, l, BD_WQ, a.qr, in_q, N));
        TIMED(linear, bd_block_linear(r, l, BD_WK, a.kr, in_k, N));
    }
    const float *in_v = bd_block_sub_norm(r, &a, l, BD_WV, a.xn_att);
    TIMED(linear, bd_block_linear(r, l, BD_WV, a.v, in_v, N));
    TIMED(rope, op->rope(r, a.qr, NH));
    TIMED(rope, op->rope(r, a.kr, KV));
    TIMED(attention, r->attention(r, &a, l));
    const float *in_o = bd_block_sub_norm(r, &a, l, BD_WO, a.att);
    TIMED(linear, bd_block_linear(r, l, BD_WO, a.proj, in_o, N));
    TIMED(residual, op->residual(a.x_mid, a.x, a.proj, (long long)N * C));
    // FFN: x[l+1] = x_mid + w2(silu(w1 xn2) * w3 xn2), xn2 = norm(x_mid).
    TIMED(norm, op->rmsnorm(a.xn_ffn, a.rstd_ffn, a.x_mid, w->rms_ffn + (size_t)l * C, N, C, eps));
    const float *in_1 = bd_block_sub_norm(r, &a, l, BD_W1, a.xn_ffn);
    const float *in_3 = bd_block_sub_norm(r, &a, l, BD_W3, a.xn_ffn);
    TIMED(linear, bd_block_linear(r, l, BD_W1, a.h1, in_1, N));
    TIMED(linear, bd_block_linear(r, l, BD_W3, a.h3, in_3, N));
    TIMED(swiglu, op->swiglu(a.hg, a.h1, a.h3, (long long)N * F));
    const float *in_2 = bd_block_sub_norm(r, &a, l, BD_W2, a.hg);
    TIMED(linear, bd_block_linear(r, l, BD_W2, a.proj, in_2, N));
    TIMED(residual, op->residual(x_out, a.x_mid, a.proj, (long long)N * C));
}

void bd_decoder_forward(const bd_block_run *r, const int32_t *tokens) {
    const bd_config *c = &r->m->cfg;
    const bd_acts *a = r->acts;
    int C = c->dim, L = c->n_layers, N = r->B * r->T;
    const bd_pk_tensor *emb = bd_pk_model_embedding(r->m);  // a tied head quantized after training
    if (emb)
        TIMED(embed, bd_pk_embedding(a->x, tokens, emb, N));
    else
        TIMED(embed, r->ops->embedding(a->x, tokens, r->m->w.tok_emb, N, C));
    for (int l = 0; l < L; l++) {
        bd_block_forward(r, l);
        if (r->after_block) {
            bd_acts al = bd_block_acts(r, l);
            r->after_block(r->after_block_ctx, &al, l, r->B, r->T);
        }
    }
    const float *x_last = a->x + (size_t)L * r->x_rows * C;
    TIMED(norm, r->ops->rmsnorm(a->xf, a->rstd_f, x_last, r->m->w.rms_final, N, C, c->norm_eps));
}
