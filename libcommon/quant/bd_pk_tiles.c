// Integer tiles: out (N, OC) = inp (N, C) @ W^T for int8 activations and N >= 8 tokens (prompt
// processing, the batched forward of evaluation, generation and QAT's teacher) on the affine
// formats (q2 q3 q8 q6: w = (q - z) * s per group; tq2: s = D, z = 1, one group per row).
// Dimension key: N tokens, OC rows, C row length, G group, GP padded group, NG groups per row,
// XP = NG * GP (padded activation row), RB rows of a tile (path: AVX-512 32, AVX2 16), TN tokens
// of a tile (AVX-512 8, AVX2 3), K4 = XP / 4 steps of 4 weights.
//
// A block of RB rows is first repacked (once per call, by the thread that computes it) from the
// format's codes into bytes, 4 weights of each row side by side: codes[K4][RB][4], with each
// group's s and z as vectors of RB lanes. The kernel then keeps RB x TN int32 accumulators in
// registers: per step of 4 weights it loads the rows' 4 codes once (RB/16 zmm or RB/8 ymm) and,
// for each token, broadcasts the token's 4 int8 activations and multiplies-adds them into every
// row at once (AVX-512 VNNI vpdpbusd: u8 codes x s8 activations; AVX2 vpmaddubsw + vpmaddwd).
// At the end of each group, per row and token: d = dot - z * xsum (exact int32), then
// acc += s * (float)d (a multiply and an add, not fused), and out = acc * xs at the end: the
// very operations of the scalar row dots (bd_vec_dot_<fmt>_i8_scalar), so a tile's result equals
// the scalar int8 row dot bit for bit (the AVX2/AVX-512 row dots sum in another order).
//
// Exactness: codes q <= QMAX (tq2 2, q2 3, q3 7, q6 63, q8 255), activations |x| <= 127 (the
// level -128 never occurs, bd_act_quant.h), z <= QMAX, |xsum| <= 127 G, so every int32 value
// of a group (dot, z * xsum, d) is at most QMAX * 127 * GP in size: below 2^31 while
// GP <= 2^31 / (127 QMAX) (q8: 66,311; q6: 268,400; tq2: 8.4M weights per row); larger groups
// take the row dots (tiles_fit). vpmaddubsw adds two u8 x s8 products into int16 with
// saturation, and the AVX2 tile adds two such pairs in int16 before widening: exact while
// 4 * 127 * QMAX <= 32767, i.e. up to QMAX = 64 (q6: 63), so q8 has no AVX2 tile.
// Scratch (bd_pk_tiles_scratch_bytes): the int8 activations and their sums, and a panel of
// repacked rows (at most ~4 MB, whole blocks; any thread count) that the row loop walks through.
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_act_quant.h"
#include "bd_pk_simd.h"
#include "bd_threads.h"

// ---- repacking ---------------------------------------------------------------------------------------
// Codes of 4 weights as the 4 bytes of a little-endian uint32, weight k0 in the low byte.

