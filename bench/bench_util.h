// Helpers every benchmark uses: medians, a seeded random generator, the machine's sgemm
// rate, peak memory. Define BENCH_NAME before including (for messages).
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bd_model.h"
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

// A randomly initialized model shaped like a 110M Llama (dim 768, 12 layers, 12 heads,
// ffn 2048, vocab 32000, tied, context 1024): weights 0.02 * uniform[-1, 1), norms 1.
static inline void bench_model_110m(bd_model *m) {
    bd_config c = {0};
    snprintf(c.arch, sizeof c.arch, "llama");
    c.dim = 768, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 12, c.head_dim = 64, c.ffn_dim = 2048;
    c.vocab = 32000, c.max_seq = 1024, c.norm_eps = 1e-5f, c.rope_theta = 10000.0f, c.rope = BD_ROPE_INTERLEAVED;
    c.tied_embeddings = true, c.bos = 1, c.eos = 2;
    if (bd_model_alloc(m, &c) < 0) bench_die("model alloc");
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = 0.02f * bench_urand();
    for (int i = 0; i < c.n_layers * c.dim; i++) m->w.rms_att[i] = m->w.rms_ffn[i] = 1.0f;
    for (int i = 0; i < c.dim; i++) m->w.rms_final[i] = 1.0f;
}

// Peak resident memory of this process so far, in MB.
static inline double bench_peak_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

#endif
