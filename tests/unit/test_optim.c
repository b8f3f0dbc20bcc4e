// AdamW against a plain double-precision implementation written here, a first step worked
// by hand, clipping, decay on matrices and SubLN gains only; bf16 moments against a naive
// step with its own rounding; schedules by formula.
#include <math.h>
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
    bd_adamw_cfg cfg = {0.9f, 0.999f, 1e-8f, 0.1f, 0, BD_F32};
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
    bd_adamw_cfg cfg = {0.8f, 0.95f, 1e-6f, 0.05f, 0.5f, BD_F32};
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

// bf16 rounding to nearest even written here (8 significant bits via frexp), independent of
// bd_dtype's bit arithmetic; moments stay normal numbers in these tests.
static float round_bf16(float x) {
    if (x == 0) return x;
    int e;
    double f = frexp(x, &e);  // x = f * 2^e, 0.5 <= |f| < 1
    return (float)ldexp(nearbyint(ldexp(f, 8)), e - 8);
}

// bf16 moments against a naive step that keeps its moments rounded: the update uses the f32
// value of this step, the stored moment its rounding. Two tensors (one decayed), clipping.
START_TEST(test_adamw_bf16_moments) {
    enum { P = 64, STEPS = 9 };
    bd_param_entry t[2] = {{"w1", 1, {40, 0, 0}, 0, 40, true}, {"rms_att", 1, {24, 0, 0}, 40, 24, false}};
    bd_adamw_cfg cfg = {0.9f, 0.95f, 1e-8f, 0.1f, 0.7f, BD_BF16};
    bd_adamw o, o32;
    ck_assert_int_eq(bd_adamw_init(&o, t, 2, P, &cfg), BD_OK);
    ck_assert_ptr_null(o.m);
    ck_assert_uint_eq(bd_adamw_moment_bytes(&o), 4 * P);
    bd_adamw_cfg c32 = cfg;
    c32.moments = BD_F32;
    ck_assert_int_eq(bd_adamw_init(&o32, t, 2, P, &c32), BD_OK);
    ck_assert_uint_eq(bd_adamw_moment_bytes(&o32), 8 * P);
    float p[P], p32[P], rp[P], rm[P] = {0}, rv[P] = {0}, g[P], g2[P];
    unsigned s = 5;
    for (int i = 0; i < P; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = p32[i] = rp[i] = (s >> 8) / 16777216.0f - 0.5f;
    }
    for (int step = 1; step <= STEPS; step++) {
        double gn = 0;
        for (int i = 0; i < P; i++) {
            s = s * 1103515245u + 12345u;
            g[i] = g2[i] = ((s >> 8) / 16777216.0f - 0.5f) * 0.2f;
            gn += (double)g[i] * g[i];
        }
        gn = sqrt(gn);
        float lr = 0.01f, scale = gn > 0.7 ? (float)(0.7 / gn) : 1.0f;
        float bc1 = (float)(1 - pow(0.9, step)), bc2 = (float)(1 - pow(0.95, step));
        for (int i = 0; i < P; i++) {
            float gi = g[i] * scale, decay = i < 40 ? 0.1f : 0.0f;
            float m = 0.9f * rm[i] + (1 - 0.9f) * gi, v = 0.95f * rv[i] + (1 - 0.95f) * gi * gi;
            rm[i] = round_bf16(m), rv[i] = round_bf16(v);
            rp[i] *= 1 - lr * decay;
            rp[i] -= lr * (m / bc1) / (sqrtf(v / bc2) + 1e-8f);
        }
        ck_assert_close(bd_adamw_step(&o, p, g, lr), gn, 1e-6);
        bd_adamw_step(&o32, p32, g2, lr);
    }
    const uint16_t *m16 = bd_adamw_moment(&o, 0), *v16 = bd_adamw_moment(&o, 1);
    double moved = 0;
    for (int i = 0; i < P; i++) {
        ck_assert_msg(bd_bf16_to_f32(m16[i]) == rm[i] && bd_bf16_to_f32(v16[i]) == rv[i],
                      "moment %d: %g %g, want %g %g", i, bd_bf16_to_f32(m16[i]), bd_bf16_to_f32(v16[i]), rm[i], rv[i]);
        ck_assert_close(p[i], rp[i], 1e-7);
        moved = fmax(moved, fabs(p[i] - p32[i]));
    }
    ck_assert_msg(moved > 1e-7, "bf16 moments gave exactly the f32 moments' weights");  // rounding happened

    // Loading moments: f32 into bf16 storage rounds them, bf16 into f32 widens them exactly.
    float fm[P], fv[P];
    for (int i = 0; i < P; i++) fm[i] = o32.m[i], fv[i] = o32.v[i];
    ck_assert_int_eq(bd_adamw_set_moments(&o, BD_F32, fm, fv, 3), BD_OK);
    ck_assert_int_eq(o.t, 3);
    for (int i = 0; i < P; i++)
        ck_assert(bd_bf16_to_f32(o.m16[i]) == round_bf16(fm[i]) && bd_bf16_to_f32(o.v16[i]) == round_bf16(fv[i]));
    ck_assert_int_eq(bd_adamw_set_moments(&o32, BD_BF16, m16, v16, 4), BD_OK);
    for (int i = 0; i < P; i++) ck_assert(o32.m[i] == bd_bf16_to_f32(o.m16[i]) && o32.v[i] == bd_bf16_to_f32(o.v16[i]));
    ck_assert_int_eq(bd_adamw_set_moments(&o32, BD_F16, m16, v16, 4), BD_ERR_ARG);
    bd_adamw_free(&o);
    bd_adamw_free(&o32);
    cfg.moments = BD_I8;
    ck_assert_int_eq(bd_adamw_init(&o, t, 2, P, &cfg), BD_ERR_ARG);
}
END_TEST

