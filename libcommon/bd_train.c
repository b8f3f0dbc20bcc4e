// The training forward/backward pass, the optimizer step with gradient accumulation, and
// the epoch order. Dimension key: V vocab, C dim, L layers, NH/KV heads, HS head dim,
// QD = NH*HS, KD = KV*HS, F ffn dim, B batch, T sequence, N = B*T, R head rows per chunk.
#include "bd_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bd_backward.h"
#include "bd_kernels.h"
#include "bd_log.h"
#include "bd_progress.h"
#include "bd_threads.h"

int bd_train_head_rows(int N) { return N < 512 ? N : 512; }

typedef struct {
    float **p;
    size_t n;
} part;

// The arena's pieces; with s == NULL only sizes (pointers are written into a dummy).
static size_t layout(bd_train_state *s, const bd_config *cfg, int B, int T, bool recompute) {
    bd_train_state dummy;
    if (!s) s = &dummy;
    size_t N = (size_t)B * T, C = (size_t)cfg->dim, L = (size_t)cfg->n_layers;
    size_t NH = (size_t)cfg->n_heads, KV = (size_t)cfg->n_kv_heads, HS = (size_t)cfg->head_dim;
    size_t QD = NH * HS, KD = KV * HS, F = (size_t)cfg->ffn_dim, V = (size_t)cfg->vocab;
    size_t nl = recompute ? 1 : L;
    bool qkn = cfg->qk_norm;
    long long fs = bd_attention_scratch_floats(T, bd_num_threads());
    long long bs = bd_attention_backward_scratch_floats(T, bd_num_threads());
    part parts[] = {
        {&s->x, (L + 1) * N * C}, {&s->xn_att, nl * N * C}, {&s->rstd_att, nl * N},
        {&s->q, qkn ? nl * N * QD : 0}, {&s->k, qkn ? nl * N * KD : 0},
        {&s->rstd_q, qkn ? nl * N * NH : 0}, {&s->rstd_k, qkn ? nl * N * KV : 0},
        {&s->qr, nl * N * QD}, {&s->kr, nl * N * KD}, {&s->v, nl * N * KD}, {&s->att, nl * N * QD},
        {&s->lse, nl * N * NH}, {&s->x_mid, nl * N * C}, {&s->xn_ffn, nl * N * C}, {&s->rstd_ffn, nl * N},
        {&s->h1, nl * N * F}, {&s->h3, nl * N * F}, {&s->hg, nl * N * F},
        {&s->xf, N * C}, {&s->rstd_f, N}, {&s->proj, N * C},
        {&s->logits, (size_t)bd_train_head_rows((int)(N > 1u << 30 ? 1u << 30 : N)) * V},
        {&s->losses, N}, {&s->loss_lse, N},
        {&s->dx, N * C}, {&s->dxn, N * C}, {&s->dq, N * QD}, {&s->dk, N * KD}, {&s->dv, N * KD},
        {&s->dk_pre, qkn ? N * KD : 0}, {&s->datt, N * QD},
        {&s->dh1, N * F}, {&s->dh3, N * F}, {&s->dhg, N * F},
        {&s->att_scratch, (size_t)(fs > bs ? fs : bs)}, {&s->rope_cs, (size_t)T * HS},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        *parts[i].p = parts[i].n && s->arena ? s->arena + total : NULL;
        total += (parts[i].n + 15) & ~(size_t)15;  // 64-byte aligned pieces
    }
    s->att_scratch_floats = fs > bs ? fs : bs;
    return total;
}

size_t bd_train_state_bytes(const bd_config *cfg, int B, int T, bool recompute) {
    return layout(NULL, cfg, B, T, recompute) * sizeof(float);
}

int bd_train_state_init(bd_train_state *s, const bd_config *cfg, int B, int T, bool recompute) {
    memset(s, 0, sizeof *s);
    if (bd_config_check(cfg, NULL, 0) < 0 || B <= 0 || T <= 0) return BD_ERR_ARG;
    size_t total = layout(s, cfg, B, T, recompute);
    s->arena = malloc(total * sizeof(float));
    if (!s->arena) {
        bd_log(BD_LOG_ERROR, "train: cannot allocate %zu MB of activations", total * sizeof(float) >> 20);
        return BD_ERR_NOMEM;
    }
    layout(s, cfg, B, T, recompute);
    s->cfg = *cfg;
    s->B = B;
    s->T = T;
    s->recompute = recompute;
    s->arena_floats = total;
    bd_rope_table(s->rope_cs, T, cfg->head_dim, cfg->rope_theta);
    return BD_OK;
}

