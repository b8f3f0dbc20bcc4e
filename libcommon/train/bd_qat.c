#include "bd_qat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bd_qmodel.h"
#include "bd_threads.h"

static int make_fw(void *ctx, bd_model *fw, const bd_model *latent) {
    bd_qat_hooks *h = ctx;
    char why[300];
    int rc = bd_model_fakequant(fw, latent, &h->q, &h->policy, why, sizeof why);
    if (rc < 0) bd_fail(h->why, sizeof h->why, rc, "fake quantization: %s", why);
    return rc;
}

// d/d fw -> d/d latent: straight through the quantizer of every quantized matrix.
static void route_grads(void *ctx, float *grads, const bd_model *fw, const bd_model *latent) {
    bd_qat_hooks *h = ctx;
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&latent->cfg, t, NULL);
    for (int i = 0; i < nt; i++) {
        if (!t[i].is_linear && strcmp(t[i].name, "wcls") != 0) continue;
        bool stacked = t[i].ndim == 3;
        int layers = stacked ? (int)t[i].shape[0] : 1;
        int OC = (int)t[i].shape[t[i].ndim - 2], C = (int)t[i].shape[t[i].ndim - 1];
        for (int l = 0; l < layers; l++) {
            if (!bd_qpolicy_covers(&h->policy, t[i].name, stacked ? l : -1)) continue;
            size_t off = t[i].offset + (size_t)l * OC * C, n = (size_t)OC * C;
            memcpy(h->tmp, grads + off, n * sizeof(float));
            memset(grads + off, 0, n * sizeof(float));
            bd_fakequant_backward(grads + off, h->tmp, latent->params + off, OC, C, &h->q);
        }
    }
    (void)fw;
}

size_t bd_qat_hooks_bytes(const bd_config *c) {
    size_t biggest = 0;  // the largest matrix of one layer (route_grads' copy of its gradient)
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(c, t, NULL);
    for (int i = 0; i < nt; i++) {
        size_t per_layer = t[i].ndim == 3 ? t[i].numel / (size_t)t[i].shape[0] : t[i].numel;
        if (per_layer > biggest) biggest = per_layer;
    }
    return sizeof(float) * biggest;
}

int bd_qat_hooks_attach(bd_qat_hooks *h, bd_trainer *tr, const bd_qspec *q, const bd_qpolicy *policy) {
    memset(h, 0, sizeof *h);
    h->q = *q;
    h->policy = *policy;
    h->tmp = malloc(bd_qat_hooks_bytes(&tr->model->cfg));
    if (!h->tmp) return BD_ERR_NOMEM;
    tr->make_fw = make_fw;
    tr->route_grads = route_grads;
    tr->hook_ctx = h;
    return bd_trainer_enable_fw(tr);
}

void bd_qat_hooks_free(bd_qat_hooks *h) {
    free(h->tmp);
    h->tmp = NULL;
}

size_t bd_distill_bytes(int B, int T, int V, bool kd) {
    size_t R = (size_t)bd_train_head_rows(B * T);
    return sizeof(float) * (R * (size_t)V * (kd ? 2 : 1) + R);
}

int bd_distill_init(bd_distill *d, const bd_loss_spec *spec, int B, int T, int V, float kd_weight, float kd_tau) {
    memset(d, 0, sizeof *d);
    int R = bd_train_head_rows(B * T);
    d->spec = *spec;
    d->per = (size_t)B * T;
    d->T = T;
    d->kd_weight = kd_weight;
    d->kd_tau = kd_tau;
    d->ds = malloc(sizeof(float) * (size_t)R * V);  // bd_distill_bytes counts these three
    d->w = malloc(sizeof(float) * (size_t)R);
    if (kd_weight > 0) d->ds2 = malloc(sizeof(float) * (size_t)R * V);
    if (!d->ds || !d->w || (kd_weight > 0 && !d->ds2)) {
        bd_distill_free(d);
        return BD_ERR_NOMEM;
    }
    return BD_OK;
}

void bd_distill_free(bd_distill *d) {
    free(d->ds);
    free(d->w);
    free(d->ds2);
    d->ds = d->ds2 = NULL;
    d->w = NULL;
}

void bd_distill_begin_step(bd_distill *d, const float *teacher, const int32_t *targets, float scale) {
    d->teacher = teacher;
    d->targets = targets;
    d->scale = scale;
    d->micro = -1;
    d->err = 0;
    d->why[0] = 0;
    d->ce_sum = d->kd_sum = 0;
}