static inline uint32_t rd32u(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
// Four 2-bit codes (one byte, weight k0 in bits 0-1) as four bytes.
static inline uint32_t expand2(uint32_t b) { return (b | b << 6 | b << 12 | b << 18) & 0x03030303u; }
// Four 1-bit flags (bits 0-3) as bit 2 of four bytes (the 3-bit codes' high plane).
static inline uint32_t expand1_hi(uint32_t h) { return ((h * 0x00204081u) & 0x01010101u) << 2; }

// Weights 4k..4k+3 of a block's codes (GP weights), per format; k < GP/4 (2-bit: codes2_512/256 below).
static inline uint32_t codes4_3(const uint8_t *qs, int gp, int k) {
    return expand2(qs[k]) | expand1_hi((uint32_t)qs[gp / 4 + k / 2] >> (4 * (k & 1)) & 15);
}
static inline uint32_t codes4_8(const uint8_t *qs, int gp, int k) {
    (void)gp;
    return rd32u(qs + 4 * k);
}
// q6 (bd_packed.h): chunk c = k / 8 of 32 weights, j0 = 4 (k % 8) its first weight here.
static inline uint32_t codes4_6(const uint8_t *qs, int gp, int k) {
    int c = k >> 3, j0 = 4 * (k & 7);
    uint32_t lo = rd32u(qs + 16 * c + (j0 & 15)) >> (j0 < 16 ? 0 : 4) & 0x0f0f0f0fu;
    uint32_t hi = rd32u(qs + gp / 2 + 8 * c + (j0 & 7)) >> (2 * (j0 >> 3)) & 0x03030303u;
    return lo | hi << 4;
}

// The repacked form of rows r0 .. r0+RB-1: codes (K4, RB) uint32, then s (NG, RB) f32 and
// z (NG, RB) int32. Rows past OC get code 0, s 0 and z 0 (their results are not stored).
typedef struct {
    uint32_t *codes;
    float *s;
    int32_t *z;
} packed_block;

static size_t block_bytes(const bd_pk_tensor *t, int rb) {
    return (size_t)rb * ((size_t)t->ngroups * (size_t)t->gpad + 8 * (size_t)t->ngroups);
}
static packed_block block_at(const bd_pk_tensor *t, int rb, uint8_t *p) {
    size_t k4 = (size_t)t->ngroups * (size_t)t->gpad / 4;
    packed_block b = {(uint32_t *)(void *)p, (float *)(void *)(p + k4 * rb * 4), NULL};
    b.z = (int32_t *)(void *)(b.s + (size_t)t->ngroups * rb);
    return b;
}

// One scalar repack per format: the block header gives s and z, codes4 the codes.
#define REPACK_AFFINE(name, blk, codes4)                                                     \
    static void repack_##name(const bd_pk_tensor *t, int r0, int rb, packed_block b) {       \
        int k4g = t->gpad / 4, NG = t->ngroups;                                              \
        for (int rr = 0; rr < rb; rr++) {                                                    \
            if (r0 + rr >= t->rows) {                                                        \
                for (int g = 0; g < NG; g++) b.s[g * rb + rr] = 0, b.z[g * rb + rr] = 0;     \
                for (int k = 0; k < NG * k4g; k++) b.codes[(size_t)k * rb + rr] = 0;         \
                continue;                                                                    \
            }                                                                                \
            const uint8_t *row = t->data + (size_t)(r0 + rr) * t->row_bytes;                 \
            for (int g = 0; g < NG; g++) {                                                   \
                const blk *h = bd_pk_cblock(row, t, g);                                      \
                b.s[g * rb + rr] = h->s;                                                     \
                b.z[g * rb + rr] = h->z;                                                     \
                uint32_t *o = b.codes + (size_t)g * k4g * rb + rr;                           \
                for (int k = 0; k < k4g; k++) o[(size_t)k * rb] = codes4(h->qs, t->gpad, k); \
            }                                                                                \
        }                                                                                    \
    }
REPACK_AFFINE(q3, bd_block_q3, codes4_3)
REPACK_AFFINE(q8, bd_block_q8, codes4_8)
REPACK_AFFINE(q6, bd_block_q6, codes4_6)

typedef void repack_fn(const bd_pk_tensor *t, int r0, int rb, packed_block b);

