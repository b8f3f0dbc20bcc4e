// Batched generation through the KV cache with continuous batching: B sequences run
// together, one token each per bd_forward_step (prompt tokens are fed the same way, so
// prompts of any length mix); sample i runs in slot i mod B, which takes the slot's next
// sample as soon as sample i ends. Sample i draws from its own RNG stream (seed, i). Its
// tokens and logits are bit-for-bit reproducible for the same n, B and thread count,
// whatever `first` is (so a stopped run can be continued exactly) and whichever shard runs
// it (a shard keeps the whole run's B and rows: with N shards only the slots b = k mod
// gcd(B, N) are the shard's, so a B coprime with N keeps them all busy); across batch sizes
// or thread counts they are the same (with OpenBLAS's sgemm, without AVX-512: except in rare
// cases where last-bit differences of the logits move a draw across a boundary). Finished
// samples are handed over in index order.
// Dimension key: V vocabulary, P prompt length, K new tokens, TK top-K of the logits.
#ifndef BD_GENERATE_H
#define BD_GENERATE_H


#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "bd_error.h"
#include "bd_model.h"
#include "bd_sample.h"

typedef struct {
    const int32_t *ids;  // (P), 1 <= P <= max_seq - 1
    int n;
} bd_gen_prompt;

typedef enum {
    BD_GEN_EOS = 0,  // a stop token was generated (it ends the completion)
    BD_GEN_LENGTH,   // max_new tokens generated
    BD_GEN_CONTEXT,  // prompt + completion filled the model's context (max_seq)
} bd_gen_end;
const char *bd_gen_end_name(bd_gen_end e);  // "eos", "length", "context"

#define BD_GEN_MAX_STOP 8
#define BD_GEN_MAX_TOPK 64

typedef struct {
    bd_sampling sampling;
    int max_new;    // K >= 1
    int batch;      // B >= 1 sequences at once
    bool unpadded;  // step exactly B rows: faster at small B, but the samples
                    // may then depend on B (see bd_gen_row_multiple)
    uint64_t seed;
    int32_t stop_ids[BD_GEN_MAX_STOP];  // generating one of these ends a sample
    int n_stop;
    int logits_top_k;             // TK in 0..BD_GEN_MAX_TOPK: keep the top-TK log-probs
    volatile sig_atomic_t *stop;  // if set non-zero (e.g. by a signal handler): stop
                                  // after the current step; may be NULL
    int64_t shard_k, shard_n;     // shard_n > 0: the run's j-th sample is sample shard_k + j*shard_n
                                  // (bd_shard), with that sample's prompt and RNG stream
} bd_gen_opts;

typedef struct {
    int64_t index;          // the sample's number (its RNG stream)
    const int32_t *prompt;  // (P)
    int prompt_len;
    const int32_t *completion;  // (K) ids, the stop token included
    int n_new;
    bd_gen_end end;
    const int32_t *top_ids;     // (K, TK) or NULL: the TK most probable ids at each position
    const float *top_logprobs;  // (K, TK) their log-softmax at temperature 1
} bd_gen_sample;

typedef struct {
    int64_t samples;        // handed over
    int64_t new_tokens;     // generated (all sequences, handed over or not)
    int64_t prompt_tokens;  // fed from prompts
    int64_t steps;          // bd_forward_step calls
    double seconds;
} bd_gen_stats;

// Receives each finished sample in index order; a negative return stops bd_generate,
// which returns that code.
typedef int (*bd_gen_emit_fn)(void *ctx, const bd_gen_sample *s, const bd_gen_stats *st);

// Generates samples 0 .. n-1 (with o->shard_n > 0 only those of the shard: the run's j-th
// sample is shard_k + j*shard_n, else sample j) from the run's first one on; sample i
// continues prompts[i % n_prompts]. Every sample handed over is complete. Stops early (BD_OK)
// when *o->stop becomes non-zero: the run's samples first .. first+stats->samples-1 were
// handed over, later ones are discarded (a later run from first+stats->samples reproduces
// them). Errors: BD_ERR_ARG (options, a prompt that
// is empty, too long or holds an id outside the vocabulary), BD_ERR_NOMEM, BD_ERR_VALUE
// (NaN logits), or the callback's code; the reason in why (the callback's own errors it
// reports itself). stats may be NULL.
// Bytes bd_generate allocates for a batch of B sequences (B <= n) of at most max_T positions fed
// (the longest prompt + max_new - 1, at most the context): the KV cache, the logits, the samplers
// and each slot's output. For memory plans.
// Rows per generation step are rounded up to a multiple of this (see bd_generate): 8 where the
// kernels in use compute every row of 8 or more the same way whatever their number and place
// (bd's tiles, AVX-512), 32 where OpenBLAS's sgemm does the products.
int bd_gen_row_multiple(void);
size_t bd_generate_bytes(const bd_config *c, int B, int max_T, const bd_gen_opts *o);
BD_MUST_CHECK int bd_generate(const bd_model *m, const bd_gen_prompt *prompts, int n_prompts, int64_t first, int64_t n,
                              const bd_gen_opts *o, bd_gen_emit_fn emit, void *ctx, bd_gen_stats *stats, char *why,
                              size_t why_size);

#endif
