// Element-wise and row-wise forward kernels (embedding, RMSNorm, linear, RoPE, SwiGLU,
// residual, log-softmax, cross-entropy), each with its _ref twin. Dimension key: N rows,
// C model dim, OC output channels, V vocab, B batch, T sequence, NH heads, HS head dim,
// F feed-forward dim (see bd_kernels.h). Attention lives in bd_attention.c.
#include "bd_kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "bd_packed.h"
#include "bd_threads.h"
#include "bd_vmath.h"

// ---- embedding ----

void bd_embedding_forward(float *out, const int32_t *tokens, const float *tok_emb, int N, int C) {
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, tok_emb + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
}

void bd_embedding_forward_ref(float *out, const int32_t *tokens, const float *tok_emb, int N, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = tok_emb[(size_t)tokens[n] * C + c];
}

// ---- RMSNorm ----

static float sumsq(const float *x, int C) {
    bd_v4f a0 = bd_v4_set1(0), a1 = bd_v4_set1(0);
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        bd_v4f x0 = bd_v4_load(x + c), x1 = bd_v4_load(x + c + 4);
        a0 += x0 * x0;
        a1 += x1 * x1;
    }
    float s = bd_v4_hsum(a0 + a1);
    for (; c < C; c++) s += x[c] * x[c];
    return s;
}

typedef struct {
    float *out, *rstd;
    const float *inp, *weight;
    int C;
    float eps;
} rms_job;

static void rmsnorm_rows(void *ctx, int n0, int n1) {
    rms_job *j = ctx;
    const float *inp = j->inp, *weight = j->weight;
    float *out = j->out, *rstd = j->rstd, eps = j->eps;
    int C = j->C;
    for (int n = n0; n < n1; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float r = 1.0f / sqrtf(sumsq(x, C) / (float)C + eps);
        bd_v4f rv = bd_v4_set1(r);
        int c = 0;
        for (; c + 4 <= C; c += 4) bd_v4_store(o + c, bd_v4_load(x + c) * rv * bd_v4_load(weight + c));
        for (; c < C; c++) o[c] = x[c] * r * weight[c];
        rstd[n] = r;
    }
}

void bd_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    rms_job j = {out, rstd, inp, weight, C, eps};
    bd_parallel_for(N, 1 + 65536 / C, rmsnorm_rows, &j);
}

void bd_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        double r = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = (float)(x[c] * r * weight[c]);
        rstd[n] = (float)r;
    }
}

// ---- linear ----

void bd_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    if (N < 8 || bd_pk_simd() == BD_SIMD_AVX512) {
        // Matrix-vector products (generation: the f32 head, f32 layers): the packed kernels' f32
        // row dots over bd's thread pool read the weights once at memory speed, where sgemm
        // with a few rows copies them first (measured: a 32000x768 head took 2x the time). On
        // AVX-512 also N >= 8: the f32 tiles (bd_pk_f32_tiles.c), whose sums do not depend on
        // the thread count or the batch (sgemm's do, in the last bits). They outran OpenBLAS's
        // AVX2 sgemm on a Zen 5; on a Xeon, against its AVX-512 sgemm, a 7B-shaped prompt ran
        // at the same rate either way (bench_model: 170-177 against 168-176 tokens/s).
        bd_pk_tensor t;
        if (bd_pk_geometry(&t, BD_PK_F32, OC, C, 0) == BD_OK) {
            t.data = (uint8_t *)(uintptr_t)weight;
            t.borrowed = true;
            bd_pk_matmul(out, inp, &t, N, false, NULL);  // f32 rows: no scratch on these routes
            if (bias)
                for (int n = 0; n < N; n++)
                    for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] += bias[o];
            return;
        }
    }
    float beta = 0.0f;
    if (bias) {
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

void bd_linear_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) s += (double)inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
            out[(size_t)n * OC + o] = (float)s;
        }
}

// ---- RoPE ----

// Index of the partner pair (a, b) for frequency i.
static inline void rope_pair(bd_rope_style style, int i, int HS, int *a, int *b) {
    if (style == BD_ROPE_INTERLEAVED) {
        *a = 2 * i;
        *b = 2 * i + 1;
    } else {
        *a = i;
        *b = i + HS / 2;
    }
}

