// Perplexity windows (bd_ppl) against a plain computation from the reference forward pass:
// every target's log-probability given the context its window gives it, summed in double;
// shards of the run joined give its sum exactly.
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

// Shards: every unit of the run is done by exactly one shard, as the whole run does it, and
// the units added in unit order give the whole run's sum exactly (==, not within a tolerance).
typedef struct {
    bd_ppl_unit u[64];
    int n;
    int stop_at;  // return an error at this unit (0: never)
} units;

static int keep(void *ctx, const bd_ppl_unit *u) {
    units *us = ctx;
    ck_assert(us->n < 64);
    us->u[us->n++] = *u;
    return us->stop_at && us->n == us->stop_at ? BD_ERR_IO : BD_OK;
}

START_TEST(test_ppl_shards) {
    bd_config c = bd_test_variant_config(&tiny);
    bd_model m;
    bd_test_random_model(&m, &c, rnd);
    enum { N = 83 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)((rnd() + 1) * 0.5f * 23) % 23;
    const int setups[3][3] = {{8, 0, 3}, {8, 0, 1}, {8, 3, 1}};  // T, stride, B: windows by 3, one by one, sliding
    for (int si = 0; si < 3; si++) {
        int T = setups[si][0], stride = setups[si][1], B = setups[si][2];
        bd_ppl_result whole;
        units all = {0};
        bd_ppl_part one = {0, 1, keep, &all};
        ck_assert_int_eq(bd_ppl_shard(&m, ids, N, T, stride, B, &one, NULL, &whole, NULL, 0), BD_OK);
        ck_assert_int_eq(all.n, whole.units);
        for (int n = 2; n <= 5; n++) {
            bd_ppl_unit got[64];
            int have[64] = {0};
            long long dropped = -1;
            for (int k = 0; k < n; k++) {
                units us = {0};
                bd_ppl_part part = {k, n, keep, &us};
                bd_ppl_result r;
                ck_assert_int_eq(bd_ppl_shard(&m, ids, N, T, stride, B, &part, NULL, &r, NULL, 0), BD_OK);
                ck_assert_int_eq(r.units, whole.units);
                dropped = r.dropped;
                double sum = 0;
                for (int j = 0; j < us.n; j++) {
                    int64_t u = us.u[j].index;
                    ck_assert(u % n == k && u < whole.units && !have[u]);
                    have[u] = 1, got[u] = us.u[j];
                    sum += us.u[j].nll;
                }
                ck_assert(sum == r.nll_sum);  // the shard's own sum: its units in order
            }
            bd_ppl_result joined = {0};
            for (int64_t u = 0; u < whole.units; u++) {
                ck_assert_msg(have[u], "unit %lld done by no shard", (long long)u);
                ck_assert(got[u].nll == all.u[u].nll && got[u].scored == all.u[u].scored);
                joined.nll_sum += got[u].nll, joined.scored += got[u].scored, joined.windows += got[u].windows;
            }
            ck_assert_msg(joined.nll_sum == whole.nll_sum, "setup %d, %d shards: %.17g != %.17g", si, n, joined.nll_sum,
                          whole.nll_sum);
            ck_assert_int_eq(joined.scored, whole.scored);
            ck_assert_int_eq(joined.windows, whole.windows);
            ck_assert_int_eq(dropped, whole.dropped);
        }
    }
    // The callback's error stops the run with its code.
    units us = {.stop_at = 2};
    bd_ppl_part part = {0, 1, keep, &us};
    bd_ppl_result r;
    ck_assert_int_eq(bd_ppl_shard(&m, ids, N, 8, 0, 1, &part, NULL, &r, NULL, 0), BD_ERR_IO);
    ck_assert_int_eq(us.n, 2);
    bd_model_free(&m);
}
END_TEST

Suite *suite_ppl(void) {
    Suite *s = suite_create("ppl");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ppl_windows);
    tcase_add_test(tc, test_ppl_progress);
    tcase_add_test(tc, test_ppl_shards);
    suite_add_tcase(s, tc);
    return s;
}
