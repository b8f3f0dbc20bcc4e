// The sampler: RNG streams (determinism, independence, uniformity), the distributions of
// temperature / top-k / top-p against values worked by hand, draw frequencies against
// those probabilities, bd_sample against its full-sort twin, top-K log-probabilities, and the
// vectorized exp against libm.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bd_sample.h"
#include "bd_test.h"

// logits = log(p) for p = 0.1 0.2 0.3 0.4: at temperature 1 the distribution is p itself.
static void four_logits(float *l) {
    const double p[4] = {0.1, 0.2, 0.3, 0.4};
    for (int i = 0; i < 4; i++) l[i] = (float)log(p[i]);
}

static void check_dist(const bd_sampling *s, const float *logits, int V, const double *want, const char *what) {
    double got[8];
    ck_assert_int_eq(bd_sampling_dist(s, logits, V, got), BD_OK);
    for (int v = 0; v < V; v++)
        ck_assert_msg(fabs(got[v] - want[v]) <= 1e-6, "%s: p[%d] = %.9f, expected %.9f", what, v, got[v], want[v]);
}

START_TEST(test_exp_shifted) {
    // bd_exp_shifted (AVX-512 where the CPU has it, else libm) against libm's exp one logit at a
    // time: within 2 ulp, at several temperatures and maxima, V not a multiple of 8, arguments
    // down to about -2000 (below -700 the vector path hands over to libm; results underflow to 0).
    enum { V = 1003 };
    static float l[V];
    static double p[V];
    uint64_t x = 12345;
    for (int v = 0; v < V; v++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        l[v] = (float)((double)(x >> 11) * 0x1.0p-53 * 60.0 - 50.0);  // [-50, 10)
    }
    l[7] = -1e30f;  // far below: exp underflows to exactly 0
    const double temps[] = {1.0, 0.7, 0.05, 3.0};
    const double maxes[] = {10.0, 12.5, -3.0};
    for (int ti = 0; ti < 4; ti++)
        for (int mi = 0; mi < 3; mi++) {
            bd_exp_shifted(l, V, maxes[mi], temps[ti], p);
            for (int v = 0; v < V; v++) {
                double want = exp(((double)l[v] - maxes[mi]) / temps[ti]);
                ck_assert_msg(fabs(p[v] - want) <= 4.5e-16 * want, "T %g max %g logit %g: %.17g vs libm %.17g",
                              temps[ti], maxes[mi], (double)l[v], p[v], want);
            }
        }
}
END_TEST

START_TEST(test_rng_streams) {
    bd_rng a, b, c;
    bd_rng_seed(&a, 42, 7);
    bd_rng_seed(&b, 42, 7);
    bd_rng_seed(&c, 42, 8);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = bd_rng_next(&a), y = bd_rng_next(&b), z = bd_rng_next(&c);
        ck_assert(x == y);
        same_c += x == z;
    }
    ck_assert_int_eq(same_c, 0);
    bd_rng_seed(&a, 43, 7);
    bd_rng_seed(&b, 42, 7);
    ck_assert(bd_rng_next(&a) != bd_rng_next(&b));
    // Uniform [0, 1): mean 1/2 and variance 1/12 within 5 standard errors of 100000 draws.
    bd_rng_seed(&a, 1234, 0);
    const int N = 100000;
    double sum = 0, sum2 = 0, lo = 1, hi = 0;
    for (int i = 0; i < N; i++) {
        double u = bd_rng_uniform(&a);
        sum += u, sum2 += u * u;
        lo = u < lo ? u : lo, hi = u > hi ? u : hi;
    }
    ck_assert(lo >= 0 && hi < 1);
    double mean = sum / N, var = sum2 / N - mean * mean;
    ck_assert_close(mean, 0.5, 5 * sqrt(1.0 / 12 / N));
    ck_assert_close(var, 1.0 / 12, 5 * sqrt(1.0 / 180 / N));  // Var((U - 1/2)^2) = 1/180
}
END_TEST

