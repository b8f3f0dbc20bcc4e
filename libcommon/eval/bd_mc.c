// Multiple-choice scoring: joint tokenization of context + ending, log-likelihood of the
// ending by a shared-prefix KV cache or by one padded batch, and the acc / acc_norm tally.
// Dimension key: V vocab, NC choices of an item, T positions.
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bd_log.h"
#include "bd_mc.h"
#include "bd_threads.h"

// ---- tokenization ----

int bd_mc_tokenize(const bd_tokenizer *tok, const char *context, const char *ending, bd_token_buf *ids, int *start) {
    size_t cn = strlen(context), en = strlen(ending);
    // The harness moves the context's trailing whitespace to the continuation.
    size_t cs = cn;
    while (cs > 0 && isspace((unsigned char)context[cs - 1])) cs--;
    unsigned flags = bd_tokenizer_bos(tok) >= 0 ? BD_TOK_BOS : 0;
    char *joint = malloc(cn + en + 2);
    if (!joint) return BD_ERR_NOMEM;
    memcpy(joint, context, cn);
    joint[cn] = ' ';
    memcpy(joint + cn + 1, ending, en + 1);
    int rc = bd_tokenizer_encode(tok, joint, cs, flags, ids);  // the context alone
    size_t n_ctx = ids->n;
    if (rc >= 0) rc = bd_tokenizer_encode(tok, joint, cn + 1 + en, flags, ids);
    free(joint);
    if (rc < 0) return rc;
    if (ids->n < 2) return BD_ERR_VALUE;  // nothing to condition on or nothing to score
    if (n_ctx < 1) n_ctx = 1;
    if (n_ctx > ids->n - 1) n_ctx = ids->n - 1;
    *start = (int)n_ctx;
    return BD_OK;
}

double bd_mc_logprob(const float *logits, int V, int32_t target) {
    float mx = logits[0];
    for (int v = 1; v < V; v++)
        if (logits[v] > mx) mx = logits[v];
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    return (double)logits[target] - mx - log(sum);
}

// ---- scorer ----

void bd_mc_scorer_free(bd_mc_scorer *s) {
    bd_fwd_state_free(&s->st);
    if (s->method == BD_MC_SHARED) bd_kv_cache_free(&s->kv);
    if (s->ids)
        for (int i = 0; i < s->max_choices; i++) bd_token_buf_free(&s->ids[i]);
    free(s->ids), free(s->start), free(s->order), free(s->tokens), free(s->targets), free(s->pos), free(s->logits);
    memset(s, 0, sizeof *s);
}

// Room for n tokens and targets.
static int rows_reserve(bd_mc_scorer *s, size_t n) {
    int32_t *tk = realloc(s->tokens, n * sizeof *tk);
    if (tk) s->tokens = tk;
    int32_t *tg = realloc(s->targets, n * sizeof *tg);
    if (tg) s->targets = tg;
    return tk && tg ? BD_OK : BD_ERR_NOMEM;
}

#define MC_FIRST_CAP 128  // positions a new scorer holds before its first item

// Activations (and cache) for sequences of T positions: sized by the longest item seen so
// far (doubling, at most max_T), not by the model's context, which may be 100x larger.
static int reserve(bd_mc_scorer *s, int T) {
    if (T <= s->cap_T) return BD_OK;
    int cap = s->cap_T * 2 > T ? s->cap_T * 2 : T;
    if (cap > s->max_T) cap = s->max_T;
    bd_fwd_state_free(&s->st);
    if (s->method == BD_MC_SHARED) bd_kv_cache_free(&s->kv);
    s->cap_T = 0;
    const bd_config *c = &s->m->cfg;
    int rc = bd_fwd_state_init(&s->st, c, s->method == BD_MC_BATCH ? s->max_choices : 1, cap, false);
    if (rc >= 0 && s->method == BD_MC_SHARED) rc = bd_kv_cache_init(&s->kv, c, s->max_choices, cap);
    if (rc >= 0 && s->method == BD_MC_BATCH) rc = rows_reserve(s, (size_t)s->max_choices * cap);
    if (rc < 0) return rc;
    s->cap_T = cap;
    return BD_OK;
}

int bd_mc_task_max_positions(const bd_mc_task *task) {
    size_t most = 0;
    for (long i = 0; i < task->n; i++) {
        const bd_mc_item *it = &task->items[i];
        size_t cn = strlen(it->context);
        for (int k = 0; k < it->n_choices; k++) {
            size_t n = cn + 1 + strlen(it->choices[k]) + 2;  // joint text, BOS, a leading space
            if (n > most) most = n;
        }
    }
    return most > INT32_MAX ? INT32_MAX : (int)most;
}

