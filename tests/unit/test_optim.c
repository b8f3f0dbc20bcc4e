// AdamW against a plain double-precision implementation written here, a first step worked
// by hand, clipping, decay on matrices and SubLN gains only; schedules by formula.
#include <string.h>

#include "bd_optim.h"
#include "bd_test.h"

START_TEST(test_adamw_first_step_by_hand) {
    // One tensor "wq" (decayed) of 2, "rms_att" (not) of 1 and a SubLN gain (decayed, as
    // BitNet Distillation's trainer) of 1. Step 1: m_hat = g, v_hat = g^2, so
    // p1 = p0*(1 - lr*wd) - lr*g/(|g| + eps).
    bd_param_entry t[3] = {{"wq", 1, {2, 0, 0}, 0, 2, true},
                           {"rms_att", 1, {1, 0, 0}, 2, 1, false},
                           {"attn_sub_norm", 1, {1, 0, 0}, 3, 1, false}};
    bd_adamw_cfg cfg = {0.9f, 0.999f, 1e-8f, 0.1f, 0};
    bd_adamw o;
    ck_assert_int_eq(bd_adamw_init(&o, t, 3, 4, &cfg), BD_OK);
    float p[4] = {1.0f, -2.0f, 3.0f, 1.0f}, g[4] = {0.5f, -0.25f, 4.0f, 1.0f};
    double norm = bd_adamw_step(&o, p, g, 0.01f);
    ck_assert_close(norm, sqrt(0.25 + 0.0625 + 16 + 1), 1e-6);
    ck_assert_close(p[0], 1.0 * (1 - 0.001) - 0.01, 1e-6);
    ck_assert_close(p[1], -2.0 * (1 - 0.001) + 0.01, 1e-6);
    ck_assert_close(p[2], 3.0 - 0.01, 1e-6);  // a norm: no decay
    ck_assert_close(p[3], 1.0 * (1 - 0.001) - 0.01, 1e-6);
    bd_adamw_free(&o);
}
END_TEST

START_TEST(test_adamw_matches_reference) {
    enum { P = 50, STEPS = 7 };
    bd_param_entry t[1] = {{"w1", 1, {P, 0, 0}, 0, P, true}};
    bd_adamw_cfg cfg = {0.8f, 0.95f, 1e-6f, 0.05f, 0.5f};
    bd_adamw o;
    ck_assert_int_eq(bd_adamw_init(&o, t, 1, P, &cfg), BD_OK);
    float p[P], g[P];
    double rp[P], rm[P] = {0}, rv[P] = {0};
    unsigned s = 11;
    for (int i = 0; i < P; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = (s >> 8) / 16777216.0f - 0.5f;
        rp[i] = p[i];
    }
    for (int step = 1; step <= STEPS; step++) {
        double gn = 0;
        for (int i = 0; i < P; i++) {
            s = s * 1103515245u + 12345u;
            g[i] = ((s >> 8) / 16777216.0f - 0.5f) * 0.3f;
            gn += (double)g[i] * g[i];
        }
        gn = sqrt(gn);
        double scale = gn > 0.5 ? 0.5 / gn : 1.0, lr = 0.01 * step;
        for (int i = 0; i < P; i++) {
            double gi = g[i] * scale;
            rm[i] = 0.8 * rm[i] + 0.2 * gi;
            rv[i] = 0.95 * rv[i] + 0.05 * gi * gi;
            double mh = rm[i] / (1 - pow(0.8, step)), vh = rv[i] / (1 - pow(0.95, step));
            rp[i] = rp[i] * (1 - lr * 0.05) - lr * mh / (sqrt(vh) + 1e-6);
        }
        bd_adamw_step(&o, p, g, (float)lr);
    }
    for (int i = 0; i < P; i++) ck_assert_close(p[i], rp[i], 1e-5);
    // A NaN gradient changes nothing.
    float before[P];
    memcpy(before, p, sizeof p);
    g[3] = NAN;
    ck_assert(isnan(bd_adamw_step(&o, p, g, 0.1f)));
    ck_assert_mem_eq(before, p, sizeof p);
    bd_adamw_free(&o);
}
END_TEST

START_TEST(test_schedules) {
    bd_schedule c = {BD_SCHED_CONSTANT, 1e-3f, 0, 0, 100};
    ck_assert_close(bd_schedule_lr(&c, 0), 1e-3, 1e-9);
    ck_assert_close(bd_schedule_lr(&c, 99), 1e-3, 1e-9);
    bd_schedule w = {BD_SCHED_COSINE, 1e-3f, 1e-4f, 10, 110};
    ck_assert_close(bd_schedule_lr(&w, 0), 1e-4, 1e-9);  // warmup: (0+1)/10
    ck_assert_close(bd_schedule_lr(&w, 9), 1e-3, 1e-9);
    ck_assert_close(bd_schedule_lr(&w, 10), 1e-3, 1e-9);    // cosine start
    ck_assert_close(bd_schedule_lr(&w, 60), 5.5e-4, 1e-9);  // halfway: (lr+min)/2
    ck_assert_close(bd_schedule_lr(&w, 110), 1e-4, 1e-9);
    ck_assert_close(bd_schedule_lr(&w, 500), 1e-4, 1e-9);
    // Linear to 0 as Hugging Face's: lr * (total - t) / (total - warmup) after the warmup.
    bd_schedule li = {BD_SCHED_LINEAR, 1e-3f, 0, 5, 105};
    ck_assert_close(bd_schedule_lr(&li, 4), 1e-3, 1e-9);
    ck_assert_close(bd_schedule_lr(&li, 5), 1e-3, 1e-9);
    ck_assert_close(bd_schedule_lr(&li, 30), 1e-3 * 75 / 100, 1e-9);
    ck_assert_close(bd_schedule_lr(&li, 104), 1e-3 * 1 / 100, 1e-9);
    bd_schedule lm = {BD_SCHED_LINEAR, 1e-3f, 1e-4f, 0, 10};
    ck_assert_close(bd_schedule_lr(&lm, 5), 1e-4 + 9e-4 * 0.5, 1e-9);
}
END_TEST

Suite *suite_optim(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_adamw_first_step_by_hand);
    tcase_add_test(tc, test_adamw_matches_reference);
    tcase_add_test(tc, test_schedules);
    suite_add_tcase(s, tc);
    return s;
}
