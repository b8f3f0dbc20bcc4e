// bf16 and f16: a full-precision model's linears kept in the 16-bit dtype of its file, one block
// per row of C values (little-endian), usually borrowed from a file mapping (bd_model_load_mapped)
// rather than packed. Rows are only 2-byte aligned there, and nothing may be read past a row's
// end (the mapping ends where the file does), so the SIMD dots load unaligned and mask the tail.
// A bf16 value is the top half of an f32, so widening is exact; f16 widens exactly too.
#include <math.h>

#include "bd_dtype.h"
#include "bd_pk_simd.h"

static uint16_t half_at(const uint8_t *p, int i) { return (uint16_t)(p[2 * i] | p[2 * i + 1] << 8); }

// ---- bf16 ----

void bd_quantize_row_bf16_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    (void)q;
    for (int i = 0; i < t->cols; i++) {
        uint16_t h = bd_f32_to_bf16(w[i]);
        dst[2 * i] = (uint8_t)h, dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

void bd_dequantize_row_bf16(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    for (int i = 0; i < t->cols; i++) out[i] = bd_bf16_to_f32(half_at(src, i));
}

int bd_validate_row_bf16(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int i = 0; i < t->cols; i++) {
        float v = bd_bf16_to_f32(half_at(row, i));
        if (!isfinite(v)) return bd_pk_bad(why, ws, r, i, "weight %g is not finite", v);
    }
    return BD_OK;
}

float bd_vec_dot_bf16_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    float acc = 0;
    for (int i = 0; i < t->cols; i++) acc += bd_bf16_to_f32(half_at(row, i)) * xp[i];
    return acc;
}

float bd_vec_dot_bf16_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                float xs) {
    (void)xsum;
    float acc = 0;
    for (int i = 0; i < t->cols; i++) acc += bd_bf16_to_f32(half_at(row, i)) * (float)xq[i];
    return acc * xs;
}

// ---- f16 ----

void bd_quantize_row_f16_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    (void)q;
    for (int i = 0; i < t->cols; i++) {
        uint16_t h = bd_f32_to_f16(w[i]);
        dst[2 * i] = (uint8_t)h, dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

void bd_dequantize_row_f16(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    for (int i = 0; i < t->cols; i++) out[i] = bd_f16_to_f32(half_at(src, i));
}

int bd_validate_row_f16(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int i = 0; i < t->cols; i++) {
        float v = bd_f16_to_f32(half_at(row, i));
        if (!isfinite(v)) return bd_pk_bad(why, ws, r, i, "weight %g is not finite", v);
    }
    return BD_OK;
}

float bd_vec_dot_f16_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    float acc = 0;
    for (int i = 0; i < t->cols; i++) acc += bd_f16_to_f32(half_at(row, i)) * xp[i];
    return acc;
}

float bd_vec_dot_f16_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                               float xs) {
    (void)xsum;
    float acc = 0;
    for (int i = 0; i < t->cols; i++) acc += bd_f16_to_f32(half_at(row, i)) * (float)xq[i];
    return acc * xs;
}

#ifdef BD_X86
// ---- SIMD (generation's matrix-vector products read every weight once: these set its speed) ----

T_AVX2 float bd_vec_dot_bf16_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    int C = t->cols, i = 0;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; i + 16 <= C; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(row + 2 * i));
        __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)), 16));
        __m256 w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)), 16));
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xp + i), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xp + i + 8), a1);
    }
    float acc = bd_hsum256(_mm256_add_ps(a0, a1));
    for (; i < C; i++) acc += bd_bf16_to_f32(half_at(row, i)) * xp[i];
    return acc;
}

T_AVX512 float bd_vec_dot_bf16_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    int C = t->cols, i = 0;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (; i + 32 <= C; i += 32) {
        __m512i h = _mm512_loadu_si512((const void *)(row + 2 * i));
        __m512 w0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
        __m512 w1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
        a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xp + i), a0);
        a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xp + i + 16), a1);
    }
    for (; i < C; i += 16) {  // masked tail: nothing past the row is read
        __mmask16 m = C - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - i)) - 1);
        __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * i);
        __m512 w = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        a0 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, xp + i), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_f16_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    int C = t->cols, i = 0;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (; i + 32 <= C; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * i))),
                             _mm512_loadu_ps(xp + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * i + 32))),
                             _mm512_loadu_ps(xp + i + 16), a1);
    }
    for (; i < C; i += 16) {
        __mmask16 m = C - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - i)) - 1);
        __m512 w = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * i));
        a0 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, xp + i), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}
#endif
