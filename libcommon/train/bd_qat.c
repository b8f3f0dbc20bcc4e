#include "bd_qat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bd_qmodel.h"

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

int bd_qat_hooks_attach(bd_qat_hooks *h, bd_trainer *tr, const bd_qspec *q, const bd_qpolicy *policy) {
    memset(h, 0, sizeof *h);
    h->q = *q;
    h->policy = *policy;
    size_t biggest = 0;
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&tr->model->cfg, t, NULL);
    for (int i = 0; i < nt; i++) {
        size_t per_layer = t[i].ndim == 3 ? t[i].numel / (size_t)t[i].shape[0] : t[i].numel;
        if (per_layer > biggest) biggest = per_layer;
    }
    h->tmp = malloc(sizeof(float) * biggest);
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

int bd_distill_init(bd_distill *d, const bd_loss_spec *spec, int B, int T, int V) {
    memset(d, 0, sizeof *d);
    int R = bd_train_head_rows(B * T);
    d->spec = *spec;
    d->per = (size_t)B * T;
    d->ds = malloc(sizeof(float) * (size_t)R * V);
    d->w = malloc(sizeof(float) * (size_t)R);
    if (!d->ds || !d->w) {
        bd_distill_free(d);
        return BD_ERR_NOMEM;
    }
    return BD_OK;
}

void bd_distill_free(bd_distill *d) {
    free(d->ds);
    free(d->w);
    d->ds = NULL;
    d->w = NULL;
}

void bd_distill_begin_step(bd_distill *d, const float *teacher, const int32_t *targets, float scale) {
    d->teacher = teacher;
    d->targets = targets;
    d->scale = scale;
    d->micro = -1;
    d->err = 0;
    d->why[0] = 0;
}

double bd_distill_head(void *ctx, float *logits, int n0, int nr, int V) {
    bd_distill *d = ctx;
    if (n0 == 0) d->micro++;  // the trainer runs the micro-batches in order, rows from 0
    size_t base = (size_t)d->micro * d->per + (size_t)n0;
    for (int i = 0; i < nr; i++) d->w[i] = d->targets[base + i] >= 0 ? d->scale : 0.0f;
    const float *u = d->teacher ? d->teacher + base * (size_t)V : NULL;
    double sum;
    int rc = bd_loss_backward(d->ds, logits, u, d->targets + base, d->w, nr, V, &d->spec, &sum, d->err ? NULL : d->why,
                              sizeof d->why);
    memcpy(logits, d->ds, sizeof(float) * (size_t)nr * V);
    if (rc < 0 && !d->err) d->err = rc;
    return rc < 0 ? NAN : sum;
}
