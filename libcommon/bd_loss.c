#include "bd_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *loss_names[BD_LOSS_COUNT] = {"ce", "fkl", "rkl", "cakld", "jsd"};

const char *bd_loss_name(bd_loss_kind k) { return (unsigned)k < BD_LOSS_COUNT ? loss_names[k] : "?"; }

int bd_loss_parse(const char *name) {
    for (int i = 0; i < BD_LOSS_COUNT; i++)
        if (strcmp(name, loss_names[i]) == 0) return i;
    return -1;
}

// logp (V) = log_softmax(x / tau), in double.
static void log_softmax(double *logp, const float *x, int V, float tau) {
    double mx = -INFINITY;
    for (int k = 0; k < V; k++) mx = fmax(mx, (double)x[k] / tau);
    double sum = 0;
    for (int k = 0; k < V; k++) sum += exp((double)x[k] / tau - mx);
    double lse = mx + log(sum);
    for (int k = 0; k < V; k++) logp[k] = (double)x[k] / tau - lse;
}

static double kl(const double *la, const double *lb, int V) {  // KL(a || b) from log-probs
    double r = 0;
    for (int k = 0; k < V; k++) {
        double a = exp(la[k]);
        if (a > 0) r += a * (la[k] - lb[k]);
    }
    return r;
}

// Loss of one position; if g (V) is given, also d loss / d s (before the weight).
static double position(double *g, double *ls, double *lt, const float *s, const float *u, int32_t target, int V,
                       const bd_loss_spec *spec) {
    float tau = spec->temperature > 0 ? spec->temperature : 1.0f;
    log_softmax(ls, s, V, tau);
    if (spec->kind == BD_LOSS_CE) {
        if (g) {
            for (int k = 0; k < V; k++) g[k] = exp(ls[k]) / tau;
            g[target] -= 1.0 / tau;
        }
        return -ls[target];
    }
    log_softmax(lt, u, V, tau);
    double fkl = 0, rkl = 0, loss = 0;
    double wr = 0, wf = 0;  // weights of reverse and forward KL
    switch (spec->kind) {
    case BD_LOSS_FKL: wf = 1; break;
    case BD_LOSS_RKL: wr = 1; break;
    case BD_LOSS_CAKLD: wr = spec->gamma; wf = 1.0 - spec->gamma; break;
    default: break;
    }
    if (spec->kind == BD_LOSS_JSD) {
        // dJSD/dp_S,k = 0.5*log(p_S,k / M_k); then through the softmax.
        double dot = 0;
        for (int k = 0; k < V; k++) {
            double ps = exp(ls[k]), pt = exp(lt[k]), m = 0.5 * (ps + pt);
            double lm = log(m);
            if (ps > 0) loss += 0.5 * ps * (ls[k] - lm);
            if (pt > 0) loss += 0.5 * pt * (lt[k] - lm);
            if (g) { g[k] = ps > 0 ? 0.5 * (ls[k] - lm) : 0; dot += ps * g[k]; }
        }
        if (g) for (int k = 0; k < V; k++) g[k] = exp(ls[k]) * (g[k] - dot) / tau;
        return loss;
    }
    if (wf != 0) fkl = kl(lt, ls, V);
    if (wr != 0) rkl = kl(ls, lt, V);
    loss = wf * fkl + wr * rkl;
    if (g)
        for (int k = 0; k < V; k++) {
            double ps = exp(ls[k]), pt = exp(lt[k]);
            // d fkl/ds = p_S - p_T; d rkl/ds_k = p_S,k*((log p_S,k - log p_T,k) - rkl)
            g[k] = (wf * (ps - pt) + wr * ps * ((ls[k] - lt[k]) - rkl)) / tau;
        }
    return loss;
}

int bd_loss_forward(float *losses, const float *s, const float *u, const int32_t *targets, int N, int V,
                    const bd_loss_spec *spec) {
    double *ls = malloc(sizeof(double) * 2 * (size_t)V);
    if (!ls) return BD_ERR_NOMEM;
    int rc = BD_OK;
    for (int n = 0; n < N && rc == BD_OK; n++) {
        int32_t t = targets ? targets[n] : 0;
        if (spec->kind == BD_LOSS_CE && (t < 0 || t >= V)) { rc = BD_ERR_VALUE; break; }
        losses[n] = (float)position(NULL, ls, ls + V, s + (size_t)n * V, u ? u + (size_t)n * V : NULL, t, V, spec);
    }
    free(ls);
    return rc;
}

double bd_loss_backward(float *ds, const float *s, const float *u, const int32_t *targets, const float *weight,
                        int N, int V, const bd_loss_spec *spec) {
    double *buf = malloc(sizeof(double) * 3 * (size_t)V), total = 0;
    if (!buf) return NAN;
    for (int n = 0; n < N; n++) {
        float *d = ds + (size_t)n * V;
        if (weight[n] == 0) { memset(d, 0, sizeof(float) * (size_t)V); continue; }
        int32_t t = targets ? targets[n] : 0;
        if (spec->kind == BD_LOSS_CE && (t < 0 || t >= V)) { total = NAN; memset(d, 0, sizeof(float) * (size_t)V); continue; }
        double l = position(buf, buf + V, buf + 2 * V, s + (size_t)n * V, u ? u + (size_t)n * V : NULL, t, V, spec);
        total += weight[n] * l;
        for (int k = 0; k < V; k++) d[k] = (float)(weight[n] * buf[k]);
    }
    free(buf);
    return total;
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
