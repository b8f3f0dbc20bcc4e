// Forward pass of the decoder: batched (with the activation arena), NLL, reference, and
// the KV-cache step. Dimension key: V vocab, C dim, L layers, NH/KV heads, HS head dim,
// QD = NH*HS, KD = KV*HS, F ffn dim, B batch, T sequence, N = B*T rows.
#include "bd_forward.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bd_kernels.h"
#include "bd_log.h"
#include "bd_packed.h"
#include "bd_threads.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define TIMED(s, field, stmt)                  \
    do {                                       \
        double t0_ = now();                    \
        stmt;                                  \
        (s)->timing.field += now() - t0_;      \
    } while (0)

// Linear k (0..6: wq wk wv wo w1 w2 w3, 7: the head) of layer l: with the model's packed
// weights when it has them (bd_packed.h), else the f32 weight through sgemm.
static void linear(const bd_model *m, int l, int k, float *out, const float *inp, const float *w, const float *bias,
                   int N, int C, int OC) {
    const bd_pk_tensor *p = bd_pk_model_slot(m, l, k);
    if (!p) { bd_linear_forward(out, inp, w, bias, N, C, OC); return; }
    void *scratch = malloc(bd_pk_matmul_scratch_bytes(p, N, m->packed->act_int8));  // TODO(scratch): from the activations
    if (scratch) bd_pk_matmul(out, inp, p, N, m->packed->act_int8, scratch);
    else for (size_t i = 0; i < (size_t)N * OC; i++) out[i] = __builtin_nanf("");  // no memory: NaN, never stale numbers
    free(scratch);
    if (bias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] += bias[o];
}

static void linear_ref(const bd_model *m, int l, int k, float *out, const float *inp, const float *w, const float *bias,
                       int N, int C, int OC) {
    const bd_pk_tensor *p = bd_pk_model_slot(m, l, k);
    if (!p) { bd_linear_forward_ref(out, inp, w, bias, N, C, OC); return; }
    void *scratch = malloc(bd_pk_matmul_scratch_bytes(p, N, m->packed->act_int8));  // TODO(scratch): from the activations
    if (scratch) bd_pk_matmul_ref(out, inp, p, N, m->packed->act_int8, scratch);
    else for (size_t i = 0; i < (size_t)N * OC; i++) out[i] = __builtin_nanf("");  // no memory: NaN, never stale numbers
    free(scratch);
    if (bias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] += bias[o];
}

int bd_fwd_nll_rows(int N) { return N < 256 ? N : 256; }

float *bd_fwd_layer(const bd_fwd_state *s, float *base, int l, size_t width) {
    if (!base) return NULL;
    return base + (s->keep ? (size_t)l : 0) * (size_t)s->B * (size_t)s->T * width;
}

int bd_fwd_state_init(bd_fwd_state *s, const bd_config *cfg, int B, int T, bool keep) {
    memset(s, 0, sizeof *s);
    if (bd_config_check(cfg, NULL, 0) < 0 || B <= 0 || T <= 0) return BD_ERR_ARG;
    size_t N = (size_t)B * T, C = (size_t)cfg->dim, L = (size_t)cfg->n_layers;
    size_t NH = (size_t)cfg->n_heads, KV = (size_t)cfg->n_kv_heads, HS = (size_t)cfg->head_dim;
    size_t QD = NH * HS, KD = KV * HS, F = (size_t)cfg->ffn_dim, V = (size_t)cfg->vocab;
    size_t nl = keep ? L : 1;
    struct { float **p; size_t n; } parts[] = {
        {&s->x, (keep ? L + 1 : 1) * N * C},
        {&s->xn_att, nl * N * C},
        {&s->rstd_att, nl * N},
        {&s->q, cfg->qk_norm ? nl * N * QD : 0},
        {&s->k, cfg->qk_norm ? nl * N * KD : 0},
        {&s->rstd_q, cfg->qk_norm ? nl * N * NH : 0},
        {&s->rstd_k, cfg->qk_norm ? nl * N * KV : 0},
        {&s->qr, nl * N * QD},
        {&s->kr, nl * N * KD},
        {&s->v, nl * N * KD},
        {&s->att, nl * N * QD},
        {&s->lse, nl * N * NH},
        {&s->x_mid, nl * N * C},
        {&s->xn_ffn, nl * N * C},
        {&s->rstd_ffn, nl * N},
        {&s->h1, nl * N * F},
        {&s->h3, nl * N * F},
        {&s->hg, nl * N * F},
        {&s->xf, N * C},
        {&s->rstd_f, N},
        {&s->proj, N * C},
        {&s->att_scratch, (size_t)bd_attention_scratch_floats(T, bd_num_threads())},
        {&s->rope_cs, (size_t)T * HS},
        {&s->logit_chunk, (size_t)bd_fwd_nll_rows((int)(N > 1u << 30 ? 1u << 30 : N)) * V},
        {&s->losses, N},
        {&s->loss_lse, N},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) total += (parts[i].n + 15) & ~(size_t)15;
    s->arena = malloc(total * sizeof(float));
    if (!s->arena) {
        bd_log(BD_LOG_ERROR, "forward: cannot allocate %zu MB of activations", total * sizeof(float) >> 20);
        return BD_ERR_NOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        *parts[i].p = parts[i].n ? s->arena + off : NULL;
        off += (parts[i].n + 15) & ~(size_t)15;  // 64-byte aligned pieces
    }
    s->cfg = *cfg;
    s->B = B;
    s->T = T;
    s->keep = keep;
    s->arena_floats = total;
    s->att_scratch_floats = bd_attention_scratch_floats(T, bd_num_threads());
    bd_rope_table(s->rope_cs, T, (int)HS, cfg->rope_theta);
    return BD_OK;
}

