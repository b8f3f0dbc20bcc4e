// f32 tiles: out (N, OC) = inp (N, C) @ W^T for f32 activations and N >= 8 tokens on AVX-512
// (prompts, evaluation, batched generation), W any packed format (its exact dequantized values).
// OpenBLAS's sgemm in the Debian build runs an AVX2 kernel on AVX-512 machines (about 100
// GFLOP/s on one Zen 5 core); these tiles use the 512-bit FMA units (measured 1.6-1.8x it on
// 768 x 2048 products of 512 tokens).
//
// Dimension key: N tokens, OC rows, C row length, RB rows of a tile (32: two zmm of outputs per
// token), TN tokens of a tile (12: 24 zmm accumulators), KC weights of a row per chunk (256).
// A block of RB rows is transposed chunk by chunk into w[KC][RB] (32 KB on the stack: in L1 with
// the tokens' slice); per weight the tile loads the rows' RB values once and, for each token,
// broadcasts its activation and multiply-adds it into all RB rows. Every output is one chain of
// fused multiply-adds over k = 0..C-1 in order (a chunk's partial sum is stored in out and
// reloaded, exactly), whatever N, the tile it falls in or the thread count: a row's result is
// fmaf(w[C-1], x[C-1], ... fmaf(w[0], x[0], 0)), which the tests rebuild with fmaf.
//
// Threads: the row blocks are split into one contiguous range per slot (bd_num_threads() slots,
// fewer for small matrices); a slot dequantizes its block's rows into its part of the scratch
// (f32 weights are read in place).
// The same tiles serve attention's products single-threaded with strided operands and a factor
// alpha applied once at the end (bd_f32_gemm_nt: rows transposed as above; bd_f32_gemm_nn: the
// right operand's rows are already the w[k][columns] layout, read in place).
#include "bd_pk_simd.h"
#include "bd_threads.h"

#define FT_RB 32
#define FT_TN 12
#define FT_KC 256

// f32 rows are read where they are (rows of C floats, possibly unaligned in a mapped file).
static bool rows_in_place(const bd_pk_tensor *t) {
    return t->type == BD_PK_F32 && t->row_bytes == (size_t)t->cols * sizeof(float);
}

static int slot_count(const bd_pk_tensor *t) {
    int nb = (t->rows + FT_RB - 1) / FT_RB, s = bd_num_threads();
    return s < nb ? s : nb > 0 ? nb : 1;
}

size_t bd_pk_f32_tiles_scratch_bytes(const bd_pk_tensor *t) {
    return rows_in_place(t) ? 0 : (size_t)slot_count(t) * FT_RB * (size_t)t->cols * sizeof(float);
}

#ifdef BD_X86
#define T_F32T __attribute__((target("avx2,fma,avx512f")))

// 16 x 16 transpose: src rows i (16 floats at src + i lds) into dst columns (dst + j ldd, 16
// floats each): unpack pairs, then 64-bit pairs, then 128-bit lanes twice.
T_F32T BD_SIMD_INLINE void transpose16(const float *src, size_t lds, float *dst, size_t ldd) {
    __m512 r[16], u[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (size_t)i * lds);
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
    for (int j = 0; j < 16; j++) _mm512_store_ps(dst + (size_t)j * ldd, r[j]);
}

// Weights k0 .. k0+kc-1 of rows 0..RB-1 (src + r lds) into w[k][r]; rows >= nr as zeros.
T_F32T static void pack_chunk(const float *src, size_t lds, int nr, int k0, int kc, float *w) {
    for (int h = 0; h < FT_RB; h += 16) {
        int k = 0;
        if (h + 16 <= nr)
            for (; k + 16 <= kc; k += 16)
                transpose16(src + (size_t)h * lds + k0 + k, lds, w + (size_t)k * FT_RB + h, FT_RB);
        for (int r = h; r < h + 16; r++)
            for (int kk = k; kk < kc; kk++) {
                float v = 0;
                if (r < nr) memcpy(&v, src + (size_t)r * lds + k0 + kk, sizeof v);
                w[(size_t)kk * FT_RB + r] = v;
            }
    }
}

