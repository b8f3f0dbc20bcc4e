// Perplexity of a model on a sequence of ids: non-overlapping windows of T tokens with every
// position scored (the GPTQ/BitDistiller protocol), or sliding windows that advance by a
// stride and score only the positions not scored before. bd-eval reports it; bd-qat --eval
// runs it during training. Dimension key: n ids, T window, B windows per forward pass.
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
} bd_ppl_result;

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

#endif
