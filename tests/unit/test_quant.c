// Quantizers: values worked by hand (ties, clamping, constant and all-zero groups), the
// straight-through backward worked by hand and by finite differences, BitDistiller's official
// quantizers (autograd in PyTorch, tests/fixtures/quant), threaded vs plain twins, invalid input.
#include <stdio.h>
#include <string.h>

#include "bd_quant.h"
#include "bd_test.h"
#include "bd_threads.h"

static void check_vec(const float *got, const double *want, int n, double tol) {
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= tol, "[%d] = %.9g, expected %.9g", i, got[i], want[i]);
}

START_TEST(test_int_asym_by_hand) {
    // 2 bits (qmax 3): min -1.5, max 1.5 -> s = 3/3 = 1, z = -round(-1.5) = 2 (ties to even).
    // Round(w/s) takes halves away from zero: -1.5 -> -2 (+2 = 0) -> -2;  -0.5 -> -1 (1) -> -1;
    // 0.5 -> 1 (3) -> 1;  1.5 -> 2 (4, clamped to 3) -> (3-2)*1 = 1.
    float w[4] = {-1.5f, -0.5f, 0.5f, 1.5f}, out[4];
    bd_qspec q = {BD_Q_INT, 2, 4};
    ck_assert_int_eq(bd_fakequant_forward_ref(out, w, 1, 4, &q), BD_OK);
    check_vec(out, (double[]){-2, -1, 1, 1}, 4, 0);
    // 3 bits, group larger than the row (one group): [0, 3.5, 7]: s = 1, z = 0, 3.5 -> 4.
    float w3[3] = {0, 3.5f, 7}, o3[3];
    bd_qspec q3 = {BD_Q_INT, 3, 128};
    ck_assert_int_eq(bd_fakequant_forward_ref(o3, w3, 1, 3, &q3), BD_OK);
    check_vec(o3, (double[]){0, 4, 7}, 3, 0);
    // Two groups of 2 in one row, each with its own range: [0, 3 | 10, 13] at 2 bits:
    // group 1 s = 1, z = 0 -> [0, 3]; group 2 s = 1, z = clamp(-10, 0, 3) = 0 -> 10/1 = 10,
    // clamped to 3 -> [3, 3]: asymmetric int cannot reach a range that excludes zero.
    float w4[4] = {0, 3, 10, 13}, o4[4];
    bd_qspec q4 = {BD_Q_INT, 2, 2};
    ck_assert_int_eq(bd_fakequant_forward_ref(o4, w4, 1, 4, &q4), BD_OK);
    check_vec(o4, (double[]){0, 3, 3, 3}, 4, 0);
    // A group size that does not divide the row: groups [0,4) and [4,6) (the short tail).
    // The tail [0, 3] at 2 bits: s = 1, z = 0 -> [0, 3].
    float w6[6] = {-1.5f, -0.5f, 0.5f, 1.5f, 0, 3}, o6[6];
    bd_qspec q6 = {BD_Q_INT, 2, 4};
    ck_assert_int_eq(bd_fakequant_forward_ref(o6, w6, 1, 6, &q6), BD_OK);
    check_vec(o6, (double[]){-2, -1, 1, 1, 0, 3}, 6, 0);
    ck_assert_int_eq(bd_qspec_ngroups(6, 4), 2);
    // Constant group: s = 1e-5/3, z = 0, q = clamp(round(2/s)) = 3 -> 3*s = 1e-5 (the formula's
    // floor on the scale; faithful to BitDistiller). All-zero group stays zero.
    float wc[4] = {2, 2, 0, 0}, oc[4];
    ck_assert_int_eq(bd_fakequant_forward_ref(oc, wc, 1, 4, &q4), BD_OK);
    check_vec(oc, (double[]){1e-5, 1e-5, 0, 0}, 4, 1e-12);
}
END_TEST

