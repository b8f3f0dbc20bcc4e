// Backward kernels (embedding, RMSNorm, linear, RoPE, causal GQA attention, SwiGLU,
// residual, cross-entropy), each with its _ref twin computing in double. Dimension key:
// N rows, C model dim, OC output channels, V vocab, B batch, T sequence, NH query heads,
// KV key/value heads, G = NH/KV, HS head dim (see bd_backward.h).
#include "bd_backward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bd_threads.h"
#include "bd_vmath.h"


static void axpy(float *y, const float *x, float a, int n) {  // y += a*x, 4 lanes then tail
    bd_v4f av = bd_v4_set1(a);
    int i = 0;
    for (; i + 4 <= n; i += 4) bd_v4_store(y + i, bd_v4_load(y + i) + av * bd_v4_load(x + i));
    for (; i < n; i++) y[i] += a * x[i];
}

static float dot(const float *a, const float *b, int n) {
    bd_v4f s0 = bd_v4_set1(0), s1 = bd_v4_set1(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 += bd_v4_load(a + i) * bd_v4_load(b + i);
        s1 += bd_v4_load(a + i + 4) * bd_v4_load(b + i + 4);
    }
    float s = bd_v4_hsum(s0 + s1);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// ---- embedding ----

void bd_embedding_backward(float *dtok_emb, const float *dout, const int32_t *tokens, int N, int C) {
    for (int n = 0; n < N; n++) axpy(dtok_emb + (size_t)tokens[n] * C, dout + (size_t)n * C, 1.0f, C);
}

void bd_embedding_backward_ref(float *dtok_emb, const float *dout, const int32_t *tokens, int N, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) dtok_emb[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
}

// ---- RMSNorm ----

typedef struct {
    float *dinp, *dweight;
    const float *dout, *inp, *rstd, *weight;
    int N, C;
} rmsb_job;

#define RMS_COLS 64  // columns per dweight task: each column sums its rows in order

static void rmsb_rows(void *ctx, int n0, int n1) {
    rmsb_job *j = ctx;
    int C = j->C;
    for (int n = n0; n < n1; n++) {
        const float *x = j->inp + (size_t)n * C, *g = j->dout + (size_t)n * C, *w = j->weight;
        float *dx = j->dinp + (size_t)n * C, r = j->rstd[n];
        bd_v4f s4 = bd_v4_set1(0);
        int c = 0;
        for (; c + 4 <= C; c += 4) s4 += bd_v4_load(g + c) * bd_v4_load(w + c) * bd_v4_load(x + c);
        float s = bd_v4_hsum(s4);
        for (; c < C; c++) s += g[c] * w[c] * x[c];
        float k = r * r * r * s / (float)C;
        bd_v4f rv = bd_v4_set1(r), kv = bd_v4_set1(k);
        for (c = 0; c + 4 <= C; c += 4)
            bd_v4_store(dx + c,
                        bd_v4_load(dx + c) + rv * bd_v4_load(g + c) * bd_v4_load(w + c) - kv * bd_v4_load(x + c));
        for (; c < C; c++) dx[c] += r * g[c] * w[c] - k * x[c];
    }
}

static void rmsb_cols(void *ctx, int b0, int b1) {
    rmsb_job *j = ctx;
    int C = j->C, c0 = b0 * RMS_COLS, c1 = b1 * RMS_COLS < C ? b1 * RMS_COLS : C;
    for (int n = 0; n < j->N; n++) {
        const float *x = j->inp + (size_t)n * C, *g = j->dout + (size_t)n * C;
        float r = j->rstd[n];
        for (int c = c0; c < c1; c++) j->dweight[c] += g[c] * x[c] * r;
    }
}

void bd_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *rstd,
                         const float *weight, int N, int C) {
    rmsb_job j = {dinp, dweight, dout, inp, rstd, weight, N, C};
    if (dinp) bd_parallel_for(N, 1 + 32768 / C, rmsb_rows, &j);
    int nb = (C + RMS_COLS - 1) / RMS_COLS;
    if (dweight) bd_parallel_for(nb, (int)(1 + 65536 / ((long long)N * RMS_COLS + 1)), rmsb_cols, &j);
}

void bd_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp, const float *rstd,
                             const float *weight, int N, int C) {
    double *dw = dweight ? calloc((size_t)C, sizeof(double)) : NULL;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
        double s = 0;  // rstd: the value the forward saved (and used)
        double r = rstd[n];
        for (int c = 0; c < C; c++) s += (double)g[c] * weight[c] * x[c];
        for (int c = 0; c < C; c++) {
            if (dinp) dinp[(size_t)n * C + c] += (float)(r * g[c] * weight[c] - x[c] * r * r * r * s / C);
            if (dw) dw[c] += (double)g[c] * x[c] * r;
        }
    }
    if (dw)
        for (int c = 0; c < C; c++) dweight[c] += (float)dw[c];
    free(dw);
}

