// Forward passes of the decoder, each a run of bd_block.h's one walk: batched (with the
// activation arena), NLL, reference (the _ref kernels), prefill, and the KV-cache step (its
// attention op reads the cache). Dimension key: V vocab, C dim, L layers, NH/KV heads, HS
// head dim, QD = NH*HS, KD = KV*HS, F ffn dim, B batch, T sequence, N = B*T rows.
#include "bd_forward.h"

#include <stdlib.h>
#include <string.h>

#include "bd_hugemem.h"
#include "bd_kernels.h"
#include "bd_packed.h"
#include "bd_threads.h"

int bd_fwd_nll_rows(int N) { return N < 256 ? N : 256; }

float *bd_fwd_layer(const bd_fwd_state *s, float *base, int l, size_t width) {
    if (!base) return NULL;
    return base + (s->keep ? (size_t)l : 0) * (size_t)s->B * (size_t)s->T * width;
}

// The arena's pieces for (B, T); with s->arena NULL only their size. Returns the floats.
static size_t fwd_layout(bd_fwd_state *s, const bd_config *cfg, int B, int T, bool keep) {
    size_t N = (size_t)B * T, L = (size_t)cfg->n_layers, off = 0;
    bd_acts_layout(&s->acts, s->arena, &off, cfg, N, keep ? L : 1, keep ? L + 1 : 1);
    s->att_scratch = bd_arena_take(s->arena, &off, (size_t)bd_attention_scratch_floats(T, bd_num_threads()));
    s->rope_cs = bd_arena_take(s->arena, &off, (size_t)T * (size_t)cfg->head_dim);
    size_t R = (size_t)bd_fwd_nll_rows((int)(N > 1u << 30 ? 1u << 30 : N));
    s->logit_chunk = bd_arena_take(s->arena, &off, R * (size_t)cfg->vocab);
    s->losses = bd_arena_take(s->arena, &off, N);
    s->loss_lse = bd_arena_take(s->arena, &off, N);
    return off;
}

size_t bd_fwd_state_bytes(const bd_config *cfg, int B, int T, bool keep) {
    bd_fwd_state sizing = {.arena = NULL};
    return fwd_layout(&sizing, cfg, B, T, keep) * sizeof(float);
}

int bd_fwd_state_init(bd_fwd_state *s, const bd_config *cfg, int B, int T, bool keep) {
    memset(s, 0, sizeof *s);
    if (bd_config_check(cfg, NULL, 0) < 0 || B <= 0 || T <= 0) return BD_ERR_ARG;
    size_t total = fwd_layout(s, cfg, B, T, keep);
    s->arena = malloc(total * sizeof(float));
    if (!s->arena)
        return bd_fail(s->why, sizeof s->why, BD_ERR_NOMEM, "forward: cannot allocate %zu MB of activations",
                       total * sizeof(float) >> 20);
    fwd_layout(s, cfg, B, T, keep);
    s->cfg = *cfg;
    s->B = B;
    s->T = T;
    s->keep = keep;
    s->arena_floats = total;
    s->att_scratch_floats = bd_attention_scratch_floats(T, bd_num_threads());
    bd_rope_table(s->rope_cs, T, cfg->head_dim, cfg->rope_theta);
    return BD_OK;
}

void bd_fwd_state_free(bd_fwd_state *s) {
    free(s->arena);
    free(s->lin_scratch);
    memset(s, 0, sizeof *s);
}

