// q2_K, q3_K, q4_K: llama.cpp's K-quant blocks stored verbatim (bd_kquant.h), one 256-weight
// super-block per group, so a packed student's rows are the bytes its GGUF file holds. The
// scalar dots dequantize one block at a time (ggml's arithmetic) and multiply; the AVX2 and
// AVX-512 ones decode codes in registers. int8 activations: integer sub-block sums for q2_K and
// q4_K (VNNI on the AVX-512 path; N >= 8: bd_pk_kquant_tiles.c); q3_K the scalar dot on the
// dequantized weights.
#include "bd_kquant.h"

#include <stddef.h>

#include "bd_pk_simd.h"

typedef void kq_quant_fn(const float *x, void *block);
typedef void kq_dequant_fn(const void *block, float *y);

static void quant_q2_K(const float *x, void *b) { bd_quantize_block_q2_K(x, b); }
static void quant_q3_K(const float *x, void *b) { bd_quantize_block_q3_K(x, b); }
static void quant_q4_K(const float *x, void *b) { bd_quantize_block_q4_K(x, b); }
static void dequant_q2_K(const void *b, float *y) { bd_dequantize_block_q2_K(b, y); }
static void dequant_q3_K(const void *b, float *y) { bd_dequantize_block_q3_K(b, y); }
static void dequant_q4_K(const void *b, float *y) { bd_dequantize_block_q4_K(b, y); }

static kq_quant_fn *quant_of(bd_pk_type type) {
    return type == BD_PK_Q2_K ? quant_q2_K : type == BD_PK_Q3_K ? quant_q3_K : quant_q4_K;
}
static kq_dequant_fn *dequant_of(bd_pk_type type) {
    return type == BD_PK_Q2_K ? dequant_q2_K : type == BD_PK_Q3_K ? dequant_q3_K : dequant_q4_K;
}

void bd_quantize_row_kquant_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    (void)q;
    kq_quant_fn *quant = quant_of(t->type);
    for (int g = 0; g < t->ngroups; g++) quant(w + (size_t)g * BD_QK_K, bd_pk_block(dst, t, g));
}

void bd_dequantize_row_kquant(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    kq_dequant_fn *dequant = dequant_of(t->type);
    for (int g = 0; g < t->ngroups; g++) dequant(bd_pk_cblock(src, t, g), out + (size_t)g * BD_QK_K);
}

// The f16 factors must be finite (ggml reads any bit pattern, but inf or NaN would poison
// every product); scales, mins and codes are any bits by construction.
int bd_validate_row_kquant(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *b = bd_pk_cblock(row, t, g);
        uint16_t f[2];
        int nf = 1;
        if (t->type == BD_PK_Q2_K)
            memcpy(f, b + offsetof(bd_block_q2_K, d), 4), nf = 2;
        else if (t->type == BD_PK_Q3_K)
            memcpy(f, b + offsetof(bd_block_q3_K, d), 2);
        else
            memcpy(f, b + offsetof(bd_block_q4_K, d), 4), nf = 2;
        for (int i = 0; i < nf; i++)
            if ((f[i] & 0x7c00) == 0x7c00)
                return bd_pk_bad(why, ws, r, g, "f16 factor %g is not finite", bd_f16_to_f32(f[i]));
    }
    return BD_OK;
}

float bd_vec_dot_kquant_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    kq_dequant_fn *dequant = dequant_of(t->type);
    float w[BD_QK_K], acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        dequant(bd_pk_cblock(row, t, g), w);
        const float *x = xp + (size_t)g * BD_QK_K;
        for (int i = 0; i < BD_QK_K; i++) acc += w[i] * x[i];
    }
    return acc;
}