START_TEST(test_dist_by_hand) {
    float l[4];
    four_logits(l);
    bd_sampling s = {1.0, 0, 1.0};
    check_dist(&s, l, 4, (double[]){0.1, 0.2, 0.3, 0.4}, "T=1");
    s.temperature = 0.5;  // p^2 renormalized: 1 4 9 16 over 30
    check_dist(&s, l, 4, (double[]){1 / 30.0, 4 / 30.0, 9 / 30.0, 16 / 30.0}, "T=0.5");
    s.temperature = 2;  // sqrt(p) renormalized
    double z = sqrt(.1) + sqrt(.2) + sqrt(.3) + sqrt(.4);
    check_dist(&s, l, 4, (double[]){sqrt(.1) / z, sqrt(.2) / z, sqrt(.3) / z, sqrt(.4) / z}, "T=2");
    s = (bd_sampling){1.0, 2, 1.0};
    check_dist(&s, l, 4, (double[]){0, 0, 3 / 7.0, 4 / 7.0}, "top-k 2");
    s = (bd_sampling){1.0, 0, 0.45};  // 0.4 < 0.45 <= 0.7
    check_dist(&s, l, 4, (double[]){0, 0, 3 / 7.0, 4 / 7.0}, "top-p 0.45");
    s = (bd_sampling){1.0, 0, 0.35};
    check_dist(&s, l, 4, (double[]){0, 0, 0, 1}, "top-p 0.35");
    s = (bd_sampling){1.0, 0, 0.75};  // 0.7 < 0.75 <= 0.9
    check_dist(&s, l, 4, (double[]){0, 2 / 9.0, 3 / 9.0, 4 / 9.0}, "top-p 0.75");
    // top-k first, then top-p on the renormalized k: 0.4/0.7 = 0.57 >= 0.5 keeps one token
    // (top-p on the full distribution would have kept two).
    s = (bd_sampling){1.0, 2, 0.5};
    check_dist(&s, l, 4, (double[]){0, 0, 0, 1}, "top-k 2 then top-p 0.5");
    // Temperature before top-p: at T=0.5 the top token has 16/30 = 0.53 >= 0.5.
    s = (bd_sampling){0.5, 0, 0.5};
    check_dist(&s, l, 4, (double[]){0, 0, 0, 1}, "T=0.5 top-p 0.5");
    s = (bd_sampling){0.0, 0, 1.0};
    check_dist(&s, l, 4, (double[]){0, 0, 0, 1}, "greedy");
    // Ties: the first maximum for greedy; lower ids first for top-k.
    float tie[4] = {1, 3, 3, 0};
    check_dist(&s, tie, 4, (double[]){0, 1, 0, 0}, "greedy tie");
    float tie2[4] = {2, 2, 2, 1};
    s = (bd_sampling){1.0, 2, 1.0};
    check_dist(&s, tie2, 4, (double[]){0.5, 0.5, 0, 0}, "top-k tie");
    // -inf logits get probability 0.
    float inf[4] = {-INFINITY, 0, -INFINITY, 0};
    s = (bd_sampling){0.7, 0, 1.0};
    check_dist(&s, inf, 4, (double[]){0, 0.5, 0, 0.5}, "-inf");
}
END_TEST

// 100000 draws: each count within 5 standard deviations sqrt(N p (1-p)) of N p; tokens
// outside the kept set never drawn.
static void check_freq(const bd_sampling *s, const float *l, int V, const double *want) {
    bd_sampler sp;
    ck_assert_int_eq(bd_sampler_init(&sp, V), BD_OK);
    bd_rng r;
    bd_rng_seed(&r, 99, 3);
    const int N = 100000;
    int count[8] = {0};
    for (int i = 0; i < N; i++) {
        int t = bd_sample(&sp, s, l, &r);
        ck_assert(t >= 0 && t < V);
        count[t]++;
    }
    for (int v = 0; v < V; v++) {
        double sd = sqrt(N * want[v] * (1 - want[v]));
        ck_assert_msg(fabs(count[v] - N * want[v]) <= 5 * sd, "id %d drawn %d times, expected %.0f +- %.0f", v,
                      count[v], N * want[v], 5 * sd);
    }
    bd_sampler_free(&sp);
}

