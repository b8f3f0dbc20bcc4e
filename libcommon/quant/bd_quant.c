// Fake quantizers and their straight-through backward passes. See bd_quant.h for the
// formulas. Dimension key: OC rows (output channels), C row length, G group size, n = G.
#include "bd_quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bd_kquant.h"
#include "bd_threads.h"

const float bd_nf3_grid[8] = {-1.0f,
                              -0.5350227355957031f,
                              -0.2469314038753510f,
                              0.0f,
                              0.1833375245332718f,
                              0.3819939494132996f,
                              0.6229856610298157f,
                              1.0f};

// The official thresholds are Python floats (doubles) compared with an f32 tensor, that is,
// rounded to f32: (float) of the double, as torch converts them.
const float bd_nf3_edge[7] = {(float)-0.7675113677978516, (float)-0.39097706973552704, (float)-0.1234657019376755,
                              (float)0.0916687622666359,  (float)0.2826657369732857,   (float)0.5024898052215576,
                              (float)0.8114928305149078};

static const char *qnames[BD_Q_COUNT] = {"none", "int", "sym", "nf3", "ternary", "r2q", "q2_K", "q3_K", "q4_K"};

const char *bd_qkind_name(bd_qkind k) { return (unsigned)k < BD_Q_COUNT ? qnames[k] : "?"; }

int bd_qkind_parse(const char *name) {
    for (int i = 0; i < BD_Q_COUNT; i++)
        if (strcmp(name, qnames[i]) == 0) return i;
    return -1;
}

int bd_qspec_group(const bd_qspec *q, int C) {
    if (bd_qkind_is_kquant(q->kind)) return BD_QK_K;
    return q->group <= 0 || q->group >= C ? C : q->group;
}

int bd_qspec_ngroups(int C, int G) { return (C + G - 1) / G; }

int bd_qspec_check(const bd_qspec *q, int C, char *why, size_t why_size) {
    const char *bad = NULL;
    switch (q->kind) {
    case BD_Q_NONE: return BD_OK;
    case BD_Q_INT:
    case BD_Q_SYM:
        if (q->bits < 2 || q->bits > 8) bad = "bits must be 2..8";
        break;
    case BD_Q_NF3:
        if (q->bits != 3) bad = "nf3 is a 3-bit grid (--bits 3)";
        break;
    case BD_Q_TERNARY:
        if (q->bits != 2) bad = "ternary weights take --bits 2 (1.58 bits stored in 2)";
        break;
    case BD_Q_R2Q:
        if (q->bits != 2) bad = "r2q is a 2-bit quantizer (--bits 2)";
        break;
    case BD_Q_Q2_K:
    case BD_Q_Q3_K:
    case BD_Q_Q4_K: {
        static const int kbits[] = {[BD_Q_Q2_K] = 2, [BD_Q_Q3_K] = 3, [BD_Q_Q4_K] = 4};
        if (q->bits != kbits[q->kind])
            bad = q->kind == BD_Q_Q2_K   ? "q2_K takes --bits 2"
                  : q->kind == BD_Q_Q3_K ? "q3_K takes --bits 3"
                                         : "q4_K takes --bits 4";
        else if (q->group > 0 && q->group != BD_QK_K)
            bad = "K-quants have fixed 256-weight super-blocks (no --group)";
        else if (C > 0 && C % BD_QK_K) {
            if (why)
                snprintf(why, why_size,
                         "%s needs rows of a multiple of 256 weights, not %d (int, sym, nf3 and r2q fit)",
                         qnames[q->kind], C);
            return BD_ERR_ARG;
        }
        break;
    }
    default: bad = "unknown quantizer";
    }
    if (!bad && C <= 0) bad = "row length must be positive";
    if (!bad) return BD_OK;
    if (why) snprintf(why, why_size, "%s (row length %d, group %d)", bad, C, q->group);
    return BD_ERR_ARG;
}

// ---- one group ----------------------------------------------------------------------------------
// The parameters here and the levels of bd_quant.h are the packer's too (bd_pk_*.c).

static void minmax(bd_qgroup *g, const float *w, int n) {
    float a = w[0], b = w[0];
    for (int i = 1; i < n; i++) {
        if (w[i] < a) a = w[i];
        if (w[i] > b) b = w[i];
    }
    g->mn = a;
    g->mx = b;
}

