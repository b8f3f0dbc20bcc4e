// Causal grouped-query attention, batched (training/prefill) and one-row-per-sequence (KV
// cache), each with its _ref twin. Dimension key: B batch, T sequence, NH query heads,
// KV key/value heads, G = NH/KV query heads per KV head, HS head dim.
// Fast path: per (b, head) and block of ATT_BLOCK query rows, one product for the scores
// against only the keys the block can see (causal: about half of T^2), a vectorized
// softmax, one product for P V (the f32 tiles on AVX-512, bd_f32_gemm_nt/nn: Debian's
// OpenBLAS runs its AVX2 kernel there; sgemm elsewhere). Step (generation): per head, the scores and P V as direct
// AVX-512 / AVX2 loops over the cache (sgemm on a 1 x n x HS product spent most of its time
// packing; measured 14% of a ternary model's token), sgemm on the scalar path.
#include <cblas.h>
#include <math.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ATT_X86 1
#include <immintrin.h>
#endif


#include "bd_kernels.h"
#include "bd_packed.h"
#include "bd_threads.h"
#include "bd_vmath.h"

#define ATT_BLOCK 64

long long bd_attention_scratch_floats(int T, int threads) {
    return (long long)(threads > 1 ? threads : 1) * (T < ATT_BLOCK ? T : ATT_BLOCK) * T;
}

// In place: x[0..n) <- softmax(x[0..n)); returns log sum exp of the input.
static float softmax_row(float *x, int n) {
    bd_v4f mv = bd_v4_set1(-INFINITY);
    int j = 0;
    for (; j + 4 <= n; j += 4) mv = bd_v4_max(mv, bd_v4_load(x + j));
    float m = bd_v4_hmax(mv);
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    bd_v4f sv = bd_v4_set1(0), m4 = bd_v4_set1(m);
    for (j = 0; j + 4 <= n; j += 4) {
        bd_v4f e = bd_v4_exp(bd_v4_load(x + j) - m4);
        bd_v4_store(x + j, e);
        sv += e;
    }
    float s = bd_v4_hsum(sv);
    for (; j < n; j++) {
        x[j] = bd_expf_fast(x[j] - m);
        s += x[j];
    }
    bd_v4f inv = bd_v4_set1(1.0f / s);
    for (j = 0; j + 4 <= n; j += 4) bd_v4_store(x + j, bd_v4_load(x + j) * inv);
    for (; j < n; j++) x[j] *= 1.0f / s;
    return m + logf(s);
}

#ifdef BD_VMATH_V16
// softmax_row 16 lanes at a time (each exp the same as softmax_row's; the sums in another order).
BD_T_V16 static float softmax_row16(float *x, int n) {
    const bd_v16f zero = {0};
    bd_v16f mv = zero - INFINITY;
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        bd_v16f v = bd_v16_load(x + j);
        bd_v16i gt = v > mv;
        mv = (bd_v16f)(((bd_v16i)v & gt) | ((bd_v16i)mv & ~gt));
    }
    float m = -INFINITY;
    for (int l = 0; l < 16; l++) m = mv[l] > m ? mv[l] : m;
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    bd_v16f sv = zero, m16 = zero + m;
    for (j = 0; j + 16 <= n; j += 16) {
        bd_v16f e = bd_v16_exp(bd_v16_load(x + j) - m16);
        bd_v16_store(x + j, e);
        sv += e;
    }
    float s = 0;
    for (int l = 0; l < 16; l++) s += sv[l];
    for (; j < n; j++) {
        x[j] = bd_expf_fast(x[j] - m);
        s += x[j];
    }
    bd_v16f inv = zero + 1.0f / s;
    for (j = 0; j + 16 <= n; j += 16) bd_v16_store(x + j, bd_v16_load(x + j) * inv);
    for (; j < n; j++) x[j] *= 1.0f / s;
    return m + logf(s);
}
#endif

// The softmax of the path in use: 16 lanes on AVX-512.
typedef float softmax_fn(float *x, int n);
static softmax_fn *pick_softmax(void) {
#ifdef BD_VMATH_V16
    if (bd_pk_simd() == BD_SIMD_AVX512) return softmax_row16;
#endif
    return softmax_row;
}

typedef struct {
    float *out, *lse;
    const float *q, *k, *v;
    float *scratch;
    long long slot_floats;
    int next_slot;
    int T, NH, KV, HS;
    softmax_fn *softmax;
} att_job;

