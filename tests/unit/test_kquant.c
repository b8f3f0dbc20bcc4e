// llama.cpp's K-quant blocks (bd_kquant.h) and the q2_K/q3_K/q4_K fake quantizers and packed
// formats built on them. The oracle decoders here walk a block the way ggml's
// dequantize_row_q2_K / _q3_K / _q4_K do (pointer walks over 128- or 64-weight halves, the
// 12-byte scale unpacking by 32-bit masks), not by bd's per-weight index formulas, so a layout
// mistake in either shows. A hand-worked block pins the q2_K bytes; error bounds against plain
// min-max rounding show the scales are chosen sensibly; the fake quantizer, the packed rows and
// the blocks agree exactly.
#include <string.h>

#include "bd_dtype.h"
#include "bd_kquant.h"
#include "bd_packed.h"
#include "bd_quant.h"
#include "bd_test.h"
#include "bd_threads.h"

static uint32_t rng = 12345;
static float urand(void) {  // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

// ---- oracle decoders, ggml's walk ----------------------------------------------------------------

static void oracle_q2_K(const bd_block_q2_K *b, float *y) {
    float d = bd_f16_to_f32(b->d), mn = bd_f16_to_f32(b->dmin);
    const uint8_t *q = b->qs;
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                uint8_t sc = b->scales[is++];
                float dl = d * (sc & 0xF), ml = mn * (sc >> 4);
                for (int l = 0; l < 16; ++l) {
                    float a = dl * (float)((q[l + 16 * half] >> shift) & 3);
                    *y++ = a - ml;
                }
            }
        }
        q += 32;
    }
}

static void oracle_q3_K(const bd_block_q3_K *b, float *y) {
    uint32_t aux[4];
    memcpy(aux, b->scales, 12);
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & 0x0f0f0f0f) | (((tmp >> 4) & 0x03030303) << 4);
    aux[3] = ((aux[1] >> 4) & 0x0f0f0f0f) | (((tmp >> 6) & 0x03030303) << 4);
    aux[0] = (aux[0] & 0x0f0f0f0f) | (((tmp >> 0) & 0x03030303) << 4);
    aux[1] = (aux[1] & 0x0f0f0f0f) | (((tmp >> 2) & 0x03030303) << 4);
    int8_t sc[16];
    memcpy(sc, aux, 16);
    float d = bd_f16_to_f32(b->d);
    const uint8_t *q = b->qs;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
            for (int half = 0; half < 2; half++) {
                float dl = d * (float)(sc[is++] - 32);
                for (int l = 0; l < 16; ++l) {
                    int k = l + 16 * half;
                    *y++ = dl * (float)(((q[k] >> shift) & 3) - ((b->hmask[k] & m) ? 0 : 4));
                }
            }
        }
        q += 32;
    }
}

static void oracle_q4_K(const bd_block_q4_K *b, float *y) {
    float d = bd_f16_to_f32(b->d), mn = bd_f16_to_f32(b->dmin);
    const uint8_t *q = b->qs, *s = b->scales;
    for (int j = 0; j < 8; j += 2) {
        float dl[2], ml[2];
        for (int k = 0; k < 2; k++) {
            int i = j + k, sc = i < 4 ? s[i] & 63 : (s[i + 4] & 0xF) | ((s[i - 4] >> 6) << 4);
            int mm = i < 4 ? s[i + 4] & 63 : (s[i + 4] >> 4) | ((s[i] >> 6) << 4);
            dl[k] = d * (float)sc;
            ml[k] = mn * (float)mm;
        }
        for (int k = 0; k < 2; k++)
            for (int l = 0; l < 32; ++l) {
                float a = dl[k] * (float)(k ? q[l] >> 4 : q[l] & 0xF);
                *y++ = a - ml[k];
            }
        q += 32;
    }
}

// ---- tests --------------------------------------------------------------------------------------

// Weights of one block: smooth, with a spread of magnitudes across sub-blocks and an outlier.
static void random_block(float *x, float amp) {
    for (int i = 0; i < 256; i++) x[i] = amp * urand() * (1.0f + (float)(i / 16) * 0.2f);
    x[37] = 4 * amp;
}

