// The SIMD pieces the formats' vector dots share (x86-64 only; callers check the CPU at run
// time through bd_pk_simd and the traits table). Dimension key: GP padded group, x the group's
// padded activations. f32 dots decode codes -> permute a register of code values L -> FMA:
// L holds the exact dequantized value of each code, so dots use the fake-quantized weights.
// int8 dots (2-bit codes) are integer: sum_i q_i xq_i per group, scaled by the caller.
#ifndef BD_PK_SIMD_H
#define BD_PK_SIMD_H

#include "bd_pk_impl.h"

#ifdef BD_X86
#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni")))
#define BD_SIMD_INLINE static inline __attribute__((always_inline))

static inline uint16_t bd_rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t bd_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t bd_rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

// ---- AVX2 ---------------------------------------------------------------------------------------------

T_AVX2 BD_SIMD_INLINE float bd_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Code values (c - z) * s of an affine block, built in registers (a table stored and reloaded
// stalls on store forwarding). permutevar8x32 reads 3 index bits: for 2-bit codes bit 2 is the
// next code's low bit, so the 4 values repeat.
T_AVX2 BD_SIMD_INLINE __m256 bd_affine_L_avx2(float s, int z, int bits) {
    __m256i c = bits == 2 ? _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3) : _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c, _mm256_set1_epi32(z))), _mm256_set1_ps(s));
}

// a0, a1 += L[code] * x over a block of 2-bit codes, 16 weights a step.
T_AVX2 BD_SIMD_INLINE void bd_dot2_f32_avx2(__m256 L, const uint8_t *qs, const float *x, int gp, __m256 *a0,
                                            __m256 *a1) {
    const __m256i sh2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    for (int i = 0; i < gp; i += 16) {
        __m256i i0 = _mm256_srlv_epi32(_mm256_set1_epi32(bd_rd16(qs + i / 4)), sh2);
        __m256i i1 = _mm256_srlv_epi32(_mm256_set1_epi32(bd_rd16(qs + i / 4 + 2)), sh2);
        *a0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(L, i0), _mm256_loadu_ps(x + i), *a0);
        *a1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(L, i1), _mm256_loadu_ps(x + i + 8), *a1);
    }
}

// The same for 3-bit codes (low plane qs, high plane qs + GP/4).
T_AVX2 BD_SIMD_INLINE void bd_dot3_f32_avx2(__m256 L, const uint8_t *qs, const float *x, int gp, __m256 *a0,
                                            __m256 *a1) {
    const __m256i sh2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), sh1 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m3 = _mm256_set1_epi32(3), m4 = _mm256_set1_epi32(4);
    const uint8_t *qh = qs + gp / 4;
    for (int i = 0; i < gp; i += 16) {
        __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(bd_rd16(qs + i / 4)), sh2), m3);
        __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(qh[i / 8] << 2), sh1), m4);
        __m256i lo1 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(bd_rd16(qs + i / 4 + 2)), sh2), m3);
        __m256i hi1 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(qh[i / 8 + 1] << 2), sh1), m4);
        *a0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(L, _mm256_or_si256(lo, hi)), _mm256_loadu_ps(x + i), *a0);
        *a1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(L, _mm256_or_si256(lo1, hi1)), _mm256_loadu_ps(x + i + 8), *a1);
    }
}

// 32 2-bit codes (8 bytes, natural order) as 32 bytes.
T_AVX2 BD_SIMD_INLINE __m256i bd_unpack2_32(const uint8_t *p) {
    const __m128i m = _mm_set1_epi8(3);
    __m128i v = _mm_loadl_epi64((const __m128i *)p);
    __m128i t0 = _mm_and_si128(v, m), t1 = _mm_and_si128(_mm_srli_epi16(v, 2), m);
    __m128i t2 = _mm_and_si128(_mm_srli_epi16(v, 4), m), t3 = _mm_and_si128(_mm_srli_epi16(v, 6), m);
    __m128i a = _mm_unpacklo_epi8(t0, t1), c = _mm_unpacklo_epi8(t2, t3);  // codes 4j,4j+1 / 4j+2,4j+3
    return _mm256_set_m128i(_mm_unpackhi_epi16(a, c), _mm_unpacklo_epi16(a, c));
}

