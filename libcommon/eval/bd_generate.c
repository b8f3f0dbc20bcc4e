// Continuous-batching generation over bd_forward_step. Dimension key: B slots, V vocabulary,
// L layers, KD = KV*HS, K new tokens, TK top-K of the logits.
//
// Each step feeds one token per slot: the next prompt token while the prompt is being
// read, then the token sampled at the previous step. Sample i runs in slot i mod B, and
// every step has all B rows (idle slots compute a dummy row), rounded up to a multiple of
// bd_gen_row_multiple(): OpenBLAS's sgemm (without AVX-512) rounds a row differently depending
// on the number of rows and the row's place among them, and fewer than 8 rows take other
// kernels than bd's tiles, so this fixed shape is what makes a sample's tokens independent of
// when it started (an interrupted and resumed run equals the uninterrupted one) and of the
// shard that runs it (a shard keeps the whole run's B and rows, and leaves the other shards'
// rows idle). With OpenBLAS the logits of different B differ in the last bits, which changes a
// draw only in rare cases; bd's tiles give every row the same bits whatever B.
#include "bd_generate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_forward.h"
#include "bd_packed.h"
#include "bd_progress.h"
#include "bd_threads.h"

const char *bd_gen_end_name(bd_gen_end e) {
    switch (e) {
    case BD_GEN_EOS: return "eos";
    case BD_GEN_LENGTH: return "length";
    case BD_GEN_CONTEXT: return "context";
    }
    return "?";
}

typedef struct {
    int64_t j;      // place in this run's order (slot j mod B)
    int64_t index;  // the sample's number: j, or shard_k + j*shard_n
    bd_rng rng;
    const int32_t *prompt;  // (P)
    int P;
    int fed;       // cache positions filled = position of the next input
    int32_t next;  // next input token
    int32_t *out;  // (K)
    int n_new;
    int32_t *top_ids;  // (K, TK) or NULL
    float *top_lp;     // (K, TK) or NULL
    int end;           // -1 while running, else a bd_gen_end
    int err;           // sampling error of the last step
} gen_seq;

typedef struct {
    const bd_model *m;
    const bd_gen_opts *o;
    int max_seq;
    gen_seq *slots;        // (B)
    bd_sampler *samplers;  // (B)
    const float *logits;   // (B, V)
} step_ctx;

static void seq_free(gen_seq *s) {
    free(s->out);
    free(s->top_ids);
    free(s->top_lp);
    s->out = NULL, s->top_ids = NULL, s->top_lp = NULL;
}

// Starts the run's j-th sample: its prompt and RNG stream are those of its own number, so a
// shard's sample equals the whole run's.
static int seq_start(gen_seq *s, int64_t j, const bd_gen_prompt *prompts, int n_prompts, const bd_gen_opts *o) {
    memset(s, 0, sizeof *s);
    int64_t index = o->shard_n > 0 ? o->shard_k + j * o->shard_n : j;
    const bd_gen_prompt *p = &prompts[index % n_prompts];
    s->j = j;
    s->index = index;
    bd_rng_seed(&s->rng, o->seed, (uint64_t)index);
    s->prompt = p->ids;
    s->P = p->n;
    s->next = p->ids[0];
    s->end = -1;
    s->out = malloc(sizeof(int32_t) * (size_t)o->max_new);
    if (o->logits_top_k > 0) {
        size_t n = (size_t)o->max_new * (size_t)o->logits_top_k;
        s->top_ids = malloc(sizeof(int32_t) * n);
        s->top_lp = malloc(sizeof(float) * n);
        if (!s->top_ids || !s->top_lp) s->out = (free(s->out), NULL);
    }
    if (!s->out) {
        seq_free(s);
        return BD_ERR_NOMEM;
    }
    return BD_OK;
}