START_TEST(test_sym_nf3_ternary_r2q_by_hand) {
    // sym 4 bits (qmax 7): absmax 14 -> s = 2; w/s = -3.5 -> -4, 1.75 -> 2, 0.25 -> 0, 7.
    float w[4] = {-7, 3.5f, 0.5f, 14}, out[4];
    bd_qspec q = {BD_Q_SYM, 4, 4};
    ck_assert_int_eq(bd_fakequant_forward_ref(out, w, 1, 4, &q), BD_OK);
    check_vec(out, (double[]){-8, 4, 0, 14}, 4, 0);
    // nf3: max 1, |min| 2. -2/2 = -1 -> -1 -> -2; -1/2 = -0.5 -> nearest -0.5350 -> -1.0700;
    // 0.5 -> nearest 0.3820 (0.118 away vs 0.123 to 0.6230); 1 -> 1.
    float wn[4] = {-2, -1, 0.5f, 1}, on[4];
    bd_qspec qn = {BD_Q_NF3, 3, 4};
    ck_assert_int_eq(bd_fakequant_forward_ref(on, wn, 1, 4, &qn), BD_OK);
    check_vec(on, (double[]){-2, -2 * 0.5350227355957031, 0.3819939494132996, 1}, 4, 1e-6);
    // ternary per tensor: D = (0.3+0.9+0.05+1.2)/4 = 0.6125; w/(D+1e-5) = 0.49 -> 0,
    // -1.47 -> -1, 0.08 -> 0, 1.96 -> 2 -> clipped to 1.
    float wt[4] = {0.3f, -0.9f, 0.05f, 1.2f}, ot[4];
    bd_qspec qt = {BD_Q_TERNARY, 2, 0};
    ck_assert_int_eq(bd_fakequant_forward_ref(ot, wt, 2, 2, &qt), BD_OK);
    check_vec(ot, (double[]){0, -0.6125, 0, 0.6125}, 4, 1e-6);
    // r2q: z = 3, d = [-2,-1,0,3], a1 = 1.5, r = d - 1.5*sign(d) = [-.5,.5,-1.5,1.5], a2 = 1:
    // wq = 3 + 1.5*sign(d) + sign(r) = [0.5, 2.5, 3.5, 5.5].
    float wr[4] = {1, 2, 3, 6}, orr[4];
    bd_qspec qr = {BD_Q_R2Q, 2, 4};
    ck_assert_int_eq(bd_fakequant_forward_ref(orr, wr, 1, 4, &qr), BD_OK);
    check_vec(orr, (double[]){0.5, 2.5, 3.5, 5.5}, 4, 1e-6);
}
END_TEST

START_TEST(test_group_maths) {
    // The shared group maths (bd_quant.h), by hand: int 2-bit on [-1.5, 1.5] gives s = 1, z = 2
    // and levels = codes [0, 1, 3, 3]; sym 2-bit gives z = 2 (the code of level 0).
    float w[4] = {-1.5f, -0.5f, 0.5f, 1.5f};
    bd_qgroup g = bd_qgroup_int(w, 4, 2);
    ck_assert(g.s == 1 && g.z == 2 && g.qmax == 3 && g.mn == -1.5f && g.mx == 1.5f);
    float lev[4] = {0, 1, 3, 3};
    for (int i = 0; i < 4; i++) ck_assert(bd_qlevel_int(&g, w[i]) == lev[i]);
    g = bd_qgroup_sym(w, 4, 2);
    ck_assert(g.z == 2 && g.qmax == 1 && g.s == 1.5f);
    // r2q on [1, 2, 3, 6]: levels 3 -+ 1.5 -+ 1, codes 2 [w >= m] + [r >= 0] (see below).
    float wr[4] = {1, 2, 3, 6};
    g = bd_qgroup_r2q(wr, 4);
    ck_assert(g.lv[0] == 0.5f && g.lv[1] == 2.5f && g.lv[2] == 3.5f && g.lv[3] == 5.5f);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(bd_qlevel_r2q(&g, wr[i]), i);
    // round() gives -0 for a small negative weight, and sym and ternary keep it: the fake
    // quantizer's output (and a GGUF F32 export of it) has always had that sign.
    float wz[4] = {-0.05f, 1, 0.05f, -1}, o[4];
    bd_qspec qs = {BD_Q_SYM, 4, 4}, qt = {BD_Q_TERNARY, 2, 0};
    ck_assert_int_eq(bd_fakequant_forward_ref(o, wz, 1, 4, &qs), BD_OK);
    ck_assert(o[0] == 0 && signbit(o[0]) && o[2] == 0 && !signbit(o[2]));
    ck_assert_int_eq(bd_fakequant_forward_ref(o, wz, 1, 4, &qt), BD_OK);
    ck_assert(o[0] == 0 && signbit(o[0]) && o[2] == 0 && !signbit(o[2]));
}
END_TEST