void bd_fwd_state_free(bd_fwd_state *s) {
    free(s->arena);
    memset(s, 0, sizeof *s);
}

static bool same_shape(const bd_config *a, const bd_config *b) {
    return a->dim == b->dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim && a->ffn_dim == b->ffn_dim &&
           a->vocab == b->vocab && a->qk_norm == b->qk_norm && a->rope_theta == b->rope_theta;
}

static int check_tokens(const char *who, const int32_t *tokens, long long n, int V) {
    for (long long i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V) {
            bd_log(BD_LOG_ERROR, "%s: token %d at position %lld is outside the vocabulary [0, %d)", who,
                   (int)tokens[i], i, V);
            return BD_ERR_VALUE;
        }
    return BD_OK;
}

// The batched pass. kv != NULL: also store keys/values of positions 0..T-1 in the cache.
static int forward_impl(bd_fwd_state *s, const bd_model *m, const int32_t *tokens, int B, int T,
                        float *logits, bd_kv_cache *kv) {
    const bd_config *c = &m->cfg;
    const bd_weights *w = &m->w;
    if (!same_shape(&s->cfg, c) || B <= 0 || T <= 0 || B > s->B || T > s->T) {
        bd_log(BD_LOG_ERROR, "forward: batch %dx%d does not fit the state (%dx%d) or model mismatch", B, T,
               s->B, s->T);
        return BD_ERR_ARG;
    }
    int rc = check_tokens("forward", tokens, (long long)B * T, c->vocab);
    if (rc < 0) return rc;
    int C = c->dim, L = c->n_layers, NH = c->n_heads, KV = c->n_kv_heads, HS = c->head_dim, F = c->ffn_dim;
    int QD = NH * HS, KD = KV * HS, N = B * T;
    float eps = c->norm_eps;

    TIMED(s, embed, bd_embedding_forward(s->x, tokens, w->tok_emb, N, C));
    for (int l = 0; l < L; l++) {
        float *x = bd_fwd_layer(s, s->x, l, C), *xn = bd_fwd_layer(s, s->xn_att, l, C);
        float *qr = bd_fwd_layer(s, s->qr, l, QD), *kr = bd_fwd_layer(s, s->kr, l, KD);
        float *v = bd_fwd_layer(s, s->v, l, KD), *att = bd_fwd_layer(s, s->att, l, QD);
        float *xmid = bd_fwd_layer(s, s->x_mid, l, C), *xn2 = bd_fwd_layer(s, s->xn_ffn, l, C);
        float *h1 = bd_fwd_layer(s, s->h1, l, F), *h3 = bd_fwd_layer(s, s->h3, l, F);
        float *hg = bd_fwd_layer(s, s->hg, l, F);
        const float *bq = w->bq ? w->bq + (size_t)l * QD : NULL;
        const float *bk = w->bk ? w->bk + (size_t)l * KD : NULL;
        const float *bv = w->bv ? w->bv + (size_t)l * KD : NULL;

        TIMED(s, norm, bd_rmsnorm_forward(xn, bd_fwd_layer(s, s->rstd_att, l, 1), x, w->rms_att + (size_t)l * C, N, C, eps));
        if (c->qk_norm) {
            float *q = bd_fwd_layer(s, s->q, l, QD), *k = bd_fwd_layer(s, s->k, l, KD);
            TIMED(s, linear, linear(m, l, 0, q, xn, w->wq + (size_t)l * QD * C, bq, N, C, QD));
            TIMED(s, linear, linear(m, l, 1, k, xn, w->wk + (size_t)l * KD * C, bk, N, C, KD));
            TIMED(s, norm, bd_rmsnorm_forward(qr, bd_fwd_layer(s, s->rstd_q, l, NH), q, w->q_norm + (size_t)l * HS, N * NH, HS, eps));
            TIMED(s, norm, bd_rmsnorm_forward(kr, bd_fwd_layer(s, s->rstd_k, l, KV), k, w->k_norm + (size_t)l * HS, N * KV, HS, eps));
        } else {
            TIMED(s, linear, linear(m, l, 0, qr, xn, w->wq + (size_t)l * QD * C, bq, N, C, QD));
            TIMED(s, linear, linear(m, l, 1, kr, xn, w->wk + (size_t)l * KD * C, bk, N, C, KD));
        }
        TIMED(s, linear, linear(m, l, 2, v, xn, w->wv + (size_t)l * KD * C, bv, N, C, KD));
        TIMED(s, rope, bd_rope_forward(qr, qr, s->rope_cs, NULL, B, T, NH, HS, c->rope));
        TIMED(s, rope, bd_rope_forward(kr, kr, s->rope_cs, NULL, B, T, KV, HS, c->rope));
        if (kv)
            for (int b = 0; b < B; b++) {
                size_t dst = (((size_t)l * kv->B + b) * kv->max_T) * KD, src = (size_t)b * T * KD;
                memcpy(kv->k + dst, kr + src, (size_t)T * KD * sizeof(float));
                memcpy(kv->v + dst, v + src, (size_t)T * KD * sizeof(float));
            }
        TIMED(s, attention, bd_attention_forward(att, bd_fwd_layer(s, s->lse, l, NH), qr, kr, v, s->att_scratch, s->att_scratch_floats, B, T, NH, KV, HS));
        TIMED(s, linear, linear(m, l, 3, s->proj, att, w->wo + (size_t)l * C * QD, NULL, N, QD, C));
        TIMED(s, residual, bd_residual_forward(xmid, x, s->proj, (long long)N * C));
        TIMED(s, norm, bd_rmsnorm_forward(xn2, bd_fwd_layer(s, s->rstd_ffn, l, 1), xmid, w->rms_ffn + (size_t)l * C, N, C, eps));
        TIMED(s, linear, linear(m, l, 4, h1, xn2, w->w1 + (size_t)l * F * C, NULL, N, C, F));
        TIMED(s, linear, linear(m, l, 6, h3, xn2, w->w3 + (size_t)l * F * C, NULL, N, C, F));
        TIMED(s, swiglu, bd_swiglu_forward(hg, h1, h3, (long long)N * F));
        TIMED(s, linear, linear(m, l, 5, s->proj, hg, w->w2 + (size_t)l * C * F, NULL, N, F, C));
        TIMED(s, residual, bd_residual_forward(bd_fwd_layer(s, s->x, l + 1, C), xmid, s->proj, (long long)N * C));
    }
    TIMED(s, norm, bd_rmsnorm_forward(s->xf, s->rstd_f, bd_fwd_layer(s, s->x, L, C), w->rms_final, N, C, eps));
    if (logits) TIMED(s, head, linear(m, 0, 7, logits, s->xf, w->wcls, NULL, N, C, c->vocab));
    return BD_OK;
}