// After the step: advance slots [start, end) by the logits of their row.
static void advance(void *vctx, int start, int end) {
    step_ctx *c = vctx;
    const bd_gen_opts *o = c->o;
    int V = c->m->cfg.vocab, TK = o->logits_top_k;
    for (int b = start; b < end; b++) {
        gen_seq *s = &c->slots[b];
        if (s->end >= 0) continue;  // idle slot: its row is a dummy
        s->fed++;
        if (s->fed < s->P) {
            s->next = s->prompt[s->fed];
            continue;
        }
        const float *lg = c->logits + (size_t)b * V;
        if (TK > 0) {
            int rc = bd_topk_logprobs(lg, V, TK, s->top_ids + (size_t)s->n_new * TK, s->top_lp + (size_t)s->n_new * TK);
            if (rc < 0) {
                s->err = rc;
                continue;
            }
        }
        int tok = bd_sample(&c->samplers[b], &o->sampling, lg, &s->rng);
        if (tok < 0) {
            s->err = tok;
            continue;
        }
        s->out[s->n_new++] = tok;
        s->next = tok;
        for (int i = 0; i < o->n_stop; i++)
            if (tok == o->stop_ids[i]) s->end = BD_GEN_EOS;
        if (s->end < 0 && s->n_new == o->max_new) s->end = BD_GEN_LENGTH;
        if (s->end < 0 && s->P + s->n_new >= c->max_seq) s->end = BD_GEN_CONTEXT;
    }
}

static int check_args(const bd_model *m, const bd_gen_prompt *prompts, int n_prompts, const bd_gen_opts *o, char *why,
                      size_t ws) {
    if (bd_sampling_check(&o->sampling) < 0 || o->max_new < 1 || o->batch < 1 || o->n_stop < 0 ||
        o->n_stop > BD_GEN_MAX_STOP || o->logits_top_k < 0 || o->logits_top_k > BD_GEN_MAX_TOPK ||
        o->logits_top_k > m->cfg.vocab || n_prompts < 1 || o->shard_n < 0 ||
        (o->shard_n > 0 && (o->shard_k < 0 || o->shard_k >= o->shard_n)))
        return bd_fail(why, ws, BD_ERR_ARG, "generate: invalid options");
    for (int i = 0; i < n_prompts; i++) {
        if (prompts[i].n < 1 || prompts[i].n > m->cfg.max_seq - 1)
            return bd_fail(why, ws, BD_ERR_ARG,
                           "generate: prompt %d has %d tokens, expected 1..%d (the context less one)", i, prompts[i].n,
                           m->cfg.max_seq - 1);
        for (int t = 0; t < prompts[i].n; t++)
            if (prompts[i].ids[t] < 0 || prompts[i].ids[t] >= m->cfg.vocab)
                return bd_fail(why, ws, BD_ERR_ARG,
                               "generate: prompt %d: id %d at position %d is outside the vocabulary of %d", i,
                               prompts[i].ids[t], t, m->cfg.vocab);
    }
    return BD_OK;
}

static bd_gen_sample as_sample(const gen_seq *s, const bd_gen_opts *o) {
    return (bd_gen_sample){.index = s->index,
                           .prompt = s->prompt,
                           .prompt_len = s->P,
                           .completion = s->out,
                           .n_new = s->n_new,
                           .end = (bd_gen_end)s->end,
                           .top_ids = o->logits_top_k ? s->top_ids : NULL,
                           .top_logprobs = o->logits_top_k ? s->top_lp : NULL};
}

// Hands s over if it is next in index order, then any pending ones that follow; else keeps
// it in pending (taking its buffers).
typedef struct {
    gen_seq *pending;  // finished, waiting for a lower index
    int n, cap;
    int64_t next_emit;
} reorder;

static int finish(reorder *ro, gen_seq *s, const bd_gen_opts *o, bd_gen_emit_fn emit, void *ctx, bd_gen_stats *st,
                  double t0) {
    if (s->j != ro->next_emit) {
        if (ro->n == ro->cap) {
            int cap = ro->cap ? 2 * ro->cap : 16;
            gen_seq *p = realloc(ro->pending, sizeof *p * (size_t)cap);
            if (!p) return BD_ERR_NOMEM;
            ro->pending = p, ro->cap = cap;
        }
        ro->pending[ro->n++] = *s;
        s->out = NULL, s->top_ids = NULL, s->top_lp = NULL;
        return BD_OK;
    }
    int rc = BD_OK;
    for (gen_seq *cur = s; cur && rc >= 0;) {
        st->samples++, ro->next_emit++;
        st->seconds = bd_now() - t0;
        bd_gen_sample out = as_sample(cur, o);
        rc = emit(ctx, &out, st);
        seq_free(cur);
        if (cur != s) *cur = ro->pending[--ro->n];  // fill the hole with the last pending
        cur = NULL;
        for (int i = 0; i < ro->n && !cur; i++)
            if (ro->pending[i].j == ro->next_emit) cur = &ro->pending[i];
    }
    return rc;
}

