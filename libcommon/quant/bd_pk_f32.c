// f32: a layer kept in full precision, as a packed tensor of one block per row (C floats).
// Models keep such layers in their f32 weights (bd_pk_model_slot gives NULL); the row exists
// so every tensor type has the same behaviour, and it is how a mapped full-precision model's
// linears (borrowed rows) and f32 matrix-vector products of generation (bd_linear_forward at
// N < 8: the head) run. int8 activations: the scalar dot.
#include "bd_pk_simd.h"

void bd_quantize_row_f32_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    (void)q;
    memcpy(dst, w, (size_t)t->cols * sizeof *w);
}

void bd_dequantize_row_f32(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    memcpy(out, src, (size_t)t->cols * sizeof *out);
}

int bd_validate_row_f32(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    const float *w = (const void *)row;
    for (int i = 0; i < t->cols; i++)
        if (!isfinite(w[i])) return bd_pk_bad(why, ws, r, i, "weight %g is not finite", w[i]);
    return BD_OK;
}

float bd_vec_dot_f32_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    const float *w = (const void *)row;
    float acc = 0;
    for (int i = 0; i < t->cols; i++) acc += w[i] * xp[i];
    return acc;
}

float bd_vec_dot_f32_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                               float xs) {
    (void)xsum;
    const float *w = (const void *)row;
    float acc = 0;
    for (int i = 0; i < t->cols; i++) acc += w[i] * (float)xq[i];
    return acc * xs;
}

#ifdef BD_X86
// Generation reads every weight once per token: these dots set its speed on f32 layers. Two
// accumulators, a masked tail (nothing past the row is read).
T_AVX2 float bd_vec_dot_f32_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    const float *w = (const void *)row;
    int C = t->cols, i = 0;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; i + 16 <= C; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(xp + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(xp + i + 8), a1);
    }
    for (; i < C; i += 8) {
        int n = C - i < 8 ? C - i : 8;
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        a0 = _mm256_fmadd_ps(_mm256_maskload_ps(w + i, m), _mm256_maskload_ps(xp + i, m), a0);
    }
    return bd_hsum256(_mm256_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_f32_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    const float *w = (const void *)row;
    int C = t->cols, i = 0;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (; i + 32 <= C; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(xp + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(xp + i + 16), a1);
    }
    for (; i < C; i += 16) {
        __mmask16 m = C - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - i)) - 1);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, xp + i), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// Rows r0..r1 of a matrix-vector product, GEMV_ROWS rows per pass (the traits' gemv_f32): each
// row's sums are bd_vec_dot_f32_f32_avx512's (the same two accumulators, tail and reduction: the
// same bits), but the rows stream at once. One row at a time read a 32000 x 768 head at 13-18 GB/s
// on one core of a Xeon whose read loop gives 20-21; four at a time, 19-21 (bench_pack gemv). Two
// at a time generate fastest: bench_model tg128 on the 110M f32 model, interleaved, 1 thread
// 31.9-32.8 (four rows) -> 34.4-34.9 tokens/s, 2 threads 58.9-61.4 -> 61.2-64.1 (one row 52.6-56.0,
// three 59.6-61.3, eight 56.6-58.6); the 7B stack 7.2-7.3 -> 7.3-7.4 and 13.7 -> 13.8-14.2.
#define GEMV_ROWS 2
T_AVX512 void bd_gemv_f32_avx512(float *out, const bd_pk_tensor *t, const float *xp, int r0, int r1) {
    int C = t->cols, r = r0;
    for (; r + GEMV_ROWS <= r1; r += GEMV_ROWS) {
        const float *w = (const void *)(t->data + (size_t)r * t->row_bytes);
        size_t ld = t->row_bytes / sizeof(float);
        __m512 a0[GEMV_ROWS], a1[GEMV_ROWS];
        for (int q = 0; q < GEMV_ROWS; q++) a0[q] = a1[q] = _mm512_setzero_ps();
        int i = 0;
        for (; i + 32 <= C; i += 32) {
            __m512 x0 = _mm512_loadu_ps(xp + i), x1 = _mm512_loadu_ps(xp + i + 16);
            for (int q = 0; q < GEMV_ROWS; q++) {
                a0[q] = _mm512_fmadd_ps(_mm512_loadu_ps(w + q * ld + i), x0, a0[q]);
                a1[q] = _mm512_fmadd_ps(_mm512_loadu_ps(w + q * ld + i + 16), x1, a1[q]);
            }
        }
        for (; i < C; i += 16) {
            __mmask16 m = C - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - i)) - 1);
            __m512 x0 = _mm512_maskz_loadu_ps(m, xp + i);
            for (int q = 0; q < GEMV_ROWS; q++)
                a0[q] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + q * ld + i), x0, a0[q]);
        }
        for (int q = 0; q < GEMV_ROWS; q++) out[r + q] = _mm512_reduce_add_ps(_mm512_add_ps(a0[q], a1[q]));
    }
    for (; r < r1; r++) out[r] = bd_vec_dot_f32_f32_avx512(t, t->data + (size_t)r * t->row_bytes, xp);
}
#endif