#define X12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)

// Tokens 0..nt-1 (x + n ldx, out + n ldo) over one chunk of kc weights, the block's 32 columns at
// w + k ws (masked loads: columns past the block's are not read); first: start from 0, else from
// out's partial sums; last: the sums are multiplied by alpha (if not 1) before they are stored.
T_F32T BD_SIMD_INLINE void tile(const float *w, size_t ws, int kc, const float *x, size_t ldx, float *out, size_t ldo,
                                __mmask16 m0, __mmask16 m1, int nt, bool first, bool last, float alpha) {
#define DECL(i)                                                       \
    __m512 a##i = _mm512_setzero_ps(), b##i = _mm512_setzero_ps();    \
    if (nt > i && !first) {                                           \
        a##i = _mm512_maskz_loadu_ps(m0, out + (size_t)i * ldo);      \
        b##i = _mm512_maskz_loadu_ps(m1, out + (size_t)i * ldo + 16); \
    }
    X12(DECL)
#undef DECL
    for (int k = 0; k < kc; k++) {
        __m512 w0 = _mm512_maskz_loadu_ps(m0, w + (size_t)k * ws),
               w1 = _mm512_maskz_loadu_ps(m1, w + (size_t)k * ws + 16);
#define FMA(i)                                              \
    if (nt > i) {                                           \
        __m512 xb = _mm512_set1_ps(x[(size_t)i * ldx + k]); \
        a##i = _mm512_fmadd_ps(w0, xb, a##i);               \
        b##i = _mm512_fmadd_ps(w1, xb, b##i);               \
    }
        X12(FMA)
#undef FMA
    }
    if (last && alpha != 1.0f) {
        __m512 av = _mm512_set1_ps(alpha);
#define SCALE(i)                        \
    if (nt > i) {                       \
        a##i = _mm512_mul_ps(a##i, av); \
        b##i = _mm512_mul_ps(b##i, av); \
    }
        X12(SCALE)
#undef SCALE
    }
#define STORE(i)                                                     \
    if (nt > i) {                                                    \
        _mm512_mask_storeu_ps(out + (size_t)i * ldo, m0, a##i);      \
        _mm512_mask_storeu_ps(out + (size_t)i * ldo + 16, m1, b##i); \
    }
    X12(STORE)
#undef STORE
}

// Every row of x (N) through tile, 12 at a time.
T_F32T static void run_tiles(const float *w, size_t ws, int kc, const float *x, size_t ldx, float *out, size_t ldo,
                             int N, __mmask16 m0, __mmask16 m1, bool first, bool last, float alpha) {
    for (int n0 = 0; n0 < N; n0 += FT_TN) {
        int nt = N - n0 < FT_TN ? N - n0 : FT_TN;
        const float *xn = x + (size_t)n0 * ldx;
        float *o = out + (size_t)n0 * ldo;
        switch (nt) {  // constant token counts: accumulators in registers
#define CASE(i) \
    case i + 1: tile(w, ws, kc, xn, ldx, o, ldo, m0, m1, i + 1, first, last, alpha); break;
            X12(CASE)
#undef CASE
        }
    }
}

static inline __mmask16 mask_lo(int nr) { return nr >= 16 ? 0xffff : nr <= 0 ? 0 : (__mmask16)((1u << nr) - 1); }

typedef struct {
    const bd_pk_tensor *t;
    const float *inp;  // (N, C)
    float *out;        // (N, OC)
    float *rows;       // per slot RB x C dequantized rows, or NULL (in place)
    int N, slots, nblocks;
} f32_tiles_job;

// nr <= RB rows of weights (src, rows lds apart) times every row of x: out's RB columns, 256
// weights of the rows transposed at a time.
T_F32T static void rows_times_x(const float *src, size_t lds, int nr, int C, const float *x, size_t ldx, float *out,
                                size_t ldo, int N, float alpha) {
    _Alignas(64) float w[FT_KC * FT_RB];
    for (int k0 = 0; k0 < C; k0 += FT_KC) {
        int kc = C - k0 < FT_KC ? C - k0 : FT_KC;
        pack_chunk(src, lds, nr, k0, kc, w);
        run_tiles(w, FT_RB, kc, x + k0, ldx, out, ldo, N, mask_lo(nr), mask_lo(nr - 16), k0 == 0, k0 + kc == C, alpha);
    }
}

// Rows r0 .. r0+RB-1 (those that exist) for every token.
T_F32T static void block(const f32_tiles_job *j, int r0, float *rows) {
    const bd_pk_tensor *t = j->t;
    int C = t->cols, OC = t->rows, nr = OC - r0 < FT_RB ? OC - r0 : FT_RB;
    const float *src = rows;
    if (!rows)
        src = (const float *)(const void *)(t->data + (size_t)r0 * t->row_bytes);
    else
        for (int r = 0; r < nr; r++) bd_pk_dequantize_row(t, r0 + r, rows + (size_t)r * C);
    rows_times_x(src, (size_t)C, nr, C, j->inp, (size_t)C, j->out + r0, (size_t)OC, j->N, 1.0f);
}

static void run_slots(void *ctx, int s0, int s1) {
    const f32_tiles_job *j = ctx;
    for (int s = s0; s < s1; s++) {
        int b0 = (int)((int64_t)j->nblocks * s / j->slots), b1 = (int)((int64_t)j->nblocks * (s + 1) / j->slots);
        float *rows = j->rows ? j->rows + (size_t)s * FT_RB * (size_t)j->t->cols : NULL;
        for (int b = b0; b < b1; b++) block(j, b * FT_RB, rows);
    }
}

void bd_pk_matmul_f32_tiles(float *out, const float *inp, const bd_pk_tensor *t, int N, void *scratch) {
    int S = slot_count(t);
    f32_tiles_job j = {t, inp, out, rows_in_place(t) ? NULL : scratch, N, S, (t->rows + FT_RB - 1) / FT_RB};
    bd_parallel_for(S, 1, run_slots, &j);
}

T_F32T static void gemm_nt(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw, int N,
                           int OC, int C, float alpha) {
    for (int r0 = 0; r0 < OC; r0 += FT_RB)
        rows_times_x(w + (size_t)r0 * ldw, ldw, OC - r0 < FT_RB ? OC - r0 : FT_RB, C, x, ldx, out + r0, ldo, N, alpha);
}

T_F32T static void gemm_nn(float *out, size_t ldo, const float *x, size_t ldx, const float *v, size_t ldv, int N,
                           int OC, int C, float alpha) {
    for (int r0 = 0; r0 < OC; r0 += FT_RB)  // v's rows are the packed layout already
        run_tiles(v + r0, ldv, C, x, ldx, out + r0, ldo, N, mask_lo(OC - r0), mask_lo(OC - r0 - 16), true, true, alpha);
}
#endif

bool bd_f32_gemm_nt(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw, int N, int OC,
                    int C, float alpha) {
#ifdef BD_X86
    if (bd_pk_simd() == BD_SIMD_AVX512 && C > 0) {
        gemm_nt(out, ldo, x, ldx, w, ldw, N, OC, C, alpha);
        return true;
    }
#endif
    (void)out, (void)ldo, (void)x, (void)ldx, (void)w, (void)ldw, (void)N, (void)OC, (void)C, (void)alpha;
    return false;
}

bool bd_f32_gemm_nn(float *out, size_t ldo, const float *x, size_t ldx, const float *v, size_t ldv, int N, int OC,
                    int C, float alpha) {
#ifdef BD_X86
    if (bd_pk_simd() == BD_SIMD_AVX512 && C > 0) {
        gemm_nn(out, ldo, x, ldx, v, ldv, N, OC, C, alpha);
        return true;
    }
#endif
    (void)out, (void)ldo, (void)x, (void)ldx, (void)v, (void)ldv, (void)N, (void)OC, (void)C, (void)alpha;
    return false;
}
