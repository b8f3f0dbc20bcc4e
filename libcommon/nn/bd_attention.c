// Causal grouped-query attention, batched (training/prefill) and one-row-per-sequence (KV
// cache), each with its _ref twin. Dimension key: B batch, T sequence, NH query heads,
// KV key/value heads, G = NH/KV query heads per KV head, HS head dim.
// Fast path: per (b, head) and block of ATT_BLOCK query rows, one sgemm for the scores
// against only the keys the block can see (causal: about half of T^2), a vectorized
// softmax, one sgemm for P V.
#include <cblas.h>
#include <math.h>


#include "bd_kernels.h"
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

typedef struct {
    float *out, *lse;
    const float *q, *k, *v;
    float *scratch;
    long long slot_floats;
    int next_slot;
    int T, NH, KV, HS;
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, HS, scale, qb + t0 * qs, (int)qs, kb, (int)ks,
                        0.0f, S, n);
            for (int r = 0; r < m; r++) {
                int t = t0 + r;
                float *row = S + (size_t)r * n;
                lb[t] = softmax_row(row, t + 1);
                for (int c = t + 1; c < n; c++) row[c] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, HS, n, 1.0f, S, n, vb, (int)ks, 0.0f,
                        ob + t0 * qs, (int)qs);
        }
    }
}

void bd_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, float *scratch,
                          long long scratch_floats, int B, int T, int NH, int KV, int HS) {
    long long per = bd_attention_scratch_floats(T, 1);
    att_job j = {out, lse, q, k, v, scratch, per, 0, T, NH, KV, HS};
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

void bd_attention_step_forward(float *out, const float *q, const float *kcache, const float *vcache, const int *pos,
                               float *scratch, int B, int cache_T, int NH, int KV, int HS) {
    int G = NH / KV;
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
