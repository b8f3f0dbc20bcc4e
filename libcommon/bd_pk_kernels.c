// Kernels on packed weights: out (N, OC) = inp (N, C) @ W^T with W in a bd_pk_tensor.
// Dimension key: N tokens, OC rows, C row length, G group, GP padded group (multiple of 32),
// NG groups per row, XP = NG * GP (padded activation row: group g at g * GP, zeros in the
// padding, so padded codes contribute nothing).
//
// f32 activations: per group, the exact dequantized value of every code goes into a small
// table (4 or 8 floats; q8 converts codes directly), and the SIMD loop is decode codes ->
// permute table -> FMA. The dot product therefore uses exactly the fake-quantized weights.
// int8 activations (per token absmax/127): integer dots of codes with int8 activations
// (AVX-512 VNNI vpdpbusd / AVX2 vpmaddubsw) for the 2-bit affine formats q2 and tq2, one scale
// multiply per group: sum_g s_g * (sum_i q_i xq_i - z_g sum_i xq_i) * sx. The other formats
// use the scalar int8 loop (same arithmetic).
// Paths: scalar, AVX2+FMA, AVX-512 (F, BW, VL, VBMI, VNNI), picked at run time; BD_SIMD forces.
#include "bd_packed.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bd_threads.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BD_X86 1
#include <immintrin.h>
#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni")))
#endif

// ---- path selection ------------------------------------------------------------------------------

static int forced_simd = -1;

bool bd_pk_simd_supported(bd_simd s) {
    switch (s) {
    case BD_SIMD_SCALAR: return true;
#ifdef BD_X86
    case BD_SIMD_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case BD_SIMD_AVX512:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
#endif
    default: return false;
    }
}

const char *bd_pk_simd_name(bd_simd s) { return s == BD_SIMD_AVX512 ? "avx512" : s == BD_SIMD_AVX2 ? "avx2" : "scalar"; }

void bd_pk_set_simd(bd_simd s) { forced_simd = bd_pk_simd_supported(s) ? (int)s : -1; }

bd_simd bd_pk_simd(void) {
    if (forced_simd >= 0) return (bd_simd)forced_simd;
    const char *e = getenv("BD_SIMD");
    bd_simd want = BD_SIMD_AVX512;
    if (e && strcmp(e, "scalar") == 0) want = BD_SIMD_SCALAR;
    else if (e && strcmp(e, "avx2") == 0) want = BD_SIMD_AVX2;
    while (want > BD_SIMD_SCALAR && !bd_pk_simd_supported(want)) want = (bd_simd)(want - 1);
    return want;
}

// ---- shared pieces ---------------------------------------------------------------------------------

