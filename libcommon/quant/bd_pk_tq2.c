// tq2: ternary weights with one scale per tensor, D = mean |W| (t->scale). One group per row
// and no block header: a row is GP/32 bd_block_tq2 of 32 2-bit codes q = level + 1;
// w = (q - 1) * D. Integer int8 kernels on every path (as q2 with s = D, z = 1), each the scalar
// row dot's bits; generation's matrix-vector product on AVX-512 runs four rows per pass.
#include "bd_pk_simd.h"

float bd_pk_tq2_scale(const float *w, size_t n) { return (float)bd_ternary_scale(w, n); }

// A row's blocks are contiguous chunks of 32 codes: one 2-bit plane of GP codes.
static const uint8_t *plane(const uint8_t *row) { return ((const bd_block_tq2 *)(const void *)row)->qs; }

void bd_quantize_row_tq2_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    (void)q;
    bd_block_tq2 *b = (bd_block_tq2 *)(void *)dst;
    memset(b, 0, t->block_bytes);
    for (int i = 0; i < t->cols; i++) bd_put2(b[i / BD_QK].qs, i % BD_QK, (int)bd_qlevel_ternary(w[i], t->scale) + 1);
}

void bd_dequantize_row_tq2(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    const uint8_t *qs = plane(src);
    for (int i = 0; i < t->cols; i++) out[i] = (float)(bd_get2(qs, i) - 1) * t->scale;
}

int bd_validate_row_tq2(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    if (r == 0 && !(isfinite(t->scale) && t->scale >= 0))
        return bd_pk_bad(why, ws, 0, 0, "ternary scale %g is not a finite non-negative number", t->scale);
    const uint8_t *qs = plane(row);
    for (int i = 0; i < t->cols; i++)
        if (bd_get2(qs, i) == 3) return bd_pk_bad(why, ws, r, 0, "ternary code 3 at weight %g (codes are 0..2)", i);
    return BD_OK;
}

float bd_vec_dot_tq2_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    const uint8_t *qs = plane(row);
    float lut[4], acc = 0;
    for (int c = 0; c < 4; c++) lut[c] = (float)(c - 1) * t->scale;
    for (int i = 0; i < t->gpad; i++) acc += lut[bd_get2(qs, i)] * xp[i];
    return acc;
}

// The float steps after a row's integer sum sum_i q_i xq_i, on every path: w = (q - 1) D.
static inline float finish(const bd_pk_tensor *t, int32_t dot, const int32_t *xsum, float xs) {
    float acc = 0.0f + t->scale * (float)(dot - xsum[0]);  // 0 + (the sign of a zero): as q2's sum over groups
    return acc * xs;
}

float bd_vec_dot_tq2_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                               float xs) {
    const uint8_t *qs = plane(row);
    int32_t dot = 0;
    for (int i = 0; i < t->gpad; i++) dot += bd_get2(qs, i) * xq[i];
    return finish(t, dot, xsum, xs);
}

#ifdef BD_X86
T_AVX2 float bd_vec_dot_tq2_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    bd_dot2_f32_avx2(bd_affine_L_avx2(t->scale, 1, 2), plane(row), xp, t->gpad, &a0, &a1);
    return bd_hsum256(_mm256_add_ps(a0, a1));
}

T_AVX2 float bd_vec_dot_tq2_i8_avx2(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                    float xs) {
    return finish(t, bd_hsum256_epi32(bd_dot2_i8_avx2(plane(row), xq, t->gpad)), xsum, xs);
}

T_AVX512 float bd_vec_dot_tq2_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    bd_dot2_f32_avx512(bd_affine_L_avx512(t->scale, 1, 2), plane(row), xp, t->gpad, &a0, &a1);
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_tq2_i8_avx512(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq,
                                        const int32_t *xsum, float xs) {
    return finish(t, bd_hsum256_epi32(bd_dot2_i8_avx512(plane(row), xq, t->gpad)), xsum, xs);
}

