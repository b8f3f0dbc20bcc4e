// Packed formats: block layouts worked by hand; pack -> unpack reproduces bd_fakequant_forward
// exactly for every quantizer, shape and group (short tail groups included); every kernel path
// of the machine (scalar, AVX2, AVX-512) against the plain _ref twin, f32 and int8
// activations, matrix-vector and matrix-matrix (int8 integer tiles: bit for bit the scalar row
// dot); validation of corrupt blocks; packed models
// saved, loaded and run against the fake-quantized model.
#include <string.h>

#include "bd_dtype.h"
#include "bd_forward.h"
#include "bd_model_io.h"
#include "bd_kernels.h"
#include "bd_kquant.h"
#include "bd_packed.h"
#include "bd_pk_simd.h"
#include "bd_qmodel.h"
#include "bd_test.h"
#include "bd_threads.h"

static unsigned rng = 12345;
static float frand(void) {
    rng = rng * 1103515245u + 12345u;
    return (float)((rng >> 8) / 16777216.0) - 0.5f;
}

START_TEST(test_layout_by_hand) {
    // int 2-bit, one group of 4: min -1.5, max 1.5 -> s = 1, z = 2; codes Round(w)+2 clamped
    // (halves away from zero): -1.5 -> -2+2 = 0, -0.5 -> -1+2 = 1, 0.5 -> 1+2 = 3, 1.5 -> 2+2 = 4 -> 3.
    // Byte 0 = 0 | 1<<2 | 3<<4 | 3<<6 = 244. The block is 8 header bytes + 32/4 code bytes.
    float w[4] = {-1.5f, -0.5f, 0.5f, 1.5f};
    bd_qspec q = {BD_Q_INT, 2, 4};
    bd_pk_tensor t;
    ck_assert_int_eq(bd_pk_pack(&t, w, 1, 4, &q, NULL, 0), BD_OK);
    ck_assert_int_eq(t.type, BD_PK_Q2);
    ck_assert_uint_eq(t.block_bytes, 16);
    ck_assert_uint_eq(t.row_bytes, 16);
    float s;
    memcpy(&s, t.data, 4);
    ck_assert(s == 1.0f);
    ck_assert_int_eq(t.data[4], 2);
    ck_assert_int_eq(t.data[8], 244);
    for (int i = 9; i < 16; i++) ck_assert_int_eq(t.data[i], 0);  // padding codes are 0
    bd_pk_free(&t);
    // 3-bit: [0, 7] in one group of 2 -> s = 1, z = 0, codes 0 and 7: low plane byte 0 =
    // 0 | 3<<2 = 12, high plane (after 32/4 = 8 low bytes) byte 0 = 0 | 1<<1 = 2.
    float w3[2] = {0, 7};
    bd_qspec q3 = {BD_Q_INT, 3, 128};
    ck_assert_int_eq(bd_pk_pack(&t, w3, 1, 2, &q3, NULL, 0), BD_OK);
    ck_assert_uint_eq(t.block_bytes, 8 + 12);
    ck_assert_int_eq(t.data[8], 12);
    ck_assert_int_eq(t.data[16], 2);
    bd_pk_free(&t);
    // ternary: W = [0.3, -0.9 | 0.05, 1.2] (2 rows), D = 2.45/4 = 0.6125; codes q+1:
    // 0.49 -> 0 -> 1, -1.47 -> -1 -> 0, 0.08 -> 0 -> 1, 1.96 -> 1 (clamped) -> 2.
    float wt[4] = {0.3f, -0.9f, 0.05f, 1.2f};
    bd_qspec qt = {BD_Q_TERNARY, 2, 0};
    ck_assert_int_eq(bd_pk_pack(&t, wt, 2, 2, &qt, NULL, 0), BD_OK);
    ck_assert_int_eq(t.type, BD_PK_TQ2);
    ck_assert_close(t.scale, 0.6125, 1e-6);
    ck_assert_uint_eq(t.row_bytes, 8);  // 2 bits per weight, row padded to 32 weights
    ck_assert_int_eq(t.data[0], 1 | 0 << 2);
    ck_assert_int_eq(t.data[8], 1 | 2 << 2);
    bd_pk_free(&t);
    // sym 2-bit stores level + 2 with z = 2: [-2, 1] * s, s = absmax/1.
    float ws[4] = {-1, 0.5f, 0.2f, -0.2f};
    bd_qspec qs = {BD_Q_SYM, 2, 4};
    ck_assert_int_eq(bd_pk_pack(&t, ws, 1, 4, &qs, NULL, 0), BD_OK);
    ck_assert_int_eq(t.data[4], 2);
    // -1/1 = -1 -> 1; 0.5 -> 0 (half to even) -> 2; 0.2 -> 0 -> 2; -0.2 -> -0 -> 2.
    ck_assert_int_eq(t.data[8], 1 | 2 << 2 | 2 << 4 | 2 << 6);
    bd_pk_free(&t);
}
END_TEST

START_TEST(test_head_layout_by_hand) {
    // q6 (int 6-bit), one group of 32: min -1, max 2.15 -> s = 3.15/63 = 0.05, z = 20; codes
    // Round(w/s) + 20: zeros 20, w0 = -1 -> 0, w9 = 0.5 -> 30, w17 = 2.15 -> 63, w31 = 1 -> 40.
    // Low plane byte k = code k & 15 | (code k+16 & 15) << 4: byte 0 = 0 | 4<<4 = 64, byte 1 =
    // 4 | 15<<4 = 244, byte 9 = 14 | 4<<4 = 78, byte 15 = 4 | 8<<4 = 132, the others 4 | 4<<4 = 68.
    // High plane (from byte 16) byte m = code m>>4 | code m+8>>4 << 2 | code m+16>>4 << 4 |
    // code m+24>>4 << 6: byte 0 = 0|1<<2|1<<4|1<<6 = 84, byte 1 = 1|1<<2|3<<4|1<<6 = 117,
    // byte 7 = 1|1<<2|1<<4|2<<6 = 149, the others 85. The block: 8 + 16 + 8 bytes.
    float w[32] = {0};
    w[0] = -1, w[9] = 0.5f, w[17] = 2.15f, w[31] = 1;
    bd_qspec q6 = bd_pk_head_spec(BD_PK_Q6);
    ck_assert(q6.kind == BD_Q_INT && q6.bits == 6 && q6.group == BD_PK_HEAD_GROUP);
    bd_pk_tensor t;
    ck_assert_int_eq(bd_pk_pack_as(&t, BD_PK_Q6, w, 1, 32, &q6, NULL, 0), BD_OK);
    ck_assert_uint_eq(t.block_bytes, 32);
    ck_assert_uint_eq(t.row_bytes, 32);
    bd_block_q6 *b = (bd_block_q6 *)(void *)t.data;
    ck_assert_close(b->s, 0.05, 1e-7);
    ck_assert_int_eq(b->z, 20);
    for (int k = 0; k < 16; k++)
        ck_assert_int_eq(b->qs[k], k == 0 ? 64 : k == 1 ? 244 : k == 9 ? 78 : k == 15 ? 132 : 68);
    for (int m = 0; m < 8; m++) ck_assert_int_eq(b->qs[16 + m], m == 0 ? 84 : m == 1 ? 117 : m == 7 ? 149 : 85);
    float row[32];
    bd_pk_dequantize_row(&t, 0, row);
    ck_assert(row[17] == 43 * b->s && row[0] == -20 * b->s && row[3] == 0);
    bd_pk_free(&t);
    // q8 (int 8-bit), a row of 4 (one short group, padded to 32): [-1, 0, 0.5, 1.55] -> s = 2.55/255
    // = 0.01, z = 100, codes 0, 100, 150, 255; the block is 8 + 32 bytes, padding codes 0.
    float w8[4] = {-1, 0, 0.5f, 1.55f};
    bd_qspec q8 = bd_pk_head_spec(BD_PK_Q8);
    ck_assert_int_eq(bd_pk_pack_as(&t, BD_PK_Q8, w8, 1, 4, &q8, NULL, 0), BD_OK);
    ck_assert_uint_eq(t.row_bytes, 40);
    ck_assert_close(((bd_block_q8 *)(void *)t.data)->s, 0.01, 1e-8);
    ck_assert_int_eq(t.data[4], 100);
    ck_assert(t.data[8] == 0 && t.data[9] == 100 && t.data[10] == 150 && t.data[11] == 255 && t.data[12] == 0);
    bd_pk_free(&t);
    // A format takes only the specs it holds; head formats are f32, q8 and q6 only.
    char why[200];
    bd_qspec q2 = {BD_Q_INT, 2, 32};
    ck_assert_int_eq(bd_pk_pack_as(&t, BD_PK_Q6, w, 1, 32, &q2, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "q6 does not hold int 2-bit"), "%s", why);
    ck_assert_int_eq(bd_pk_head_format_parse("q8"), BD_PK_Q8);
    ck_assert_int_eq(bd_pk_head_format_parse("q6"), BD_PK_Q6);
    ck_assert_int_eq(bd_pk_head_format_parse("f32"), BD_PK_F32);
    ck_assert_int_eq(bd_pk_head_format_parse("q2"), -1);
    ck_assert_int_eq(bd_pk_head_format_parse("Q8"), -1);
    // q6 is never a spec's format: 6-bit students stay q8.
    bd_qspec i6 = {BD_Q_INT, 6, 32};
    ck_assert_int_eq(bd_pk_type_for(&i6), BD_PK_Q8);
}
END_TEST

