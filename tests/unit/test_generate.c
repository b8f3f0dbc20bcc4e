// Generation: greedy samples equal the argmax path of the plain reference forward pass
// (prompts of several lengths mixed in one batch), stop tokens and the context limit,
// top-K log-probabilities against a log-softmax of the reference logits, the same samples
// at batch 1, 7 and 16 with sampling on stories260K, stopping and continuing gives the
// uninterrupted result, a shard's samples are the whole run's bit for bit, and stories260K's
// greedy sample from BOS is the one in the data README.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_forward.h"
#include "bd_generate.h"
#include "bd_log.h"
#include "bd_model_io.h"
#include "bd_test.h"
#include "bd_tokenizer.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float urand(void) {  // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

// A tiny random GQA model with peaked logits (so argmax paths are far from ties).
static void random_model(bd_model *m) {
    bd_config c = {0};
    snprintf(c.arch, sizeof c.arch, "llama");
    c.dim = 24, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 6, c.ffn_dim = 40, c.vocab = 37;
    c.max_seq = 24, c.norm_eps = 1e-5f, c.rope_theta = 10000.0f, c.rope = BD_ROPE_INTERLEAVED;
    c.bos = 1, c.eos = 2;
    ck_assert_int_eq(bd_model_alloc(m, &c), BD_OK);
    bd_param_entry t[BD_MAX_PARAMS];
    int n = bd_param_table(&c, t, NULL);
    for (int i = 0; i < n; i++) {
        float *p = m->params + t[i].offset;
        bool norm = strstr(t[i].name, "norm") || !strncmp(t[i].name, "rms", 3);
        double fan = t[i].ndim == 3 ? (double)t[i].shape[2] : t[i].ndim == 2 ? (double)t[i].shape[1] : 1;
        float scale = norm ? 0.2f : !strcmp(t[i].name, "tok_emb") ? 1.0f : (float)(2.5 / sqrt(fan));
        for (size_t j = 0; j < t[i].numel; j++) p[j] = (norm ? 1.0f : 0.0f) + scale * urand();
    }
}

// Collects emitted samples (copies) and checks that they arrive in index order.
#define MAX_SAMPLES 64
typedef struct {
    int64_t expect_index, first;
    int n;
    int32_t *completion[MAX_SAMPLES];
    int n_new[MAX_SAMPLES], prompt_len[MAX_SAMPLES], end[MAX_SAMPLES];
    int32_t *top_ids[MAX_SAMPLES];
    float *top_lp[MAX_SAMPLES];
    int tk;
    volatile sig_atomic_t *stop;
    int stop_after;  // set *stop after this many samples (0: never)
} collector;

static int collect(void *ctx, const bd_gen_sample *s, const bd_gen_stats *st) {
    collector *c = ctx;
    ck_assert_int_eq(s->index, c->expect_index);
    ck_assert_int_eq(st->samples, s->index - c->first + 1);  // counted from this call's first
    c->expect_index++;
    ck_assert(c->n < MAX_SAMPLES);
    int i = c->n++;
    c->completion[i] = malloc(sizeof(int32_t) * (size_t)s->n_new);
    memcpy(c->completion[i], s->completion, sizeof(int32_t) * (size_t)s->n_new);
    c->n_new[i] = s->n_new, c->prompt_len[i] = s->prompt_len, c->end[i] = (int)s->end;
    if (c->tk) {
        ck_assert(s->top_ids && s->top_logprobs);
        size_t k = (size_t)s->n_new * c->tk;
        c->top_ids[i] = malloc(sizeof(int32_t) * k);
        c->top_lp[i] = malloc(sizeof(float) * k);
        memcpy(c->top_ids[i], s->top_ids, sizeof(int32_t) * k);
        memcpy(c->top_lp[i], s->top_logprobs, sizeof(float) * k);
    } else {
        ck_assert(!s->top_ids && !s->top_logprobs);
    }
    if (c->stop && c->stop_after && c->n == c->stop_after) *c->stop = 1;
    return 0;
}

