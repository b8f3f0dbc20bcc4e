// Clipping search. The fast path scores all candidates of a block of rows with one sgemm:
// for a group g, err(d) = d^T (X_g^T X_g) d when G < N (Gram matrix, G x G), else ||X_g d||^2.
#include "bd_clip.h"

#include <cblas.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>


#define ROW_BLOCK 64

static void group_minmax(const float *w, int n, float *mn, float *mx) {
    float a = w[0], b = w[0];
    for (int i = 1; i < n; i++) {
        if (w[i] < a) a = w[i];
        if (w[i] > b) b = w[i];
    }
    *mn = a;
    *mx = b;
}

static float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

// d = Q(clamp(w, mn', mx')) - w for candidate (i, j).
static void candidate_delta(float *d, float *tmp, const float *w, int G, float mn, float mx, int i, int j,
                            const bd_qspec *q, int grid) {
    float hi = mx * (1.0f - (float)i / (float)grid), lo = mn * (1.0f - (float)j / (float)grid);
    for (int k = 0; k < G; k++) tmp[k] = clampf(w[k], lo, hi);
    bd_quantize_group(d, tmp, G, q);
    for (int k = 0; k < G; k++) d[k] -= w[k];
}

static int check_args(int N, int OC, int C, const bd_qspec *q, bd_clip_grid grid) {
    if (N <= 0 || OC <= 0 || grid.grid <= 0 || grid.steps <= 0 || grid.steps > grid.grid) return BD_ERR_ARG;
    if (q->kind == BD_Q_TERNARY || q->kind == BD_Q_NONE || bd_qspec_check(q, C, NULL, 0) < 0) return BD_ERR_ARG;
    return BD_OK;
}

int bd_clip_search_ref(float *mx, float *mn, const float *W, const float *X, int N, int OC, int C, const bd_qspec *q,
                       bd_clip_grid grid) {
    if (check_args(N, OC, C, q, grid) < 0) return BD_ERR_ARG;
    int G = bd_qspec_group(q, C), NG = bd_qspec_ngroups(C, G);
    float *d = malloc(sizeof(float) * (size_t)G), *tmp = malloc(sizeof(float) * (size_t)G);
    if (!d || !tmp) {
        free(d);
        free(tmp);
        return BD_ERR_NOMEM;
    }
    for (int o = 0; o < OC; o++)
        for (int g = 0; g < NG; g++) {
            const float *w = W + (size_t)o * C + (size_t)g * G;
            int Gg = C - g * G < G ? C - g * G : G;  // the last group may be shorter
            float lo, hi;
            group_minmax(w, Gg, &lo, &hi);
            double best = DBL_MAX;
            int bi = 0, bj = 0;
            for (int i = 0; i < grid.steps; i++)
                for (int j = 0; j < grid.steps; j++) {
                    candidate_delta(d, tmp, w, Gg, lo, hi, i, j, q, grid.grid);
                    double err = 0;
                    for (int n = 0; n < N; n++) {
                        double y = 0;
                        for (int k = 0; k < Gg; k++) y += (double)X[(size_t)n * C + (size_t)g * G + k] * d[k];
                        err += y * y;
                    }
                    if (err < best) {
                        best = err;
                        bi = i;
                        bj = j;
                    }
                }
            mx[(size_t)o * NG + g] = hi * (1.0f - (float)bi / (float)grid.grid);
            mn[(size_t)o * NG + g] = lo * (1.0f - (float)bj / (float)grid.grid);
        }
    free(d);
    free(tmp);
    return BD_OK;
}

typedef struct {
    float *mx, *mn;
    const float *W, *X;
    const float *gram;  // (NG, G, G) or NULL for the direct path
    int N, OC, C, G, NG;
    const bd_qspec *q;
    bd_clip_grid grid;
    int failed;
} clip_job;