START_TEST(test_traits_table) {
    // Every format is one complete row: the name streams use, the header its block struct
    // declares, the group rule, and scalar dots for both activation types (the fallback of
    // every path); a supported SIMD path has an f32 dot for every format.
    int head[BD_PK_COUNT] = {[BD_PK_Q2] = sizeof(bd_block_q2),
                             [BD_PK_Q3] = sizeof(bd_block_q3),
                             [BD_PK_Q8] = sizeof(bd_block_q8),
                             [BD_PK_NF3] = sizeof(bd_block_nf3),
                             [BD_PK_R2Q] = sizeof(bd_block_r2q),
                             [BD_PK_Q6] = sizeof(bd_block_q6),
                             // K-quants: ggml's block minus its codes (2, 3 and 4 bits for 256 weights)
                             [BD_PK_Q2_K] = sizeof(bd_block_q2_K) - 64,
                             [BD_PK_Q3_K] = sizeof(bd_block_q3_K) - 96,
                             [BD_PK_Q4_K] = sizeof(bd_block_q4_K) - 128};
    for (int f = 0; f < BD_PK_COUNT; f++) {
        const bd_pk_traits *tr = &bd_pk_traits_table[f];
        ck_assert_int_eq(bd_pk_type_parse(tr->name), f);
        ck_assert_int_eq(tr->head_bytes, head[f]);
        ck_assert(tr->quantize_row_ref && tr->dequantize_row && tr->validate_row);
        ck_assert(tr->vec_dot_f32[BD_SIMD_SCALAR] && tr->vec_dot_i8[BD_SIMD_SCALAR]);
        for (int p = BD_SIMD_AVX2; p < BD_SIMD_COUNT; p++)  // (f16 needs F16C, not part of the AVX2 path)
            if (!(f == BD_PK_F16 && p == BD_SIMD_AVX2) && bd_pk_simd_supported((bd_simd)p))
                ck_assert_ptr_nonnull(tr->vec_dot_f32[p]);
        ck_assert(!tr->tensor_scale == (f != BD_PK_TQ2));
    }
    ck_assert_int_eq(sizeof(bd_block_tq2) * 4, BD_QK);
    // A spec's format is the first row that holds it: q8 takes the int/sym widths q2 and q3 do
    // not (bits out of range included: bd_qspec_check refuses them with its own reason).
    struct {
        bd_qspec q;
        int f;
    } want[] = {{{BD_Q_NONE, 0, 0}, BD_PK_F32},    {{BD_Q_INT, 2, 32}, BD_PK_Q2},     {{BD_Q_SYM, 2, 32}, BD_PK_Q2},
                {{BD_Q_INT, 3, 32}, BD_PK_Q3},     {{BD_Q_SYM, 3, 32}, BD_PK_Q3},     {{BD_Q_INT, 4, 32}, BD_PK_Q8},
                {{BD_Q_SYM, 8, 32}, BD_PK_Q8},     {{BD_Q_INT, 1, 32}, BD_PK_Q8},     {{BD_Q_INT, 9, 32}, -1},
                {{BD_Q_NF3, 3, 32}, BD_PK_NF3},    {{BD_Q_NF3, 2, 32}, BD_PK_NF3},    {{BD_Q_R2Q, 2, 32}, BD_PK_R2Q},
                {{BD_Q_TERNARY, 2, 0}, BD_PK_TQ2}, {{BD_Q_Q2_K, 2, 256}, BD_PK_Q2_K}, {{BD_Q_Q3_K, 3, 256}, BD_PK_Q3_K},
                {{BD_Q_Q4_K, 4, 256}, BD_PK_Q4_K}, {{BD_Q_COUNT, 2, 0}, -1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) ck_assert_int_eq(bd_pk_type_for(&want[i].q), want[i].f);
    // tq2 and f32 hold one group per row whatever the spec's group; the others pad G to 32.
    bd_pk_tensor t;
    ck_assert_int_eq(bd_pk_geometry(&t, BD_PK_TQ2, 2, 100, 32), BD_OK);
    ck_assert(t.group == 100 && t.gpad == 128 && t.ngroups == 1 && t.block_bytes == 32);
    ck_assert_int_eq(bd_pk_geometry(&t, BD_PK_F32, 2, 100, 32), BD_OK);
    ck_assert(t.group == 100 && t.gpad == 100 && t.ngroups == 1 && t.row_bytes == 400);
    ck_assert_int_eq(bd_pk_geometry(&t, BD_PK_NF3, 2, 100, 40), BD_OK);
    ck_assert(t.group == 40 && t.gpad == 64 && t.ngroups == 3 && t.block_bytes == 8 + 24);
}
END_TEST

static const bd_qspec specs[] = {
        {BD_Q_INT, 2, 32}, {BD_Q_INT, 3, 16},    {BD_Q_INT, 4, 32},  {BD_Q_INT, 8, 10}, {BD_Q_SYM, 2, 32},
        {BD_Q_SYM, 3, 24}, {BD_Q_SYM, 6, 64},    {BD_Q_NF3, 3, 32},  {BD_Q_NF3, 3, 10}, {BD_Q_R2Q, 2, 32},
        {BD_Q_R2Q, 2, 7},  {BD_Q_TERNARY, 2, 0}, {BD_Q_INT, 2, 128}, {BD_Q_INT, 2, 0},  {BD_Q_NONE, 0, 0},
};
#define NSPECS (int)(sizeof specs / sizeof specs[0])

START_TEST(test_pack_unpack_exact) {
    int shapes[][2] = {{3, 64}, {5, 100}, {4, 37}, {2, 300}, {7, 16}};
    for (int si = 0; si < NSPECS; si++)
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
            int OC = shapes[sh][0], C = shapes[sh][1];
            float *w = malloc(sizeof(float) * OC * C), *fq = malloc(sizeof(float) * OC * C),
                  *row = malloc(sizeof(float) * C);
            for (int i = 0; i < OC * C; i++) w[i] = frand() * (1 + (i % 7));
            w[0] = w[1];  // a tie, a zero and a constant stretch
            w[2] = 0;
            for (int i = 0; i < 5 && 10 + i < C; i++) w[10 + i] = 0.25f;
            ck_assert_int_eq(bd_fakequant_forward_ref(fq, w, OC, C, &specs[si]), BD_OK);
            bd_pk_tensor t;
            ck_assert_int_eq(bd_pk_pack(&t, w, OC, C, &specs[si], NULL, 0), BD_OK);
            char why[200];
            ck_assert_msg(bd_pk_validate(&t, why, sizeof why) == BD_OK, "%s", why);
            for (int r = 0; r < OC; r++) {
                bd_pk_dequantize_row(&t, r, row);
                for (int i = 0; i < C; i++)
                    ck_assert_msg(row[i] == fq[(size_t)r * C + i], "%s %d-bit G=%d shape %dx%d [%d,%d]: %.9g != %.9g",
                                  bd_qkind_name(specs[si].kind), specs[si].bits, specs[si].group, OC, C, r, i, row[i],
                                  fq[(size_t)r * C + i]);
            }
            bd_pk_free(&t);
            free(w), free(fq), free(row);
        }
}
END_TEST