void bd_train_state_free(bd_train_state *s) {
    free(s->arena);
    memset(s, 0, sizeof *s);
}

// Layer l of a per-layer tensor (width floats per position) for a batch laid out (B, T).
static float *lay(const bd_train_state *s, float *base, int l, size_t width, int N) {
    if (!base) return NULL;
    return base + (s->recompute ? 0 : (size_t)l) * (size_t)N * width;
}

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

// Pointers of one block's activations.
typedef struct {
    float *x, *xn, *rstd_att, *q, *k, *rstd_q, *rstd_k, *qr, *kr, *v, *att, *lse, *xmid, *xn2, *rstd_ffn, *h1, *h3,
        *hg, *xout;
} block_acts;

static block_acts acts(const bd_train_state *s, int l, int N) {
    const bd_config *c = &s->cfg;
    size_t C = (size_t)c->dim, QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t F = (size_t)c->ffn_dim;
    block_acts a = {
        s->x + (size_t)l * N * C, lay(s, s->xn_att, l, C, N), lay(s, s->rstd_att, l, 1, N), lay(s, s->q, l, QD, N),
        lay(s, s->k, l, KD, N), lay(s, s->rstd_q, l, (size_t)c->n_heads, N), lay(s, s->rstd_k, l, (size_t)c->n_kv_heads, N),
        lay(s, s->qr, l, QD, N), lay(s, s->kr, l, KD, N), lay(s, s->v, l, KD, N), lay(s, s->att, l, QD, N),
        lay(s, s->lse, l, (size_t)c->n_heads, N), lay(s, s->x_mid, l, C, N), lay(s, s->xn_ffn, l, C, N),
        lay(s, s->rstd_ffn, l, 1, N), lay(s, s->h1, l, F, N), lay(s, s->h3, l, F, N), lay(s, s->hg, l, F, N),
        s->x + (size_t)(l + 1) * N * C};
    return a;
}

// Block l forward: the same kernels in the same order as bd_forward, so the activations
// (and the loss) are bit-identical to the inference pass.
static void block_forward(bd_train_state *s, const bd_model *m, int l, int B, int T) {
    const bd_config *c = &m->cfg;
    const bd_weights *w = &m->w;
    int C = c->dim, NH = c->n_heads, KV = c->n_kv_heads, HS = c->head_dim, F = c->ffn_dim;
    int QD = NH * HS, KD = KV * HS, N = B * T;
    float eps = c->norm_eps;
    block_acts a = acts(s, l, N);
    const float *bq = w->bq ? w->bq + (size_t)l * QD : NULL, *bk = w->bk ? w->bk + (size_t)l * KD : NULL;
    const float *bv = w->bv ? w->bv + (size_t)l * KD : NULL;
    bd_rmsnorm_forward(a.xn, a.rstd_att, a.x, w->rms_att + (size_t)l * C, N, C, eps);
    if (c->qk_norm) {
        bd_linear_forward(a.q, a.xn, w->wq + (size_t)l * QD * C, bq, N, C, QD);
        bd_linear_forward(a.k, a.xn, w->wk + (size_t)l * KD * C, bk, N, C, KD);
        bd_rmsnorm_forward(a.qr, a.rstd_q, a.q, w->q_norm + (size_t)l * HS, N * NH, HS, eps);
        bd_rmsnorm_forward(a.kr, a.rstd_k, a.k, w->k_norm + (size_t)l * HS, N * KV, HS, eps);
    } else {
        bd_linear_forward(a.qr, a.xn, w->wq + (size_t)l * QD * C, bq, N, C, QD);
        bd_linear_forward(a.kr, a.xn, w->wk + (size_t)l * KD * C, bk, N, C, KD);
    }
    bd_linear_forward(a.v, a.xn, w->wv + (size_t)l * KD * C, bv, N, C, KD);
    bd_rope_forward(a.qr, a.qr, s->rope_cs, NULL, B, T, NH, HS, c->rope);
    bd_rope_forward(a.kr, a.kr, s->rope_cs, NULL, B, T, KV, HS, c->rope);
    bd_attention_forward(a.att, a.lse, a.qr, a.kr, a.v, s->att_scratch, s->att_scratch_floats, B, T, NH, KV, HS);
    bd_linear_forward(s->proj, a.att, w->wo + (size_t)l * C * QD, NULL, N, QD, C);
    bd_residual_forward(a.xmid, a.x, s->proj, (long long)N * C);
    bd_rmsnorm_forward(a.xn2, a.rstd_ffn, a.xmid, w->rms_ffn + (size_t)l * C, N, C, eps);
    bd_linear_forward(a.h1, a.xn2, w->w1 + (size_t)l * F * C, NULL, N, C, F);
    bd_linear_forward(a.h3, a.xn2, w->w3 + (size_t)l * F * C, NULL, N, C, F);
    bd_swiglu_forward(a.hg, a.h1, a.h3, (long long)N * F);
    bd_linear_forward(s->proj, a.hg, w->w2 + (size_t)l * C * F, NULL, N, F, C);
    bd_residual_forward(a.xout, a.xmid, s->proj, (long long)N * C);
}