static int get2(const uint8_t *qs, int i) { return qs[i >> 2] >> (2 * (i & 3)) & 3; }
static int get3(const uint8_t *qs, int gp, int i) { return get2(qs, i) | (qs[gp / 4 + (i >> 3)] >> (i & 7) & 1) << 2; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static float rdf(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }

// The dequantized value of every code of a block (not q8): lut[code], 4 or 8 entries.
static void block_lut(const bd_pk_tensor *t, const uint8_t *b, float lut[8]) {
    switch (t->type) {
    case BD_PK_Q2: case BD_PK_Q3: {
        float s = rdf(b);
        int z = b[4];
#ifdef BD_X86
        // (c - z) * s, as the scalar line below (SSE2 is baseline x86-64): the loop form was
        // a measurable share of the 2-bit kernel's time.
        __m128 sv = _mm_set1_ps(s);
        __m128i zv = _mm_set1_epi32(z);
        _mm_storeu_ps(lut, _mm_mul_ps(_mm_cvtepi32_ps(_mm_sub_epi32(_mm_setr_epi32(0, 1, 2, 3), zv)), sv));
        _mm_storeu_ps(lut + 4, _mm_mul_ps(_mm_cvtepi32_ps(_mm_sub_epi32(_mm_setr_epi32(4, 5, 6, 7), zv)), sv));
#else
        for (int c = 0; c < 8; c++) lut[c] = (float)(c - z) * s;
#endif
        break;
    }
    case BD_PK_NF3: {
        float sp = rdf(b), sn = rdf(b + 4);
        for (int c = 0; c < 8; c++) lut[c] = bd_nf3_grid[c] * (c >= 3 ? sp : sn);
        break;
    }
    case BD_PK_R2Q: memcpy(lut, b, 16); break;
    case BD_PK_TQ2: for (int c = 0; c < 4; c++) lut[c] = (float)(c - 1) * t->scale; break;
    default: break;
    }
}

static int code_at(const bd_pk_tensor *t, const uint8_t *qs, int i) {
    int bits = bd_pk_traits_table[t->type].code_bits;
    return bits == 2 ? get2(qs, i) : bits == 3 ? get3(qs, t->gpad, i) : qs[i];
}

// ---- scalar -----------------------------------------------------------------------------------------

static float dot_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    const bd_pk_traits *tr = &bd_pk_traits_table[t->type];
    float acc = 0;
    if (t->type == BD_PK_F32) {
        for (int i = 0; i < t->cols; i++) acc += rdf(row + 4 * (size_t)i) * xp[i];
        return acc;
    }
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *b = row + (size_t)g * t->block_bytes, *qs = b + tr->head_bytes;
        const float *x = xp + (size_t)g * t->gpad;
        if (t->type == BD_PK_Q8) {
            float s = rdf(b);
            int z = b[4];
            for (int i = 0; i < t->gpad; i++) acc += (float)(qs[i] - z) * s * x[i];
        } else {
            float lut[8];
            block_lut(t, b, lut);
            for (int i = 0; i < t->gpad; i++) acc += lut[code_at(t, qs, i)] * x[i];
        }
    }
    return acc;
}

static float dot_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum, float xs) {
    const bd_pk_traits *tr = &bd_pk_traits_table[t->type];
    if (t->type == BD_PK_F32) {
        float acc = 0;
        for (int i = 0; i < t->cols; i++) acc += rdf(row + 4 * (size_t)i) * (float)xq[i];
        return acc * xs;
    }
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *b = row + (size_t)g * t->block_bytes, *qs = b + tr->head_bytes;
        const int8_t *x = xq + (size_t)g * t->gpad;
        if (tr->affine || t->type == BD_PK_TQ2) {
            int32_t dot = 0;
            for (int i = 0; i < t->gpad; i++) dot += code_at(t, qs, i) * x[i];
            float s = t->type == BD_PK_TQ2 ? t->scale : rdf(b);
            int z = t->type == BD_PK_TQ2 ? 1 : b[4];
            acc += s * (float)(dot - z * xsum[g]);
        } else {
            float lut[8];
            block_lut(t, b, lut);
            for (int i = 0; i < t->gpad; i++) acc += lut[code_at(t, qs, i)] * (float)x[i];
        }
    }
    return acc * xs;
}

#ifdef BD_X86
// ---- AVX2 --------------------------------------------------------------------------------------------

T_AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