int bd_forward(bd_fwd_state *s, const bd_model *m, const int32_t *tokens, int B, int T, float *logits) {
    return forward_impl(s, m, tokens, B, T, logits, NULL);
}

int bd_forward_nll(bd_fwd_state *s, const bd_model *m, const int32_t *tokens, const int32_t *targets,
                   int B, int T, double *mean_nll) {
    *mean_nll = 0;
    int rc = forward_impl(s, m, tokens, B, T, NULL, NULL);
    if (rc < 0) return rc;
    int V = m->cfg.vocab, C = m->cfg.dim, N = B * T, R = bd_fwd_nll_rows(s->B * s->T);
    int32_t tgt[256];  // one chunk of targets (R <= 256)
    double sum = 0;
    int count = 0;
    for (int r0 = 0; r0 < N; r0 += R) {
        int nr = N - r0 < R ? N - r0 : R;
        for (int i = 0; i < nr; i++) {
            int n = r0 + i, t = n % T;
            int32_t y = targets ? targets[n] : (t + 1 < T ? tokens[n + 1] : -1);
            if (y >= V) {
                bd_log(BD_LOG_ERROR, "forward: target %d at position %d is outside the vocabulary [0, %d)",
                       (int)y, n, V);
                return BD_ERR_VALUE;
            }
            tgt[i] = y;
        }
        TIMED(s, head, linear(m, 0, 7, s->logit_chunk, s->xf + (size_t)r0 * C, m->w.wcls, NULL, nr, C, V));
        TIMED(s, loss, bd_crossentropy_forward(s->losses + r0, s->loss_lse + r0, s->logit_chunk, tgt, nr, V));
        for (int i = 0; i < nr; i++)
            if (tgt[i] >= 0) {
                sum += s->losses[r0 + i];
                count++;
            }
    }
    *mean_nll = count ? sum / count : 0.0;
    return count;
}

