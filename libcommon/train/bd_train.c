// The training forward (bd_block.h's walk) and backward pass, the optimizer step with
// gradient accumulation, and the epoch order. Dimension key: V vocab, C dim, L layers, NH/KV
// heads, HS head dim, QD = NH*HS, KD = KV*HS, F ffn dim, B batch, T sequence, N = B*T, R
// head rows per chunk.
#include "bd_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bd_act_quant.h"
#include "bd_backward.h"
#include "bd_kernels.h"
#include "bd_log.h"
#include "bd_progress.h"
#include "bd_threads.h"

int bd_train_head_rows(int N) { return N < 512 ? N : 512; }

// The arena's pieces; with s->arena NULL only their size. Returns the floats.
static size_t layout(bd_train_state *s, const bd_config *cfg, int B, int T, bool recompute) {
    size_t N = (size_t)B * T, C = (size_t)cfg->dim, L = (size_t)cfg->n_layers, off = 0;
    size_t QD = (size_t)cfg->n_heads * cfg->head_dim, KD = (size_t)cfg->n_kv_heads * cfg->head_dim;
    size_t F = (size_t)cfg->ffn_dim;
    long long fs = bd_attention_scratch_floats(T, bd_num_threads());
    long long bs = bd_attention_backward_scratch_floats(T, bd_num_threads());
    float *a = s->arena;
    bd_acts_layout(&s->acts, a, &off, cfg, N, recompute ? 1 : L, L + 1);
    s->logits = bd_arena_take(a, &off, (size_t)bd_train_head_rows((int)(N > 1u << 30 ? 1u << 30 : N)) * cfg->vocab);
    s->losses = bd_arena_take(a, &off, N);
    s->loss_lse = bd_arena_take(a, &off, N);
    s->dx = bd_arena_take(a, &off, N * C);
    s->dxn = bd_arena_take(a, &off, N * C);
    s->dq = bd_arena_take(a, &off, N * QD);
    s->dk = bd_arena_take(a, &off, N * KD);
    s->dv = bd_arena_take(a, &off, N * KD);
    s->dk_pre = bd_arena_take(a, &off, cfg->qk_norm ? N * KD : 0);
    s->datt = bd_arena_take(a, &off, N * QD);
    s->dh1 = bd_arena_take(a, &off, N * F);
    s->dh3 = bd_arena_take(a, &off, N * F);
    s->dhg = bd_arena_take(a, &off, N * F);
    size_t widest = C > QD ? C : QD;
    if (F > widest) widest = F;
    s->dsub = bd_arena_take(a, &off, cfg->subln ? N * widest : 0);
    s->att_scratch_floats = fs > bs ? fs : bs;
    s->att_scratch = bd_arena_take(a, &off, (size_t)s->att_scratch_floats);
    s->rope_cs = bd_arena_take(a, &off, (size_t)T * cfg->head_dim);
    return off;
}

size_t bd_train_state_bytes(const bd_config *cfg, int B, int T, bool recompute) {
    bd_train_state sizing = {.arena = NULL};
    return layout(&sizing, cfg, B, T, recompute) * sizeof(float);
}

int bd_train_state_init(bd_train_state *s, const bd_config *cfg, int B, int T, bool recompute) {
    memset(s, 0, sizeof *s);
    if (bd_config_check(cfg, NULL, 0) < 0 || B <= 0 || T <= 0) return BD_ERR_ARG;
    size_t total = layout(s, cfg, B, T, recompute);
    s->arena = malloc(total * sizeof(float));
    if (!s->arena)
        return bd_fail(s->why, sizeof s->why, BD_ERR_NOMEM, "train: cannot allocate %zu MB of activations",
                       total * sizeof(float) >> 20);
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
    free(s->lin_scratch);
    memset(s, 0, sizeof *s);
}

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

// The walk of a (B, T) batch over s's activations: the forward kernels of bd_forward (the
// activations and the loss are bit-identical to the inference pass), laid out (B, T), x
// kept for every layer, the other tensors too unless recompute.
static bd_block_run train_run(bd_train_state *s, const bd_model *m, int B, int T) {
    size_t N = (size_t)B * T;
    return (bd_block_run){.m = m,
                          .ops = &bd_block_fast,
                          .attention = bd_block_self_attention,
                          .acts = &s->acts,
                          .layer_rows = s->recompute ? 0 : N,
                          .x_rows = N,
                          .B = B,
                          .T = T,
                          .rope_cs = s->rope_cs,
                          .att_scratch = s->att_scratch,
                          .att_scratch_floats = s->att_scratch_floats,
                          .lin_scratch = s->lin_scratch};
}

