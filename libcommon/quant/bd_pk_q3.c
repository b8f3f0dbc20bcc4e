// q3: 3-bit affine blocks, for the int and sym 3-bit quantizers. Block (bd_block_q3): f32 s,
// u8 z, then a 2-bit low plane (GP/4 bytes) and a 1-bit high plane (GP/8); w = (q - z) * s.
// int8 activations: the scalar integer dot; the SIMD paths have no integer kernel (NULL).
#include "bd_pk_simd.h"

void bd_quantize_row_q3_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    for (int g = 0; g < t->ngroups; g++) {
        bd_block_q3 *b = bd_pk_block(dst, t, g);
        const float *x = w + (size_t)g * t->group;
        int n = bd_pk_group_len(t, g);
        bd_qgroup qg = bd_pk_affine_group(x, n, q);
        memset(b, 0, t->block_bytes);
        b->s = qg.s;
        b->z = (uint8_t)qg.z;
        for (int i = 0; i < n; i++) bd_put3(b->qs, t->gpad, i, bd_pk_affine_code(&qg, q, x[i]));
    }
}

void bd_dequantize_row_q3(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q3 *b = bd_pk_cblock(src, t, g);
        float *o = out + (size_t)g * t->group;
        for (int i = 0, n = bd_pk_group_len(t, g); i < n; i++)
            o[i] = bd_qvalue_affine((float)bd_get3(b->qs, t->gpad, i), b->z, b->s);
    }
}

int bd_validate_row_q3(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q3 *b = bd_pk_cblock(row, t, g);
        int rc = bd_pk_affine_check(b->s, b->z, 3, r, g, why, ws);
        if (rc < 0) return rc;
    }
    return BD_OK;
}

float bd_vec_dot_q3_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q3 *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        float lut[8];
        bd_pk_affine_lut(lut, b->s, b->z);
        for (int i = 0; i < t->gpad; i++) acc += lut[bd_get3(b->qs, t->gpad, i)] * x[i];
    }
    return acc;
}

float bd_vec_dot_q3_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                              float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q3 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        int32_t dot = 0;
        for (int i = 0; i < t->gpad; i++) dot += bd_get3(b->qs, t->gpad, i) * x[i];
        acc += b->s * (float)(dot - b->z * xsum[g]);
    }
    return acc * xs;
}

#ifdef BD_X86
T_AVX2 float bd_vec_dot_q3_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q3 *b = bd_pk_cblock(row, t, g);
        bd_dot3_f32_avx2(bd_affine_L_avx2(b->s, b->z, 3), b->qs, xp + (size_t)g * t->gpad, t->gpad, &a0, &a1);
    }
    return bd_hsum256(_mm256_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_q3_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q3 *b = bd_pk_cblock(row, t, g);
        bd_dot3_f32_avx512(bd_affine_L_avx512(b->s, b->z, 3), b->qs, xp + (size_t)g * t->gpad, t->gpad, &a0, &a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// int8 activations: codes as bytes (low plane as q2's, the high plane's bits as 4), the
// group's integer dot exactly, then the scalar twin's float steps: bit-identical to it.
T_AVX2 float bd_vec_dot_q3_i8_avx2(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                   float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q3 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        const uint8_t *qh = b->qs + t->gpad / 4;
        __m256i a = _mm256_setzero_si256();
        for (int i = 0; i < t->gpad; i += 32) {
            __m256i c = _mm256_or_si256(bd_unpack2_32(b->qs + i / 4), bd_bits_to_bytes_avx2(bd_rd32(qh + i / 8), 4));
            a = bd_dot_u7_i8_avx2(a, c, x + i);
        }
        acc += b->s * (float)(bd_hsum256_epi32(a) - b->z * xsum[g]);
    }
    return acc * xs;
}

T_AVX512 float bd_vec_dot_q3_i8_avx512(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                       float xs) {
    float acc = 0;
    const __m256i four = _mm256_set1_epi8(4);
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q3 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        const uint8_t *qh = b->qs + t->gpad / 4;
        __m256i a = _mm256_setzero_si256();
        for (int i = 0; i < t->gpad; i += 32) {
            __m256i c = _mm256_or_si256(bd_unpack2_32_avx512(b->qs + i / 4),
                                        _mm256_maskz_mov_epi8((__mmask32)bd_rd32(qh + i / 8), four));
            a = _mm256_dpbusd_epi32(a, c, _mm256_loadu_si256((const __m256i *)(const void *)(x + i)));
        }
        acc += b->s * (float)(bd_hsum256_epi32(a) - b->z * xsum[g]);
    }
    return acc * xs;
}
#endif
