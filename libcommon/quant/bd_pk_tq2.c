// tq2: ternary weights with one scale per tensor, D = mean |W| (t->scale). One group per row
// and no block header: a row is GP/32 bd_block_tq2 of 32 2-bit codes q = level + 1;
// w = (q - 1) * D. Integer int8 kernels on every path (as q2 with s = D, z = 1).
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

float bd_vec_dot_tq2_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                               float xs) {
    const uint8_t *qs = plane(row);
    int32_t dot = 0;
    for (int i = 0; i < t->gpad; i++) dot += bd_get2(qs, i) * xq[i];
    float acc = 0.0f + t->scale * (float)(dot - xsum[0]);  // 0 + (the sign of a zero): as q2's sum over groups
    return acc * xs;
}

#ifdef BD_X86
T_AVX2 float bd_vec_dot_tq2_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    bd_dot2_f32_avx2(bd_affine_L_avx2(t->scale, 1, 2), plane(row), xp, t->gpad, &a0, &a1);
    return bd_hsum256(_mm256_add_ps(a0, a1));
}

T_AVX2 float bd_vec_dot_tq2_i8_avx2(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                    float xs) {
    __m256i acc = bd_dot2_i8_avx2(plane(row), xq, t->gpad);
    __m256 accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(t->scale), _mm256_setzero_ps());
    float corr = 0.0f + t->scale * (float)xsum[0];
    return (bd_hsum256(accf) - corr) * xs;
}

T_AVX512 float bd_vec_dot_tq2_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    bd_dot2_f32_avx512(bd_affine_L_avx512(t->scale, 1, 2), plane(row), xp, t->gpad, &a0, &a1);
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_tq2_i8_avx512(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq,
                                        const int32_t *xsum, float xs) {
    __m256i acc = bd_dot2_i8_avx512(plane(row), xq, t->gpad);
    __m256 accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(t->scale), _mm256_setzero_ps());
    float corr = 0.0f + t->scale * (float)xsum[0];
    return (bd_hsum256(accf) - corr) * xs;
}
#endif
