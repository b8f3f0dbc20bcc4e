// Greedy generation of one sequence through the KV cache, token by token, for a quick look
// at what a model says (bd-eval --max-new). Sampling and batches: bd_generate.h.
#ifndef BD_GREEDY_H
#define BD_GREEDY_H

#include <stdint.h>

#include "bd_model.h"

// Receives every token of the sequence in order, the prompt's first: cur, and the one before
// it (prev, -1 for the first). A negative return stops bd_greedy, which returns it.
typedef int (*bd_greedy_emit_fn)(void *ctx, int32_t prev, int32_t cur);

// What a run took: the prompt's batched pass (0 if none ran).
typedef struct {
    double prefill_seconds;
    int prefill_tokens;
} bd_greedy_stats;

// Hands over prompt (n_prompt >= 1 ids, fewer than the model's context), reads it in one
// batched pass (the head at its last position only), then appends the most probable token
// (the first maximum) until n_new are made, eos is made (not handed over), or the context is
// full. st (or NULL) gets the prompt's time. Errors: BD_ERR_ARG (prompt), BD_ERR_NOMEM, the
// forward pass's, emit's.
BD_MUST_CHECK int bd_greedy(const bd_model *m, const int32_t *prompt, int n_prompt, int n_new, int32_t eos,
                            bd_greedy_emit_fn emit, void *ctx, bd_greedy_stats *st, char *why, size_t why_size);

#endif
