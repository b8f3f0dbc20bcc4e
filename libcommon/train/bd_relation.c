// The relation loss of bd_relation.h: the fast path forms each head's Gram matrices with
// sgemm and its gradient (G + G^T) Xh with two more; the softmax and the KL run in double.
#include "bd_relation.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NORM_EPS 1e-12  // F.normalize's floor on the norm

// Head a of rows x (L, stride ld) L2-normalized into xh (L, d); norms (L) keeps max(|x|, eps).
static void normalize_head(float *xh, double *norms, const float *x, size_t ld, int L, int d, int a) {
    for (int t = 0; t < L; t++) {
        const float *r = x + (size_t)t * ld + (size_t)a * d;
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)r[k] * r[k];
        double n = fmax(sqrt(s), NORM_EPS);
        norms[t] = n;
        for (int k = 0; k < d; k++) xh[(size_t)t * d + k] = (float)(r[k] / n);
    }
}

// In place: row (L) of similarities -> its log-softmax; returns nothing.
static void log_softmax(double *row, const float *sim, int L) {
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < L; j++) mx = fmax(mx, (double)sim[j]);
    for (int j = 0; j < L; j++) sum += exp((double)sim[j] - mx);
    double lse = mx + log(sum);
    for (int j = 0; j < L; j++) row[j] = (double)sim[j] - lse;
}

double bd_relation_kl(float *dxs, const float *xs, int DS, size_t lds, const float *xu, int DU, size_t ldu, int L,
                      int A, double weight) {
    int ds = DS / A, du = DU / A;
    size_t LL = (size_t)L * L;
    float *sh = malloc(sizeof(float) * (2 * (size_t)L * ds + (size_t)L * du + 3 * LL));
    double *buf = malloc(sizeof(double) * (3 * (size_t)L));
    if (!sh || !buf) {
        free(sh);
        free(buf);
        return NAN;
    }
    float *uh = sh + (size_t)L * ds, *gs = uh + (size_t)L * du, *gu = gs + LL, *g = gu + LL, *dh = g + LL;
    double *norms = buf, *ls = buf + L, *lu = buf + 2 * L, loss = 0;
    for (int a = 0; a < A; a++) {
        normalize_head(sh, norms, xs, lds, L, ds, a);
        normalize_head(uh, lu, xu, ldu, L, du, a);  // lu: scratch for the teacher's norms
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, ds, 1.0f, sh, ds, sh, ds, 0.0f, gs, L);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, du, 1.0f, uh, du, uh, du, 0.0f, gu, L);
        for (int t = 0; t < L; t++) {
            log_softmax(ls, gs + (size_t)t * L, L);
            log_softmax(lu, gu + (size_t)t * L, L);
            for (int j = 0; j < L; j++) {
                double pu = exp(lu[j]), ps = exp(ls[j]);
                loss += pu * (lu[j] - ls[j]);
                g[(size_t)t * L + j] = (float)(weight * (ps - pu));  // d KL_t / d sim[t, j]
            }
        }
        if (!dxs) continue;
        // sim = Xh Xh^T: d Xh = (G + G^T) Xh, into dh (L, ds).
        for (int t = 0; t < L; t++)
            for (int j = 0; j < t; j++) {
                float s = g[(size_t)t * L + j] + g[(size_t)j * L + t];
                g[(size_t)t * L + j] = g[(size_t)j * L + t] = s;
            }
        for (int t = 0; t < L; t++) g[(size_t)t * L + t] *= 2;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, ds, L, 1.0f, g, L, sh, ds, 0.0f, dh, ds);
        // Through xh = x / n: dx = (dxh - xh (xh . dxh)) / n, or dxh / eps where the floor holds.
        for (int t = 0; t < L; t++) {
            const float *xh = sh + (size_t)t * ds, *dr = dh + (size_t)t * ds;
            float *d = dxs + (size_t)t * lds + (size_t)a * ds;
            double dot = 0;
            bool floor = norms[t] <= NORM_EPS;
            for (int k = 0; k < ds; k++) dot += (double)xh[k] * dr[k];
            for (int k = 0; k < ds; k++) d[k] += (float)((dr[k] - (floor ? 0 : xh[k] * dot)) / norms[t]);
        }
    }
    free(sh);
    free(buf);
    return weight * loss;
}