static void collector_free(collector *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->completion[i]);
        if (c->tk) free(c->top_ids[i]), free(c->top_lp[i]);
    }
}

// Plain greedy continuation by the reference forward pass over the whole sequence each
// time: fills out (up to K ids), returns its length; stops after a stop id or at max_seq.
static int ref_greedy(const bd_model *m, const int32_t *prompt, int P, int K, int32_t stop_id, int32_t *out,
                      float *lp_out /* (K, V) log-softmax rows, or NULL */) {
    int V = m->cfg.vocab, max_seq = m->cfg.max_seq;
    int32_t seq[64];
    memcpy(seq, prompt, sizeof(int32_t) * (size_t)P);
    float *logits = malloc(sizeof(float) * (size_t)max_seq * V);
    int n = 0;
    while (n < K && P + n < max_seq) {
        int T = P + n;
        ck_assert_int_eq(bd_forward_ref(m, seq, 1, T, logits, NULL, 0), BD_OK);
        const float *row = logits + (size_t)(T - 1) * V;
        int best = 0;
        double mx = row[0], sum = 0;
        for (int v = 1; v < V; v++) {
            if (row[v] > row[best]) best = v;
            mx = row[v] > mx ? row[v] : mx;
        }
        for (int v = 0; v < V; v++) sum += exp(row[v] - mx);
        if (lp_out)
            for (int v = 0; v < V; v++) lp_out[(size_t)n * V + v] = (float)(row[v] - mx - log(sum));
        seq[T] = out[n++] = best;
        if (best == stop_id) break;
    }
    free(logits);
    return n;
}

START_TEST(test_greedy_equals_reference) {
    bd_model m;
    random_model(&m);
    int V = m.cfg.vocab;
    int32_t p0[1] = {1}, p1[5] = {1, 7, 30, 4, 4}, p2[3] = {1, 12, 5}, p3[20] = {0};
    for (int i = 0; i < 20; i++) p3[i] = (i * 11 + 3) % V;
    bd_gen_prompt prompts[4] = {{p0, 1}, {p1, 5}, {p2, 3}, {p3, 20}};
    const int K = 9, TK = 5, N = 6;  // samples 4, 5 reuse prompts 0, 1
    int32_t want[4][16];
    int want_n[4];
    float *lp = malloc(sizeof(float) * 16 * V);
    for (int i = 0; i < 4; i++) want_n[i] = ref_greedy(&m, prompts[i].ids, prompts[i].n, K, -1, want[i], NULL);
    ck_assert_int_eq(want_n[3], 4);  // 20 + 4 = max_seq

    for (int B = 1; B <= 5; B += 2) {
        bd_gen_opts o = {.sampling = {0, 0, 1}, .max_new = K, .batch = B, .seed = 7, .logits_top_k = TK};
        collector c = {.tk = TK};
        bd_gen_stats st;
        ck_assert_int_eq(bd_generate(&m, prompts, 4, 0, N, &o, collect, &c, &st, NULL, 0), BD_OK);
        ck_assert_int_eq(c.n, N);
        ck_assert_int_eq(st.samples, N);
        for (int i = 0; i < N; i++) {
            int pi = i % 4;
            ck_assert_int_eq(c.prompt_len[i], prompts[pi].n);
            ck_assert_int_eq(c.n_new[i], want_n[pi]);
            ck_assert_int_eq(c.end[i], pi == 3 ? BD_GEN_CONTEXT : BD_GEN_LENGTH);
            for (int t = 0; t < want_n[pi]; t++) {
                ck_assert_msg(c.completion[i][t] == want[pi][t], "B %d sample %d token %d: %d, reference %d", B, i, t,
                              c.completion[i][t], want[pi][t]);
                ck_assert_int_eq(c.top_ids[i][t * TK], want[pi][t]);  // greedy = top-1
            }
        }
        // Top-K log-probabilities against the reference's log-softmax, in decreasing order.
        ref_greedy(&m, p1, 5, K, -1, want[1], lp);
        for (int t = 0; t < want_n[1]; t++)
            for (int k = 0; k < TK; k++) {
                int id = c.top_ids[1][t * TK + k];
                ck_assert(id >= 0 && id < V);
                ck_assert_close(c.top_lp[1][t * TK + k], lp[(size_t)t * V + id], 1e-4);
                if (k) ck_assert(c.top_lp[1][t * TK + k] <= c.top_lp[1][t * TK + k - 1]);
            }
        ck_assert_int_eq(st.new_tokens, 2 * want_n[0] + 2 * want_n[1] + want_n[2] + want_n[3]);
        collector_free(&c);
    }

    // A stop id ends the sample and is part of it.
    int32_t stop = want[2][3];
    int32_t got_stop[16];
    int n_stop = ref_greedy(&m, p2, 3, K, stop, got_stop, NULL);
    ck_assert(n_stop <= 4);
    bd_gen_opts o = {.sampling = {0, 0, 1}, .max_new = K, .batch = 2, .stop_ids = {stop}, .n_stop = 1};
    collector c = {0};
    ck_assert_int_eq(bd_generate(&m, &prompts[2], 1, 0, 1, &o, collect, &c, NULL, NULL, 0), BD_OK);
    ck_assert_int_eq(c.n_new[0], n_stop);
    ck_assert_int_eq(c.end[0], BD_GEN_EOS);
    ck_assert_int_eq(c.completion[0][n_stop - 1], stop);
    collector_free(&c);

    // Bad input: a prompt that leaves no room, an id outside the vocabulary, bad options.
    int32_t longp[24] = {0}, badp[2] = {1, 37};
    c = (collector){0};
    int level = bd_log_level();
    bd_log_set_level(-1);  // the errors below are expected
    bd_gen_prompt bad1 = {longp, 24}, bad2 = {badp, 2};
    ck_assert_int_eq(bd_generate(&m, &bad1, 1, 0, 1, &o, collect, &c, NULL, NULL, 0), BD_ERR_ARG);
    ck_assert_int_eq(bd_generate(&m, &bad2, 1, 0, 1, &o, collect, &c, NULL, NULL, 0), BD_ERR_ARG);
    o.logits_top_k = 65;
    ck_assert_int_eq(bd_generate(&m, prompts, 1, 0, 1, &o, collect, &c, NULL, NULL, 0), BD_ERR_ARG);
    bd_log_set_level(level);
    ck_assert_int_eq(c.n, 0);
    free(lp);
    bd_model_free(&m);
}
END_TEST

