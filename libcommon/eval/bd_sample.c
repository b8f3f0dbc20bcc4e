// Sampling: xoshiro256** streams, temperature / top-k / top-p by inverse CDF, top-K
// log-probabilities. Dimension key: V vocabulary, K kept tokens.
//
// Both the fast path and the _ref twin define the kept set the same way: sort tokens by
// (probability desc, id asc), take the first k, then the shortest prefix whose running sum
// (in that order) reaches top_p times the mass of the k. The fast path only avoids sorting
// everything: a heap for top-k, a probability floor for top-p that provably keeps every
// token of the nucleus.
#include "bd_sample.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

// ---- RNG ----

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void bd_rng_seed(bd_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0x9E3779B97F4A7C15ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t bd_rng_next(bd_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double bd_rng_uniform(bd_rng *r) { return (double)(bd_rng_next(r) >> 11) * 0x1.0p-53; }

// ---- settings and scratch ----

int bd_sampling_check(const bd_sampling *s) {
    if (!(s->temperature >= 0 && isfinite(s->temperature)) || s->top_k < 0 || !(s->top_p > 0 && s->top_p <= 1))
        return BD_ERR_ARG;
    return BD_OK;
}

size_t bd_sampler_bytes(int V) { return (sizeof(double) + sizeof(bd_prob_id)) * (size_t)V; }

int bd_sampler_init(bd_sampler *sp, int V) {
    memset(sp, 0, sizeof *sp);
    if (V <= 0) return BD_ERR_ARG;
    sp->p = malloc(sizeof(double) * (size_t)V);
    sp->cand = malloc(sizeof(bd_prob_id) * (size_t)V);
    if (!sp->p || !sp->cand) {
        bd_sampler_free(sp);
        return BD_ERR_NOMEM;
    }
    sp->V = V;
    return BD_OK;
}

void bd_sampler_free(bd_sampler *sp) {
    free(sp->p);
    free(sp->cand);
    memset(sp, 0, sizeof *sp);
}

// ---- shared pieces ----

// a comes before b in the kept order: more probable, or as probable with a lower id.
static inline int before(bd_prob_id a, bd_prob_id b) { return a.p > b.p || (a.p == b.p && a.id < b.id); }

static int cmp_before(const void *x, const void *y) {
    bd_prob_id a = *(const bd_prob_id *)x, b = *(const bd_prob_id *)y;
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

// First maximum of x (V); BD_ERR_VALUE on NaN.
static int argmax_scalar(const float *x, int V) {
    int best = 0;
    for (int v = 0; v < V; v++) {
        if (isnan(x[v])) return BD_ERR_VALUE;
        if (x[v] > x[best]) best = v;
    }
    return best;
}

// ---- exp over a vocabulary ----
// At temperature > 0 every step takes exp of V logits; libm's exp, one call per logit, was 8-9%
// of a ternary model's generation step (V = 32000). The AVX-512 path computes 8 at a time:
// k = round(x / ln 2), r = x - k ln 2 (ln 2 in two parts, so r is exact to about 1e-19), exp(r)
// by its Taylor polynomial of degree 13 (|r| <= 0.35: the first term left out is below 5e-18),
// times 2^k by vscalefpd. Within 2 ulp of libm's (tests/unit/test_sample.c); arguments below
// -700, where results leave the normal range, take libm's exp.

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "bd_packed.h"  // bd_pk_simd: the run-time CPU check (and BD_SIMD) the kernels use
#define EXP_X86 1

__attribute__((target("avx512f"))) static void exp_shifted_avx512(const float *logits, int V, double mx,
                                                                  double temperature, double *p) {
    const __m512d vmx = _mm512_set1_pd(mx), vt = _mm512_set1_pd(temperature),
                  log2e = _mm512_set1_pd(1.4426950408889634), ln2hi = _mm512_set1_pd(6.93147180369123816490e-01),
                  ln2lo = _mm512_set1_pd(1.90821492927058770002e-10);
    static const double inv_fact[14] = {
            1.0,        1.0,         1.0 / 2,      1.0 / 6,       1.0 / 24,       1.0 / 120,       1.0 / 720,
            1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
    int v = 0;
    for (; v + 8 <= V; v += 8) {
        __m512d x = _mm512_div_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(logits + v)), vmx), vt);
        __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512d r = _mm512_fnmadd_pd(k, ln2lo, _mm512_fnmadd_pd(k, ln2hi, x));
        __m512d y = _mm512_set1_pd(inv_fact[13]);
        for (int i = 12; i >= 0; i--) y = _mm512_fmadd_pd(y, r, _mm512_set1_pd(inv_fact[i]));
        _mm512_storeu_pd(p + v, _mm512_scalef_pd(y, k));
        __mmask8 low = _mm512_cmp_pd_mask(x, _mm512_set1_pd(-700.0), _CMP_LT_OQ);
        for (int i = 0; low; i++, low >>= 1)
            if (low & 1) p[v + i] = exp(((double)logits[v + i] - mx) / temperature);
    }
    for (; v < V; v++) p[v] = exp(((double)logits[v] - mx) / temperature);
}

// The same as argmax_scalar: the maximum (and whether a NaN is present) 16 at a time, then its
// first index; every step of generation takes it over V logits.
__attribute__((target("avx512f"))) static int argmax_avx512(const float *x, int V) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    int v = 0;
    for (; v + 16 <= V; v += 16) {
        __m512 a = _mm512_loadu_ps(x + v);
        nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
        mx = _mm512_max_ps(mx, a);
    }
    float m = _mm512_reduce_max_ps(mx);
    for (int i = v; i < V; i++) {
        if (isnan(x[i])) return BD_ERR_VALUE;
        m = x[i] > m ? x[i] : m;
    }
    if (nan) return BD_ERR_VALUE;
    __m512 vm = _mm512_set1_ps(m);
    for (v = 0; v + 16 <= V; v += 16) {
        __mmask16 eq = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + v), vm, _CMP_EQ_OQ);
        if (eq) return v + __builtin_ctz(eq);
    }
    for (; v < V; v++)
        if (x[v] == m) return v;
    return 0;  // not reached
}
#endif