int bd_mc_scorer_cap(const bd_config *c, int T) {
    long long cap = 2LL * T > MC_FIRST_CAP ? 2LL * T : MC_FIRST_CAP;
    return cap < c->max_seq ? (int)cap : c->max_seq;
}

size_t bd_mc_scorer_bytes(const bd_config *c, int NC, int T, bd_mc_method method) {
    int capT = bd_mc_scorer_cap(c, T);
    size_t n = bd_fwd_state_bytes(c, method == BD_MC_BATCH ? NC : 1, capT, false);
    if (method == BD_MC_SHARED) n += bd_kv_cache_bytes(c, NC, capT);
    n += (size_t)NC * (size_t)capT * 2 * sizeof(int32_t);  // tokens and targets
    n += (size_t)NC * ((size_t)c->vocab * sizeof(float) + sizeof(bd_token_buf) + 3 * sizeof(int));
    n += (size_t)NC * (size_t)(capT + 1) * sizeof(int32_t);  // the choices' token ids
    return n;
}

int bd_mc_scorer_init(bd_mc_scorer *s, const bd_model *m, const bd_tokenizer *tok, int max_choices, int max_T,
                      bd_mc_method method) {
    memset(s, 0, sizeof *s);
    if (max_choices < 1 || bd_tokenizer_vocab_size(tok) > m->cfg.vocab) return BD_ERR_ARG;
    s->m = m;
    s->tok = tok;
    s->method = method;
    s->max_choices = max_choices;
    s->max_T = max_T > 0 && max_T < m->cfg.max_seq ? max_T : m->cfg.max_seq;
    size_t NC = (size_t)max_choices, V = (size_t)m->cfg.vocab;
    s->ids = calloc(NC, sizeof *s->ids);
    s->start = calloc(NC, sizeof *s->start);
    s->order = calloc(NC, sizeof *s->order);
    s->pos = calloc(NC, sizeof *s->pos);
    s->logits = malloc(NC * V * sizeof *s->logits);
    int rc = BD_ERR_NOMEM;
    if (!s->ids || !s->start || !s->order || !s->pos || !s->logits || rows_reserve(s, NC) < 0) goto fail;
    if ((rc = reserve(s, MC_FIRST_CAP)) < 0) goto fail;
    return BD_OK;
fail:
    bd_mc_scorer_free(s);
    return rc;
}

// Keeps the last max_T + 1 tokens of b (the last one is only a target); returns how many
// were dropped and moves *start with them (at least 1, so something stays scored).
static int truncate_left(bd_token_buf *b, int *start, int max_T) {
    size_t keep = (size_t)max_T + 1;
    if (b->n <= keep) return 0;
    size_t drop = b->n - keep;
    memmove(b->ids, b->ids + drop, keep * sizeof *b->ids);
    b->n = keep;
    *start = (int)drop < *start ? *start - (int)drop : 1;
    return (int)drop;
}

// BATCH: rows of inputs ids[0..n-2] padded to the longest, targets -1 outside the ending.
static int score_batch(bd_mc_scorer *s, int NC, double *ll) {
    int T = 0;
    for (int i = 0; i < NC; i++)
        if ((int)s->ids[i].n - 1 > T) T = (int)s->ids[i].n - 1;
    int rc = reserve(s, T);
    if (rc < 0) return rc;
    for (int i = 0; i < NC; i++) {
        const int32_t *x = s->ids[i].ids;
        int n = (int)s->ids[i].n;
        for (int t = 0; t < T; t++) {
            s->tokens[(size_t)i * T + t] = t < n - 1 ? x[t] : x[n - 1];  // padding: any valid id
            s->targets[(size_t)i * T + t] = t + 1 < n && t + 1 >= s->start[i] ? x[t + 1] : -1;
        }
    }
    double mean;
    rc = bd_forward_nll(&s->st, s->m, s->tokens, s->targets, NC, T, &mean);
    if (rc < 0) return rc;
    s->tokens_run += (long)NC * T;
    for (int i = 0; i < NC; i++) {
        double sum = 0;
        for (int t = 0; t < T; t++)
            if (s->targets[(size_t)i * T + t] >= 0) sum -= s->st.losses[(size_t)i * T + t];
        ll[i] = sum;
    }
    return BD_OK;
}