// stories260K and tok512 from BD_DATA.
static void load_stories(bd_model *m, bd_tokenizer **tok) {
    char why[512];
    const char *path = bd_test_data("models/stories260K/stories260K.bin");
    ck_assert_msg(bd_model_load(path, m, why, sizeof why) == BD_OK, "%s (set BD_DATA)", why);
    ck_assert_msg(bd_tokenizer_load(bd_test_data("models/stories260K/tok512.bin"), tok, why, sizeof why) == BD_OK, "%s",
                  why);
}

START_TEST(test_stories_greedy_readme) {
    bd_model m;
    bd_tokenizer *tok;
    load_stories(&m, &tok);
    int32_t bos = 1;
    bd_gen_prompt p = {&bos, 1};
    bd_gen_opts o = {.sampling = {0, 0, 1}, .max_new = 60, .batch = 1};
    collector c = {0};
    ck_assert_int_eq(bd_generate(&m, &p, 1, 0, 1, &o, collect, &c, NULL, NULL, 0), BD_OK);
    bd_text_buf text = {0};
    ck_assert_int_eq(bd_tokenizer_decode(tok, c.completion[0], (size_t)c.n_new[0], BD_TOK_SKIP_SPECIAL, &text), BD_OK);
    const char *want = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
                       "One day, she saw a big, red ball.";
    ck_assert_msg(text.len >= strlen(want) && memcmp(text.data, want, strlen(want)) == 0, "greedy text: \"%.*s\"",
                  (int)text.len, text.data);
    bd_text_buf_free(&text);
    collector_free(&c);
    bd_tokenizer_free(tok);
    bd_model_free(&m);
}
END_TEST