int bd_forward_ref(const bd_model *m, const int32_t *tokens, int B, int T, float *logits) {
    const bd_config *c = &m->cfg;
    const bd_weights *w = &m->w;
    if (B <= 0 || T <= 0) return BD_ERR_ARG;
    int rc = check_tokens("forward_ref", tokens, (long long)B * T, c->vocab);
    if (rc < 0) return rc;
    int C = c->dim, L = c->n_layers, NH = c->n_heads, KV = c->n_kv_heads, HS = c->head_dim, F = c->ffn_dim;
    int QD = NH * HS, KD = KV * HS, N = B * T;
    float eps = c->norm_eps;
    size_t big = (size_t)N * (size_t)(C > QD ? C : QD);
    float *x = malloc((size_t)N * C * sizeof(float)), *xn = malloc(big * sizeof(float));
    float *q = malloc((size_t)N * QD * sizeof(float)), *k = malloc((size_t)N * KD * sizeof(float));
    float *v = malloc((size_t)N * KD * sizeof(float)), *att = malloc((size_t)N * QD * sizeof(float));
    float *h1 = malloc((size_t)N * F * sizeof(float)), *h3 = malloc((size_t)N * F * sizeof(float));
    float *rstd = malloc((size_t)N * NH * sizeof(float)), *lse = malloc((size_t)N * NH * sizeof(float));
    float *tmp = malloc((size_t)N * C * sizeof(float));
    rc = BD_ERR_NOMEM;
    if (!x || !xn || !q || !k || !v || !att || !h1 || !h3 || !rstd || !lse || !tmp) goto done;
    bd_embedding_forward_ref(x, tokens, w->tok_emb, N, C);
    for (int l = 0; l < L; l++) {
        bd_rmsnorm_forward_ref(xn, rstd, x, w->rms_att + (size_t)l * C, N, C, eps);
        linear_ref(m, l, 0, q, xn, w->wq + (size_t)l * QD * C, w->bq ? w->bq + (size_t)l * QD : NULL, N, C, QD);
        linear_ref(m, l, 1, k, xn, w->wk + (size_t)l * KD * C, w->bk ? w->bk + (size_t)l * KD : NULL, N, C, KD);
        linear_ref(m, l, 2, v, xn, w->wv + (size_t)l * KD * C, w->bv ? w->bv + (size_t)l * KD : NULL, N, C, KD);
        if (c->qk_norm) {
            bd_rmsnorm_forward_ref(q, rstd, q, w->q_norm + (size_t)l * HS, N * NH, HS, eps);
            bd_rmsnorm_forward_ref(k, rstd, k, w->k_norm + (size_t)l * HS, N * KV, HS, eps);
        }
        bd_rope_forward_ref(q, q, NULL, B, T, NH, HS, c->rope_theta, c->rope);
        bd_rope_forward_ref(k, k, NULL, B, T, KV, HS, c->rope_theta, c->rope);
        bd_attention_forward_ref(att, lse, q, k, v, B, T, NH, KV, HS);
        linear_ref(m, l, 3, tmp, att, w->wo + (size_t)l * C * QD, NULL, N, QD, C);
        bd_residual_forward_ref(x, x, tmp, (long long)N * C);
        bd_rmsnorm_forward_ref(xn, rstd, x, w->rms_ffn + (size_t)l * C, N, C, eps);
        linear_ref(m, l, 4, h1, xn, w->w1 + (size_t)l * F * C, NULL, N, C, F);
        linear_ref(m, l, 6, h3, xn, w->w3 + (size_t)l * F * C, NULL, N, C, F);
        bd_swiglu_forward_ref(h1, h1, h3, (long long)N * F);
        linear_ref(m, l, 5, tmp, h1, w->w2 + (size_t)l * C * F, NULL, N, F, C);
        bd_residual_forward_ref(x, x, tmp, (long long)N * C);
    }
    bd_rmsnorm_forward_ref(xn, rstd, x, w->rms_final, N, C, eps);
    linear_ref(m, 0, 7, logits, xn, w->wcls, NULL, N, C, c->vocab);
    rc = BD_OK;
done:
    free(x), free(xn), free(q), free(k), free(v), free(att), free(h1), free(h3), free(rstd), free(lse), free(tmp);
    return rc;
}