static inline double rope_angle(double pos, int i, int HS, float theta) {
    return pos * pow((double)theta, -2.0 * i / HS);
}

void bd_rope_table(float *cs, int P, int HS, float theta) {
    for (int p = 0; p < P; p++)
        for (int i = 0; i < HS / 2; i++) {
            double a = rope_angle(p, i, HS, theta);
            cs[((size_t)p * (HS / 2) + i) * 2] = (float)cos(a);
            cs[((size_t)p * (HS / 2) + i) * 2 + 1] = (float)sin(a);
        }
}

void bd_rope_forward(float *out, const float *inp, const float *cs, const int *pos0, int B, int T, int NH, int HS,
                     bd_rope_style style) {
    int half = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *tab = cs + (size_t)((pos0 ? pos0[b] : 0) + t) * half * 2;
            size_t row = ((size_t)b * T + t) * (size_t)NH * HS;
            for (int h = 0; h < NH; h++) {
                const float *x = inp + row + (size_t)h * HS;
                float *o = out + row + (size_t)h * HS;
                if (style == BD_ROPE_INTERLEAVED)
                    for (int i = 0; i < half; i++) {
                        float x0 = x[2 * i], x1 = x[2 * i + 1], c = tab[2 * i], s = tab[2 * i + 1];
                        o[2 * i] = x0 * c - x1 * s;
                        o[2 * i + 1] = x0 * s + x1 * c;
                    }
                else
                    for (int i = 0; i < half; i++) {
                        float x0 = x[i], x1 = x[i + half], c = tab[2 * i], s = tab[2 * i + 1];
                        o[i] = x0 * c - x1 * s;
                        o[i + half] = x0 * s + x1 * c;
                    }
            }
        }
}

void bd_rope_forward_ref(float *out, const float *inp, const int *pos0, int B, int T, int NH, int HS, float theta,
                         bd_rope_style style) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < HS / 2; i++) {
                    size_t base = (((size_t)b * T + t) * NH + h) * HS;
                    int ia, ib;
                    rope_pair(style, i, HS, &ia, &ib);
                    double a = rope_angle((double)(pos0 ? pos0[b] : 0) + t, i, HS, theta);
                    float c = (float)cos(a), s = (float)sin(a);
                    float x0 = inp[base + ia], x1 = inp[base + ib];
                    out[base + ia] = x0 * c - x1 * s;
                    out[base + ib] = x0 * s + x1 * c;
                }
}

// ---- SwiGLU ----

// Element-wise kernels run on chunks of PAR_CHUNK elements spread over the threads; each
// chunk is a multiple of 4, so the vector/tail split of an element never changes.
#define PAR_CHUNK 16384
typedef struct {
    float *out;
    const float *a, *b;
    long long n;
    void (*fn)(float *, const float *, const float *, long long);
} ew_job;

static void ew_chunk(void *ctx, int start, int end) {
    ew_job *j = ctx;
    long long i0 = (long long)start * PAR_CHUNK, i1 = (long long)end * PAR_CHUNK;
    if (i1 > j->n) i1 = j->n;
    j->fn(j->out + i0, j->a + i0, j->b + i0, i1 - i0);
}

static void ew_parallel(void (*fn)(float *, const float *, const float *, long long), float *out, const float *a,
                        const float *b, long long n) {
    ew_job j = {out, a, b, n, fn};
    long long chunks = (n + PAR_CHUNK - 1) / PAR_CHUNK;
    if (chunks > 1 << 30) {  // beyond int chunk counts: serial
        fn(out, a, b, n);
        return;
    }
    bd_parallel_for((int)chunks, 8, ew_chunk, &j);
}

static void swiglu_serial(float *out, const float *gate, const float *up, long long n) {
    long long i = 0;
    for (; i + 4 <= n; i += 4) {
        bd_v4f g = bd_v4_load(gate + i);
        bd_v4f e = bd_v4_exp(-g);
        bd_v4_store(out + i, g / (1.0f + e) * bd_v4_load(up + i));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + bd_expf_fast(-gate[i])) * up[i];
}