// Block l backward: s->dx holds d loss / d x[l+1] on entry and d loss / d x[l] on exit.
static void block_backward(bd_train_state *s, const bd_model *m, const bd_weights *g, int l, int B, int T) {
    const bd_config *c = &m->cfg;
    const bd_weights *w = &m->w;
    int C = c->dim, NH = c->n_heads, KV = c->n_kv_heads, HS = c->head_dim, F = c->ffn_dim;
    int QD = NH * HS, KD = KV * HS, N = B * T;
    size_t n = (size_t)N;
    block_acts a = acts(s, l, N);
    // FFN: x[l+1] = xmid + w2(silu(w1 xn2) * w3 xn2), xn2 = norm(xmid)
    zero(s->dhg, n * F);
    bd_linear_backward(s->dhg, g->w2 + (size_t)l * C * F, NULL, s->dx, a.hg, w->w2 + (size_t)l * C * F, N, F, C);
    zero(s->dh1, n * F);
    zero(s->dh3, n * F);
    bd_swiglu_backward(s->dh1, s->dh3, s->dhg, a.h1, a.h3, (long long)N * F);
    zero(s->dxn, n * C);
    bd_linear_backward(s->dxn, g->w1 + (size_t)l * F * C, NULL, s->dh1, a.xn2, w->w1 + (size_t)l * F * C, N, C, F);
    bd_linear_backward(s->dxn, g->w3 + (size_t)l * F * C, NULL, s->dh3, a.xn2, w->w3 + (size_t)l * F * C, N, C, F);
    bd_rmsnorm_backward(s->dx, g->rms_ffn + (size_t)l * C, s->dxn, a.xmid, a.rstd_ffn, w->rms_ffn + (size_t)l * C, N, C);
    // Attention: xmid = x + wo(attention(rope(norm_q(wq xn)), rope(norm_k(wk xn)), wv xn))
    zero(s->datt, n * QD);
    bd_linear_backward(s->datt, g->wo + (size_t)l * C * QD, NULL, s->dx, a.att, w->wo + (size_t)l * C * QD, N, QD, C);
    zero(s->dq, n * QD);
    zero(s->dk, n * KD);
    zero(s->dv, n * KD);
    bd_attention_backward(s->dq, s->dk, s->dv, s->datt, a.att, a.lse, a.qr, a.kr, a.v, s->att_scratch,
                          s->att_scratch_floats, B, T, NH, KV, HS);
    bd_rope_backward(s->dq, s->dq, s->rope_cs, NULL, B, T, NH, HS, c->rope);
    bd_rope_backward(s->dk, s->dk, s->rope_cs, NULL, B, T, KV, HS, c->rope);
    float *dqp = s->dq, *dkp = s->dk;
    if (c->qk_norm) {
        zero(s->datt, n * QD);  // free again: reused for d q (before the norm)
        zero(s->dk_pre, n * KD);
        bd_rmsnorm_backward(s->datt, g->q_norm + (size_t)l * HS, s->dq, a.q, a.rstd_q, w->q_norm + (size_t)l * HS, N * NH, HS);
        bd_rmsnorm_backward(s->dk_pre, g->k_norm + (size_t)l * HS, s->dk, a.k, a.rstd_k, w->k_norm + (size_t)l * HS, N * KV, HS);
        dqp = s->datt;
        dkp = s->dk_pre;
    }
    zero(s->dxn, n * C);
    bd_linear_backward(s->dxn, g->wq + (size_t)l * QD * C, g->bq ? g->bq + (size_t)l * QD : NULL, dqp, a.xn,
                       w->wq + (size_t)l * QD * C, N, C, QD);
    bd_linear_backward(s->dxn, g->wk + (size_t)l * KD * C, g->bk ? g->bk + (size_t)l * KD : NULL, dkp, a.xn,
                       w->wk + (size_t)l * KD * C, N, C, KD);
    bd_linear_backward(s->dxn, g->wv + (size_t)l * KD * C, g->bv ? g->bv + (size_t)l * KD : NULL, s->dv, a.xn,
                       w->wv + (size_t)l * KD * C, N, C, KD);
    bd_rmsnorm_backward(s->dx, g->rms_att + (size_t)l * C, s->dxn, a.x, a.rstd_att, w->rms_att + (size_t)l * C, N, C);
}

