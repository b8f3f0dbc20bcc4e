// Perplexity windows (bd_ppl) against a plain computation from the reference forward pass:
// every target's log-probability given the context its window gives it, summed in double.
#include <string.h>

#include "bd_forward.h"
#include "bd_ppl.h"
#include "bd_test.h"

static uint64_t st = 0x9E3779B97F4A7C15ull;
static float rnd(void) {
    st ^= st << 13, st ^= st >> 7, st ^= st << 17;
    return (float)((st >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

static const bd_test_variant tiny = {"tiny", 16, 2, 4, 2, 4, 24, 23, BD_ROPE_HALF, false, false, false};

// log p(ids[p] | ids[begin..p-1]) by the reference forward of the window [begin, begin + T).
static double logprob(const bd_model *m, const int32_t *ids, size_t begin, int T, size_t p) {
    int V = m->cfg.vocab;
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    ck_assert_int_eq(bd_forward_ref(m, ids + begin, 1, T, lg, NULL, 0), BD_OK);
    const float *x = lg + (p - 1 - begin) * (size_t)V;
    double mx = -INFINITY, z = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, x[v]);
    for (int v = 0; v < V; v++) z += exp(x[v] - mx);
    double r = x[ids[p]] - mx - log(z);
    free(lg);
    return r;
}

START_TEST(test_ppl_windows) {
    bd_config c = bd_test_variant_config(&tiny);
    bd_model m;
    bd_test_random_model(&m, &c, rnd);
    enum { N = 53, T = 8 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)((rnd() + 1) * 0.5f * 23) % 23;
    // Non-overlapping windows of 8, 3 per pass: 6 windows, 7 targets each, 5 ids dropped.
    bd_ppl_result r;
    char why[300];
    ck_assert_int_eq(bd_ppl(&m, ids, N, T, 0, 3, NULL, &r, why, sizeof why), BD_OK);
    ck_assert_int_eq(r.windows, 6);
    ck_assert_int_eq(r.scored, 6 * 7);
    ck_assert_int_eq(r.dropped, 5);
    double want = 0;
    for (int w = 0; w < 6; w++)
        for (int t = 1; t < T; t++) want -= logprob(&m, ids, (size_t)w * T, T, (size_t)w * T + t);
    ck_assert_close(r.nll_sum / r.scored, want / 42, 2e-5);
    // Sliding windows of 8 by 3: every target 1..N-1 once, its window the first that reaches it.
    ck_assert_int_eq(bd_ppl(&m, ids, N, T, 3, 3, NULL, &r, why, sizeof why), BD_OK);
    ck_assert_int_eq(r.scored, N - 1);
    want = 0;
    for (size_t p = 1; p < N; p++) {
        size_t end = T;
        while (end < p + 1) end = end + 3 < N ? end + 3 : N;
        want -= logprob(&m, ids, end - T, T, p);
    }
    ck_assert_close(r.nll_sum / r.scored, want / (N - 1), 2e-5);
    // A window is never cut to fewer ids (bd-eval(1): the tail shorter than a window is
    // dropped; so is a stream shorter than one); fewer than 2 ids is an error.
    ck_assert_int_eq(bd_ppl(&m, ids, 5, 5, 0, 2, NULL, &r, why, sizeof why), BD_OK);
    ck_assert_int_eq(r.windows, 1);
    ck_assert_int_eq(r.scored, 4);
    ck_assert_int_eq(bd_ppl(&m, ids, 5, 64, 0, 2, NULL, &r, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "5 tokens, fewer than one window of 64"), "%s", why);
    ck_assert_int_eq(bd_ppl(&m, ids, 5, 64, 3, 2, NULL, &r, why, sizeof why), BD_ERR_ARG);
    ck_assert_int_eq(bd_ppl(&m, ids, 1, 8, 0, 2, NULL, &r, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "need at least 2 tokens"), "%s", why);
    bd_model_free(&m);
}
END_TEST

static uint64_t seen_total, seen_done;
static void on_start(void *ctx, uint64_t total, const char *unit) { seen_total = total, (void)ctx, (void)unit; }
static void on_update(void *ctx, uint64_t done) { seen_done = done, (void)ctx; }

START_TEST(test_ppl_progress) {
    bd_config c = bd_test_variant_config(&tiny);
    bd_model m;
    bd_test_random_model(&m, &c, rnd);
    int32_t ids[40] = {0};
    bd_ppl_progress p = {on_start, on_update, NULL};
    bd_ppl_result r;
    ck_assert_int_eq(bd_ppl(&m, ids, 40, 8, 0, 2, &p, &r, NULL, 0), BD_OK);
    ck_assert_int_eq(seen_total, 5);
    ck_assert_int_eq(seen_done, 5);
    ck_assert_int_eq(bd_ppl(&m, ids, 40, 8, 5, 2, &p, &r, NULL, 0), BD_OK);
    ck_assert_int_eq(seen_total, 40);
    ck_assert_int_eq(seen_done, 40);
    bd_model_free(&m);
}
END_TEST

Suite *suite_ppl(void) {
    Suite *s = suite_create("ppl");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ppl_windows);
    tcase_add_test(tc, test_ppl_progress);
    suite_add_tcase(s, tc);
    return s;
}