// Linear k of layer l backward (g: gradients in m's layout), the mirror of bd_block_sub_norm +
// bd_block_linear: inp is what the block handed the linear (before its SubLN), a layer l's
// activations (unused for the head). dinp += d loss / d inp; dW (and d bias) += dout^T @ the
// input the linear saw: after SubLN and, in a W1.58A8 model, quantized to 8 bits again from
// the saved activation (the official code's weight gradient; into s->lin_scratch). The
// gradient passes the activation quantizer unchanged (straight-through), then SubLN's backward.
static void linear_backward(bd_train_state *s, const bd_block_run *r, const bd_acts *a, const bd_weights *g, int l,
                            bd_linear k, float *dinp, const float *dout, const float *inp, int N) {
    const bd_model *m = r->m;
    bd_linear_slot w = bd_linear_at(&m->w, &m->cfg, l, k), gw = bd_linear_at(g, &m->cfg, l, k);
    bool sub = bd_subln_has(&m->cfg, (int)k);
    const float *x = sub ? bd_acts_sub(a, k) : inp;  // the linear's input (its SubLN output)
    float *dx = sub ? s->dsub : dinp;
    if (sub) zero(dx, (size_t)N * w.in);
    if (bd_block_act_quant(m, l, k)) {
        float *xq = s->lin_scratch;
        bd_act_fakequant(xq, x, N, w.in);  // as the forward (bd_block_fast)
        x = xq;
    }
    bd_linear_backward(dx, gw.w, gw.b, dout, x, w.w, N, w.in, w.out);
    if (sub) {
        size_t off = (size_t)l * w.in;
        bd_rmsnorm_backward(dinp, g->sub_norm[k] + off, dx, inp, a->rstd_sub + (size_t)k * N, m->w.sub_norm[k] + off, N,
                            w.in);
    }
}