// ---- linear ----

void bd_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int N, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias)
        for (int n = 0; n < N; n++) axpy(dbias, dout + (size_t)n * OC, 1.0f, OC);
}

void bd_linear_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC) {
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int o = 0; o < OC; o++) s += (double)dout[(size_t)n * OC + o] * weight[(size_t)o * C + c];
                dinp[(size_t)n * C + c] += (float)s;
            }
    if (dweight)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += (double)dout[(size_t)n * OC + o] * inp[(size_t)n * C + c];
                dweight[(size_t)o * C + c] += (float)s;
            }
    if (dbias)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
            dbias[o] += (float)s;
        }
}

// ---- RoPE ----

void bd_rope_backward(float *dinp, const float *dout, const float *cs, const int *pos0, int B, int T, int NH, int HS,
                      bd_rope_style style) {
    int half = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *tab = cs + (size_t)((pos0 ? pos0[b] : 0) + t) * half * 2;
            size_t row = ((size_t)b * T + t) * (size_t)NH * HS;
            for (int h = 0; h < NH; h++) {
                const float *g = dout + row + (size_t)h * HS;
                float *d = dinp + row + (size_t)h * HS;
                for (int i = 0; i < half; i++) {
                    int ia = style == BD_ROPE_INTERLEAVED ? 2 * i : i,
                        ib = style == BD_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
                    float g0 = g[ia], g1 = g[ib], c = tab[2 * i], s = tab[2 * i + 1];
                    d[ia] = g0 * c + g1 * s;
                    d[ib] = g1 * c - g0 * s;
                }
            }
        }
}

void bd_rope_backward_ref(float *dinp, const float *dout, const int *pos0, int B, int T, int NH, int HS, float theta,
                          bd_rope_style style) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < HS / 2; i++) {
                    size_t base = (((size_t)b * T + t) * NH + h) * HS;
                    int ia = style == BD_ROPE_INTERLEAVED ? 2 * i : i,
                        ib = style == BD_ROPE_INTERLEAVED ? 2 * i + 1 : i + HS / 2;
                    double a = ((double)(pos0 ? pos0[b] : 0) + t) * pow((double)theta, -2.0 * i / HS);
                    double c = (float)cos(a), s = (float)sin(a);  // the forward's float table values
                    double g0 = dout[base + ia], g1 = dout[base + ib];
                    dinp[base + ia] = (float)(g0 * c + g1 * s);
                    dinp[base + ib] = (float)(g1 * c - g0 * s);
                }
}

// ---- attention ----

#define ATT_BLOCK 64

long long bd_attention_backward_scratch_floats(int T, int threads) {
    return (long long)(threads > 1 ? threads : 1) * 2 * (T < ATT_BLOCK ? T : ATT_BLOCK) * T;
}

typedef struct {
    float *dq, *dk, *dv;
    const float *dout, *out, *lse, *q, *k, *v;
    float *scratch;
    long long slot_floats;
    int next_slot;
    int T, NH, KV, HS;
} attb_job;

