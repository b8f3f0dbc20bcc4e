// Perplexity of a model on a sequence of ids: non-overlapping windows of T tokens with every
// position scored (the GPTQ/BitDistiller protocol), or sliding windows that advance by a
// stride and score only the positions not scored before. bd-eval reports it; bd-qat --eval
// runs it during training. A shard of the run (bd-eval --shard) does only some of its
// forward passes, each exactly as the whole run does it, and hands over what each adds, so
// that the whole run's sum is rebuilt exactly. Dimension key: n ids, T window, B windows per
// forward pass.
#ifndef BD_PPL_H
#define BD_PPL_H

#include <stddef.h>
#include <stdint.h>

#include "bd_model.h"

typedef struct {
    double nll_sum;  // summed negative log-likelihood (nats) of the scored positions
    long long scored;
    int windows;
    long long dropped;  // tail ids shorter than a window (non-overlapping windows only)
    int64_t units;      // forward passes of the whole run (a shard's included or not)
} bd_ppl_result;

// One forward pass ("unit") of the run: unit u scores windows [u*B, u*B + windows), or
// sliding window u; nll is exactly the double it adds to nll_sum (the run adds its units in
// order u = 0, 1, ..., starting from 0).
typedef struct {
    int64_t index;
    int windows;
    long long scored;
    double nll;
} bd_ppl_unit;

// Only the units u with u % n == k (n > 0), each handed to fn (may be NULL; a negative
// return stops bd_ppl_shard with that code).
typedef struct {
    int64_t k, n;
    int (*fn)(void *ctx, const bd_ppl_unit *u);
    void *ctx;
} bd_ppl_part;

// Optional progress: start once with the total and its unit ("windows" or "tokens"), then
// update with the amount done.
typedef struct {
    void (*start)(void *ctx, uint64_t total, const char *unit);
    void (*update)(void *ctx, uint64_t done);
    void *ctx;
} bd_ppl_progress;

// Scores ids in windows of T tokens (2 <= T <= n), B at a time: the tail shorter than a
// window is dropped (res->dropped); stride > 0: sliding windows one at a time, the last one
// ending at the last id. The mean NLL is res->nll_sum / res->scored. Errors: BD_ERR_ARG (fewer
// than 2 ids, or than T), BD_ERR_NOMEM, and those of bd_forward_nll.
BD_MUST_CHECK int bd_ppl(const bd_model *m, const int32_t *ids, size_t n, int T, int stride, int B,
                         const bd_ppl_progress *progress, bd_ppl_result *res, char *why, size_t why_size);
// The same for a shard's units only (shard NULL: all): res sums those (its windows, scored,
// nll_sum); res->dropped and res->units are the whole run's.
BD_MUST_CHECK int bd_ppl_shard(const bd_model *m, const int32_t *ids, size_t n, int T, int stride, int B,
                               const bd_ppl_part *shard, const bd_ppl_progress *progress, bd_ppl_result *res, char *why,
                               size_t why_size);

#endif
