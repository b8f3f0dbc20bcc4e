#include "bd_greedy.h"

#include <stdlib.h>

#include "bd_forward.h"

int bd_greedy(const bd_model *m, const int32_t *prompt, int n_prompt, int n_new, int32_t eos, bd_greedy_emit_fn emit,
              void *ctx, char *why, size_t ws) {
    int max_T = m->cfg.max_seq, V = m->cfg.vocab;
    if (n_prompt < 1 || n_prompt >= max_T)
        return bd_fail(why, ws, BD_ERR_ARG, "the prompt is %d tokens, the model's context is %d", n_prompt, max_T);
    // Positions 0..end-1 are handed over; the last one is never fed, so the cache holds end-1
    // (sized for the run, not for the model's context, which may be 2^31).
    int end = (int64_t)n_prompt + n_new < max_T ? n_prompt + n_new : max_T;
    bd_kv_cache kv;
    if (bd_kv_cache_init(&kv, &m->cfg, 1, end > 1 ? end - 1 : 1) < 0)
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for the KV cache: %s", kv.why);
    float *logits = malloc(sizeof(float) * (size_t)V);
    int rc = logits ? BD_OK : bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    int32_t prev = -1, cur = 0;
    for (int pos = 0; rc == BD_OK && pos < end; pos++) {
        cur = pos < n_prompt ? prompt[pos] : cur;
        if (pos >= n_prompt && cur == eos) break;
        if ((rc = emit(ctx, prev, cur)) < 0 || pos + 1 == end) break;
        prev = cur;
        if ((rc = bd_forward_step(&kv, m, &cur, &pos, 1, logits)) < 0) {
            bd_fail(why, ws, rc, "forward step failed at position %d: %s", pos, kv.why);
            break;
        }
        int best = 0;  // greedy: the first maximum
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        cur = best;
    }
    free(logits);
    bd_kv_cache_free(&kv);
    return rc;
}