START_TEST(test_draw_frequencies) {
    float l[4];
    four_logits(l);
    check_freq(&(bd_sampling){1.0, 0, 1.0}, l, 4, (double[]){0.1, 0.2, 0.3, 0.4});
    check_freq(&(bd_sampling){0.5, 0, 1.0}, l, 4, (double[]){1 / 30.0, 4 / 30.0, 9 / 30.0, 16 / 30.0});
    check_freq(&(bd_sampling){1.0, 0, 0.75}, l, 4, (double[]){0, 2 / 9.0, 3 / 9.0, 4 / 9.0});
    check_freq(&(bd_sampling){1.0, 2, 1.0}, l, 4, (double[]){0, 0, 3 / 7.0, 4 / 7.0});
}
END_TEST

static uint64_t lcg = 88172645463325252ull;
static double urand(void) {
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg >> 11) * 0x1.0p-53;
}

// bd_sample (heap, probability floor) and bd_sample_ref (full sort) draw the same ids from
// the same RNG states, on vocabularies with ties and long tails.
START_TEST(test_sample_vs_ref) {
    const int Vs[3] = {7, 1000, 32000};
    const bd_sampling settings[] = {
            {1.0, 0, 1.0},  {0.7, 0, 1.0}, {0.7, 0, 0.9}, {1.3, 40, 1.0},  {0.8, 50, 0.8},
            {1.0, 0, 0.05}, {0.0, 0, 1.0}, {2.0, 1, 1.0}, {1.0, 0, 0.999},
    };
    for (int vi = 0; vi < 3; vi++) {
        int V = Vs[vi];
        float *l = malloc(sizeof(float) * V);
        bd_sampler sp;
        ck_assert_int_eq(bd_sampler_init(&sp, V), BD_OK);
        for (int trial = 0; trial < (V > 1000 ? 4 : 8); trial++) {
            // Logits with a peaked head, a long tail and, every other trial, many ties.
            for (int v = 0; v < V; v++) {
                double x = 6 * urand() - 3 + (urand() < 0.01 ? 6 : 0);
                l[v] = trial % 2 ? (float)round(x * 2) / 2 : (float)x;
            }
            for (size_t si = 0; si < sizeof settings / sizeof settings[0]; si++) {
                bd_rng a, b;
                bd_rng_seed(&a, (uint64_t)trial, si);
                b = a;
                int draws = V > 1000 ? 4 : 100;
                for (int i = 0; i < draws; i++) {
                    int x = bd_sample(&sp, &settings[si], l, &a), y = bd_sample_ref(&settings[si], l, V, &b);
                    ck_assert_msg(x == y && x >= 0, "V %d trial %d setting %zu draw %d: %d vs ref %d", V, trial, si, i,
                                  x, y);
                }
                ck_assert(memcmp(&a, &b, sizeof a) == 0);
            }
        }
        bd_sampler_free(&sp);
        free(l);
    }
}
END_TEST