static const int head_fmts[2] = {BD_PK_Q8, BD_PK_Q6};

START_TEST(test_head_pack_unpack_exact) {
    // The head formats decode to exactly bd_fakequant_forward's int 8/6-bit values, for rows
    // shorter than, equal to, and not a multiple of the group.
    int shapes[][2] = {{3, 64}, {5, 100}, {4, 37}, {2, 300}, {7, 16}, {2, 768}};
    for (int fi = 0; fi < 2; fi++) {
        int f = head_fmts[fi];
        bd_qspec q = bd_pk_head_spec((bd_pk_type)f);
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
            int OC = shapes[sh][0], C = shapes[sh][1];
            float *w = malloc(sizeof(float) * OC * C), *fq = malloc(sizeof(float) * OC * C),
                  *row = malloc(sizeof(float) * C);
            for (int i = 0; i < OC * C; i++) w[i] = frand() * (1 + (i % 5));
            ck_assert_int_eq(bd_fakequant_forward_ref(fq, w, OC, C, &q), BD_OK);
            bd_pk_tensor t;
            ck_assert_int_eq(bd_pk_pack_as(&t, (bd_pk_type)f, w, OC, C, &q, NULL, 0), BD_OK);
            char why[200];
            ck_assert_msg(bd_pk_validate(&t, why, sizeof why) == BD_OK, "%s", why);
            for (int r = 0; r < OC; r++) {
                bd_pk_dequantize_row(&t, r, row);
                for (int i = 0; i < C; i++)
                    ck_assert_msg(row[i] == fq[(size_t)r * C + i], "%s %dx%d [%d,%d]: %.9g != %.9g",
                                  bd_pk_traits_table[f].name, OC, C, r, i, row[i], fq[(size_t)r * C + i]);
            }
            // A zero point past 6 bits is refused (q8's is 8 bits wide: nothing to refuse).
            if (f == BD_PK_Q6) {
                t.data[t.row_bytes + 4] = 64;
                ck_assert_int_eq(bd_pk_validate(&t, why, sizeof why), BD_ERR_VALUE);
                ck_assert_msg(strstr(why, "row 1 group 0") && strstr(why, "zero point"), "%s", why);
            }
            bd_pk_free(&t);
            free(w), free(fq), free(row);
        }
    }
}
END_TEST

// The kernels with scratch of exactly the size asked for, at an odd address and full of junk
// (callers reuse it): ASan sees any write past it.
static void matmul(float *out, const float *x, const bd_pk_tensor *t, int N, bool a8, bool ref) {
    size_t n = bd_pk_matmul_scratch_bytes(t, N, a8);
    uint8_t *buf = malloc(n + 1);
    memset(buf, 0xa5, n + 1);
    if (ref)
        bd_pk_matmul_ref(out, x, t, N, a8, buf + 1);
    else
        bd_pk_matmul(out, x, t, N, a8, buf + 1);
    free(buf);
}

// |a - b| within float rounding of a dot product of length C with magnitudes mag.
static void check_close(const float *got, const float *want, const float *mag, int n, double rel, const char *what) {
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= rel * mag[i] + 1e-6, "%s [%d]: %.9g vs %.9g (mag %.3g)", what, i,
                      got[i], want[i], mag[i]);
}

START_TEST(test_kernels_vs_ref) {
    for (int path = BD_SIMD_SCALAR; path <= BD_SIMD_AVX512; path++) {
        if (!bd_pk_simd_supported((bd_simd)path)) continue;
        bd_pk_set_simd((bd_simd)path);
        ck_assert_int_eq(bd_pk_simd(), path);
        for (int si = 0; si < NSPECS; si++)
            for (int trial = 0; trial < 3; trial++) {
                int OC = 1 + (int)((frand() + 0.5f) * 40), C = 8 + (int)((frand() + 0.5f) * 300);
                if (trial == 2) C = 256;  // whole groups: the unpadded path
                int N = trial == 0 ? 1 : trial == 1 ? 3 : 9;
                float *w = malloc(sizeof(float) * OC * C), *x = malloc(sizeof(float) * N * C);
                float *got = malloc(sizeof(float) * N * OC), *want = malloc(sizeof(float) * N * OC),
                      *mag = malloc(sizeof(float) * N * OC);
                float *row = malloc(sizeof(float) * C);
                for (int i = 0; i < OC * C; i++) w[i] = frand();
                for (int i = 0; i < N * C; i++) x[i] = frand() * 4;
                bd_pk_tensor t;
                ck_assert_int_eq(bd_pk_pack(&t, w, OC, C, &specs[si], NULL, 0), BD_OK);
                for (int n = 0; n < N; n++)
                    for (int r = 0; r < OC; r++) {
                        bd_pk_dequantize_row(&t, r, row);
                        double m = 0;
                        for (int i = 0; i < C; i++) m += fabs(row[i] * x[(size_t)n * C + i]);
                        mag[n * OC + r] = (float)m;
                    }
                for (int a8 = 0; a8 <= 1; a8++) {
                    matmul(got, x, &t, N, a8, false);
                    matmul(want, x, &t, N, a8, true);
                    char what[128];
                    snprintf(what, sizeof what, "%s %s %d-bit G=%d %dx%d N=%d %s", bd_pk_simd_name((bd_simd)path),
                             bd_qkind_name(specs[si].kind), specs[si].bits, specs[si].group, OC, C, N,
                             a8 ? "int8" : "f32");
                    check_close(got, want, mag, N * OC, 2e-6 * sqrt(C) + 1e-6, what);
                    if (a8) {  // int8 activations stay near the f32 result: |x - xq sx| <= sx/2 per element
                        matmul(want, x, &t, N, false, true);
                        check_close(got, want, mag, N * OC, 0.05, what);
                    }
                }
                bd_pk_free(&t);
                free(w), free(x), free(got), free(want), free(mag), free(row);
            }
    }
    bd_pk_set_simd(BD_SIMD_SCALAR);
}
END_TEST

// The int8 activations of one token as the row dots take them: padded groups (zeros past each
// group's weights) and the sum of each group, written here independently of bd_pk_kernels.c.
static void pad_act(const bd_pk_tensor *t, const float *x, int8_t *xp, int32_t *xsum, float *xs) {
    int8_t *q = malloc((size_t)t->cols);
    bd_pk_quantize_act_ref(x, q, t->cols, xs);
    memset(xp, 0, (size_t)t->ngroups * t->gpad);
    for (int g = 0; g < t->ngroups; g++) {
        xsum[g] = 0;
        for (int i = g * t->group; i < t->cols && i < (g + 1) * t->group; i++) {
            xp[(size_t)g * t->gpad + i - g * t->group] = q[i];
            xsum[g] += q[i];
        }
    }
    free(q);
}

