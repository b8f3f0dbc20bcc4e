// Packed block formats: traits, reference quantize/dequantize of rows, packing whole
// matrices, validation. Dimension key: C row length, G group, GP padded group, NG groups per
// row, OC rows. The quantizer arithmetic repeats bd_quant.c step by step (same float
// operations in the same order): that is what makes unpacking exact.
#include "bd_packed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCALE_MIN 1e-5f     // as bd_quant.c
#define TERNARY_EPS 1e-5f   // as bd_quant.c

const bd_pk_traits bd_pk_traits_table[BD_PK_COUNT] = {
    [BD_PK_F32] = {"f32", 0, 32, false},
    [BD_PK_Q2] = {"q2", 8, 2, true},
    [BD_PK_Q3] = {"q3", 8, 3, true},
    [BD_PK_Q8] = {"q8", 8, 8, true},
    [BD_PK_NF3] = {"nf3", 8, 3, false},
    [BD_PK_R2Q] = {"r2q", 16, 2, false},
    [BD_PK_TQ2] = {"tq2", 0, 2, false},
};

int bd_pk_type_parse(const char *name) {
    for (int i = 0; i < BD_PK_COUNT; i++)
        if (strcmp(name, bd_pk_traits_table[i].name) == 0) return i;
    return -1;
}

int bd_pk_type_for(const bd_qspec *q) {
    switch (q->kind) {
    case BD_Q_NONE: return BD_PK_F32;
    case BD_Q_INT:
    case BD_Q_SYM: return q->bits == 2 ? BD_PK_Q2 : q->bits == 3 ? BD_PK_Q3 : q->bits <= 8 ? BD_PK_Q8 : -1;
    case BD_Q_NF3: return BD_PK_NF3;
    case BD_Q_R2Q: return BD_PK_R2Q;
    case BD_Q_TERNARY: return BD_PK_TQ2;
    default: return -1;
    }
}

int bd_pk_geometry(bd_pk_tensor *t, bd_pk_type type, int rows, int cols, int group) {
    memset(t, 0, sizeof *t);
    if ((unsigned)type >= BD_PK_COUNT || rows <= 0 || cols <= 0) return BD_ERR_ARG;
    const bd_pk_traits *tr = &bd_pk_traits_table[type];
    t->type = type;
    t->rows = rows;
    t->cols = cols;
    if (type == BD_PK_F32 || type == BD_PK_TQ2 || group <= 0 || group >= cols) group = cols;
    t->group = group;
    t->gpad = (group + BD_QK - 1) / BD_QK * BD_QK;
    t->ngroups = (cols + group - 1) / group;
    if (type == BD_PK_F32) {
        t->gpad = cols;
        t->block_bytes = (size_t)cols * 4;
    } else {
        t->block_bytes = (size_t)tr->head_bytes + (size_t)t->gpad * (size_t)tr->code_bits / 8;
    }
    t->row_bytes = (size_t)t->ngroups * t->block_bytes;
    return BD_OK;
}

int bd_pk_alloc(bd_pk_tensor *t) {
    size_t n = t->row_bytes * (size_t)t->rows;
    n = (n + 64 + 63) / 64 * 64;  // 64 spare bytes: SIMD loads may read a little past the last block
    t->data = aligned_alloc(64, n);
    if (!t->data) return BD_ERR_NOMEM;
    memset(t->data, 0, n);
    return BD_OK;
}

void bd_pk_free(bd_pk_tensor *t) {
    free(t->data);
    t->data = NULL;
}

// ---- code bits ------------------------------------------------------------------------------