// Block l backward, the mirror of bd_block_forward: s->dx holds d loss / d x[l+1] on entry and
// d loss / d x[l] on exit. Returns the weighted loss of s->layer_loss at this layer (else 0).
static double block_backward(bd_train_state *s, const bd_block_run *r, const bd_weights *g, int l) {
    const bd_model *m = r->m;
    const bd_config *c = &m->cfg;
    const bd_weights *w = &m->w;
    int C = c->dim, NH = c->n_heads, KV = c->n_kv_heads, HS = c->head_dim, F = c->ffn_dim;
    int QD = NH * HS, KD = KV * HS, B = r->B, T = r->T, N = B * T;
    size_t n = (size_t)N;
    bd_acts a = bd_block_acts(r, l);
    // FFN: x[l+1] = x_mid + w2(silu(w1 xn2) * w3 xn2), xn2 = norm(x_mid)
    zero(s->dhg, n * F);
    linear_backward(s, r, &a, g, l, BD_W2, s->dhg, s->dx, a.hg, N);
    zero(s->dh1, n * F);
    zero(s->dh3, n * F);
    bd_swiglu_backward(s->dh1, s->dh3, s->dhg, a.h1, a.h3, (long long)N * F);
    zero(s->dxn, n * C);
    linear_backward(s, r, &a, g, l, BD_W1, s->dxn, s->dh1, a.xn_ffn, N);
    linear_backward(s, r, &a, g, l, BD_W3, s->dxn, s->dh3, a.xn_ffn, N);
    size_t lc = (size_t)l * C, lh = (size_t)l * HS;  // layer l's norm weights
    bd_rmsnorm_backward(s->dx, g->rms_ffn + lc, s->dxn, a.x_mid, a.rstd_ffn, w->rms_ffn + lc, N, C);
    // Attention: x_mid = x + wo(attention(rope(norm_q(wq xn)), rope(norm_k(wk xn)), wv xn))
    zero(s->datt, n * QD);
    linear_backward(s, r, &a, g, l, BD_WO, s->datt, s->dx, a.att, N);
    zero(s->dq, n * QD);
    zero(s->dk, n * KD);
    zero(s->dv, n * KD);
    double extra = 0;  // the layer loss's own term: it starts its gradient at q, k, v (after RoPE)
    const bd_layer_loss *ll = s->layer_loss;
    if (ll && ll->layer == l) extra = ll->fn(ll->ctx, &a, s->dq, s->dk, s->dv, B, T);
    bd_attention_backward(s->dq, s->dk, s->dv, s->datt, a.att, a.lse, a.qr, a.kr, a.v, s->att_scratch,
                          s->att_scratch_floats, B, T, NH, KV, HS);
    bd_rope_backward(s->dq, s->dq, s->rope_cs, NULL, B, T, NH, HS, c->rope);
    bd_rope_backward(s->dk, s->dk, s->rope_cs, NULL, B, T, KV, HS, c->rope);
    float *dqp = s->dq, *dkp = s->dk;
    if (c->qk_norm) {
        zero(s->datt, n * QD);  // free again: reused for d q (before the norm)
        zero(s->dk_pre, n * KD);
        bd_rmsnorm_backward(s->datt, g->q_norm + lh, s->dq, a.q, a.rstd_q, w->q_norm + lh, N * NH, HS);
        bd_rmsnorm_backward(s->dk_pre, g->k_norm + lh, s->dk, a.k, a.rstd_k, w->k_norm + lh, N * KV, HS);
        dqp = s->datt;
        dkp = s->dk_pre;
    }
    zero(s->dxn, n * C);
    linear_backward(s, r, &a, g, l, BD_WQ, s->dxn, dqp, a.xn_att, N);
    linear_backward(s, r, &a, g, l, BD_WK, s->dxn, dkp, a.xn_att, N);
    linear_backward(s, r, &a, g, l, BD_WV, s->dxn, s->dv, a.xn_att, N);
    bd_rmsnorm_backward(s->dx, g->rms_att + lc, s->dxn, a.x, a.rstd_att, w->rms_att + lc, N, C);
    return extra;
}

// The head in chunks of R rows: logits, loss and its gradient in place, back through wcls into
// d xf, then through the final norm: s->dx gets d loss / d x[L]. Returns the number of scored
// positions (*sum: the loss) or BD_ERR_NOMEM.
static int head_backward(bd_train_state *s, const bd_block_run *r, const bd_weights *g, const int32_t *tokens,
                         const int32_t *targets, float loss_scale, const bd_head_loss *head, double *sum) {
    const bd_model *fw = r->m;
    int C = fw->cfg.dim, L = fw->cfg.n_layers, V = fw->cfg.vocab, T = r->T, N = r->B * T;
    int R = bd_train_head_rows(s->B * s->T), scored = 0;
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)R);
    if (!tgt) return BD_ERR_NOMEM;
    zero(s->dxn, (size_t)N * C);
    for (int r0 = 0; r0 < N; r0 += R) {
        int nr = N - r0 < R ? N - r0 : R;
        for (int i = 0; i < nr; i++) {
            int n = r0 + i, t = n % T;
            tgt[i] = targets ? targets[n] : (t + 1 < T ? tokens[n + 1] : -1);
            scored += tgt[i] >= 0;
        }
        const float *xf = s->acts.xf + (size_t)r0 * C;
        bd_block_linear(r, 0, BD_HEAD, s->logits, xf, nr);
        bd_crossentropy_forward(s->losses + r0, s->loss_lse + r0, s->logits, tgt, nr, V);
        if (head)
            *sum += head->fn(head->ctx, s->logits, r0, nr, V);
        else
            *sum += bd_crossentropy_backward(s->logits, s->logits, s->loss_lse + r0, tgt, loss_scale, nr, V);
        linear_backward(s, r, &s->acts, g, 0, BD_HEAD, s->dxn + (size_t)r0 * C, s->logits, xf, nr);
    }
    free(tgt);
    zero(s->dx, (size_t)N * C);
    const float *x_last = s->acts.x + (size_t)L * N * C;
    bd_rmsnorm_backward(s->dx, g->rms_final, s->dxn, x_last, s->acts.rstd_f, fw->w.rms_final, N, C);
    return scored;
}