// A context of 2^31-1 (as a config may claim): the cache holds prompt + max_new positions, so
// sampling 4 sequences fits in 1 GB more address space, and gives the 512-context samples.
typedef struct {
    const bd_model *m;
    const collector *want;
} long_run;

static int generate_long(void *ctx) {
    const long_run *r = ctx;
    int32_t bos = 1;
    bd_gen_prompt p = {&bos, 1};
    bd_gen_opts o = {.sampling = {0.8, 0, 1}, .max_new = 24, .batch = 4, .seed = 3};
    collector c = {0};
    if (bd_generate(r->m, &p, 1, 0, 4, &o, collect, &c, NULL, NULL, 0) != BD_OK) return 1;
    int differ = c.n != r->want->n;
    for (int i = 0; !differ && i < c.n; i++)
        differ = c.n_new[i] != r->want->n_new[i] ||
                 memcmp(c.completion[i], r->want->completion[i], sizeof(int32_t) * (size_t)c.n_new[i]);
    collector_free(&c);
    return differ ? 2 : 0;
}

START_TEST(test_stories_long_context) {
    bd_model m;
    bd_tokenizer *tok;
    load_stories(&m, &tok);
    int32_t bos = 1;
    bd_gen_prompt p = {&bos, 1};
    bd_gen_opts o = {.sampling = {0.8, 0, 1}, .max_new = 24, .batch = 4, .seed = 3};
    collector want = {0};
    ck_assert_int_eq(bd_generate(&m, &p, 1, 0, 4, &o, collect, &want, NULL, NULL, 0), BD_OK);
    m.cfg.max_seq = 2147483647;
    long_run r = {&m, &want};
    ck_assert_int_eq(bd_test_run_limited((size_t)1 << 30, generate_long, &r), 0);
    collector_free(&want);
    bd_tokenizer_free(tok);
    bd_model_free(&m);
}
END_TEST

static void assert_same(const collector *a, const collector *b, const char *what) {
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        ck_assert_msg(a->n_new[i] == b->n_new[i] && a->end[i] == b->end[i], "%s: sample %d: %d tokens (%d) vs %d (%d)",
                      what, i, a->n_new[i], a->end[i], b->n_new[i], b->end[i]);
        ck_assert_msg(!memcmp(a->completion[i], b->completion[i], sizeof(int32_t) * (size_t)a->n_new[i]),
                      "%s: sample %d differs", what, i);
    }
}