static void put2(uint8_t *qs, int i, int q) { qs[i >> 2] |= (uint8_t)((q & 3) << (2 * (i & 3))); }
static int get2(const uint8_t *qs, int i) { return qs[i >> 2] >> (2 * (i & 3)) & 3; }
static void put3(uint8_t *qs, int gp, int i, int q) {
    put2(qs, i, q & 3);
    qs[gp / 4 + (i >> 3)] |= (uint8_t)((q >> 2 & 1) << (i & 7));
}
static int get3(const uint8_t *qs, int gp, int i) { return get2(qs, i) | (qs[gp / 4 + (i >> 3)] >> (i & 7) & 1) << 2; }

static float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }
static int group_len(int C, int g0, int G) { return C - g0 < G ? C - g0 : G; }
static int gpad_of(int G) { return (G + BD_QK - 1) / BD_QK * BD_QK; }

static void minmax(const float *w, int n, float *mn, float *mx) {
    float a = w[0], b = w[0];
    for (int i = 1; i < n; i++) { if (w[i] < a) a = w[i]; if (w[i] > b) b = w[i]; }
    *mn = a; *mx = b;
}

// ---- affine: q2, q3, q8 ---------------------------------------------------------------------

// Codes of one group (int or sym quantizer) into q (n), scale and zero point.
static void affine_group(const float *w, int n, int bits, bool sym, uint8_t *q, float *s_out, int *z_out) {
    if (!sym) {
        float qmax = (float)((1 << bits) - 1), mn, mx;
        minmax(w, n, &mn, &mx);
        float s = fmaxf(mx - mn, SCALE_MIN) / qmax;
        float z = clampf(-rintf(mn / s), 0, qmax);
        for (int i = 0; i < n; i++) q[i] = (uint8_t)clampf(rintf(w[i] / s) + z, 0, qmax);
        *s_out = s;
        *z_out = (int)z;
    } else {
        float qmax = (float)((1 << (bits - 1)) - 1), amax = 0;
        for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(w[i]));
        float s = fmaxf(amax, SCALE_MIN) / qmax;
        int z = 1 << (bits - 1);
        for (int i = 0; i < n; i++) q[i] = (uint8_t)((int)clampf(rintf(w[i] / s), -qmax - 1, qmax) + z);
        *s_out = s;
        *z_out = z;
    }
}

static void quantize_affine(const float *w, uint8_t *dst, int C, int G, int bits, bool sym) {
    int gp = gpad_of(G);
    size_t cb = (size_t)gp * (size_t)(bits == 2 ? 2 : bits == 3 ? 3 : 8) / 8, bb = 8 + cb;
    uint8_t q[4096];
    for (int g0 = 0, g = 0; g0 < C; g0 += G, g++) {
        uint8_t *b = dst + (size_t)g * bb;
        memset(b, 0, bb);
        int n = group_len(C, g0, G);
        float s;
        int z;
        uint8_t *qq = n <= 4096 ? q : malloc((size_t)n);
        if (!qq) return;  // long groups (one per row) on the heap; failure leaves zeros
        affine_group(w + g0, n, bits, sym, qq, &s, &z);
        memcpy(b, &s, 4);
        b[4] = (uint8_t)z;
        uint8_t *qs = b + 8;
        for (int i = 0; i < n; i++) {
            if (bits == 2) put2(qs, i, qq[i]);
            else if (bits == 3) put3(qs, gp, i, qq[i]);
            else qs[i] = qq[i];
        }
        if (qq != q) free(qq);
    }
}

void bd_quantize_row_q2_ref(const float *w, uint8_t *dst, int C, int G, bool sym) { quantize_affine(w, dst, C, G, 2, sym); }
void bd_quantize_row_q3_ref(const float *w, uint8_t *dst, int C, int G, bool sym) { quantize_affine(w, dst, C, G, 3, sym); }
void bd_quantize_row_q8_ref(const float *w, uint8_t *dst, int C, int G, int bits, bool sym) {
    quantize_affine(w, dst, C, G, bits, sym);
}