T_AVX2 static float dot_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    const bd_pk_traits *tr = &bd_pk_traits_table[t->type];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    if (t->type == BD_PK_F32) return dot_f32_scalar(t, row, xp);
    const __m256i sh2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), sh1 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m3 = _mm256_set1_epi32(3), m4 = _mm256_set1_epi32(4);
    int gp = t->gpad;
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *b = row + (size_t)g * t->block_bytes, *qs = b + tr->head_bytes;
        const float *x = xp + (size_t)g * gp;
        if (t->type == BD_PK_Q8) {
            __m256 s = _mm256_set1_ps(rdf(b));
            __m256i z = _mm256_set1_epi32(b[4]);
            for (int i = 0; i < gp; i += 16) {
                __m256i q0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + i)));
                __m256i q1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + i + 8)));
                a0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q0, z)), s), _mm256_loadu_ps(x + i), a0);
                a1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q1, z)), s), _mm256_loadu_ps(x + i + 8), a1);
            }
            continue;
        }
        // The values of the codes, built in registers (a table stored and reloaded stalls on
        // store forwarding). permutevar8x32 reads 3 index bits: for 2-bit codes bit 2 is the
        // next code's low bit, so the 4 values repeat.
        __m256 L;
        __m256i c = tr->code_bits == 2 ? _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3) : _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        if (tr->affine) {
            L = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c, _mm256_set1_epi32(b[4]))), _mm256_set1_ps(rdf(b)));
        } else if (t->type == BD_PK_TQ2) {
            L = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c, _mm256_set1_epi32(1))), _mm256_set1_ps(t->scale));
        } else if (t->type == BD_PK_R2Q) {
            L = _mm256_broadcast_ps((const __m128 *)(const void *)b);
        } else {
            const __m256 grid = _mm256_loadu_ps(bd_nf3_grid);
            L = _mm256_mul_ps(grid, _mm256_blend_ps(_mm256_set1_ps(rdf(b + 4)), _mm256_set1_ps(rdf(b)), 0xf8));
        }
        if (tr->code_bits == 2) {
            for (int i = 0; i < gp; i += 16) {
                __m256i i0 = _mm256_srlv_epi32(_mm256_set1_epi32(rd16(qs + i / 4)), sh2);
                __m256i i1 = _mm256_srlv_epi32(_mm256_set1_epi32(rd16(qs + i / 4 + 2)), sh2);
                a0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(L, i0), _mm256_loadu_ps(x + i), a0);
                a1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(L, i1), _mm256_loadu_ps(x + i + 8), a1);
            }
        } else {
            const uint8_t *qh = qs + gp / 4;
            for (int i = 0; i < gp; i += 16) {
                __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(rd16(qs + i / 4)), sh2), m3);
                __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(qh[i / 8] << 2), sh1), m4);
                __m256i lo1 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(rd16(qs + i / 4 + 2)), sh2), m3);
                __m256i hi1 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(qh[i / 8 + 1] << 2), sh1), m4);
                a0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(L, _mm256_or_si256(lo, hi)), _mm256_loadu_ps(x + i), a0);
                a1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(L, _mm256_or_si256(lo1, hi1)), _mm256_loadu_ps(x + i + 8), a1);
            }
        }
    }
    return hsum256(_mm256_add_ps(a0, a1));
}

// 32 2-bit codes (8 bytes, natural order) as 32 bytes.
T_AVX2 static inline __m256i unpack2_32(const uint8_t *p) {
    const __m128i m = _mm_set1_epi8(3);
    __m128i v = _mm_loadl_epi64((const __m128i *)p);
    __m128i t0 = _mm_and_si128(v, m), t1 = _mm_and_si128(_mm_srli_epi16(v, 2), m);
    __m128i t2 = _mm_and_si128(_mm_srli_epi16(v, 4), m), t3 = _mm_and_si128(_mm_srli_epi16(v, 6), m);
    __m128i a = _mm_unpacklo_epi8(t0, t1), c = _mm_unpacklo_epi8(t2, t3);  // codes 4j,4j+1 / 4j+2,4j+3
    return _mm256_set_m128i(_mm_unpackhi_epi16(a, c), _mm_unpacklo_epi16(a, c));
}

T_AVX2 static float dot_i8_avx2(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum, float xs) {
    if (t->type != BD_PK_Q2 && t->type != BD_PK_TQ2) return dot_i8_scalar(t, row, xq, xsum, xs);
    const bd_pk_traits *tr = &bd_pk_traits_table[t->type];
    const __m256i ones = _mm256_set1_epi16(1);
    int gp = t->gpad;
    __m256 accf = _mm256_setzero_ps();
    float corr = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *b = row + (size_t)g * t->block_bytes, *qs = b + tr->head_bytes;
        const int8_t *x = xq + (size_t)g * gp;
        __m256i acc = _mm256_setzero_si256();
        for (int i = 0; i < gp; i += 32) {
            __m256i p = _mm256_maddubs_epi16(unpack2_32(qs + i / 4), _mm256_loadu_si256((const __m256i *)(x + i)));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
        }
        float s = t->type == BD_PK_TQ2 ? t->scale : rdf(b);
        int z = t->type == BD_PK_TQ2 ? 1 : b[4];
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(s), accf);
        corr += s * (float)(z * xsum[g]);
    }
    return (hsum256(accf) - corr) * xs;
}