static int argmax(const float *x, int V) {
#ifdef EXP_X86
    if (bd_pk_simd() == BD_SIMD_AVX512) return argmax_avx512(x, V);
#endif
    return argmax_scalar(x, V);
}

void bd_exp_shifted(const float *logits, int V, double mx, double temperature, double *p) {
#ifdef EXP_X86
    if (bd_pk_simd() == BD_SIMD_AVX512) {
        exp_shifted_avx512(logits, V, mx, temperature, p);
        return;
    }
#endif
    for (int v = 0; v < V; v++) p[v] = exp(((double)logits[v] - mx) / temperature);
}

// p[v] = exp((l[v] - max) / temperature). BD_ERR_VALUE on NaN or if every logit is -inf.
static int unnormalized(const float *logits, int V, double temperature, double *p) {
    int a = argmax(logits, V);
    if (a < 0) return a;
    double mx = logits[a];
    if (!isfinite(mx) && mx < 0) return BD_ERR_VALUE;
    if (isinf(mx)) {  // +inf logits: uniform over them
        for (int v = 0; v < V; v++) p[v] = logits[v] == logits[a] ? 1.0 : 0.0;
        return BD_OK;
    }
    bd_exp_shifted(logits, V, mx, temperature, p);
    return BD_OK;
}

// Number of leading entries of c (n, in kept order) that top-p keeps: the shortest prefix
// whose running sum reaches top_p * mass; 0 if none does (rounding).
static int nucleus_len(const bd_prob_id *c, int n, double top_p, double mass) {
    double cum = 0, want = top_p * mass;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (cum >= want) return i + 1;
    }
    return 0;
}

// Inverse CDF over ids in ascending order among the kept ones (all, or those not after
// the cut token in kept order).
static int walk(const double *p, int V, const bd_prob_id *cut, double u) {
    double total = 0;
    for (int v = 0; v < V; v++)
        if (!cut || before((bd_prob_id){p[v], v}, *cut) || v == cut->id) total += p[v];
    double target = u * total, cum = 0;
    int last = -1;
    for (int v = 0; v < V; v++) {
        if (cut && !(before((bd_prob_id){p[v], v}, *cut) || v == cut->id)) continue;
        if (p[v] <= 0) continue;
        cum += p[v];
        last = v;
        if (target < cum) return v;
    }
    return last >= 0 ? last : BD_ERR_VALUE;  // u * total rounded up to total
}

// ---- heap of the k best (root = the one that comes last in kept order) ----

static void sift_down(bd_prob_id *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && before(h[w], h[l])) w = l;
        if (r < n && before(h[w], h[r])) w = r;
        if (w == i) return;
        bd_prob_id t = h[i];
        h[i] = h[w], h[w] = t;
        i = w;
    }
}

static void sift_up(bd_prob_id *h, int i) {
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!before(h[parent], h[i])) return;
        bd_prob_id t = h[i];
        h[i] = h[parent], h[parent] = t;
        i = parent;
    }
}

// The k first of (x[v], v) in kept order, sorted, into out (k); x is xd (double) or xf.
static void top_k_sorted(const double *xd, const float *xf, int V, int k, bd_prob_id *out) {
    int n = 0;
    for (int v = 0; v < V; v++) {
        bd_prob_id e = {xd ? xd[v] : (double)xf[v], v};
        if (n < k) {
            out[n] = e;
            sift_up(out, n++);
        } else if (before(e, out[0])) {
            out[0] = e;
            sift_down(out, k, 0);
        }
    }
    qsort(out, (size_t)k, sizeof *out, cmp_before);
}

// ---- sampling ----