#ifdef BD_X86
// The 2-bit formats' repack with gathers: one gather takes 4 code bytes (16 weights) from each of
// 16 (AVX2: 8) rows, and each byte becomes a lane's 4 code bytes (the scalar repack did one
// 4-weight store per row: as slow as the tiles themselves at N = 8). Groups: ng blocks of
// gstride bytes per row, codes hdr bytes into each (tq2: one plane, ng 1, hdr 0).
T_AVX512 static void codes2_512(const bd_pk_tensor *t, int r0, int rb, uint32_t *codes, int ng, size_t gstride,
                                size_t hdr) {
    int k4g = t->gpad / 4;
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512i ctrl[4];  // output byte e of dword half h of a qword: bits 32h + 8c + 2e of the gathered dword pair
    for (int c = 0; c < 4; c++) {
        uint64_t q = 0;
        for (int p = 0; p < 8; p++) q |= (uint64_t)(32 * (p / 4) + 8 * c + 2 * (p % 4)) << (8 * p);
        ctrl[c] = _mm512_set1_epi64((long long)q);
    }
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)t->row_bytes));
    for (int h = 0; h < rb; h += 16) {
        int nr = t->rows - (r0 + h);
        __mmask16 m = nr >= 16 ? 0xffff : nr <= 0 ? 0 : (__mmask16)((1u << nr) - 1);
        const uint8_t *base = t->data + (size_t)(nr > 0 ? r0 + h : 0) * t->row_bytes;
        for (int g = 0; g < ng; g++) {
            const uint8_t *src = base + (size_t)g * gstride + hdr;
            uint32_t *o = codes + (size_t)g * k4g * rb + h;
            for (int j = 0; j < k4g; j += 4) {
                __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, src + j, 1);
                for (int c = 0; c < 4; c++)
                    _mm512_storeu_si512(o + (size_t)(j + c) * rb,
                                        _mm512_and_si512(_mm512_multishift_epi64_epi8(ctrl[c], v), m3));
            }
        }
    }
}

T_AVX2 static void codes2_256(const bd_pk_tensor *t, int r0, int rb, uint32_t *codes, int ng, size_t gstride,
                              size_t hdr) {
    int k4g = t->gpad / 4;
    const __m256i ff = _mm256_set1_epi32(0xff), m3 = _mm256_set1_epi8(3);
    const __m256i idx =
            _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)t->row_bytes));
    for (int h = 0; h < rb; h += 8) {
        int nr = t->rows - (r0 + h);
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const uint8_t *base = t->data + (size_t)(nr > 0 ? r0 + h : 0) * t->row_bytes;
        for (int g = 0; g < ng; g++) {
            const uint8_t *src = base + (size_t)g * gstride + hdr;
            uint32_t *o = codes + (size_t)g * k4g * rb + h;
            for (int j = 0; j < k4g; j += 4) {
                __m256i v = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)(const void *)(src + j),
                                                        idx, m, 1);
                for (int c = 0; c < 4; c++) {
                    __m256i bt = _mm256_and_si256(_mm256_srli_epi32(v, 8 * c), ff);  // as expand2, per lane
                    bt = _mm256_or_si256(_mm256_or_si256(bt, _mm256_slli_epi32(bt, 6)),
                                         _mm256_or_si256(_mm256_slli_epi32(bt, 12), _mm256_slli_epi32(bt, 18)));
                    _mm256_storeu_si256((__m256i *)(void *)(o + (size_t)(j + c) * rb), _mm256_and_si256(bt, m3));
                }
            }
        }
    }
}

