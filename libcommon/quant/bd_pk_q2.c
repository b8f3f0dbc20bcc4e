// q2: 2-bit affine blocks, for the int and sym 2-bit quantizers. Block (bd_block_q2): f32 s,
// u8 z, then GP/4 bytes of codes; w = (q - z) * s. Integer int8 kernels on every path:
// sum_g s_g * (sum_i q_i xq_i - z_g sum_i xq_i) * sx.
#include "bd_pk_simd.h"

void bd_quantize_row_q2_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    for (int g = 0; g < t->ngroups; g++) {
        bd_block_q2 *b = bd_pk_block(dst, t, g);
        const float *x = w + (size_t)g * t->group;
        int n = bd_pk_group_len(t, g);
        bd_qgroup qg = bd_pk_affine_group(x, n, q);
        memset(b, 0, t->block_bytes);
        b->s = qg.s;
        b->z = (uint8_t)qg.z;
        for (int i = 0; i < n; i++) bd_put2(b->qs, i, bd_pk_affine_code(&qg, q, x[i]));
    }
}

void bd_dequantize_row_q2(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q2 *b = bd_pk_cblock(src, t, g);
        float *o = out + (size_t)g * t->group;
        for (int i = 0, n = bd_pk_group_len(t, g); i < n; i++)
            o[i] = bd_qvalue_affine((float)bd_get2(b->qs, i), b->z, b->s);
    }
}

int bd_validate_row_q2(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q2 *b = bd_pk_cblock(row, t, g);
        int rc = bd_pk_affine_check(b->s, b->z, 2, r, g, why, ws);
        if (rc < 0) return rc;
    }
    return BD_OK;
}

float bd_vec_dot_q2_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q2 *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        float lut[8];
        bd_pk_affine_lut(lut, b->s, b->z);
        for (int i = 0; i < t->gpad; i++) acc += lut[bd_get2(b->qs, i)] * x[i];
    }
    return acc;
}

float bd_vec_dot_q2_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                              float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q2 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        int32_t dot = 0;
        for (int i = 0; i < t->gpad; i++) dot += bd_get2(b->qs, i) * x[i];
        acc += b->s * (float)(dot - b->z * xsum[g]);
    }
    return acc * xs;
}

#ifdef BD_X86
T_AVX2 float bd_vec_dot_q2_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q2 *b = bd_pk_cblock(row, t, g);
        bd_dot2_f32_avx2(bd_affine_L_avx2(b->s, b->z, 2), b->qs, xp + (size_t)g * t->gpad, t->gpad, &a0, &a1);
    }
    return bd_hsum256(_mm256_add_ps(a0, a1));
}

T_AVX2 float bd_vec_dot_q2_i8_avx2(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                   float xs) {
    __m256 accf = _mm256_setzero_ps();
    float corr = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q2 *b = bd_pk_cblock(row, t, g);
        __m256i acc = bd_dot2_i8_avx2(b->qs, xq + (size_t)g * t->gpad, t->gpad);
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(b->s), accf);
        corr += b->s * (float)(b->z * xsum[g]);
    }
    return (bd_hsum256(accf) - corr) * xs;
}

T_AVX512 float bd_vec_dot_q2_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q2 *b = bd_pk_cblock(row, t, g);
        bd_dot2_f32_avx512(bd_affine_L_avx512(b->s, b->z, 2), b->qs, xp + (size_t)g * t->gpad, t->gpad, &a0, &a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_q2_i8_avx512(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                       float xs) {
    __m256 accf = _mm256_setzero_ps();
    float corr = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q2 *b = bd_pk_cblock(row, t, g);
        __m256i acc = bd_dot2_i8_avx512(b->qs, xq + (size_t)g * t->gpad, t->gpad);
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(b->s), accf);
        corr += b->s * (float)(b->z * xsum[g]);
    }
    return (bd_hsum256(accf) - corr) * xs;
}
#endif
