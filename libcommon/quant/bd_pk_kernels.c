// Kernels on packed weights: out (N, OC) = inp (N, C) @ W^T with W in a bd_pk_tensor, and the
// choice of SIMD path. Dimension key: N tokens, OC rows, C row length, G group, GP padded group
// (multiple of 32), NG groups per row, XP = NG * GP (padded activation row: group g at g * GP,
// zeros in the padding, so padded codes contribute nothing).
//
// The row dots are the formats' (bd_pk_traits_table, bd_pk_<format>.c), picked once per call
// for the path in use. f32 activations: the exact dequantized value of every code times the
// activation (N >= 8: the f32 tiles of bd_pk_f32_tiles.c on AVX-512; elsewhere rows dequantized
// in panels into sgemm; N == 1: the traits' gemv_f32 where a format has one, f32 rows two at a
// time on AVX-512, else row dots). int8 activations (per token absmax/127): N >= 8 on a format
// and path with integer tiles (traits gemm_i8:
// q2 tq2 q3 q6 on AVX2 and AVX-512, q8 on AVX-512; bd_pk_tiles.c; q2_K and q4_K on AVX-512:
// bd_pk_kquant_tiles.c, their sub-block scales need their own layout), blocks of rows times blocks
// of tokens with int32 accumulators, equal bit for bit to the scalar row dot; otherwise the
// format's integer dot (q2, q3, q8, q6, tq2 on every SIMD path; the K-quants on AVX-512; the
// others scalar; tq2, q2_K and q4_K on AVX-512 several rows per pass, traits gemv_i8), or, where
// a path has none, that path's f32 dot on the int8 values as floats times the scale. The int8
// levels are bd_act_quant.h's, those of a W1.58A8 model's fake-quantized training forward.
// Paths: scalar, AVX2+FMA, AVX-512 (F, BW, VL, VBMI, VNNI), picked at run time; BD_SIMD forces.
// No allocation: every buffer is carved from the caller's scratch.
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "bd_act_quant.h"
#include "bd_pk_impl.h"
#include "bd_threads.h"

// ---- path selection ------------------------------------------------------------------------------

static int forced_simd = -1;

bool bd_pk_simd_supported(bd_simd s) {
    switch (s) {
    case BD_SIMD_SCALAR: return true;
#ifdef BD_X86
    case BD_SIMD_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case BD_SIMD_AVX512:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
#endif
    default: return false;
    }
}

const char *bd_pk_simd_name(bd_simd s) {
    return s == BD_SIMD_AVX512 ? "avx512" : s == BD_SIMD_AVX2 ? "avx2" : "scalar";
}

void bd_pk_set_simd(bd_simd s) { forced_simd = bd_pk_simd_supported(s) ? (int)s : -1; }

bd_simd bd_pk_simd(void) {
    if (forced_simd >= 0) return (bd_simd)forced_simd;
    const char *e = getenv("BD_SIMD");
    bd_simd want = BD_SIMD_AVX512;
    if (e && strcmp(e, "scalar") == 0)
        want = BD_SIMD_SCALAR;
    else if (e && strcmp(e, "avx2") == 0)
        want = BD_SIMD_AVX2;
    while (want > BD_SIMD_SCALAR && !bd_pk_simd_supported(want)) want = (bd_simd)(want - 1);
    return want;
}

// The f32 dot of a path; a format without one there takes the next lower path's.
static bd_pk_dot_f32_fn *pick_f32(const bd_pk_traits *tr, bd_simd s) {
    int k = (int)s;
    while (k > 0 && !tr->vec_dot_f32[k]) k--;
    return tr->vec_dot_f32[k];
}

// ---- activations ------------------------------------------------------------------------------------

// The rule of QAT's fake quantization (bd_act_quant.h): one function for both.
void bd_pk_quantize_act_ref(const float *x, int8_t *xq, int C, float *scale) { bd_act_quant_row(x, xq, C, scale); }

void bd_pk_embedding(float *out, const int32_t *tokens, const bd_pk_tensor *t, int N) {
    for (int n = 0; n < N; n++) bd_pk_dequantize_row(t, tokens[n], out + (size_t)n * t->cols);
}