static int check_tokens(const char *who, const int32_t *tokens, long long n, int V, char *why, size_t ws) {
    for (long long i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return bd_fail(why, ws, BD_ERR_VALUE, "%s: token %d at position %lld is outside the vocabulary [0, %d)",
                           who, (int)tokens[i], i, V);
    return BD_OK;
}

// Grows *buf to what m's linears need for N rows (bd_block_scratch_bytes: the packed kernels'
// scratch, or a W1.58A8 model's quantized activations; nothing for other models): kernels
// take scratch from their caller and never allocate.
static int lin_scratch_for(void **buf, size_t *cap, const bd_model *m, int N, char *why, size_t ws) {
    size_t need = bd_block_scratch_bytes(m, N);
    if (need <= *cap) return BD_OK;
    void *p = realloc(*buf, need);
    if (!p) return bd_fail(why, ws, BD_ERR_NOMEM, "forward: cannot allocate %zu MB of kernel scratch", need >> 20);
    *buf = p;
    *cap = need;
    return BD_OK;
}

// A batched walk over s's activations with the fast kernels (timed into s->timing).
static bd_block_run fwd_run(bd_fwd_state *s, const bd_model *m, int B, int T) {
    size_t rows = s->keep ? (size_t)s->B * s->T : 0;
    return (bd_block_run){.m = m,
                          .ops = &bd_block_fast,
                          .attention = bd_block_self_attention,
                          .acts = &s->acts,
                          .layer_rows = rows,
                          .x_rows = rows,
                          .B = B,
                          .T = T,
                          .rope_cs = s->rope_cs,
                          .att_scratch = s->att_scratch,
                          .att_scratch_floats = s->att_scratch_floats,
                          .lin_scratch = s->lin_scratch,
                          .timing = &s->timing,
                          .after_block = s->after_block,
                          .after_block_ctx = s->after_block_ctx};
}

// Prefill: the keys and values of positions 0..T-1 go into the cache, then self-attention.
static void prefill_attention(const bd_block_run *r, const bd_acts *a, int l) {
    bd_kv_cache *kv = r->att_ctx;
    size_t KD = (size_t)kv->cfg.n_kv_heads * kv->cfg.head_dim, T = (size_t)r->T;
    for (int b = 0; b < r->B; b++) {
        size_t dst = (((size_t)l * kv->B + b) * kv->max_T) * KD, src = (size_t)b * T * KD;
        memcpy(kv->k + dst, a->kr + src, T * KD * sizeof(float));
        memcpy(kv->v + dst, a->v + src, T * KD * sizeof(float));
    }
    bd_block_self_attention(r, a, l);
}

// The batched pass. kv != NULL: also store keys/values of positions 0..T-1 in the cache.
static int forward_impl(bd_fwd_state *s, const bd_model *m, const int32_t *tokens, int B, int T, float *logits,
                        bd_kv_cache *kv) {
    const bd_config *c = &m->cfg;
    if (!bd_same_shape(&s->cfg, c) || B <= 0 || T <= 0 || B > s->B || T > s->T)
        return bd_fail(s->why, sizeof s->why, BD_ERR_ARG,
                       "forward: batch %dx%d does not fit the state (%dx%d) or model mismatch", B, T, s->B, s->T);
    int rc = check_tokens("forward", tokens, (long long)B * T, c->vocab, s->why, sizeof s->why);
    if (rc < 0) return rc;
    if ((rc = lin_scratch_for(&s->lin_scratch, &s->lin_scratch_bytes, m, s->B * s->T, s->why, sizeof s->why)) < 0)
        return rc;
    bd_block_run r = fwd_run(s, m, B, T);
    if (kv) r.attention = prefill_attention, r.att_ctx = kv;
    bd_decoder_forward(&r, tokens);
    if (logits) BD_TIMED(&s->timing, head, bd_block_linear(&r, 0, BD_HEAD, logits, s->acts.xf, B * T));
    return BD_OK;
}

int bd_forward(bd_fwd_state *s, const bd_model *m, const int32_t *tokens, int B, int T, float *logits) {
    return forward_impl(s, m, tokens, B, T, logits, NULL);
}

int bd_forward_nll(bd_fwd_state *s, const bd_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                   double *mean_nll) {
    *mean_nll = 0;
    int rc = forward_impl(s, m, tokens, B, T, NULL, NULL);
    if (rc < 0) return rc;
    int V = m->cfg.vocab, C = m->cfg.dim, N = B * T, R = bd_fwd_nll_rows(s->B * s->T);
    bd_block_run r = fwd_run(s, m, B, T);
    int32_t tgt[256];  // one chunk of targets (R <= 256)
    double sum = 0;
    int count = 0;
    for (int r0 = 0; r0 < N; r0 += R) {
        int nr = N - r0 < R ? N - r0 : R;
        for (int i = 0; i < nr; i++) {
            int n = r0 + i, t = n % T;
            int32_t y = targets ? targets[n] : (t + 1 < T ? tokens[n + 1] : -1);
            if (y >= V)
                return bd_fail(s->why, sizeof s->why, BD_ERR_VALUE,
                               "forward: target %d at position %d is outside the vocabulary [0, %d)", (int)y, n, V);
            tgt[i] = y;
        }
        float *lg = s->logit_chunk;
        BD_TIMED(&s->timing, head, bd_block_linear(&r, 0, BD_HEAD, lg, s->acts.xf + (size_t)r0 * C, nr));
        BD_TIMED(&s->timing, loss, bd_crossentropy_forward(s->losses + r0, s->loss_lse + r0, lg, tgt, nr, V));
        for (int i = 0; i < nr; i++)
            if (tgt[i] >= 0) {
                sum += s->losses[r0 + i];
                count++;
            }
    }
    *mean_nll = count ? sum / count : 0.0;
    return count;
}

int bd_forward_ref(const bd_model *m, const int32_t *tokens, int B, int T, float *logits, char *why, size_t ws) {
    if (B <= 0 || T <= 0) return bd_fail(why, ws, BD_ERR_ARG, "forward_ref: batch %dx%d", B, T);
    int rc = check_tokens("forward_ref", tokens, (long long)B * T, m->cfg.vocab, why, ws);
    if (rc < 0) return rc;
    bd_acts a;
    size_t N = (size_t)B * T, n = 0;
    bd_acts_layout(&a, NULL, &n, &m->cfg, N, 1, 1);
    float *mem = malloc(n * sizeof(float));
    void *scratch = NULL;
    size_t cap = 0;
    if (!mem || (rc = lin_scratch_for(&scratch, &cap, m, B * T, why, ws)) < 0) {
        free(mem);
        return bd_fail(why, ws, BD_ERR_NOMEM, "forward_ref: out of memory");
    }
    n = 0;
    bd_acts_layout(&a, mem, &n, &m->cfg, N, 1, 1);
    bd_block_run r = {.m = m,
                      .ops = &bd_block_ref,
                      .attention = bd_block_self_attention_ref,
                      .acts = &a,
                      .B = B,
                      .T = T,
                      .lin_scratch = scratch};
    bd_decoder_forward(&r, tokens);
    bd_block_linear(&r, 0, BD_HEAD, logits, a.xf, B * T);
    free(mem);
    free(scratch);
    return BD_OK;
}

// ---- KV cache ----

// The cache's pieces; with c->mem NULL only their size. Returns the floats.
static size_t kv_layout(bd_kv_cache *c, const bd_config *cfg, int B, int max_T) {
    size_t L = (size_t)cfg->n_layers, KD = (size_t)cfg->n_kv_heads * cfg->head_dim, off = 0;
    c->k = bd_arena_take(c->mem, &off, L * B * (size_t)max_T * KD);
    c->v = bd_arena_take(c->mem, &off, L * B * (size_t)max_T * KD);
    bd_acts_layout(&c->acts, c->mem, &off, cfg, (size_t)B, 1, 1);
    c->scores = bd_arena_take(c->mem, &off, (size_t)B * cfg->n_heads * max_T);
    c->rope_cs = bd_arena_take(c->mem, &off, (size_t)max_T * cfg->head_dim);
    return off;
}

size_t bd_kv_cache_bytes(const bd_config *cfg, int B, int max_T) {
    bd_kv_cache sizing = {.mem = NULL};
    return kv_layout(&sizing, cfg, B, max_T) * sizeof(float);
}

int bd_kv_cache_init(bd_kv_cache *c, const bd_config *cfg, int B, int max_T) {
    memset(c, 0, sizeof *c);
    if (bd_config_check(cfg, NULL, 0) < 0 || B <= 0 || max_T <= 0) return BD_ERR_ARG;
    size_t total = kv_layout(c, cfg, B, max_T);
    c->mem = bd_huge_alloc(total * sizeof(float));  // read whole on every step
    if (!c->mem)
        return bd_fail(c->why, sizeof c->why, BD_ERR_NOMEM, "kv cache: cannot allocate %zu MB",
                       total * sizeof(float) >> 20);
    kv_layout(c, cfg, B, max_T);
    c->cfg = *cfg;
    c->B = B;
    c->max_T = max_T;
    bd_rope_table(c->rope_cs, max_T, cfg->head_dim, cfg->rope_theta);
    return BD_OK;
}

void bd_kv_cache_free(bd_kv_cache *c) {
    bd_huge_free(c->mem);
    free(c->lin_scratch);
    memset(c, 0, sizeof *c);
}

// The step's attention: the new keys and values go to position pos[b] of the cache, then
// each new query attends to positions 0..pos[b] of its sequence.
static void step_attention(const bd_block_run *r, const bd_acts *a, int l) {
    bd_kv_cache *kv = r->att_ctx;
    const bd_config *c = &kv->cfg;
    size_t KD = (size_t)c->n_kv_heads * c->head_dim;
    float *kcache = kv->k + (size_t)l * kv->B * kv->max_T * KD, *vcache = kv->v + (size_t)l * kv->B * kv->max_T * KD;
    for (int b = 0; b < r->B; b++) {
        size_t dst = ((size_t)b * kv->max_T + r->pos[b]) * KD;
        memcpy(kcache + dst, a->kr + (size_t)b * KD, KD * sizeof(float));
        memcpy(vcache + dst, a->v + (size_t)b * KD, KD * sizeof(float));
    }
    bd_attention_step_forward(a->att, a->qr, kcache, vcache, r->pos, kv->scores, r->B, kv->max_T, c->n_heads,
                              c->n_kv_heads, c->head_dim);
}

int bd_forward_step(bd_kv_cache *kc, const bd_model *m, const int32_t *tokens, const int *pos, int B, float *logits) {
    const bd_config *c = &m->cfg;
    if (!bd_same_shape(&kc->cfg, c) || B <= 0 || B > kc->B)
        return bd_fail(kc->why, sizeof kc->why, BD_ERR_ARG,
                       "forward step: batch %d does not fit the cache (%d) or model mismatch", B, kc->B);
    for (int b = 0; b < B; b++)
        if (pos[b] < 0 || pos[b] >= kc->max_T)
            return bd_fail(kc->why, sizeof kc->why, BD_ERR_ARG,
                           "forward step: position %d of sequence %d is outside the cache [0, %d)", pos[b], b,
                           kc->max_T);
    int rc = check_tokens("forward step", tokens, B, c->vocab, kc->why, sizeof kc->why);
    if (rc < 0) return rc;
    if ((rc = lin_scratch_for(&kc->lin_scratch, &kc->lin_scratch_bytes, m, kc->B, kc->why, sizeof kc->why)) < 0)
        return rc;
    // One row per sequence at positions pos, one activation slot for every layer, not timed.
    bd_block_run r = {.m = m,
                      .ops = &bd_block_fast,
                      .attention = step_attention,
                      .att_ctx = kc,
                      .acts = &kc->acts,
                      .B = B,
                      .T = 1,
                      .pos = pos,
                      .rope_cs = kc->rope_cs,
                      .lin_scratch = kc->lin_scratch};
    bd_decoder_forward(&r, tokens);
    bd_block_linear(&r, 0, BD_HEAD, logits, kc->acts.xf, B);
    return BD_OK;
}

int bd_forward_prefill(bd_fwd_state *s, bd_kv_cache *kc, const bd_model *m, const int32_t *tokens, int B, int T,
                       float *last_logits) {
    if (!bd_same_shape(&kc->cfg, &m->cfg) || B > kc->B || T > kc->max_T)
        return bd_fail(s->why, sizeof s->why, BD_ERR_ARG,
                       "prefill: %d prompts of %d tokens do not fit the cache (%d x %d)", B, T, kc->B, kc->max_T);
    int rc = forward_impl(s, m, tokens, B, T, NULL, kc);
    if (rc < 0 || !last_logits) return rc;
    size_t C = (size_t)m->cfg.dim, V = (size_t)m->cfg.vocab;
    bd_block_run r = fwd_run(s, m, B, T);
    for (int b = 0; b < B; b++)  // row by row: the head of position T-1 of each prompt
        bd_block_linear(&r, 0, BD_HEAD, last_logits + b * V, s->acts.xf + ((size_t)b * T + T - 1) * C, 1);
    return BD_OK;
}
