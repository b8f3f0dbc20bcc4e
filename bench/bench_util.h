// Helpers every benchmark uses: medians, a seeded random generator, the machine's sgemm
// rate and memory read bandwidth, peak memory. Define BENCH_NAME before including (for messages).
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bd_hugemem.h"
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

// ---- memory read bandwidth: a buffer summed with AVX-512 loads (AVX2, plain loop elsewhere) ----

typedef struct {
    const float *p;
    size_t n;
    double sum;
} bench_read_job;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
// Eight independent sums of whole cache lines: on one core of the Xeon this project measures
// on, AVX2 loads with four sums stopped at 14.5 GB/s where these reach 20-28 (and a four-row f32
// matrix-vector product 19-21), so the AVX2 figure understated the machine.
__attribute__((target("avx512f"))) static inline double bench_read_avx512(const float *p, size_t n) {
    __m512 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 128 <= n; i += 128)
        for (int k = 0; k < 8; k++) a[k] = _mm512_add_ps(a[k], _mm512_load_ps(p + i + 16 * k));
    for (int k = 1; k < 8; k++) a[0] = _mm512_add_ps(a[0], a[k]);
    double s = _mm512_reduce_add_ps(a[0]);
    for (; i < n; i++) s += p[i];
    return s;
}
__attribute__((target("avx2"))) static inline double bench_read_avx2(const float *p, size_t n) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps(), c = _mm256_setzero_ps(), d = _mm256_setzero_ps();
    for (size_t i = 0; i + 32 <= n; i += 32) {
        a = _mm256_add_ps(a, _mm256_load_ps(p + i));
        b = _mm256_add_ps(b, _mm256_load_ps(p + i + 8));
        c = _mm256_add_ps(c, _mm256_load_ps(p + i + 16));
        d = _mm256_add_ps(d, _mm256_load_ps(p + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static inline void *bench_read_thread(void *arg) {
    bench_read_job *j = arg;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx512f")) {
        j->sum = bench_read_avx512(j->p, j->n);
        return NULL;
    }
    if (__builtin_cpu_supports("avx2")) {
        j->sum = bench_read_avx2(j->p, j->n);
        return NULL;
    }
#endif
    double s = 0;
    for (size_t i = 0; i < j->n; i++) s += j->p[i];
    j->sum = s;
    return NULL;
}

// Read bandwidth in GB/s: buf (n floats, 64-byte aligned, n a multiple of 32 * threads) read
// by 1 or 2 threads (one half each), median of runs (at most 15).
static inline double bench_bandwidth(const float *buf, size_t n, int threads, int runs) {
    double t[15], sink = 0;
    if (runs > 15) runs = 15;
    if (threads > 2) threads = 2;
    for (int r = 0; r < runs; r++) {
        pthread_t tid[2];
        bench_read_job j[2];
        double t0 = bd_now();
        for (int k = 0; k < threads; k++) {
            j[k] = (bench_read_job){buf + n / threads * k, n / threads, 0};
            if (pthread_create(&tid[k], NULL, bench_read_thread, &j[k]) != 0) bench_die("pthread_create");
        }
        for (int k = 0; k < threads; k++) {
            pthread_join(tid[k], NULL);
            sink += j[k].sum;
        }
        t[r] = bd_now() - t0;
    }
    if (sink == 12345.678) printf(" ");  // keeps the sums alive
    return (double)n * 4 / bench_median(t, runs) / 1e9;
}

// Read bandwidth at 1 and 2 threads (bw[1], bw[2]; bw[0] = 0) on a 512 MB buffer, median of runs.
// The buffer is in 2 MB pages, as the models' weights are (bd_hugemem.h): in 4 KB pages the loop
// measured 31-32 GB/s at 1 thread on this project's 2-core VM, where 2 MB pages give 47-50, and f32
// generation on 2 MB pages then read "113%" of it.
static inline void bench_bandwidth_12(double bw[3], int runs) {
    size_t n = (size_t)128 << 20;  // floats: 512 MB
    float *buf = bd_huge_alloc(n * 4);
    if (!buf) bench_die("bd_huge_alloc");
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    bw[0] = 0, bw[1] = bench_bandwidth(buf, n, 1, runs), bw[2] = bench_bandwidth(buf, n, 2, runs);
    bd_huge_free(buf);
}

// Peak resident memory of this process so far, in MB.
static inline double bench_peak_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

#endif