// SHARED: the common prefix (up to the first scored token of any choice) runs once as a
// prefill into cache sequence 0 and is copied to the others; each choice then continues
// one token per step, longest first so that the live sequences are always 0..k-1.
static int score_shared(bd_mc_scorer *s, int NC, double *ll) {
    const bd_config *c = &s->m->cfg;
    int V = c->vocab, T = 0;
    for (int i = 0; i < NC; i++)
        if ((int)s->ids[i].n - 1 > T) T = (int)s->ids[i].n - 1;
    int rc = reserve(s, T);
    if (rc < 0) return rc;
    int P = s->start[0];
    for (int i = 1; i < NC; i++) {
        int p = 0, lim = s->start[i] < P ? s->start[i] : P;
        while (p < lim && s->ids[i].ids[p] == s->ids[0].ids[p]) p++;
        P = p;
    }
    // order: by length, longest first (stable: ties keep choice order)
    for (int i = 0; i < NC; i++) s->order[i] = i;
    for (int i = 1; i < NC; i++)
        for (int j = i; j > 0 && s->ids[s->order[j]].n > s->ids[s->order[j - 1]].n; j--) {
            int tmp = s->order[j];
            s->order[j] = s->order[j - 1];
            s->order[j - 1] = tmp;
        }
    for (int i = 0; i < NC; i++) ll[i] = 0;
    if (P > 0) {
        if ((rc = bd_forward_prefill(&s->st, &s->kv, s->m, s->ids[0].ids, 1, P, s->logits)) < 0) return rc;
        s->tokens_run += P;
        size_t KD = (size_t)c->n_kv_heads * c->head_dim, seq = (size_t)s->kv.max_T * KD;
        for (int l = 0; l < c->n_layers; l++) {
            float *k = s->kv.k + (size_t)l * s->kv.B * seq, *v = s->kv.v + (size_t)l * s->kv.B * seq;
            for (int b = 1; b < NC; b++) {
                memcpy(k + b * seq, k, (size_t)P * KD * sizeof(float));
                memcpy(v + b * seq, v, (size_t)P * KD * sizeof(float));
            }
        }
        for (int i = 0; i < NC; i++)  // logits of position P-1 predict token P
            if (P >= s->start[i]) ll[i] += bd_mc_logprob(s->logits, V, s->ids[i].ids[P]);
    }
    for (int p = P;; p++) {
        int k = 0;  // live sequences: those with a target after position p
        while (k < NC && (int)s->ids[s->order[k]].n - 2 >= p) k++;
        if (k == 0) break;
        for (int b = 0; b < k; b++) {
            s->tokens[b] = s->ids[s->order[b]].ids[p];
            s->pos[b] = p;
        }
        if ((rc = bd_forward_step(&s->kv, s->m, s->tokens, s->pos, k, s->logits)) < 0) return rc;
        s->tokens_run += k;
        for (int b = 0; b < k; b++) {
            int i = s->order[b];
            if (p + 1 >= s->start[i]) ll[i] += bd_mc_logprob(s->logits + (size_t)b * V, V, s->ids[i].ids[p + 1]);
        }
    }
    return BD_OK;
}

int bd_mc_score_item(bd_mc_scorer *s, const bd_mc_item *it, double *ll, int *n_tokens) {
    int NC = it->n_choices;
    if (NC > s->max_choices || NC < 1) return BD_ERR_ARG;
    for (int i = 0; i < NC; i++) {
        int rc = bd_mc_tokenize(s->tok, it->context, it->choices[i], &s->ids[i], &s->start[i]);
        if (rc < 0) return rc;
        if (truncate_left(&s->ids[i], &s->start[i], s->max_T) > 0) s->truncated++;
        if (n_tokens) n_tokens[i] = (int)s->ids[i].n - s->start[i];
    }
    return s->method == BD_MC_BATCH ? score_batch(s, NC, ll) : score_shared(s, NC, ll);
}

// ---- all items on worker threads ----

typedef struct {
    const bd_model *m;
    const bd_tokenizer *tok;
    const bd_mc_task *task;
    bd_mc_method method;
    double *ll;  // (n, max_choices)
    atomic_long next, done, truncated;
    atomic_int rc;    // first error
    atomic_long bad;  // its item
} score_job;