bd_qgroup bd_qgroup_int(const float *w, int n, int bits) {
    bd_qgroup g = {0};
    minmax(&g, w, n);
    g.qmax = (float)((1 << bits) - 1);
    g.s = fmaxf(g.mx - g.mn, BD_QSCALE_MIN) / g.qmax;
    g.z = bd_qclampf(-rintf(g.mn / g.s), 0, g.qmax);
    return g;
}

bd_qgroup bd_qgroup_sym(const float *w, int n, int bits) {
    bd_qgroup g = {0};
    float amax = 0;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(w[i]));
    g.qmax = (float)((1 << (bits - 1)) - 1);
    g.s = fmaxf(amax, BD_QSCALE_MIN) / g.qmax;
    g.z = (float)(1 << (bits - 1));
    return g;
}

bd_qgroup bd_qgroup_nf3(const float *w, int n) {
    bd_qgroup g = {0};
    minmax(&g, w, n);
    g.sp = fmaxf(g.mx, BD_QSCALE_MIN);
    g.sn = fmaxf(-g.mn, BD_QSCALE_MIN);
    return g;
}

bd_qgroup bd_qgroup_r2q(const float *w, int n) {
    bd_qgroup g = {0};
    double m = 0, a1 = 0, a2 = 0;
    for (int i = 0; i < n; i++) m += w[i];
    m /= n;
    for (int i = 0; i < n; i++) a1 += fabs(w[i] - m);
    a1 /= n;
    for (int i = 0; i < n; i++) {
        double d = w[i] - m;
        a2 += fabs(d - a1 * bd_qsign((float)d));
    }
    a2 /= n;
    g.m = m;
    g.a1 = a1;
    for (int c = 0; c < 4; c++) g.lv[c] = (float)(m + a1 * (c & 2 ? 1.0 : -1.0) + a2 * (c & 1 ? 1.0 : -1.0));
    return g;
}

double bd_ternary_scale(const float *w, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs(w[i]);
    return n ? s / (double)n : 0;
}

static void int_group(float *out, const float *w, int n, int bits) {
    bd_qgroup g = bd_qgroup_int(w, n, bits);
    for (int i = 0; i < n; i++) out[i] = bd_qvalue_affine(bd_qlevel_int(&g, w[i]), g.z, g.s);
}

// The backward passes below are autograd's on BitDistiller's QAT quantizers (bd_quant.h).
static void int_group_backward(float *dw, const float *dout, const float *w, int n, int bits) {
    bd_qgroup g = bd_qgroup_int(w, n, bits);
    float s = g.s, z = g.z, qmax = g.qmax, range = g.mx - g.mn;
    double gs = 0;  // dL/ds
    int cnt_mx = 0, cnt_mn = 0;
    for (int i = 0; i < n; i++) {
        float r = bd_qround(w[i] / s), u = r + z;
        if (u >= 0 && u <= qmax) {  // inside: straight through, and d(r*s)/ds = r - w/s
            dw[i] += dout[i];
            gs += (double)dout[i] * (double)(r - w[i] / s);
        } else {  // clamped: only the scale moves the output
            gs += (double)dout[i] * (double)(bd_qclampf(u, 0, qmax) - z);
        }
        cnt_mx += w[i] == g.mx;
        cnt_mn += w[i] == g.mn;
    }
    // Below the floor the scale is constant (torch's clamp(min=1e-5) passes the gradient from
    // the floor up, as here).
    if (range < BD_QSCALE_MIN) return;
    // s = (max - min)/qmax; amax/amin share the gradient among tied elements.
    float gmx = (float)(gs / qmax / cnt_mx), gmn = (float)(gs / qmax / cnt_mn);
    for (int i = 0; i < n; i++) {
        if (w[i] == g.mx) dw[i] += gmx;
        if (w[i] == g.mn) dw[i] -= gmn;
    }
}

