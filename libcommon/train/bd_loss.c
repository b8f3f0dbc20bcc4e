#include "bd_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bd_error.h"
#include "bd_threads.h"

static const char *loss_names[BD_LOSS_COUNT] = {"ce", "fkl", "rkl", "cakld", "jsd"};

const char *bd_loss_name(bd_loss_kind k) { return (unsigned)k < BD_LOSS_COUNT ? loss_names[k] : "?"; }

int bd_loss_parse(const char *name) {
    for (int i = 0; i < BD_LOSS_COUNT; i++)
        if (strcmp(name, loss_names[i]) == 0) return i;
    return -1;
}

// logp (V) = log_softmax(x / tau) and p (V) = softmax(x / tau), in double, one exp each.
static void softmax2(double *logp, double *p, const float *x, int V, float tau) {
    double mx = -INFINITY;
    for (int k = 0; k < V; k++) mx = fmax(mx, (double)x[k] / tau);
    double sum = 0;
    for (int k = 0; k < V; k++) sum += (p[k] = exp((double)x[k] / tau - mx));
    double lse = mx + log(sum), inv = 1.0 / sum;
    for (int k = 0; k < V; k++) {
        logp[k] = (double)x[k] / tau - lse;
        p[k] *= inv;
    }
}

// Scratch of one position: 4 arrays of V doubles.
typedef struct {
    double *ls, *lt, *ps, *pt;
} probs;

// Loss of one position; if g (V) is given, also d loss / d s (before the weight).
static double position(double *g, probs *w, const float *s, const float *u, int32_t target, int V,
                       const bd_loss_spec *spec) {
    float tau = spec->temperature > 0 ? spec->temperature : 1.0f;
    double *ls = w->ls, *lt = w->lt, *ps = w->ps, *pt = w->pt;
    softmax2(ls, ps, s, V, tau);
    if (spec->kind == BD_LOSS_CE) {
        if (g) {
            for (int k = 0; k < V; k++) g[k] = ps[k] / tau;
            g[target] -= 1.0 / tau;
        }
        return -ls[target];
    }
    softmax2(lt, pt, u, V, tau);
    double loss = 0;
    if (spec->kind == BD_LOSS_JSD) {
        // dJSD/dp_S,k = 0.5*log(p_S,k / M_k); then through the softmax.
        double dot = 0;
        for (int k = 0; k < V; k++) {
            double lm = log(0.5 * (ps[k] + pt[k]));
            if (ps[k] > 0) loss += 0.5 * ps[k] * (ls[k] - lm);
            if (pt[k] > 0) loss += 0.5 * pt[k] * (lt[k] - lm);
            if (g) {
                g[k] = ps[k] > 0 ? 0.5 * (ls[k] - lm) : 0;
                dot += ps[k] * g[k];
            }
        }
        if (g)
            for (int k = 0; k < V; k++) g[k] = ps[k] * (g[k] - dot) / tau;
        return loss;
    }
    double wr = 0, wf = 0;  // weights of reverse and forward KL
    switch (spec->kind) {
    case BD_LOSS_FKL: wf = 1; break;
    case BD_LOSS_RKL: wr = 1; break;
    case BD_LOSS_CAKLD:
        wr = spec->gamma;
        wf = 1.0 - spec->gamma;
        break;
    default: break;
    }
    double fkl = 0, rkl = 0;
    for (int k = 0; k < V; k++) {
        double d = ls[k] - lt[k];
        if (pt[k] > 0) fkl -= pt[k] * d;
        if (ps[k] > 0) rkl += ps[k] * d;
    }
    loss = wf * fkl + wr * rkl;
    if (g)  // d fkl/ds = p_S - p_T; d rkl/ds_k = p_S,k*((log p_S,k - log p_T,k) - rkl)
        for (int k = 0; k < V; k++) g[k] = (wf * (ps[k] - pt[k]) + wr * ps[k] * ((ls[k] - lt[k]) - rkl)) / tau;
    return loss;
}

