// Token sampling for generation: a small seedable RNG with one independent stream per
// sample, temperature / top-k / top-p sampling in double precision by inverse CDF, and the
// top-K log-probabilities of a logits row. V is the vocabulary size.
//
// The sampled id depends only on the logits row and the RNG state, so a sequence draws the
// same tokens whatever else is in its batch. The draw walks the kept tokens in ascending
// id order: a tiny change of the logits moves the CDF boundaries by about as much, so the
// choice changes only when the uniform number falls within that distance of a boundary.
#ifndef BD_SAMPLE_H
#define BD_SAMPLE_H

#include <stdint.h>

#include "bd_error.h"

// xoshiro256** state.
typedef struct {
    uint64_t s[4];
} bd_rng;

// The state of stream `stream` (e.g. the sample number) under `seed`: splitmix64 of
// seed ^ (stream * 0x9E3779B97F4A7C15) fills the four words.
void bd_rng_seed(bd_rng *r, uint64_t seed, uint64_t stream);
uint64_t bd_rng_next(bd_rng *r);
// Uniform in [0, 1) with 53 random bits.
double bd_rng_uniform(bd_rng *r);

typedef struct {
    double temperature;  // 0: greedy (argmax, the first maximum); else logits / temperature
    int top_k;           // keep the k most probable tokens; 0: all
    double top_p;        // then the smallest most-probable set with mass >= top_p; 1: all
} bd_sampling;

// Checks the settings: temperature >= 0 and finite, top_k >= 0, 0 < top_p <= 1.
BD_MUST_CHECK int bd_sampling_check(const bd_sampling *s);

// A token and its (unnormalized) probability, for sorting candidates.
typedef struct {
    double p;
    int32_t id;
} bd_prob_id;

// Scratch for one sequence's draws (one per thread when sampling in parallel).
typedef struct {
    int V;
    double *p;         // (V) unnormalized probabilities exp((l - max) / temperature)
    bd_prob_id *cand;  // (V) candidates of the top-k / top-p sets
} bd_sampler;

BD_MUST_CHECK int bd_sampler_init(bd_sampler *sp, int V);
size_t bd_sampler_bytes(int V);  // what bd_sampler_init allocates
void bd_sampler_free(bd_sampler *sp);

// Draws a token from logits (V): with temperature 0 the first maximum (no random number
// used), else one bd_rng_uniform draw. Ties in the top-k / top-p order go to the lower id.
// Returns the id (>= 0) or BD_ERR_VALUE if a logit is NaN (or all are -inf).
BD_MUST_CHECK int bd_sample(bd_sampler *sp, const bd_sampling *s, const float *logits, bd_rng *r);

// Reference twin of bd_sample: the full filtered distribution by a complete sort
// (bd_sampling_dist), then the same inverse-CDF walk with u = bd_rng_uniform(r).
BD_MUST_CHECK int bd_sample_ref(const bd_sampling *s, const float *logits, int V, bd_rng *r);

// The distribution bd_sample draws from: out (V) gets the probability of every id after
// temperature, top-k and top-p (zeros outside the kept set, summing to 1; temperature 0:
// 1 at the first maximum). Plain implementation (full sort), for tests and the _ref twin.
BD_MUST_CHECK int bd_sampling_dist(const bd_sampling *s, const float *logits, int V, double *out);

// The K largest logits of a row (V) as log-probabilities at temperature 1 (log-softmax in
// double), in decreasing order, ties to the lower id: ids (K), logprobs (K). K <= V.
BD_MUST_CHECK int bd_topk_logprobs(const float *logits, int V, int K, int32_t *ids, float *logprobs);

// p[v] = exp((logits[v] - mx) / temperature) for v < V (AVX-512: within 2 ulp of libm's exp).
void bd_exp_shifted(const float *logits, int V, double mx, double temperature, double *p);

#endif