START_TEST(test_tiles_vs_rowdot) {
    // Integer tiles (int8 activations, N >= 8; bd_pk_tiles.c) on every path that has them: equal
    // bit for bit to the scalar int8 row dot (the same exact integer sums, then the same float
    // operations), within rounding of _ref, and the same at 1 and 2 threads. Odd shapes: C not a
    // multiple of G, G not a multiple of 32, OC and N not multiples of a tile (16 or 32 rows,
    // 4 or 8 tokens), a single row.
    struct {
        bd_pk_type f;
        bd_qspec q;
    } fm[] = {{BD_PK_Q2, {BD_Q_INT, 2, 128}},    {BD_PK_Q2, {BD_Q_SYM, 2, 24}}, {BD_PK_Q2, {BD_Q_INT, 2, 40}},
              {BD_PK_TQ2, {BD_Q_TERNARY, 2, 0}}, {BD_PK_Q3, {BD_Q_INT, 3, 48}}, {BD_PK_Q3, {BD_Q_SYM, 3, 32}},
              {BD_PK_Q6, {BD_Q_INT, 6, 64}},     {BD_PK_Q6, {BD_Q_INT, 6, 20}}, {BD_PK_Q8, {BD_Q_INT, 8, 36}},
              {BD_PK_Q8, {BD_Q_SYM, 5, 32}}};
    // N < 8: generation's matrix-vector products (gemv_i8: tq2 on AVX-512), rows not a multiple of 4,
    // C with a 32-weight tail after whole 64s (C = 96, 352) and without (C = 768).
    int shapes[][3] = {{33, 100, 8}, {70, 257, 13}, {1, 37, 9},  {64, 256, 16}, {17, 300, 29},
                       {35, 352, 1}, {7, 96, 3},    {4, 768, 1}, {18, 768, 2},  {9, 576, 1}};  // OC, C, N
    int tiled = 0;
    for (int path = BD_SIMD_AVX2; path <= BD_SIMD_AVX512; path++) {
        if (!bd_pk_simd_supported((bd_simd)path)) continue;
        bd_pk_set_simd((bd_simd)path);
        for (size_t fi = 0; fi < sizeof fm / sizeof fm[0]; fi++)
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
                int OC = shapes[sh][0], C = shapes[sh][1], N = shapes[sh][2];
                const bd_pk_traits *tr = &bd_pk_traits_table[fm[fi].f];
                float *w = malloc(sizeof(float) * OC * C), *x = malloc(sizeof(float) * N * C);
                float *got = malloc(sizeof(float) * N * OC), *got2 = malloc(sizeof(float) * N * OC),
                      *want = malloc(sizeof(float) * N * OC), *ref = malloc(sizeof(float) * N * OC),
                      *mag = malloc(sizeof(float) * N * OC), *row = malloc(sizeof(float) * C);
                for (int i = 0; i < OC * C; i++) w[i] = frand();
                for (int i = 0; i < N * C; i++) x[i] = frand() * 4 + (i % 7 == 0 ? 2 : 0);  // sums away from 0
                for (int i = 0; i < C && N > 1; i++)
                    x[C + i] = (float)(i % 21 - 10) + 0.5f;  // token 1: ties at scale 1
                if (N > 1) x[C] = 127.0f;
                bd_pk_tensor t;
                ck_assert_int_eq(bd_pk_pack_as(&t, fm[fi].f, w, OC, C, &fm[fi].q, NULL, 0), BD_OK);
                int8_t *xp = malloc((size_t)t.ngroups * t.gpad);
                int32_t *xsum = malloc(sizeof(int32_t) * t.ngroups);
                for (int n = 0; n < N; n++) {
                    float xs;
                    pad_act(&t, x + (size_t)n * C, xp, xsum, &xs);
                    for (int r = 0; r < OC; r++) {
                        const uint8_t *rowp = t.data + (size_t)r * t.row_bytes;
                        want[n * OC + r] = tr->vec_dot_i8[BD_SIMD_SCALAR](&t, rowp, xp, xsum, xs);
                        bd_pk_dequantize_row(&t, r, row);
                        double m = 0;
                        for (int i = 0; i < C; i++) m += fabs(row[i] * x[(size_t)n * C + i]);
                        mag[n * OC + r] = (float)m;
                    }
                }
                int nt = bd_num_threads();
                bd_set_num_threads(1);
                matmul(got, x, &t, N, true, false);
                bd_set_num_threads(2);
                matmul(got2, x, &t, N, true, false);
                bd_set_num_threads(nt);
                matmul(ref, x, &t, N, true, true);
                char what[128];
                snprintf(what, sizeof what, "%s %s %s %d-bit G=%d %dx%d N=%d", bd_pk_simd_name((bd_simd)path), tr->name,
                         bd_qkind_name(fm[fi].q.kind), fm[fi].q.bits, fm[fi].q.group, OC, C, N);
                check_close(got, ref, mag, N * OC, 2e-6 * sqrt(C) + 1e-6, what);
                ck_assert_msg(memcmp(got, got2, sizeof(float) * N * OC) == 0, "%s: 1 and 2 threads differ", what);
                bool has = tr->gemm_i8[path] != NULL;
                ck_assert_msg(has == !(fm[fi].f == BD_PK_Q8 && path == BD_SIMD_AVX2), "%s: tiles entry", what);
                if (N < 8) has = tr->gemv_i8[path] != NULL;
                ck_assert_msg(N >= 8 || has == (fm[fi].f == BD_PK_TQ2 && path == BD_SIMD_AVX512), "%s: gemv entry",
                              what);
                if (has) {  // the tiles' or the gemv's route: the scalar row dot's very result
                    tiled++;
                    for (int i = 0; i < N * OC; i++)
                        ck_assert_msg(got[i] == want[i], "%s [n %d row %d]: %.9g != row dot %.9g", what, i / OC, i % OC,
                                      got[i], want[i]);
                }
                bd_pk_free(&t);
                free(w), free(x), free(got), free(got2), free(want), free(ref), free(mag), free(row), free(xp),
                        free(xsum);
            }
    }
    bd_pk_set_simd(BD_SIMD_SCALAR);
    if (bd_pk_simd_supported(BD_SIMD_AVX2)) ck_assert_int_gt(tiled, 0);
}
END_TEST

START_TEST(test_f32_gemv_exact) {
    // Generation's f32 matrix-vector product (traits gemv_f32, two rows per pass on AVX-512):
    // every output is that path's f32 row dot bit for bit, at 1 and 2 threads, for row counts
    // not a multiple of 2 or 4 and rows with a masked tail (C not a multiple of 16 or 32); rows
    // further apart than their length (a borrowed matrix inside a wider one) too.
    int shapes[][2] = {{1, 5}, {3, 16}, {4, 32}, {7, 33}, {13, 100}, {70, 768}, {9, 47}};  // OC, C
    int checked = 0;
    for (int path = BD_SIMD_SCALAR; path < BD_SIMD_COUNT; path++) {
        if (!bd_pk_simd_supported((bd_simd)path)) continue;
        bd_pk_set_simd((bd_simd)path);
        const bd_pk_traits *tr = &bd_pk_traits_table[BD_PK_F32];
        ck_assert_msg((tr->gemv_f32[path] != NULL) == (path == BD_SIMD_AVX512), "gemv_f32 entry on %s",
                      bd_pk_simd_name((bd_simd)path));
        if (!tr->gemv_f32[path]) continue;
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
            for (int wide = 0; wide < 2; wide++) {
                int OC = shapes[sh][0], C = shapes[sh][1], ld = C + (wide ? 3 : 0);
                float *w = malloc(sizeof(float) * OC * ld), *x = malloc(sizeof(float) * C);
                float *got = malloc(sizeof(float) * OC), *got2 = malloc(sizeof(float) * OC);
                for (int i = 0; i < OC * ld; i++) w[i] = frand();
                for (int i = 0; i < C; i++) x[i] = frand() * 3;
                bd_pk_tensor t;
                ck_assert_int_eq(bd_pk_geometry(&t, BD_PK_F32, OC, C, 0), BD_OK);
                t.row_bytes = (size_t)ld * sizeof(float);
                t.data = (uint8_t *)w;
                t.borrowed = true;
                int nt = bd_num_threads();
                bd_set_num_threads(1);
                matmul(got, x, &t, 1, false, false);
                bd_set_num_threads(2);
                matmul(got2, x, &t, 1, false, false);
                bd_set_num_threads(nt);
                for (int r = 0; r < OC; r++) {
                    float want = tr->vec_dot_f32[path](&t, t.data + (size_t)r * t.row_bytes, x);
                    ck_assert_msg(got[r] == want && got2[r] == want,
                                  "%s %dx%d ld %d row %d: %.9g / %.9g != row dot %.9g", bd_pk_simd_name((bd_simd)path),
                                  OC, C, ld, r, got[r], got2[r], want);
                    checked++;
                }
                free(w), free(x), free(got), free(got2);
            }
    }
    bd_pk_set_simd(BD_SIMD_SCALAR);
    if (bd_pk_simd_supported(BD_SIMD_AVX512)) ck_assert_int_gt(checked, 0);
}
END_TEST