int bd_gen_row_multiple(void) { return bd_pk_simd() == BD_SIMD_AVX512 ? 8 : 32; }

// The rows a step runs for a batch of B (see bd_generate).
static int step_rows(int B, bool unpadded) {
    int k = bd_gen_row_multiple();
    return unpadded ? B : (B + k - 1) / k * k;
}

size_t bd_generate_bytes(const bd_config *c, int B, int max_T, const bd_gen_opts *o) {
    size_t R = (size_t)step_rows(B, o->unpadded), V = (size_t)c->vocab, K = (size_t)o->max_new;
    size_t per_slot = sizeof(int32_t) * K + (sizeof(int32_t) + sizeof(float)) * K * (size_t)o->logits_top_k;
    return bd_kv_cache_bytes(c, (int)R, max_T) + sizeof(float) * R * V + (sizeof(int32_t) + sizeof(int)) * R +
           (size_t)B * (per_slot + bd_sampler_bytes(c->vocab));
}

// x^-1 mod p, for x coprime with p >= 1 (extended Euclid).
static int64_t inverse_mod(int64_t x, int64_t p) {
    int64_t r0 = p, r1 = x % p, t0 = 0, t1 = 1;
    while (r1) {
        int64_t q = r0 / r1, r = r0 - q * r1, t = t0 - q * t1;
        r0 = r1, r1 = r, t0 = t1, t1 = t;
    }
    return (t0 % p + p) % p;
}

static int64_t gcd(int64_t a, int64_t b) { return b ? gcd(b, a % b) : a; }

// Slot b of B runs sample i of the whole run when i = b (mod B), in a shard too, so that
// every sample has its row (see the top). The run's j-th sample is k + j*N (k = 0, N = 1
// without a shard), so slot b runs the j = r (mod P) with P = B/gcd(B, N); returns r, or -1
// when no sample of the shard falls on slot b (b != k mod gcd(B, N)).
static int64_t slot_residue(int64_t b, int64_t B, int64_t k, int64_t N, int64_t *P) {
    int64_t g = gcd(B, N);
    *P = B / g;
    if (((b - k) % g + g) % g) return -1;
    int64_t r = (((b - k) / g) % *P + *P) % *P;  // solves j*(N/g) = (b-k)/g (mod P)
    return r * inverse_mod((N / g) % *P, *P) % *P;
}

