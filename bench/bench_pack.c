// Packed-weight kernels against OpenBLAS f32 on random weights, all measured in one run:
//   1. memory read bandwidth (1 and 2 threads, a 512 MB buffer summed with AVX2 loads);
//   2. matrix-vector (generation) on the 7B Llama layer shapes 4096x4096 and 11008x4096 and
//      the 110M model's 768x768, 2048x768, 768x2048: ms, GB/s of weight bytes read, speed-up
//      over cblas_sgemv, per format (group 128) and activation type, 1 and 2 threads;
//   3. matrix-matrix with 512 tokens (prompts, evaluation) against cblas_sgemm (int8: the integer
//      tiles of q2 tq2 q3 q8 on every shape, r2q and nf3 at 768x768 only);
//   4. the 110M-shaped model: memory packed vs f32, and KV-cache generation tokens/s.
// Medians of RUNS runs. The 2-bit matrix-vector rate is reported as a fraction of the
// measured bandwidth (at the same thread count).
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_forward.h"
#include "bd_packed.h"
#include "bd_progress.h"
#include "bd_threads.h"

#define RUNS 5

#define BENCH_NAME "bench_pack"
#include "bench_util.h"

// ---- kernels --------------------------------------------------------------------------------------

static const struct {
    const char *name;
    bd_qspec q;
} fmts[] = {
        {"q2", {BD_Q_INT, 2, 128}}, {"tq2", {BD_Q_TERNARY, 2, 0}}, {"r2q", {BD_Q_R2Q, 2, 128}},
        {"q3", {BD_Q_INT, 3, 128}}, {"nf3", {BD_Q_NF3, 3, 128}},   {"q8", {BD_Q_INT, 8, 128}},
};
#define NF (int)(sizeof fmts / sizeof fmts[0])

static double time_matvec(const bd_pk_tensor *t, const float *x, float *y, int N, bool i8, int reps) {
    double v[RUNS];
    void *scratch = malloc(bd_pk_matmul_scratch_bytes(t, N, i8));
    if (!scratch) return NAN;
    bd_pk_matmul(y, x, t, N, i8, scratch);  // warm-up
    for (int r = 0; r < RUNS; r++) {
        double t0 = bd_now();
        for (int k = 0; k < reps; k++) bd_pk_matmul(y, x, t, N, i8, scratch);
        v[r] = (bd_now() - t0) / reps;
    }
    free(scratch);
    return bench_median(v, RUNS);
}

static double time_sgemv(const float *W, const float *x, float *y, int OC, int C, int N, int reps) {
    double v[RUNS];
    for (int r = -1; r < RUNS; r++) {
        double t0 = bd_now();
        for (int k = 0; k < reps; k++) {
            if (N == 1)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, W, C, x, 1, 0.0f, y, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, W, C, 0.0f, y, OC);
        }
        if (r >= 0) v[r] = (bd_now() - t0) / reps;
    }
    return bench_median(v, RUNS);
}