// ---- AVX-512 ------------------------------------------------------------------------------------------

T_AVX512 static float dot_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    const bd_pk_traits *tr = &bd_pk_traits_table[t->type];
    if (t->type == BD_PK_F32) return dot_f32_scalar(t, row, xp);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    const __m512i sh2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i sh1 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i m3 = _mm512_set1_epi32(3);
    int gp = t->gpad;
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *b = row + (size_t)g * t->block_bytes, *qs = b + tr->head_bytes;
        const float *x = xp + (size_t)g * gp;
        if (t->type == BD_PK_Q8) {
            __m512 s = _mm512_set1_ps(rdf(b));
            __m512i z = _mm512_set1_epi32(b[4]);
            for (int i = 0; i < gp; i += 32) {
                __m512i q0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + i)));
                __m512i q1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + i + 16)));
                a0 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q0, z)), s), _mm512_loadu_ps(x + i), a0);
                a1 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q1, z)), s), _mm512_loadu_ps(x + i + 16), a1);
            }
            continue;
        }
        float lut[8];
        __m512 L;
        if (tr->affine) {  // (c - z) * s in registers (a round trip through memory cost ~2x here)
            __m512i c = tr->code_bits == 2 ? _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3)
                                           : _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
            L = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c, _mm512_set1_epi32(b[4]))), _mm512_set1_ps(rdf(b)));
        } else if (t->type == BD_PK_TQ2) {  // (c - 1) * D
            L = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_setr_epi32(-1, 0, 1, 2, -1, 0, 1, 2, -1, 0, 1, 2, -1, 0, 1, 2)), _mm512_set1_ps(t->scale));
        } else if (t->type == BD_PK_R2Q) {  // the 4 stored levels
            L = _mm512_broadcast_f32x4(_mm_loadu_ps((const float *)(const void *)b));
        } else {  // nf3: grid[c] * (c >= 3 ? sp : sn)
            const __m512 grid = _mm512_setr_ps(bd_nf3_grid[0], bd_nf3_grid[1], bd_nf3_grid[2], bd_nf3_grid[3], bd_nf3_grid[4], bd_nf3_grid[5],
                                               bd_nf3_grid[6], bd_nf3_grid[7], bd_nf3_grid[0], bd_nf3_grid[1], bd_nf3_grid[2], bd_nf3_grid[3],
                                               bd_nf3_grid[4], bd_nf3_grid[5], bd_nf3_grid[6], bd_nf3_grid[7]);
            L = _mm512_mul_ps(grid, _mm512_mask_blend_ps((__mmask16)0xf8f8, _mm512_set1_ps(rdf(b + 4)), _mm512_set1_ps(rdf(b))));
        }
        (void)lut;
        if (tr->code_bits == 2) {
            // vpermps reads 4 index bits (this code and the next): the 4 values repeat 4 times.
            for (int i = 0; i < gp; i += 32) {
                __m512i i0 = _mm512_srlv_epi32(_mm512_set1_epi32((int)rd32(qs + i / 4)), sh2);
                __m512i i1 = _mm512_srlv_epi32(_mm512_set1_epi32((int)rd32(qs + i / 4 + 4)), sh2);
                a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i0, L), _mm512_loadu_ps(x + i), a0);
                a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i1, L), _mm512_loadu_ps(x + i + 16), a1);
            }
        } else {
            const uint8_t *qh = qs + gp / 4;
            for (int i = 0; i < gp; i += 32) {
                uint64_t lo8 = rd64(qs + i / 4);
                uint64_t hi4 = (uint64_t)rd32(qh + i / 8) << 2;
                __m512i lo0 = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)lo8), sh2);
                __m512i hi0 = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)(hi4 & 0x3fffc)), sh1);
                __m512i lo1 = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)(lo8 >> 32)), sh2);
                __m512i hi1 = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)(hi4 >> 16)), sh1);
                // (lo & 3) | (hi & ~3): bits 0-1 from the low plane, bit 2 from the high one
                a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_ternarylogic_epi32(lo0, hi0, m3, 0xE4), L), _mm512_loadu_ps(x + i), a0);
                a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_ternarylogic_epi32(lo1, hi1, m3, 0xE4), L), _mm512_loadu_ps(x + i + 16), a1);
            }
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

