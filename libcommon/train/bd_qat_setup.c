#include "bd_qat_setup.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bd_model_io.h"
#include "bd_ppl.h"
#include "bd_progress.h"
#include "bd_qmodel.h"

int bd_qat_load_model(const char *path, int mode, bd_model *m, char *why, size_t ws) {
    char reason[512];
    bool latent = mode & BD_LOAD_LATENT;
    int rc = mode & BD_LOAD_MAPPED ? bd_model_load_mapped(path, m, why, ws) : bd_model_load(path, m, why, ws);
    if (rc < 0) return rc;
    if (latent && m->packed && !m->mapping) {  // (a mapped model's slots are its own weights, not packed)
        bd_model_free(m);
        return bd_fail(why, ws, BD_ERR_ARG, "\"%s\" is a packed model: it has no latent weights", path);
    }
    // A packed model (bd.packed) runs as loaded: its linears hold the quantized weights.
    if (!latent && m->quant.kind != BD_Q_NONE && !m->packed &&
        (rc = bd_model_fakequant(m, m, &m->quant, &m->qpolicy, reason, sizeof reason)) < 0) {
        bd_model_free(m);
        return bd_fail(why, ws, rc, "\"%s\": cannot apply its quantization: %s", path, reason);
    }
    return BD_OK;
}

// ---- the teacher ----

bd_qat_teacher_sizes bd_qat_teacher_bytes(const bd_config *teacher, int V, int B, int T, int A) {
    bd_qat_teacher_sizes z = {0};
    z.logits = sizeof(float) * (size_t)A * B * T * (size_t)V;
    if (!teacher) return z;
    z.activations = bd_fwd_state_bytes(teacher, B, T, false);
    z.states = sizeof(float) * (size_t)A * B * T * ((size_t)teacher->n_heads + 2 * (size_t)teacher->n_kv_heads) *
               (size_t)teacher->head_dim;
    return z;
}

int bd_qat_teacher_init(bd_qat_teacher *t, bd_model *model, const bd_config *student, int B, int T, int A, char *why,
                        size_t ws) {
    memset(t, 0, sizeof *t);
    t->B = B, t->T = T, t->A = A, t->V = student->vocab;
    t->keep_layer = -1;
    if (model) {
        t->live = true;
        t->model = *model;
        if (model->cfg.vocab != student->vocab)
            return bd_fail(why, ws, BD_ERR_SHAPE, "the teacher's vocabulary has %d ids, the student's %d",
                           model->cfg.vocab, student->vocab);
        if (T > model->cfg.max_seq)
            return bd_fail(why, ws, BD_ERR_SHAPE, "the teacher's context %d is shorter than --seq-len %d",
                           model->cfg.max_seq, T);
        if (bd_fwd_state_init(&t->st, &model->cfg, B, T, false) < 0)
            return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for the teacher");
    }
    long long rows = (long long)A * B * T;
    if (!(t->logits = malloc(bd_qat_teacher_bytes(NULL, t->V, B, T, A).logits)))
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for %lld x %d teacher logits", rows, t->V);
    return BD_OK;
}

// The teacher's after_block: layer keep_layer's q, k, v rows of micro-batch t->micro.
static void keep_states(void *ctx, const bd_acts *a, int l, int B, int T) {
    bd_qat_teacher *t = ctx;
    if (l != t->keep_layer) return;
    size_t W = (size_t)t->tq + 2 * (size_t)t->tk, n = (size_t)B * T;
    float *dst = t->states + (size_t)t->micro * t->B * t->T * W;
    for (size_t i = 0; i < n; i++, dst += W) {
        memcpy(dst, a->qr + i * t->tq, sizeof(float) * (size_t)t->tq);
        memcpy(dst + t->tq, a->kr + i * t->tk, sizeof(float) * (size_t)t->tk);
        memcpy(dst + t->tq + t->tk, a->v + i * t->tk, sizeof(float) * (size_t)t->tk);
    }
}

int bd_qat_teacher_keep_layer(bd_qat_teacher *t, int layer, char *why, size_t ws) {
    if (!t->live) return bd_fail(why, ws, BD_ERR_ARG, "attention-relation distillation needs a teacher model");
    const bd_config *c = &t->model.cfg;
    if (layer < 0 || layer >= c->n_layers)
        return bd_fail(why, ws, BD_ERR_ARG, "the teacher has layers 0..%d, not %d", c->n_layers - 1, layer);
    t->keep_layer = layer;
    t->tq = c->n_heads * c->head_dim;
    t->tk = c->n_kv_heads * c->head_dim;
    if (!(t->states = malloc(bd_qat_teacher_bytes(c, t->V, t->B, t->T, t->A).states)))
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for the teacher's layer %d states", layer);
    t->st.after_block = keep_states;
    t->st.after_block_ctx = t;
    return BD_OK;
}