// NF3: out = y*sp for w >= 0 and y*sn below, y the snapped value of w/sp (w/sn), sp = |max|,
// sn = |min|. The snap passes the gradient straight through (y + (y - q).detach() with q = w/s),
// so d out/dw = 1 for the weight itself and d out/ds = y - w/s for its half's scale; sp and sn
// move with the group's max and min (d|max|/dmax = +1 for max > 0, d|min|/dmin = -1 for min < 0).
// A weight of the other sign contributes nothing to a scale (its x_pos or x_neg is 0). A scale at
// its 1e-5 floor (a group with no weight above 1e-5, or none below -1e-5) gets no gradient; the
// official code has no floor (it gives NaN for a group whose max or min is exactly 0).
static void nf3_group_backward(float *dw, const float *dout, const float *w, int n) {
    bd_qgroup g = bd_qgroup_nf3(w, n);
    double gp = 0, gn = 0;  // dL/dsp, dL/dsn
    int cnt_mx = 0, cnt_mn = 0;
    for (int i = 0; i < n; i++) {
        dw[i] += dout[i];
        float y = bd_nf3_grid[bd_qlevel_nf3(&g, w[i])];
        if (w[i] >= 0)
            gp += (double)dout[i] * (double)(y - w[i] / g.sp);
        else
            gn += (double)dout[i] * (double)(y - w[i] / g.sn);
        cnt_mx += w[i] == g.mx;
        cnt_mn += w[i] == g.mn;
    }
    bool dp = g.mx >= BD_QSCALE_MIN, dn = -g.mn >= BD_QSCALE_MIN;  // sp = max, sn = -min (not floored)
    float gmx = dp ? (float)(gp / cnt_mx) : 0, gmn = dn ? (float)(gn / cnt_mn) : 0;
    for (int i = 0; i < n; i++) {
        if (w[i] == g.mx) dw[i] += gmx;
        if (w[i] == g.mn) dw[i] -= gmn;
    }
}

static void sym_group(float *out, const float *w, int n, int bits) {
    bd_qgroup g = bd_qgroup_sym(w, n, bits);
    for (int i = 0; i < n; i++) out[i] = bd_qlevel_sym(&g, w[i]) * g.s;
}

static void nf3_group(float *out, const float *w, int n) {
    bd_qgroup g = bd_qgroup_nf3(w, n);
    for (int i = 0; i < n; i++) out[i] = bd_qvalue_nf3(bd_qlevel_nf3(&g, w[i]), g.sp, g.sn);
}

static void r2q_group(float *out, const float *w, int n) {
    bd_qgroup g = bd_qgroup_r2q(w, n);
    for (int i = 0; i < n; i++) out[i] = g.lv[bd_qlevel_r2q(&g, w[i])];
}

static void ternary_row(float *out, const float *w, int n, float D) {
    for (int i = 0; i < n; i++) out[i] = D * bd_qlevel_ternary(w[i], D);
}

// A K-quant super-block: quantized to llama.cpp's block, then dequantized as ggml does.
static void kquant_block(float *out, const float *w, bd_qkind kind) {
    if (kind == BD_Q_Q2_K) {
        bd_block_q2_K b;
        bd_quantize_block_q2_K(w, &b);
        bd_dequantize_block_q2_K(&b, out);
    } else if (kind == BD_Q_Q3_K) {
        bd_block_q3_K b;
        bd_quantize_block_q3_K(w, &b);
        bd_dequantize_block_q3_K(&b, out);
    } else {
        bd_block_q4_K b;
        bd_quantize_block_q4_K(w, &b);
        bd_dequantize_block_q4_K(&b, out);
    }
}

static bool all_finite(const float *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i])) return false;
    return true;
}

void bd_quantize_group(float *out, const float *w, int n, const bd_qspec *q) {
    switch (q->kind) {
    case BD_Q_INT: int_group(out, w, n, q->bits); break;
    case BD_Q_SYM: sym_group(out, w, n, q->bits); break;
    case BD_Q_NF3: nf3_group(out, w, n); break;
    case BD_Q_R2Q: r2q_group(out, w, n); break;
    case BD_Q_TERNARY: ternary_row(out, w, n, (float)bd_ternary_scale(w, (size_t)n)); break;
    case BD_Q_Q2_K:
    case BD_Q_Q3_K:
    case BD_Q_Q4_K:
        if (n == BD_QK_K) {      // always, for a spec bd_qspec_check accepts
            float tmp[BD_QK_K];  // out may alias w
            kquant_block(tmp, w, q->kind);
            memcpy(out, tmp, sizeof tmp);
            break;
        }
        // fall through
    default: memmove(out, w, (size_t)n * sizeof(float));
    }
}

// ---- whole matrices -----------------------------------------------------------------------

typedef struct {
    float *out;
    const float *w, *dout;
    int C, G;
    const bd_qspec *q;
    float D;
} quant_job;

