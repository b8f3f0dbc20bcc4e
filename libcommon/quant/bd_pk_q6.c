// q6: 6-bit affine blocks for an output head quantized after training (bd-pack --head-format q6;
// never a student's format: q8 holds 6-bit specs first). Block (bd_block_q6): f32 s, u8 z, then
// the codes of GP weights as a 4-bit low plane (GP/2 bytes) and a 2-bit high plane (GP/4 bytes),
// per chunk of 32 weights (see bd_packed.h); w = (q - z) * s. f32 dots: scalar, AVX2 and
// AVX-512, each decoding a chunk's 32 codes into 32 bytes with 128-bit operations and then
// converting them as q8 does. int8 activations: the scalar integer dot only.
#include "bd_pk_simd.h"

// Code i of a block (GP weights) and its setter (the block zeroed first).
static inline int get6(const uint8_t *qs, int gp, int i) {
    int c = i >> 5, j = i & 31;
    int lo = qs[16 * c + (j & 15)] >> (j < 16 ? 0 : 4) & 15;
    int hi = qs[gp / 2 + 8 * c + (j & 7)] >> (2 * (j >> 3)) & 3;
    return lo | hi << 4;
}
static inline void put6(uint8_t *qs, int gp, int i, int q) {
    int c = i >> 5, j = i & 31;
    qs[16 * c + (j & 15)] |= (uint8_t)((q & 15) << (j < 16 ? 0 : 4));
    qs[gp / 2 + 8 * c + (j & 7)] |= (uint8_t)((q >> 4 & 3) << (2 * (j >> 3)));
}

void bd_quantize_row_q6_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    for (int g = 0; g < t->ngroups; g++) {
        bd_block_q6 *b = bd_pk_block(dst, t, g);
        const float *x = w + (size_t)g * t->group;
        int n = bd_pk_group_len(t, g);
        bd_qgroup qg = bd_pk_affine_group(x, n, q);
        memset(b, 0, t->block_bytes);
        b->s = qg.s;
        b->z = (uint8_t)qg.z;
        for (int i = 0; i < n; i++) put6(b->qs, t->gpad, i, bd_pk_affine_code(&qg, q, x[i]));
    }
}

void bd_dequantize_row_q6(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q6 *b = bd_pk_cblock(src, t, g);
        float *o = out + (size_t)g * t->group;
        for (int i = 0, n = bd_pk_group_len(t, g); i < n; i++)
            o[i] = bd_qvalue_affine((float)get6(b->qs, t->gpad, i), b->z, b->s);
    }
}

int bd_validate_row_q6(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q6 *b = bd_pk_cblock(row, t, g);
        int rc = bd_pk_affine_check(b->s, b->z, 6, r, g, why, ws);
        if (rc < 0) return rc;
    }
    return BD_OK;
}

float bd_vec_dot_q6_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q6 *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        float s = b->s;
        int z = b->z;
        for (int i = 0; i < t->gpad; i++) acc += (float)(get6(b->qs, t->gpad, i) - z) * s * x[i];
    }
    return acc;
}

float bd_vec_dot_q6_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                              float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q6 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        int32_t dot = 0;
        for (int i = 0; i < t->gpad; i++) dot += get6(b->qs, t->gpad, i) * x[i];
        acc += b->s * (float)(dot - b->z * xsum[g]);
    }
    return acc * xs;
}

#ifdef BD_X86
// The 32 codes of chunk c as bytes: *c0 weights 0..15, *c1 weights 16..31 (SSE2, baseline x86-64).
static inline void unpack6_32(const uint8_t *qs, int gp, int c, __m128i *c0, __m128i *c1) {
    const __m128i m4 = _mm_set1_epi8(15), m2 = _mm_set1_epi8(3);
    __m128i lo = _mm_loadu_si128((const __m128i *)(qs + 16 * c));
    __m128i h = _mm_loadl_epi64((const __m128i *)(qs + gp / 2 + 8 * c));  // byte j%8: 2 bits per j/8
    __m128i h0 = _mm_and_si128(h, m2), h1 = _mm_and_si128(_mm_srli_epi16(h, 2), m2);
    __m128i h2 = _mm_and_si128(_mm_srli_epi16(h, 4), m2), h3 = _mm_and_si128(_mm_srli_epi16(h, 6), m2);
    __m128i hi0 = _mm_unpacklo_epi64(h0, h1), hi1 = _mm_unpacklo_epi64(h2, h3);  // weights 0..15, 16..31
    *c0 = _mm_or_si128(_mm_and_si128(lo, m4), _mm_slli_epi16(hi0, 4));
    *c1 = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(lo, 4), m4), _mm_slli_epi16(hi1, 4));
}

T_AVX2 float bd_vec_dot_q6_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q6 *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        __m256 s = _mm256_set1_ps(b->s);
        __m256i z = _mm256_set1_epi32(b->z);
        for (int c = 0; c < t->gpad / 32; c++) {
            __m128i q[2];
            unpack6_32(b->qs, t->gpad, c, &q[0], &q[1]);
            const float *xc = x + 32 * c;
            for (int h = 0; h < 2; h++) {
                __m256i v0 = _mm256_cvtepu8_epi32(q[h]), v1 = _mm256_cvtepu8_epi32(_mm_srli_si128(q[h], 8));
                a0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v0, z)), s),
                                     _mm256_loadu_ps(xc + 16 * h), a0);
                a1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v1, z)), s),
                                     _mm256_loadu_ps(xc + 16 * h + 8), a1);
            }
        }
    }
    return bd_hsum256(_mm256_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_q6_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q6 *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        __m512 s = _mm512_set1_ps(b->s);
        __m512i z = _mm512_set1_epi32(b->z);
        for (int c = 0; c < t->gpad / 32; c++) {
            __m128i q0, q1;
            unpack6_32(b->qs, t->gpad, c, &q0, &q1);
            const float *xc = x + 32 * c;
            a0 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q0), z)), s),
                                 _mm512_loadu_ps(xc), a0);
            a1 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q1), z)), s),
                                 _mm512_loadu_ps(xc + 16), a1);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// int8 activations: the chunk's codes as bytes (0..63), the group's integer dot exactly, then
// the scalar twin's float steps: bit-identical to it.
T_AVX2 float bd_vec_dot_q6_i8_avx2(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                   float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q6 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        __m256i a = _mm256_setzero_si256();
        for (int c = 0; c < t->gpad / 32; c++) {
            __m128i q0, q1;
            unpack6_32(b->qs, t->gpad, c, &q0, &q1);
            a = bd_dot_u7_i8_avx2(a, _mm256_set_m128i(q1, q0), x + 32 * c);
        }
        acc += b->s * (float)(bd_hsum256_epi32(a) - b->z * xsum[g]);
    }
    return acc * xs;
}

T_AVX512 float bd_vec_dot_q6_i8_avx512(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                       float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_q6 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        __m256i a = _mm256_setzero_si256();
        for (int c = 0; c < t->gpad / 32; c++) {
            __m128i q0, q1;
            unpack6_32(b->qs, t->gpad, c, &q0, &q1);
            a = _mm256_dpbusd_epi32(a, _mm256_set_m128i(q1, q0),
                                    _mm256_loadu_si256((const __m256i *)(const void *)(x + 32 * c)));
        }
        acc += b->s * (float)(bd_hsum256_epi32(a) - b->z * xsum[g]);
    }
    return acc * xs;
}
#endif
