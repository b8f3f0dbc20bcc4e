// Clipping search: the sgemm path against the plain loops, judged by an error computed
// here independently; the chosen ranges never do worse than no clipping.
#include <float.h>
#include <string.h>

#include "bd_clip.h"
#include "bd_test.h"
#include "bd_threads.h"

static unsigned seed = 99;
static float frand(void) {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 8) / 16777216.0f - 0.5f;
}

// Output error of clamping w (one group) to [lo, hi] then quantizing, over inputs X.
static double group_error(const float *X, int N, int C, int g0, const float *w, int G, float lo, float hi,
                          const bd_qspec *q) {
    float c[256], d[256];
    for (int k = 0; k < G; k++) c[k] = w[k] < lo ? lo : w[k] > hi ? hi : w[k];
    bd_qspec one = *q;
    one.group = G;
    ck_assert_int_eq(bd_fakequant_forward_ref(d, c, 1, G, &one), BD_OK);
    double err = 0;
    for (int n = 0; n < N; n++) {
        double y = 0;
        for (int k = 0; k < G; k++) y += (double)X[n * C + g0 + k] * (d[k] - w[k]);
        err += y * y;
    }
    return err;
}

static void run_case(int N, int OC, int C, bd_qspec q) {
    float *W = malloc(sizeof(float) * OC * C), *X = malloc(sizeof(float) * N * C);
    for (int i = 0; i < OC * C; i++) {
        float u = frand();
        W[i] = u * u * u * 8.0f;  // heavy tails: clipping pays off
    }
    for (int i = 0; i < N * C; i++) X[i] = frand();
    int G0 = bd_qspec_group(&q, C), NG = bd_qspec_ngroups(C, G0);
    float *mx = malloc(sizeof(float) * OC * NG), *mn = malloc(sizeof(float) * OC * NG);
    float *rmx = malloc(sizeof(float) * OC * NG), *rmn = malloc(sizeof(float) * OC * NG);
    bd_clip_grid grid = {20, 10};
    ck_assert_int_eq(bd_clip_search(mx, mn, W, X, N, OC, C, &q, grid), BD_OK);
    ck_assert_int_eq(bd_clip_search_ref(rmx, rmn, W, X, N, OC, C, &q, grid), BD_OK);
    int shrunk = 0;
    for (int o = 0; o < OC; o++)
        for (int g = 0; g < NG; g++) {
            const float *w = W + o * C + g * G0;
            int G = C - g * G0 < G0 ? C - g * G0 : G0;
            float lo = w[0], hi = w[0];
            for (int k = 1; k < G; k++) {
                lo = fminf(lo, w[k]);
                hi = fmaxf(hi, w[k]);
            }
            int k = o * NG + g;
            double e_fast = group_error(X, N, C, g * G0, w, G, mn[k], mx[k], &q);
            double e_ref = group_error(X, N, C, g * G0, w, G, rmn[k], rmx[k], &q);
            double e_none = group_error(X, N, C, g * G0, w, G, lo, hi, &q);
            ck_assert_msg(e_fast <= e_ref * (1 + 1e-4) + 1e-9, "(%d,%d): fast %g vs ref %g", o, g, e_fast, e_ref);
            ck_assert_msg(e_ref <= e_none * (1 + 1e-9), "(%d,%d): ref %g worse than no clip %g", o, g, e_ref, e_none);
            // The range is one of the grid points: max*(1-i/20), i in 0..9.
            double i = (1.0 - mx[k] / hi) * 20.0;
            ck_assert_msg(fabs(i - rint(i)) < 1e-3 && rint(i) >= 0 && rint(i) <= 9, "max shrink %g not on the grid", i);
            shrunk += mx[k] != hi || mn[k] != lo;
        }
    ck_assert_int_gt(shrunk, 0);
    free(W);
    free(X);
    free(mx);
    free(mn);
    free(rmx);
    free(rmn);
}

START_TEST(test_clip_gram_path) { run_case(96, 10, 64, (bd_qspec){BD_Q_INT, 2, 16}); }
END_TEST
START_TEST(test_clip_direct_path) { run_case(24, 9, 48, (bd_qspec){BD_Q_INT, 3, 0}); }
END_TEST
START_TEST(test_clip_nf3) { run_case(64, 70, 32, (bd_qspec){BD_Q_NF3, 3, 32}); }
END_TEST
// 43 = 2*16 + 11: a short last group; N = 12 makes the long groups take the direct path
// and the short one the Gram path.
START_TEST(test_clip_ragged) { run_case(12, 7, 43, (bd_qspec){BD_Q_INT, 2, 16}); }
END_TEST

// Threads split the (group, block of 64 rows) tasks: the ranges are the same bits at any
// count (200 rows: 4 row blocks, the last one short; both the direct and the Gram path),
// and still checked against the plain loops with 2 threads.
START_TEST(test_clip_threads) {
    int N = 40, OC = 200, C = 80;
    bd_qspec q = {BD_Q_INT, 2, 32};  // groups 32, 32, 16: the last one takes the Gram path
    float *W = malloc(sizeof(float) * OC * C), *X = malloc(sizeof(float) * N * C);
    for (int i = 0; i < OC * C; i++) W[i] = frand() * frand() * 4.0f;
    for (int i = 0; i < N * C; i++) X[i] = frand();
    int NG = bd_qspec_ngroups(C, 32), n = OC * NG;
    float *mx[3], *mn[3];
    int saved = bd_num_threads();
    for (int t = 0; t < 3; t++) {
        mx[t] = malloc(sizeof(float) * n);
        mn[t] = malloc(sizeof(float) * n);
        bd_set_num_threads(t + 1);
        ck_assert_int_eq(bd_clip_search(mx[t], mn[t], W, X, N, OC, C, &q, (bd_clip_grid){20, 10}), BD_OK);
    }
    for (int t = 1; t < 3; t++) {
        ck_assert_msg(memcmp(mx[0], mx[t], sizeof(float) * n) == 0, "max ranges differ at %d threads", t + 1);
        ck_assert_msg(memcmp(mn[0], mn[t], sizeof(float) * n) == 0, "min ranges differ at %d threads", t + 1);
    }
    bd_set_num_threads(2);
    run_case(N, 150, 43, (bd_qspec){BD_Q_INT, 2, 16});
    bd_set_num_threads(saved);
    for (int t = 0; t < 3; t++) free(mx[t]), free(mn[t]);
    free(W);
    free(X);
}
END_TEST

START_TEST(test_clip_bad_args) {
    float w[4] = {0}, x[4] = {0}, a[1], b[1];
    bd_qspec t = {BD_Q_TERNARY, 2, 0};
    ck_assert_int_eq(bd_clip_search(a, b, w, x, 1, 1, 4, &t, (bd_clip_grid){20, 10}), BD_ERR_ARG);
    bd_qspec q = {BD_Q_INT, 2, 3};
    ck_assert_int_eq(bd_clip_search(a, b, w, x, 1, 1, 4, &q, (bd_clip_grid){20, 21}), BD_ERR_ARG);  // steps > grid
}
END_TEST

Suite *suite_clip(void) {
    Suite *s = suite_create("clip");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_clip_gram_path);
    tcase_add_test(tc, test_clip_direct_path);
    tcase_add_test(tc, test_clip_nf3);
    tcase_add_test(tc, test_clip_ragged);
    tcase_add_test(tc, test_clip_threads);
    tcase_add_test(tc, test_clip_bad_args);
    suite_add_tcase(s, tc);
    return s;
}
