// Forward kernels: every fast kernel against its _ref twin on random shapes (odd sizes,
// T=1, B>1, GQA, both RoPE styles), and RMSNorm, RoPE, exp and cross-entropy against values
// worked by hand or from the formula.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bd_kernels.h"
#include "bd_packed.h"
#include "bd_test.h"
#include "bd_threads.h"
#include "bd_vmath.h"

static uint64_t rng = 88172645463325252ull;
static float urand(void) {  // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}
static float *rand_array(size_t n, float scale) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) p[i] = urand() * scale;
    return p;
}
static float *zeros(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

// |got - want| <= atol + rtol * |want| element-wise (NaN fails).
static void assert_arrays_close(const float *got, const float *want, size_t n, double rtol, double atol,
                                const char *what) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        ck_assert_msg(d <= atol + rtol * fabs(want[i]), "%s[%zu] = %.9g, expected %.9g", what, i, got[i], want[i]);
    }
}

START_TEST(test_embedding) {
    int N = 7, C = 5, V = 11;
    float *emb = rand_array((size_t)V * C, 1), *a = zeros((size_t)N * C), *b = zeros((size_t)N * C);
    int32_t tok[7] = {0, 10, 3, 3, 7, 1, 9};
    bd_embedding_forward(a, tok, emb, N, C);
    bd_embedding_forward_ref(b, tok, emb, N, C);
    assert_arrays_close(a, b, (size_t)N * C, 0, 0, "emb");
    ck_assert_float_eq(a[1 * C + 2], emb[10 * C + 2]);
    free(emb), free(a), free(b);
}
END_TEST

START_TEST(test_rmsnorm_vs_ref) {
    int shapes[][2] = {{1, 1}, {3, 7}, {5, 64}, {2, 129}, {4, 768}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        float *x = rand_array((size_t)N * C, 3), *w = rand_array((size_t)C, 1);
        float *a = zeros((size_t)N * C), *b = zeros((size_t)N * C), *ra = zeros((size_t)N), *rb = zeros((size_t)N);
        bd_rmsnorm_forward(a, ra, x, w, N, C, 1e-5f);
        bd_rmsnorm_forward_ref(b, rb, x, w, N, C, 1e-5f);
        assert_arrays_close(a, b, (size_t)N * C, 2e-6, 1e-7, "rmsnorm");
        assert_arrays_close(ra, rb, (size_t)N, 2e-6, 0, "rstd");
        // In place gives the same.
        bd_rmsnorm_forward(x, ra, x, w, N, C, 1e-5f);
        assert_arrays_close(x, a, (size_t)N * C, 0, 0, "rmsnorm in place");
        free(x), free(w), free(a), free(b), free(ra), free(rb);
    }
}
END_TEST

START_TEST(test_rmsnorm_hand) {
    // mean(x^2) = (1+4+9+16)/4 = 7.5; rstd = 1/sqrt(7.5 + 1e-5) = 0.36514812824
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 0.5f, 2, -1}, out[4], rstd[1];
    bd_rmsnorm_forward(out, rstd, x, w, 1, 4, 1e-5f);
    ck_assert_close(rstd[0], 0.36514812824, 1e-7);
    ck_assert_close(out[0], 0.36514812824, 1e-7);
    ck_assert_close(out[1], 0.36514812824, 1e-7);
    ck_assert_close(out[2], 2.19088876943, 3e-7);
    ck_assert_close(out[3], -1.46059251295, 3e-7);
}
END_TEST

START_TEST(test_linear_vs_ref) {
    int shapes[][3] = {{1, 1, 1}, {1, 17, 5}, {7, 13, 11}, {33, 64, 48}, {4, 96, 130}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
            float *x = rand_array((size_t)N * C, 1), *w = rand_array((size_t)OC * C, 1);
            float *bias = with_bias ? rand_array((size_t)OC, 1) : NULL;
            float *a = zeros((size_t)N * OC), *b = zeros((size_t)N * OC);
            bd_linear_forward(a, x, w, bias, N, C, OC);
            bd_linear_forward_ref(b, x, w, bias, N, C, OC);
            // Float sums of C terms of size <= 1: absolute error ~ C * 1e-7.
            assert_arrays_close(a, b, (size_t)N * OC, 1e-5, 1e-6 * C, "linear");
            free(x), free(w), free(bias), free(a), free(b);
        }
}
END_TEST