START_TEST(test_int_backward_by_hand) {
    // Same group as above: s = 1, z = 2, u = Round(w/s)+z = [0, 1, 3, 4]: the last is clamped.
    // dout = [.1,.2,.3,.4]. Direct path: [.1, .2, .3, 0].
    // dL/ds = .1*(-2+1.5) + .2*(-1+0.5) + .3*(1-0.5) + .4*(3-2) = -.05-.1+.15+.4 = 0.4;
    // s = (max-min)/3: max gets +0.4/3, min gets -0.4/3 -> [.1-.4/3, .2, .3, .4/3].
    float w[4] = {-1.5f, -0.5f, 0.5f, 1.5f}, dout[4] = {0.1f, 0.2f, 0.3f, 0.4f}, dw[4] = {1, 1, 1, 1};
    bd_qspec q = {BD_Q_INT, 2, 4};
    bd_fakequant_backward_ref(dw, dout, w, 1, 4, &q);
    check_vec(dw, (double[]){1.1 - 0.4 / 3, 1.2, 1.3, 1 + 0.4 / 3}, 4, 1e-6);  // accumulates onto 1
    // Identity kinds pass the gradient straight through.
    bd_qspec qs[] = {{BD_Q_SYM, 4, 4}, {BD_Q_TERNARY, 2, 0}, {BD_Q_R2Q, 2, 4}};
    for (int k = 0; k < 3; k++) {
        float d2[4] = {0};
        bd_fakequant_backward_ref(d2, dout, w, 1, 4, &qs[k]);
        check_vec(d2, (double[]){0.1, 0.2, 0.3, 0.4}, 4, 1e-7);
    }
}
END_TEST

