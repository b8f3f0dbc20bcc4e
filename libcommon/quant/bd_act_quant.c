// 8-bit per-token activation quantization (see bd_act_quant.h for the formula).
// Dimension key: N rows, C row length.
#include "bd_act_quant.h"

#include <math.h>
#include <stddef.h>

#include "bd_packed.h"
#include "bd_threads.h"

// The row's factor d and the multiplier 127/max: both from the same clamped max.
static float row_scale(const float *x, int C, float *inv) {
    float amax = 0;
    for (int i = 0; i < C; i++) amax = fmaxf(amax, fabsf(x[i]));
    amax = fmaxf(amax, BD_ACT_EPS);
    *inv = 127.0f / amax;
    return amax / 127.0f;
}

static inline float level(float x, float inv) {
    float q = rintf(x * inv);
    return q > 127.0f ? 127.0f : q < -128.0f ? -128.0f : q;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
// The same row on AVX-512 (generation quantizes every linear's input: the scalar loop, a libm
// call per element for rintf on baseline x86-64, was a few % of a ternary model's token).
// Bit-identical for finite rows (what the kernels see): the max of |x| is exact in any order,
// and each level is the same product rounded to nearest even (roundscale under the default
// rounding mode, as rintf), clamped, converted. Taken when the packed kernels' path is AVX-512
// (bd_pk_simd; BD_SIMD=avx2 takes the AVX2 twin below, BD_SIMD=scalar the plain loop).
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void quant_row_avx512(const float *x, int8_t *q, int C,
                                                                                  float *d) {
    __m512 m = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= C; i += 16) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), m);  // NaN: keeps m
    float amax = _mm512_reduce_max_ps(m);
    for (; i < C; i++) amax = fmaxf(amax, fabsf(x[i]));
    amax = fmaxf(amax, BD_ACT_EPS);
    float inv = 127.0f / amax;
    *d = amax / 127.0f;
    const __m512 vi = _mm512_set1_ps(inv), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-128.0f);
    for (i = 0; i + 16 <= C; i += 16) {
        __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vi),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_max_ps(_mm512_min_ps(v, hi), lo);
        _mm_storeu_si128((__m128i *)(void *)(q + i), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
    }
    for (; i < C; i++) q[i] = (int8_t)level(x[i], inv);
}

// The same on AVX2 (8 lanes; round by _mm256_round_ps to nearest even, saturating packs).
__attribute__((target("avx2,fma"))) static void quant_row_avx2(const float *x, int8_t *q, int C, float *d) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= C; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
    for (; i < C; i++) amax = fmaxf(amax, fabsf(x[i]));
    amax = fmaxf(amax, BD_ACT_EPS);
    float inv = 127.0f / amax;
    *d = amax / 127.0f;
    const __m256 vi = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
    for (i = 0; i + 8 <= C; i += 8) {
        __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vi),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256i l = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(l), _mm256_extracti128_si256(l, 1));
        _mm_storel_epi64((__m128i *)(void *)(q + i), _mm_packs_epi16(w, w));
    }
    for (; i < C; i++) q[i] = (int8_t)level(x[i], inv);
}
#define ACT_X86 1
#endif

void bd_act_quant_row(const float *x, int8_t *q, int C, float *d) {
#ifdef ACT_X86
    bd_simd simd = bd_pk_simd();
    if (simd == BD_SIMD_AVX512) {
        quant_row_avx512(x, q, C, d);
        return;
    }
    if (simd == BD_SIMD_AVX2) {
        quant_row_avx2(x, q, C, d);
        return;
    }
#endif
    float inv;
    *d = row_scale(x, C, &inv);
    for (int i = 0; i < C; i++) q[i] = (int8_t)level(x[i], inv);
}

static void fakequant_row(float *out, const float *x, int C) {
    float inv, d = row_scale(x, C, &inv);
    for (int i = 0; i < C; i++) out[i] = level(x[i], inv) * d;
}

typedef struct {
    float *out;
    const float *x;
    int C;
} fq_job;

static void fq_rows(void *ctx, int r0, int r1) {
    const fq_job *j = ctx;
    for (int r = r0; r < r1; r++) fakequant_row(j->out + (size_t)r * j->C, j->x + (size_t)r * j->C, j->C);
}

void bd_act_fakequant(float *out, const float *x, int N, int C) {
    fq_job j = {out, x, C};
    bd_parallel_for(N, 1 + 16384 / (C > 0 ? C : 1), fq_rows, &j);
}

void bd_act_fakequant_ref(float *out, const float *x, int N, int C) {
    for (int r = 0; r < N; r++) fakequant_row(out + (size_t)r * C, x + (size_t)r * C, C);
}