START_TEST(test_greedy_and_errors) {
    float l[4];
    four_logits(l);
    bd_sampler sp;
    ck_assert_int_eq(bd_sampler_init(&sp, 4), BD_OK);
    bd_rng r, r0;
    bd_rng_seed(&r, 5, 5);
    r0 = r;
    ck_assert_int_eq(bd_sample(&sp, &(bd_sampling){0, 0, 1}, l, &r), 3);
    ck_assert(memcmp(&r, &r0, sizeof r) == 0);  // greedy uses no random number
    l[2] = NAN;
    ck_assert_int_eq(bd_sample(&sp, &(bd_sampling){0.7, 0, 1}, l, &r), BD_ERR_VALUE);
    ck_assert_int_eq(bd_sample(&sp, &(bd_sampling){0, 0, 1}, l, &r), BD_ERR_VALUE);
    float ninf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    ck_assert_int_eq(bd_sample(&sp, &(bd_sampling){0.7, 0, 1}, ninf, &r), BD_ERR_VALUE);
    bd_sampler_free(&sp);
    // Greedy over a long row (the vector path's blocks of 16 and its tail): the first of tied
    // maxima, in a block, in the tail, at 0; a NaN anywhere; all -inf gives token 0.
    enum { V = 53 };
    float lv[V];
    ck_assert_int_eq(bd_sampler_init(&sp, V), BD_OK);
    const int first[] = {0, 17, 31, 50};
    for (int c = 0; c < 4; c++) {
        for (int v = 0; v < V; v++) lv[v] = (float)(v % 13) - 20.0f;
        lv[first[c]] = 5.0f;
        for (int v = first[c] + 3; v < V; v += 7) lv[v] = 5.0f;  // later ties
        ck_assert_int_eq(bd_sample(&sp, &(bd_sampling){0, 0, 1}, lv, &r), first[c]);
        lv[(first[c] + 20) % V] = NAN;
        ck_assert_int_eq(bd_sample(&sp, &(bd_sampling){0, 0, 1}, lv, &r), BD_ERR_VALUE);
    }
    for (int v = 0; v < V; v++) lv[v] = -INFINITY;
    ck_assert_int_eq(bd_sample(&sp, &(bd_sampling){0, 0, 1}, lv, &r), 0);
    bd_sampler_free(&sp);
    ck_assert_int_eq(bd_sampling_check(&(bd_sampling){0.7, 0, 1.0}), BD_OK);
    ck_assert_int_eq(bd_sampling_check(&(bd_sampling){-0.1, 0, 1.0}), BD_ERR_ARG);
    ck_assert_int_eq(bd_sampling_check(&(bd_sampling){NAN, 0, 1.0}), BD_ERR_ARG);
    ck_assert_int_eq(bd_sampling_check(&(bd_sampling){1, -1, 1.0}), BD_ERR_ARG);
    ck_assert_int_eq(bd_sampling_check(&(bd_sampling){1, 0, 0.0}), BD_ERR_ARG);
    ck_assert_int_eq(bd_sampling_check(&(bd_sampling){1, 0, 1.01}), BD_ERR_ARG);
}
END_TEST

START_TEST(test_topk_logprobs) {
    float l[5] = {0, (float)log(2.0), (float)log(3.0), (float)log(4.0), (float)log(3.0)};  // p = 1 2 3 4 3 over 13
    int32_t ids[3];
    float lp[3];
    ck_assert_int_eq(bd_topk_logprobs(l, 5, 3, ids, lp), BD_OK);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[1], 2);  // tie with id 4: the lower id first
    ck_assert_int_eq(ids[2], 4);
    ck_assert_close(lp[0], log(4.0 / 13), 1e-6);
    ck_assert_close(lp[1], log(3.0 / 13), 1e-6);
    ck_assert_close(lp[2], log(3.0 / 13), 1e-6);
    ck_assert_int_eq(bd_topk_logprobs(l, 5, 6, ids, lp), BD_ERR_ARG);
    ck_assert_int_eq(bd_topk_logprobs(l, 5, 0, ids, lp), BD_ERR_ARG);
    // Large logits: log-softmax without overflow.
    float big[3] = {1000, 999, 998};
    ck_assert_int_eq(bd_topk_logprobs(big, 3, 1, ids, lp), BD_OK);
    ck_assert_close(lp[0], -log(1 + exp(-1.0) + exp(-2.0)), 1e-5);
}
END_TEST

Suite *suite_sample(void) {
    Suite *s = suite_create("sample");
    TCase *tc = tcase_create("sample");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exp_shifted);
    tcase_add_test(tc, test_rng_streams);
    tcase_add_test(tc, test_dist_by_hand);
    tcase_add_test(tc, test_draw_frequencies);
    tcase_add_test(tc, test_sample_vs_ref);
    tcase_add_test(tc, test_greedy_and_errors);
    tcase_add_test(tc, test_topk_logprobs);
    suite_add_tcase(s, tc);
    return s;
}