START_TEST(test_nf3_backward_by_hand) {
    // [-2, -1, 0.5, 1]: sp = 1, sn = 2; y = [-1, -0.5350 (-0.5 lies in [-0.7675, -0.3910)),
    // 0.3820 (0.5 in [0.2827, 0.5025)), 1]. dout = [.1, .2, .3, .4]. Every weight gets its dout;
    // dL/dsp = .3*(0.3820 - 0.5) + .4*(1 - 1) goes to the max (d|max|/dmax = 1), dL/dsn =
    // .1*(-1 + 1) + .2*(-0.5350 + 0.5) to the min with the sign of d|min|/dmin = -1.
    const double y2 = -0.5350227355957031, y3 = 0.3819939494132996;
    float w[4] = {-2, -1, 0.5f, 1}, dout[4] = {0.1f, 0.2f, 0.3f, 0.4f}, dw[4] = {0};
    bd_qspec q = {BD_Q_NF3, 3, 4};
    bd_fakequant_backward_ref(dw, dout, w, 1, 4, &q);
    double gp = 0.3 * (y3 - 0.5), gn = 0.2 * (y2 + 0.5);
    check_vec(dw, (double[]){0.1 - gn, 0.2, 0.3, 0.4 + gp}, 4, 1e-7);
    // Tied extremes share their scale's gradient, as torch.amax/amin do (clipping makes ties):
    // [-2, -1, 0.5, 1, -2, 1], dout [.1 .. .6]: the same dL/dsp and dL/dsn, halved.
    float wt[6] = {-2, -1, 0.5f, 1, -2, 1}, dt[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, gt[6] = {0};
    bd_qspec qt = {BD_Q_NF3, 3, 6};
    bd_fakequant_backward_ref(gt, dt, wt, 1, 6, &qt);
    check_vec(gt, (double[]){0.1 - gn / 2, 0.2, 0.3, 0.4 + gp / 2, 0.5 - gn / 2, 0.6 + gp / 2}, 6, 1e-7);
    // A group of one sign: the absent half's scale sits at its floor and gets nothing.
    float wp[4] = {0.5f, 1, 0.25f, 0.75f}, gpos[4] = {0};
    bd_fakequant_backward_ref(gpos, dout, wp, 1, 4, &q);
    double gp1 = 0.1 * (y3 - 0.5) + 0.3 * (0.1833375245332718 - 0.25) + 0.4 * (0.6229856610298157 - 0.75);
    check_vec(gpos, (double[]){0.1, 0.2 + gp1, 0.3, 0.4}, 4, 1e-7);
}
END_TEST

// The official NF3 quantizer's straight-through surrogate around w, in double: weight i becomes
// s_i(v) * (v_i/s_i(v) + r_i), r_i = y_i - w_i/s_i(w) held fixed (the detached (y - q)), with
// s_i(v) the max of v's group for w_i >= 0 and -min below (the official |max|, |min| when
// max > 0 > min). Its derivative at v = w is the official gradient.
static double nf3_surrogate(const double *v, const float *w, const float *wq, const double *dout, int n) {
    double mx = v[0], mn = v[0], mx0 = w[0], mn0 = w[0], L = 0;
    for (int i = 1; i < n; i++) {
        mx = fmax(mx, v[i]), mn = fmin(mn, v[i]);
        mx0 = fmax(mx0, w[i]), mn0 = fmin(mn0, w[i]);
    }
    for (int i = 0; i < n; i++) {
        double s = w[i] >= 0 ? mx : -mn, s0 = w[i] >= 0 ? mx0 : -mn0;
        double r = wq[i] / s0 - w[i] / s0;  // y - q
        L += dout[i] * (v[i] + s * r);
    }
    return L;
}

START_TEST(test_nf3_backward_fd) {
    // Central finite differences (double, h = 1e-6) of the surrogate above, for every weight of
    // 24 random groups of 32 (distinct extremes, so max and min are smooth at w): the finite
    // differences find by themselves which weights move a scale and by how much. The identity
    // backward of earlier bd versions misses the scale terms at each group's max and min.
    enum { G = 32, R = 24 };
    float w[R * G], wq[R * G], dout[R * G], dw[R * G] = {0};
    unsigned s = 11;
    for (int i = 0; i < R * G; i++) {
        float u = 0;
        for (int k = 0; k < 4; k++) {
            s = s * 1103515245u + 12345u;
            u += (s >> 8) / 16777216.0f - 0.5f;
        }
        w[i] = 0.05f * u + (i / G == 5 ? 0.1f : i / G == 6 ? -0.1f : 0);  // rows 5 and 6 one-signed
        s = s * 1103515245u + 12345u;
        dout[i] = (s >> 8) / 16777216.0f - 0.5f;
    }
    ck_assert(w[5 * G] > 0 && w[6 * G] < 0);
    bd_qspec q = {BD_Q_NF3, 3, G};
    ck_assert_int_eq(bd_fakequant_forward_ref(wq, w, R, G, &q), BD_OK);
    bd_fakequant_backward_ref(dw, dout, w, R, G, &q);
    double worst = 0, scale_part = 0;
    for (int r = 0; r < R; r++) {
        const float *wr = w + r * G, *qr = wq + r * G;
        double v[G], d[G];
        for (int i = 0; i < G; i++) v[i] = wr[i], d[i] = dout[r * G + i];
        for (int j = 0; j < G; j++) {
            const double h = 1e-6;
            v[j] = wr[j] + h;
            double up = nf3_surrogate(v, wr, qr, d, G);
            v[j] = wr[j] - h;
            double down = nf3_surrogate(v, wr, qr, d, G);
            v[j] = wr[j];
            double fd = (up - down) / (2 * h), got = dw[r * G + j];
            worst = fmax(worst, fabs(got - fd));
            scale_part = fmax(scale_part, fabs(fd - d[j]));
            ck_assert_msg(fabs(got - fd) <= 1e-5, "row %d weight %d: backward %.9g, finite differences %.9g", r, j, got,
                          fd);
        }
    }
    ck_assert_msg(scale_part > 0.05, "the scale terms are too small to test (%g)", scale_part);
    ck_assert(worst <= 1e-5);
}
END_TEST

START_TEST(test_rounding_ties) {
    // Round (int levels): sign(x)*floor(|x|+0.5) in f32, BitDistiller's QAT rounding: halves away
    // from zero, and 0.49999997f (the float below 0.5) to 1 as the official expression does.
    ck_assert(bd_qround(2.5f) == 3 && bd_qround(-2.5f) == -3 && bd_qround(0.5f) == 1 && bd_qround(-0.5f) == -1);
    ck_assert(bd_qround(1.5f) == 2 && bd_qround(-1.5f) == -2 && bd_qround(1.4999999f) == 1);
    ck_assert(bd_qround(0.49999997f) == 1 && bd_qround(-0.49999997f) == -1 && bd_qround(0.4999999f) == 0);
    ck_assert(bd_qround(-0.3f) == 0 && signbit(bd_qround(-0.3f)) && bd_qround(0) == 0);
    // The zero point keeps torch.round (halves to even): 2 bits on [-2.5, 0.5] gives s = 1 and
    // z = -round(-2.5) = 2 (not 3); then -2.5 -> -3 + 2 -> clamped to 0 -> -2; -1.5 -> -2 + 2 = 0
    // -> -2; -0.5 -> -1 + 2 = 1 -> -1; 0.5 -> 1 + 2 = 3 -> 1.
    float w[4] = {-2.5f, -1.5f, -0.5f, 0.5f}, o[4];
    bd_qgroup g = bd_qgroup_int(w, 4, 2);
    ck_assert(g.s == 1 && g.z == 2);
    bd_qspec q = {BD_Q_INT, 2, 4};
    ck_assert_int_eq(bd_fakequant_forward_ref(o, w, 1, 4, &q), BD_OK);
    check_vec(o, (double[]){-2, -2, -1, 1}, 4, 0);
    // sym and ternary keep torch.round: 4-bit sym with s = 1 (absmax 7): 2.5 -> 2, -0.5 -> -0.
    float ws[4] = {2.5f, -0.5f, 7, 1.5f}, os[4];
    bd_qspec qs = {BD_Q_SYM, 4, 4};
    ck_assert_int_eq(bd_fakequant_forward_ref(os, ws, 1, 4, &qs), BD_OK);
    check_vec(os, (double[]){2, 0, 7, 2}, 4, 0);
    // NF3 at the official thresholds (rounded to f32; sp = sn = 1): the threshold itself snaps
    // to the upper value, the float below it to the lower one. 0.8114928f lies below the exact
    // midpoint of 0.6230 and 1, so a nearest-value rule would give 0.6230.
    float e = (float)0.8114928305149078, en = (float)-0.39097706973552704;
    float wn[6] = {1, -1, e, nextafterf(e, 0), en, nextafterf(en, -1)}, on[6];
    bd_qspec qn = {BD_Q_NF3, 3, 6};
    ck_assert_int_eq(bd_fakequant_forward_ref(on, wn, 1, 6, &qn), BD_OK);
    ck_assert((double)e < (1 + 0.6229856610298157) / 2);
    check_vec(on, (double[]){1, -1, 1, bd_nf3_grid[6], bd_nf3_grid[2], bd_nf3_grid[1]}, 6, 0);
}
END_TEST

// tests/fixtures/quant/official_quant_ref.txt (from official_quant_ref.py: BitDistiller's
// SteN2F3Quantizer and SteInt2/3AsymQuantizer in PyTorch, gradients by autograd).
static const char *quant_fixture(void) {
    static char buf[1024];
    const char *root = getenv("BD_FIXTURES");
    snprintf(buf, sizeof buf, "%s/quant/official_quant_ref.txt", root && *root ? root : "tests/fixtures");
    return buf;
}

static void read_floats(FILE *f, const char *label, float *x, int n) {
    char word[16];
    ck_assert_int_eq(fscanf(f, "%15s", word), 1);
    ck_assert_str_eq(word, label);
    for (int i = 0; i < n; i++) ck_assert_int_eq(fscanf(f, "%f", &x[i]), 1);
}

START_TEST(test_official_reference) {
    // Forward values bit for bit (same f32 operations as the official code); gradients within
    // 4e-6 relative to the group's largest (torch sums in f32, bd in double). Groups of 32 and 64
    // on Gaussian weights, after clipping (tied maxima and minima), one-signed groups, NF3 at its
    // thresholds, int at rounding ties.
    FILE *f = fopen(quant_fixture(), "r");
    ck_assert_msg(f != NULL, "cannot open %s", quant_fixture());
    char line[256];
    int cases = 0, nf3_cases = 0;
    double worst = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char kind[16], name[64];
        int bits, group, rows, cols;
        ck_assert_int_eq(sscanf(line, "case %15s %d %d %d %d %63s", kind, &bits, &group, &rows, &cols, name), 6);
        int n = rows * cols;
        float *w = malloc(sizeof(float) * n), *dout = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n),
              *grad = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n), *dw = calloc(n, sizeof(float)),
              *dw2 = calloc(n, sizeof(float));
        read_floats(f, "w", w, n);
        read_floats(f, "dout", dout, n);
        read_floats(f, "out", want, n);
        read_floats(f, "grad", grad, n);
        bd_qspec q = {strcmp(kind, "nf3") == 0 ? BD_Q_NF3 : BD_Q_INT, bits, group};
        ck_assert_int_eq(bd_fakequant_forward_ref(out, w, rows, cols, &q), BD_OK);
        for (int i = 0; i < n; i++)
            ck_assert_msg(out[i] == want[i], "%s %d-bit g%d %s [%d]: w %.9g -> %.9g, official %.9g", kind, bits, group,
                          name, i, w[i], out[i], want[i]);
        bd_fakequant_backward_ref(dw, dout, w, rows, cols, &q);
        bd_set_num_threads(2);
        bd_fakequant_backward(dw2, dout, w, rows, cols, &q);
        bd_set_num_threads(1);
        ck_assert_mem_eq(dw, dw2, sizeof(float) * n);
        for (int g0 = 0; g0 < n; g0 += group) {
            double big = 0;
            for (int i = g0; i < g0 + group; i++) big = fmax(big, fabs(grad[i]));
            for (int i = g0; i < g0 + group; i++) {
                double err = fabs(dw[i] - grad[i]) / big;
                worst = fmax(worst, err);
                ck_assert_msg(err <= 4e-6, "%s %d-bit g%d %s [%d]: gradient %.9g, official %.9g", kind, bits, group,
                              name, i, dw[i], grad[i]);
            }
        }
        cases++;
        nf3_cases += q.kind == BD_Q_NF3;
        free(w), free(dout), free(want), free(grad), free(out), free(dw), free(dw2);
    }
    fclose(f);
    ck_assert_int_eq(cases, 16);
    ck_assert_int_eq(nf3_cases, 6);
}
END_TEST