double bd_distill_head(void *ctx, float *logits, int n0, int nr, int V) {
    bd_distill *d = ctx;
    if (n0 == 0) d->micro++;  // the trainer runs the micro-batches in order, rows from 0
    size_t base = (size_t)d->micro * d->per + (size_t)n0;
    for (int i = 0; i < nr; i++) d->w[i] = d->targets[base + i] >= 0 ? d->scale : 0.0f;
    const float *u = d->teacher ? d->teacher + base * (size_t)V : NULL;
    double sum, kd = 0;
    int rc = bd_loss_backward(d->ds, logits, u, d->targets + base, d->w, nr, V, &d->spec, &sum, d->err ? NULL : d->why,
                              sizeof d->why);
    if (rc == BD_OK && d->kd_weight > 0 && d->kd_lens) {
        // The logits term: d/ds of kd_weight * KL(p_T^tau || p_S^tau) = kd_weight * (p_S - p_T) / tau.
        for (int i = 0; i < nr; i++) {
            size_t p = base + (size_t)i;  // sequence p / T of the step, position p % T
            d->w[i] = (int)(p % (size_t)d->T) < d->kd_lens[p / (size_t)d->T] ? d->kd_weight * d->kd_scale : 0.0f;
        }
        bd_loss_spec fkl = {BD_LOSS_FKL, 0, d->kd_tau};
        rc = bd_loss_backward(d->ds2, logits, u, NULL, d->w, nr, V, &fkl, &kd, d->why, sizeof d->why);
        size_t n = (size_t)nr * V;
        for (size_t i = 0; i < n; i++) d->ds[i] += d->ds2[i];
    }
    memcpy(logits, d->ds, sizeof(float) * (size_t)nr * V);
    if (rc < 0 && !d->err) d->err = rc;
    d->ce_sum += sum;
    d->kd_sum += kd;
    return rc < 0 ? NAN : sum + kd;
}

// ---- attention-relation distillation ----

typedef struct {
    bd_relation_loss *r;
    const bd_acts *a;
    float *dq, *dk, *dv;
    int qd, kd;
    double w;      // weight of one row's KL
    double *part;  // (3B) each job's loss, summed in order after
} relation_job;

// Jobs j = 3b + state (q, k, v): sequence b of the micro-batch, one state each; every job
// writes its own rows of dq, dk or dv.
static void relation_rows(void *ctx, int j0, int j1) {
    relation_job *jb = ctx;
    bd_relation_loss *r = jb->r;
    int T = r->T, W = r->tq + 2 * r->tk;
    for (int j = j0; j < j1; j++) {
        int b = j / 3, st = j % 3;
        long long seq = (long long)r->micro * r->B + b;
        int len = r->lens[seq];
        int ds = st == 0 ? jb->qd : jb->kd, du = st == 0 ? r->tq : r->tk;
        const float *xs = (st == 0 ? jb->a->qr : st == 1 ? jb->a->kr : jb->a->v) + (size_t)b * T * ds;
        float *dx = (st == 0 ? jb->dq : st == 1 ? jb->dk : jb->dv) + (size_t)b * T * ds;
        const float *xu = r->teacher + (size_t)seq * T * W + (st == 0 ? 0 : st == 1 ? r->tq : r->tq + r->tk);
        jb->part[j] = len > 0 ? bd_relation_kl(dx, xs, ds, (size_t)ds, xu, du, (size_t)W, len, r->heads, jb->w) : 0;
    }
}

static double relation_layer(void *ctx, const bd_acts *a, float *dq, float *dk, float *dv, int B, int T) {
    (void)T;  // r->T: the step's sequences all have it
    bd_relation_loss *r = ctx;
    r->micro++;  // once per micro-batch, in order
    long long rows = 0;
    for (int b = 0; b < B; b++) rows += r->lens[(long long)r->micro * r->B + b];
    if (rows == 0) return 0;
    rows *= r->heads;
    double *part = malloc(sizeof(double) * 3 * (size_t)B);
    if (!part) return NAN;
    relation_job jb = {r,   a, dq, dk, dv, r->qd, r->kd, r->weight / ((double)r->heads * (double)rows * r->grad_accum),
                       part};
    bd_parallel_for(3 * B, 1, relation_rows, &jb);
    double sum = 0;
    for (int j = 0; j < 3 * B; j++) sum += part[j];
    free(part);
    r->sum += sum;
    return sum;
}

void bd_relation_loss_attach(bd_relation_loss *r) {
    r->hook.fn = relation_layer;
    r->hook.ctx = r;
}

void bd_relation_loss_begin_step(bd_relation_loss *r, const float *teacher, const int32_t *lens) {
    r->teacher = teacher;
    r->lens = lens;
    r->micro = -1;
    r->sum = 0;
}
