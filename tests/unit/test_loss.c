// Losses: values worked by hand on a 2-token vocabulary, and every gradient against central
// finite differences (with weights, a masked position and a temperature).
#include <string.h>

#include "bd_loss.h"
#include "bd_test.h"

START_TEST(test_loss_values_by_hand) {
    // p_S = [.5, .5] (s = [0, 0]); p_T = [.75, .25] (u = [ln 3, 0]).
    // fkl = .75 ln 1.5 + .25 ln .5 = 0.1308120; rkl = .5 ln(2/3) + .5 ln 2 = 0.1438410
    // cakld(g=.75) = .75 rkl + .25 fkl = 0.1405838; M = [.625, .375]:
    // jsd = (.5 ln .8 + .5 ln(4/3) + .75 ln 1.2 + .25 ln(2/3))/2 = 0.0338218; ce(0) = ln 2.
    float s[2] = {0, 0}, u[2] = {(float)log(3.0), 0}, l;
    int32_t tgt[1] = {0};
    struct {
        bd_loss_kind k;
        double want;
    } cases[] = {{BD_LOSS_FKL, 0.1308120},
                 {BD_LOSS_RKL, 0.1438410},
                 {BD_LOSS_CAKLD, 0.1405838},
                 {BD_LOSS_JSD, 0.0338218},
                 {BD_LOSS_CE, 0.6931472}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bd_loss_spec spec = {cases[i].k, 0.75f, 1.0f};
        ck_assert_int_eq(bd_loss_forward(&l, s, u, tgt, 1, 2, &spec), BD_OK);
        ck_assert_close(l, cases[i].want, 2e-6);
    }
    ck_assert_close(bd_top1_prob_sum(u, 1, 2), 0.75, 1e-6);
    // Identical distributions: every divergence is zero.
    bd_loss_spec fkl = {BD_LOSS_FKL, 0, 1};
    ck_assert_int_eq(bd_loss_forward(&l, u, u, NULL, 1, 2, &fkl), BD_OK);
    ck_assert_close(l, 0, 1e-7);
    int32_t bad[1] = {2};
    bd_loss_spec ce = {BD_LOSS_CE, 0, 1};
    ck_assert_int_eq(bd_loss_forward(&l, s, NULL, bad, 1, 2, &ce), BD_ERR_VALUE);
}
END_TEST

START_TEST(test_loss_gradients_fd) {
    enum { N = 3, V = 7 };
    float s[N * V], u[N * V], ds[N * V], tmp[N * V];
    float w[N] = {1.0f, 0.5f, 0.0f};
    int32_t tgt[N] = {3, 0, 6};
    unsigned seed = 3;
    for (int i = 0; i < N * V; i++) {
        seed = seed * 1103515245u + 12345u;
        s[i] = ((seed >> 8) / 16777216.0f - 0.5f) * 6;
        seed = seed * 1103515245u + 12345u;
        u[i] = ((seed >> 8) / 16777216.0f - 0.5f) * 6;
    }
    float taus[2] = {1.0f, 2.0f};
    for (int k = 0; k < BD_LOSS_COUNT; k++)
        for (int ti = 0; ti < 2; ti++) {
            bd_loss_spec spec = {(bd_loss_kind)k, 0.3f, taus[ti]};
            double lp, lm, sum;
            ck_assert_int_eq(bd_loss_backward(ds, s, u, tgt, w, N, V, &spec, &sum, NULL, 0), BD_OK);
            double worst = 0;
            for (int i = 0; i < N * V; i++) {
                const float eps = 1e-2f;
                memcpy(tmp, s, sizeof s);
                tmp[i] = s[i] + eps;
                ck_assert_int_eq(bd_loss_backward(ds, tmp, u, tgt, w, N, V, &spec, &lp, NULL, 0), BD_OK);
                tmp[i] = s[i] - eps;
                ck_assert_int_eq(bd_loss_backward(ds, tmp, u, tgt, w, N, V, &spec, &lm, NULL, 0), BD_OK);
                // restore the analytic gradient
                ck_assert_int_eq(bd_loss_backward(ds, s, u, tgt, w, N, V, &spec, &sum, NULL, 0), BD_OK);
                double fd = (lp - lm) / (2.0 * (double)eps);
                double err = fabs(fd - ds[i]) / fmax(1e-2, fabs(fd));
                if (err > worst) worst = err;
                ck_assert_msg(err < 2e-3, "%s tau %g: d/ds[%d] analytic %g vs fd %g", bd_loss_name((bd_loss_kind)k),
                              taus[ti], i, ds[i], fd);
            }
            // The masked position gets exactly zero gradient.
            for (int v = 0; v < V; v++) ck_assert(ds[2 * V + v] == 0.0f);
        }
}
END_TEST

START_TEST(test_loss_backward_errors) {
    // A ce target outside the vocabulary at a weighted position: BD_ERR_VALUE naming it, that
    // row's gradient zero; the same target at a masked position (weight 0) is no error.
    enum { V = 3 };
    float s[2 * V] = {0.5f, -1, 2, 0, 1, 0}, ds[2 * V], w[2] = {1, 1};
    int32_t tgt[2] = {1, 7};
    bd_loss_spec ce = {BD_LOSS_CE, 0, 1};
    double sum;
    char why[200] = "";
    ck_assert_int_eq(bd_loss_backward(ds, s, NULL, tgt, w, 2, V, &ce, &sum, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "target 7 at position 1"), "why: %s", why);
    for (int v = 0; v < V; v++) ck_assert(ds[V + v] == 0.0f);
    w[1] = 0;
    ck_assert_int_eq(bd_loss_backward(ds, s, NULL, tgt, w, 2, V, &ce, &sum, why, sizeof why), BD_OK);
    // ce of position 0 by hand: log(sum exp s) - s[1].
    ck_assert_close(sum, log(exp(0.5) + exp(-1.0) + exp(2.0)) + 1.0, 1e-6);
}
END_TEST

START_TEST(test_cakld_mixes) {
    // cakld with g = 0 is fkl and with g = 1 is rkl, exactly.
    float s[5] = {0.1f, -1, 2, 0.3f, 0}, u[5] = {1, 0, -0.5f, 0.2f, 0.7f}, a, b;
    bd_loss_spec c0 = {BD_LOSS_CAKLD, 0, 1}, f = {BD_LOSS_FKL, 0, 1}, c1 = {BD_LOSS_CAKLD, 1, 1},
                 r = {BD_LOSS_RKL, 0, 1};
    ck_assert_int_eq(bd_loss_forward(&a, s, u, NULL, 1, 5, &c0), BD_OK);
    ck_assert_int_eq(bd_loss_forward(&b, s, u, NULL, 1, 5, &f), BD_OK);
    ck_assert_close(a, b, 0);
    ck_assert_int_eq(bd_loss_forward(&a, s, u, NULL, 1, 5, &c1), BD_OK);
    ck_assert_int_eq(bd_loss_forward(&b, s, u, NULL, 1, 5, &r), BD_OK);
    ck_assert_close(a, b, 0);
    ck_assert_int_eq(bd_loss_parse("cakld"), BD_LOSS_CAKLD);
    ck_assert_int_eq(bd_loss_parse("kl"), -1);
}
END_TEST

Suite *suite_loss(void) {
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_loss_values_by_hand);
    tcase_add_test(tc, test_loss_gradients_fd);
    tcase_add_test(tc, test_loss_backward_errors);
    tcase_add_test(tc, test_cakld_mixes);
    suite_add_tcase(s, tc);
    return s;
}