START_TEST(test_threaded_matches_ref) {
    int OC = 37, C = 96;
    float *w = malloc(sizeof(float) * OC * C), *a = malloc(sizeof(float) * OC * C), *b = malloc(sizeof(float) * OC * C);
    float *g = malloc(sizeof(float) * OC * C), *da = calloc((size_t)OC * C, sizeof(float)),
          *db = calloc((size_t)OC * C, sizeof(float));
    unsigned s = 1;
    for (int i = 0; i < OC * C; i++) {
        s = s * 1103515245u + 12345u;
        w[i] = ((s >> 8) / 16777216.0f - 0.5f) * 0.2f;
        s = s * 1103515245u + 12345u;
        g[i] = (s >> 8) / 16777216.0f - 0.5f;
    }
    bd_qspec qs[] = {{BD_Q_INT, 2, 32}, {BD_Q_INT, 3, 96}, {BD_Q_INT, 4, 0},     {BD_Q_SYM, 8, 32},
                     {BD_Q_INT, 2, 40}, {BD_Q_NF3, 3, 32}, {BD_Q_TERNARY, 2, 0}, {BD_Q_R2Q, 2, 48}};
    bd_set_num_threads(2);
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        ck_assert_int_eq(bd_fakequant_forward_ref(a, w, OC, C, &qs[k]), BD_OK);
        ck_assert_int_eq(bd_fakequant_forward(b, w, OC, C, &qs[k]), BD_OK);
        ck_assert_mem_eq(a, b, sizeof(float) * OC * C);
        bd_fakequant_backward_ref(da, g, w, OC, C, &qs[k]);
        bd_fakequant_backward(db, g, w, OC, C, &qs[k]);
        ck_assert_mem_eq(da, db, sizeof(float) * OC * C);
        // Quantized values take at most 2^bits distinct values per group (ternary: 3).
        int G0 = bd_qspec_group(&qs[k], C), maxlev = qs[k].kind == BD_Q_TERNARY ? 3 : 1 << qs[k].bits;
        for (int r = 0; r < OC; r++)
            for (int g0 = 0; g0 < C; g0 += G0) {
                int G = C - g0 < G0 ? C - g0 : G0;
                float lev[256];
                int nl = 0;
                for (int i = 0; i < G; i++) {
                    float v = b[r * C + g0 + i];
                    int found = 0;
                    for (int l = 0; l < nl; l++) found |= lev[l] == v;
                    if (!found && nl < 256) lev[nl++] = v;
                }
                ck_assert_int_le(nl, maxlev);
            }
    }
    bd_set_num_threads(1);
    free(w);
    free(a);
    free(b);
    free(g);
    free(da);
    free(db);
}
END_TEST