// sum_i code_i * x_i over a block of 2-bit codes (vpmaddubsw), in 8 int32 lanes.
T_AVX2 BD_SIMD_INLINE __m256i bd_dot2_i8_avx2(const uint8_t *qs, const int8_t *x, int gp) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < gp; i += 32) {
        __m256i p = _mm256_maddubs_epi16(bd_unpack2_32(qs + i / 4), _mm256_loadu_si256((const __m256i *)(x + i)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    return acc;
}

// The sum of the 8 int32 lanes (exact).
T_AVX2 BD_SIMD_INLINE int32_t bd_hsum256_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// 32 bits (bit i of the little-endian word) as 32 bytes, byte i = v where bit i is set, else 0.
T_AVX2 BD_SIMD_INLINE __m256i bd_bits_to_bytes_avx2(uint32_t bits, char v) {
    const __m256i idx = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                         3, 3, 3, 3, 3, 3);
    const __m256i sel = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), idx), sel);
    return _mm256_and_si256(_mm256_cmpeq_epi8(b, sel), _mm256_set1_epi8(v));
}

// sum_i code_i * x_i over 32 weights whose codes (0..127) are bytes c, added to acc (8 int32
// lanes): vpmaddubsw cannot saturate for codes below 128 and |x| <= 127.
T_AVX2 BD_SIMD_INLINE __m256i bd_dot_u7_i8_avx2(__m256i acc, __m256i c, const int8_t *x) {
    __m256i p = _mm256_maddubs_epi16(c, _mm256_loadu_si256((const __m256i *)(const void *)x));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

// ---- AVX-512 ------------------------------------------------------------------------------------------

// 16 x 16 transpose of 32-bit lanes in registers: r[i] lane j becomes r[j] lane i (unpack pairs,
// then 64-bit pairs, then 128-bit lanes twice). Integer lanes pass through the float casts.
__attribute__((target("avx512f"))) BD_SIMD_INLINE void bd_transpose16_ps(__m512 r[16]) {
    __m512 u[16];
    for (int i = 0; i < 16; i += 2) {
        u[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        u[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(u[i], u[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(u[i], u[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(u[i + 1], u[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(u[i + 1], u[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        u[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
        u[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xDD);
        u[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
        u[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(u[i], u[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(u[i], u[8 + i], 0xDD);
        r[4 + i] = _mm512_shuffle_f32x4(u[4 + i], u[12 + i], 0x88);
        r[12 + i] = _mm512_shuffle_f32x4(u[4 + i], u[12 + i], 0xDD);
    }
}


// Code values (c - z) * s of an affine block in registers (a round trip through memory cost ~2x).
T_AVX512 BD_SIMD_INLINE __m512 bd_affine_L_avx512(float s, int z, int bits) {
    __m512i c = bits == 2 ? _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3)
                          : _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c, _mm512_set1_epi32(z))), _mm512_set1_ps(s));
}

// a0, a1 += L[code] * x over a block of 2-bit codes, 32 weights a step. vpermps reads 4 index
// bits (this code and the next): the 4 values repeat 4 times in L.
T_AVX512 BD_SIMD_INLINE void bd_dot2_f32_avx512(__m512 L, const uint8_t *qs, const float *x, int gp, __m512 *a0,
                                                __m512 *a1) {
    const __m512i sh2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int i = 0; i < gp; i += 32) {
        __m512i i0 = _mm512_srlv_epi32(_mm512_set1_epi32((int)bd_rd32(qs + i / 4)), sh2);
        __m512i i1 = _mm512_srlv_epi32(_mm512_set1_epi32((int)bd_rd32(qs + i / 4 + 4)), sh2);
        *a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i0, L), _mm512_loadu_ps(x + i), *a0);
        *a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i1, L), _mm512_loadu_ps(x + i + 16), *a1);
    }
}

// The same for 3-bit codes (low plane qs, high plane qs + GP/4; the 8 values repeat twice).
T_AVX512 BD_SIMD_INLINE void bd_dot3_f32_avx512(__m512 L, const uint8_t *qs, const float *x, int gp, __m512 *a0,
                                                __m512 *a1) {
    const __m512i sh2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i sh1 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i m3 = _mm512_set1_epi32(3);
    const uint8_t *qh = qs + gp / 4;
    for (int i = 0; i < gp; i += 32) {
        uint64_t lo8 = bd_rd64(qs + i / 4);
        uint64_t hi4 = (uint64_t)bd_rd32(qh + i / 8) << 2;
        __m512i lo0 = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)lo8), sh2);
        __m512i hi0 = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)(hi4 & 0x3fffc)), sh1);
        __m512i lo1 = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)(lo8 >> 32)), sh2);
        __m512i hi1 = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)(hi4 >> 16)), sh1);
        // (lo & 3) | (hi & ~3): bits 0-1 from the low plane, bit 2 from the high one
        *a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_ternarylogic_epi32(lo0, hi0, m3, 0xE4), L),
                              _mm512_loadu_ps(x + i), *a0);
        *a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_ternarylogic_epi32(lo1, hi1, m3, 0xE4), L),
                              _mm512_loadu_ps(x + i + 16), *a1);
    }
}

