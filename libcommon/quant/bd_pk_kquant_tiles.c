// Integer tiles for llama.cpp's q2_K and q4_K with int8 activations (N >= 8 tokens, AVX-512 VNNI):
// the K-quant counterpart of bd_pk_tiles.c, which covers the one-scale-per-group formats. A
// 256-weight block has sub-blocks j (q2_K: 16 of 16 weights, q4_K: 8 of 32) with integer scales
// sc_j and minimums m_j and two f16 factors d, dmin: w = d sc_j q - dmin m_j. For a token's int8
// activations x (one scale xs per token, bd_act_quant.h), per block
//   isum = sum_j sc_j sum_{i in j} q_i x_i     msum = sum_j m_j sum_{i in j} x_i
// are exact int32 (q2_K: 45 * 127 * 256; q4_K: 945 * 127 * 256; msum: 63 * 127 * 256), and
//   acc += d * (float)isum - dmin * (float)msum     (two products, a difference, a sum; not fused)
// then out = acc * xs: the operations of bd_vec_dot_kquant_i8_scalar, so a tile equals the scalar
// int8 row dot bit for bit.
//
// Dimension key: N tokens, OC rows, C row length (a multiple of 256), NB = C / 256 blocks per row,
// RB = 32 rows of a tile, TN tokens of a tile (q2_K 8, q4_K 6: the q4_K kernel keeps two sets of
// accumulators), K4 = C / 4 steps of 4 weights, NS = C / 16 activation sums per token.
// Repacked rows (once per call, by the thread that computes them): codes[K4][RB] with 4 code bytes
// per row and step (q2_K: q sc_j, at most 45, so one vpdpbusd sums isum directly; q4_K: q), q4_K's
// scales[NB][8][RB], the minimums as int16 pairs mins[NB][8][RB] (q2_K: m_2p, m_2p+1; q4_K: m_p,
// m_p), d, dmin[NB][RB], and q2_K's scales as int16 pairs sc2[NB][16][RB] (its codes are multiplied
// by them as they are repacked, 16 rows at a time). Activations: int8 (N, C), their sums over each
// 16 weights as int16 (N, NS) (|sum| <= 2032), read two at a time as the int16 pairs vpdpwssd
// multiplies with the minimums.
#include <stddef.h>
#include <stdint.h>

#include "bd_act_quant.h"
#include "bd_kquant.h"
#include "bd_pk_simd.h"
#include "bd_threads.h"

#define KQ_RB 32
#define KQ_PANEL_BYTES ((size_t)4 << 20)

static size_t up64(size_t n) { return (n + 63) / 64 * 64; }
static int blocks_per_row(const bd_pk_tensor *t) { return t->cols / BD_QK_K; }

// Bytes of one repacked block of RB rows: codes, scales, mins, d, dmin, q2_K's scale pairs.
static size_t block_bytes(const bd_pk_tensor *t) {
    size_t nb = (size_t)blocks_per_row(t);
    return up64((size_t)t->cols * KQ_RB + nb * KQ_RB * 4 * (8 + 8 + 2 + 16));
}

typedef struct {
    uint32_t *codes;  // (K4, RB)
    int32_t *scales;  // (NB, 8, RB) q4_K
    uint32_t *mins;   // (NB, 8, RB)
    float *d, *dmin;  // (NB, RB)
    uint32_t *sc2;    // (NB, 16, RB) q2_K: sc_j as two int16
} kq_block;

static kq_block block_at(const bd_pk_tensor *t, uint8_t *p) {
    size_t nb = (size_t)blocks_per_row(t);
    kq_block b;
    b.codes = (uint32_t *)(void *)p;
    b.scales = (int32_t *)(void *)(p + (size_t)t->cols * KQ_RB);
    b.mins = (uint32_t *)(b.scales + nb * 8 * KQ_RB);
    b.d = (float *)(void *)(b.mins + nb * 8 * KQ_RB);
    b.dmin = b.d + nb * KQ_RB;
    b.sc2 = (uint32_t *)(b.dmin + nb * KQ_RB);
    return b;
}

typedef struct {
    const bd_pk_tensor *t;
    const int8_t *xq;    // (N, C)
    const int16_t *x16;  // (N, NS)
    const float *xs;     // (N)
    float *out;          // (N, OC)
    int N;
} kq_args;