static bool same_shape(const bd_config *a, const bd_config *b) {
    return a->dim == b->dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim && a->ffn_dim == b->ffn_dim &&
           a->vocab == b->vocab && a->qk_norm == b->qk_norm && a->rope_theta == b->rope_theta;
}

int bd_train_fwd_bwd(bd_train_state *s, const bd_model *fw, const bd_weights *g, const int32_t *tokens,
                     const int32_t *targets, int B, int T, float loss_scale, const bd_head_loss *head, double *loss) {
    *loss = 0;
    const bd_config *c = &fw->cfg;
    if (!same_shape(&s->cfg, c) || B <= 0 || T <= 0 || B > s->B || T > s->T) {
        bd_log(BD_LOG_ERROR, "train: batch %dx%d does not fit the state (%dx%d) or model mismatch", B, T, s->B, s->T);
        return BD_ERR_ARG;
    }
    int C = c->dim, L = c->n_layers, V = c->vocab, N = B * T;
    for (int i = 0; i < N; i++) {
        int32_t y = targets ? targets[i] : -1;
        if (tokens[i] < 0 || tokens[i] >= V || y >= V) {
            bd_log(BD_LOG_ERROR, "train: %s %d at position %d is outside the vocabulary [0, %d)",
                   tokens[i] < 0 || tokens[i] >= V ? "token" : "target", tokens[i] < 0 || tokens[i] >= V ? (int)tokens[i] : (int)y, i, V);
            return BD_ERR_VALUE;
        }
    }
    double t0 = bd_now();
    bd_embedding_forward(s->x, tokens, fw->w.tok_emb, N, C);
    for (int l = 0; l < L; l++) block_forward(s, fw, l, B, T);
    bd_rmsnorm_forward(s->xf, s->rstd_f, s->x + (size_t)L * N * C, fw->w.rms_final, N, C, c->norm_eps);
    double t1 = bd_now();
    s->timing.forward += t1 - t0;

    // Head in chunks of R rows: logits, loss and its gradient in place, then back through wcls.
    int R = bd_train_head_rows(s->B * s->T), scored = 0;
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)R);
    if (!tgt) return BD_ERR_NOMEM;
    zero(s->dxn, (size_t)N * C);
    double sum = 0;
    for (int r0 = 0; r0 < N; r0 += R) {
        int nr = N - r0 < R ? N - r0 : R;
        for (int i = 0; i < nr; i++) {
            int n = r0 + i, t = n % T;
            tgt[i] = targets ? targets[n] : (t + 1 < T ? tokens[n + 1] : -1);
            scored += tgt[i] >= 0;
        }
        const float *xf = s->xf + (size_t)r0 * C;
        bd_linear_forward(s->logits, xf, fw->w.wcls, NULL, nr, C, V);
        bd_crossentropy_forward(s->losses + r0, s->loss_lse + r0, s->logits, tgt, nr, V);
        if (head) sum += head->fn(head->ctx, s->logits, r0, nr, V);
        else sum += bd_crossentropy_backward(s->logits, s->logits, s->loss_lse + r0, tgt, loss_scale, nr, V);
        bd_linear_backward(s->dxn + (size_t)r0 * C, g->wcls, NULL, s->logits, xf, fw->w.wcls, nr, C, V);
    }
    free(tgt);
    zero(s->dx, (size_t)N * C);
    bd_rmsnorm_backward(s->dx, g->rms_final, s->dxn, s->x + (size_t)L * N * C, s->rstd_f, fw->w.rms_final, N, C);
    double t2 = bd_now();
    s->timing.head += t2 - t1;

    for (int l = L - 1; l >= 0; l--) {
        if (s->recompute) block_forward(s, fw, l, B, T);
        block_backward(s, fw, g, l, B, T);
    }
    bd_embedding_backward(g->tok_emb, s->dx, tokens, N, C);
    s->timing.backward += bd_now() - t2;
    *loss = sum;
    return scored;
}