#ifdef BD_VMATH_V16
// swiglu_serial 16 lanes at a time: every element's operations the same, so the same bits.
BD_T_V16 static void swiglu_v16(float *out, const float *gate, const float *up, long long n) {
    long long i = 0;
    for (; i + 16 <= n; i += 16) {
        bd_v16f g = bd_v16_load(gate + i);
        bd_v16f e = bd_v16_exp(-g);
        bd_v16_store(out + i, g / (1.0f + e) * bd_v16_load(up + i));
    }
    swiglu_serial(out + i, gate + i, up + i, n - i);
}
#endif

void bd_swiglu_forward(float *out, const float *gate, const float *up, long long n) {
#ifdef BD_VMATH_V16
    if (bd_pk_simd() == BD_SIMD_AVX512) {
        ew_parallel(swiglu_v16, out, gate, up, n);
        return;
    }
#endif
    ew_parallel(swiglu_serial, out, gate, up, n);
}

void bd_swiglu_forward_ref(float *out, const float *gate, const float *up, long long n) {
    for (long long i = 0; i < n; i++) out[i] = (float)(gate[i] / (1.0 + exp(-(double)gate[i])) * up[i]);
}

// ---- residual ----

static void residual_serial(float *out, const float *a, const float *b, long long n) {
    long long i = 0;
    for (; i + 4 <= n; i += 4) bd_v4_store(out + i, bd_v4_load(a + i) + bd_v4_load(b + i));
    for (; i < n; i++) out[i] = a[i] + b[i];
}

void bd_residual_forward(float *out, const float *a, const float *b, long long n) {
    ew_parallel(residual_serial, out, a, b, n);
}

void bd_residual_forward_ref(float *out, const float *a, const float *b, long long n) {
    for (long long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// ---- log-softmax and cross-entropy ----

// log sum_j exp(x[j]) of one row = *mx + (returned value): the max and the log of the
// shifted sum are kept apart so that x[j] - lse keeps its precision for large logits.
static float row_logsumexp(const float *x, int V, float *mx) {
    bd_v4f mv = bd_v4_set1(-INFINITY);
    int j = 0;
    for (; j + 4 <= V; j += 4) mv = bd_v4_max(mv, bd_v4_load(x + j));
    float m = bd_v4_hmax(mv);
    for (; j < V; j++) m = x[j] > m ? x[j] : m;
    bd_v4f sv = bd_v4_set1(0), m4 = bd_v4_set1(m);
    for (j = 0; j + 4 <= V; j += 4) sv += bd_v4_exp(bd_v4_load(x + j) - m4);
    float s = bd_v4_hsum(sv);
    for (; j < V; j++) s += bd_expf_fast(x[j] - m);
    *mx = m;
    return logf(s);
}

static double row_logsumexp_ref(const float *x, int V) {
    double m = x[0], s = 0;
    for (int j = 1; j < V; j++) m = x[j] > m ? x[j] : m;
    for (int j = 0; j < V; j++) s += exp(x[j] - m);
    return m + log(s);
}

void bd_logsoftmax_forward(float *out, const float *inp, int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * V;
        float *o = out + (size_t)n * V;
        float m, ls = row_logsumexp(x, V, &m);
        for (int j = 0; j < V; j++) o[j] = (x[j] - m) - ls;
    }
}

void bd_logsoftmax_forward_ref(float *out, const float *inp, int N, int V) {
    for (int n = 0; n < N; n++) {
        double l = row_logsumexp_ref(inp + (size_t)n * V, V);
        for (int j = 0; j < V; j++) out[(size_t)n * V + j] = (float)(inp[(size_t)n * V + j] - l);
    }
}

void bd_crossentropy_forward(float *losses, float *lse, const float *logits, const int32_t *targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float m, ls = row_logsumexp(x, V, &m);
        lse[n] = m + ls;
        losses[n] = targets[n] >= 0 ? (m - x[targets[n]]) + ls : 0.0f;
    }
}

void bd_crossentropy_forward_ref(float *losses, float *lse, const float *logits, const int32_t *targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        double l = row_logsumexp_ref(x, V);
        lse[n] = (float)l;
        losses[n] = targets[n] >= 0 ? (float)(l - x[targets[n]]) : 0.0f;
    }
}