START_TEST(test_f32_tiles_exact) {
    // f32 tiles (f32 activations, N >= 8 on AVX-512; bd_pk_f32_tiles.c): every output is the
    // chain fmaf(w[C-1], x[C-1], ... fmaf(w[0], x[0], 0)) of the dequantized row, rebuilt here
    // with fmaf; the same bits at 1 and 2 threads and for a token computed among 25 or among 8.
    // Odd shapes: C below, between and above the 16-weight transpose and the 256-weight chunk,
    // OC not a multiple of the 32-row block, N not a multiple of the 12-token tile, OC and N past
    // a panel and a block of tokens; f32 rows read
    // in place (also through bd_linear_forward, with a bias), others dequantized.
    if (!bd_pk_simd_supported(BD_SIMD_AVX512)) return;
    bd_pk_set_simd(BD_SIMD_AVX512);
    struct {
        bd_pk_type f;
        bd_qspec q;
    } fm[] = {{BD_PK_F32, {BD_Q_NONE, 32, 0}},
              {BD_PK_Q2, {BD_Q_INT, 2, 40}},
              {BD_PK_TQ2, {BD_Q_TERNARY, 2, 0}},
              {BD_PK_BF16, {BD_Q_NONE, 16, 0}}};
    // The last shape crosses the 512-row panel (128 rows dequantized) and the 516-token block.
    int shapes[][3] = {{33, 17, 8},   {70, 300, 25}, {1, 16, 9},
                       {32, 520, 13}, {65, 256, 12}, {530, 40, 530}};  // OC, C, N
    for (size_t fi = 0; fi < sizeof fm / sizeof fm[0]; fi++)
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
            int OC = shapes[sh][0], C = shapes[sh][1], N = shapes[sh][2];
            float *w = malloc(sizeof(float) * OC * C), *x = malloc(sizeof(float) * N * C),
                  *row = malloc(sizeof(float) * C);
            float *got = malloc(sizeof(float) * N * OC), *got2 = malloc(sizeof(float) * N * OC),
                  *part = malloc(sizeof(float) * 8 * OC), *want = malloc(sizeof(float) * N * OC), bias[530];
            for (int i = 0; i < OC * C; i++) w[i] = frand();
            for (int i = 0; i < N * C; i++) x[i] = frand() * 4;
            for (int i = 0; i < OC; i++) bias[i] = frand();
            bd_pk_tensor t;
            if (fm[fi].f == BD_PK_BF16) {  // a mapped model's rows: no quantizer makes them
                ck_assert_int_eq(bd_pk_geometry(&t, BD_PK_BF16, OC, C, 0), BD_OK);
                ck_assert_int_eq(bd_pk_alloc(&t), BD_OK);
                for (int i = 0; i < OC * C; i++) {
                    uint16_t h = bd_f32_to_bf16(w[i]);
                    memcpy(t.data + 2 * (size_t)i, &h, 2);
                }
            } else {
                ck_assert_int_eq(bd_pk_pack_as(&t, fm[fi].f, w, OC, C, &fm[fi].q, NULL, 0), BD_OK);
            }
            for (int r = 0; r < OC; r++) {
                bd_pk_dequantize_row(&t, r, row);
                for (int n = 0; n < N; n++) {
                    float acc = 0;
                    for (int i = 0; i < C; i++) acc = fmaf(row[i], x[(size_t)n * C + i], acc);
                    want[n * OC + r] = acc;
                }
            }
            int nt = bd_num_threads();
            bd_set_num_threads(1);
            matmul(got, x, &t, N, false, false);
            bd_set_num_threads(2);
            matmul(got2, x, &t, N, false, false);
            matmul(part, x + (size_t)(N - 8) * C, &t, 8, false, false);  // the last 8 tokens alone
            bd_set_num_threads(nt);
            char what[96];
            snprintf(what, sizeof what, "%s %dx%d N=%d", bd_pk_traits_table[fm[fi].f].name, OC, C, N);
            for (int i = 0; i < N * OC; i++)
                ck_assert_msg(got[i] == want[i], "%s [n %d row %d]: %.9g != fmaf chain %.9g", what, i / OC, i % OC,
                              got[i], want[i]);
            ck_assert_msg(memcmp(got, got2, sizeof(float) * N * OC) == 0, "%s: 1 and 2 threads differ", what);
            ck_assert_msg(memcmp(part, got + (size_t)(N - 8) * OC, sizeof(float) * 8 * OC) == 0,
                          "%s: a token's result depends on the others", what);
            if (fm[fi].f == BD_PK_F32) {  // the unpacked f32 linear takes the same route, then adds the bias
                bd_linear_forward(got2, x, w, bias, N, C, OC);
                for (int i = 0; i < N * OC; i++)
                    ck_assert_msg(got2[i] == want[i] + bias[i % OC], "%s linear [%d]: %.9g != %.9g", what, i, got2[i],
                                  want[i] + bias[i % OC]);
            }
            bd_pk_free(&t);
            free(w), free(x), free(row), free(got), free(got2), free(part), free(want);
        }
    bd_pk_set_simd(BD_SIMD_SCALAR);
}
END_TEST

START_TEST(test_head_kernels_vs_ref) {
    // q8 and q6 head blocks on every path against _ref, on odd shapes: rows of any length (a
    // short last group is padded and masked), 1..9 tokens, f32 and int8 activations.
    int shapes[][2] = {{33, 64}, {17, 100}, {5, 37}, {40, 768}, {9, 200}, {3, 1}};
    for (int path = BD_SIMD_SCALAR; path <= BD_SIMD_AVX512; path++) {
        if (!bd_pk_simd_supported((bd_simd)path)) continue;
        bd_pk_set_simd((bd_simd)path);
        for (int fi = 0; fi < 2; fi++)
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
                for (int N = 1; N <= 9; N += 4) {
                    int OC = shapes[sh][0], C = shapes[sh][1], f = head_fmts[fi];
                    bd_qspec q = bd_pk_head_spec((bd_pk_type)f);
                    float *w = malloc(sizeof(float) * OC * C), *x = malloc(sizeof(float) * N * C);
                    float *got = malloc(sizeof(float) * N * OC), *want = malloc(sizeof(float) * N * OC),
                          *mag = malloc(sizeof(float) * N * OC), *row = malloc(sizeof(float) * C);
                    for (int i = 0; i < OC * C; i++) w[i] = frand();
                    for (int i = 0; i < N * C; i++) x[i] = frand() * 4;
                    bd_pk_tensor t;
                    ck_assert_int_eq(bd_pk_pack_as(&t, (bd_pk_type)f, w, OC, C, &q, NULL, 0), BD_OK);
                    for (int n = 0; n < N; n++)
                        for (int r = 0; r < OC; r++) {
                            bd_pk_dequantize_row(&t, r, row);
                            double m = 0;
                            for (int i = 0; i < C; i++) m += fabs(row[i] * x[(size_t)n * C + i]);
                            mag[n * OC + r] = (float)m;
                        }
                    for (int a8 = 0; a8 <= 1; a8++) {
                        matmul(got, x, &t, N, a8, false);
                        matmul(want, x, &t, N, a8, true);
                        char what[128];
                        snprintf(what, sizeof what, "%s %s %dx%d N=%d %s", bd_pk_simd_name((bd_simd)path),
                                 bd_pk_traits_table[f].name, OC, C, N, a8 ? "int8" : "f32");
                        check_close(got, want, mag, N * OC, 2e-6 * sqrt(C) + 1e-6, what);
                    }
                    // The dots themselves (N = 1 takes them, not sgemm), against the scalar one.
                    bd_pk_dot_f32_fn *dot = bd_pk_traits_table[f].vec_dot_f32[path];
                    if (dot && C % 32 == 0 && C % BD_PK_HEAD_GROUP == 0)
                        for (int r = 0; r < OC; r++) {
                            float a = dot(&t, t.data + (size_t)r * t.row_bytes, x),
                                  b = bd_pk_traits_table[f].vec_dot_f32[BD_SIMD_SCALAR](
                                          &t, t.data + (size_t)r * t.row_bytes, x);
                            ck_assert_msg(fabs(a - b) <= 2e-6 * sqrt(C) * mag[r] + 1e-6, "%s dot row %d: %g vs %g",
                                          bd_pk_traits_table[f].name, r, a, b);
                        }
                    bd_pk_free(&t);
                    free(w), free(x), free(got), free(want), free(mag), free(row);
                }
    }
    bd_pk_set_simd(BD_SIMD_SCALAR);
}
END_TEST