START_TEST(test_rope_vs_ref) {
    int shapes[][4] = {{1, 1, 1, 2}, {2, 3, 3, 6}, {2, 5, 2, 130}, {3, 4, 4, 64}};  // B T NH HS
    int pos0[3] = {0, 5, 511};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int style = 0; style < 2; style++)
            for (int with_pos = 0; with_pos < 2; with_pos++) {
                int B = shapes[s][0], T = shapes[s][1], NH = shapes[s][2], HS = shapes[s][3];
                size_t n = (size_t)B * T * NH * HS;
                float *x = rand_array(n, 1), *a = zeros(n), *b = zeros(n);
                int P = 511 + T;
                float *cs = zeros((size_t)P * HS);
                bd_rope_table(cs, P, HS, 10000.0f);
                bd_rope_forward(a, x, cs, with_pos ? pos0 : NULL, B, T, NH, HS, (bd_rope_style)style);
                bd_rope_forward_ref(b, x, with_pos ? pos0 : NULL, B, T, NH, HS, 10000.0f, (bd_rope_style)style);
                assert_arrays_close(a, b, n, 1e-6, 1e-7, "rope");
                bd_rope_forward(x, x, cs, with_pos ? pos0 : NULL, B, T, NH, HS, (bd_rope_style)style);
                assert_arrays_close(x, a, n, 0, 0, "rope in place");
                free(x), free(a), free(b), free(cs);
            }
}
END_TEST

START_TEST(test_rope_hand) {
    // A 4-dim head at position 1, theta 10000: frequencies 10000^(-0/4) = 1 and
    // 10000^(-2/4) = 0.01, so angles 1 and 0.01.
    float x[4] = {1, 2, 3, 4}, out[4];
    int pos[1] = {1};
    double c1 = cos(1.0), s1 = sin(1.0), c2 = cos(0.01), s2 = sin(0.01);
    float cs[3 * 4];
    bd_rope_table(cs, 3, 4, 10000.0f);
    bd_rope_forward(out, x, cs, pos, 1, 1, 1, 4, BD_ROPE_INTERLEAVED);  // pairs (0,1), (2,3)
    ck_assert_close(out[0], 1 * c1 - 2 * s1, 1e-6);
    ck_assert_close(out[1], 1 * s1 + 2 * c1, 1e-6);
    ck_assert_close(out[2], 3 * c2 - 4 * s2, 1e-6);
    ck_assert_close(out[3], 3 * s2 + 4 * c2, 1e-6);
    bd_rope_forward(out, x, cs, pos, 1, 1, 1, 4, BD_ROPE_HALF);  // pairs (0,2), (1,3)
    ck_assert_close(out[0], 1 * c1 - 3 * s1, 1e-6);
    ck_assert_close(out[2], 1 * s1 + 3 * c1, 1e-6);
    ck_assert_close(out[1], 2 * c2 - 4 * s2, 1e-6);
    ck_assert_close(out[3], 2 * s2 + 4 * c2, 1e-6);
    // Position 0 is the identity; the same position through T instead of pos0 agrees.
    float y[8] = {1, 2, 3, 4, 1, 2, 3, 4}, o2[8];
    bd_rope_forward(o2, y, cs, NULL, 1, 2, 1, 4, BD_ROPE_INTERLEAVED);
    for (int i = 0; i < 4; i++) ck_assert_close(o2[i], y[i], 0);
    bd_rope_forward(out, x, cs, pos, 1, 1, 1, 4, BD_ROPE_INTERLEAVED);
    for (int i = 0; i < 4; i++) ck_assert_close(o2[4 + i], out[i], 0);
    // The reference, computing its own angles, agrees with the hand values.
    bd_rope_forward_ref(out, x, pos, 1, 1, 1, 4, 10000.0f, BD_ROPE_HALF);
    ck_assert_close(out[0], 1 * c1 - 3 * s1, 1e-6);
    ck_assert_close(out[3], 2 * s2 + 4 * c2, 1e-6);
}
END_TEST