// ---- KV cache ----

int bd_kv_cache_init(bd_kv_cache *c, const bd_config *cfg, int B, int max_T) {
    memset(c, 0, sizeof *c);
    if (bd_config_check(cfg, NULL, 0) < 0 || B <= 0 || max_T <= 0) return BD_ERR_ARG;
    size_t L = (size_t)cfg->n_layers, C = (size_t)cfg->dim, NH = (size_t)cfg->n_heads;
    size_t KV = (size_t)cfg->n_kv_heads, HS = (size_t)cfg->head_dim, F = (size_t)cfg->ffn_dim;
    size_t QD = NH * HS, KD = KV * HS, nb = (size_t)B;
    struct { float **p; size_t n; } parts[] = {
        {&c->k, L * nb * (size_t)max_T * KD}, {&c->v, L * nb * (size_t)max_T * KD},
        {&c->x, nb * C}, {&c->xn, nb * C}, {&c->rstd, nb * NH}, {&c->q, nb * QD}, {&c->qr, nb * QD},
        {&c->kn, nb * KD}, {&c->kr, nb * KD}, {&c->vn, nb * KD}, {&c->att, nb * QD}, {&c->proj, nb * C},
        {&c->h1, nb * F}, {&c->h3, nb * F}, {&c->scores, (NH / KV) * (size_t)max_T},
        {&c->rope_cs, (size_t)max_T * HS},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) total += (parts[i].n + 15) & ~(size_t)15;
    c->mem = malloc(total * sizeof(float));
    if (!c->mem) {
        bd_log(BD_LOG_ERROR, "kv cache: cannot allocate %zu MB", total * sizeof(float) >> 20);
        return BD_ERR_NOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        *parts[i].p = c->mem + off;
        off += (parts[i].n + 15) & ~(size_t)15;
    }
    c->cfg = *cfg;
    c->B = B;
    c->max_T = max_T;
    bd_rope_table(c->rope_cs, max_T, (int)HS, cfg->rope_theta);
    return BD_OK;
}

void bd_kv_cache_free(bd_kv_cache *c) {
    free(c->mem);
    memset(c, 0, sizeof *c);
}