START_TEST(test_i8_dots_exact) {
    // The integer dots of q3, q8, q6 and tq2 on every SIMD path compute each group's integer sum
    // exactly and then the scalar twin's float steps: the same bits as the scalar dot, on odd
    // shapes (short and padded groups), for every row.
    struct {
        int f;
        bd_qspec q;
        int C;
    } cases[] = {{BD_PK_Q3, {BD_Q_INT, 3, 16}, 203},    {BD_PK_Q3, {BD_Q_SYM, 3, 24}, 96},
                 {BD_PK_Q3, {BD_Q_INT, 3, 128}, 768},   {BD_PK_Q8, {BD_Q_INT, 8, 10}, 77},
                 {BD_PK_Q8, {BD_Q_INT, 4, 32}, 256},    {BD_PK_Q8, {BD_Q_SYM, 8, 128}, 300},
                 {BD_PK_Q6, {BD_Q_INT, 6, 64}, 100},    {BD_PK_Q6, {BD_Q_INT, 6, 64}, 768},
                 {BD_PK_TQ2, {BD_Q_TERNARY, 2, 0}, 96}, {BD_PK_TQ2, {BD_Q_TERNARY, 2, 0}, 301}};
    int OC = 13;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int C = cases[ci].C, f = cases[ci].f;
        float *w = malloc(sizeof(float) * OC * C);
        for (int i = 0; i < OC * C; i++) w[i] = frand();
        bd_pk_tensor t;
        ck_assert_int_eq(bd_pk_pack_as(&t, (bd_pk_type)f, w, OC, C, &cases[ci].q, NULL, 0), BD_OK);
        size_t XP = (size_t)t.ngroups * t.gpad;
        int8_t *xq = calloc(XP, 1);
        int32_t *xsum = calloc((size_t)t.ngroups, sizeof *xsum);
        for (int g = 0; g < t.ngroups; g++) {
            int n = C - g * t.group < t.group ? C - g * t.group : t.group;
            for (int i = 0; i < n; i++) {
                int8_t v = (int8_t)((int)(frand() * 254.999f));  // -127..127, zeros in the padding
                xq[(size_t)g * t.gpad + i] = v;
                xsum[g] += v;
            }
        }
        const bd_pk_traits *tr = &bd_pk_traits_table[f];
        for (int p = BD_SIMD_AVX2; p < BD_SIMD_COUNT; p++) {
            if (!bd_pk_simd_supported((bd_simd)p)) continue;
            ck_assert_ptr_nonnull(tr->vec_dot_i8[p]);
            for (int r = 0; r < OC; r++) {
                const uint8_t *row = t.data + (size_t)r * t.row_bytes;
                float a = tr->vec_dot_i8[p](&t, row, xq, xsum, 0.37f);
                float b = tr->vec_dot_i8[BD_SIMD_SCALAR](&t, row, xq, xsum, 0.37f);
                ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "%s %s C=%d G=%d row %d: %.9g vs %.9g", tr->name,
                              bd_pk_simd_name((bd_simd)p), C, t.group, r, a, b);
            }
        }
        bd_pk_free(&t);
        free(w), free(xq), free(xsum);
    }
}
END_TEST

START_TEST(test_matmul_threads) {
    // Rows split over threads give the same results as one thread (each row one dot).
    int OC = 300, C = 1024, N = 2;
    float *w = malloc(sizeof(float) * OC * C), *x = malloc(sizeof(float) * N * C), *a = malloc(sizeof(float) * N * OC),
          *b = malloc(sizeof(float) * N * OC);
    for (int i = 0; i < OC * C; i++) w[i] = frand();
    for (int i = 0; i < N * C; i++) x[i] = frand();
    bd_qspec q = {BD_Q_INT, 2, 128};
    bd_pk_tensor t;
    ck_assert_int_eq(bd_pk_pack(&t, w, OC, C, &q, NULL, 0), BD_OK);
    int nt = bd_num_threads();
    bd_set_num_threads(1);
    matmul(a, x, &t, N, false, false);
    bd_set_num_threads(2);
    matmul(b, x, &t, N, false, false);
    bd_set_num_threads(nt);
    ck_assert_mem_eq(a, b, sizeof(float) * N * OC);
    bd_pk_free(&t);
    free(w), free(x), free(a), free(b);
}
END_TEST

START_TEST(test_validate) {
    float w[2 * 64];
    for (int i = 0; i < 128; i++) w[i] = frand();
    bd_qspec q = {BD_Q_INT, 2, 32};
    bd_pk_tensor t;
    ck_assert_int_eq(bd_pk_pack(&t, w, 2, 64, &q, NULL, 0), BD_OK);
    char why[200];
    float nan = NAN;
    memcpy(t.data + t.row_bytes + t.block_bytes, &nan, 4);  // row 1, group 1: NaN scale
    ck_assert_int_eq(bd_pk_validate(&t, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "row 1 group 1") && strstr(why, "scale"), "%s", why);
    float one = 1;
    memcpy(t.data + t.row_bytes + t.block_bytes, &one, 4);
    t.data[4] = 9;  // zero point beyond 2 bits
    ck_assert_int_eq(bd_pk_validate(&t, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "row 0 group 0") && strstr(why, "zero point"), "%s", why);
    bd_pk_free(&t);
    bd_qspec qt = {BD_Q_TERNARY, 2, 0};
    ck_assert_int_eq(bd_pk_pack(&t, w, 2, 64, &qt, NULL, 0), BD_OK);
    t.data[t.row_bytes + 3] |= 3 << 4;  // row 1 weight 14: code 3
    ck_assert_int_eq(bd_pk_validate(&t, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "row 1") && strstr(why, "code 3"), "%s", why);
    bd_pk_free(&t);
    float bad[4] = {1, NAN, 0, 0};
    ck_assert_int_eq(bd_pk_pack(&t, bad, 1, 4, &q, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "[0, 1]") && strstr(why, "not finite"), "%s", why);
    bd_qspec none = {BD_Q_NF3, 2, 32};
    ck_assert_int_eq(bd_pk_pack(&t, w, 1, 4, &none, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "3-bit"), "%s", why);
    bd_qspec nokind = {BD_Q_COUNT, 2, 32};
    ck_assert_int_eq(bd_pk_pack(&t, w, 1, 4, &nokind, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "no packed format"), "%s", why);
}
END_TEST

static bd_config tiny(bool tied) {
    bd_config c = {.arch = "llama",
                   .dim = 64,
                   .n_layers = 2,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = 16,
                   .ffn_dim = 96,
                   .vocab = 48,
                   .max_seq = 32,
                   .norm_eps = 1e-5f,
                   .rope_theta = 10000.0f,
                   .tied_embeddings = tied,
                   .bos = 1,
                   .eos = 2};
    return c;
}

static void fill(bd_model *m) {
    unsigned s = 7;
    for (size_t i = 0; i < m->n_params; i++) {
        s = s * 1103515245u + 12345u;
        m->params[i] = ((s >> 8) / 16777216.0f - 0.5f) * 0.5f;
    }
}