int main(void) {
    const char *simd = bd_pk_simd_name(bd_pk_simd());
    printf("bench_pack: kernels path %s, medians of %d runs\n\n", simd, RUNS);
    double bw[3];
    bench_bandwidth_12(bw, RUNS);
    printf("memory read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n\n", bw[1], bw[2]);

    int shapes[][2] = {{4096, 4096}, {11008, 4096}, {768, 768}, {2048, 768}, {768, 2048}};
    double q2_frac[3] = {0};
    for (int th = 1; th <= 2; th++) {
        bd_set_num_threads(th);
        printf("matrix-vector, %d thread%s: ms | GB/s of weights | speed-up over f32 sgemv\n", th, th > 1 ? "s" : "");
        printf("%-11s %8s", "shape", "f32");
        for (int f = 0; f < NF; f++) printf(" | %-6s %5s %5s %4s %5s", fmts[f].name, "ms", "GB/s", "x", "i8 x");
        printf("\n");
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int OC = shapes[s][0], C = shapes[s][1];
            float *W = malloc(sizeof(float) * OC * C), *x = malloc(sizeof(float) * C), *y = malloc(sizeof(float) * OC);
            for (size_t i = 0; i < (size_t)OC * C; i++) W[i] = bench_urand() * 0.05f;
            for (int i = 0; i < C; i++) x[i] = bench_urand();
            int reps = (int)(2e8 / ((double)OC * C)) + 1;
            double tf = time_sgemv(W, x, y, OC, C, 1, reps);
            printf("%5dx%-5d %6.3fms", OC, C, tf * 1e3);
            for (int f = 0; f < NF; f++) {
                bd_pk_tensor t;
                if (bd_pk_pack(&t, W, OC, C, &fmts[f].q, NULL, 0) < 0) return 1;
                double tp = time_matvec(&t, x, y, 1, false, reps * 4), ti = time_matvec(&t, x, y, 1, true, reps * 4);
                double gbs = (double)t.row_bytes * OC / tp / 1e9;
                printf(" | %-6s %5.3f %5.1f %4.1f %5.1f", "", tp * 1e3, gbs, tf / tp, tf / ti);
                if (f == 0 && s < 2) q2_frac[th] += 0.5 * fmax(gbs, (double)t.row_bytes * OC / ti / 1e9) / bw[th];
                bd_pk_free(&t);
            }
            printf("\n");
            free(W), free(x), free(y);
        }
        printf("\n");
    }
    printf("2-bit (q2) matrix-vector on the 7B shapes, best activation type: %.0f%% of the measured bandwidth (1 thread), %.0f%% (2 threads)\n\n",
           100 * q2_frac[1], 100 * q2_frac[2]);

    int N = 512;
    bd_set_num_threads(2);
    printf("matrix-matrix, %d tokens, 2 threads: ms | speed-up over f32 sgemm (f32 activations: panels dequantized into sgemm; int8: integer tiles where the format has them)\n",
           N);
    printf("%-11s %9s", "shape", "f32 sgemm");
    for (int f = 0; f < NF; f++) printf(" | %-4s %7s %4s %7s %4s", fmts[f].name, "f32 ms", "x", "i8 ms", "x");
    printf("\n");
    for (size_t s = 0; s < 3; s++) {
        int OC = shapes[s][0], C = shapes[s][1];
        float *W = malloc(sizeof(float) * OC * C), *x = malloc(sizeof(float) * N * C),
              *y = malloc(sizeof(float) * N * OC);
        for (size_t i = 0; i < (size_t)OC * C; i++) W[i] = bench_urand() * 0.05f;
        for (size_t i = 0; i < (size_t)N * C; i++) x[i] = bench_urand();
        double tf = time_sgemv(W, x, y, OC, C, N, 1);
        printf("%5dx%-5d %7.1fms", OC, C, tf * 1e3);
        for (int f = 0; f < NF; f++) {
            bd_pk_tensor t;
            if (bd_pk_pack(&t, W, OC, C, &fmts[f].q, NULL, 0) < 0) return 1;
            double tp = time_matvec(&t, x, y, N, false, 1);
            // int8: formats with integer tiles on this path (bd_pk_tiles.c); the others (r2q, nf3) run their
            // f32 kernels in chunks of 7 tokens, too slow for the 7B shapes
            bool tiles = bd_pk_traits_table[t.type].gemm_i8[bd_pk_simd()] != NULL;
            double ti = tiles || s == 2 ? time_matvec(&t, x, y, N, true, 1) : NAN;
            printf(" | %-4s %7.1f %4.2f %7.1f %4.2f", "", tp * 1e3, tf / tp, ti * 1e3, tf / ti);
            bd_pk_free(&t);
        }
        printf("\n");
        free(W), free(x), free(y);
    }

    // The 110M-shaped model: memory and generation.
    bd_config c = {.arch = "llama",
                   .dim = 768,
                   .n_layers = 12,
                   .n_heads = 12,
                   .n_kv_heads = 12,
                   .head_dim = 64,
                   .ffn_dim = 2048,
                   .vocab = 32000,
                   .max_seq = 1024,
                   .norm_eps = 1e-5f,
                   .rope_theta = 10000.0f,
                   .tied_embeddings = true,
                   .bos = 1,
                   .eos = 2};
    bd_model m;
    if (bd_model_alloc(&m, &c) < 0) return 1;
    for (size_t i = 0; i < m.n_params; i++) m.params[i] = bench_urand() * 0.05f;
    printf("\n110M-shaped model (dim 768, 12 layers, ffn 2048, vocab 32000, tied), KV-cache generation of 64 tokens at batch 1:\n");
    printf("%-8s %10s %10s %8s %10s %8s %10s %8s\n", "weights", "MB", "vs f32", "linears", "tok/s 1t", "x", "tok/s 2t",
           "x");
    double f32tok[3] = {0};
    for (int v8 = -1; v8 < 2 * NF; v8++) {
        int f = v8 < 0 ? -1 : v8 / 2;
        bool i8 = v8 >= 0 && v8 % 2 == 1;
        if (i8 && f >= 2) continue;  // int8 activations: the 2-bit formats with integer kernels
        char why[256];
        if (f >= 0 && !i8) {
            m.quant = fmts[f].q;
            if (bd_pk_model_pack(&m, why, sizeof why) < 0) {
                fprintf(stderr, "%s\n", why);
                return 1;
            }
        }
        size_t bytes = f < 0 ? m.n_params * 4 : bd_pk_model_bytes(&m);
        size_t lin = 0;
        for (int l = 0; l < c.n_layers && f >= 0; l++)
            for (bd_linear k = BD_WQ; k < BD_N_LINEARS; k++) {
                const bd_pk_tensor *t = bd_pk_model_slot(&m, l, k);
                lin += t->row_bytes * (size_t)t->rows;
            }
        if (f < 0) lin = (size_t)c.n_layers * (4 * 768 * 768 + 3 * 768 * 2048) * 4;
        double tok[3];
        if (m.packed) m.packed->act_int8 = i8;
        for (int th = 1; th <= 2; th++) {
            bd_set_num_threads(th);
            bd_kv_cache kv;
            if (bd_kv_cache_init(&kv, &c, 1, 128) < 0) return 1;
            float *logits = malloc(sizeof(float) * c.vocab);
            int32_t tokid = 1;
            double v[3];
            for (int r = 0; r < 3; r++) {
                double t0 = bd_now();
                for (int p = 0; p < 64; p++) {
                    if (bd_forward_step(&kv, &m, &tokid, &p, 1, logits) < 0) return 1;
                    tokid = (tokid * 31 + 7) % c.vocab;
                }
                v[r] = 64 / (bd_now() - t0);
            }
            tok[th] = bench_median(v, 3);
            if (f < 0) f32tok[th] = tok[th];
            free(logits);
            bd_kv_cache_free(&kv);
        }
        char label[16];
        snprintf(label, sizeof label, "%s%s", f < 0 ? "f32" : fmts[f].name, i8 ? " i8" : "");
        printf("%-8s %10.1f %9.2fx %7.1fMB %10.1f %7.2fx %10.1f %7.2fx\n", label, bytes / 1e6,
               (double)m.n_params * 4 / (double)bytes, lin / 1e6, tok[1], tok[1] / f32tok[1], tok[2],
               tok[2] / f32tok[2]);
    }
    bd_model_free(&m);
    return 0;
}