int bd_loss_forward(float *losses, const float *s, const float *u, const int32_t *targets, int N, int V,
                    const bd_loss_spec *spec) {
    double *buf = malloc(sizeof(double) * 4 * (size_t)V);
    if (!buf) return BD_ERR_NOMEM;
    probs w = {buf, buf + V, buf + 2 * V, buf + 3 * V};
    int rc = BD_OK;
    for (int n = 0; n < N && rc == BD_OK; n++) {
        int32_t t = targets ? targets[n] : 0;
        if (spec->kind == BD_LOSS_CE && (t < 0 || t >= V)) {
            rc = BD_ERR_VALUE;
            break;
        }
        losses[n] = (float)position(NULL, &w, s + (size_t)n * V, u ? u + (size_t)n * V : NULL, t, V, spec);
    }
    free(buf);
    return rc;
}

typedef struct {
    float *ds;
    const float *s, *u, *weight;
    const int32_t *targets;
    int V;
    const bd_loss_spec *spec;
    double *loss;  // (N) weighted loss per position
    int failed;
} backward_job;

static void backward_rows(void *ctx, int n0, int n1) {
    backward_job *j = ctx;
    int V = j->V;
    double *buf = malloc(sizeof(double) * 5 * (size_t)V);
    if (!buf) {
        j->failed = 1;
        return;
    }
    probs w = {buf + V, buf + 2 * V, buf + 3 * V, buf + 4 * V};
    for (int n = n0; n < n1; n++) {
        float *d = j->ds + (size_t)n * V;
        int32_t t = j->targets ? j->targets[n] : 0;
        j->loss[n] = 0;
        if (j->weight[n] == 0) {
            memset(d, 0, sizeof(float) * (size_t)V);
            continue;
        }
        if (j->spec->kind == BD_LOSS_CE && (t < 0 || t >= V)) {
            j->loss[n] = NAN;
            memset(d, 0, sizeof(float) * (size_t)V);
            continue;
        }
        double l = position(buf, &w, j->s + (size_t)n * V, j->u ? j->u + (size_t)n * V : NULL, t, V, j->spec);
        j->loss[n] = j->weight[n] * l;
        for (int k = 0; k < V; k++) d[k] = (float)(j->weight[n] * buf[k]);
    }
    free(buf);
}

int bd_loss_backward(float *ds, const float *s, const float *u, const int32_t *targets, const float *weight, int N,
                     int V, const bd_loss_spec *spec, double *sum, char *why, size_t ws) {
    double *loss = malloc(sizeof(double) * (size_t)(N > 0 ? N : 1)), total = 0;
    *sum = NAN;
    if (!loss) return bd_fail(why, ws, BD_ERR_NOMEM, "loss: out of memory for %d positions", N);
    backward_job j = {ds, s, u, weight, targets, V, spec, loss, 0};
    // Positions are independent: split them over threads; the sum runs in order afterwards,
    // so the result does not depend on the thread count.
    bd_parallel_for(N, 4, backward_rows, &j);
    int rc =
            j.failed ? bd_fail(why, ws, BD_ERR_NOMEM, "loss: out of memory for a scratch of 5 x %d doubles", V) : BD_OK;
    for (int n = 0; n < N; n++) {
        total += loss[n];
        int32_t t = targets ? targets[n] : 0;
        if (rc == BD_OK && weight[n] != 0 && spec->kind == BD_LOSS_CE && (t < 0 || t >= V))
            rc = bd_fail(why, ws, BD_ERR_VALUE, "loss: target %d at position %d is outside the vocabulary [0, %d)",
                         (int)t, n, V);
    }
    free(loss);
    *sum = j.failed ? NAN : total;
    return rc;
}

double bd_top1_prob_sum(const float *u, int N, int V) {
    double total = 0;
    for (int n = 0; n < N; n++) {
        const float *x = u + (size_t)n * V;
        double mx = -INFINITY, sum = 0;
        for (int k = 0; k < V; k++) mx = fmax(mx, x[k]);
        for (int k = 0; k < V; k++) sum += exp(x[k] - mx);
        total += 1.0 / sum;  // exp(max - max) / sum
    }
    return total;
}