// s and z of each row and group (codes by the caller).
static void params_q2(const bd_pk_tensor *t, int r0, int rb, packed_block b) {
    for (int rr = 0; rr < rb; rr++)
        for (int g = 0; g < t->ngroups; g++) {
            const bd_block_q2 *h =
                    r0 + rr < t->rows ? bd_pk_cblock(t->data + (size_t)(r0 + rr) * t->row_bytes, t, g) : NULL;
            b.s[g * rb + rr] = h ? h->s : 0;
            b.z[g * rb + rr] = h ? h->z : 0;
        }
}
static void params_tq2(const bd_pk_tensor *t, int r0, int rb, packed_block b) {
    for (int rr = 0; rr < rb; rr++) {
        b.s[rr] = r0 + rr < t->rows ? t->scale : 0;
        b.z[rr] = r0 + rr < t->rows ? 1 : 0;
    }
}
static void repack_avx512_q2(const bd_pk_tensor *t, int r0, int rb, packed_block b) {
    params_q2(t, r0, rb, b);
    codes2_512(t, r0, rb, b.codes, t->ngroups, t->block_bytes, offsetof(bd_block_q2, qs));
}
static void repack_avx512_tq2(const bd_pk_tensor *t, int r0, int rb, packed_block b) {
    params_tq2(t, r0, rb, b);
    codes2_512(t, r0, rb, b.codes, 1, 0, 0);
}
static void repack_avx2_q2(const bd_pk_tensor *t, int r0, int rb, packed_block b) {
    params_q2(t, r0, rb, b);
    codes2_256(t, r0, rb, b.codes, t->ngroups, t->block_bytes, offsetof(bd_block_q2, qs));
}
static void repack_avx2_tq2(const bd_pk_tensor *t, int r0, int rb, packed_block b) {
    params_tq2(t, r0, rb, b);
    codes2_256(t, r0, rb, b.codes, 1, 0, 0);
}
// The other formats: the scalar repack on both paths.
#define repack_avx512_q3 repack_q3
#define repack_avx2_q3 repack_q3
#define repack_avx512_q6 repack_q6
#define repack_avx2_q6 repack_q6
#define repack_avx512_q8 repack_q8
#endif

// ---- kernels -----------------------------------------------------------------------------------------
// One tile: rows of block b (RB), tokens n0 .. n0+nt-1 (nt <= TN), every group; the result
// times xs into out. acc (TN, RB) floats on the stack carry the sum over groups.

typedef struct {
    const bd_pk_tensor *t;
    const int8_t *xq;     // (N, XP)
    const int32_t *xsum;  // (N, NG)
    const float *xs;      // (N)
    float *out;           // (N, OC)
    int N;
    size_t XP;
} tile_args;

static void store_tile(const tile_args *a, const float *acc, int rb, int r0, int n0, int nt) {
    int nr = a->t->rows - r0 < rb ? a->t->rows - r0 : rb;
    for (int n = 0; n < nt; n++) {
        float *o = a->out + (size_t)(n0 + n) * a->t->rows + r0;
        for (int r = 0; r < nr; r++) o[r] = acc[n * rb + r] * a->xs[n0 + n];
    }
}

#ifdef BD_X86
#define RB512 32
#define TN512 8