static void expect_same(const float *a, const float *b, int n, const char *what) {
    for (int i = 0; i < n; i++) ck_assert_msg(a[i] == b[i], "%s: weight %d: %.9g vs oracle %.9g", what, i, a[i], b[i]);
}

START_TEST(test_kquant_layouts_match_ggml_walk) {
    float x[256], y[256], o[256];
    for (int trial = 0; trial < 20; trial++) {
        random_block(x, trial % 2 ? 0.02f : 3.0f);
        if (trial == 5)
            for (int i = 0; i < 256; i++) x[i] = fabsf(x[i]) + 0.1f;  // all positive: min clamped to 0
        if (trial == 6)
            for (int i = 0; i < 256; i++) x[i] = -fabsf(x[i]) - 0.1f;  // all negative
        bd_block_q2_K b2;
        bd_quantize_block_q2_K(x, &b2);
        bd_dequantize_block_q2_K(&b2, y);
        oracle_q2_K(&b2, o);
        expect_same(y, o, 256, "q2_K");
        bd_block_q3_K b3;
        bd_quantize_block_q3_K(x, &b3);
        bd_dequantize_block_q3_K(&b3, y);
        oracle_q3_K(&b3, o);
        expect_same(y, o, 256, "q3_K");
        bd_block_q4_K b4;
        bd_quantize_block_q4_K(x, &b4);
        bd_dequantize_block_q4_K(&b4, y);
        oracle_q4_K(&b4, o);
        expect_same(y, o, 256, "q4_K");
    }
    // Random bytes: every scale, min and code bit decodes the same way in both walks.
    for (int trial = 0; trial < 50; trial++) {
        uint8_t raw[144];
        for (size_t i = 0; i < sizeof raw; i++) raw[i] = (uint8_t)(urand() * 128 + 128);
        bd_block_q2_K b2;
        bd_block_q3_K b3;
        bd_block_q4_K b4;
        memcpy(&b2, raw, sizeof b2);
        memcpy(&b3, raw, sizeof b3);
        memcpy(&b4, raw, sizeof b4);
        b2.d = b3.d = b4.d = bd_f32_to_f16(0.01f);
        b2.dmin = b4.dmin = bd_f32_to_f16(0.003f);
        bd_dequantize_block_q2_K(&b2, y);
        oracle_q2_K(&b2, o);
        expect_same(y, o, 256, "q2_K bytes");
        bd_dequantize_block_q3_K(&b3, y);
        oracle_q3_K(&b3, o);
        expect_same(y, o, 256, "q3_K bytes");
        bd_dequantize_block_q4_K(&b4, y);
        oracle_q4_K(&b4, o);
        expect_same(y, o, 256, "q4_K bytes");
    }
}
END_TEST

START_TEST(test_q2_K_hand_block) {
    // Every sub-block holds 0, .5, 1, 1.5 repeated: min 0, s = .5, so d = f16(.5/15), every
    // scale nibble 15 (s/d rounds to 15), every min 0, dmin 0; weight i = 128h + 32s + l has
    // code l % 4, so byte 32h + l holds (l % 4) in all four 2-bit slots: (l % 4) * 0x55.
    float x[256], y[256];
    for (int i = 0; i < 256; i++) x[i] = 0.5f * (float)(i % 4);
    bd_block_q2_K b;
    bd_quantize_block_q2_K(x, &b);
    ck_assert_uint_eq(b.d, bd_f32_to_f16(0.5f / 15));
    ck_assert_uint_eq(b.dmin, 0);
    for (int j = 0; j < 16; j++) ck_assert_uint_eq(b.scales[j], 15);
    for (int k = 0; k < 64; k++) ck_assert_uint_eq(b.qs[k], (k % 32 % 4) * 0x55);
    bd_dequantize_block_q2_K(&b, y);
    float dl = bd_f16_to_f32(bd_f32_to_f16(0.5f / 15)) * 15;
    for (int i = 0; i < 256; i++) ck_assert(y[i] == dl * (float)(i % 4));
    ck_assert_close(y[3], 1.5, 1e-3);
}
END_TEST