// Scores the candidates of rows [o0, o1) of one group. D: (G, M) candidate deltas as columns
// (M = rows x candidates), E: the product with the Gram matrix (G, M) or with X_g (N, M).
static void search_block(clip_job *j, int g, int o0, int o1, float *D, float *E, float *tmp, float *xg) {
    int C = j->C, K = j->grid.steps * j->grid.steps, M = (o1 - o0) * K;
    int G = C - g * j->G < j->G ? C - g * j->G : j->G;  // this group's length
    float *col = tmp + G;
    for (int o = o0; o < o1; o++) {
        const float *w = j->W + (size_t)o * C + (size_t)g * j->G;
        float lo, hi;
        group_minmax(w, G, &lo, &hi);
        for (int c = 0; c < K; c++) {
            candidate_delta(col, tmp, w, G, lo, hi, c / j->grid.steps, c % j->grid.steps, j->q, j->grid.grid);
            size_t m = (size_t)(o - o0) * K + c;
            for (int k = 0; k < G; k++) D[(size_t)k * M + m] = col[k];
        }
    }
    double *err = calloc((size_t)M, sizeof(double));
    if (!err) {
        j->failed = 1;
        return;
    }
    if (j->gram && G < j->N) {
        const float *A = j->gram + (size_t)g * j->G * j->G;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, G, M, G, 1.0f, A, G, D, M, 0.0f, E, M);
        for (int k = 0; k < G; k++)
            for (int m = 0; m < M; m++) err[m] += (double)D[(size_t)k * M + m] * E[(size_t)k * M + m];
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->N, M, G, 1.0f, xg, G, D, M, 0.0f, E, M);
        for (int n = 0; n < j->N; n++)
            for (int m = 0; m < M; m++) err[m] += (double)E[(size_t)n * M + m] * E[(size_t)n * M + m];
    }
    for (int o = o0; o < o1; o++) {
        const float *w = j->W + (size_t)o * C + (size_t)g * j->G;
        float lo, hi;
        group_minmax(w, G, &lo, &hi);
        double best = DBL_MAX;
        int bc = 0;
        for (int c = 0; c < K; c++) {
            double e = err[(size_t)(o - o0) * K + c];
            if (e < best) {
                best = e;
                bc = c;
            }
        }
        j->mx[(size_t)o * j->NG + g] = hi * (1.0f - (float)(bc / j->grid.steps) / (float)j->grid.grid);
        j->mn[(size_t)o * j->NG + g] = lo * (1.0f - (float)(bc % j->grid.steps) / (float)j->grid.grid);
    }
    free(err);
}

size_t bd_clip_search_bytes(int N, int C, const bd_qspec *q, bd_clip_grid grid) {
    size_t G = (size_t)bd_qspec_group(q, C), NG = (size_t)bd_qspec_ngroups(C, (int)G);
    size_t M = (size_t)ROW_BLOCK * (size_t)grid.steps * (size_t)grid.steps;
    size_t gram = G < (size_t)N || (size_t)C - (NG - 1) * G < (size_t)N ? NG * G * G : 0;  // any group shorter than N
    // xg, gram, D, E and tmp below, and search_block's err.
    return sizeof(float) * ((size_t)N * G + gram + G * M + (G > (size_t)N ? G : (size_t)N) * M + 2 * G) +
           sizeof(double) * M;
}

int bd_clip_search(float *mx, float *mn, const float *W, const float *X, int N, int OC, int C, const bd_qspec *q,
                   bd_clip_grid grid) {
    if (check_args(N, OC, C, q, grid) < 0) return BD_ERR_ARG;
    int G = bd_qspec_group(q, C), NG = bd_qspec_ngroups(C, G), K = grid.steps * grid.steps;
    float *gram = NULL, *xg = malloc(sizeof(float) * (size_t)N * G);
    if (!xg) return BD_ERR_NOMEM;
    bool any_gram = false;
    for (int g = 0; g < NG; g++) any_gram |= (C - g * G < G ? C - g * G : G) < N;
    if (any_gram) {
        gram = malloc(sizeof(float) * (size_t)NG * G * G);
        if (!gram) {
            free(xg);
            return BD_ERR_NOMEM;
        }
        for (int g = 0; g < NG; g++) {  // A_g = X_g^T X_g, (Gg, Gg) at g*G*G
            int Gg = C - g * G < G ? C - g * G : G;
            if (Gg < N)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Gg, Gg, N, 1.0f, X + (size_t)g * G, C,
                            X + (size_t)g * G, C, 0.0f, gram + (size_t)g * G * G, Gg);
        }
    }
    clip_job j = {mx, mn, W, X, gram, N, OC, C, G, NG, q, grid, 0};
    size_t M = (size_t)ROW_BLOCK * K;
    float *D = malloc(sizeof(float) * (size_t)G * M),
          *E = malloc(sizeof(float) * ((size_t)G > (size_t)N ? (size_t)G : (size_t)N) * M);
    float *tmp = malloc(sizeof(float) * 2 * (size_t)G);
    int rc = BD_OK;
    if (!D || !E || !tmp) rc = BD_ERR_NOMEM;
    for (int g = 0; rc == BD_OK && g < NG; g++) {
        int Gg = C - g * G < G ? C - g * G : G;
        if (Gg >= N)  // direct path: X_g as a contiguous (N, Gg) block
            for (int n = 0; n < N; n++)
                memcpy(xg + (size_t)n * Gg, X + (size_t)n * C + (size_t)g * G, sizeof(float) * Gg);
        for (int o0 = 0; o0 < OC && !j.failed; o0 += ROW_BLOCK)
            search_block(&j, g, o0, o0 + ROW_BLOCK < OC ? o0 + ROW_BLOCK : OC, D, E, tmp, xg);
        if (j.failed) rc = BD_ERR_NOMEM;
    }
    free(D);
    free(E);
    free(tmp);
    free(gram);
    free(xg);
    return rc;
}