START_TEST(test_stories_batch_invariance) {
    bd_model m;
    bd_tokenizer *tok;
    load_stories(&m, &tok);
    const char *texts[3] = {"Once upon a time", "Tom and his dog went to the", "The sun was"};
    bd_token_buf buf[3] = {{0}};
    bd_gen_prompt prompts[4];
    int32_t bos = 1;
    prompts[0] = (bd_gen_prompt){&bos, 1};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(bd_tokenizer_encode(tok, texts[i], strlen(texts[i]), BD_TOK_BOS, &buf[i]), BD_OK);
        prompts[i + 1] = (bd_gen_prompt){buf[i].ids, (int)buf[i].n};
    }
    const int N = 24;
    bd_gen_opts o = {.sampling = {0.7, 0, 1.0}, .max_new = 48, .seed = 1234, .stop_ids = {1, 2}, .n_stop = 2};
    collector ref = {0}, c = {0};
    o.batch = 1;
    ck_assert_int_eq(bd_generate(&m, prompts, 4, 0, N, &o, collect, &ref, NULL, NULL, 0), BD_OK);
    // Sampling is on: samples of the same prompt differ (their own RNG streams).
    ck_assert(ref.n_new[0] != ref.n_new[4] ||
              memcmp(ref.completion[0], ref.completion[4], sizeof(int32_t) * ref.n_new[0]));
    int ends[3] = {0};
    for (int i = 0; i < N; i++) ends[ref.end[i]]++;
    ck_assert_int_eq(ends[BD_GEN_CONTEXT], 0);
    ck_assert_int_eq(ends[BD_GEN_EOS] + ends[BD_GEN_LENGTH], N);
    for (int B = 7; B <= 16; B += 9) {
        c = (collector){0};
        o.batch = B;
        ck_assert_int_eq(bd_generate(&m, prompts, 4, 0, N, &o, collect, &c, NULL, NULL, 0), BD_OK);
        assert_same(&ref, &c, B == 7 ? "batch 7" : "batch 16");
        collector_free(&c);
    }
    // Top-p and top-k change the samples but keep batch invariance.
    o.sampling = (bd_sampling){0.9, 20, 0.9};
    collector a = {0}, b = {0};
    o.batch = 1;
    ck_assert_int_eq(bd_generate(&m, prompts, 4, 0, 8, &o, collect, &a, NULL, NULL, 0), BD_OK);
    o.batch = 16;
    ck_assert_int_eq(bd_generate(&m, prompts, 4, 0, 8, &o, collect, &b, NULL, NULL, 0), BD_OK);
    assert_same(&a, &b, "top-k/top-p batch 16");
    collector_free(&a), collector_free(&b);

    // Stop after 5 samples (flag set from the callback), then continue from there: the same
    // samples as the uninterrupted run.
    o.sampling = (bd_sampling){0.7, 0, 1.0};
    o.batch = 6;
    volatile sig_atomic_t stop = 0;
    o.stop = &stop;
    c = (collector){.stop = &stop, .stop_after = 5};
    bd_gen_stats st;
    ck_assert_int_eq(bd_generate(&m, prompts, 4, 0, N, &o, collect, &c, &st, NULL, 0), BD_OK);
    ck_assert(c.n >= 5 && c.n < N);
    ck_assert_int_eq(st.samples, c.n);
    stop = 0;
    c.stop_after = 0;
    c.expect_index = c.first = c.n;
    int before = c.n;
    ck_assert_int_eq(bd_generate(&m, prompts, 4, before, N, &o, collect, &c, &st, NULL, 0), BD_OK);
    ck_assert_int_eq(st.samples, N - before);
    assert_same(&ref, &c, "stopped and continued");
    collector_free(&c);

    collector_free(&ref);
    for (int i = 0; i < 3; i++) bd_token_buf_free(&buf[i]);
    bd_tokenizer_free(tok);
    bd_model_free(&m);
}
END_TEST

// Shards: the samples of shard k of n (k, k+n, ... in that order) are the whole run's samples,
// bit for bit, tokens and top-K log-probabilities both, whether n shares a factor with the
// batch or not; a shard stopped and continued gives the same.
typedef struct {
    int64_t next, step;  // the index expected next, and the shard's step
    int n;
    int64_t index[MAX_SAMPLES];
    int32_t *completion[MAX_SAMPLES];
    float *top_lp[MAX_SAMPLES];
    int n_new[MAX_SAMPLES];
    volatile sig_atomic_t *stop;
    int stop_after;
} shard_collector;

static int collect_shard(void *ctx, const bd_gen_sample *s, const bd_gen_stats *st) {
    shard_collector *c = ctx;
    ck_assert_int_eq(s->index, c->next);
    c->next += c->step;
    int i = c->n++;
    c->index[i] = s->index, c->n_new[i] = s->n_new;
    c->completion[i] = malloc(sizeof(int32_t) * (size_t)s->n_new);
    c->top_lp[i] = malloc(sizeof(float) * (size_t)s->n_new * 4);
    memcpy(c->completion[i], s->completion, sizeof(int32_t) * (size_t)s->n_new);
    memcpy(c->top_lp[i], s->top_logprobs, sizeof(float) * (size_t)s->n_new * 4);
    if (c->stop && c->stop_after && c->n == c->stop_after) *c->stop = 1;
    return 0;
}

static void shard_collector_free(shard_collector *c) {
    for (int i = 0; i < c->n; i++) free(c->completion[i]), free(c->top_lp[i]);
}