// acc += u8 w x s8 x per int32 lane. Inline asm: with the intrinsic, GCC 12 copied every
// accumulator each step and spilled some to the stack.
#define DPBUSD(acc, w, x) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x))
#define X8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
// Group g of block b for nt tokens (a compile-time constant where it is inlined), 2 x nt zmm
// accumulators as named variables (arrays of them also ended partly on the stack).
T_AVX512 BD_SIMD_INLINE void group512(const tile_args *a, packed_block b, int g, int n0, int nt, float *acc) {
    const bd_pk_tensor *t = a->t;
    int k4g = t->gpad / 4;
    const uint32_t *w = b.codes + (size_t)g * k4g * RB512;
    const uint8_t *x = (const uint8_t *)a->xq + (size_t)n0 * a->XP + (size_t)g * t->gpad;
    size_t XP = a->XP;
#define DECL(i) __m512i lo##i = _mm512_setzero_si512(), hi##i = _mm512_setzero_si512();
    X8(DECL)
#undef DECL
    for (int k = 0; k < k4g; k++) {
        __m512i w0 = _mm512_loadu_si512(w + (size_t)k * RB512), w1 = _mm512_loadu_si512(w + (size_t)k * RB512 + 16);
#define DOT(i)                                                                  \
    if (nt > i) {                                                               \
        __m512i xb = _mm512_set1_epi32((int)rd32u(x + i * XP + 4 * (size_t)k)); \
        DPBUSD(lo##i, w0, xb);                                                  \
        DPBUSD(hi##i, w1, xb);                                                  \
    }
        X8(DOT)
#undef DOT
    }
    __m512i z0 = _mm512_loadu_si512(b.z + g * RB512), z1 = _mm512_loadu_si512(b.z + g * RB512 + 16);
    __m512 s0 = _mm512_loadu_ps(b.s + g * RB512), s1 = _mm512_loadu_ps(b.s + g * RB512 + 16);
#define EPI(i)                                                                                                         \
    if (nt > i) {                                                                                                      \
        __m512i xsv = _mm512_set1_epi32(a->xsum[(size_t)(n0 + i) * t->ngroups + g]);                                   \
        __m512i d0 = _mm512_sub_epi32(lo##i, _mm512_mullo_epi32(z0, xsv));                                             \
        __m512i d1 = _mm512_sub_epi32(hi##i, _mm512_mullo_epi32(z1, xsv));                                             \
        float *ac = acc + i * RB512;                                                                                   \
        _mm512_storeu_ps(ac, _mm512_add_ps(_mm512_loadu_ps(ac), _mm512_mul_ps(s0, _mm512_cvtepi32_ps(d0))));           \
        _mm512_storeu_ps(ac + 16, _mm512_add_ps(_mm512_loadu_ps(ac + 16), _mm512_mul_ps(s1, _mm512_cvtepi32_ps(d1)))); \
    }
    X8(EPI)
#undef EPI
}

T_AVX512 BD_SIMD_INLINE void tile512(const tile_args *a, packed_block b, int n0, int nt, float *acc) {
    for (int g = 0; g < a->t->ngroups; g++) group512(a, b, g, n0, nt, acc);
}

// Rows r0.. of one repacked block, every token.
T_AVX512 static void block512(const tile_args *a, packed_block b, int r0) {
    float acc[TN512 * RB512];
    for (int n0 = 0; n0 < a->N; n0 += TN512) {
        int nt = a->N - n0 < TN512 ? a->N - n0 : TN512;
        memset(acc, 0, sizeof acc);
        switch (nt) {  // constant token counts: accumulators in registers
        case 8: tile512(a, b, n0, 8, acc); break;
        case 7: tile512(a, b, n0, 7, acc); break;
        case 6: tile512(a, b, n0, 6, acc); break;
        case 5: tile512(a, b, n0, 5, acc); break;
        case 4: tile512(a, b, n0, 4, acc); break;
        case 3: tile512(a, b, n0, 3, acc); break;
        case 2: tile512(a, b, n0, 2, acc); break;
        default: tile512(a, b, n0, 1, acc); break;
        }
        int nr = a->t->rows - r0 < RB512 ? a->t->rows - r0 : RB512;
        __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
        __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
        for (int n = 0; n < nt; n++) {
            float *o = a->out + (size_t)(n0 + n) * a->t->rows + r0;
            __m512 xs = _mm512_set1_ps(a->xs[n0 + n]);
            _mm512_mask_storeu_ps(o, m0, _mm512_mul_ps(_mm512_loadu_ps(acc + n * RB512), xs));
            _mm512_mask_storeu_ps(o + 16, m1, _mm512_mul_ps(_mm512_loadu_ps(acc + n * RB512 + 16), xs));
        }
    }
}

#define RB256 16
#define TN256 3

T_AVX2 BD_SIMD_INLINE void group256(const tile_args *a, packed_block b, int g, int n0, int nt, float *acc) {
    const bd_pk_tensor *t = a->t;
    int k4g = t->gpad / 4;
    const uint32_t *w = b.codes + (size_t)g * k4g * RB256;
    const int8_t *x = a->xq + (size_t)n0 * a->XP + (size_t)g * t->gpad;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i lo[TN256], hi[TN256];
#pragma GCC unroll 3
    for (int n = 0; n < nt; n++) lo[n] = hi[n] = _mm256_setzero_si256();
    // Two steps of 4 weights summed in int16 before vpmaddwd: |2 products + 2 products| <= 4 * 63 * 127
    // = 32004 for codes up to 63 (q6; q8 has no AVX2 tile), so no saturation; k4g is even (GP % 32 == 0).
    for (int k = 0; k < k4g; k += 2) {
        const __m256i *wk = (const __m256i *)(const void *)(w + (size_t)k * RB256);
        __m256i w0 = _mm256_loadu_si256(wk), w1 = _mm256_loadu_si256(wk + 1);
        __m256i v0 = _mm256_loadu_si256(wk + 2), v1 = _mm256_loadu_si256(wk + 3);
#pragma GCC unroll 3
        for (int n = 0; n < nt; n++) {
            const uint8_t *xn = (const uint8_t *)x + (size_t)n * a->XP + 4 * (size_t)k;
            __m256i xa = _mm256_set1_epi32((int)rd32u(xn)), xb = _mm256_set1_epi32((int)rd32u(xn + 4));
            __m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, xa), _mm256_maddubs_epi16(v0, xb));
            __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(w1, xa), _mm256_maddubs_epi16(v1, xb));
            lo[n] = _mm256_add_epi32(lo[n], _mm256_madd_epi16(p0, ones));
            hi[n] = _mm256_add_epi32(hi[n], _mm256_madd_epi16(p1, ones));
        }
    }
    __m256i z0 = _mm256_loadu_si256((const __m256i *)(b.z + g * RB256)),
            z1 = _mm256_loadu_si256((const __m256i *)(b.z + g * RB256 + 8));
    __m256 s0 = _mm256_loadu_ps(b.s + g * RB256), s1 = _mm256_loadu_ps(b.s + g * RB256 + 8);
#pragma GCC unroll 3
    for (int n = 0; n < nt; n++) {
        __m256i xsv = _mm256_set1_epi32(a->xsum[(size_t)(n0 + n) * t->ngroups + g]);
        __m256i d0 = _mm256_sub_epi32(lo[n], _mm256_mullo_epi32(z0, xsv));
        __m256i d1 = _mm256_sub_epi32(hi[n], _mm256_mullo_epi32(z1, xsv));
        float *ac = acc + n * RB256;
        _mm256_storeu_ps(ac, _mm256_add_ps(_mm256_loadu_ps(ac), _mm256_mul_ps(s0, _mm256_cvtepi32_ps(d0))));
        _mm256_storeu_ps(ac + 8, _mm256_add_ps(_mm256_loadu_ps(ac + 8), _mm256_mul_ps(s1, _mm256_cvtepi32_ps(d1))));
    }
}

T_AVX2 BD_SIMD_INLINE void tile256(const tile_args *a, packed_block b, int n0, int nt, float *acc) {
    for (int g = 0; g < a->t->ngroups; g++) group256(a, b, g, n0, nt, acc);
}

T_AVX2 static void block256(const tile_args *a, packed_block b, int r0) {
    float acc[TN256 * RB256];
    for (int n0 = 0; n0 < a->N; n0 += TN256) {
        int nt = a->N - n0 < TN256 ? a->N - n0 : TN256;
        memset(acc, 0, sizeof acc);
        switch (nt) {
        case 3: tile256(a, b, n0, 3, acc); break;
        case 2: tile256(a, b, n0, 2, acc); break;
        default: tile256(a, b, n0, 1, acc); break;
        }
        store_tile(a, acc, RB256, r0, n0, nt);
    }
}
#endif

// ---- the gemm entries of the traits table ------------------------------------------------------------
// Rows [r0, r1) (r0 a multiple of the path's RB) for every token: each block of RB rows repacked
// into buf (block_bytes) and computed.

typedef void block_fn(const tile_args *a, packed_block b, int r0);

static void gemm_rows(const tile_args *a, int r0, int r1, uint8_t *buf, int rb, repack_fn *repack, block_fn *blk) {
    for (int r = r0; r < r1; r += rb) {
        packed_block b = block_at(a->t, rb, buf);
        repack(a->t, r, rb, b);
        blk(a, b, r);
    }
}

#ifdef BD_X86
#define GEMM_ENTRY(fmt, path, RB, blk)                                                                       \
    void bd_gemm_##fmt##_i8_##path(float *out, const bd_pk_tensor *t, const int8_t *xq, const int32_t *xsum, \
                                   const float *xs, int N, int r0, int r1, uint8_t *buf) {                   \
        tile_args a = {t, xq, xsum, xs, out, N, (size_t)t->ngroups * (size_t)t->gpad};                       \
        gemm_rows(&a, r0, r1, buf, RB, repack_##path##_##fmt, blk);                                          \
    }
GEMM_ENTRY(q2, avx512, RB512, block512)
GEMM_ENTRY(tq2, avx512, RB512, block512)
GEMM_ENTRY(q3, avx512, RB512, block512)
GEMM_ENTRY(q6, avx512, RB512, block512)
GEMM_ENTRY(q8, avx512, RB512, block512)
GEMM_ENTRY(q2, avx2, RB256, block256)
GEMM_ENTRY(tq2, avx2, RB256, block256)
GEMM_ENTRY(q3, avx2, RB256, block256)
GEMM_ENTRY(q6, avx2, RB256, block256)  // no q8: its int16 sums would saturate (codes > 64)
#endif

// ---- the driver ----------------------------------------------------------------------------------------

int bd_pk_tile_rows(bd_simd s) { return s == BD_SIMD_AVX512 ? 32 : 16; }

// The largest code of a format (the int32 bound above).
static int qmax(const bd_pk_tensor *t) {
    switch (t->type) {
    case BD_PK_TQ2: return 2;
    case BD_PK_Q2: return 3;
    case BD_PK_Q3: return 7;
    case BD_PK_Q6: return 63;
    default: return 255;
    }
}

// The int32 bound above, and 32-bit gather offsets (16 rows apart) for the 2-bit repack.
bool bd_pk_tiles_fit(const bd_pk_tensor *t) {
    return (int64_t)qmax(t) * 127 * t->gpad <= INT32_MAX && t->row_bytes * 16 <= (size_t)INT32_MAX;
}

#define PANEL_BYTES ((size_t)4 << 20)

static size_t up64(size_t n) { return (n + 63) / 64 * 64; }

// Blocks of RB rows per panel: ~PANEL_BYTES, at least one, at most the matrix.
static int panel_blocks(const bd_pk_tensor *t, int rb) {
    size_t bb = up64(block_bytes(t, rb));
    int nb = (t->rows + rb - 1) / rb, p = (int)(PANEL_BYTES / bb);
    return p < 1 ? 1 : p > nb ? nb : p;
}

size_t bd_pk_tiles_scratch_bytes(const bd_pk_tensor *t, int N) {
    size_t XP = (size_t)t->ngroups * (size_t)t->gpad, n = 0;
    n += up64((size_t)N * XP) + up64((size_t)N * (size_t)t->ngroups * sizeof(int32_t)) +
         up64((size_t)N * sizeof(float));
    size_t panel = 0;
    for (int rb = 16; rb <= 32; rb += 16) {  // either path's tile rows
        size_t p = (size_t)panel_blocks(t, rb) * up64(block_bytes(t, rb));
        if (p > panel) panel = p;
    }
    return n + panel;
}

// The sum of n int8 values, n a multiple of 32 (a padded group: zeros past its weights).
#ifdef BD_X86
T_AVX2 static int32_t sum_i8_256(const int8_t *p, int n) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);  // x + 128 as u8; vpsadbw adds 8 of them
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < n; i += 32)
        acc = _mm256_add_epi64(acc,
                               _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + i)), bias),
                                               _mm256_setzero_si256()));
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    return (int32_t)(_mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1) - 128 * (int64_t)n);
}
#endif
static int32_t sum_i8(bd_simd simd, const int8_t *p, int n) {
#ifdef BD_X86
    if (simd != BD_SIMD_SCALAR) return sum_i8_256(p, n);
#endif
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += p[i];
    return s;
}