// x (C) into the padded layout (NG * GP), zeros in the padding.
static void pad_row_f32(const bd_pk_tensor *t, const float *x, float *xp) {
    for (int g = 0; g < t->ngroups; g++) {
        int n = bd_pk_group_len(t, g);
        memcpy(xp + (size_t)g * t->gpad, x + (size_t)g * t->group, (size_t)n * sizeof *x);
        memset(xp + (size_t)g * t->gpad + n, 0, (size_t)(t->gpad - n) * sizeof *x);
    }
}

static void pad_row_i8(const bd_pk_tensor *t, const int8_t *x, int8_t *xp, int32_t *xsum) {
    for (int g = 0; g < t->ngroups; g++) {
        int g0 = g * t->group, n = bd_pk_group_len(t, g);
        int32_t s = 0;
        for (int i = 0; i < n; i++) s += x[g0 + i];
        memcpy(xp + (size_t)g * t->gpad, x + g0, (size_t)n);
        memset(xp + (size_t)g * t->gpad + n, 0, (size_t)(t->gpad - n));
        xsum[g] = s;
    }
}

// ---- scratch ----------------------------------------------------------------------------------------
// Pieces of 64-byte multiples from a 64-byte aligned start (the caller's pointer plus up to 63).

static size_t up64(size_t n) { return (n + 63) / 64 * 64; }
static void *carve(uint8_t **p, size_t n) {
    void *r = *p;
    *p += up64(n);
    return r;
}
static uint8_t *align64(void *p) { return (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

static size_t xp_len(const bd_pk_tensor *t) { return (size_t)t->ngroups * (size_t)t->gpad; }
static int panel_rows(const bd_pk_tensor *t) {
    int P = (1 << 20) / t->cols;  // ~4 MB of f32 per panel
    return P < 16 ? 16 : P > t->rows ? t->rows : P;
}

// What each route of bd_pk_matmul carves.
static size_t f32_bytes(const bd_pk_tensor *t, int N) {
    if (N >= 8) {  // sgemm's panels or the f32 tiles' rows
        size_t panels = up64((size_t)panel_rows(t) * (size_t)t->cols * sizeof(float)),
               tiles = up64(bd_pk_f32_tiles_scratch_bytes(t));
        return panels > tiles ? panels : tiles;
    }
    return xp_len(t) != (size_t)t->cols ? up64((size_t)N * xp_len(t) * sizeof(float)) : 0;
}
static size_t i8_bytes(const bd_pk_tensor *t, int N) {
    return up64((size_t)N * xp_len(t)) + up64((size_t)t->cols) +
           up64((size_t)N * (size_t)t->ngroups * sizeof(int32_t)) + up64((size_t)N * sizeof(float));
}
static size_t via_f32_bytes(const bd_pk_tensor *t, int N) {
    return up64((size_t)N * sizeof(float)) + up64((size_t)t->cols) + up64((size_t)N * (size_t)t->cols * sizeof(float)) +
           f32_bytes(t, N < 7 ? N : 7);
}
static size_t ref_bytes(const bd_pk_tensor *t) { return up64((size_t)t->cols * sizeof(float)) + up64((size_t)t->cols); }

// Enough for any path (the one in use may change with bd_pk_set_simd), and for the _ref twin.
size_t bd_pk_matmul_scratch_bytes(const bd_pk_tensor *t, int N, bool act_int8) {
    const bd_pk_traits *tr = &bd_pk_traits_table[t->type];
    size_t n = act_int8 ? i8_bytes(t, N) : f32_bytes(t, N), r = ref_bytes(t);
    for (int s = 0; s < BD_SIMD_COUNT && act_int8; s++)
        if (!tr->vec_dot_i8[s] && via_f32_bytes(t, N) > n) n = via_f32_bytes(t, N);
    for (int s = 0; s < BD_SIMD_COUNT && act_int8 && N >= 8; s++)
        if (tr->gemm_i8[s] && bd_pk_tiles_scratch_bytes(t, N) > n) n = bd_pk_tiles_scratch_bytes(t, N);
    if (act_int8 && N >= 8 && bd_pk_kquant_tiles_fit(t) && bd_pk_kquant_tiles_scratch_bytes(t, N) > n)
        n = bd_pk_kquant_tiles_scratch_bytes(t, N);
    return 63 + (n > r ? n : r);
}

// ---- matmul -------------------------------------------------------------------------------------------

typedef struct {
    const bd_pk_tensor *t;
    const float *xp;      // (N, XP) padded f32 activations, or NULL
    const int8_t *xq;     // (N, XP) padded int8 activations, or NULL
    const int32_t *xsum;  // (N, NG) sums of xq per group
    const float *xs;      // (N) activation scales
    float *out;           // (N, OC)
    int N;
    size_t xp_len;  // XP
    bd_pk_dot_f32_fn *f32;
    bd_pk_dot_i8_fn *i8;
    bd_pk_gemv_i8_fn *gemv;       // int8 activations: rows several at a time, or NULL (row dots)
    bd_pk_gemv_f32_fn *gemv_f32;  // f32 activations, one token: the same
} mm_job;

// Rows r0..r1 for every token; tiles of rows keep their bytes in cache across tokens (a single
// token's matrix-vector product takes the whole range in one call).
static void mm_rows(void *ctx, int r0, int r1) {
    const mm_job *j = ctx;
    const bd_pk_tensor *t = j->t;
    if (j->gemv && j->N == 1) {
        j->gemv(j->out, t, j->xq, j->xsum, j->xs[0], r0, r1);
        return;
    }
    if (j->gemv_f32 && j->N == 1) {
        j->gemv_f32(j->out, t, j->xp, r0, r1);
        return;
    }
    for (int rt = r0; rt < r1; rt += 16) {
        int re = rt + 16 < r1 ? rt + 16 : r1;
        if (j->gemv) {
            for (int n = 0; n < j->N; n++)
                j->gemv(j->out + (size_t)n * t->rows, t, j->xq + (size_t)n * j->xp_len,
                        j->xsum + (size_t)n * t->ngroups, j->xs[n], rt, re);
            continue;
        }
        for (int n = 0; n < j->N; n++)
            for (int r = rt; r < re; r++) {
                const uint8_t *row = t->data + (size_t)r * t->row_bytes;
                float v =
                        j->xq ? j->i8(t, row, j->xq + (size_t)n * j->xp_len, j->xsum + (size_t)n * t->ngroups, j->xs[n])
                              : j->f32(t, row, j->xp + (size_t)n * j->xp_len);
                j->out[(size_t)n * t->rows + r] = v;
            }
    }
}

typedef struct {
    const bd_pk_tensor *t;
    float *buf;  // (P, C)
    int r0;
} deq_job;

static void deq_rows(void *ctx, int a, int b) {
    const deq_job *j = ctx;
    for (int r = a; r < b; r++) bd_pk_dequantize_row(j->t, j->r0 + r, j->buf + (size_t)r * j->t->cols);
}

// Prompts and evaluation, f32 activations: dequantize panels of rows (exact values) into sgemm.
static void matmul_panels(float *out, const float *inp, const bd_pk_tensor *t, int N, int min_rows, uint8_t *p) {
    int C = t->cols, OC = t->rows, P = panel_rows(t);
    float *buf = carve(&p, (size_t)P * C * sizeof *buf);
    for (int r0 = 0; r0 < OC; r0 += P) {
        int np = OC - r0 < P ? OC - r0 : P;
        deq_job dj = {t, buf, r0};
        bd_parallel_for(np, min_rows, deq_rows, &dj);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, np, C, 1.0f, inp, C, buf, C, 0.0f, out + r0, OC);
    }
}

// int8 activations on a path without an integer dot for the format: its f32 kernel on the int8
// values as floats, in matrix-vector chunks of < 8 tokens, times each token's scale (the same sum).
static void matmul_i8_via_f32(float *out, const float *inp, const bd_pk_tensor *t, int N, uint8_t *p) {
    int C = t->cols, OC = t->rows;
    float *xs = carve(&p, (size_t)N * sizeof *xs);
    int8_t *tmp = carve(&p, (size_t)C);
    float *xf = carve(&p, (size_t)N * C * sizeof *xf);
    for (int n = 0; n < N; n++) {
        bd_pk_quantize_act_ref(inp + (size_t)n * C, tmp, C, &xs[n]);
        for (int i = 0; i < C; i++) xf[(size_t)n * C + i] = tmp[i];
    }
    bd_pk_matmul(out, xf, t, N < 8 ? N : 7, false, p);
    for (int n = 7; n < N; n += 7)
        bd_pk_matmul(out + (size_t)n * OC, xf + (size_t)n * C, t, N - n < 7 ? N - n : 7, false, p);
    for (int n = 0; n < N; n++)
        for (int r = 0; r < OC; r++) out[(size_t)n * OC + r] *= xs[n];
}

void bd_pk_matmul(float *out, const float *inp, const bd_pk_tensor *t, int N, bool act_int8, void *scratch) {
    const bd_pk_traits *tr = &bd_pk_traits_table[t->type];
    int C = t->cols, OC = t->rows;
    int min_rows = 1 + (1 << 18) / C;  // a thread gets at least ~256K weights
    bd_simd simd = bd_pk_simd();
    uint8_t *p = align64(scratch);
    if (!act_int8 && N >= 8) {
#ifdef BD_X86
        if (simd == BD_SIMD_AVX512) {
            bd_pk_matmul_f32_tiles(out, inp, t, N, p);  // bd_pk_f32_tiles.c: f32 weights need no scratch
            return;
        }
#endif
        matmul_panels(out, inp, t, N, min_rows, p);
        return;
    }
#ifdef BD_X86
    if (act_int8 && N >= 8 && simd == BD_SIMD_AVX512 && bd_pk_kquant_tiles_fit(t)) {
        bd_pk_matmul_kquant_tiles(out, inp, t, N, p);  // q2_K, q4_K (bd_pk_kquant_tiles.c)
        return;
    }
#endif
    if (act_int8 && N >= 8 && tr->gemm_i8[simd] && bd_pk_tiles_fit(t)) {
        bd_pk_matmul_tiles(out, inp, t, N, simd, tr->gemm_i8[simd], p);  // integer tiles (bd_pk_tiles.c)
        return;
    }
    if (act_int8 && !tr->vec_dot_i8[simd]) {
        matmul_i8_via_f32(out, inp, t, N, p);
        return;
    }
    size_t XP = xp_len(t);
    mm_job j = {t, NULL, NULL, NULL, NULL, out, N, XP, pick_f32(tr, simd), tr->vec_dot_i8[simd], NULL, NULL};
    if (act_int8) {
        int8_t *xq = carve(&p, (size_t)N * XP), *tmp = carve(&p, (size_t)C);
        int32_t *xsum = carve(&p, (size_t)N * (size_t)t->ngroups * sizeof *xsum);
        float *xs = carve(&p, (size_t)N * sizeof *xs);
        for (int n = 0; n < N; n++) {
            bd_pk_quantize_act_ref(inp + (size_t)n * C, tmp, C, &xs[n]);
            pad_row_i8(t, tmp, xq + (size_t)n * XP, xsum + (size_t)n * t->ngroups);
        }
        j.xq = xq;
        j.xsum = xsum;
        j.xs = xs;
        j.gemv = tr->gemv_i8[simd];
    } else if (XP != (size_t)C) {
        float *xp = carve(&p, (size_t)N * XP * sizeof *xp);
        for (int n = 0; n < N; n++) pad_row_f32(t, inp + (size_t)n * C, xp + (size_t)n * XP);
        j.xp = xp;
    } else {
        j.xp = inp;  // groups are whole multiples of 32 that tile the row: no padding needed
    }
    if (!act_int8) j.gemv_f32 = tr->gemv_f32[simd];
    bd_parallel_for(OC, min_rows, mm_rows, &j);
}

void bd_pk_matmul_ref(float *out, const float *inp, const bd_pk_tensor *t, int N, bool act_int8, void *scratch) {
    int C = t->cols;
    uint8_t *p = align64(scratch);
    float *w = carve(&p, (size_t)C * sizeof *w);
    int8_t *xq = carve(&p, (size_t)C);
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float xs = 1;
        if (act_int8) bd_pk_quantize_act_ref(x, xq, C, &xs);
        for (int r = 0; r < t->rows; r++) {
            bd_pk_dequantize_row(t, r, w);
            double acc = 0;
            for (int i = 0; i < C; i++) acc += (double)w[i] * (act_int8 ? (double)xq[i] : (double)x[i]);
            out[(size_t)n * t->rows + r] = (float)(act_int8 ? acc * xs : acc);
        }
    }
}