// (b, head) pairs i0..i1-1, with one scratch slot of its own.
static void att_chunk(void *ctx, int i0, int i1) {
    att_job *j = ctx;
    int T = j->T, NH = j->NH, HS = j->HS, G = NH / j->KV;
    size_t qs = (size_t)NH * HS, ks = (size_t)j->KV * HS;  // row strides of q/out and k/v
    float scale = 1.0f / sqrtf((float)HS);
    int slot = __atomic_fetch_add(&j->next_slot, 1, __ATOMIC_RELAXED);
    float *S = j->scratch + slot * j->slot_floats;  // (m, n) scores, then probabilities
    for (int i = i0; i < i1; i++) {
        int b = i / NH, h = i % NH, g = h / G;
        const float *qb = j->q + (size_t)b * T * qs + (size_t)h * HS;
        const float *kb = j->k + (size_t)b * T * ks + (size_t)g * HS;
        const float *vb = j->v + (size_t)b * T * ks + (size_t)g * HS;
        float *ob = j->out + (size_t)b * T * qs + (size_t)h * HS;
        float *lb = j->lse + ((size_t)b * NH + h) * T;
        for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
            int m = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK;
            int n = t0 + m;  // keys this block can see
            if (!bd_f32_gemm_nt(S, (size_t)n, qb + t0 * qs, qs, kb, ks, m, n, HS, scale))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, HS, scale, qb + t0 * qs, (int)qs, kb,
                            (int)ks, 0.0f, S, n);
            for (int r = 0; r < m; r++) {
                int t = t0 + r;
                float *row = S + (size_t)r * n;
                lb[t] = j->softmax(row, t + 1);
                for (int c = t + 1; c < n; c++) row[c] = 0.0f;
            }
            if (!bd_f32_gemm_nn(ob + t0 * qs, qs, S, (size_t)n, vb, ks, m, HS, n, 1.0f))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, HS, n, 1.0f, S, n, vb, (int)ks, 0.0f,
                            ob + t0 * qs, (int)qs);
        }
    }
}

void bd_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, float *scratch,
                          long long scratch_floats, int B, int T, int NH, int KV, int HS) {
    long long per = bd_attention_scratch_floats(T, 1);
    att_job j = {out, lse, q, k, v, scratch, per, 0, T, NH, KV, HS, pick_softmax()};
    int n = B * NH, nt = bd_num_threads();
    if (nt > scratch_floats / per) nt = (int)(scratch_floats / per);
    if (nt > n) nt = n;
    if (nt <= 1) {
        att_chunk(&j, 0, n);
        return;
    }
    // Threads over (b, head) pairs, each calling a single-threaded sgemm.
    bd_parallel_for_blas(n, (n + nt - 1) / nt, att_chunk, &j);
}

// Reference for one query row against keys/values 0..n-1 (rows `stride` floats apart):
// max, sum and weighted values in double, recomputing every dot product; returns lse.
static double ref_one_query(float *o, const float *qv, const float *k, const float *v, int n, size_t stride, int HS) {
    double scale = 1.0 / sqrt((double)HS), mx = -INFINITY, sum = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int s = 0; s < n; s++) {
            double dot = 0;
            for (int e = 0; e < HS; e++) dot += (double)qv[e] * k[s * stride + e];
            if (pass == 0)
                mx = dot * scale > mx ? dot * scale : mx;
            else
                sum += exp(dot * scale - mx);
        }
    for (int d = 0; d < HS; d++) {
        double acc = 0;
        for (int s = 0; s < n; s++) {
            double dot = 0;
            for (int e = 0; e < HS; e++) dot += (double)qv[e] * k[s * stride + e];
            acc += exp(dot * scale - mx) / sum * v[s * stride + d];
        }
        o[d] = (float)acc;
    }
    return mx + log(sum);
}

void bd_attention_forward_ref(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T,
                              int NH, int KV, int HS) {
    int G = NH / KV;
    size_t ks = (size_t)KV * HS;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                size_t qi = (((size_t)b * T + t) * NH + h) * HS, ki = (size_t)b * T * ks + (size_t)(h / G) * HS;
                lse[((size_t)b * NH + h) * T + t] =
                        (float)ref_one_query(out + qi, q + qi, k + ki, v + ki, t + 1, ks, HS);
            }
}

#ifdef ATT_X86
#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_AVX512 __attribute__((target("avx2,fma,avx512f")))

// One query head q (HS) against keys/values 0..n-1 (rows ks floats apart): S (n) the
// probabilities, o (HS) the output. Each score is one dot with two accumulators and a masked
// tail; P V adds the value rows in order into HS-wide accumulators.
T_AVX512 static void head_step_avx512(float *o, float *S, const float *qv, const float *k, const float *v, int n,
                                      size_t ks, int HS, float scale) {
    for (int s = 0; s < n; s++) {
        const float *kr = k + s * ks;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int e = 0;
        for (; e + 32 <= HS; e += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(qv + e), _mm512_loadu_ps(kr + e), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(qv + e + 16), _mm512_loadu_ps(kr + e + 16), a1);
        }
        for (; e < HS; e += 16) {
            __mmask16 m = HS - e >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (HS - e)) - 1);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, qv + e), _mm512_maskz_loadu_ps(m, kr + e), a0);
        }
        S[s] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * scale;
    }
    softmax_row16(S, n);
    for (int e = 0; e < HS; e += 16) {
        __mmask16 m = HS - e >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (HS - e)) - 1);
        __m512 acc = _mm512_setzero_ps();
        for (int s = 0; s < n; s++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(S[s]), _mm512_maskz_loadu_ps(m, v + s * ks + e), acc);
        _mm512_mask_storeu_ps(o + e, m, acc);
    }
}