// ZeRO stage 1: two optimizers over the shards [0, 23) and [23, P), each given the whole
// gradient's norm, update their parts exactly as one optimizer updates everything (a tensor
// boundary at 40 falls inside the second shard); set_moments takes a shard's part.
START_TEST(test_adamw_shards) {
    enum { P = 64, K = 23 };
    bd_param_entry t[2] = {{"w1", 1, {40, 0, 0}, 0, 40, true}, {"rms_att", 1, {24, 0, 0}, 40, 24, false}};
    bd_adamw_cfg cfg = {0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, BD_F32};
    bd_adamw whole, a, b;
    ck_assert_int_eq(bd_adamw_init(&whole, t, 2, P, &cfg), BD_OK);
    ck_assert_int_eq(bd_adamw_init_shard(&a, t, 2, P, &cfg, 0, K), BD_OK);
    ck_assert_int_eq(bd_adamw_init_shard(&b, t, 2, P, &cfg, K, P), BD_OK);
    ck_assert_uint_eq(bd_adamw_moment_bytes(&a), 8 * K);
    float p[P], pa[P], pb[P], g[P];
    unsigned s = 9;
    for (int i = 0; i < P; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = pa[i] = pb[i] = (s >> 8) / 16777216.0f - 0.5f;
    }
    for (int step = 0; step < 4; step++) {
        for (int i = 0; i < P; i++) {
            s = s * 1103515245u + 12345u;
            g[i] = ((s >> 8) / 16777216.0f - 0.5f) * 0.3f;
        }
        double n2 = sqrt(bd_grad_sumsq(g, 0, K) + bd_grad_sumsq(g, K, P));
        ck_assert_close(n2, bd_grad_norm(g, P), 1e-12);
        bd_adamw_step(&whole, p, g, 0.01f);
        bd_adamw_step_norm(&a, pa, g, 0.01f, bd_grad_norm(g, P));
        bd_adamw_step_norm(&b, pb, g, 0.01f, bd_grad_norm(g, P));
    }
    for (int i = 0; i < P; i++) ck_assert(p[i] == (i < K ? pa[i] : pb[i]) && pa[i] != pb[i]);
    ck_assert_mem_eq(b.m, whole.m + K, (P - K) * sizeof(float));
    ck_assert_int_eq(bd_adamw_set_moments(&b, BD_F32, whole.v, whole.m, 2), BD_OK);  // swapped on purpose
    ck_assert_mem_eq(b.m, whole.v + K, (P - K) * sizeof(float));
    bd_adamw_free(&whole), bd_adamw_free(&a), bd_adamw_free(&b);
    ck_assert_int_eq(bd_adamw_init_shard(&whole, t, 2, P, &cfg, K, P + 1), BD_ERR_ARG);
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
    tcase_add_test(tc, test_adamw_bf16_moments);
    tcase_add_test(tc, test_adamw_shards);
    tcase_add_test(tc, test_schedules);
    suite_add_tcase(s, tc);
    return s;
}