// Root mean square error of plain min-max rounding of groups of n weights to `levels` levels
// with exact f32 scales: the K-quants, which round their scales to a few bits, must stay close.
static double minmax_rmse(const float *x, int N, int n, int levels) {
    double e = 0;
    for (int g = 0; g < N; g += n) {
        float lo = x[g], hi = x[g];
        for (int i = 1; i < n; i++) lo = fminf(lo, x[g + i]), hi = fmaxf(hi, x[g + i]);
        float s = (hi - lo) / (float)(levels - 1);
        for (int i = 0; i < n; i++) {
            float v = lo + s * rintf((x[g + i] - lo) / s);
            e += (double)(v - x[g + i]) * (v - x[g + i]);
        }
    }
    return sqrt(e / N);
}

START_TEST(test_kquant_error_near_minmax) {
    enum { N = 256 * 64 };
    static float x[N], y[N];
    for (int b = 0; b < N / 256; b++) random_block(x + 256 * b, 0.05f);
    struct {
        bd_qkind kind;
        int bits, sub, levels;
        double ratio;
    } cases[] = {{BD_Q_Q2_K, 2, 16, 4, 1.25}, {BD_Q_Q3_K, 3, 16, 8, 1.6}, {BD_Q_Q4_K, 4, 32, 16, 1.25}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bd_qspec q = {cases[c].kind, cases[c].bits, 0};
        ck_assert_int_eq(bd_fakequant_forward(y, x, N / 256, 256, &q), BD_OK);
        double e = 0;
        for (int i = 0; i < N; i++) e += (double)(y[i] - x[i]) * (y[i] - x[i]);
        e = sqrt(e / N);
        double ref = minmax_rmse(x, N, cases[c].sub, cases[c].levels);
        // q3_K is symmetric (levels -4..3 around 0), so it pays for its missing zero point.
        ck_assert_msg(e <= cases[c].ratio * ref && e > 0.5 * ref, "%s: rmse %.4g, min-max %.4g",
                      bd_qkind_name(cases[c].kind), e, ref);
    }
}
END_TEST

START_TEST(test_kquant_fakequant_packed_and_blocks_agree) {
    enum { OC = 5, C = 512 };
    static float w[OC * C], fq[OC * C], row[C];
    for (int i = 0; i < OC * C; i++) w[i] = 0.1f * urand();
    bd_qkind kinds[] = {BD_Q_Q2_K, BD_Q_Q3_K, BD_Q_Q4_K};
    bd_pk_type types[] = {BD_PK_Q2_K, BD_PK_Q3_K, BD_PK_Q4_K};
    size_t bytes[] = {sizeof(bd_block_q2_K), sizeof(bd_block_q3_K), sizeof(bd_block_q4_K)};
    for (int k = 0; k < 3; k++) {
        bd_qspec q = {kinds[k], 2 + k, 256};
        ck_assert_int_eq(bd_fakequant_forward(fq, w, OC, C, &q), BD_OK);
        bd_pk_tensor t;
        char why[256];
        ck_assert_int_eq(bd_pk_type_for(&q), types[k]);
        ck_assert_int_eq(bd_pk_pack(&t, w, OC, C, &q, why, sizeof why), BD_OK);
        ck_assert_uint_eq(t.row_bytes, 2 * bytes[k]);  // ggml's row size: C/256 blocks
        ck_assert_int_eq(bd_pk_validate(&t, why, sizeof why), BD_OK);
        for (int r = 0; r < OC; r++) {
            bd_pk_dequantize_row(&t, r, row);
            expect_same(row, fq + (size_t)r * C, C, bd_qkind_name(kinds[k]));
        }
        // The row bytes are the blocks bd_quantize_block_* writes.
        uint8_t blk[144];
        if (k == 0) bd_quantize_block_q2_K(w + 256, (void *)blk);
        if (k == 1) bd_quantize_block_q3_K(w + 256, (void *)blk);
        if (k == 2) bd_quantize_block_q4_K(w + 256, (void *)blk);
        ck_assert(memcmp(t.data + bytes[k], blk, bytes[k]) == 0);
        // The kernels compute with those weights: a product against the naive one.
        float x[C], out[OC], ref[OC];
        for (int i = 0; i < C; i++) x[i] = urand();
        void *scratch = malloc(bd_pk_matmul_scratch_bytes(&t, 1, false) + 1);
        bd_pk_matmul(out, x, &t, 1, false, scratch);
        for (int r = 0; r < OC; r++) {
            double acc = 0;
            for (int i = 0; i < C; i++) acc += (double)fq[(size_t)r * C + i] * x[i];
            ref[r] = (float)acc;
            ck_assert_close(out[r], ref[r], 1e-4 * (1 + fabs(ref[r])));
        }
        free(scratch);
        // A corrupt f16 factor is refused by validation.
        uint16_t inf = 0x7c00;
        memcpy(t.data + (k == 0   ? offsetof(bd_block_q2_K, d)
                         : k == 1 ? offsetof(bd_block_q3_K, d)
                                  : offsetof(bd_block_q4_K, d)),
               &inf, 2);
        ck_assert_int_eq(bd_pk_validate(&t, why, sizeof why), BD_ERR_VALUE);
        ck_assert_msg(strstr(why, "row 0 group 0") && strstr(why, "not finite"), "%s", why);
        bd_pk_free(&t);
    }
}
END_TEST