T_AVX2 static __m256i tail_mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

T_AVX2 static void head_step_avx2(float *o, float *S, const float *qv, const float *k, const float *v, int n, size_t ks,
                                  int HS, float scale) {
    for (int s = 0; s < n; s++) {
        const float *kr = k + s * ks;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int e = 0;
        for (; e + 16 <= HS; e += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qv + e), _mm256_loadu_ps(kr + e), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qv + e + 8), _mm256_loadu_ps(kr + e + 8), a1);
        }
        for (; e < HS; e += 8) {
            __m256i m = tail_mask8(HS - e);
            a0 = _mm256_fmadd_ps(_mm256_maskload_ps(qv + e, m), _mm256_maskload_ps(kr + e, m), a0);
        }
        __m256 a = _mm256_add_ps(a0, a1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        S[s] = _mm_cvtss_f32(h) * scale;
    }
    softmax_row(S, n);
    for (int e = 0; e < HS; e += 8) {
        __m256i m = tail_mask8(HS - e);
        __m256 acc = _mm256_setzero_ps();
        for (int s = 0; s < n; s++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(S[s]), _mm256_maskload_ps(v + s * ks + e, m), acc);
        _mm256_maskstore_ps(o + e, m, acc);
    }
}
#endif

#ifdef ATT_X86
typedef struct {
    float *out, *scratch;
    const float *q, *kcache, *vcache;
    const int *pos;
    int cache_T, NH, KV, HS;
    bd_simd path;
} step_job;

// (b, head) pairs i0..i1-1, each with its own scores row.
static void step_heads(void *ctx, int i0, int i1) {
    const step_job *j = ctx;
    int NH = j->NH, HS = j->HS, G = NH / j->KV;
    size_t ks = (size_t)j->KV * HS;
    float scale = 1.0f / sqrtf((float)HS);
    for (int i = i0; i < i1; i++) {
        int b = i / NH, h = i % NH;
        const float *qv = j->q + (size_t)i * HS;
        const float *kc = j->kcache + (size_t)b * j->cache_T * ks + (size_t)(h / G) * HS;
        const float *vc = j->vcache + (size_t)b * j->cache_T * ks + (size_t)(h / G) * HS;
        float *S = j->scratch + (size_t)i * j->cache_T;
        if (j->path == BD_SIMD_AVX512)
            head_step_avx512(j->out + (size_t)i * HS, S, qv, kc, vc, j->pos[b] + 1, ks, HS, scale);
        else
            head_step_avx2(j->out + (size_t)i * HS, S, qv, kc, vc, j->pos[b] + 1, ks, HS, scale);
    }
}
#endif

void bd_attention_step_forward(float *out, const float *q, const float *kcache, const float *vcache, const int *pos,
                               float *scratch, int B, int cache_T, int NH, int KV, int HS) {
    int G = NH / KV;
#ifdef ATT_X86
    bd_simd path = bd_pk_simd();  // the packed kernels' choice (BD_SIMD forces it for both)
    if (path != BD_SIMD_SCALAR) {
        step_job j = {out, scratch, q, kcache, vcache, pos, cache_T, NH, KV, HS, path};
        int maxn = 1;
        for (int b = 0; b < B; b++) maxn = pos[b] + 1 > maxn ? pos[b] + 1 : maxn;
        // a thread gets at least ~64K multiply-adds (early positions run inline)
        bd_parallel_for(B * NH, 1 + (1 << 16) / (2 * maxn * HS), step_heads, &j);
        return;
    }
#endif
    size_t ks = (size_t)KV * HS;
    float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        int n = pos[b] + 1;
        for (int g = 0; g < KV; g++) {
            // The G query heads of this KV head are adjacent rows of HS floats.
            const float *qg = q + (size_t)b * NH * HS + (size_t)g * G * HS;
            const float *kc = kcache + (size_t)b * cache_T * ks + (size_t)g * HS;
            const float *vc = vcache + (size_t)b * cache_T * ks + (size_t)g * HS;
            float *S = scratch;  // (G, n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, G, n, HS, scale, qg, HS, kc, (int)ks, 0.0f, S, n);
            for (int i = 0; i < G; i++) softmax_row(S + (size_t)i * n, n);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, G, HS, n, 1.0f, S, n, vc, (int)ks, 0.0f,
                        out + (size_t)b * NH * HS + (size_t)g * G * HS, HS);
        }
    }
}

void bd_attention_step_forward_ref(float *out, const float *q, const float *kcache, const float *vcache, const int *pos,
                                   int B, int cache_T, int NH, int KV, int HS) {
    int G = NH / KV;
    size_t ks = (size_t)KV * HS;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t qi = ((size_t)b * NH + h) * HS, ki = (size_t)b * cache_T * ks + (size_t)(h / G) * HS;
            ref_one_query(out + qi, q + qi, kcache + ki, vcache + ki, pos[b] + 1, ks, HS);
        }
}
