// f32 tiles: out (N, OC) = inp (N, C) @ W^T for f32 activations and N >= 8 tokens on AVX-512
// (prompts, evaluation, batched generation), W any packed format (its exact dequantized values).
// OpenBLAS's sgemm in the Debian build runs an AVX2 kernel on some AVX-512 machines (about 100
// GFLOP/s on one Zen 5 core), its AVX-512 kernel on others (150-160 on one core of an Intel
// Xeon); these tiles reach 130-148 there (microbenchmark, 512 tokens; the 7B stack's shapes
// 134-140), and their outputs do not depend on N (what bd-teacher-gen's reproducibility needs).
//
// Dimension key: N tokens, OC rows, C row length, RB rows of a tile (32: two zmm of outputs per
// token), TN tokens of a tile (12: 24 zmm accumulators), KC weights of a row per chunk (256), TB
// tokens per block of packed activations (516), RP rows per panel (512).
// A block of RB rows is transposed chunk by chunk into w[KC][RB] (32 KB: in L1), the tokens'
// chunk into xp[tile][KC][12] (one base register for the 12 broadcasts; 528 KB: in L2); per
// weight the tile loads the rows' RB values once and, for each token, broadcasts its activation
// and multiply-adds it into all RB rows. Every output is one chain of fused multiply-adds over k =
// 0..C-1 in order (a chunk's partial sum is stored in acc and reloaded, exactly), whatever N, the
// tile it falls in or the thread count: a row's result is fmaf(w[C-1], x[C-1], ... fmaf(w[0],
// x[0], 0)), which the tests rebuild with fmaf.
//
// Stack: w, xp and acc take 1.6 MB of the calling thread's stack (bd's workers get 8 MB, see
// bd_threads.c; a process's main thread has the system's stack limit, 8 MB by default).
//
// Threads: the row blocks are split into one contiguous range per slot (bd_num_threads() slots,
// fewer for small matrices); a slot dequantizes its panels' rows (RP_DQ at a time) into its part
// of the scratch (f32 weights are read in place).
// The same tiles serve attention's products single-threaded with strided operands and a factor
// alpha applied once at the end (bd_f32_gemm_nt: rows transposed as above; bd_f32_gemm_nn: the
// right operand's rows are already the w[k][columns] layout, read in place).
#include "bd_pk_simd.h"
#include "bd_threads.h"

#define FT_RB 32
#define FT_TN 12
#define FT_KC 256
#define FT_TB 516     // tokens per packed block of activations (43 tiles: 528 KB on the stack)
#define FT_RP 512     // rows per panel (a multiple of FT_RB)
#define FT_RP_DQ 128  // rows per panel of a dequantized format (the slot's scratch holds them)

// f32 rows are read where they are (rows of C floats, possibly unaligned in a mapped file).
static bool rows_in_place(const bd_pk_tensor *t) {
    return t->type == BD_PK_F32 && t->row_bytes == (size_t)t->cols * sizeof(float);
}

static int slot_count(const bd_pk_tensor *t) {
    int nb = (t->rows + FT_RB - 1) / FT_RB, s = bd_num_threads();
    return s < nb ? s : nb > 0 ? nb : 1;
}

size_t bd_pk_f32_tiles_scratch_bytes(const bd_pk_tensor *t) {
    return rows_in_place(t) ? 0 : (size_t)slot_count(t) * FT_RP_DQ * (size_t)t->cols * sizeof(float);
}

#ifdef BD_X86
#define T_F32T __attribute__((target("avx2,fma,avx512f")))

// src rows i (16 floats at src + i lds) into dst columns (dst + j ldd, 16 floats each).
T_F32T BD_SIMD_INLINE void transpose16(const float *src, size_t lds, float *dst, size_t ldd) {
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (size_t)i * lds);
    bd_transpose16_ps(r);
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