START_TEST(test_attention_vs_ref) {
    // B T NH KV HS; then head dims the step's SIMD loops take whole (64, 16) and with a tail (20, 40),
    // and a step long enough to split its heads over two threads
    int shapes[][5] = {{1, 1, 1, 1, 2},   {2, 5, 4, 2, 8},   {1, 7, 3, 3, 6},   {2, 130, 4, 1, 8},
                       {1, 257, 2, 2, 4}, {3, 3, 6, 2, 2},   {1, 40, 4, 2, 64}, {2, 9, 2, 1, 20},
                       {1, 33, 2, 2, 16}, {2, 17, 3, 1, 40}, {1, 260, 4, 4, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], NH = shapes[s][2], KV = shapes[s][3], HS = shapes[s][4];
        size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * KV * HS;
        float *q = rand_array(nq, 2), *k = rand_array(nk, 2), *v = rand_array(nk, 1);
        float *a = zeros(nq), *b = zeros(nq), *la = zeros((size_t)B * NH * T), *lb = zeros((size_t)B * NH * T);
        long long sf = bd_attention_scratch_floats(T, 2);
        float *scratch = zeros((size_t)sf);
        bd_attention_forward_ref(b, lb, q, k, v, B, T, NH, KV, HS);
        // One and two threads (two scratch slots): the same values; sgemm (scalar and AVX2 paths)
        // and the f32 tiles with the 16-lane softmax (AVX-512).
        for (int path = BD_SIMD_SCALAR; path < BD_SIMD_COUNT; path++) {
            if (!bd_pk_simd_supported((bd_simd)path)) continue;
            bd_pk_set_simd((bd_simd)path);
            for (int threads = 1; threads <= 2; threads++) {
                bd_set_num_threads(threads);
                memset(a, 0, nq * sizeof(float));
                bd_attention_forward(a, la, q, k, v, scratch, sf, B, T, NH, KV, HS);
                assert_arrays_close(a, b, nq, 1e-5, 1e-6, "attention");
                assert_arrays_close(la, lb, (size_t)B * NH * T, 1e-6, 1e-6, "lse");
            }
        }
        bd_pk_set_simd(BD_SIMD_COUNT);
        bd_set_num_threads(1);
        if (T == 1) assert_arrays_close(a, v, nq < nk ? nq : nk, 0, 1e-7, "attention T=1 is v");

        // The step kernel, reading the same k/v as a cache with room for T positions: the
        // query row of position pos[b] sees exactly what row pos[b] of the batch saw.
        int pos[3];
        float *qs = zeros((size_t)B * NH * HS), *sa = zeros((size_t)B * NH * HS), *sb = zeros((size_t)B * NH * HS);
        float *sscr = zeros((size_t)B * NH * T);
        for (int bb = 0; bb < B; bb++) {
            pos[bb] = (T - 1 - bb) > 0 ? T - 1 - bb : 0;
            memcpy(qs + (size_t)bb * NH * HS, q + ((size_t)bb * T + pos[bb]) * NH * HS,
                   (size_t)NH * HS * sizeof(float));
        }
        bd_attention_step_forward_ref(sb, qs, k, v, pos, B, T, NH, KV, HS);
        for (int path = BD_SIMD_SCALAR; path < BD_SIMD_COUNT; path++) {  // sgemm, AVX2, AVX-512 loops
            if (!bd_pk_simd_supported((bd_simd)path)) continue;
            bd_pk_set_simd((bd_simd)path);
            memset(sa, 0, (size_t)B * NH * HS * sizeof(float));
            bd_set_num_threads(2);  // heads split over threads: the same bits as one thread
            bd_attention_step_forward(sa, qs, k, v, pos, sscr, B, T, NH, KV, HS);
            bd_set_num_threads(1);
            float *s1 = zeros((size_t)B * NH * HS);
            bd_attention_step_forward(s1, qs, k, v, pos, sscr, B, T, NH, KV, HS);
            ck_assert_mem_eq(s1, sa, (size_t)B * NH * HS * sizeof(float));
            free(s1);
            assert_arrays_close(sa, sb, (size_t)B * NH * HS, 1e-5, 1e-6, "attention step");
            for (int bb = 0; bb < B; bb++)
                assert_arrays_close(sa + (size_t)bb * NH * HS, b + ((size_t)bb * T + pos[bb]) * NH * HS,
                                    (size_t)NH * HS, 1e-5, 1e-6, "step vs batch");
        }
        bd_pk_set_simd(BD_SIMD_SCALAR);
        free(q), free(k), free(v), free(a), free(b), free(la), free(lb), free(scratch);
        free(qs), free(sa), free(sb), free(sscr);
    }
}
END_TEST