// (b, KV head) pairs i0..i1-1; each owns its dk/dv rows and its G query heads' dq rows.
static void attb_chunk(void *ctx, int i0, int i1) {
    attb_job *j = ctx;
    int T = j->T, NH = j->NH, KV = j->KV, HS = j->HS, G = NH / KV;
    size_t qs = (size_t)NH * HS, ks = (size_t)KV * HS;
    float scale = 1.0f / sqrtf((float)HS);
    int slot = __atomic_fetch_add(&j->next_slot, 1, __ATOMIC_RELAXED);
    float *P = j->scratch + slot * j->slot_floats;  // (m, n) probabilities
    float *dS = P + j->slot_floats / 2;             // (m, n) dP, then dS
    for (int i = i0; i < i1; i++) {
        int b = i / KV, g = i % KV;
        const float *kb = j->k + (size_t)b * T * ks + (size_t)g * HS, *vb = j->v + (size_t)b * T * ks + (size_t)g * HS;
        float *dkb = j->dk + (size_t)b * T * ks + (size_t)g * HS, *dvb = j->dv + (size_t)b * T * ks + (size_t)g * HS;
        for (int h = g * G; h < (g + 1) * G; h++) {
            const float *qb = j->q + (size_t)b * T * qs + (size_t)h * HS;
            const float *ob = j->out + (size_t)b * T * qs + (size_t)h * HS;
            const float *gb = j->dout + (size_t)b * T * qs + (size_t)h * HS;
            float *dqb = j->dq + (size_t)b * T * qs + (size_t)h * HS;
            const float *lb = j->lse + ((size_t)b * NH + h) * T;
            for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
                int m = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, n = t0 + m;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, HS, scale, qb + t0 * qs, (int)qs, kb,
                            (int)ks, 0.0f, P, n);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, HS, 1.0f, gb + t0 * qs, (int)qs, vb, (int)ks,
                            0.0f, dS, n);
                for (int r = 0; r < m; r++) {
                    int t = t0 + r, c = 0;
                    float *pr = P + (size_t)r * n, *dr = dS + (size_t)r * n;
                    float D = dot(gb + (size_t)t * qs, ob + (size_t)t * qs, HS);
                    bd_v4f l4 = bd_v4_set1(lb[t]), D4 = bd_v4_set1(D), s4 = bd_v4_set1(scale);
                    for (; c + 4 <= t + 1; c += 4) {
                        bd_v4f p = bd_v4_exp(bd_v4_load(pr + c) - l4);
                        bd_v4_store(pr + c, p);
                        bd_v4_store(dr + c, p * (bd_v4_load(dr + c) - D4) * s4);
                    }
                    for (; c <= t; c++) {
                        pr[c] = bd_expf_fast(pr[c] - lb[t]);
                        dr[c] = pr[c] * (dr[c] - D) * scale;
                    }
                    for (; c < n; c++) pr[c] = dr[c] = 0.0f;
                }
                // dq_blk += dS k;  dk += dS^T q_blk;  dv += P^T dout_blk
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, HS, n, 1.0f, dS, n, kb, (int)ks, 1.0f,
                            dqb + t0 * qs, (int)qs);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, HS, m, 1.0f, dS, n, qb + t0 * qs, (int)qs, 1.0f,
                            dkb, (int)ks);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, HS, m, 1.0f, P, n, gb + t0 * qs, (int)qs, 1.0f,
                            dvb, (int)ks);
            }
        }
    }
}

void bd_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                           const float *q, const float *k, const float *v, float *scratch, long long scratch_floats,
                           int B, int T, int NH, int KV, int HS) {
    long long per = bd_attention_backward_scratch_floats(T, 1);
    attb_job j = {dq, dk, dv, dout, out, lse, q, k, v, scratch, per, 0, T, NH, KV, HS};
    int n = B * KV, nt = bd_num_threads();
    if (nt > scratch_floats / per) nt = (int)(scratch_floats / per);
    if (nt > n) nt = n;
    if (nt <= 1) {
        attb_chunk(&j, 0, n);
        return;
    }
    bd_parallel_for_blas(n, (n + nt - 1) / nt, attb_chunk, &j);
}

void bd_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                               const float *q, const float *k, const float *v, int B, int T, int NH, int KV, int HS) {
    int G = NH / KV;
    size_t qs = (size_t)NH * HS, ks = (size_t)KV * HS;
    double scale = 1.0 / sqrt((double)HS);
    double *p = malloc(sizeof(double) * 2 * (size_t)T);
    double *dp = p + T;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *qt = q + ((size_t)b * T + t) * qs + (size_t)h * HS;
                const float *gt = dout + ((size_t)b * T + t) * qs + (size_t)h * HS;
                size_t kbase = (size_t)b * T * ks + (size_t)(h / G) * HS;
                double mx = -INFINITY, sum = 0, D = 0;
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int e = 0; e < HS; e++) d += (double)qt[e] * k[kbase + s * ks + e];
                    p[s] = d * scale;
                    mx = p[s] > mx ? p[s] : mx;
                }
                for (int s = 0; s <= t; s++) sum += (p[s] = exp(p[s] - mx));
                for (int s = 0; s <= t; s++) p[s] /= sum;
                // D = dout . out with out recomputed in double: sum_s p_s (dout . v_s)
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int e = 0; e < HS; e++) d += (double)gt[e] * v[kbase + s * ks + e];
                    dp[s] = d;
                    D += p[s] * d;
                }
                for (int s = 0; s <= t; s++) {
                    double ds = p[s] * (dp[s] - D) * scale;
                    for (int e = 0; e < HS; e++) {
                        dq[((size_t)b * T + t) * qs + (size_t)h * HS + e] += (float)(ds * k[kbase + s * ks + e]);
                        dk[kbase + s * ks + e] += (float)(ds * qt[e]);
                        dv[kbase + s * ks + e] += (float)(p[s] * gt[e]);
                    }
                }
            }
    free(p);
}

// ---- SwiGLU ----

#define PAR_CHUNK 16384

typedef struct {
    float *dgate, *dup;
    const float *dout, *gate, *up;
    long long n;
} swb_job;