START_TEST(test_rtn_error_shrinks_with_bits) {
    // Mean squared error of int RTN on Gaussian-like weights falls about 4x per extra bit.
    int n = 4096;
    float *w = malloc(sizeof(float) * n), *o = malloc(sizeof(float) * n);
    unsigned s = 7;
    for (int i = 0; i < n; i++) {
        float u = 0;
        for (int k = 0; k < 4; k++) {
            s = s * 1103515245u + 12345u;
            u += (s >> 8) / 16777216.0f - 0.5f;
        }
        w[i] = u;
    }
    double prev = 1e9;
    for (int bits = 2; bits <= 8; bits++) {
        bd_qspec q = {BD_Q_INT, bits, 64};
        ck_assert_int_eq(bd_fakequant_forward(o, w, 1, n, &q), BD_OK);
        double mse = 0;
        for (int i = 0; i < n; i++) mse += (o[i] - w[i]) * (o[i] - w[i]);
        mse /= n;
        ck_assert_msg(mse < prev / 2.5, "bits %d: mse %g not well below %g", bits, mse, prev);
        prev = mse;
    }
    free(w);
    free(o);
}
END_TEST

START_TEST(test_invalid_input) {
    float w[8] = {0, 1, 2, NAN, 4, 5, 6, 7}, o[8];
    bd_qspec q = {BD_Q_INT, 2, 4};
    ck_assert_int_eq(bd_fakequant_forward(o, w, 2, 4, &q), BD_ERR_VALUE);
    w[3] = INFINITY;
    ck_assert_int_eq(bd_fakequant_forward_ref(o, w, 2, 4, &q), BD_ERR_VALUE);
    w[3] = 3;
    bd_qspec bad = {BD_Q_INT, 9, 4};
    char why[200];
    ck_assert_int_eq(bd_qspec_check(&bad, 8, why, sizeof why), BD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(why, "bits"));
    ck_assert_int_eq(bd_fakequant_forward(o, w, 1, 8, &bad), BD_ERR_ARG);
    bd_qspec nf = {BD_Q_NF3, 2, 4};
    ck_assert_int_eq(bd_qspec_check(&nf, 8, NULL, 0), BD_ERR_ARG);
    ck_assert_int_eq(bd_qkind_parse("nf3"), BD_Q_NF3);
    ck_assert_int_eq(bd_qkind_parse("int4"), -1);
}
END_TEST