void bd_qat_teacher_free(bd_qat_teacher *t) {
    free(t->logits);
    free(t->states);
    if (t->live) {
        bd_fwd_state_free(&t->st);
        bd_model_free(&t->model);
    }
    memset(t, 0, sizeof *t);
}

int bd_qat_teacher_step(bd_qat_teacher *t, const bd_seqs *s, const long long *idx, const int32_t *tokens,
                        const int32_t *targets, char *why, size_t ws) {
    int B = t->B, T = t->T, V = t->V;
    if (!t->live) {
        bd_seqs_teacher_logits(s, idx, (long long)t->A * B, targets, t->logits, V);
        return BD_OK;
    }
    for (int a = 0; a < t->A; a++) {
        t->micro = a;
        int rc = bd_forward(&t->st, &t->model, tokens + (size_t)a * B * T, B, T, t->logits + (size_t)a * B * T * V);
        if (rc < 0) return bd_fail(why, ws, rc, "teacher forward failed: %s", t->st.why);
    }
    return BD_OK;
}

// exp of the largest of a position's stored top-TK log-probabilities.
static double stored_top1(const float *lp, int tk) {
    float best = -INFINITY;
    for (int k = 0; k < tk; k++) best = fmaxf(best, lp[k]);
    return exp(best);
}

int bd_qat_gamma(bd_qat_teacher *t, const bd_seqs *s, double *gamma, long long *positions,
                 void (*progress)(void *ctx, long long done), void *ctx, char *why, size_t ws) {
    int T = s->T, V = t->V;
    if (!t->live && !s->tk) return bd_fail(why, ws, BD_ERR_ARG, "cakld: the data carries no teacher log-probabilities");
    float *lg = NULL;
    if (t->live && !(lg = malloc(sizeof(float) * (size_t)T * V)))
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    double sum = 0;
    long long cnt = 0;
    int rc = BD_OK;
    void (*kept)(void *, const bd_acts *, int, int, int) = t->st.after_block;
    t->st.after_block = NULL;  // one sequence at a time: no states to keep
    for (long long i = 0; i < s->n; i++) {
        if (lg && (rc = bd_forward(&t->st, &t->model, s->tok + i * T, 1, T, lg)) < 0) {
            bd_fail(why, ws, rc, "teacher forward failed: %s", t->st.why);
            break;
        }
        for (int j = 0; j < T; j++) {
            size_t p = (size_t)i * T + (size_t)j;
            if (s->tgt[p] < 0) continue;
            sum += lg ? bd_top1_prob_sum(lg + (size_t)j * V, 1, V) : stored_top1(s->top_lp + p * s->tk, s->tk);
            cnt++;
        }
        if (progress) progress(ctx, i + 1);
    }
    free(lg);
    t->st.after_block = kept;
    *gamma = cnt ? sum / (double)cnt : 0.5;
    *positions = cnt;
    return rc;
}

// ---- the run ----

int bd_qat_init(bd_qat_run *s, bd_model *m, const bd_seqs *seqs, const bd_qat_cfg *c, const bd_ckpt_info *info,
                const bd_ckpt_moments *mom, char *why, size_t ws) {
    memset(s, 0, sizeof *s);
    s->c = *c;
    s->seqs = seqs;
    s->info = *info;
    s->ranks = c->dist ? c->dist->size : 1;
    s->rank = c->dist ? c->dist->rank : 0;
    s->per_step = (long long)c->A * c->B * s->ranks;
    int rc = bd_trainer_init(&s->tr, m, c->B, c->T, c->A, &c->opt, &c->sched, c->recompute);
    if (rc < 0) return bd_fail(why, ws, rc, "cannot set up training for B=%d T=%d: %s", c->B, c->T, bd_strerror(rc));
    if ((rc = bd_trainer_set_dist(&s->tr, c->dist)) < 0) return bd_fail(why, ws, rc, "out of memory");
    if (mom) {
        const char *data = mom->data;
        if ((rc = bd_adamw_set_moments(&s->tr.opt, mom->dtype, data, data + m->n_params * bd_dtype_size(mom->dtype),
                                       mom->t)) < 0)
            return bd_fail(why, ws, rc, "the checkpoint's moments are %s", bd_dtype_name(mom->dtype));
        s->tr.step = info->step;
    }
    if (c->q.kind != BD_Q_NONE && bd_qat_hooks_attach(&s->hooks, &s->tr, &c->q, &c->policy) < 0)
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for the quantized forward weights");
    size_t local = (size_t)c->A * c->B, n = local * c->T;  // this rank's sequences of a step
    s->tokens = malloc(sizeof(int32_t) * n);
    s->targets = malloc(sizeof(int32_t) * n);
    s->lens = malloc(sizeof(int32_t) * local);
    s->mine = malloc(sizeof(long long) * local);
    s->order = malloc(sizeof(long long) * (size_t)(seqs->n ? seqs->n : 1));
    if (!s->tokens || !s->targets || !s->lens || !s->mine || !s->order)
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    bd_epoch_order(s->order, seqs->n, c->seed, s->info.epoch);
    return BD_OK;
}

