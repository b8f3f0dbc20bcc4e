// Helpers every benchmark uses: medians, a seeded random generator, the machine's sgemm
// rate, peak memory. Define BENCH_NAME before including (for messages).
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bd_progress.h"

#ifndef BENCH_NAME
#define BENCH_NAME "bench"
#endif

static inline void bench_die(const char *what) {
    fprintf(stderr, "%s: %s failed\n", BENCH_NAME, what);
    exit(1);
}

static inline int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median of n values (sorts v).
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return v[n / 2];
}

static uint64_t bench_rng = 12345;
static inline void bench_seed(uint64_t s) { bench_rng = s; }
// Uniform in [-1, 1).
static inline float bench_urand(void) {
    bench_rng = bench_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((bench_rng >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

// Best GFLOP/s of 7 runs (after 3 warm-ups) of out(M,N) = A(M,K) @ W(N,K)^T, the layout of
// bd_linear_forward: the machine's sgemm rate, robust to other load on the machine.
static inline double bench_sgemm_gflops(int M, int K, int N) {
    float *a = malloc((size_t)M * K * sizeof(float)), *w = malloc((size_t)N * K * sizeof(float));
    float *o = malloc((size_t)M * N * sizeof(float));
    if (!a || !w || !o) bench_die("malloc");
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = bench_urand();
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = bench_urand();
    double best = 0;
    for (int i = 0; i < 10; i++) {
        double t0 = bd_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, w, K, 0.0f, o, N);
        double r = 2.0 * M * K * N / (bd_now() - t0) * 1e-9;
        if (i >= 3 && r > best) best = r;
    }
    free(a), free(w), free(o);
    return best;
}

// Peak resident memory of this process so far, in MB.
static inline double bench_peak_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

#endif