START_TEST(test_kquant_kernels_every_path) {
    // The vector dot of every SIMD path (AVX2 decodes codes in registers) against the plain
    // twin, at 1 and 3 tokens, f32 and int8 activations (AVX-512: integer sub-block sums), for
    // the three formats; a mistake in a bit position shows as an
    // error far above the rounding allowed here.
    enum { OC = 7, C = 768 };
    static float w[OC * C], x[3 * C], got[3 * OC], want[3 * OC], row[C];
    for (int i = 0; i < OC * C; i++) w[i] = 0.05f * urand() * (1 + (i % 5));
    for (int i = 0; i < 3 * C; i++) x[i] = urand();
    bd_qkind kinds[] = {BD_Q_Q2_K, BD_Q_Q3_K, BD_Q_Q4_K};
    for (int k = 0; k < 3; k++) {
        bd_qspec q = {kinds[k], 2 + k, 256};
        bd_pk_tensor t;
        ck_assert_int_eq(bd_pk_pack(&t, w, OC, C, &q, NULL, 0), BD_OK);
        for (int path = BD_SIMD_SCALAR; path < BD_SIMD_COUNT; path++) {
            if (!bd_pk_simd_supported((bd_simd)path)) continue;
            bd_pk_set_simd((bd_simd)path);
            for (int N = 1; N <= 3; N += 2)
                for (int a8 = 0; a8 <= 1; a8++) {  // f32 and int8 activations
                    void *scratch = malloc(bd_pk_matmul_scratch_bytes(&t, N, a8) + 1);
                    bd_pk_matmul(got, x, &t, N, a8, scratch);
                    bd_pk_matmul_ref(want, x, &t, N, a8, scratch);
                    free(scratch);
                    for (int n = 0; n < N; n++)
                        for (int r = 0; r < OC; r++) {
                            bd_pk_dequantize_row(&t, r, row);
                            double mag = 0;
                            for (int i = 0; i < C; i++) mag += fabs(row[i] * x[(size_t)n * C + i]);
                            ck_assert_msg(fabs(got[n * OC + r] - want[n * OC + r]) <= 1e-5 * mag + 1e-6,
                                          "%s %s N=%d a8=%d [%d,%d]: %.7g vs %.7g", bd_pk_simd_name((bd_simd)path),
                                          bd_qkind_name(kinds[k]), N, a8, n, r, got[n * OC + r], want[n * OC + r]);
                        }
                }
        }
        bd_pk_set_simd(BD_SIMD_SCALAR);
        bd_pk_free(&t);
    }
}
END_TEST