static void dequantize_affine(const uint8_t *src, float *out, int C, int G, int bits) {
    int gp = gpad_of(G);
    size_t bb = 8 + (size_t)gp * (size_t)bits / 8;
    for (int g0 = 0, g = 0; g0 < C; g0 += G, g++) {
        const uint8_t *b = src + (size_t)g * bb, *qs = b + 8;
        float s;
        memcpy(&s, b, 4);
        int z = b[4], n = group_len(C, g0, G);
        for (int i = 0; i < n; i++) {
            int q = bits == 2 ? get2(qs, i) : bits == 3 ? get3(qs, gp, i) : qs[i];
            out[g0 + i] = (float)(q - z) * s;
        }
    }
}

void bd_dequantize_row_q2(const uint8_t *src, float *out, int C, int G) { dequantize_affine(src, out, C, G, 2); }
void bd_dequantize_row_q3(const uint8_t *src, float *out, int C, int G) { dequantize_affine(src, out, C, G, 3); }
void bd_dequantize_row_q8(const uint8_t *src, float *out, int C, int G) { dequantize_affine(src, out, C, G, 8); }

// ---- nf3 ----------------------------------------------------------------------------------------

// Index of the nearest grid value; a tie goes to the value nearer zero (as bd_quant.c).
static int nf3_index(float x) {
    int best = 0;
    float bd = fabsf(x - bd_nf3_grid[0]);
    for (int k = 1; k < 8; k++) {
        float d = fabsf(x - bd_nf3_grid[k]);
        if (d < bd || (d == bd && fabsf(bd_nf3_grid[k]) < fabsf(bd_nf3_grid[best]))) { bd = d; best = k; }
    }
    return best;
}

void bd_quantize_row_nf3_ref(const float *w, uint8_t *dst, int C, int G) {
    int gp = gpad_of(G);
    size_t bb = 8 + (size_t)gp * 3 / 8;
    for (int g0 = 0, g = 0; g0 < C; g0 += G, g++) {
        uint8_t *b = dst + (size_t)g * bb;
        memset(b, 0, bb);
        int n = group_len(C, g0, G);
        const float *x = w + g0;
        float mn, mx;
        minmax(x, n, &mn, &mx);
        float sp = fmaxf(mx, SCALE_MIN), sn = fmaxf(-mn, SCALE_MIN);
        memcpy(b, &sp, 4);
        memcpy(b + 4, &sn, 4);
        for (int i = 0; i < n; i++) {
            int k = x[i] >= 0 ? nf3_index(fminf(x[i] / sp, 1.0f)) : nf3_index(fmaxf(x[i] / sn, -1.0f));
            put3(b + 8, gp, i, k);
        }
    }
}

void bd_dequantize_row_nf3(const uint8_t *src, float *out, int C, int G) {
    int gp = gpad_of(G);
    size_t bb = 8 + (size_t)gp * 3 / 8;
    for (int g0 = 0, g = 0; g0 < C; g0 += G, g++) {
        const uint8_t *b = src + (size_t)g * bb;
        float sp, sn;
        memcpy(&sp, b, 4);
        memcpy(&sn, b + 4, 4);
        int n = group_len(C, g0, G);
        for (int i = 0; i < n; i++) {
            int k = get3(b + 8, gp, i);
            out[g0 + i] = bd_nf3_grid[k] * (k >= 3 ? sp : sn);
        }
    }
}

// ---- r2q ----------------------------------------------------------------------------------------

static float sign1(float x) { return x >= 0 ? 1.0f : -1.0f; }

