#include "bd_ppl.h"

#include <stdbool.h>
#include <stdlib.h>

#include "bd_forward.h"

static void start(const bd_ppl_progress *p, uint64_t total, const char *unit) {
    if (p && p->start) p->start(p->ctx, total, unit);
}
static void update(const bd_ppl_progress *p, uint64_t done) {
    if (p && p->update) p->update(p->ctx, done);
}

// Whether unit u is the shard's.
static bool mine(const bd_ppl_part *sh, int64_t u) { return !sh || sh->n <= 0 || u % sh->n == sh->k; }

// Adds a unit to res (the one place a run's sum is made) and hands it over.
static int add_unit(const bd_ppl_part *sh, bd_ppl_result *res, int64_t u, int windows, int k, double mean) {
    bd_ppl_unit unit = {u, windows, k, mean * k};
    res->nll_sum += unit.nll;
    res->scored += k;
    res->windows += windows;
    return sh && sh->fn ? sh->fn(sh->ctx, &unit) : BD_OK;
}

// Non-overlapping windows, B per forward pass: every position of a window scored.
static int windows(bd_fwd_state *st, const bd_model *m, const int32_t *ids, size_t n, int T, int B,
                   const bd_ppl_part *sh, const bd_ppl_progress *p, bd_ppl_result *res, char *why, size_t ws) {
    int nwin = (int)(n / (size_t)T);
    res->dropped = (long long)(n - (size_t)nwin * T);
    res->units = (nwin + B - 1) / B;
    uint64_t total = 0, done = 0;
    for (int w = 0; w < nwin; w += B)
        if (mine(sh, w / B)) total += (uint64_t)(nwin - w < B ? nwin - w : B);
    start(p, total, "windows");
    for (int w = 0; w < nwin; w += B) {
        int b = nwin - w < B ? nwin - w : B;
        if (!mine(sh, w / B)) continue;
        double mean;
        int k = bd_forward_nll(st, m, ids + (size_t)w * T, NULL, b, T, &mean);
        if (k < 0) return bd_fail(why, ws, k, "forward pass failed: %s", st->why);
        int rc = add_unit(sh, res, w / B, b, k, mean);
        if (rc < 0) return rc;
        update(p, done += (uint64_t)b);
    }
    return BD_OK;
}

// Sliding windows: window k covers [end - T, end) with end advancing by stride; only targets
// after the previous window's end are scored.
static int sliding(bd_fwd_state *st, const bd_model *m, const int32_t *ids, size_t n, int T, int stride,
                   const bd_ppl_part *sh, const bd_ppl_progress *p, bd_ppl_result *res, char *why, size_t ws) {
    int32_t *targets = malloc(sizeof(int32_t) * (size_t)T);
    if (!targets) return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    size_t prev_end = 1;  // position 0 has no context: never a target
    int rc = BD_OK;
    int64_t u = 0;
    start(p, (uint64_t)n, "tokens");
    for (size_t end = (size_t)T < n ? (size_t)T : n;; end = end + (size_t)stride < n ? end + (size_t)stride : n, u++) {
        size_t begin = end - (size_t)T;
        if (mine(sh, u)) {
            for (int t = 0; t < T; t++) {
                size_t target_pos = begin + (size_t)t + 1;  // position t predicts t+1
                targets[t] = target_pos < end && target_pos >= prev_end ? ids[target_pos] : -1;
            }
            double mean;
            int k = bd_forward_nll(st, m, ids + begin, targets, 1, T, &mean);
            if (k < 0) {
                rc = bd_fail(why, ws, k, "forward pass failed: %s", st->why);
                break;
            }
            if ((rc = add_unit(sh, res, u, 1, k, mean)) < 0) break;
            update(p, end);
        }
        prev_end = end;
        if (end == n) break;
    }
    res->units = u + 1;
    free(targets);
    return rc;
}

int bd_ppl_shard(const bd_model *m, const int32_t *ids, size_t n, int T, int stride, int B, const bd_ppl_part *sh,
                 const bd_ppl_progress *p, bd_ppl_result *res, char *why, size_t ws) {
    *res = (bd_ppl_result){0};
    if (n < 2) return bd_fail(why, ws, BD_ERR_ARG, "need at least 2 tokens to score, got %zu", n);
    // A window is T tokens or nothing: fewer ids than that would score a window of another length.
    if ((size_t)T > n || T < 2) return bd_fail(why, ws, BD_ERR_ARG, "%zu tokens, fewer than one window of %d", n, T);
    if (sh && sh->n > 0 && (sh->k < 0 || sh->k >= sh->n)) return bd_fail(why, ws, BD_ERR_ARG, "bad shard");
    if (stride > 0) B = 1;
    bd_fwd_state st;
    if (bd_fwd_state_init(&st, &m->cfg, B, T, false) < 0)
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for B=%d T=%d activations: %s", B, T, st.why);
    int rc = stride > 0 ? sliding(&st, m, ids, n, T, stride, sh, p, res, why, ws)
                        : windows(&st, m, ids, n, T, B, sh, p, res, why, ws);
    bd_fwd_state_free(&st);
    return rc;
}

int bd_ppl(const bd_model *m, const int32_t *ids, size_t n, int T, int stride, int B, const bd_ppl_progress *p,
           bd_ppl_result *res, char *why, size_t ws) {
    return bd_ppl_shard(m, ids, n, T, stride, B, NULL, p, res, why, ws);
}