// q2_K and q4_K: per block the exact integer sums isum = sum_j sc_j sum_{i in j} q_i x_i and
// msum = sum_j m_j sum_{i in j} x_i, then acc += d isum - dmin msum (bd_pk_kquant_tiles.c, whose
// tiles repeat these very steps).
static float kq_i8_integer(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, float xs) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const int8_t *x = xq + (size_t)g * BD_QK_K;
        int q[BD_QK_K], sc[16], m[16], nsub, len;
        float d, dmin;
        if (t->type == BD_PK_Q2_K) {
            bd_block_q2_K b;
            memcpy(&b, bd_pk_cblock(row, t, g), sizeof b);
            d = bd_f16_to_f32(b.d), dmin = bd_f16_to_f32(b.dmin);
            nsub = 16, len = 16;
            for (int j = 0; j < 16; j++) sc[j] = b.scales[j] & 15, m[j] = b.scales[j] >> 4;
            for (int i = 0; i < BD_QK_K; i++) q[i] = b.qs[32 * (i >> 7) + (i & 31)] >> (2 * ((i >> 5) & 3)) & 3;
        } else {
            bd_block_q4_K b;
            memcpy(&b, bd_pk_cblock(row, t, g), sizeof b);
            d = bd_f16_to_f32(b.d), dmin = bd_f16_to_f32(b.dmin);
            nsub = 8, len = 32;
            bd_q4_K_scales_mins(b.scales, sc, m);
            for (int i = 0; i < BD_QK_K; i++) q[i] = b.qs[32 * (i >> 6) + (i & 31)] >> (4 * ((i >> 5) & 1)) & 15;
        }
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < nsub; j++) {
            int32_t dot = 0, sum = 0;
            for (int i = j * len; i < (j + 1) * len; i++) dot += q[i] * x[i], sum += x[i];
            isum += sc[j] * dot;
            msum += m[j] * sum;
        }
        acc += d * (float)isum - dmin * (float)msum;
    }
    return acc * xs;
}

float bd_vec_dot_kquant_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                  float xs) {
    (void)xsum;
    if (t->type != BD_PK_Q3_K) return kq_i8_integer(t, row, xq, xs);
    kq_dequant_fn *dequant = dequant_of(t->type);
    float w[BD_QK_K], acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        dequant(bd_pk_cblock(row, t, g), w);
        const int8_t *x = xq + (size_t)g * BD_QK_K;
        for (int i = 0; i < BD_QK_K; i++) acc += w[i] * (float)x[i];
    }
    return acc * xs;
}

#ifdef BD_X86
// AVX2: the codes of 32 weights at a time, decoded in registers, never stored. A run is 32
// consecutive weights whose first 16 lie in one sub-block (factors dl0, ml0: w = dl*q - ml) and
// next 16 in another (dl1, ml1); c holds their codes as bytes. One rounding for dl*q - ml (a
// fused multiply-subtract), so results differ from the scalar dot by rounding only.
T_AVX2 BD_SIMD_INLINE __m256 kq_codes8(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }

T_AVX2 BD_SIMD_INLINE __m256 kq_run32(__m256i c, const float *x, float dl0, float ml0, float dl1, float ml1,
                                      __m256 acc) {
    __m128i lo = _mm256_castsi256_si128(c), hi = _mm256_extracti128_si256(c, 1);
    __m256 d0 = _mm256_set1_ps(dl0), m0 = _mm256_set1_ps(ml0), d1 = _mm256_set1_ps(dl1), m1 = _mm256_set1_ps(ml1);
    acc = _mm256_fmadd_ps(_mm256_fmsub_ps(d0, kq_codes8(lo), m0), _mm256_loadu_ps(x), acc);
    acc = _mm256_fmadd_ps(_mm256_fmsub_ps(d0, kq_codes8(_mm_srli_si128(lo, 8)), m0), _mm256_loadu_ps(x + 8), acc);
    acc = _mm256_fmadd_ps(_mm256_fmsub_ps(d1, kq_codes8(hi), m1), _mm256_loadu_ps(x + 16), acc);
    acc = _mm256_fmadd_ps(_mm256_fmsub_ps(d1, kq_codes8(_mm_srli_si128(hi, 8)), m1), _mm256_loadu_ps(x + 24), acc);
    return acc;
}