int bd_sample(bd_sampler *sp, const bd_sampling *s, const float *logits, bd_rng *r) {
    int V = sp->V;
    if (s->temperature == 0) return argmax(logits, V);
    double *p = sp->p;
    int rc = unnormalized(logits, V, s->temperature, p);
    if (rc < 0) return rc;
    bool use_k = s->top_k > 0 && s->top_k < V, use_p = s->top_p < 1;
    double u = bd_rng_uniform(r);
    if (!use_k && !use_p) return walk(p, V, NULL, u);
    bd_prob_id *c = sp->cand;
    int n;
    if (use_k) {
        top_k_sorted(p, NULL, V, s->top_k, c);
        n = s->top_k;
        if (use_p) {
            double mass = 0;
            for (int i = 0; i < n; i++) mass += c[i].p;
            int m = nucleus_len(c, n, s->top_p, mass);
            n = m > 0 ? m : n;
        }
    } else {
        // A token below floor = (1 - top_p) / (V - 1) of the mass cannot be in the nucleus
        // when at least one token is above it: all of them together weigh less than 1 - top_p.
        double mass = 0;
        for (int v = 0; v < V; v++) mass += p[v];
        double floor = (1 - s->top_p) / (double)(V > 1 ? V - 1 : 1) * mass;
        n = 0;
        for (int v = 0; v < V; v++)
            if (p[v] >= floor) c[n++] = (bd_prob_id){p[v], v};
        qsort(c, (size_t)n, sizeof *c, cmp_before);
        int m = nucleus_len(c, n, s->top_p, mass);
        if (m == 0) {  // not reached among the candidates (only through rounding): all tokens
            n = 0;
            for (int v = 0; v < V; v++) c[n++] = (bd_prob_id){p[v], v};
            qsort(c, (size_t)n, sizeof *c, cmp_before);
            m = nucleus_len(c, n, s->top_p, mass);
        }
        n = m > 0 ? m : n;
    }
    return walk(p, V, &c[n - 1], u);
}

// Unnormalized p (V) and the last kept token in kept order (*cut; id -1: all kept), by a
// full sort of all V tokens.
static int ref_kept(const bd_sampling *s, const float *logits, int V, double *p, bd_prob_id *cut) {
    int rc = unnormalized(logits, V, s->temperature, p);
    if (rc < 0) return rc;
    cut->id = -1;
    bool use_k = s->top_k > 0 && s->top_k < V, use_p = s->top_p < 1;
    if (!use_k && !use_p) return BD_OK;
    bd_prob_id *c = malloc(sizeof *c * (size_t)V);
    if (!c) return BD_ERR_NOMEM;
    for (int v = 0; v < V; v++) c[v] = (bd_prob_id){p[v], v};
    qsort(c, (size_t)V, sizeof *c, cmp_before);
    int n = use_k ? s->top_k : V;
    if (use_p) {
        double mass = 0;
        if (use_k)
            for (int i = 0; i < n; i++) mass += c[i].p;
        else
            for (int v = 0; v < V; v++) mass += p[v];  // in id order, as bd_sample
        int m = nucleus_len(c, n, s->top_p, mass);
        n = m > 0 ? m : n;
    }
    *cut = c[n - 1];
    free(c);
    return BD_OK;
}

int bd_sample_ref(const bd_sampling *s, const float *logits, int V, bd_rng *r) {
    if (s->temperature == 0) return argmax(logits, V);
    double *p = malloc(sizeof *p * (size_t)V);
    if (!p) return BD_ERR_NOMEM;
    bd_prob_id cut;
    int rc = ref_kept(s, logits, V, p, &cut);
    if (rc >= 0) rc = walk(p, V, cut.id >= 0 ? &cut : NULL, bd_rng_uniform(r));
    free(p);
    return rc;
}

int bd_sampling_dist(const bd_sampling *s, const float *logits, int V, double *out) {
    if (s->temperature == 0) {
        int a = argmax(logits, V);
        if (a < 0) return a;
        for (int v = 0; v < V; v++) out[v] = v == a;
        return BD_OK;
    }
    bd_prob_id cut;
    int rc = ref_kept(s, logits, V, out, &cut);
    if (rc < 0) return rc;
    double total = 0;
    for (int v = 0; v < V; v++) {
        if (cut.id >= 0 && !(before((bd_prob_id){out[v], v}, cut) || v == cut.id)) out[v] = 0;
        total += out[v];
    }
    for (int v = 0; v < V; v++) out[v] /= total;
    return BD_OK;
}

int bd_topk_logprobs(const float *logits, int V, int K, int32_t *ids, float *logprobs) {
    if (K <= 0 || K > V) return BD_ERR_ARG;
    int a = argmax(logits, V);
    if (a < 0) return a;
    double mx = logits[a], sum = 0;
    if (!isfinite(mx)) return BD_ERR_VALUE;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    double lse = mx + log(sum);
    bd_prob_id heap[64], *h = K <= 64 ? heap : malloc(sizeof *h * (size_t)K);
    if (!h) return BD_ERR_NOMEM;
    top_k_sorted(NULL, logits, V, K, h);
    for (int i = 0; i < K; i++) {
        ids[i] = h[i].id;
        logprobs[i] = (float)(h[i].p - lse);
    }
    if (h != heap) free(h);
    return BD_OK;
}