int bd_qat_default_ad_heads(const bd_config *student, const bd_config *teacher) {
    int a = 32;
    const bd_config *c[2] = {student, teacher};
    for (; a > 1; a /= 2) {
        bool fits = true;
        for (int i = 0; i < 2; i++) {
            int qd = c[i]->n_heads * c[i]->head_dim, kd = c[i]->n_kv_heads * c[i]->head_dim;
            fits = fits && qd % a == 0 && kd % a == 0 && kd / a >= 8;
        }
        if (fits) break;
    }
    return a;
}

// Checks the relation term's settings against the student and the teacher, and sets it up.
static int set_relation(bd_qat_run *s, bd_qat_teacher *t, const bd_qat_terms *terms, char *why, size_t ws) {
    const bd_config *c = &s->tr.model->cfg;
    if (!t || !t->live) return bd_fail(why, ws, BD_ERR_ARG, "attention-relation distillation needs a teacher model");
    if (terms->ad_layer < 0 || terms->ad_layer >= c->n_layers)
        return bd_fail(why, ws, BD_ERR_ARG, "--ad-layer %d: the student has layers 0..%d", terms->ad_layer,
                       c->n_layers - 1);
    int rc = bd_qat_teacher_keep_layer(t, terms->ad_teacher_layer, why, ws);
    if (rc < 0) return rc;
    int qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim, A = terms->ad_heads;
    if (A < 1 || qd % A || kd % A || t->tq % A || t->tk % A)
        return bd_fail(why, ws, BD_ERR_ARG,
                       "--ad-heads %d does not divide the q and k/v widths (student %d and %d, teacher %d and %d)", A,
                       qd, kd, t->tq, t->tk);
    bd_relation_loss *r = &s->relation;
    *r = (bd_relation_loss){.heads = A,
                            .weight = terms->ad_weight,
                            .tq = t->tq,
                            .tk = t->tk,
                            .qd = qd,
                            .kd = kd,
                            .B = s->c.B,
                            .T = s->c.T,
                            .grad_accum = s->c.A * s->ranks};  // a mean over every rank's micro-batches
    r->hook.layer = terms->ad_layer;
    bd_relation_loss_attach(r);
    s->tr.st.layer_loss = &r->hook;
    return BD_OK;
}

int bd_qat_set_loss(bd_qat_run *s, bd_qat_teacher *teacher, const bd_loss_spec *spec, const bd_qat_terms *terms,
                    bool use_head, char *why, size_t ws) {
    s->teacher = teacher;
    if (terms) s->terms = *terms;
    bool kd = terms && terms->kd_weight > 0;
    s->use_head = use_head || kd;
    if (kd && (!teacher || !teacher->live))
        return bd_fail(why, ws, BD_ERR_ARG, "the logits distillation term needs a teacher model");
    if (s->use_head && bd_distill_init(&s->distill, spec, s->c.B, s->c.T, s->tr.model->cfg.vocab,
                                       kd ? terms->kd_weight : 0, kd ? terms->kd_tau : 1) < 0)
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    if (terms && terms->ad_weight > 0) return set_relation(s, teacher, terms, why, ws);
    return BD_OK;
}

