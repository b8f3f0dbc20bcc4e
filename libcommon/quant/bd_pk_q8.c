// q8: 8-bit affine blocks, for the int and sym quantizers of 4 to 8 bits. Block (bd_block_q8):
// f32 s, u8 z, then one code byte per weight; w = (q - z) * s. The f32 dots convert codes
// directly (no table of 256 values). int8 activations: the scalar integer dot only.
#include "bd_pk_simd.h"

void bd_quantize_row_q8_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    for (int g = 0; g < t->ngroups; g++) {
        bd_block_q8 *b = bd_pk_block(dst, t, g);
        const float *x = w + (size_t)g * t->group;
        int n = bd_pk_group_len(t, g);
        bd_qgroup qg = bd_pk_affine_group(x, n, q);
        memset(b, 0, t->block_bytes);
        b->s = qg.s;
        b->z = (uint8_t)qg.z;
        for (int i = 0; i < n; i++) b->qs[i] = (uint8_t)bd_pk_affine_code(&qg, q, x[i]);
    }
}

void bd_dequantize_row_q8(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q8 *b = bd_pk_cblock(src, t, g);
        float *o = out + (size_t)g * t->group;
        for (int i = 0, n = bd_pk_group_len(t, g); i < n; i++) o[i] = bd_qvalue_affine((float)b->qs[i], b->z, b->s);
    }
}

int bd_validate_row_q8(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q8 *b = bd_pk_cblock(row, t, g);
        int rc = bd_pk_affine_check(b->s, b->z, 8, r, g, why, ws);
        if (rc < 0) return rc;
    }
    return BD_OK;
}

float bd_vec_dot_q8_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q8 *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        float s = b->s;
        int z = b->z;
        for (int i = 0; i < t->gpad; i++) acc += (float)(b->qs[i] - z) * s * x[i];
    }
    return acc;
}

float bd_vec_dot_q8_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                              float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q8 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        int32_t dot = 0;
        for (int i = 0; i < t->gpad; i++) dot += b->qs[i] * x[i];
        acc += b->s * (float)(dot - b->z * xsum[g]);
    }
    return acc * xs;
}

#ifdef BD_X86
T_AVX2 float bd_vec_dot_q8_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q8 *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        __m256 s = _mm256_set1_ps(b->s);
        __m256i z = _mm256_set1_epi32(b->z);
        for (int i = 0; i < t->gpad; i += 16) {
            __m256i q0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + i)));
            __m256i q1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + i + 8)));
            a0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q0, z)), s), _mm256_loadu_ps(x + i),
                                 a0);
            a1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q1, z)), s),
                                 _mm256_loadu_ps(x + i + 8), a1);
        }
    }
    return bd_hsum256(_mm256_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_q8_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q8 *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        __m512 s = _mm512_set1_ps(b->s);
        __m512i z = _mm512_set1_epi32(b->z);
        for (int i = 0; i < t->gpad; i += 32) {
            __m512i q0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + i)));
            __m512i q1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + i + 16)));
            a0 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q0, z)), s), _mm512_loadu_ps(x + i),
                                 a0);
            a1 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q1, z)), s),
                                 _mm512_loadu_ps(x + i + 16), a1);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// int8 activations: the group's integer dot exactly (AVX2: codes widened to 16 bits, as
// vpmaddubsw would saturate on 8-bit codes; AVX-512: VNNI vpdpbusd), then the scalar twin's
// float steps in its order, so the result is bit-identical to bd_vec_dot_q8_i8_scalar.
T_AVX2 float bd_vec_dot_q8_i8_avx2(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                   float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q8 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        __m256i a = _mm256_setzero_si256();
        for (int i = 0; i < t->gpad; i += 16) {
            __m256i q = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b->qs + i)));
            __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(x + i)));
            a = _mm256_add_epi32(a, _mm256_madd_epi16(q, v));
        }
        acc += b->s * (float)(bd_hsum256_epi32(a) - b->z * xsum[g]);
    }
    return acc * xs;
}

T_AVX512 float bd_vec_dot_q8_i8_avx512(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                       float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q8 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        __m256i a = _mm256_setzero_si256();
        for (int i = 0; i < t->gpad; i += 32)
            a = _mm256_dpbusd_epi32(a, _mm256_loadu_si256((const __m256i *)(b->qs + i)),
                                    _mm256_loadu_si256((const __m256i *)(const void *)(x + i)));
        acc += b->s * (float)(bd_hsum256_epi32(a) - b->z * xsum[g]);
    }
    return acc * xs;
}
#endif