T_AVX512 static float dot_i8_avx512(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum, float xs) {
    if (t->type != BD_PK_Q2 && t->type != BD_PK_TQ2) return dot_i8_scalar(t, row, xq, xsum, xs);
    const bd_pk_traits *tr = &bd_pk_traits_table[t->type];
    // vpmultishiftqb: output byte k takes the 8 bits at offset 2k of its qword (the 8 code
    // bytes broadcast to every qword), i.e. code k in its low 2 bits.
    const __m256i ctrl = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38,
                                          40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62);
    const __m256i m3 = _mm256_set1_epi8(3);
    int gp = t->gpad;
    __m256 accf = _mm256_setzero_ps();
    float corr = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *b = row + (size_t)g * t->block_bytes, *qs = b + tr->head_bytes;
        const int8_t *x = xq + (size_t)g * gp;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        int i = 0;
        for (; i + 64 <= gp; i += 64) {
            __m256i c0 = _mm256_and_si256(_mm256_multishift_epi64_epi8(ctrl, _mm256_set1_epi64x((long long)rd64(qs + i / 4))), m3);
            __m256i c1 = _mm256_and_si256(_mm256_multishift_epi64_epi8(ctrl, _mm256_set1_epi64x((long long)rd64(qs + i / 4 + 8))), m3);
            acc0 = _mm256_dpbusd_epi32(acc0, c0, _mm256_loadu_si256((const __m256i *)(x + i)));
            acc1 = _mm256_dpbusd_epi32(acc1, c1, _mm256_loadu_si256((const __m256i *)(x + i + 32)));
        }
        for (; i < gp; i += 32) {
            __m256i c0 = _mm256_and_si256(_mm256_multishift_epi64_epi8(ctrl, _mm256_set1_epi64x((long long)rd64(qs + i / 4))), m3);
            acc0 = _mm256_dpbusd_epi32(acc0, c0, _mm256_loadu_si256((const __m256i *)(x + i)));
        }
        float s = t->type == BD_PK_TQ2 ? t->scale : rdf(b);
        int z = t->type == BD_PK_TQ2 ? 1 : b[4];
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc0, acc1)), _mm256_set1_ps(s), accf);
        corr += s * (float)(z * xsum[g]);
    }
    return (hsum256(accf) - corr) * xs;
}
#endif

typedef float (*dot_f32_fn)(const bd_pk_tensor *, const uint8_t *, const float *);
typedef float (*dot_i8_fn)(const bd_pk_tensor *, const uint8_t *, const int8_t *, const int32_t *, float);

static dot_f32_fn pick_f32(bd_simd s) {
#ifdef BD_X86
    if (s == BD_SIMD_AVX512) return dot_f32_avx512;
    if (s == BD_SIMD_AVX2) return dot_f32_avx2;
#endif
    (void)s;
    return dot_f32_scalar;
}

static dot_i8_fn pick_i8(bd_simd s) {
#ifdef BD_X86
    if (s == BD_SIMD_AVX512) return dot_i8_avx512;
    if (s == BD_SIMD_AVX2) return dot_i8_avx2;
#endif
    (void)s;
    return dot_i8_scalar;
}

// ---- activations ------------------------------------------------------------------------------------

void bd_pk_quantize_act_ref(const float *x, int8_t *xq, int C, float *scale) {
    float amax = 0;
    for (int i = 0; i < C; i++) amax = fmaxf(amax, fabsf(x[i]));
    float s = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
    for (int i = 0; i < C; i++) {
        float q = rintf(x[i] * inv);
        xq[i] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
    }
    *scale = s;
}

