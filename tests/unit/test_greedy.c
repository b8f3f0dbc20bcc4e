// Greedy generation (bd_greedy) against the plain loop: run the reference forward over the whole
// sequence so far and append the first most probable token; EOS ends it unsaid.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_forward.h"
#include "bd_greedy.h"
#include "bd_model_io.h"
#include "bd_test.h"

static uint64_t st = 0x6A09E667F3BCC909ull;
static float rnd(void) {
    st ^= st << 13, st ^= st >> 7, st ^= st << 17;
    return (float)((st >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

typedef struct {
    int32_t seq[64];
    int n, fail_at;
} got;

static int take(void *ctx, int32_t prev, int32_t cur) {
    got *g = ctx;
    if (g->n == g->fail_at) return BD_ERR_IO;
    ck_assert_int_eq(prev, g->n ? g->seq[g->n - 1] : -1);
    g->seq[g->n++] = cur;
    return BD_OK;
}

START_TEST(test_greedy_matches_plain_loop) {
    bd_test_variant v = {"tiny", 16, 2, 4, 2, 4, 24, 31, BD_ROPE_HALF, false, false, false};
    bd_config c = bd_test_variant_config(&v);
    c.max_seq = 12;
    bd_model m;
    bd_test_random_model(&m, &c, rnd);
    int32_t seq[12] = {1, 5, 7};
    int n = 3;
    float lg[12 * 31];
    while (n < 12) {  // the plain loop, to the end of the context
        ck_assert_int_eq(bd_forward_ref(&m, seq, 1, n, lg, NULL, 0), BD_OK);
        const float *x = lg + (size_t)(n - 1) * 31;
        int best = 0;
        for (int k = 1; k < 31; k++)
            if (x[k] > x[best]) best = k;
        seq[n++] = best;
    }
    char why[300];
    got g = {.fail_at = -1};
    ck_assert_int_eq(bd_greedy(&m, seq, 3, 5, -1, take, &g, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(g.n, 3 + 5);
    for (int i = 0; i < g.n; i++) ck_assert_int_eq(g.seq[i], seq[i]);
    g.n = 0;  // a prompt that fills most of the context is read in one pass, then 2 steps
    bd_greedy_stats gs;
    ck_assert_int_eq(bd_greedy(&m, seq, 9, 2, -1, take, &g, &gs, why, sizeof why), BD_OK);
    ck_assert_int_eq(g.n, 11);
    for (int i = 0; i < g.n; i++) ck_assert_int_eq(g.seq[i], seq[i]);
    ck_assert_int_eq(gs.prefill_tokens, 9);
    ck_assert(gs.prefill_seconds >= 0);
    g.n = 0;  // no new tokens: the prompt is handed over, nothing is computed
    ck_assert_int_eq(bd_greedy(&m, seq, 4, 0, -1, take, &g, &gs, why, sizeof why), BD_OK);
    ck_assert_int_eq(g.n, 4);
    ck_assert_int_eq(gs.prefill_tokens, 0);
    g.n = 0;  // more than the context holds: it stops there
    ck_assert_int_eq(bd_greedy(&m, seq, 3, 50, -1, take, &g, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(g.n, 12);
    for (int i = 0; i < 12; i++) ck_assert_int_eq(g.seq[i], seq[i]);
    g.n = 0;  // EOS: the first new token equal to seq[4] ends it, not handed over
    ck_assert_int_eq(bd_greedy(&m, seq, 3, 9, seq[4], take, &g, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(g.n, seq[3] == seq[4] ? 3 : 4);
    g = (got){.fail_at = 2};
    ck_assert_int_eq(bd_greedy(&m, seq, 3, 5, -1, take, &g, NULL, why, sizeof why), BD_ERR_IO);
    ck_assert_int_eq(bd_greedy(&m, seq, 12, 5, -1, take, &g, NULL, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "the prompt is 12 tokens, the model's context is 12"), "%s", why);
    // An output head of zeros ties every token: the first, id 0, wins.
    memset(m.w.wcls, 0, sizeof(float) * 31 * 16);
    g = (got){.fail_at = -1};
    ck_assert_int_eq(bd_greedy(&m, seq, 3, 2, -1, take, &g, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(g.n, 5);
    ck_assert_int_eq(g.seq[3], 0);
    ck_assert_int_eq(g.seq[4], 0);
    bd_model_free(&m);
}
END_TEST

// stories260K as a Hugging Face directory whose config claims a context of 2^31-1: a few
// tokens of greedy generation fit in 1 GB more address space than the process has (a cache
// for the whole context would take 2.7 TB), and they are the 512-context model's tokens.
static void hf_with_context(const bd_model *m, const char *dir, const char *context) {
    char why[300], path[4400];
    ck_assert_msg(bd_model_save_hf(m, dir, BD_F32, why, sizeof why) == BD_OK, "%s", why);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char text[8192], out[8300];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    const char *at = strstr(text, "\"max_position_embeddings\"");
    ck_assert_ptr_nonnull(at);
    at += strlen("\"max_position_embeddings\"");
    at += strspn(at, ": \t\n");
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, context, at + strspn(at, "0123456789"));
    ck_assert_ptr_nonnull(f = fopen(path, "wb"));
    fputs(out, f);
    fclose(f);
}

typedef struct {
    const bd_model *m;
    const got *want;
} greedy_run;

// 0: the want tokens came; 1: bd_greedy failed; 2: other tokens came.
static int run_greedy(void *ctx) {
    const greedy_run *r = ctx;
    int32_t bos = 1;
    char why[300];
    got seen = {.fail_at = -1};
    int rc = bd_greedy(r->m, &bos, 1, 20, -1, take, &seen, NULL, why, sizeof why);
    if (rc < 0) fprintf(stderr, "bd_greedy: %s\n", why);
    if (rc < 0) return 1;
    return seen.n == r->want->n && !memcmp(seen.seq, r->want->seq, sizeof(int32_t) * (size_t)seen.n) ? 0 : 2;
}

START_TEST(test_greedy_cache_for_the_run) {
    bd_model m, big;
    char why[300];
    ck_assert_msg(bd_model_load(bd_test_data("models/stories260K/stories260K.bin"), &m, why, sizeof why) == BD_OK, "%s",
                  why);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/hf_long_context", bd_test_tmpdir());
    hf_with_context(&m, dir, "2147483647");
    ck_assert_msg(bd_model_load(dir, &big, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(big.cfg.max_seq, 2147483647);
    int32_t bos = 1;
    got want = {.fail_at = -1};
    ck_assert_int_eq(bd_greedy(&m, &bos, 1, 20, -1, take, &want, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(want.n, 21);
    greedy_run run = {&big, &want};
    ck_assert_int_eq(bd_test_run_limited((size_t)1 << 30, run_greedy, &run), 0);
    bd_model_free(&big);
    bd_model_free(&m);
}
END_TEST

Suite *suite_greedy(void) {
    Suite *s = suite_create("greedy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_greedy_matches_plain_loop);
    tcase_add_test(tc, test_greedy_cache_for_the_run);
    suite_add_tcase(s, tc);
    return s;
}