static void *score_worker(void *arg) {
    score_job *j = arg;
    bd_mc_scorer s;
    int rc = bd_mc_scorer_init(&s, j->m, j->tok, j->task->max_choices, 0, j->method);
    if (rc < 0) {
        int zero = 0;
        atomic_compare_exchange_strong(&j->rc, &zero, rc);
        return NULL;
    }
    for (;;) {
        if (atomic_load(&j->rc) < 0) break;
        long i = atomic_fetch_add(&j->next, 1);
        if (i >= j->task->n) break;
        rc = bd_mc_score_item(&s, &j->task->items[i], j->ll + (size_t)i * j->task->max_choices, NULL);
        if (rc < 0) {
            int zero = 0;
            if (atomic_compare_exchange_strong(&j->rc, &zero, rc)) atomic_store(&j->bad, i);
            break;
        }
        atomic_fetch_add(&j->done, 1);
    }
    atomic_fetch_add(&j->truncated, s.truncated);
    bd_mc_scorer_free(&s);
    return NULL;
}

int bd_mc_score_all(const bd_model *m, const bd_tokenizer *tok, const bd_mc_task *task, int n_workers,
                    bd_mc_method method, double *ll, void (*progress)(void *ctx, long done), void *ctx, long *bad_item,
                    long *truncated) {
    score_job j = {.m = m, .tok = tok, .task = task, .method = method, .ll = ll};
    atomic_init(&j.next, 0), atomic_init(&j.done, 0), atomic_init(&j.truncated, 0);
    atomic_init(&j.rc, 0), atomic_init(&j.bad, -1);
    if (n_workers < 1) n_workers = 1;
    if (n_workers > task->n) n_workers = (int)task->n;
    if (n_workers > 64) n_workers = 64;
    int saved = bd_num_threads();
    bd_set_num_threads(1);  // threads go to items, not to the kernels of one item
    pthread_t tid[64];
    bool started[64] = {false};
    for (int w = 0; w < n_workers; w++) started[w] = pthread_create(&tid[w], NULL, score_worker, &j) == 0;
    if (!started[0]) score_worker(&j);  // no thread at all: work here
    // Report progress while the workers run.
    long last = -1;
    for (;;) {
        long d = atomic_load(&j.done);
        if (progress && d != last) progress(ctx, last = d);
        if (d >= task->n || atomic_load(&j.rc) < 0) break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int w = 0; w < n_workers; w++)
        if (started[w]) pthread_join(tid[w], NULL);
    bd_set_num_threads(saved);
    if (truncated) *truncated = atomic_load(&j.truncated);
    int rc = atomic_load(&j.rc);
    if (bad_item) *bad_item = rc < 0 ? atomic_load(&j.bad) : -1;
    if (rc == 0 && atomic_load(&j.done) < task->n) rc = BD_ERR_NOMEM;  // a worker could not start
    return rc;
}

// ---- tally ----

long bd_mc_utf8_len(const char *s) {
    long n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

int bd_mc_argmax(const double *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

void bd_mc_tally_add(bd_mc_tally *t, const bd_mc_item *it, const double *ll, int *pred, int *pred_norm) {
    int NC = it->n_choices;
    double norm[NC];
    for (int i = 0; i < NC; i++) norm[i] = ll[i] / (double)bd_mc_utf8_len(it->choices[i]);
    int a = bd_mc_argmax(ll, NC), b = bd_mc_argmax(norm, NC);
    bd_mc_tally_count(t, NC, it->gold, a, b);
    if (pred) *pred = a;
    if (pred_norm) *pred_norm = b;
}

void bd_mc_tally_count(bd_mc_tally *t, int n_choices, int gold, int pred, int pred_norm) {
    t->n++;
    t->correct += pred == gold;
    t->correct_norm += pred_norm == gold;
    t->chance_sum += 1.0 / n_choices;
}

double bd_mc_stderr(long k, long n) {
    if (n < 2) return NAN;
    double p = (double)k / (double)n;
    return sqrt(p * (1 - p) / (double)(n - 1));
}

bd_mc_result bd_mc_tally_result(const bd_mc_tally *t) {
    bd_mc_result r = {.n = t->n};
    double n = t->n > 0 ? (double)t->n : NAN;
    r.acc = (double)t->correct / n;
    r.acc_norm = (double)t->correct_norm / n;
    r.acc_stderr = bd_mc_stderr(t->correct, t->n);
    r.acc_norm_stderr = bd_mc_stderr(t->correct_norm, t->n);
    r.chance = t->chance_sum / n;
    return r;
}