// q2_K and q3_K: weight 128h + 32s + l has its 2 low bits at bits 2s of qs[32h + l] (sub-block
// 8h + 2s for l < 16, the next one above); q3_K adds bit 4h + s of hmask[l] as bit 2.
T_AVX2 static __m256 q2q3_block(const uint8_t *qs, const uint8_t *hmask, const float dl[16], const float ml[16],
                                const float *x, __m256 acc) {
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256i hm = hmask ? _mm256_loadu_si256((const __m256i *)(const void *)hmask) : _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * h));
        for (int s = 0; s < 4; s++) {
            __m256i c = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * s)), three);
            if (hmask) {
                __m256i hb = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + s)), one);
                c = _mm256_or_si256(c, _mm256_slli_epi16(hb, 2));
            }
            int j = 8 * h + 2 * s;
            acc = kq_run32(c, x + 128 * h + 32 * s, dl[j], ml[j], dl[j + 1], ml[j + 1], acc);
        }
    }
    return acc;
}

T_AVX2 float bd_vec_dot_kquant_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m256 acc = _mm256_setzero_ps();
    float dl[16], ml[16];
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *blk = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * BD_QK_K;
        if (t->type == BD_PK_Q2_K) {
            const bd_block_q2_K *b = (const void *)blk;
            float d = bd_f16_to_f32(b->d), dmin = bd_f16_to_f32(b->dmin);
            for (int j = 0; j < 16; j++) {
                dl[j] = d * (float)(b->scales[j] & 15);
                ml[j] = dmin * (float)(b->scales[j] >> 4);
            }
            acc = q2q3_block(b->qs, NULL, dl, ml, x, acc);
        } else if (t->type == BD_PK_Q3_K) {
            const bd_block_q3_K *b = (const void *)blk;
            float d = bd_f16_to_f32(b->d);
            for (int j = 0; j < 16; j++) {  // w = dl*(q - 4) = dl*q - 4 dl
                dl[j] = d * (float)(bd_q3_K_scale(b->scales, j) - 32);
                ml[j] = 4 * dl[j];
            }
            acc = q2q3_block(b->qs, b->hmask, dl, ml, x, acc);
        } else {  // q4_K: weight 64h + 32s + l in nibble s of qs[32h + l], sub-block 2h + s
            const bd_block_q4_K *b = (const void *)blk;
            float d = bd_f16_to_f32(b->d), dmin = bd_f16_to_f32(b->dmin);
            const __m256i low = _mm256_set1_epi8(15);
            int scs[8], ms[8];
            bd_q4_K_scales_mins(b->scales, scs, ms);
            for (int h = 0; h < 4; h++) {
                int sc0 = scs[2 * h], m0 = ms[2 * h], sc1 = scs[2 * h + 1], m1 = ms[2 * h + 1];
                __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(b->qs + 32 * h));
                float d0 = d * (float)sc0, n0 = dmin * (float)m0, d1 = d * (float)sc1, n1 = dmin * (float)m1;
                acc = kq_run32(_mm256_and_si256(q, low), x + 64 * h, d0, n0, d0, n0, acc);
                acc = kq_run32(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), x + 64 * h + 32, d1, n1, d1, n1, acc);
            }
        }
    }
    return bd_hsum256(acc);
}

// AVX-512: the same decoding 16 weights a register. Per block the 16 (or 8) sub-block factors
// dl, ml are computed as vectors and stored once (broadcast loads read them back); the f16
// factors convert with F16C (exact, as bd_f16_to_f32). Four accumulators (the two halves of a
// run of 32, alternating runs) hide the FMA latency.
#define T_KQ512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))
T_KQ512 BD_SIMD_INLINE float kq_f16(uint16_t h) { return _cvtsh_ss(h); }
T_KQ512 BD_SIMD_INLINE __m512 kq_codes16(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }

// acc0 += (dl0*c[0..16) - ml0) x[0..16), acc1 += (dl1*c[16..32) - ml1) x[16..32)
T_KQ512 BD_SIMD_INLINE void kq_run32_512(__m256i c, const float *x, const float *dl0, const float *ml0,
                                         const float *dl1, const float *ml1, __m512 *acc0, __m512 *acc1) {
    __m512 w0 = _mm512_fmsub_ps(_mm512_set1_ps(*dl0), kq_codes16(_mm256_castsi256_si128(c)), _mm512_set1_ps(*ml0));
    __m512 w1 = _mm512_fmsub_ps(_mm512_set1_ps(*dl1), kq_codes16(_mm256_extracti128_si256(c, 1)), _mm512_set1_ps(*ml1));
    *acc0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), *acc0);
    *acc1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), *acc1);
}

T_KQ512 BD_SIMD_INLINE void q2q3_block_512(const uint8_t *qs, const uint8_t *hmask, const float *dl, const float *ml,
                                           const float *x, __m512 acc[4]) {
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256i hm = hmask ? _mm256_loadu_si256((const __m256i *)(const void *)hmask) : _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * h));
        for (int s = 0; s < 4; s++) {
            __m256i c = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * s)), three);
            if (hmask) {
                __m256i hb = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + s)), one);
                c = _mm256_or_si256(c, _mm256_slli_epi16(hb, 2));
            }
            int j = 8 * h + 2 * s, a = 2 * (s & 1);
            kq_run32_512(c, x + 128 * h + 32 * s, dl + j, ml + j, dl + j + 1, ml + j + 1, &acc[a], &acc[a + 1]);
        }
    }
}

T_KQ512 float bd_vec_dot_kquant_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    _Alignas(64) float dl[16], ml[16];
    const __m512i low4 = _mm512_set1_epi32(15);
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *blk = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * BD_QK_K;
        if (t->type == BD_PK_Q2_K) {
            const bd_block_q2_K *b = (const void *)blk;
            __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)b->scales));
            _mm512_store_ps(dl, _mm512_mul_ps(_mm512_set1_ps(kq_f16(b->d)),
                                              _mm512_cvtepi32_ps(_mm512_and_si512(sc, low4))));
            _mm512_store_ps(ml, _mm512_mul_ps(_mm512_set1_ps(kq_f16(b->dmin)),
                                              _mm512_cvtepi32_ps(_mm512_srli_epi32(sc, 4))));
            q2q3_block_512(b->qs, NULL, dl, ml, x, acc);
        } else if (t->type == BD_PK_Q3_K) {
            const bd_block_q3_K *b = (const void *)blk;
            float d = kq_f16(b->d);
            for (int j = 0; j < 16; j++) {  // w = dl*(q - 4) = dl*q - 4 dl
                dl[j] = d * (float)(bd_q3_K_scale(b->scales, j) - 32);
                ml[j] = 4 * dl[j];
            }
            q2q3_block_512(b->qs, b->hmask, dl, ml, x, acc);
        } else {  // q4_K: weight 64h + 32s + l in nibble s of qs[32h + l], sub-block 2h + s
            const bd_block_q4_K *b = (const void *)blk;
            float d = kq_f16(b->d), dmin = kq_f16(b->dmin);
            int scs[8], ms[8];
            bd_q4_K_scales_mins(b->scales, scs, ms);
            for (int j = 0; j < 8; j++) {
                dl[j] = d * (float)scs[j];
                ml[j] = dmin * (float)ms[j];
            }
            const __m256i low = _mm256_set1_epi8(15);
            for (int h = 0; h < 4; h++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(b->qs + 32 * h));
                int j = 2 * h;
                kq_run32_512(_mm256_and_si256(q, low), x + 64 * h, dl + j, ml + j, dl + j, ml + j, &acc[0], &acc[1]);
                kq_run32_512(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), x + 64 * h + 32, dl + j + 1, ml + j + 1,
                             dl + j + 1, ml + j + 1, &acc[2], &acc[3]);
            }
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