// 64 codes (16 bytes at p) as bytes in order: lanes 0-3 of the source hold the first 8 bytes,
// lanes 4-7 the next 8, and vpmultishiftqb picks each code's two bits from its lane.
T_AVX512 BD_SIMD_INLINE __m512i unpack2_64(const uint8_t *p, __m512i ctrl, __m512i sel) {
    __m512i q = _mm512_permutexvar_epi64(sel, _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p)));
    return _mm512_and_si512(_mm512_multishift_epi64_epi8(ctrl, q), _mm512_set1_epi8(3));
}

// The activations of 256-weight chunks in the order of the codes' bit planes: 64 bytes of a row
// hold weights 4b + s at bits 2s of byte b, so (bytes >> 2s) & 3 is plane s, and xperm's plane s
// is x[4b + s], b = 0..63. Per chunk: vpermb groups each 64 bytes by s (16 bytes each), then a 4x4
// transpose of 128-bit lanes gathers the four groups of each plane.
T_AVX512 static void planes_of_x(int8_t *xperm, const int8_t *x, int n256) {
    __m512i idx = _mm512_set_epi32(0x3f3b3733, 0x2f2b2723, 0x1f1b1713, 0x0f0b0703, 0x3e3a3632, 0x2e2a2622, 0x1e1a1612,
                                   0x0e0a0602, 0x3d393531, 0x2d292521, 0x1d191511, 0x0d090501, 0x3c383430, 0x2c282420,
                                   0x1c181410, 0x0c080400);
    for (int c = 0; c < n256; c++) {
        const int8_t *in = x + (size_t)c * 256;
        __m512i a0 = _mm512_permutexvar_epi8(idx, _mm512_loadu_si512((const void *)in)),
                a1 = _mm512_permutexvar_epi8(idx, _mm512_loadu_si512((const void *)(in + 64))),
                a2 = _mm512_permutexvar_epi8(idx, _mm512_loadu_si512((const void *)(in + 128))),
                a3 = _mm512_permutexvar_epi8(idx, _mm512_loadu_si512((const void *)(in + 192)));
        __m512i t0 = _mm512_shuffle_i64x2(a0, a1, 0x44), t1 = _mm512_shuffle_i64x2(a0, a1, 0xee),
                t2 = _mm512_shuffle_i64x2(a2, a3, 0x44), t3 = _mm512_shuffle_i64x2(a2, a3, 0xee);
        int8_t *o = xperm + (size_t)c * 256;
        _mm512_storeu_si512((void *)o, _mm512_shuffle_i64x2(t0, t2, 0x88));
        _mm512_storeu_si512((void *)(o + 64), _mm512_shuffle_i64x2(t0, t2, 0xdd));
        _mm512_storeu_si512((void *)(o + 128), _mm512_shuffle_i64x2(t1, t3, 0x88));
        _mm512_storeu_si512((void *)(o + 192), _mm512_shuffle_i64x2(t1, t3, 0xdd));
    }
}

// One row's 64 bytes (256 weights) against the four planes of xperm, into two accumulators.
#define TQ2_PLANES(a, b, w, m3, x0, x1, x2, x3)                                                  \
    do {                                                                                         \
        (a) = _mm512_dpbusd_epi32((a), _mm512_and_si512((w), (m3)), (x0));                       \
        (b) = _mm512_dpbusd_epi32((b), _mm512_and_si512(_mm512_srli_epi16((w), 2), (m3)), (x1)); \
        (a) = _mm512_dpbusd_epi32((a), _mm512_and_si512(_mm512_srli_epi16((w), 4), (m3)), (x2)); \
        (b) = _mm512_dpbusd_epi32((b), _mm512_and_si512(_mm512_srli_epi16((w), 6), (m3)), (x3)); \
    } while (0)

#define TQ2_PLANE_COLS 32768  // columns the stack copy of planes covers (7B: 11008); the rest as the tail