typedef struct {
    bd_simd simd;
    const bd_pk_tensor *t;
    const float *inp;  // (N, C)
    int8_t *xq;        // (N, XP)
    int32_t *xsum;     // (N, NG)
    float *xs;         // (N)
} quant_job;

// Tokens [n0, n1): quantized (bd_act_quant_row: the rule of every int8 path) into the padded
// layout, group sums alongside. The row is quantized in place at the start of its padded slot
// and its groups moved up to their places, last first.
static void quant_rows(void *ctx, int n0, int n1) {
    const quant_job *j = ctx;
    const bd_pk_tensor *t = j->t;
    size_t XP = (size_t)t->ngroups * (size_t)t->gpad;
    for (int n = n0; n < n1; n++) {
        int8_t *xp = j->xq + (size_t)n * XP;
        bd_act_quant_row(j->inp + (size_t)n * t->cols, xp, t->cols, &j->xs[n]);  // SIMD on the path in use
        for (int g = t->ngroups - 1; g >= 0; g--) {
            int len = bd_pk_group_len(t, g);
            int8_t *dst = xp + (size_t)g * t->gpad;
            if (g > 0 && t->group != t->gpad) memmove(dst, xp + (size_t)g * t->group, (size_t)len);
            memset(dst + len, 0, (size_t)(t->gpad - len));
            j->xsum[(size_t)n * t->ngroups + g] = sum_i8(j->simd, dst, t->gpad);
        }
    }
}