// int8 activations on AVX-512 (VNNI), q2_K and q4_K (q3_K: the scalar dot). Per sub-block j,
// sum_i w_i x_i = dl_j sum_i q_i x_i - ml_j sum_i x_i with both sums exact in int32: the code
// sums by vpdpbusd (codes u8, activations s8), the minimum terms as one vpdpbusd of the
// sub-blocks' integer minimums (as bytes, one per weight) with the activations, scaled by the
// block's dmin once. A run of 32 q2_K weights spans two sub-blocks: int32 lanes 0-3 and 4-7.
static const int32_t kq_lane_sub[8][8] = {{0, 0, 0, 0, 1, 1, 1, 1},         {2, 2, 2, 2, 3, 3, 3, 3},
                                          {4, 4, 4, 4, 5, 5, 5, 5},         {6, 6, 6, 6, 7, 7, 7, 7},
                                          {8, 8, 8, 8, 9, 9, 9, 9},         {10, 10, 10, 10, 11, 11, 11, 11},
                                          {12, 12, 12, 12, 13, 13, 13, 13}, {14, 14, 14, 14, 15, 15, 15, 15}};
// byte k of a run's 32: its sub-block's index into the 16 minimums (lane 0: j, lane 1: j + 1)
#define KQ_B16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const uint8_t kq_byte_sub[8][32] = {{KQ_B16(0), KQ_B16(1)},   {KQ_B16(2), KQ_B16(3)},  {KQ_B16(4), KQ_B16(5)},
                                           {KQ_B16(6), KQ_B16(7)},   {KQ_B16(8), KQ_B16(9)},  {KQ_B16(10), KQ_B16(11)},
                                           {KQ_B16(12), KQ_B16(13)}, {KQ_B16(14), KQ_B16(15)}};
#define T_KQ512V __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

// One q2_K run of 32 weights: codes c (bytes), activations xv; j/2 = r.
T_KQ512V BD_SIMD_INLINE void kq2_i8_run(__m256i c, __m256i xv, int r, __m512 dlv, __m256i mb, __m256 *facc,
                                        __m256i *macc) {
    __m256i dp = _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, xv);
    __m256 dl8 = _mm512_castps512_ps256(_mm512_permutexvar_ps(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)kq_lane_sub[r])), dlv));
    *facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dp), dl8, *facc);
    __m256i mj = _mm256_shuffle_epi8(mb, _mm256_loadu_si256((const __m256i *)(const void *)kq_byte_sub[r]));
    *macc = _mm256_dpbusd_epi32(*macc, mj, xv);
}

T_KQ512V float bd_vec_dot_kquant_i8_avx512(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq,
                                           const int32_t *xsum, float xs) {
    if (t->type == BD_PK_Q3_K) return bd_vec_dot_kquant_i8_scalar(t, row, xq, xsum, xs);
    __m256 facc = _mm256_setzero_ps(), mins = _mm256_setzero_ps();
    const __m256i three = _mm256_set1_epi8(3), low = _mm256_set1_epi8(15);
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *blk = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * BD_QK_K;
        __m256i macc = _mm256_setzero_si256();
        float dmin;
        if (t->type == BD_PK_Q2_K) {
            const bd_block_q2_K *b = (const void *)blk;
            __m128i sc = _mm_loadu_si128((const __m128i *)(const void *)b->scales);
            __m512 dlv = _mm512_mul_ps(_mm512_set1_ps(kq_f16(b->d)),
                                       _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(sc, _mm_set1_epi8(15)))));
            // the 16 minimums as bytes in both 128-bit lanes; byte k of lane 0 (1) picks sub-block j (j + 1)
            __m256i mb = _mm256_broadcastsi128_si256(_mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(15)));
            dmin = kq_f16(b->dmin);
            for (int h = 0; h < 2; h++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(b->qs + 32 * h));
                const int8_t *xh = x + 128 * h;
#define KQ2_RUN(s, cs)                                                                                        \
    kq2_i8_run(_mm256_and_si256(cs, three), _mm256_loadu_si256((const __m256i *)(const void *)(xh + 32 * s)), \
               4 * h + s, dlv, mb, &facc, &macc)
                KQ2_RUN(0, q);
                KQ2_RUN(1, _mm256_srli_epi16(q, 2));
                KQ2_RUN(2, _mm256_srli_epi16(q, 4));
                KQ2_RUN(3, _mm256_srli_epi16(q, 6));