int bd_forward_step(bd_kv_cache *kc, const bd_model *m, const int32_t *tokens, const int *pos, int B,
                    float *logits) {
    const bd_config *c = &m->cfg;
    const bd_weights *w = &m->w;
    if (!same_shape(&kc->cfg, c) || B <= 0 || B > kc->B) {
        bd_log(BD_LOG_ERROR, "forward step: batch %d does not fit the cache (%d) or model mismatch", B, kc->B);
        return BD_ERR_ARG;
    }
    for (int b = 0; b < B; b++)
        if (pos[b] < 0 || pos[b] >= kc->max_T) {
            bd_log(BD_LOG_ERROR, "forward step: position %d of sequence %d is outside the cache [0, %d)", pos[b], b,
                   kc->max_T);
            return BD_ERR_ARG;
        }
    int rc = check_tokens("forward step", tokens, B, c->vocab);
    if (rc < 0) return rc;
    int C = c->dim, L = c->n_layers, NH = c->n_heads, KV = c->n_kv_heads, HS = c->head_dim, F = c->ffn_dim;
    int QD = NH * HS, KD = KV * HS;
    float eps = c->norm_eps;
    bd_embedding_forward(kc->x, tokens, w->tok_emb, B, C);
    for (int l = 0; l < L; l++) {
        const float *bq = w->bq ? w->bq + (size_t)l * QD : NULL;
        const float *bk = w->bk ? w->bk + (size_t)l * KD : NULL;
        const float *bv = w->bv ? w->bv + (size_t)l * KD : NULL;
        float *kcache = kc->k + (size_t)l * kc->B * kc->max_T * KD;
        float *vcache = kc->v + (size_t)l * kc->B * kc->max_T * KD;
        bd_rmsnorm_forward(kc->xn, kc->rstd, kc->x, w->rms_att + (size_t)l * C, B, C, eps);
        if (c->qk_norm) {
            linear(m, l, 0, kc->q, kc->xn, w->wq + (size_t)l * QD * C, bq, B, C, QD);
            linear(m, l, 1, kc->kn, kc->xn, w->wk + (size_t)l * KD * C, bk, B, C, KD);
            bd_rmsnorm_forward(kc->qr, kc->rstd, kc->q, w->q_norm + (size_t)l * HS, B * NH, HS, eps);
            bd_rmsnorm_forward(kc->kr, kc->rstd, kc->kn, w->k_norm + (size_t)l * HS, B * KV, HS, eps);
        } else {
            linear(m, l, 0, kc->qr, kc->xn, w->wq + (size_t)l * QD * C, bq, B, C, QD);
            linear(m, l, 1, kc->kr, kc->xn, w->wk + (size_t)l * KD * C, bk, B, C, KD);
        }
        linear(m, l, 2, kc->vn, kc->xn, w->wv + (size_t)l * KD * C, bv, B, C, KD);
        bd_rope_forward(kc->qr, kc->qr, kc->rope_cs, pos, B, 1, NH, HS, c->rope);
        bd_rope_forward(kc->kr, kc->kr, kc->rope_cs, pos, B, 1, KV, HS, c->rope);
        for (int b = 0; b < B; b++) {
            size_t dst = ((size_t)b * kc->max_T + pos[b]) * KD;
            memcpy(kcache + dst, kc->kr + (size_t)b * KD, (size_t)KD * sizeof(float));
            memcpy(vcache + dst, kc->vn + (size_t)b * KD, (size_t)KD * sizeof(float));
        }
        bd_attention_step_forward(kc->att, kc->qr, kcache, vcache, pos, kc->scores, B, kc->max_T, NH, KV, HS);
        linear(m, l, 3, kc->proj, kc->att, w->wo + (size_t)l * C * QD, NULL, B, QD, C);
        bd_residual_forward(kc->x, kc->x, kc->proj, (long long)B * C);
        bd_rmsnorm_forward(kc->xn, kc->rstd, kc->x, w->rms_ffn + (size_t)l * C, B, C, eps);
        linear(m, l, 4, kc->h1, kc->xn, w->w1 + (size_t)l * F * C, NULL, B, C, F);
        linear(m, l, 6, kc->h3, kc->xn, w->w3 + (size_t)l * F * C, NULL, B, C, F);
        bd_swiglu_forward(kc->h1, kc->h1, kc->h3, (long long)B * F);
        linear(m, l, 5, kc->proj, kc->h1, w->w2 + (size_t)l * C * F, NULL, B, F, C);
        bd_residual_forward(kc->x, kc->x, kc->proj, (long long)B * C);
    }
    bd_rmsnorm_forward(kc->xn, kc->rstd, kc->x, w->rms_final, B, C, eps);
    linear(m, 0, 7, logits, kc->xn, w->wcls, NULL, B, C, c->vocab);
    return BD_OK;
}

int bd_forward_prefill(bd_fwd_state *s, bd_kv_cache *kc, const bd_model *m, const int32_t *tokens, int B,
                       int T, float *last_logits) {
    if (!same_shape(&kc->cfg, &m->cfg) || B > kc->B || T > kc->max_T) {
        bd_log(BD_LOG_ERROR, "prefill: %d prompts of %d tokens do not fit the cache (%d x %d)", B, T, kc->B,
               kc->max_T);
        return BD_ERR_ARG;
    }
    int rc = forward_impl(s, m, tokens, B, T, NULL, kc);
    if (rc < 0 || !last_logits) return rc;
    int C = m->cfg.dim;
    for (int b = 0; b < B; b++)
        linear(m, 0, 7, last_logits + (size_t)b * m->cfg.vocab, s->xf + ((size_t)b * T + T - 1) * C, m->w.wcls,
                          NULL, 1, C, m->cfg.vocab);
    return BD_OK;
}
