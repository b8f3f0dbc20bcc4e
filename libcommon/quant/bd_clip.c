// Clipping search. The fast path scores all candidates of a block of rows with one sgemm:
// for a group g, err(d) = d^T (X_g^T X_g) d when G < N (Gram matrix, G x G), else ||X_g d||^2.
#include "bd_clip.h"

#include <cblas.h>
#include <float.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bd_threads.h"

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
    int nblocks;  // ROW_BLOCK row blocks per group: the tasks are (group, row block) pairs
    const bd_qspec *q;
    bd_clip_grid grid;
    atomic_int failed;
} clip_job;

// Scores the candidates of rows [o0, o1) of one group. D: (G, M) candidate deltas as columns
// (M = rows x candidates), E: the product with the Gram matrix (G, M) or with X_g (N, M),
// err: (M) the squared output errors.
static void search_block(clip_job *j, int g, int o0, int o1, float *D, float *E, float *tmp, double *err) {
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
    memset(err, 0, sizeof *err * (size_t)M);
    if (j->gram && G < j->N) {
        const float *A = j->gram + (size_t)g * j->G * j->G;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, G, M, G, 1.0f, A, G, D, M, 0.0f, E, M);
        for (int k = 0; k < G; k++)
            for (int m = 0; m < M; m++) err[m] += (double)D[(size_t)k * M + m] * E[(size_t)k * M + m];
    } else {  // X_g: the group's columns of X, read in place (rows C apart)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->N, M, G, 1.0f, j->X + (size_t)g * j->G, C, D, M, 0.0f,
                    E, M);
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
}

// The working buffers of one thread: D, E, tmp (floats) and err (doubles).
static size_t thread_floats(int N, int G, size_t M) {
    return (size_t)G * M + (G > N ? (size_t)G : (size_t)N) * M + 2 * (size_t)G;
}

// Tasks t0..t1-1 (group t / nblocks, row block t % nblocks), with buffers of its own: each
// (row, group) is scored from its own data alone, so the ranges found do not depend on the
// thread count.
static void search_tasks(void *ctx, int t0, int t1) {
    clip_job *j = ctx;
    size_t M = (size_t)ROW_BLOCK * (size_t)(j->grid.steps * j->grid.steps);
    float *D = malloc(sizeof(float) * thread_floats(j->N, j->G, M));
    double *err = malloc(sizeof(double) * M);
    if (!D || !err) atomic_store(&j->failed, 1);
    float *E = D ? D + (size_t)j->G * M : NULL, *tmp = E ? E + (j->G > j->N ? (size_t)j->G : (size_t)j->N) * M : NULL;
    for (int t = t0; t < t1 && !atomic_load(&j->failed); t++) {
        int g = t / j->nblocks, o0 = t % j->nblocks * ROW_BLOCK;
        search_block(j, g, o0, o0 + ROW_BLOCK < j->OC ? o0 + ROW_BLOCK : j->OC, D, E, tmp, err);
    }
    free(D);
    free(err);
}

size_t bd_clip_search_bytes(int N, int C, const bd_qspec *q, bd_clip_grid grid) {
    int G = bd_qspec_group(q, C);
    size_t NG = (size_t)bd_qspec_ngroups(C, G), M = (size_t)ROW_BLOCK * (size_t)grid.steps * (size_t)grid.steps;
    size_t gram = G < N || (size_t)C - (NG - 1) * (size_t)G < (size_t)N ? NG * (size_t)G * (size_t)G
                                                                        : 0;  // any group shorter than N
    size_t nt = (size_t)bd_num_threads();
    return sizeof(float) * (gram + nt * thread_floats(N, G, M)) + sizeof(double) * nt * M;
}

int bd_clip_search(float *mx, float *mn, const float *W, const float *X, int N, int OC, int C, const bd_qspec *q,
                   bd_clip_grid grid) {
    if (check_args(N, OC, C, q, grid) < 0) return BD_ERR_ARG;
    int G = bd_qspec_group(q, C), NG = bd_qspec_ngroups(C, G);
    float *gram = NULL;
    bool any_gram = false;
    for (int g = 0; g < NG; g++) any_gram |= (C - g * G < G ? C - g * G : G) < N;
    if (any_gram) {
        gram = malloc(sizeof(float) * (size_t)NG * G * G);
        if (!gram) return BD_ERR_NOMEM;
        for (int g = 0; g < NG; g++) {  // A_g = X_g^T X_g, (Gg, Gg) at g*G*G
            int Gg = C - g * G < G ? C - g * G : G;
            if (Gg < N)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Gg, Gg, N, 1.0f, X + (size_t)g * G, C,
                            X + (size_t)g * G, C, 0.0f, gram + (size_t)g * G * G, Gg);
        }
    }
    clip_job j = {mx, mn, W, X, gram, N, OC, C, G, NG, (OC + ROW_BLOCK - 1) / ROW_BLOCK, q, grid, 0};
    bd_parallel_for_blas(NG * j.nblocks, 1, search_tasks, &j);
    free(gram);
    return atomic_load(&j.failed) ? BD_ERR_NOMEM : BD_OK;
}