int bd_generate(const bd_model *m, const bd_gen_prompt *prompts, int n_prompts, int64_t first, int64_t n,
                const bd_gen_opts *o, bd_gen_emit_fn emit, void *ctx, bd_gen_stats *stats, char *why, size_t ws) {
    bd_gen_stats st = {0};
    if (stats) *stats = st;
    if (why && ws) why[0] = 0;
    int rc = check_args(m, prompts, n_prompts, o, why, ws);
    int64_t N = o->shard_n > 0 ? o->shard_n : 1, k = o->shard_n > 0 ? o->shard_k : 0;
    int64_t count = n > k ? (n - k + N - 1) / N : 0;  // the run's own samples
    if (rc < 0 || count <= first) return rc;
    double t0 = bd_now();
    int V = m->cfg.vocab, max_seq = m->cfg.max_seq;
    // The batch shape depends on n and the options only (not on first, nor on a shard): a
    // resumed run and a shard compute every sample with the same rows as the whole run.
    int B = (int64_t)o->batch < n ? o->batch : (int)n;
    // The step always runs a multiple of bd_gen_row_multiple() rows (the extra ones are dummies):
    // fewer than 8 rows take matrix-vector kernels that sum in another order than the tiles, and
    // OpenBLAS (without AVX-512) rounds a row of a small sgemm differently from a row of a larger
    // one; with whole blocks of rows a sample's tokens no longer depend on --batch (with
    // OpenBLAS its logits still do, in their last bits, on its row: hence slot i mod B in a
    // shard too).
    int R = step_rows(B, o->unpadded);  // bd_generate_bytes counts what is allocated below
    int max_P = 0;
    for (int i = 0; i < n_prompts; i++) max_P = prompts[i].n > max_P ? prompts[i].n : max_P;
    // Positions fed: at most P + K - 1 (the last new token is never fed), within max_seq.
    int max_T = (int64_t)max_P + o->max_new - 1 < max_seq ? max_P + o->max_new - 1 : max_seq;

    bd_kv_cache kv;
    rc = bd_kv_cache_init(&kv, &m->cfg, R, max_T);
    if (rc < 0) return bd_fail(why, ws, rc, "%s", kv.why);
    gen_seq *slots = calloc((size_t)B, sizeof *slots);
    bd_sampler *samplers = calloc((size_t)B, sizeof *samplers);
    float *logits = malloc(sizeof(float) * (size_t)R * V);
    int32_t *tokens = calloc((size_t)R, sizeof(int32_t));  // rows B..R-1 stay token 0 at position 0
    int *pos = calloc((size_t)R, sizeof(int));
    reorder ro = {.next_emit = first};
    rc = slots && samplers && logits && tokens && pos ? BD_OK
                                                      : bd_fail(why, ws, BD_ERR_NOMEM, "generate: out of memory");
    for (int b = 0; rc >= 0 && b < B; b++) rc = bd_sampler_init(&samplers[b], V);
    // Sample i always runs in slot i mod B; an idle slot (none of its samples left, or none
    // at all in a shard) still computes a dummy row, so that every step has B rows.
    int active = 0;
    int64_t P = B;  // slot b runs every P-th of the run's samples
    for (int b = 0; rc >= 0 && b < B; b++) {
        int64_t r = slot_residue(b, B, k, N, &P);
        int64_t j = r < 0 ? count : first + ((r - first) % P + P) % P;
        slots[b].end = BD_GEN_EOS;  // idle unless started
        if (j < count) {
            rc = seq_start(&slots[b], j, prompts, n_prompts, o);
            active++;
        }
    }
    step_ctx sc = {m, o, max_seq, slots, samplers, logits};
    int min_per_thread = V >= 16384 ? 1 : 16384 / V;

    while (rc >= 0 && active > 0 && !(o->stop && *o->stop)) {
        for (int b = 0; b < B; b++) {
            bool idle = slots[b].end >= 0;
            tokens[b] = idle ? 0 : slots[b].next;
            pos[b] = idle ? 0 : slots[b].fed;
        }
        rc = bd_forward_step(&kv, m, tokens, pos, R, logits);
        if (rc < 0) {
            bd_fail(why, ws, rc, "%s", kv.why);
            break;
        }
        st.steps++;
        bd_parallel_for(B, min_per_thread, advance, &sc);
        for (int b = 0; b < B && rc >= 0; b++) {
            gen_seq *s = &slots[b];
            if (!s->out) continue;  // idle
            if (s->err < 0) {
                rc = bd_fail(why, ws, s->err, "generate: sample %lld: %s at new token %d", (long long)s->index,
                             s->err == BD_ERR_VALUE ? "NaN logits" : bd_strerror(s->err), s->n_new);
                break;
            }
            if (s->fed <= s->P) st.prompt_tokens++;
            if (s->fed >= s->P) st.new_tokens++;
            if (s->end < 0) continue;
            int64_t next = s->j + P;
            rc = finish(&ro, s, o, emit, ctx, &st, t0);
            seq_free(s);
            if (rc >= 0 && next < count)
                rc = seq_start(s, next, prompts, n_prompts, o);
            else
                active--;
        }
    }
    st.seconds = bd_now() - t0;
    if (stats) *stats = st;
    for (int b = 0; b < B && slots; b++) seq_free(&slots[b]);
    for (int i = 0; i < ro.n; i++) seq_free(&ro.pending[i]);
    for (int b = 0; b < B && samplers; b++) bd_sampler_free(&samplers[b]);
    free(ro.pending), free(slots), free(samplers), free(logits), free(tokens), free(pos);
    bd_kv_cache_free(&kv);
    if (rc == BD_ERR_NOMEM && why && ws && !why[0]) snprintf(why, ws, "generate: out of memory");
    return rc;
}