#ifdef BD_X86
#define T_KQT __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")))
#define DPBUSD(acc, w, x) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x))
#define DPWSSD(acc, w, x) __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x))
#define X8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)

// The factors of block g for rows r0+h16 .. r0+h16+15 (rows past OC as zeros), 16 rows at a time: each
// row's scale bytes (q2_K: bytes 0-15, low nibble scale, high nibble min; q4_K: bytes 4-15, 6-bit
// scales and mins) widened to 32-bit lanes and transposed, so lane i of v[j] is byte j of row i.
// Stored: q4_K's scales, the minimums as int16 pairs (q2_K: m_2p, m_2p+1; q4_K: m_p, m_p), q2_K's
// scales as int16 pairs for its codes, d and dmin. (Row by row, the scalar version stalled on
// store forwarding: 6% of a 7B prompt.)
T_KQT static void repack_factors16(const bd_pk_tensor *t, int r0, int h16, int g, kq_block b) {
    int row0 = r0 + h16, nr = t->rows - row0;
    bool q2 = t->type == BD_PK_Q2_K;
    size_t bsize = q2 ? sizeof(bd_block_q2_K) : sizeof(bd_block_q4_K),
           scales_at = q2 ? offsetof(bd_block_q2_K, scales) : offsetof(bd_block_q4_K, scales),
           d_at = q2 ? offsetof(bd_block_q2_K, d) : offsetof(bd_block_q4_K, d);  // dmin follows d in both
    __m512 v[16];
    __m512i dd = _mm512_setzero_si512();  // lane i: row i's d | dmin << 16 (in registers: a small
                                          // array reloaded as a vector stalls on store forwarding)
    for (int i = 0; i < 16; i++) {
        v[i] = _mm512_setzero_ps();
        if (i < nr) {
            const uint8_t *blk = t->data + (size_t)(row0 + i) * t->row_bytes + (size_t)g * bsize;
            v[i] = _mm512_castsi512_ps(
                    _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(blk + scales_at))));
            dd = _mm512_mask_set1_epi32(dd, (__mmask16)(1u << i), (int)bd_rd32(blk + d_at));
        }
    }
    // f16 -> f32 is exact: the same floats as bd_f16_to_f32 (finite weights; NaN is refused at load).
    _mm512_storeu_ps(b.d + g * KQ_RB + h16, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd)));
    _mm512_storeu_ps(b.dmin + g * KQ_RB + h16, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
    bd_transpose16_ps(v);
    __m512i q[16];
    for (int j = 0; j < 16; j++) q[j] = _mm512_castps_si512(v[j]);
    const __m512i m4 = _mm512_set1_epi32(15), m6 = _mm512_set1_epi32(63);
    uint32_t *mins = b.mins + (size_t)g * 8 * KQ_RB + h16;
    if (q2) {
        for (int j = 0; j < 16; j++) {
            __m512i sc = _mm512_and_si512(q[j], m4);
            _mm512_storeu_si512(b.sc2 + ((size_t)g * 16 + j) * KQ_RB + h16,
                                _mm512_or_si512(sc, _mm512_slli_epi32(sc, 16)));
        }
        for (int p = 0; p < 8; p++)
            _mm512_storeu_si512(mins + p * KQ_RB,
                                _mm512_or_si512(_mm512_srli_epi32(q[2 * p], 4),
                                                _mm512_slli_epi32(_mm512_srli_epi32(q[2 * p + 1], 4), 16)));
        return;
    }
    int32_t *scales = b.scales + (size_t)g * 8 * KQ_RB + h16;
    for (int j = 0; j < 4; j++) {  // bd_q4_K_scales_mins, 16 rows a lane each
        __m512i sc_lo = _mm512_and_si512(q[j], m6), m_lo = _mm512_and_si512(q[j + 4], m6);
        __m512i sc_hi =
                _mm512_or_si512(_mm512_and_si512(q[j + 8], m4), _mm512_slli_epi32(_mm512_srli_epi32(q[j], 6), 4));
        __m512i m_hi =
                _mm512_or_si512(_mm512_srli_epi32(q[j + 8], 4), _mm512_slli_epi32(_mm512_srli_epi32(q[j + 4], 6), 4));
        _mm512_storeu_si512(scales + j * KQ_RB, sc_lo);
        _mm512_storeu_si512(scales + (j + 4) * KQ_RB, sc_hi);
        _mm512_storeu_si512(mins + j * KQ_RB, _mm512_or_si512(m_lo, _mm512_slli_epi32(m_lo, 16)));
        _mm512_storeu_si512(mins + (j + 4) * KQ_RB, _mm512_or_si512(m_hi, _mm512_slli_epi32(m_hi, 16)));
    }
}