// Tokens 0..nt-1 over one chunk of kc weights: the tokens' activations packed xp[k][12], the
// block's 32 columns at w + k ws (masked loads where the block is not full: columns past it are
// not read). Partial sums between chunks live in acc (token n's 32 at acc + 32 n, contiguous);
// first: start from 0, else from acc; last: multiply by alpha (if not 1) and store the block's
// columns to out + n ldo, else store all 32 to acc.
T_F32T BD_SIMD_INLINE void tile(const float *w, size_t ws, int kc, const float *xp, float *acc, float *out, size_t ldo,
                                __mmask16 m0, __mmask16 m1, bool full, int nt, bool first, bool last, float alpha) {
#define DECL(i)                                                    \
    __m512 a##i = _mm512_setzero_ps(), b##i = _mm512_setzero_ps(); \
    if (nt > i && !first) {                                        \
        a##i = _mm512_load_ps(acc + 32 * i);                       \
        b##i = _mm512_load_ps(acc + 32 * i + 16);                  \
    }
    X12(DECL)
#undef DECL
    for (int k = 0; k < kc; k++) {
        // A whole block loads without masks (masked loads cost the loop about 12%).
        __m512 w0 = full ? _mm512_loadu_ps(w + (size_t)k * ws) : _mm512_maskz_loadu_ps(m0, w + (size_t)k * ws),
               w1 = full ? _mm512_loadu_ps(w + (size_t)k * ws + 16)
                         : _mm512_maskz_loadu_ps(m1, w + (size_t)k * ws + 16);
        const float *xk = xp + (size_t)k * FT_TN;
#define FMA(i)                                \
    if (nt > i) {                             \
        __m512 xb = _mm512_set1_ps(xk[i]);    \
        a##i = _mm512_fmadd_ps(w0, xb, a##i); \
        b##i = _mm512_fmadd_ps(w1, xb, b##i); \
    }
        X12(FMA)
#undef FMA
    }
    if (!last) {
#define KEEP(i)                                   \
    if (nt > i) {                                 \
        _mm512_store_ps(acc + 32 * i, a##i);      \
        _mm512_store_ps(acc + 32 * i + 16, b##i); \
    }
        X12(KEEP)
#undef KEEP
        return;
    }
    if (alpha != 1.0f) {
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

// The N packed tokens of a chunk (12 per tile, xp as pack_x leaves it) through tile; full: all
// 32 columns of the block exist (m0 = m1 = all ones).
T_F32T BD_SIMD_INLINE void run_tiles(const float *w, size_t ws, int kc, const float *xp, float *acc, float *out,
                                     size_t ldo, int N, __mmask16 m0, __mmask16 m1, bool full, bool first, bool last,
                                     float alpha) {
    for (int n0 = 0; n0 < N; n0 += FT_TN) {
        int nt = N - n0 < FT_TN ? N - n0 : FT_TN;
        const float *xn = xp + (size_t)n0 * FT_KC;  // tile n0 / 12 starts at (n0 / 12) * 12 * KC
        float *o = out + (size_t)n0 * ldo, *an = acc + (size_t)n0 * FT_RB;
        switch (nt) {  // constant token counts: accumulators in registers
#define CASE(i) \
    case i + 1: tile(w, ws, kc, xn, an, o, ldo, m0, m1, full, i + 1, first, last, alpha); break;
            X12(CASE)
#undef CASE
        }
    }
}

// Activations k0 .. k0+kc-1 of nt tokens (x + n ldx) into xp: tile by tile (12 tokens), [k][12],
// a short last tile's missing tokens as zeros (never used: tile reads tokens < nt only). 16
// weights at a time by a 16 x 16 transpose of the tile's 12 rows and 4 zero rows.
T_F32T static void pack_x(const float *x, size_t ldx, int nt, int k0, int kc, float *xp) {
    for (int n0 = 0; n0 < nt; n0 += FT_TN) {
        float *dst = xp + (size_t)n0 * FT_KC;
        int rows = nt - n0 < FT_TN ? nt - n0 : FT_TN, k = 0;
        const float *src = x + (size_t)n0 * ldx + k0;
        for (; k + 16 <= kc; k += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < rows ? _mm512_loadu_ps(src + (size_t)i * ldx + k) : _mm512_setzero_ps();
            bd_transpose16_ps(r);
            for (int j = 0; j < 16; j++) _mm512_mask_storeu_ps(dst + (size_t)(k + j) * FT_TN, 0x0fff, r[j]);
        }
        for (; k < kc; k++)
            for (int i = 0; i < FT_TN; i++) dst[(size_t)k * FT_TN + i] = i < rows ? src[(size_t)i * ldx + k] : 0;
    }
}

static inline __mmask16 mask_lo(int nr) { return nr >= 16 ? 0xffff : nr <= 0 ? 0 : (__mmask16)((1u << nr) - 1); }

// The weights of a product: rows (src + r lds, C contiguous weights each: transposed chunk by
// chunk) or, k_major, already w[k][r] (src + k lds + r, read in place).
typedef struct {
    const float *src;
    size_t lds;
    bool k_major;
} f32_weights;

// out columns r0..r1-1 for tokens 0..N-1: out (+ n ldo + r) = alpha * sum_k W[r][k] x[n][k].
// Loops: token blocks of TB, then panels of RP rows, then chunks of KC weights; in a chunk the
// tokens' slice is packed once (xp) and serves the panel's row blocks one after the other
// (each block's chunk transposed once into w). The panel's partial sums (acc, TB x RP floats,
// contiguous per block) stay in L2 between chunks; x is read from memory once per panel, each
// weight once per block of tokens. Before (per 32-row block every chunk, partial sums in out),
// every block read every token's whole row (8 MB for 512 tokens of 4096) and out's rows, 16 KB
// apart, crowded a few L2 sets: 104-119 GFLOP/s on the 7B shapes, 134-140 now.
T_F32T static void weights_times_x(const f32_weights *W, int r0, int r1, int C, const float *x, size_t ldx, float *out,
                                   size_t ldo, int N, float alpha) {
    _Alignas(64) float w[FT_KC * FT_RB];
    _Alignas(64) float xp[FT_TB * FT_KC];
    _Alignas(64) float acc[FT_RP * FT_TB];  // block b's partial sums at acc + b TB RB
    for (int n0 = 0; n0 < N; n0 += FT_TB) {
        int nb = N - n0 < FT_TB ? N - n0 : FT_TB;
        for (int p0 = r0; p0 < r1; p0 += FT_RP) {
            int p1 = r1 - p0 < FT_RP ? r1 : p0 + FT_RP;
            for (int k0 = 0; k0 < C; k0 += FT_KC) {
                int kc = C - k0 < FT_KC ? C - k0 : FT_KC;
                pack_x(x + (size_t)n0 * ldx, ldx, nb, k0, kc, xp);
                for (int b0 = p0; b0 < p1; b0 += FT_RB) {
                    int nr = p1 - b0 < FT_RB ? p1 - b0 : FT_RB;
                    const float *wk = w;
                    size_t ws = FT_RB;
                    if (W->k_major) {
                        wk = W->src + (size_t)k0 * W->lds + b0;
                        ws = W->lds;
                    } else {
                        pack_chunk(W->src + (size_t)b0 * W->lds, W->lds, nr, k0, kc, w);
                        // The next block's chunk into L2 now: its transpose otherwise waits on
                        // memory row by row (53% of the tiles' time at 32 tokens). bd-teacher-gen
                        // at batch 32, 110M f32: 214-226 -> 250-253 tokens/s; prompts unchanged.
                        if (b0 + 2 * FT_RB <= p1)
                            for (int r = 0; r < FT_RB; r++)
                                for (int l = 0; l < kc / 16; l++)
                                    _mm_prefetch((const char *)(W->src + (size_t)(b0 + FT_RB + r) * W->lds + k0) +
                                                         64 * l,
                                                 _MM_HINT_T1);
                    }
                    float *o = out + (size_t)n0 * ldo + b0, *ab = acc + (size_t)(b0 - p0) * FT_TB;
                    bool first = k0 == 0, last = k0 + kc == C;
                    if (nr == FT_RB)
                        run_tiles(wk, ws, kc, xp, ab, o, ldo, nb, 0xffff, 0xffff, true, first, last, alpha);
                    else
                        run_tiles(wk, ws, kc, xp, ab, o, ldo, nb, mask_lo(nr), mask_lo(nr - 16), false, first, last,
                                  alpha);
                }
            }
        }
    }
}

typedef struct {
    const bd_pk_tensor *t;
    const float *inp;  // (N, C)
    float *out;        // (N, OC)
    float *rows;       // per slot RP_DQ x C dequantized rows, or NULL (in place)
    int N, slots, nblocks;
} f32_tiles_job;

// A slot's contiguous range of row blocks, a panel at a time: f32 rows in place, other formats
// dequantized panel by panel into the slot's rows.
T_F32T static void run_slots(void *ctx, int s0, int s1) {
    const f32_tiles_job *j = ctx;
    const bd_pk_tensor *t = j->t;
    int C = t->cols, OC = t->rows;
    for (int s = s0; s < s1; s++) {
        int b0 = (int)((int64_t)j->nblocks * s / j->slots), b1 = (int)((int64_t)j->nblocks * (s + 1) / j->slots);
        int r0 = b0 * FT_RB, r1 = b1 * FT_RB < OC ? b1 * FT_RB : OC;
        if (!j->rows) {
            f32_weights W = {(const float *)(const void *)t->data, t->row_bytes / sizeof(float), false};
            weights_times_x(&W, r0, r1, C, j->inp, (size_t)C, j->out, (size_t)OC, j->N, 1.0f);
            continue;
        }
        float *rows = j->rows + (size_t)s * FT_RP_DQ * (size_t)C;
        for (int p0 = r0; p0 < r1; p0 += FT_RP_DQ) {
            int p1 = r1 - p0 < FT_RP_DQ ? r1 : p0 + FT_RP_DQ;
            for (int r = p0; r < p1; r++) bd_pk_dequantize_row(t, r, rows + (size_t)(r - p0) * C);
            f32_weights W = {rows - (size_t)p0 * C, (size_t)C, false};  // row r at rows + (r - p0) C
            weights_times_x(&W, p0, p1, C, j->inp, (size_t)C, j->out, (size_t)OC, j->N, 1.0f);
        }
    }
}

void bd_pk_matmul_f32_tiles(float *out, const float *inp, const bd_pk_tensor *t, int N, void *scratch) {
    int S = slot_count(t);
    f32_tiles_job j = {t, inp, out, rows_in_place(t) ? NULL : scratch, N, S, (t->rows + FT_RB - 1) / FT_RB};
    bd_parallel_for(S, 1, run_slots, &j);
}

T_F32T static void gemm_nt(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw, int N,
                           int OC, int C, float alpha) {
    f32_weights W = {w, ldw, false};
    weights_times_x(&W, 0, OC, C, x, ldx, out, ldo, N, alpha);
}

T_F32T static void gemm_nn(float *out, size_t ldo, const float *x, size_t ldx, const float *v, size_t ldv, int N,
                           int OC, int C, float alpha) {
    f32_weights W = {v, ldv, true};  // v's rows are the packed layout already
    weights_times_x(&W, 0, OC, C, x, ldx, out, ldo, N, alpha);
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