// Packs a student (spec q, policy p) and checks: save/load round trip; the packed model's
// logits equal the fake-quantized model's up to summation order, batched and step by step.
static void model_case(bool tied, bd_qspec q, const bd_qpolicy *p) {
    bd_config c = tiny(tied);
    bd_model lat, fq, back;
    ck_assert_int_eq(bd_model_alloc(&lat, &c), BD_OK);
    fill(&lat);
    lat.quant = q;
    lat.qpolicy = *p;
    ck_assert_int_eq(bd_model_alloc(&fq, &c), BD_OK);
    char why[512], path[4200];
    ck_assert_msg(bd_model_fakequant(&fq, &lat, &q, p, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_pk_model_pack(&lat, why, sizeof why) == BD_OK, "%s", why);
    snprintf(path, sizeof path, "%s/packed_%s%d.bdz", bd_test_tmpdir(), bd_qkind_name(q.kind), q.bits);
    ck_assert_msg(bd_pk_model_save(&lat, path, NULL, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load(path, &back, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_ptr_nonnull(back.packed);
    ck_assert_int_eq(back.quant.kind, q.kind);
    size_t all_params;
    bd_param_table(&c, (bd_param_entry[BD_MAX_PARAMS]){0}, &all_params);
    ck_assert(bd_pk_model_bytes(&back) < all_params * sizeof(float));
    int B = 2, T = 12, V = c.vocab;
    int32_t tok[24];
    for (int i = 0; i < B * T; i++) tok[i] = (i * 7 + 3) % V;
    float *l_fq = malloc(sizeof(float) * B * T * V), *l_pk = malloc(sizeof(float) * B * T * V),
          *l_ref = malloc(sizeof(float) * B * T * V);
    bd_fwd_state st;
    ck_assert_int_eq(bd_fwd_state_init(&st, &c, B, T, false), BD_OK);
    ck_assert_int_eq(bd_forward(&st, &fq, tok, B, T, l_fq), BD_OK);
    ck_assert_int_eq(bd_forward(&st, &back, tok, B, T, l_pk), BD_OK);
    ck_assert_int_eq(bd_forward_ref(&back, tok, B, T, l_ref, NULL, 0), BD_OK);
    for (int i = 0; i < B * T * V; i++) {
        ck_assert_close(l_pk[i], l_fq[i], 1e-4);
        ck_assert_close(l_ref[i], l_fq[i], 1e-4);
    }
    // The KV-cache path (matrix-vector kernels) agrees with the batched pass.
    bd_kv_cache kv;
    ck_assert_int_eq(bd_kv_cache_init(&kv, &c, 1, T), BD_OK);
    float *step = malloc(sizeof(float) * V);
    for (int t = 0; t < T; t++) {
        ck_assert_int_eq(bd_forward_step(&kv, &back, &tok[t], &t, 1, step), BD_OK);
        for (int v = 0; v < V; v++) ck_assert_close(step[v], l_fq[(size_t)t * V + v], 1e-4);
    }
    // int8 activations: close, not equal.
    back.packed->act_int8 = true;
    ck_assert_int_eq(bd_forward(&st, &back, tok, B, T, l_pk), BD_OK);
    double maxd = 0;
    for (int i = 0; i < B * T * V; i++) maxd = fmax(maxd, fabs(l_pk[i] - l_fq[i]));
    ck_assert_msg(maxd < 0.1, "int8 activations moved logits by %g", maxd);
    bd_kv_cache_free(&kv);
    bd_fwd_state_free(&st);
    free(l_fq), free(l_pk), free(l_ref), free(step);
    bd_model_free(&lat);
    bd_model_free(&fq);
    bd_model_free(&back);
}

START_TEST(test_packed_models) {
    bd_qpolicy p = {0};
    model_case(true, (bd_qspec){BD_Q_INT, 2, 32}, &p);
    model_case(true, (bd_qspec){BD_Q_NF3, 3, 48}, &p);
    model_case(true, (bd_qspec){BD_Q_R2Q, 2, 32}, &p);
    model_case(true, (bd_qspec){BD_Q_TERNARY, 2, 0}, &p);
    bd_qpolicy p2 = {.include_head = true};
    ck_assert_int_eq(bd_qpolicy_exclude(&p2, "layers.1.w2"), BD_OK);
    model_case(false, (bd_qspec){BD_Q_INT, 3, 40}, &p2);
    model_case(false, (bd_qspec){BD_Q_SYM, 4, 32}, &p2);
}
END_TEST

// A packed student (spec q, act_bits a8) with its head in format f (bd_pk_model_pack_head),
// saved and loaded: its logits equal, up to summation order, those of the fake-quantized
// student whose head (a tied model: its embedding too) holds the head format's values, batched
// and step by step; and they stay within tol of the same student with the f32 head.
static void head_case(bool tied, bd_qspec q, int a8, int f, double tol) {
    bd_config c = tiny(tied);
    c.vocab = 200;  // rows of the head: more than one tile of 16, not a multiple of it
    c.dim = 96;     // one full group of 64 and a short one of 32 per row
    c.n_heads = 6, c.n_kv_heads = 3;
    bd_qpolicy p = {.act_bits = a8};
    bd_model lat, fq, fqh, back;
    ck_assert_int_eq(bd_model_alloc(&lat, &c), BD_OK);
    fill(&lat);
    lat.quant = q;
    lat.qpolicy = p;
    char why[512], path[4200];
    ck_assert_int_eq(bd_model_alloc(&fq, &c), BD_OK);
    ck_assert_int_eq(bd_model_alloc(&fqh, &c), BD_OK);
    ck_assert_msg(bd_model_fakequant(&fq, &lat, &q, &p, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_fakequant(&fqh, &lat, &q, &p, why, sizeof why) == BD_OK, "%s", why);
    fq.qpolicy = fqh.qpolicy = p;
    bd_qspec hq = bd_pk_head_spec((bd_pk_type)f);
    float *head = tied ? fqh.w.tok_emb : fqh.w.wcls;
    ck_assert_int_eq(bd_fakequant_forward_ref(head, lat.w.wcls, c.vocab, c.dim, &hq), BD_OK);
    ck_assert_msg(bd_pk_model_pack(&lat, why, sizeof why) == BD_OK, "%s", why);
    size_t f32_head_bytes = bd_pk_model_bytes(&lat);
    ck_assert_msg(bd_pk_model_pack_head(&lat, (bd_pk_type)f, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(bd_pk_model_pack_head(&lat, (bd_pk_type)f, why, sizeof why), BD_OK);  // again: nothing to do
    ck_assert_int_eq(bd_pk_model_pack_head(&lat, f == BD_PK_Q8 ? BD_PK_Q6 : BD_PK_Q8, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "already stored as"), "%s", why);
    // The head's bytes: f32 4 VC -> its blocks (the tied embedding is no longer stored either).
    const bd_pk_tensor *h = bd_pk_model_slot(&lat, 0, BD_HEAD);
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(bd_pk_model_bytes(&lat), f32_head_bytes - (size_t)4 * c.vocab * c.dim + h->row_bytes * h->rows);
    snprintf(path, sizeof path, "%s/head_%s_%d.bdz", bd_test_tmpdir(), bd_pk_traits_table[f].name, tied);
    ck_assert_msg(bd_pk_model_save(&lat, path, NULL, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load(path, &back, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(back.packed->head_format, f);
    ck_assert_ptr_nonnull(bd_pk_model_slot(&back, 0, BD_HEAD));
    ck_assert(bd_pk_model_embedding(&back) == (tied ? bd_pk_model_slot(&back, 0, BD_HEAD) : NULL));
    ck_assert_int_eq(back.packed->act_int8, a8 == 8);
    if (tied)  // never read: the embedding is the packed head's rows
        for (size_t i = 0; i < (size_t)c.vocab * c.dim; i++) ck_assert(back.w.tok_emb[i] == 0);
    int B = 2, T = 12, V = c.vocab;
    int32_t tok[24];
    for (int i = 0; i < B * T; i++) tok[i] = (i * 37 + 3) % V;
    float *l_fq = malloc(sizeof(float) * B * T * V), *l_fqh = malloc(sizeof(float) * B * T * V),
          *l_pk = malloc(sizeof(float) * B * T * V), *l_ref = malloc(sizeof(float) * B * T * V);
    bd_fwd_state st;
    ck_assert_int_eq(bd_fwd_state_init(&st, &c, B, T, false), BD_OK);
    ck_assert_int_eq(bd_forward(&st, &fq, tok, B, T, l_fq), BD_OK);
    ck_assert_int_eq(bd_forward(&st, &fqh, tok, B, T, l_fqh), BD_OK);
    ck_assert_int_eq(bd_forward(&st, &back, tok, B, T, l_pk), BD_OK);
    ck_assert_int_eq(bd_forward_ref(&back, tok, B, T, l_ref, NULL, 0), BD_OK);
    double same = a8 == 8 ? 2e-3 : 1e-4, maxd = 0;
    for (int i = 0; i < B * T * V; i++) {
        ck_assert_close(l_pk[i], l_fqh[i], same);
        ck_assert_close(l_ref[i], l_fqh[i], same);
        maxd = fmax(maxd, fabs(l_pk[i] - l_fq[i]));
    }
    ck_assert_msg(maxd > 0 && maxd < tol, "%s head moved logits by %g (tolerance %g)", bd_pk_traits_table[f].name, maxd,
                  tol);
    bd_kv_cache kv;
    ck_assert_int_eq(bd_kv_cache_init(&kv, &c, 1, T), BD_OK);
    float *step = malloc(sizeof(float) * V);
    for (int t = 0; t < T; t++) {
        ck_assert_int_eq(bd_forward_step(&kv, &back, &tok[t], &t, 1, step), BD_OK);
        for (int v = 0; v < V; v++) ck_assert_close(step[v], l_fqh[(size_t)t * V + v], same);
    }
    bd_kv_cache_free(&kv);
    bd_fwd_state_free(&st);
    free(l_fq), free(l_fqh), free(l_pk), free(l_ref), free(step);
    bd_model_free(&lat);
    bd_model_free(&fq);
    bd_model_free(&fqh);
    bd_model_free(&back);
}

START_TEST(test_packed_head_formats) {
    // Tolerances on the logits (magnitude ~1 on this random model): q8's step is range/255, q6's
    // range/63 per group of 64; both well inside.
    for (int fi = 0; fi < 2; fi++) {
        int f = head_fmts[fi];
        double tol = f == BD_PK_Q8 ? 0.01 : 0.04;
        head_case(true, (bd_qspec){BD_Q_INT, 2, 32}, 0, f, tol);
        head_case(false, (bd_qspec){BD_Q_INT, 3, 40}, 0, f, tol);
        head_case(true, (bd_qspec){BD_Q_TERNARY, 2, 0}, 8, f, tol);  // the head takes f32 activations
    }
    // A file with an f32 head has no "head_format" (the format before head formats), and loads so.
    bd_config c = tiny(true);
    bd_model m, back;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m);
    m.quant = (bd_qspec){BD_Q_INT, 2, 32};
    char why[512], path[4200];
    ck_assert_msg(bd_pk_model_pack(&m, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(bd_pk_model_pack_head(&m, BD_PK_F32, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_pk_model_pack_head(&m, BD_PK_Q2, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "not a head format"), "%s", why);
    snprintf(path, sizeof path, "%s/head_f32.bdz", bd_test_tmpdir());
    ck_assert_msg(bd_pk_model_save(&m, path, NULL, why, sizeof why) == BD_OK, "%s", why);
    int err;
    bd_reader *r = bd_reader_open(path, "bd.packed", &err, why, sizeof why);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(bd_obj_get(bd_reader_header(r), "head_format"));
    bd_reader_close(r);
    ck_assert_msg(bd_model_load(path, &back, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(back.packed->head_format, BD_PK_F32);
    ck_assert_ptr_null(bd_pk_model_slot(&back, 0, BD_HEAD));
    ck_assert_ptr_null(bd_pk_model_embedding(&back));
    bd_model_free(&back);
    bd_model_free(&m);
    // A student whose spec quantizes the head (--quant-head, untied) keeps it: no head format.
    c = tiny(false);
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m);
    m.quant = (bd_qspec){BD_Q_INT, 2, 32};
    m.qpolicy = (bd_qpolicy){.include_head = true};
    ck_assert_msg(bd_pk_model_pack(&m, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(bd_pk_model_pack_head(&m, BD_PK_Q8, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "already quantized by the model's spec"), "%s", why);
    bd_model_free(&m);
}
END_TEST

START_TEST(test_packed_load_errors) {
    bd_config c = tiny(true);
    bd_model m, back;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m);
    m.quant = (bd_qspec){BD_Q_INT, 2, 32};
    char why[512], path[4200], cut[4300];
    ck_assert_msg(bd_pk_model_pack(&m, why, sizeof why) == BD_OK, "%s", why);
    // A NaN scale in layer 1's w3 is refused at load, naming the tensor, row and group.
    bd_pk_tensor *t = &m.packed->slots[1 * BD_N_LINEARS + BD_W3];
    float nan = NAN;
    memcpy(t->data + 2 * t->row_bytes, &nan, 4);
    snprintf(path, sizeof path, "%s/bad_scale.bdz", bd_test_tmpdir());
    ck_assert_msg(bd_pk_model_save(&m, path, NULL, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(bd_model_load(path, &back, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "layers.1.w3") && strstr(why, "row 2 group 0") && strstr(why, "scale"), "%s", why);
    // A truncated stream is an error, never a short model.
    float one = 1;
    memcpy(t->data + 2 * t->row_bytes, &one, 4);
    snprintf(path, sizeof path, "%s/good.bdz", bd_test_tmpdir());
    ck_assert_msg(bd_pk_model_save(&m, path, NULL, why, sizeof why) == BD_OK, "%s", why);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
    fclose(f);
    snprintf(cut, sizeof cut, "%s/cut.bdz", bd_test_tmpdir());
    for (long k = 1; k < n; k += n / 23 + 1) {
        f = fopen(cut, "wb");
        fwrite(buf, 1, (size_t)k, f);
        fclose(f);
        ck_assert_int_lt(bd_model_load(cut, &back, why, sizeof why), 0);
    }
    free(buf);
    bd_model_free(&m);
}
END_TEST

#ifdef BD_X86
// The tiles' 16 x 16 register transpose against the index swap (each lane a distinct value).
T_AVX512 static void transpose16_on(float *m) {
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(m + 16 * i);
    bd_transpose16_ps(r);
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(m + 16 * i, r[i]);
}
#endif

START_TEST(test_transpose16) {
#ifdef BD_X86
    if (!bd_pk_simd_supported(BD_SIMD_AVX512)) return;
    float m[256];
    for (int i = 0; i < 256; i++) m[i] = (float)i;
    transpose16_on(m);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) ck_assert_msg(m[16 * i + j] == (float)(16 * j + i), "lane (%d, %d)", i, j);
#endif
}
END_TEST

Suite *suite_packed(void) {
    Suite *s = suite_create("packed");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_layout_by_hand);
    tcase_add_test(tc, test_head_layout_by_hand);
    tcase_add_test(tc, test_head_pack_unpack_exact);
    tcase_add_test(tc, test_head_kernels_vs_ref);
    tcase_add_test(tc, test_traits_table);
    tcase_add_test(tc, test_pack_unpack_exact);
    tcase_add_test(tc, test_kernels_vs_ref);
    tcase_add_test(tc, test_i8_dots_exact);
    tcase_add_test(tc, test_matmul_threads);
    tcase_add_test(tc, test_tiles_vs_rowdot);
    tcase_add_test(tc, test_f32_gemv_exact);
    tcase_add_test(tc, test_f32_tiles_exact);
    tcase_add_test(tc, test_transpose16);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_packed_models);
    tcase_add_test(tc, test_packed_head_formats);
    tcase_add_test(tc, test_packed_load_errors);
    suite_add_tcase(s, tc);
    return s;
}