// Rows r0 .. r0+RB-1 repacked, 16 rows at a time: the factors (repack_factors16), then the codes.
// Four weights 4k..4k+3 of a block share their qs bytes' run and shift (q2_K: weight 128h + 32s + l
// at bits 2s of qs[32h + l]; q4_K: 64h + 32s + l in nibble s of qs[32h + l]; qs at byte 16 of both
// blocks), so dword j of a row's qs (l = 4 (j % 8), h = j / 8) holds them for every s: 16 rows' qs
// loaded and transposed give dword j of all 16 rows in one register. q2_K's codes are multiplied by
// their sub-block's scale as int16 pairs (byte products <= 45: no carry between the bytes).
T_KQT static void repack(const bd_pk_tensor *t, int r0, kq_block b) {
    bool q2 = t->type == BD_PK_Q2_K;
    size_t bsize = q2 ? sizeof(bd_block_q2_K) : sizeof(bd_block_q4_K);
    int shifts = q2 ? 4 : 2, bits = q2 ? 2 : 4, halves = q2 ? 1 : 2;  // halves: 64-byte runs of qs
    const __m512i mask = _mm512_set1_epi32(q2 ? 0x03030303 : 0x0f0f0f0f);
    for (int h16 = 0; h16 < KQ_RB; h16 += 16) {
        int nr = t->rows - (r0 + h16);
        for (int g = 0; g < blocks_per_row(t); g++) {
            repack_factors16(t, r0, h16, g, b);
            uint32_t *o = b.codes + (size_t)g * 64 * KQ_RB + h16;
            for (int half = 0; half < halves; half++) {
                __m512 v[16];
                for (int i = 0; i < 16; i++)
                    v[i] = i < nr ? _mm512_loadu_ps(t->data + (size_t)(r0 + h16 + i) * t->row_bytes +
                                                    (size_t)g * bsize + 16 + 64 * (size_t)half)
                                  : _mm512_setzero_ps();
                bd_transpose16_ps(v);
                for (int jj = 0; jj < 16; jj++) {
                    int j = 16 * half + jj, h = j / 8, l4 = j % 8;
                    __m512i dw = _mm512_castps_si512(v[jj]);
                    for (int s = 0; s < shifts; s++) {
                        int k = q2 ? 32 * h + 8 * s + l4 : 16 * h + 8 * s + l4;
                        __m512i c = _mm512_and_si512(_mm512_srli_epi32(dw, (unsigned)(bits * s)), mask);
                        if (q2)
                            c = _mm512_mullo_epi16(c,
                                                   _mm512_loadu_si512(b.sc2 + ((size_t)g * 16 + k / 4) * KQ_RB + h16));
                        _mm512_storeu_si512(o + (size_t)k * KQ_RB, c);
                    }
                }
            }
        }
    }
}