// Generation's matrix-vector product: four rows per pass share each activation load (one row
// dot per pass reads the activations as often as the codes, and was bound by that, not by
// memory). Whole 256-weight chunks take one 64-byte load per row and shifts (planes_of_x has put
// the activations in plane order once per call); the rest (and columns past TQ2_PLANE_COLS)
// 64 codes per vpmultishiftqb, then a 32-weight tail as the row dot's.
T_AVX512 void bd_gemv_tq2_i8_avx512(float *out, const bd_pk_tensor *t, const int8_t *xq, const int32_t *xsum, float xs,
                                    int r0, int r1) {
    const __m512i ctrl =
            _mm512_set4_epi64(0x3e3c3a3836343230, 0x2e2c2a2826242220, 0x1e1c1a1816141210, 0x0e0c0a0806040200);
    const __m512i sel = _mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0), m3 = _mm512_set1_epi8(3);
    int gp = t->gpad, g256 = (gp < TQ2_PLANE_COLS ? gp : TQ2_PLANE_COLS) / 256 * 256, g64 = gp / 64 * 64;
    _Alignas(64) int8_t xperm[TQ2_PLANE_COLS];
    planes_of_x(xperm, xq, g256 / 256);
    size_t rb = t->row_bytes;
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint8_t *p = plane(t->data + (size_t)r * rb);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int i = 0; i < g256; i += 256) {
            __m512i x0 = _mm512_load_si512((const void *)(xperm + i)),
                    x1 = _mm512_load_si512((const void *)(xperm + i + 64)),
                    x2 = _mm512_load_si512((const void *)(xperm + i + 128)),
                    x3 = _mm512_load_si512((const void *)(xperm + i + 192));
            // Software prefetch two passes ahead, the line of each row this step's loads will
            // need there: the hardware's alone left the loop waiting on memory. Spread over the
            // steps, not in a burst per pass (a pass's 4 KB burst on a 4096-column row filled the
            // fill buffers: 4096 x 11008 from DRAM, one core, 9.1 -> 13-16 GB/s; two, 17 -> 25-28).
            if (r + 12 <= r1)
                for (int q = 0; q < 4; q++) _mm_prefetch((const char *)(p + (8 + q) * rb + i / 4), _MM_HINT_T0);
            __m512i w0 = _mm512_loadu_si512((const void *)(p + i / 4)),
                    w1 = _mm512_loadu_si512((const void *)(p + rb + i / 4)),
                    w2 = _mm512_loadu_si512((const void *)(p + 2 * rb + i / 4)),
                    w3 = _mm512_loadu_si512((const void *)(p + 3 * rb + i / 4));
            TQ2_PLANES(a0, b0, w0, m3, x0, x1, x2, x3);
            TQ2_PLANES(a1, b1, w1, m3, x0, x1, x2, x3);
            TQ2_PLANES(a2, b2, w2, m3, x0, x1, x2, x3);
            TQ2_PLANES(a3, b3, w3, m3, x0, x1, x2, x3);
        }
        for (int i = g256; i < g64; i += 64) {
            __m512i x = _mm512_loadu_si512((const void *)(xq + i));
            a0 = _mm512_dpbusd_epi32(a0, unpack2_64(p + i / 4, ctrl, sel), x);
            a1 = _mm512_dpbusd_epi32(a1, unpack2_64(p + rb + i / 4, ctrl, sel), x);
            a2 = _mm512_dpbusd_epi32(a2, unpack2_64(p + 2 * rb + i / 4, ctrl, sel), x);
            a3 = _mm512_dpbusd_epi32(a3, unpack2_64(p + 3 * rb + i / 4, ctrl, sel), x);
        }
        int32_t d[4] = {_mm512_reduce_add_epi32(_mm512_add_epi32(a0, b0)),
                        _mm512_reduce_add_epi32(_mm512_add_epi32(a1, b1)),
                        _mm512_reduce_add_epi32(_mm512_add_epi32(a2, b2)),
                        _mm512_reduce_add_epi32(_mm512_add_epi32(a3, b3))};
        for (int k = 0; k < 4; k++) {
            if (g64 < gp) d[k] += bd_hsum256_epi32(bd_dot2_i8_avx512(p + k * rb + g64 / 4, xq + g64, gp - g64));
            out[r + k] = finish(t, d[k], xsum, xs);
        }
    }
    for (; r < r1; r++) out[r] = bd_vec_dot_tq2_i8_avx512(t, t->data + (size_t)r * rb, xq, xsum, xs);
}
#endif