// ---- the trainer ----

int bd_trainer_init(bd_trainer *tr, bd_model *model, int B, int T, int grad_accum, const bd_adamw_cfg *ocfg,
                    const bd_schedule *sched, bool recompute) {
    memset(tr, 0, sizeof *tr);
    if (grad_accum < 1) return BD_ERR_ARG;
    int rc = bd_train_state_init(&tr->st, &model->cfg, B, T, recompute);
    if (rc < 0) return rc;
    bd_param_entry t[BD_MAX_PARAMS];
    size_t total;
    int nt = bd_param_table(&model->cfg, t, &total);
    tr->grads = calloc(total, sizeof(float));
    if (!tr->grads || (rc = bd_adamw_init(&tr->opt, t, nt, total, ocfg)) < 0) {
        bd_trainer_free(tr);
        return rc < 0 ? rc : BD_ERR_NOMEM;
    }
    bd_weights_layout(&model->cfg, tr->grads, &tr->gw);
    tr->model = model;
    tr->sched = *sched;
    tr->grad_accum = grad_accum;
    return BD_OK;
}

int bd_trainer_enable_fw(bd_trainer *tr) {
    if (tr->fw.params) return BD_OK;
    int rc = bd_model_alloc(&tr->fw, &tr->model->cfg);
    if (rc < 0) return rc;
    tr->fw.quant = tr->model->quant;
    tr->fw.qpolicy = tr->model->qpolicy;
    return BD_OK;
}

void bd_trainer_free(bd_trainer *tr) {
    bd_train_state_free(&tr->st);
    bd_adamw_free(&tr->opt);
    free(tr->grads);
    bd_model_free(&tr->fw);
    memset(tr, 0, sizeof *tr);
}

int bd_trainer_step(bd_trainer *tr, const int32_t *tokens, const int32_t *targets, int B, int T,
                    const bd_head_loss *head, bd_step_stats *stats) {
    memset(stats, 0, sizeof *stats);
    size_t per = (size_t)B * T;
    // The loss is the mean over all scored positions of the step: count them first.
    long long count = 0;
    for (int a = 0; a < tr->grad_accum; a++)
        for (size_t i = 0; i < per; i++) {
            int t = (int)(i % (size_t)T);
            count += targets ? targets[a * per + i] >= 0 : t + 1 < T;
        }
    float scale = count ? (float)(1.0 / (double)count) : 0.0f;
    memset(tr->grads, 0, tr->model->n_params * sizeof(float));
    const bd_model *fw = tr->model;
    int rc;
    if (tr->make_fw) {
        if ((rc = tr->make_fw(tr->hook_ctx, &tr->fw, tr->model)) < 0) return rc;
        fw = &tr->fw;
    }
    double loss = 0;
    for (int a = 0; a < tr->grad_accum; a++) {
        double l;
        rc = bd_train_fwd_bwd(&tr->st, fw, &tr->gw, tokens + a * per, targets ? targets + a * per : NULL, B, T, scale,
                              head, &l);
        if (rc < 0) return rc;
        loss += l;
    }
    if (tr->route_grads) tr->route_grads(tr->hook_ctx, tr->grads, fw, tr->model);
    double t0 = bd_now();
    float lr = bd_schedule_lr(&tr->sched, tr->step);
    double norm = bd_adamw_step(&tr->opt, tr->model->params, tr->grads, lr);
    tr->st.timing.optimizer += bd_now() - t0;
    stats->loss = loss;
    stats->lr = lr;
    stats->grad_norm = norm;
    stats->scored = count;
    if (isnan(norm)) {
        bd_log(BD_LOG_ERROR, "train: step %lld: the gradient is not finite (loss %g)", tr->step + 1, loss);
        return BD_ERR_VALUE;
    }
    tr->step++;
    return BD_OK;
}

// ---- data order ----

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void bd_epoch_order(long long *perm, long long n, uint64_t seed, long long epoch) {
    uint64_t st = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(epoch + 1));
    for (long long i = 0; i < n; i++) perm[i] = i;
    for (long long i = n - 1; i > 0; i--) {
        // Unbiased index in [0, i] by rejection.
        uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)(i + 1), r;
        do r = splitmix64(&st); while (r >= lim);
        long long j = (long long)(r % (uint64_t)(i + 1)), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}