#undef KQ2_RUN
            }
        } else {  // q4_K: weight 64h + 32s + l in nibble s of qs[32h + l], sub-block 2h + s (32 weights)
            const bd_block_q4_K *b = (const void *)blk;
            float d = kq_f16(b->d);
            dmin = kq_f16(b->dmin);
            int scs[8], ms[8];
            bd_q4_K_scales_mins(b->scales, scs, ms);
            for (int h = 0; h < 4; h++) {
                int sc0 = scs[2 * h], m0 = ms[2 * h], sc1 = scs[2 * h + 1], m1 = ms[2 * h + 1];
                __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(b->qs + 32 * h));
                __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)(x + 64 * h));
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(x + 64 * h + 32));
                __m256i p0 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_and_si256(q, low), x0);
                __m256i p1 =
                        _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_and_si256(_mm256_srli_epi16(q, 4), low), x1);
                facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d * (float)sc0), facc);
                facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(d * (float)sc1), facc);
                macc = _mm256_dpbusd_epi32(macc, _mm256_set1_epi8((char)m0), x0);
                macc = _mm256_dpbusd_epi32(macc, _mm256_set1_epi8((char)m1), x1);
            }
        }
        mins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(macc), _mm256_set1_ps(dmin), mins);
    }
    return bd_hsum256(_mm256_sub_ps(facc, mins)) * xs;
}
#endif

#ifdef BD_X86
// Generation's matrix-vector product for q2_K and q4_K (int8 activations, AVX-512 VNNI), equal bit
// for bit to kq_i8_integer: per block the exact isum and msum, then the same float steps. The
// activations are put once per call in the order of the codes' 64-byte registers (xperm), with
// their sums over each 16 weights as int32 (xs16), so a block takes one (q2_K) or two (q4_K)
// 64-byte loads of codes and whole-register vpdpbusd: lane group k (4 lanes, 16 weights) of
// register s holds one sub-block's dot, scaled by its sc (vpermd of the block's scales) with
// vpdpwssd: a lane's dot (4 codes of at most 15 times |x| <= 127: |d| <= 7620) fits its low 16
// bits, whose product with sc (high 16 bits zero) is then the exact d sc (vpmulld took twice
// the uops and latency).
#define KQ_GEMV_PF 4096     // bytes prefetched ahead (2048: 3% slower on the 7B stack, 8192 the same)
#define KQ_GEMV_COLS 65536  // activations put in order on the stack (80 KB); wider rows take the scalar dot

// Sub-block of lane group k (0..3) of q2_K register s (0..3): bytes 0-31 are weights 32s + l,
// bytes 32-63 weights 128 + 32s + l. q4_K register (u, nibble): bytes 0-31 are weights
// 128u + 32 nib + l (sub 4u + nib), bytes 32-63 weights 128u + 64 + 32 nib + l (sub 4u + 2 + nib).
static int kq_lane_sub_of(bool q2, int s, int k) {
    if (q2) return (k < 2 ? 2 * s : 8 + 2 * s) + (k & 1);
    int u = s >> 1, nib = s & 1;
    return 4 * u + nib + (k < 2 ? 0 : 2);
}

T_KQ512V static void kq_perm_x(bool q2, const int8_t *xq, int C, int8_t *xperm, int32_t *xs16) {
    for (int g = 0; g < C / BD_QK_K; g++) {
        const int8_t *x = xq + (size_t)g * BD_QK_K;
        int8_t *o = xperm + (size_t)g * BD_QK_K;
        for (int s = 0; s < 4; s++) {  // register s: two runs of 32 weights
            int a = q2 ? 32 * s : 128 * (s >> 1) + 32 * (s & 1), b = q2 ? 128 + 32 * s : a + 64;
            memcpy(o + 64 * s, x + a, 32);
            memcpy(o + 64 * s + 32, x + b, 32);
        }
    }
    for (int k = 0; k < C / 16; k++) {
        int32_t v = 0;
        for (int i = 0; i < 16; i++) v += xq[16 * k + i];
        xs16[k] = v;
    }
}