int bd_qat_step(bd_qat_run *s, bd_step_stats *stats, char *why, size_t ws) {
    long long n = s->seqs->n, P = s->per_step;
    int B = s->c.B, T = s->c.T, rc;
    if (s->info.pos + P > n) {  // next epoch, in a new order
        s->info.epoch++;
        s->info.pos = 0;
        bd_epoch_order(s->order, n, s->c.seed, s->info.epoch);
    }
    const long long *all = s->order + s->info.pos, *idx = all;  // the step's sequences, this rank's
    long long local = P, real = 0;
    if (s->ranks > 1) {
        local = (long long)s->c.A * B;
        for (long long i = 0; i < local; i++) s->mine[i] = all[i / B * B * s->ranks + (long long)s->rank * B + i % B];
        idx = s->mine;
    }
    long long scored = bd_seqs_gather(s->seqs, idx, local, s->tokens, s->targets, s->lens);
    if (s->ranks > 1) {  // the weights of the losses count the whole step's positions
        scored = 0;
        for (long long i = 0; i < P; i++) {
            const int32_t *tg = s->seqs->tgt + all[i] * T;
            for (int t = 0; t < T; t++) scored += tg[t] >= 0;
            real += s->seqs->len[all[i]];
        }
    } else {
        for (long long i = 0; i < P; i++) real += s->lens[i];
    }
    double t0 = bd_now();
    if (s->teacher && (rc = bd_qat_teacher_step(s->teacher, s->seqs, idx, s->tokens, s->targets, why, ws)) < 0)
        return rc;
    // mean: every scored token weighs the same; seqsum: tokens sum within a sequence, the
    // sequences average.
    bd_distill_begin_step(&s->distill, s->teacher ? s->teacher->logits : NULL, s->targets,
                          s->c.seqsum ? (float)(1.0 / (double)P) : (float)(scored ? 1.0 / (double)scored : 0.0));
    if (s->terms.kd_weight > 0) {  // every real position, as a per-position mean
        s->distill.kd_lens = s->lens;
        s->distill.kd_scale = real ? (float)(1.0 / (double)real) : 0.0f;
    }
    if (s->terms.ad_weight > 0) bd_relation_loss_begin_step(&s->relation, s->teacher->states, s->lens);
    bd_head_loss head = {bd_distill_head, &s->distill};
    s->hooks.why[0] = 0;
    rc = bd_trainer_step(&s->tr, s->tokens, s->targets, B, T, s->use_head ? &head : NULL, stats);
    if (rc < 0)
        return bd_fail(why, ws, rc, "step %lld failed: %s", s->tr.step + 1,
                       s->hooks.why[0]     ? s->hooks.why
                       : s->distill.why[0] ? s->distill.why
                       : rc == BD_ERR_VALUE && strstr(s->tr.st.why, "not finite")
                               ? "the gradient is not finite (lower --lr?)"
                       : s->tr.st.why[0] ? s->tr.st.why
                                         : bd_strerror(rc));
    s->seconds = bd_now() - t0;
    s->info.pos += P;
    s->info.tokens += P * T;
    s->info.step = s->tr.step;
    return BD_OK;
}

void bd_qat_free(bd_qat_run *s) {
    free(s->tokens), free(s->targets), free(s->lens), free(s->mine), free(s->order);
    bd_distill_free(&s->distill);
    bd_trainer_free(&s->tr);
    bd_qat_hooks_free(&s->hooks);
    memset(s, 0, sizeof *s);
}

// ---- evaluation ----

int bd_qat_evaluate(const bd_model *m, const bd_ids *ids, int T, int B, double *nll, char *why, size_t ws) {
    if (m->quant.kind != BD_Q_NONE) {  // a student is evaluated as it will run: quantized
        bd_model q;
        char reason[300];
        int rc = bd_model_alloc(&q, &m->cfg);
        if (rc == BD_OK && (rc = bd_model_fakequant(&q, m, &m->quant, &m->qpolicy, reason, sizeof reason)) < 0)
            bd_model_free(&q);
        if (rc < 0) return bd_fail(why, ws, rc, "evaluation: cannot quantize the student");
        bd_model plain = *m;
        plain.params = q.params;
        bd_weights_layout(&plain.cfg, plain.params, &plain.w);
        plain.quant.kind = BD_Q_NONE;
        rc = bd_qat_evaluate(&plain, ids, T, B, nll, why, ws);
        bd_model_free(&q);
        return rc;
    }
    bd_ppl_result r;
    int rc = bd_ppl(m, ids->ids, ids->n, T, 0, B, NULL, &r, why, ws);
    if (rc == BD_ERR_NOMEM) return bd_fail(why, ws, rc, "out of memory for evaluation");
    if (rc < 0) return bd_fail(why, ws, rc, "evaluation failed: %s", bd_strerror(rc));
    *nll = r.scored ? r.nll_sum / (double)r.scored : NAN;
    return BD_OK;
}