// sum_i code_i * x_i over a block of 2-bit codes (VNNI vpdpbusd), in 8 int32 lanes.
// vpmultishiftqb: output byte k takes the 8 bits at offset 2k of its qword (the 8 code bytes
// broadcast to every qword), i.e. code k in its low 2 bits.
T_AVX512 BD_SIMD_INLINE __m256i bd_dot2_i8_avx512(const uint8_t *qs, const int8_t *x, int gp) {
    const __m256i ctrl = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40,
                                          42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62);
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    int i = 0;
    for (; i + 64 <= gp; i += 64) {
        __m256i c0 =
                _mm256_and_si256(_mm256_multishift_epi64_epi8(ctrl, _mm256_set1_epi64x((long long)bd_rd64(qs + i / 4))),
                                 m3);
        __m256i c1 = _mm256_and_si256(
                _mm256_multishift_epi64_epi8(ctrl, _mm256_set1_epi64x((long long)bd_rd64(qs + i / 4 + 8))), m3);
        acc0 = _mm256_dpbusd_epi32(acc0, c0, _mm256_loadu_si256((const __m256i *)(x + i)));
        acc1 = _mm256_dpbusd_epi32(acc1, c1, _mm256_loadu_si256((const __m256i *)(x + i + 32)));
    }
    for (; i < gp; i += 32) {
        __m256i c0 =
                _mm256_and_si256(_mm256_multishift_epi64_epi8(ctrl, _mm256_set1_epi64x((long long)bd_rd64(qs + i / 4))),
                                 m3);
        acc0 = _mm256_dpbusd_epi32(acc0, c0, _mm256_loadu_si256((const __m256i *)(x + i)));
    }
    return _mm256_add_epi32(acc0, acc1);
}

// The 2-bit codes of 32 weights (8 bytes) as bytes (vpmultishiftqb, as above).
T_AVX512 BD_SIMD_INLINE __m256i bd_unpack2_32_avx512(const uint8_t *p) {
    const __m256i ctrl = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40,
                                          42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62);
    return _mm256_and_si256(_mm256_multishift_epi64_epi8(ctrl, _mm256_set1_epi64x((long long)bd_rd64(p))),
                            _mm256_set1_epi8(3));
}
#endif

#endif