// ---- the naive twin ----

// Head a of rows x normalized in double.
static void normalize_head_ref(double *xh, double *norms, const float *x, size_t ld, int L, int d, int a) {
    for (int t = 0; t < L; t++) {
        double s = 0;
        for (int k = 0; k < d; k++)
            s += (double)x[(size_t)t * ld + (size_t)a * d + k] * x[(size_t)t * ld + (size_t)a * d + k];
        norms[t] = fmax(sqrt(s), NORM_EPS);
        for (int k = 0; k < d; k++) xh[(size_t)t * d + k] = x[(size_t)t * ld + (size_t)a * d + k] / norms[t];
    }
}

// Row t of softmax(Xh Xh^T) into p (L).
static void relation_row_ref(double *p, const double *xh, int L, int d, int t) {
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < L; j++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += xh[(size_t)t * d + k] * xh[(size_t)j * d + k];
        p[j] = s;
        mx = fmax(mx, s);
    }
    for (int j = 0; j < L; j++) sum += (p[j] = exp(p[j] - mx));
    for (int j = 0; j < L; j++) p[j] /= sum;
}

double bd_relation_kl_ref(float *dxs, const float *xs, int DS, size_t lds, const float *xu, int DU, size_t ldu, int L,
                          int A, double weight) {
    int ds = DS / A, du = DU / A;
    double *sh = malloc(sizeof(double) * ((size_t)L * ds + (size_t)L * du + 4 * (size_t)L + (size_t)L * ds));
    if (!sh) return NAN;
    double *uh = sh + (size_t)L * ds, *ns = uh + (size_t)L * du, *nu = ns + L, *ps = nu + L, *pu = ps + L;
    double *dh = pu + L, loss = 0;
    for (int a = 0; a < A; a++) {
        normalize_head_ref(sh, ns, xs, lds, L, ds, a);
        normalize_head_ref(uh, nu, xu, ldu, L, du, a);
        memset(dh, 0, sizeof(double) * (size_t)L * ds);
        for (int t = 0; t < L; t++) {
            relation_row_ref(ps, sh, L, ds, t);
            relation_row_ref(pu, uh, L, du, t);
            // KL_t = sum_j pu log(pu / ps); d KL_t / d p_S[j] = -pu[j] / ps[j]; through the
            // softmax Jacobian dps[j]/dsim[i] = ps[j] (delta_ij - ps[i]).
            for (int j = 0; j < L; j++)
                if (pu[j] > 0) loss += pu[j] * log(pu[j] / ps[j]);
            for (int i = 0; i < L; i++) {
                double dsim = 0;
                for (int j = 0; j < L; j++) dsim += (-pu[j] / ps[j]) * ps[j] * ((i == j) - ps[i]);
                // sim[t][i] = xh_t . xh_i: both rows receive the other.
                for (int k = 0; k < ds; k++) {
                    dh[(size_t)t * ds + k] += weight * dsim * sh[(size_t)i * ds + k];
                    dh[(size_t)i * ds + k] += weight * dsim * sh[(size_t)t * ds + k];
                }
            }
        }
        if (!dxs) continue;
        // xh = x / n (n = |x| above the floor): Jacobian (I - xh xh^T) / n.
        for (int t = 0; t < L; t++)
            for (int k = 0; k < ds; k++) {
                double v = 0;
                for (int m = 0; m < ds; m++) {
                    double jac = ((k == m) - (ns[t] > NORM_EPS ? sh[(size_t)t * ds + k] * sh[(size_t)t * ds + m] : 0)) /
                                 ns[t];
                    v += jac * dh[(size_t)t * ds + m];
                }
                dxs[(size_t)t * lds + (size_t)a * ds + k] += (float)v;
            }
    }
    free(sh);
    return weight * loss;
}