// One block's integer work: isum's and msum's terms as 16 lanes each (their lane sums are the
// block's exact isum and msum of kq_i8_integer).
T_KQ512V BD_SIMD_INLINE void kq_gemv_block(bool q2, const uint8_t *blk, const int8_t *xp, const int32_t *xs16g,
                                           const __m512i idx[4], __m512i *isum_v, __m512i *msum_v) {
    const __m512i three = _mm512_set1_epi8(3), low4 = _mm512_set1_epi8(15), low4d = _mm512_set1_epi32(15);
    __m512i isum = _mm512_setzero_si512(), sc, mn;
    if (q2) {
        const bd_block_q2_K *b = (const void *)blk;
        __m512i s8 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)b->scales));
        sc = _mm512_and_si512(s8, low4d), mn = _mm512_srli_epi32(s8, 4);
        // Unrolled (GCC kept a loop with the shift count in a register) and two chains of
        // vpdpwssd instead of one: 4096 x 11008 in L2, one core, 8.4-9.2 -> 9.1-9.7 GB/s.
        __m512i q = _mm512_loadu_si512((const void *)b->qs), part[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            __m512i c = _mm512_and_si512(_mm512_srli_epi16(q, (unsigned)(2 * s)), three);
            __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c, _mm512_load_si512(xp + 64 * s));
            part[s & 1] = _mm512_dpwssd_epi32(part[s & 1], d, _mm512_permutexvar_epi32(idx[s], sc));
        }
        isum = _mm512_add_epi32(part[0], part[1]);
    } else {
        const bd_block_q4_K *b = (const void *)blk;
        // The 8 six-bit scales and minimums as bytes (bd_q4_K_scales_mins's rule, on words), then lanes.
        uint32_t w[3];
        memcpy(w, b->scales, 12);
        uint64_t scb = (w[0] & 0x3f3f3f3fu) | (uint64_t)((w[2] & 0x0f0f0f0fu) | (w[0] >> 6 & 0x03030303u) << 4) << 32;
        uint64_t mnb = (w[1] & 0x3f3f3f3fu) | (uint64_t)((w[2] >> 4 & 0x0f0f0f0fu) | (w[1] >> 6 & 0x03030303u) << 4)
                                                      << 32;
        sc = _mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)scb));
        mn = _mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mnb));
        for (int u = 0; u < 2; u++) {
            __m512i q = _mm512_loadu_si512((const void *)(b->qs + 64 * u));
            for (int nib = 0; nib < 2; nib++) {
                int s = 2 * u + nib;
                __m512i c = _mm512_and_si512(nib ? _mm512_srli_epi16(q, 4) : q, low4);
                __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c, _mm512_load_si512(xp + 64 * s));
                isum = _mm512_dpwssd_epi32(isum, d, _mm512_permutexvar_epi32(idx[s], sc));
            }
        }
    }
    // msum: q2_K's 16 minimums against the 16 sums; q4_K's 8 against pairs of them
    __m512i x16 = _mm512_load_si512(xs16g);
    if (!q2) x16 = _mm512_add_epi32(_mm512_maskz_compress_epi32(0x5555, x16), _mm512_maskz_compress_epi32(0xaaaa, x16));
    *isum_v = isum;
    *msum_v = _mm512_madd_epi16(x16, mn);  // |x16| <= 4064, mn <= 63: exact on the low 16 bits
}

// Lane i of the result = the sum of v[i]'s 16 lanes, for 16 vectors at once (exact integers):
// pairs, then pairs of pairs inside each 128-bit lane, then across the four 128-bit lanes (45
// instructions where 16 separate reductions take about 130).
T_KQ512V BD_SIMD_INLINE __m512i kq_lane_sums16(const __m512i v[16]) {
    __m512i a[8], b[4];
    for (int i = 0; i < 8; i++)  // 128-bit lane L: v[2i] and v[2i+1] summed in pairs, interleaved
        a[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++)  // lane L: the partial sums of v[4i .. 4i+3], in order
        b[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]),
                                _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
    // Add the four 128-bit lanes: b[i]'s sums land in 128-bit lane i.
    __m512i d01 = _mm512_add_epi32(_mm512_shuffle_i32x4(b[0], b[1], 0x88), _mm512_shuffle_i32x4(b[0], b[1], 0xDD));
    __m512i d23 = _mm512_add_epi32(_mm512_shuffle_i32x4(b[2], b[3], 0x88), _mm512_shuffle_i32x4(b[2], b[3], 0xDD));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(d01, d23, 0x88), _mm512_shuffle_i32x4(d01, d23, 0xDD));
}