// Groups are consecutive runs of G weights; the last one of a row may be shorter.
static int group_len(const quant_job *j, int g) { return j->C - g < j->G ? j->C - g : j->G; }

static void forward_rows(const quant_job *j, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        const float *w = j->w + (size_t)r * j->C;
        float *out = j->out + (size_t)r * j->C;
        if (j->q->kind == BD_Q_TERNARY) {
            ternary_row(out, w, j->C, j->D);
            continue;
        }
        for (int g = 0; g < j->C; g += j->G) bd_quantize_group(out + g, w + g, group_len(j, g), j->q);
    }
}

// sym, ternary and r2q pass the gradient straight through unchanged. BitDistiller trains only
// with SteN2F3Quantizer and SteInt2AsymQuantizer (quantization/qlinear.py); its symmetric
// branch (pseudo_quantize_tensor with zero_point=False, "we actually never used this") is a
// post-training path that rounds with torch.round, whose gradient is zero, so it has no
// straight-through gradient, detached scale or not, to match. Ternary (BitNet) and r2q are not
// BitDistiller's.
static void backward_rows(const quant_job *j, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        size_t off = (size_t)r * j->C;
        if (j->q->kind == BD_Q_INT) {
            for (int g = 0; g < j->C; g += j->G)
                int_group_backward(j->out + off + g, j->dout + off + g, j->w + off + g, group_len(j, g), j->q->bits);
        } else if (j->q->kind == BD_Q_NF3) {
            for (int g = 0; g < j->C; g += j->G)
                nf3_group_backward(j->out + off + g, j->dout + off + g, j->w + off + g, group_len(j, g));
        } else {
            for (int i = 0; i < j->C; i++) j->out[off + i] += j->dout[off + i];
        }
    }
}

static void forward_chunk(void *ctx, int r0, int r1) { forward_rows(ctx, r0, r1); }
static void backward_chunk(void *ctx, int r0, int r1) { backward_rows(ctx, r0, r1); }

static int prepare(quant_job *j, float *out, const float *w, const float *dout, int OC, int C, const bd_qspec *q) {
    if (OC <= 0 || bd_qspec_check(q, C, NULL, 0) < 0) return BD_ERR_ARG;
    *j = (quant_job){out, w, dout, C, bd_qspec_group(q, C), q, 0};
    if (q->kind == BD_Q_TERNARY) j->D = (float)bd_ternary_scale(w, (size_t)OC * (size_t)C);
    return BD_OK;
}

int bd_fakequant_forward_ref(float *wq, const float *w, int OC, int C, const bd_qspec *q) {
    quant_job j;
    int rc = prepare(&j, wq, w, NULL, OC, C, q);
    if (rc < 0) return rc;
    if (!all_finite(w, (size_t)OC * (size_t)C)) return BD_ERR_VALUE;
    forward_rows(&j, 0, OC);
    return BD_OK;
}

int bd_fakequant_forward(float *wq, const float *w, int OC, int C, const bd_qspec *q) {
    quant_job j;
    int rc = prepare(&j, wq, w, NULL, OC, C, q);
    if (rc < 0) return rc;
    if (!all_finite(w, (size_t)OC * (size_t)C)) return BD_ERR_VALUE;
    bd_parallel_for(OC, 1 + 16384 / C, forward_chunk, &j);
    return BD_OK;
}

void bd_fakequant_backward_ref(float *dw, const float *dwq, const float *w, int OC, int C, const bd_qspec *q) {
    quant_job j;
    if (prepare(&j, dw, w, dwq, OC, C, q) < 0) return;
    backward_rows(&j, 0, OC);
}

void bd_fakequant_backward(float *dw, const float *dwq, const float *w, int OC, int C, const bd_qspec *q) {
    quant_job j;
    if (prepare(&j, dw, w, dwq, OC, C, q) < 0) return;
    bd_parallel_for(OC, 1 + 16384 / C, backward_chunk, &j);
}

void bd_clip_apply(float *w, int OC, int C, int G, const float *mx, const float *mn) {
    int ng = bd_qspec_ngroups(C, G);
    for (int r = 0; r < OC; r++)
        for (int i = 0; i < C; i++) {
            size_t k = (size_t)r * ng + i / G;
            float *x = &w[(size_t)r * C + i];
            *x = bd_qclampf(*x, mn[k], mx[k]);
        }
}
