#include "bd_greedy.h"

#include <stdlib.h>

#include "bd_forward.h"
#include "bd_progress.h"

// The first maximum of x[0..n).
static int32_t first_max(const float *x, int n) {
    int best = 0;
    for (int v = 1; v < n; v++)
        if (x[v] > x[best]) best = v;
    return best;
}

// The prompt in one batched pass (bd_forward_prefill: matrix-matrix products, the head at the
// last position only) into cache positions 0..P-1; logits (V) predict position P. Its
// activations are freed before the token-by-token steps begin.
static int prefill(bd_kv_cache *kv, const bd_model *m, const int32_t *prompt, int P, float *logits, char *why,
                   size_t ws) {
    bd_fwd_state s;
    if (bd_fwd_state_init(&s, &m->cfg, 1, P, false) < 0)
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for the prompt's activations: %s", s.why);
    int rc = bd_forward_prefill(&s, kv, m, prompt, 1, P, logits);
    if (rc < 0) bd_fail(why, ws, rc, "the prompt's forward pass failed: %s", s.why);
    bd_fwd_state_free(&s);
    return rc;
}

int bd_greedy(const bd_model *m, const int32_t *prompt, int n_prompt, int n_new, int32_t eos, bd_greedy_emit_fn emit,
              void *ctx, bd_greedy_stats *st, char *why, size_t ws) {
    int max_T = m->cfg.max_seq, V = m->cfg.vocab;
    if (st) *st = (bd_greedy_stats){0};
    if (n_prompt < 1 || n_prompt >= max_T)
        return bd_fail(why, ws, BD_ERR_ARG, "the prompt is %d tokens, the model's context is %d", n_prompt, max_T);
    int rc = BD_OK;
    int32_t prev = -1;
    for (int pos = 0; pos < n_prompt; pos++) {
        if ((rc = emit(ctx, prev, prompt[pos])) < 0) return rc;
        prev = prompt[pos];
    }
    // Positions 0..end-1 are handed over; the last one is never fed, so the cache holds end-1
    // (sized for the run, not for the model's context, which may be 2^31).
    int end = (int64_t)n_prompt + n_new < max_T ? n_prompt + n_new : max_T;
    if (end == n_prompt) return BD_OK;  // nothing new asked for
    bd_kv_cache kv;
    if (bd_kv_cache_init(&kv, &m->cfg, 1, end - 1) < 0)
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for the KV cache: %s", kv.why);
    float *logits = malloc(sizeof(float) * (size_t)V);
    if (!logits) rc = bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    double t0 = bd_now();
    if (rc == BD_OK) rc = prefill(&kv, m, prompt, n_prompt, logits, why, ws);
    if (st) st->prefill_seconds = bd_now() - t0, st->prefill_tokens = n_prompt;
    for (int pos = n_prompt; rc == BD_OK && pos < end; pos++) {
        int32_t cur = first_max(logits, V);
        if (cur == eos) break;
        if ((rc = emit(ctx, prev, cur)) < 0 || pos + 1 == end) break;
        prev = cur;
        if ((rc = bd_forward_step(&kv, m, &cur, &pos, 1, logits)) < 0)
            bd_fail(why, ws, rc, "forward step failed at position %d: %s", pos, kv.why);
    }
    free(logits);
    bd_kv_cache_free(&kv);
    return rc;
}