START_TEST(test_clip_apply) {
    // Two rows, group 2: ranges [-1,1],[0,0.5] / [-2,2],[-0.1,0.1].
    float w[8] = {-3, 3, -1, 1, -3, 3, -1, 1};
    float mx[4] = {1, 0.5f, 2, 0.1f}, mn[4] = {-1, 0, -2, -0.1f};
    bd_clip_apply(w, 2, 4, 2, mx, mn);
    check_vec(w, (double[]){-1, 1, 0, 0.5, -2, 2, -0.1, 0.1}, 8, 1e-7);
}
END_TEST

Suite *suite_quant(void) {
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_int_asym_by_hand);
    tcase_add_test(tc, test_sym_nf3_ternary_r2q_by_hand);
    tcase_add_test(tc, test_group_maths);
    tcase_add_test(tc, test_int_backward_by_hand);
    tcase_add_test(tc, test_nf3_backward_by_hand);
    tcase_add_test(tc, test_nf3_backward_fd);
    tcase_add_test(tc, test_rounding_ties);
    tcase_add_test(tc, test_official_reference);
    tcase_add_test(tc, test_threaded_matches_ref);
    tcase_add_test(tc, test_rtn_error_shrinks_with_bits);
    tcase_add_test(tc, test_invalid_input);
    tcase_add_test(tc, test_clip_apply);
    suite_add_tcase(s, tc);
    return s;
}