int bd_train_fwd_bwd(bd_train_state *s, const bd_model *fw, const bd_weights *g, const int32_t *tokens,
                     const int32_t *targets, int B, int T, float loss_scale, const bd_head_loss *head, double *loss) {
    *loss = 0;
    const bd_config *c = &fw->cfg;
    if (!bd_same_shape(&s->cfg, c) || B <= 0 || T <= 0 || B > s->B || T > s->T)
        return bd_fail(s->why, sizeof s->why, BD_ERR_ARG,
                       "train: batch %dx%d does not fit the state (%dx%d) or model mismatch", B, T, s->B, s->T);
    int C = c->dim, L = c->n_layers, V = c->vocab, N = B * T;
    for (int i = 0; i < N; i++) {
        int32_t y = targets ? targets[i] : -1;
        if (tokens[i] < 0 || tokens[i] >= V || y >= V) {
            bool tok = tokens[i] < 0 || tokens[i] >= V;
            return bd_fail(s->why, sizeof s->why, BD_ERR_VALUE,
                           "train: %s %d at position %d is outside the vocabulary [0, %d)", tok ? "token" : "target",
                           tok ? (int)tokens[i] : (int)y, i, V);
        }
    }
    size_t need = bd_block_scratch_bytes(fw, s->B * s->T);
    if (need > s->lin_scratch_bytes) {
        void *p = realloc(s->lin_scratch, need);
        if (!p)
            return bd_fail(s->why, sizeof s->why, BD_ERR_NOMEM, "train: cannot allocate %zu MB of scratch", need >> 20);
        s->lin_scratch = p;
        s->lin_scratch_bytes = need;
    }
    double t0 = bd_now();
    bd_block_run r = train_run(s, fw, B, T);
    bd_decoder_forward(&r, tokens);
    double t1 = bd_now();
    s->timing.forward += t1 - t0;

    double sum = 0;
    int scored = head_backward(s, &r, g, tokens, targets, loss_scale, head, &sum);
    if (scored < 0) return scored;
    double t2 = bd_now();
    s->timing.head += t2 - t1;

    for (int l = L - 1; l >= 0; l--) {
        if (s->recompute) bd_block_forward(&r, l);
        sum += block_backward(s, &r, g, l);
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

int bd_trainer_set_dist(bd_trainer *tr, bd_dist *d) {
    tr->dist = d;
    if (!d || d->size == 1) return BD_OK;
    bd_param_entry t[BD_MAX_PARAMS];
    size_t total, lo, hi;
    int nt = bd_param_table(&tr->model->cfg, t, &total);
    bd_adamw_cfg cfg = tr->opt.cfg;
    bd_dist_shard(d, d->rank, total, &lo, &hi);
    bd_adamw_free(&tr->opt);
    return bd_adamw_init_shard(&tr->opt, t, nt, total, &cfg, lo, hi);
}

int bd_trainer_gather_opt(bd_trainer *tr, bd_adamw *full, bool *owned) {
    *full = tr->opt;
    *owned = false;
    bd_dist *d = tr->dist;
    if (!d || d->size == 1) return BD_OK;
    size_t n = tr->opt.n, es = bd_dtype_size(tr->opt.cfg.moments);
    full->lo = 0, full->hi = n;
    full->m = full->v = NULL;
    full->m16 = full->v16 = NULL;
    char *mem = NULL;
    if (d->rank == 0) {
        if (!(mem = calloc(2 * n, es))) return BD_ERR_NOMEM;
        if (es == 2)
            full->m16 = (uint16_t *)mem, full->v16 = full->m16 + n;
        else
            full->m = (float *)mem, full->v = full->m + n;
        *owned = true;
    }
    double t0 = bd_now();
    int rc = BD_OK;
    for (int which = 0; which < 2 && rc == BD_OK; which++)
        rc = bd_dist_gather_shards(d, mem ? mem + which * n * es : NULL, bd_adamw_moment(&tr->opt, which), n, es);
    tr->st.timing.comm += bd_now() - t0;
    if (rc < 0 && *owned) bd_adamw_free(full), *owned = false;
    return rc;
}

void bd_trainer_free(bd_trainer *tr) {
    bd_train_state_free(&tr->st);
    bd_adamw_free(&tr->opt);
    free(tr->grads);
    bd_model_free(&tr->fw);
    memset(tr, 0, sizeof *tr);
}

// The end of a data-parallel step: this rank's gradient (routed to the latent weights) and loss
// summed over the ranks, this rank's shard updated with the global norm, the weights gathered.
static int dist_update(bd_trainer *tr, bd_dist *d, const bd_model *fw, double loss, long long count,
                       bd_step_stats *stats) {
    if (tr->route_grads) tr->route_grads(tr->hook_ctx, tr->grads, fw, tr->model);
    double t0 = bd_now();
    int rc = bd_dist_sum_f32(d, tr->grads, tr->model->n_params);
    double sums[2] = {loss, bd_grad_sumsq(tr->grads, tr->opt.lo, tr->opt.hi)};  // a NaN loss reaches every rank
    if (rc == BD_OK) rc = bd_dist_sum_f64(d, sums, 2);
    if (rc < 0) return bd_fail(tr->st.why, sizeof tr->st.why, rc, "train: step %lld: MPI failed", tr->step + 1);
    double t1 = bd_now();
    tr->st.timing.comm += t1 - t0;
    loss = sums[0];
    if (isnan(loss))
        return bd_fail(tr->st.why, sizeof tr->st.why, BD_ERR_VALUE, "train: step %lld: the loss is not finite",
                       tr->step + 1);
    float lr = bd_schedule_lr(&tr->sched, tr->step);
    double norm = bd_adamw_step_norm(&tr->opt, tr->model->params, tr->grads, lr, sqrt(sums[1]));
    double t2 = bd_now();
    tr->st.timing.optimizer += t2 - t1;
    stats->loss = loss;
    stats->lr = lr;
    stats->grad_norm = norm;
    stats->scored = count;
    if (isnan(norm))  // the same on every rank: all refuse the step
        return bd_fail(tr->st.why, sizeof tr->st.why, BD_ERR_VALUE,
                       "train: step %lld: the gradient is not finite (loss %g)", tr->step + 1, loss);
    if ((rc = bd_dist_allgather_shards(d, tr->model->params, tr->model->n_params, sizeof(float))) < 0)
        return bd_fail(tr->st.why, sizeof tr->st.why, rc, "train: step %lld: MPI failed", tr->step + 1);
    tr->st.timing.comm += bd_now() - t2;
    tr->step++;
    return BD_OK;
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
    bd_dist *d = tr->dist && tr->dist->size > 1 ? tr->dist : NULL;  // data-parallel, else alone
    int rc;
    if (d) {  // the step's scored positions over every rank
        double c = (double)count, t0 = bd_now();
        if ((rc = bd_dist_sum_f64(d, &c, 1)) < 0) return bd_fail(tr->st.why, sizeof tr->st.why, rc, "MPI failed");
        count = (long long)c;
        tr->st.timing.comm += bd_now() - t0;
    }
    float scale = count ? (float)(1.0 / (double)count) : 0.0f;
    memset(tr->grads, 0, tr->model->n_params * sizeof(float));
    const bd_model *fw = tr->model;
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
    if (d) return dist_update(tr, d, fw, loss, count, stats);
    // A loss hook that failed returns NaN: refuse the step before the weights change.
    if (isnan(loss))
        return bd_fail(tr->st.why, sizeof tr->st.why, BD_ERR_VALUE, "train: step %lld: the loss is not finite",
                       tr->step + 1);
    if (tr->route_grads) tr->route_grads(tr->hook_ctx, tr->grads, fw, tr->model);
    double t0 = bd_now();
    float lr = bd_schedule_lr(&tr->sched, tr->step);
    double norm = bd_adamw_step(&tr->opt, tr->model->params, tr->grads, lr);
    tr->st.timing.optimizer += bd_now() - t0;
    stats->loss = loss;
    stats->lr = lr;
    stats->grad_norm = norm;
    stats->scored = count;
    if (isnan(norm))
        return bd_fail(tr->st.why, sizeof tr->st.why, BD_ERR_VALUE,
                       "train: step %lld: the gradient is not finite (loss %g)", tr->step + 1, loss);
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
        do r = splitmix64(&st);
        while (r >= lim);
        long long j = (long long)(r % (uint64_t)(i + 1)), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}