typedef struct {
    const tile_args *a;
    bd_pk_gemm_i8_fn *fn;
    uint8_t *panel;
    size_t bb;   // bytes per block in the panel
    int rb, b0;  // tile rows; the panel's first block
} panel_job;

static void panel_rows(void *ctx, int b0, int b1) {
    const panel_job *j = ctx;
    const tile_args *a = j->a;
    int r0 = (j->b0 + b0) * j->rb, r1 = (j->b0 + b1) * j->rb;
    if (r1 > a->t->rows) r1 = a->t->rows;
    j->fn(a->out, a->t, a->xq, a->xsum, a->xs, a->N, r0, r1, j->panel + (size_t)b0 * j->bb);
}

void bd_pk_matmul_tiles(float *out, const float *inp, const bd_pk_tensor *t, int N, bd_simd simd, bd_pk_gemm_i8_fn *fn,
                        void *scratch) {
    size_t XP = (size_t)t->ngroups * (size_t)t->gpad;
    uint8_t *p = scratch;
    int8_t *xq = (int8_t *)p;
    p += up64((size_t)N * XP);
    int32_t *xsum = (int32_t *)(void *)p;
    p += up64((size_t)N * (size_t)t->ngroups * sizeof(int32_t));
    float *xs = (float *)(void *)p;
    p += up64((size_t)N * sizeof(float));
    quant_job qj = {simd, t, inp, xq, xsum, xs};
    bd_parallel_for(N, 1 + 32768 / (t->cols > 0 ? t->cols : 1), quant_rows, &qj);

    tile_args a = {t, xq, xsum, xs, out, N, XP};
    int rb = bd_pk_tile_rows(simd), nb = (t->rows + rb - 1) / rb, pb = panel_blocks(t, rb);
    int nt = bd_num_threads();
    if (pb > nt && pb < nb) pb = pb / nt * nt;  // whole rounds of blocks per thread
    panel_job pj = {&a, fn, p, up64(block_bytes(t, rb)), rb, 0};
    for (pj.b0 = 0; pj.b0 < nb; pj.b0 += pb) {
        int n = nb - pj.b0 < pb ? nb - pj.b0 : pb;
        bd_parallel_for(n, 1, panel_rows, &pj);
    }
}