static void swb_chunk(void *ctx, int c0, int c1) {
    swb_job *j = ctx;
    long long i = (long long)c0 * PAR_CHUNK, end = (long long)c1 * PAR_CHUNK;
    if (end > j->n) end = j->n;
    for (; i + 4 <= end; i += 4) {
        bd_v4f g = bd_v4_load(j->gate + i), u = bd_v4_load(j->up + i), d = bd_v4_load(j->dout + i);
        bd_v4f s = 1.0f / (1.0f + bd_v4_exp(-g));
        bd_v4_store(j->dgate + i, bd_v4_load(j->dgate + i) + d * u * s * (1.0f + g * (1.0f - s)));
        bd_v4_store(j->dup + i, bd_v4_load(j->dup + i) + d * g * s);
    }
    for (; i < end; i++) {
        float g = j->gate[i], s = 1.0f / (1.0f + bd_expf_fast(-g));
        j->dgate[i] += j->dout[i] * j->up[i] * s * (1.0f + g * (1.0f - s));
        j->dup[i] += j->dout[i] * g * s;
    }
}

void bd_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long long n) {
    swb_job j = {dgate, dup, dout, gate, up, n};
    long long chunks = (n + PAR_CHUNK - 1) / PAR_CHUNK;
    if (chunks > 1 << 30) {  // beyond int chunk counts: a plain serial loop
        for (long long i = 0; i < n; i++) {
            float g = gate[i], s = 1.0f / (1.0f + expf(-g));
            dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
            dup[i] += dout[i] * g * s;
        }
        return;
    }
    bd_parallel_for((int)chunks, 8, swb_chunk, &j);
}

void bd_swiglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                            long long n) {
    for (long long i = 0; i < n; i++) {
        double g = gate[i], s = 1.0 / (1.0 + exp(-g));
        dgate[i] += (float)(dout[i] * (double)up[i] * s * (1.0 + g * (1.0 - s)));
        dup[i] += (float)(dout[i] * g * s);
    }
}

// ---- residual ----

void bd_residual_backward(float *da, float *db, const float *dout, long long n) {
    for (long long i0 = 0; i0 < n; i0 += 1 << 30) {
        int m = n - i0 < (1 << 30) ? (int)(n - i0) : 1 << 30;
        if (da) axpy(da + i0, dout + i0, 1.0f, m);
        if (db) axpy(db + i0, dout + i0, 1.0f, m);
    }
}

void bd_residual_backward_ref(float *da, float *db, const float *dout, long long n) {
    for (long long i = 0; i < n; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}

// ---- cross-entropy ----

typedef struct {
    float *dlogits;
    const float *logits, *lse;
    const int32_t *targets;
    float scale;
    int V;
} ceb_job;

static void ceb_rows(void *ctx, int n0, int n1) {
    ceb_job *j = ctx;
    int V = j->V;
    for (int n = n0; n < n1; n++) {
        const float *x = j->logits + (size_t)n * V;
        float *d = j->dlogits + (size_t)n * V;
        int32_t y = j->targets[n];
        if (y < 0) {
            memset(d, 0, sizeof(float) * (size_t)V);
            continue;
        }
        bd_v4f l4 = bd_v4_set1(j->lse[n]), s4 = bd_v4_set1(j->scale);
        int c = 0;
        for (; c + 4 <= V; c += 4) bd_v4_store(d + c, bd_v4_exp(bd_v4_load(x + c) - l4) * s4);
        for (; c < V; c++) d[c] = bd_expf_fast(x[c] - j->lse[n]) * j->scale;
        d[y] -= j->scale;
    }
}

double bd_crossentropy_backward(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                                float scale, int N, int V) {
    double loss = 0;  // before the logits may be overwritten; serial: independent of threads
    for (int n = 0; n < N; n++)
        if (targets[n] >= 0) loss += (double)lse[n] - logits[(size_t)n * V + targets[n]];
    ceb_job j = {dlogits, logits, lse, targets, scale, V};
    bd_parallel_for(N, 1 + 65536 / V, ceb_rows, &j);
    return loss * scale;
}

double bd_crossentropy_backward_ref(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                                    float scale, int N, int V) {
    double loss = 0;
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        int32_t y = targets[n];
        if (y < 0) {
            for (int c = 0; c < V; c++) d[c] = 0.0f;
            continue;
        }
        double mx = x[0], s = 0;
        for (int c = 1; c < V; c++) mx = x[c] > mx ? x[c] : mx;
        for (int c = 0; c < V; c++) s += exp((double)x[c] - mx);
        double l = mx + log(s), xy = x[y];  // own log-sum-exp: lse unused
        loss += l - xy;
        for (int c = 0; c < V; c++) d[c] = (float)(scale * (exp((double)x[c] - l) - (c == y)));
    }
    (void)lse;
    return loss * scale;
}