// x (C) into the padded layout (NG * GP), zeros in the padding.
static void pad_row_f32(const bd_pk_tensor *t, const float *x, float *xp) {
    for (int g = 0; g < t->ngroups; g++) {
        int g0 = g * t->group, n = t->cols - g0 < t->group ? t->cols - g0 : t->group;
        memcpy(xp + (size_t)g * t->gpad, x + g0, (size_t)n * sizeof *x);
        memset(xp + (size_t)g * t->gpad + n, 0, (size_t)(t->gpad - n) * sizeof *x);
    }
}

static void pad_row_i8(const bd_pk_tensor *t, const int8_t *x, int8_t *xp, int32_t *xsum) {
    for (int g = 0; g < t->ngroups; g++) {
        int g0 = g * t->group, n = t->cols - g0 < t->group ? t->cols - g0 : t->group;
        int32_t s = 0;
        for (int i = 0; i < n; i++) s += x[g0 + i];
        memcpy(xp + (size_t)g * t->gpad, x + g0, (size_t)n);
        memset(xp + (size_t)g * t->gpad + n, 0, (size_t)(t->gpad - n));
        xsum[g] = s;
    }
}

// ---- matmul -------------------------------------------------------------------------------------------

typedef struct {
    const bd_pk_tensor *t;
    const float *xp;      // (N, XP) padded f32 activations, or NULL
    const int8_t *xq;     // (N, XP) padded int8 activations, or NULL
    const int32_t *xsum;  // (N, NG) sums of xq per group
    const float *xs;      // (N) activation scales
    float *out;           // (N, OC)
    int N;
    size_t xp_len;        // XP
    dot_f32_fn f32;
    dot_i8_fn i8;
} mm_job;

// Rows r0..r1 for every token; tiles of rows keep their bytes in cache across tokens.
static void mm_rows(void *ctx, int r0, int r1) {
    const mm_job *j = ctx;
    const bd_pk_tensor *t = j->t;
    for (int rt = r0; rt < r1; rt += 16) {
        int re = rt + 16 < r1 ? rt + 16 : r1;
        for (int n = 0; n < j->N; n++)
            for (int r = rt; r < re; r++) {
                const uint8_t *row = t->data + (size_t)r * t->row_bytes;
                float v = j->xq ? j->i8(t, row, j->xq + (size_t)n * j->xp_len, j->xsum + (size_t)n * t->ngroups, j->xs[n])
                                : j->f32(t, row, j->xp + (size_t)n * j->xp_len);
                j->out[(size_t)n * t->rows + r] = v;
            }
    }
}

typedef struct {
    const bd_pk_tensor *t;
    float *buf;  // (P, C)
    int r0;
} deq_job;

static void deq_rows(void *ctx, int a, int b) {
    const deq_job *j = ctx;
    for (int r = a; r < b; r++) bd_pk_dequantize_row(j->t, j->r0 + r, j->buf + (size_t)r * j->t->cols);
}