START_TEST(test_stories_shards) {
    bd_model m;
    bd_tokenizer *tok;
    load_stories(&m, &tok);
    int32_t bos = 1, p1[3] = {1, 403, 261};
    bd_gen_prompt prompts[2] = {{&bos, 1}, {p1, 3}};
    // A batch of 20: rows beyond the sgemm kernel's first block of rows, where a row's place
    // changes the last bits of its logits (a shard that ran sample i in another row would
    // show it in the log-probabilities).
    const int N = 43;
    bd_gen_opts o = {.sampling = {0.8, 0, 1.0},
                     .max_new = 24,
                     .batch = 20,
                     .seed = 99,
                     .stop_ids = {1, 2},
                     .n_stop = 2,
                     .logits_top_k = 4};
    shard_collector whole = {.step = 1};
    ck_assert_int_eq(bd_generate(&m, prompts, 2, 0, N, &o, collect_shard, &whole, NULL, NULL, 0), BD_OK);
    ck_assert_int_eq(whole.n, N);
    const int shards[2] = {3, 4};  // 4 shares a factor with the batch of 20
    for (int si = 0; si < 2; si++)
        for (int k = 0; k < shards[si]; k++) {
            o.shard_k = k, o.shard_n = shards[si];
            shard_collector c = {.next = k, .step = shards[si]};
            bd_gen_stats st;
            ck_assert_int_eq(bd_generate(&m, prompts, 2, 0, N, &o, collect_shard, &c, &st, NULL, 0), BD_OK);
            ck_assert_int_eq(c.n, (N - k + shards[si] - 1) / shards[si]);
            ck_assert_int_eq(st.samples, c.n);
            for (int j = 0; j < c.n; j++) {
                int64_t i = c.index[j];
                ck_assert_msg(c.n_new[j] == whole.n_new[i] &&
                                      !memcmp(c.completion[j], whole.completion[i], sizeof(int32_t) * c.n_new[j]) &&
                                      !memcmp(c.top_lp[j], whole.top_lp[i], sizeof(float) * 4 * c.n_new[j]),
                              "shard %d/%d: sample %lld differs from the whole run's", k, shards[si], (long long)i);
            }
            shard_collector_free(&c);
        }
    // Shard 1/4 stopped after 2 samples, continued from there: its samples all the same.
    volatile sig_atomic_t stop = 0;
    o.shard_k = 1, o.shard_n = 4, o.stop = &stop;
    shard_collector c = {.next = 1, .step = 4, .stop = &stop, .stop_after = 2};
    ck_assert_int_eq(bd_generate(&m, prompts, 2, 0, N, &o, collect_shard, &c, NULL, NULL, 0), BD_OK);
    ck_assert(c.n >= 2 && c.n < 11);
    stop = 0, c.stop_after = 0;
    ck_assert_int_eq(bd_generate(&m, prompts, 2, c.n, N, &o, collect_shard, &c, NULL, NULL, 0), BD_OK);
    ck_assert_int_eq(c.n, 11);
    for (int j = 0; j < c.n; j++)
        ck_assert_msg(!memcmp(c.top_lp[j], whole.top_lp[1 + 4 * j], sizeof(float) * 4 * c.n_new[j]),
                      "continued shard: sample %d differs", 1 + 4 * j);
    shard_collector_free(&c);
    // A shard out of range is refused.
    o.shard_k = 4, o.stop = NULL;
    char why[200];
    ck_assert_int_eq(bd_generate(&m, prompts, 2, 0, N, &o, collect_shard, &c, NULL, why, sizeof why), BD_ERR_ARG);
    shard_collector_free(&whole);
    bd_tokenizer_free(tok);
    bd_model_free(&m);
}
END_TEST

Suite *suite_generate(void) {
    Suite *s = suite_create("generate");
    TCase *tc = tcase_create("generate");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_greedy_equals_reference);
    tcase_add_test(tc, test_stories_greedy_readme);
    tcase_add_test(tc, test_stories_batch_invariance);
    tcase_add_test(tc, test_stories_long_context);
    tcase_add_test(tc, test_stories_shards);
    suite_add_tcase(s, tc);
    return s;
}