// msum of block g for tokens n0.. (nt), rows 0..31, into ms[i][32].
T_KQT BD_SIMD_INLINE void mins_sums(const kq_args *a, kq_block b, int g, int n0, int nt, int32_t *ms) {
    size_t NS = (size_t)a->t->cols / 16;
#define DECL(i) __m512i ml##i = _mm512_setzero_si512(), mh##i = _mm512_setzero_si512();
    X8(DECL)
#undef DECL
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        const uint32_t *mp = b.mins + ((size_t)g * 8 + p) * KQ_RB;
        __m512i m0 = _mm512_loadu_si512(mp), m1 = _mm512_loadu_si512(mp + 16);
#define DOT(i)                                                                                          \
    if (nt > i) {                                                                                       \
        __m512i sb = _mm512_set1_epi32(                                                                 \
                (int)bd_rd32((const void *)(a->x16 + (size_t)(n0 + i) * NS + (size_t)g * 16 + 2 * p))); \
        DPWSSD(ml##i, m0, sb);                                                                          \
        DPWSSD(mh##i, m1, sb);                                                                          \
    }
        X8(DOT)
#undef DOT
    }
#define ST(i)                                            \
    if (nt > i) {                                        \
        _mm512_storeu_si512(ms + i * KQ_RB, ml##i);      \
        _mm512_storeu_si512(ms + i * KQ_RB + 16, mh##i); \
    }
    X8(ST)
#undef ST
}

// acc[i] += d * isum - dmin * msum for the 32 rows of token i.
T_KQT BD_SIMD_INLINE void finish_block(kq_block b, int g, __m512i lo, __m512i hi, const int32_t *ms, float *acc) {
    __m512 d0 = _mm512_loadu_ps(b.d + g * KQ_RB), d1 = _mm512_loadu_ps(b.d + g * KQ_RB + 16);
    __m512 n0 = _mm512_loadu_ps(b.dmin + g * KQ_RB), n1 = _mm512_loadu_ps(b.dmin + g * KQ_RB + 16);
    __m512 v0 = _mm512_sub_ps(_mm512_mul_ps(d0, _mm512_cvtepi32_ps(lo)),
                              _mm512_mul_ps(n0, _mm512_cvtepi32_ps(_mm512_loadu_si512(ms))));
    __m512 v1 = _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(hi)),
                              _mm512_mul_ps(n1, _mm512_cvtepi32_ps(_mm512_loadu_si512(ms + 16))));
    _mm512_storeu_ps(acc, _mm512_add_ps(_mm512_loadu_ps(acc), v0));
    _mm512_storeu_ps(acc + 16, _mm512_add_ps(_mm512_loadu_ps(acc + 16), v1));
}

// Step k of token i (when the tile has it): its 4 activations times the rows' codes w0 (rows 0-15)
// and w1 (16-31) into the accumulators LO##i, HI##i (x, C, k, nt, w0, w1 from the caller).
#define KQ_DOT(LO, HI, i)                                                                                \
    if (nt > i) {                                                                                        \
        __m512i xb = _mm512_set1_epi32((int)bd_rd32((const void *)(x + (size_t)i * C + 4 * (size_t)k))); \
        DPBUSD(LO##i, w0, xb);                                                                           \
        DPBUSD(HI##i, w1, xb);                                                                           \
    }

// q2_K block g: the codes carry their sub-block's scale, so one run of vpdpbusd gives isum.
T_KQT BD_SIMD_INLINE void block_q2(const kq_args *a, kq_block b, int g, int n0, int nt, float *acc) {
    _Alignas(64) int32_t ms[8 * KQ_RB];
    mins_sums(a, b, g, n0, nt, ms);
    size_t C = (size_t)a->t->cols;
    const uint32_t *w = b.codes + (size_t)g * 64 * KQ_RB;
    const uint8_t *x = (const uint8_t *)a->xq + (size_t)n0 * C + (size_t)g * BD_QK_K;
#define DECL(i) __m512i lo##i = _mm512_setzero_si512(), hi##i = _mm512_setzero_si512();
    X8(DECL)
#undef DECL
    for (int k = 0; k < 64; k++) {
        __m512i w0 = _mm512_loadu_si512(w + (size_t)k * KQ_RB), w1 = _mm512_loadu_si512(w + (size_t)k * KQ_RB + 16);
#define DOT(i) KQ_DOT(lo, hi, i)
        X8(DOT)
#undef DOT
    }
#define FIN(i) \
    if (nt > i) finish_block(b, g, lo##i, hi##i, ms + i * KQ_RB, acc + i * KQ_RB);
    X8(FIN)
#undef FIN
}

#define X6(M) M(0) M(1) M(2) M(3) M(4) M(5)
// q4_K block g: per 32-weight sub-block a run of vpdpbusd, times the rows' scale (vpmulld), summed.
T_KQT BD_SIMD_INLINE void block_q4(const kq_args *a, kq_block b, int g, int n0, int nt, float *acc) {
    _Alignas(64) int32_t ms[8 * KQ_RB];
    mins_sums(a, b, g, n0, nt, ms);
    size_t C = (size_t)a->t->cols;
    const uint32_t *w = b.codes + (size_t)g * 64 * KQ_RB;
    const uint8_t *x = (const uint8_t *)a->xq + (size_t)n0 * C + (size_t)g * BD_QK_K;
#define DECL(i) __m512i lo##i = _mm512_setzero_si512(), hi##i = _mm512_setzero_si512();
    X6(DECL)
#undef DECL
    for (int j = 0; j < 8; j++) {
#define DECL(i) __m512i tl##i = _mm512_setzero_si512(), th##i = _mm512_setzero_si512();
        X6(DECL)
#undef DECL
        for (int k = 8 * j; k < 8 * j + 8; k++) {
            __m512i w0 = _mm512_loadu_si512(w + (size_t)k * KQ_RB), w1 = _mm512_loadu_si512(w + (size_t)k * KQ_RB + 16);
#define DOT(i) KQ_DOT(tl, th, i)
            X6(DOT)
#undef DOT
        }
        const int32_t *sp = b.scales + ((size_t)g * 8 + j) * KQ_RB;
        __m512i s0 = _mm512_loadu_si512(sp), s1 = _mm512_loadu_si512(sp + 16);
#define ADD(i)                                                          \
    if (nt > i) {                                                       \
        lo##i = _mm512_add_epi32(lo##i, _mm512_mullo_epi32(tl##i, s0)); \
        hi##i = _mm512_add_epi32(hi##i, _mm512_mullo_epi32(th##i, s1)); \
    }
        X6(ADD)
#undef ADD
    }
#define FIN(i) \
    if (nt > i) finish_block(b, g, lo##i, hi##i, ms + i * KQ_RB, acc + i * KQ_RB);
    X6(FIN)
#undef FIN
}

T_KQT BD_SIMD_INLINE void tile(const kq_args *a, kq_block b, int n0, int nt, float *acc) {
    int NB = blocks_per_row(a->t);
    if (a->t->type == BD_PK_Q2_K)
        for (int g = 0; g < NB; g++) block_q2(a, b, g, n0, nt, acc);
    else
        for (int g = 0; g < NB; g++) block_q4(a, b, g, n0, nt, acc);
}

// Rows r0.. of one repacked block for every token. The next block's rows (pf, pf_bytes; 0: none)
// are prefetched into L2, a share per token tile (the whole block at once would wait on the fill
// buffers): with few tokens a block's tiles are short and its repacking would wait on memory
// (bd-teacher-gen at batch 32, q2_K int8, 1 thread: 407-435 -> 434-442 tokens/s; 512-token
// prompts unchanged).
T_KQT static void block_tokens(const kq_args *a, kq_block b, int r0, const uint8_t *pf, size_t pf_bytes) {
    _Alignas(64) float acc[8 * KQ_RB];
    int tn = a->t->type == BD_PK_Q2_K ? 8 : 6;
    int nr = a->t->rows - r0 < KQ_RB ? a->t->rows - r0 : KQ_RB;
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    size_t lines = (pf_bytes + 63) / 64, tiles = ((size_t)a->N + (size_t)tn - 1) / (size_t)tn, tile_i = 0;
    for (int n0 = 0; n0 < a->N; n0 += tn, tile_i++) {
        int nt = a->N - n0 < tn ? a->N - n0 : tn;
        for (size_t l = tile_i * lines / tiles; l < (tile_i + 1) * lines / tiles; l++)
            _mm_prefetch((const char *)pf + 64 * l, _MM_HINT_T1);
        memset(acc, 0, sizeof acc);
        switch (nt) {  // constant token counts: accumulators in registers
        case 8: tile(a, b, n0, 8, acc); break;
        case 7: tile(a, b, n0, 7, acc); break;
        case 6: tile(a, b, n0, 6, acc); break;
        case 5: tile(a, b, n0, 5, acc); break;
        case 4: tile(a, b, n0, 4, acc); break;
        case 3: tile(a, b, n0, 3, acc); break;
        case 2: tile(a, b, n0, 2, acc); break;
        default: tile(a, b, n0, 1, acc); break;
        }
        for (int n = 0; n < nt; n++) {
            float *o = a->out + (size_t)(n0 + n) * a->t->rows + r0;
            __m512 xs = _mm512_set1_ps(a->xs[n0 + n]);
            _mm512_mask_storeu_ps(o, m0, _mm512_mul_ps(_mm512_loadu_ps(acc + n * KQ_RB), xs));
            _mm512_mask_storeu_ps(o + 16, m1, _mm512_mul_ps(_mm512_loadu_ps(acc + n * KQ_RB + 16), xs));
        }
    }
}

// ---- the driver -------------------------------------------------------------------------------------

typedef struct {
    const bd_pk_tensor *t;
    const float *inp;
    int8_t *xq;
    int16_t *x16;
    float *xs;
} quant_job;

// Tokens [n0, n1): int8 levels (bd_act_quant_row) and their sums over each 16.
static void quant_rows(void *ctx, int n0, int n1) {
    const quant_job *j = ctx;
    size_t C = (size_t)j->t->cols;
    for (int n = n0; n < n1; n++) {
        int8_t *q = j->xq + (size_t)n * C;
        bd_act_quant_row(j->inp + (size_t)n * C, q, (int)C, &j->xs[n]);
        int16_t *s = j->x16 + (size_t)n * (C / 16);
        for (size_t k = 0; k < C / 16; k++) {
            int v = 0;
            for (int i = 0; i < 16; i++) v += q[16 * k + (size_t)i];
            s[k] = (int16_t)v;
        }
    }
}

typedef struct {
    const kq_args *a;
    uint8_t *panel;
    size_t bb;
    int b0;  // the panel's first block
} panel_job;

T_KQT static void panel_blocks(void *ctx, int b0, int b1) {
    const panel_job *j = ctx;
    for (int b = b0; b < b1; b++) {
        kq_block blk = block_at(j->a->t, j->panel + (size_t)b * j->bb);
        int r0 = (j->b0 + b) * KQ_RB;
        repack(j->a->t, r0, blk);
        const bd_pk_tensor *t = j->a->t;
        int next = r0 + KQ_RB, next_rows = b + 1 < b1 ? (t->rows - next < KQ_RB ? t->rows - next : KQ_RB) : 0;
        const uint8_t *pf = next_rows > 0 ? t->data + (size_t)next * t->row_bytes : NULL;
        block_tokens(j->a, blk, r0, pf, (size_t)next_rows * t->row_bytes);
    }
}
#endif

static int panel_count(const bd_pk_tensor *t) {
    int nb = (t->rows + KQ_RB - 1) / KQ_RB, p = (int)(KQ_PANEL_BYTES / block_bytes(t));
    return p < 1 ? 1 : p > nb ? nb : p;
}

size_t bd_pk_kquant_tiles_scratch_bytes(const bd_pk_tensor *t, int N) {
    size_t C = (size_t)t->cols;
    return up64((size_t)N * C) + up64((size_t)N * (C / 16) * sizeof(int16_t)) + up64((size_t)N * sizeof(float)) +
           (size_t)panel_count(t) * block_bytes(t);
}

bool bd_pk_kquant_tiles_fit(const bd_pk_tensor *t) {
    return (t->type == BD_PK_Q2_K || t->type == BD_PK_Q4_K) && t->cols % BD_QK_K == 0;
}

#ifdef BD_X86
void bd_pk_matmul_kquant_tiles(float *out, const float *inp, const bd_pk_tensor *t, int N, void *scratch) {
    size_t C = (size_t)t->cols;
    uint8_t *p = scratch;
    int8_t *xq = (int8_t *)p;
    p += up64((size_t)N * C);
    int16_t *x16 = (int16_t *)(void *)p;
    p += up64((size_t)N * (C / 16) * sizeof(int16_t));
    float *xs = (float *)(void *)p;
    p += up64((size_t)N * sizeof(float));
    quant_job qj = {t, inp, xq, x16, xs};
    bd_parallel_for(N, 1 + 32768 / (t->cols > 0 ? t->cols : 1), quant_rows, &qj);
    kq_args a = {t, xq, x16, xs, out, N};
    int nb = (t->rows + KQ_RB - 1) / KQ_RB, pb = panel_count(t), nt = bd_num_threads();
    if (pb > nt && pb < nb) pb = pb / nt * nt;  // whole rounds of blocks per thread
    panel_job pj = {&a, p, block_bytes(t), 0};
    for (pj.b0 = 0; pj.b0 < nb; pj.b0 += pb) {
        int n = nb - pj.b0 < pb ? nb - pj.b0 : pb;
        bd_parallel_for(n, 1, panel_blocks, &pj);
    }
}
#endif