START_TEST(test_kquant_spec_checks) {
    char why[256];
    bd_qspec q = {BD_Q_Q2_K, 2, 0};
    ck_assert_int_eq(bd_qspec_check(&q, 512, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_qspec_group(&q, 512), 256);
    ck_assert_int_eq(bd_qspec_check(&q, 172, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "multiple of 256 weights, not 172"), "%s", why);
    q.group = 128;
    ck_assert_int_eq(bd_qspec_check(&q, 512, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "256-weight super-blocks"), "%s", why);
    q = (bd_qspec){BD_Q_Q3_K, 2, 256};
    ck_assert_int_eq(bd_qspec_check(&q, 512, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "q3_K takes --bits 3"), "%s", why);
    ck_assert_int_eq(bd_qkind_parse("q4_K"), BD_Q_Q4_K);
    ck_assert_str_eq(bd_qkind_name(BD_Q_Q2_K), "q2_K");
    // NaN weights are refused, as for every quantizer.
    static float w[256], out[256];
    w[3] = NAN;
    q = (bd_qspec){BD_Q_Q4_K, 4, 256};
    ck_assert_int_eq(bd_fakequant_forward(out, w, 1, 256, &q), BD_ERR_VALUE);
}
END_TEST

START_TEST(test_kquant_straight_through) {
    // The backward of a K-quant is the identity: dw += dwq.
    static float w[512], dwq[512], dw[512];
    for (int i = 0; i < 512; i++) w[i] = urand(), dwq[i] = urand(), dw[i] = 1;
    bd_qspec q = {BD_Q_Q2_K, 2, 256};
    bd_fakequant_backward(dw, dwq, w, 2, 256, &q);
    for (int i = 0; i < 512; i++) ck_assert(dw[i] == 1 + dwq[i]);
}
END_TEST

// The integer form of a K-quant product with int8 activations, from ggml's walk of the blocks
// (dequantize_row_q2_K / q4_K: weights in order, the sub-block index advancing every 16 or 32),
// written apart from the kernels: per block isum = sum_j sc_j sum q x, msum = sum_j m_j sum x,
// acc += d isum - dmin msum, times the token's scale at the end.
static float kq_int_dot(bd_pk_type type, const uint8_t *row, int C, const int8_t *x, float xs) {
    float acc = 0;
    for (int g = 0; g < C / 256; g++, x += 256) {
        int q[256], sub[256], sc[16], m[16], n = 0;
        float d, dmin;
        if (type == BD_PK_Q2_K) {
            bd_block_q2_K b;
            memcpy(&b, row + (size_t)g * sizeof b, sizeof b);
            d = bd_f16_to_f32(b.d), dmin = bd_f16_to_f32(b.dmin);
            int is = 0;
            for (int h = 0; h < 2; h++)
                for (int shift = 0; shift < 8; shift += 2)
                    for (int half = 0; half < 2; half++, is++) {
                        sc[is] = b.scales[is] & 15, m[is] = b.scales[is] >> 4;
                        for (int l = 0; l < 16; l++, n++) q[n] = b.qs[32 * h + 16 * half + l] >> shift & 3, sub[n] = is;
                    }
        } else {
            bd_block_q4_K b;
            memcpy(&b, row + (size_t)g * sizeof b, sizeof b);
            d = bd_f16_to_f32(b.d), dmin = bd_f16_to_f32(b.dmin);
            for (int j = 0; j < 8; j++) bd_q4_K_scale_min(b.scales, j, &sc[j], &m[j]);
            for (int h = 0; h < 4; h++)
                for (int nib = 0; nib < 2; nib++)
                    for (int l = 0; l < 32; l++, n++) q[n] = b.qs[32 * h + l] >> (4 * nib) & 15, sub[n] = 2 * h + nib;
        }
        int32_t dot[16] = {0}, sum[16] = {0}, isum = 0, msum = 0;
        for (int i = 0; i < 256; i++) dot[sub[i]] += q[i] * x[i], sum[sub[i]] += x[i];
        for (int j = 0; j < 16; j++) isum += sc[j] * dot[j], msum += m[j] * sum[j];
        acc += d * (float)isum - dmin * (float)msum;
    }
    return acc * xs;
}

START_TEST(test_kquant_int8_tiles_exact) {
    // q2_K and q4_K with int8 activations: the scalar row dot and, on AVX-512, the integer tiles
    // (N >= 8; bd_pk_kquant_tiles.c) and the matrix-vector kernel (N < 8; traits gemv_i8) give
    // kq_int_dot's value bit for bit, the same at 1 and 2 threads; within rounding of the plain twin. Rows not a multiple of the 32-row block,
    // tokens not a multiple of the 8- or 6-token tile, one to three blocks per row, and 18 (the
    // matrix-vector kernel reduces 16 blocks at a time).
    int shapes[][3] = {{33, 256, 8}, {70, 512, 13}, {1, 256, 9}, {65, 768, 25},
                       {7, 512, 3},  {41, 768, 1},  {9, 4608, 1}};  // OC, C, N
    bd_pk_type types[] = {BD_PK_Q2_K, BD_PK_Q4_K};
    for (int k = 0; k < 2; k++)
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
            int OC = shapes[sh][0], C = shapes[sh][1], N = shapes[sh][2];
            bd_qspec q = {types[k] == BD_PK_Q2_K ? BD_Q_Q2_K : BD_Q_Q4_K, types[k] == BD_PK_Q2_K ? 2 : 4, 256};
            float *w = malloc(sizeof(float) * OC * C), *x = malloc(sizeof(float) * N * C),
                  *got = malloc(sizeof(float) * N * OC), *got2 = malloc(sizeof(float) * N * OC),
                  *ref = malloc(sizeof(float) * N * OC);
            int8_t *xq = malloc((size_t)C);
            for (int i = 0; i < OC * C; i++) w[i] = 0.05f * urand() * (1 + (i % 5));
            for (int i = 0; i < N * C; i++) x[i] = urand() + (i % 9 == 0 ? 0.7f : 0);
            bd_pk_tensor t;
            ck_assert_int_eq(bd_pk_pack(&t, w, OC, C, &q, NULL, 0), BD_OK);
            void *scratch = malloc(bd_pk_matmul_scratch_bytes(&t, N, true) + 1);
            for (int path = BD_SIMD_SCALAR; path < BD_SIMD_COUNT; path++) {
                if (!bd_pk_simd_supported((bd_simd)path)) continue;
                if (path == BD_SIMD_AVX2) continue;  // its row dots round differently
                bd_pk_set_simd((bd_simd)path);
                int nt = bd_num_threads();
                bd_set_num_threads(1);
                bd_pk_matmul(got, x, &t, N, true, scratch);
                bd_set_num_threads(2);
                bd_pk_matmul(got2, x, &t, N, true, scratch);
                bd_set_num_threads(nt);
                bd_pk_matmul_ref(ref, x, &t, N, true, scratch);
                for (int n = 0; n < N; n++) {
                    float xs;
                    bd_pk_quantize_act_ref(x + (size_t)n * C, xq, C, &xs);
                    for (int r = 0; r < OC; r++) {
                        float want = kq_int_dot(types[k], t.data + (size_t)r * t.row_bytes, C, xq, xs);
                        ck_assert_msg(got[n * OC + r] == want, "%s %s %dx%d N=%d [%d,%d]: %.9g != %.9g",
                                      bd_pk_simd_name((bd_simd)path), bd_pk_traits_table[types[k]].name, OC, C, N, n, r,
                                      got[n * OC + r], want);
                        ck_assert(fabs(got[n * OC + r] - ref[n * OC + r]) <= 1e-5 * (1 + fabs(ref[n * OC + r])));
                    }
                }
                ck_assert_msg(memcmp(got, got2, sizeof(float) * N * OC) == 0, "1 and 2 threads differ");
            }
            bd_pk_set_simd(BD_SIMD_SCALAR);
            bd_pk_free(&t);
            free(scratch), free(w), free(x), free(got), free(got2), free(ref), free(xq);
        }
}
END_TEST

Suite *suite_kquant(void) {
    Suite *s = suite_create("kquant");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_kquant_layouts_match_ggml_walk);
    tcase_add_test(tc, test_q2_K_hand_block);
    tcase_add_test(tc, test_kquant_error_near_minmax);
    tcase_add_test(tc, test_kquant_fakequant_packed_and_blocks_agree);
    tcase_add_test(tc, test_kquant_kernels_every_path);
    tcase_add_test(tc, test_kquant_int8_tiles_exact);
    tcase_add_test(tc, test_kquant_spec_checks);
    tcase_add_test(tc, test_kquant_straight_through);
    suite_add_tcase(s, tc);
    return s;
}