void bd_quantize_row_r2q_ref(const float *w, uint8_t *dst, int C, int G) {
    int gp = gpad_of(G);
    size_t bb = 16 + (size_t)gp / 4;
    for (int g0 = 0, g = 0; g0 < C; g0 += G, g++) {
        uint8_t *b = dst + (size_t)g * bb;
        memset(b, 0, bb);
        int n = group_len(C, g0, G);
        const float *x = w + g0;
        double z = 0, a1 = 0, a2 = 0;  // the statistics exactly as bd_quant.c computes them
        for (int i = 0; i < n; i++) z += x[i];
        z /= n;
        for (int i = 0; i < n; i++) a1 += fabs(x[i] - z);
        a1 /= n;
        for (int i = 0; i < n; i++) {
            double d = x[i] - z;
            a2 += fabs(d - a1 * sign1((float)d));
        }
        a2 /= n;
        float lv[4];  // code 2*b1 + b2, b = sign > 0
        for (int c = 0; c < 4; c++) {
            double s1 = c & 2 ? 1.0 : -1.0, s2 = c & 1 ? 1.0 : -1.0;
            lv[c] = (float)(z + a1 * s1 + a2 * s2);
        }
        memcpy(b, lv, 16);
        for (int i = 0; i < n; i++) {
            double d = x[i] - z, r = d - a1 * sign1((float)d);
            put2(b + 16, i, (sign1((float)d) > 0) * 2 + (sign1((float)r) > 0));
        }
    }
}

void bd_dequantize_row_r2q(const uint8_t *src, float *out, int C, int G) {
    int gp = gpad_of(G);
    size_t bb = 16 + (size_t)gp / 4;
    for (int g0 = 0, g = 0; g0 < C; g0 += G, g++) {
        const uint8_t *b = src + (size_t)g * bb;
        float lv[4];
        memcpy(lv, b, 16);
        int n = group_len(C, g0, G);
        for (int i = 0; i < n; i++) out[g0 + i] = lv[get2(b + 16, i)];
    }
}

// ---- tq2 ----------------------------------------------------------------------------------------

void bd_quantize_row_tq2_ref(const float *w, uint8_t *dst, int C, float D) {
    memset(dst, 0, (size_t)gpad_of(C) / 4);
    for (int i = 0; i < C; i++) put2(dst, i, (int)clampf(rintf(w[i] / (D + TERNARY_EPS)), -1, 1) + 1);
}

void bd_dequantize_row_tq2(const uint8_t *src, float *out, int C, float D) {
    for (int i = 0; i < C; i++) out[i] = (float)(get2(src, i) - 1) * D;
}

// ---- whole tensors --------------------------------------------------------------------------------

void bd_pk_dequantize_row(const bd_pk_tensor *t, int r, float *out) {
    const uint8_t *src = t->data + (size_t)r * t->row_bytes;
    int C = t->cols, G = t->group;
    switch (t->type) {
    case BD_PK_F32: memcpy(out, src, (size_t)C * 4); break;
    case BD_PK_Q2: bd_dequantize_row_q2(src, out, C, G); break;
    case BD_PK_Q3: bd_dequantize_row_q3(src, out, C, G); break;
    case BD_PK_Q8: bd_dequantize_row_q8(src, out, C, G); break;
    case BD_PK_NF3: bd_dequantize_row_nf3(src, out, C, G); break;
    case BD_PK_R2Q: bd_dequantize_row_r2q(src, out, C, G); break;
    case BD_PK_TQ2: bd_dequantize_row_tq2(src, out, C, t->scale); break;
    default: break;
    }
}