void bd_pk_matmul(float *out, const float *inp, const bd_pk_tensor *t, int N, bool act_int8) {
    int C = t->cols, OC = t->rows;
    bd_simd simd = bd_pk_simd();
    int min_rows = 1 + (1 << 18) / C;  // a thread gets at least ~256K weights
    if (!act_int8 && N >= 8) {
        // Prompts and evaluation: dequantize panels of rows (exact values) into sgemm.
        int P = (1 << 20) / C;  // ~4 MB of f32 per panel
        P = P < 16 ? 16 : P > OC ? OC : P;
        float *buf = malloc((size_t)P * C * sizeof *buf);
        if (buf) {
            for (int r0 = 0; r0 < OC; r0 += P) {
                int np = OC - r0 < P ? OC - r0 : P;
                deq_job dj = {t, buf, r0};
                bd_parallel_for(np, min_rows, deq_rows, &dj);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, np, C, 1.0f, inp, C, buf, C, 0.0f, out + r0, OC);
            }
            free(buf);
            return;
        }
    }
    size_t xp_len = (size_t)t->ngroups * (size_t)t->gpad;
    if (t->type == BD_PK_F32) xp_len = (size_t)C;
    mm_job j = {t, NULL, NULL, NULL, NULL, out, N, xp_len, pick_f32(simd), pick_i8(simd)};
    int8_t *xq = NULL, *tmp = NULL;
    int32_t *xsum = NULL;
    float *xs = NULL, *xp = NULL;
    // int8 activations for formats without an integer kernel (all but q2, tq2), or f32
    // weights: the f32 kernel on the int8 values as floats, times the scale (the same sum).
    bool via_f32 = act_int8 && (simd == BD_SIMD_SCALAR ? false : t->type != BD_PK_Q2 && t->type != BD_PK_TQ2);
    if (via_f32) {
        xs = malloc((size_t)N * sizeof *xs);
        tmp = malloc((size_t)C);
        float *xf = malloc((size_t)N * C * sizeof *xf);
        if (!xs || !tmp || !xf) { free(xf); goto fallback; }
        for (int n = 0; n < N; n++) {
            bd_pk_quantize_act_ref(inp + (size_t)n * C, tmp, C, &xs[n]);
            for (int i = 0; i < C; i++) xf[(size_t)n * C + i] = tmp[i];
        }
        bd_pk_matmul(out, xf, t, N < 8 ? N : 7, false);  // matrix-vector kernels, chunks of < 8 tokens
        for (int n = 7; n < N; n += 7) bd_pk_matmul(out + (size_t)n * OC, xf + (size_t)n * C, t, N - n < 7 ? N - n : 7, false);
        for (int n = 0; n < N; n++)
            for (int r = 0; r < OC; r++) out[(size_t)n * OC + r] *= xs[n];
        free(xf);
    } else if (act_int8) {
        xq = malloc((size_t)N * xp_len);
        tmp = malloc((size_t)C);
        xsum = malloc((size_t)N * (size_t)t->ngroups * sizeof *xsum);
        xs = malloc((size_t)N * sizeof *xs);
        if (!xq || !tmp || !xsum || !xs) goto fallback;
        for (int n = 0; n < N; n++) {
            if (t->type == BD_PK_F32) {
                bd_pk_quantize_act_ref(inp + (size_t)n * C, xq + (size_t)n * xp_len, C, &xs[n]);
                continue;
            }
            bd_pk_quantize_act_ref(inp + (size_t)n * C, tmp, C, &xs[n]);
            pad_row_i8(t, tmp, xq + (size_t)n * xp_len, xsum + (size_t)n * t->ngroups);
        }
        j.xq = xq;
        j.xsum = xsum;
        j.xs = xs;
    } else if (xp_len != (size_t)C) {
        if (!(xp = malloc((size_t)N * xp_len * sizeof *xp))) goto fallback;
        for (int n = 0; n < N; n++) pad_row_f32(t, inp + (size_t)n * C, xp + (size_t)n * xp_len);
        j.xp = xp;
    } else {
        j.xp = inp;  // groups are whole multiples of 32 that tile the row: no padding needed
    }
    if (!via_f32) bd_parallel_for(OC, min_rows, mm_rows, &j);
    if (0) {
    fallback:
        bd_pk_matmul_ref(out, inp, t, N, act_int8);  // out of memory: the plain loop needs none of it
    }
    free(xq), free(tmp), free(xsum), free(xs), free(xp);
}

void bd_pk_matmul_ref(float *out, const float *inp, const bd_pk_tensor *t, int N, bool act_int8) {
    int C = t->cols;
    float *w = malloc((size_t)C * sizeof *w);
    int8_t *xq = malloc((size_t)C);
    if (!w || !xq) { free(w); free(xq); return; }
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float xs = 1;
        if (act_int8) bd_pk_quantize_act_ref(x, xq, C, &xs);
        for (int r = 0; r < t->rows; r++) {
            bd_pk_dequantize_row(t, r, w);
            double acc = 0;
            for (int i = 0; i < C; i++) acc += (double)w[i] * (act_int8 ? (double)xq[i] : (double)x[i]);
            out[(size_t)n * t->rows + r] = (float)(act_int8 ? acc * xs : acc);
        }
    }
    free(w);
    free(xq);
}