START_TEST(test_swiglu_residual_vs_ref) {
    long long sizes[] = {1, 3, 4, 17, 1000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        long long n = sizes[s];
        float *g = rand_array((size_t)n, 12), *u = rand_array((size_t)n, 2), *a = zeros((size_t)n),
              *b = zeros((size_t)n);
        if (n > 4) g[0] = -100.0f, g[1] = 100.0f, g[2] = 0.0f, g[3] = -90.0f;
        bd_swiglu_forward_ref(b, g, u, n);
        float *first = zeros((size_t)n);
        for (int path = BD_SIMD_SCALAR; path < BD_SIMD_COUNT; path++) {  // 4 lanes; 16 on AVX-512
            if (!bd_pk_simd_supported((bd_simd)path)) continue;
            bd_pk_set_simd((bd_simd)path);
            bd_swiglu_forward(a, g, u, n);
            assert_arrays_close(a, b, (size_t)n, 1e-6, 1e-30, "swiglu");
            if (path == BD_SIMD_SCALAR) memcpy(first, a, (size_t)n * sizeof(float));
            ck_assert_msg(memcmp(first, a, (size_t)n * sizeof(float)) == 0, "swiglu n=%lld: path %s changed the bits",
                          n, bd_pk_simd_name((bd_simd)path));
        }
        bd_pk_set_simd(BD_SIMD_COUNT);  // back to the automatic choice
        free(first);
        bd_residual_forward(a, g, u, n);
        bd_residual_forward_ref(b, g, u, n);
        assert_arrays_close(a, b, (size_t)n, 0, 0, "residual");
        free(g), free(u), free(a), free(b);
    }
}
END_TEST

START_TEST(test_exp_fast) {
    // Relative error against libm's double exp over the whole usable range.
    double worst = 0;
    for (double x = -87.0; x <= 88.0; x += 0.001) {
        double want = exp((double)(float)x), got = bd_expf_fast((float)x);
        double rel = fabs(got - want) / want;
        worst = rel > worst ? rel : worst;
    }
    ck_assert_msg(worst < 3e-7, "exp relative error %.3g", worst);
    ck_assert_close(bd_expf_fast(0.0f), 1.0, 0);
    ck_assert_close(bd_expf_fast(-1000.0f), 0.0, 0);
    ck_assert_close(bd_expf_fast(-INFINITY), 0.0, 0);
}
END_TEST

START_TEST(test_softmax_ce_vs_ref) {
    int shapes[][2] = {{1, 1}, {3, 5}, {4, 512}, {2, 1001}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], V = shapes[s][1];
        float *x = rand_array((size_t)N * V, 10), *a = zeros((size_t)N * V), *b = zeros((size_t)N * V);
        int32_t tgt[4];
        for (int i = 0; i < N; i++) tgt[i] = (i * 7919) % V;
        if (N > 1) tgt[1] = -1;
        bd_logsoftmax_forward(a, x, N, V);
        bd_logsoftmax_forward_ref(b, x, N, V);
        assert_arrays_close(a, b, (size_t)N * V, 1e-5, 1e-5, "logsoftmax");
        float la[4], lb[4], ea[4], eb[4];
        bd_crossentropy_forward(la, ea, x, tgt, N, V);
        bd_crossentropy_forward_ref(lb, eb, x, tgt, N, V);
        assert_arrays_close(la, lb, (size_t)N, 1e-5, 1e-5, "ce");
        assert_arrays_close(ea, eb, (size_t)N, 1e-6, 1e-6, "ce lse");
        if (N > 1) ck_assert_float_eq(la[1], 0.0f);
        for (int i = 0; i < N; i++)
            if (tgt[i] >= 0) ck_assert_close(la[i], -a[(size_t)i * V + tgt[i]], 1e-5);
        free(x), free(a), free(b);
    }
}
END_TEST

START_TEST(test_ce_hand) {
    // logsumexp(1, 2, 3) = 3 + log(1 + e^-1 + e^-2) = 3.40760596444
    float logits[6] = {1, 2, 3, 1000, 1000, 1000}, loss[2], lse[2], ls[6];
    int32_t tgt[2] = {0, 2};
    bd_crossentropy_forward(loss, lse, logits, tgt, 2, 3);
    ck_assert_close(lse[0], 3.40760596444, 1e-6);
    ck_assert_close(loss[0], 2.40760596444, 1e-6);
    // Equal large logits: no overflow, loss log 3.
    ck_assert_close(loss[1], 1.09861228867, 1e-6);
    bd_logsoftmax_forward(ls, logits, 2, 3);
    ck_assert_close(ls[1], 2 - 3.40760596444, 1e-6);
    ck_assert_close(ls[2], 3 - 3.40760596444, 1e-6);
}
END_TEST

Suite *suite_kernels(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("forward");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_rmsnorm_vs_ref);
    tcase_add_test(tc, test_rmsnorm_hand);
    tcase_add_test(tc, test_linear_vs_ref);
    tcase_add_test(tc, test_rope_vs_ref);
    tcase_add_test(tc, test_rope_hand);
    tcase_add_test(tc, test_attention_vs_ref);
    tcase_add_test(tc, test_swiglu_residual_vs_ref);
    tcase_add_test(tc, test_exp_fast);
    tcase_add_test(tc, test_softmax_ce_vs_ref);
    tcase_add_test(tc, test_ce_hand);
    suite_add_tcase(s, tc);
    return s;
}