T_KQ512V void bd_gemv_kquant_i8_avx512(float *out, const bd_pk_tensor *t, const int8_t *xq, const int32_t *xsum,
                                       float xs, int r0, int r1) {
    int C = t->cols;
    if (C > KQ_GEMV_COLS) {
        for (int r = r0; r < r1; r++) out[r] = kq_i8_integer(t, t->data + (size_t)r * t->row_bytes, xq, xs);
        return;
    }
    (void)xsum;
    bool q2 = t->type == BD_PK_Q2_K;
    _Alignas(64) int8_t xperm[KQ_GEMV_COLS];
    _Alignas(64) int32_t xs16[KQ_GEMV_COLS / 16];
    kq_perm_x(q2, xq, C, xperm, xs16);
    __m512i idx[4];  // per register s: the sub-block index of each lane
    for (int s = 0; s < 4; s++) {
        int32_t v[16];
        for (int l = 0; l < 16; l++) v[l] = kq_lane_sub_of(q2, s, l / 4);
        idx[s] = _mm512_loadu_si512(v);
    }
    // The rows' blocks in memory order, 16 at a time (across rows: a 768-weight row has 3), each
    // row's float steps in order; (r, g): the next block's row and group.
    size_t off_d = q2 ? offsetof(bd_block_q2_K, d) : offsetof(bd_block_q4_K, d);  // dmin follows d in both
    const uint8_t *end = t->data + (size_t)r1 * t->row_bytes;
    int64_t left = (int64_t)(r1 - r0) * t->ngroups;
    int r = r0, g = 0, out_r = r0, out_g = 0;
    float acc = 0;
    while (left > 0) {
        int G = left < 16 ? (int)left : 16;
        __m512i iv[16], mv[16];
        // Lane i: block i's d | dmin << 16, built in a register (an array of halves reloaded as a
        // vector stalls on store forwarding, as it did in bd_pk_kquant_tiles.c's repacking).
        __m512i dd = _mm512_setzero_si512();
        for (int i = 0; i < 16; i++) {
            if (i >= G) {
                iv[i] = mv[i] = _mm512_setzero_si512();
                continue;
            }
            const uint8_t *blk = t->data + (size_t)r * t->row_bytes + (size_t)g * t->block_bytes;
            // The hardware prefetcher alone left the loop waiting on memory; a whole row
            // prefetched at once stalled on the fill buffers: two lines per block, PF ahead.
            if (blk + KQ_GEMV_PF < end) {
                _mm_prefetch((const char *)(blk + KQ_GEMV_PF), _MM_HINT_T0);
                _mm_prefetch((const char *)(blk + KQ_GEMV_PF + 64), _MM_HINT_T0);
            }
            kq_gemv_block(q2, blk, xperm + (size_t)g * BD_QK_K, xs16 + (size_t)g * 16, idx, &iv[i], &mv[i]);
            dd = _mm512_mask_set1_epi32(dd, (__mmask16)(1u << i), (int)bd_rd32(blk + off_d));
            if (++g == t->ngroups) g = 0, r++;
        }
        // The float steps of kq_i8_integer, block by block: d isum - dmin msum, then acc +.
        __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd)),
               dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        __m512 step = _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(kq_lane_sums16(iv))),
                                    _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(kq_lane_sums16(mv))));
        _Alignas(64) float st[16];
        _mm512_store_ps(st, step);
        for (int i = 0; i < G; i++) {
            acc += st[i];
            if (++out_g == t->ngroups) {
                out[out_r++] = acc * xs;
                acc = 0, out_g = 0;
            }
        }
        left -= G;
    }
}
#endif