int bd_pk_pack(bd_pk_tensor *t, const float *w, int OC, int C, const bd_qspec *q) {
    memset(t, 0, sizeof *t);
    int type = bd_pk_type_for(q);
    if (type < 0 || bd_qspec_check(q, C, NULL, 0) < 0) return BD_ERR_ARG;
    size_t n = (size_t)OC * (size_t)C;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i])) return BD_ERR_VALUE;
    int rc = bd_pk_geometry(t, (bd_pk_type)type, OC, C, bd_qspec_group(q, C));
    if (rc < 0 || (rc = bd_pk_alloc(t)) < 0) return rc;
    if (type == BD_PK_TQ2) {
        double s = 0;  // mean |W| over the matrix, in bd_quant.c's order
        for (size_t i = 0; i < n; i++) s += fabs(w[i]);
        t->scale = (float)(n ? s / (double)n : 0);
    }
    bool sym = q->kind == BD_Q_SYM;
    for (int r = 0; r < OC; r++) {
        const float *x = w + (size_t)r * C;
        uint8_t *dst = t->data + (size_t)r * t->row_bytes;
        switch (type) {
        case BD_PK_F32: memcpy(dst, x, (size_t)C * 4); break;
        case BD_PK_Q2: bd_quantize_row_q2_ref(x, dst, C, t->group, sym); break;
        case BD_PK_Q3: bd_quantize_row_q3_ref(x, dst, C, t->group, sym); break;
        case BD_PK_Q8: bd_quantize_row_q8_ref(x, dst, C, t->group, q->bits, sym); break;
        case BD_PK_NF3: bd_quantize_row_nf3_ref(x, dst, C, t->group); break;
        case BD_PK_R2Q: bd_quantize_row_r2q_ref(x, dst, C, t->group); break;
        case BD_PK_TQ2: bd_quantize_row_tq2_ref(x, dst, C, t->scale); break;
        }
    }
    return BD_OK;
}

static int bad(char *why, size_t ws, const char *fmt, int r, int g, double v) {
    if (why && ws) {
        char msg[128];
        snprintf(msg, sizeof msg, fmt, v);
        snprintf(why, ws, "row %d group %d: %s", r, g, msg);
    }
    return BD_ERR_VALUE;
}

int bd_pk_validate(const bd_pk_tensor *t, char *why, size_t ws) {
    const bd_pk_traits *tr = &bd_pk_traits_table[t->type];
    if (t->type == BD_PK_TQ2 && !(isfinite(t->scale) && t->scale >= 0)) return bad(why, ws, "ternary scale %g is not a finite non-negative number", 0, 0, t->scale);
    for (int r = 0; r < t->rows; r++) {
        const uint8_t *row = t->data + (size_t)r * t->row_bytes;
        if (t->type == BD_PK_F32) {
            for (int i = 0; i < t->cols; i++) {
                float v;
                memcpy(&v, row + 4 * (size_t)i, 4);
                if (!isfinite(v)) return bad(why, ws, "weight %g is not finite", r, i, v);
            }
            continue;
        }
        for (int g = 0; g < t->ngroups; g++) {
            const uint8_t *b = row + (size_t)g * t->block_bytes, *qs = b + tr->head_bytes;
            int n = group_len(t->cols, g * t->group, t->group);
            float f[4];
            memcpy(f, b, (size_t)tr->head_bytes < sizeof f ? (size_t)tr->head_bytes : sizeof f);
            switch (t->type) {
            case BD_PK_Q2: case BD_PK_Q3: case BD_PK_Q8:
                if (!(isfinite(f[0]) && f[0] > 0)) return bad(why, ws, "scale %g is not a finite positive number", r, g, f[0]);
                if (b[4] >= 1 << (t->type == BD_PK_Q8 ? 8 : tr->code_bits) && t->type != BD_PK_Q8)
                    return bad(why, ws, "zero point %g is out of range", r, g, b[4]);
                break;
            case BD_PK_NF3:
                if (!(isfinite(f[0]) && f[0] > 0 && isfinite(f[1]) && f[1] > 0))
                    return bad(why, ws, "scale %g is not a finite positive number", r, g, isfinite(f[0]) && f[0] > 0 ? f[1] : f[0]);
                break;
            case BD_PK_R2Q:
                for (int k = 0; k < 4; k++)
                    if (!isfinite(f[k])) return bad(why, ws, "level %g is not finite", r, g, f[k]);
                break;
            case BD_PK_TQ2:
                for (int i = 0; i < n; i++)
                    if (get2(qs, i) == 3) return bad(why, ws, "ternary code 3 at weight %g (codes are 0..2)", r, g, i);
                break;
            default: break;
            }
        }
    }
    return BD_OK;
}
