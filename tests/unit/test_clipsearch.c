// The clipping search over a model (bd_clipsearch): the position sample is a permutation led by
// its sample; the layers searched follow the policy in order; layer 0's ranges are those the
// plain search finds on inputs computed here from the embeddings (RMSNorm written out).
#include <stdio.h>
#include <string.h>

#include "bd_clipsearch.h"
#include "bd_test.h"

static uint64_t st = 0xDA942042E4DD58B5ull;
static float rnd(void) {
    st ^= st << 13, st ^= st >> 7, st ^= st << 17;
    return (float)((st >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

START_TEST(test_clip_positions) {
    enum { n = 50 };
    int pos[n], again[n], seen[n];
    int Ns[3] = {0, 10, n};
    for (int k = 0; k < 3; k++) {
        bd_clip_positions(pos, n, Ns[k], 3);
        memset(seen, 0, sizeof seen);
        for (int i = 0; i < n; i++) seen[pos[i]]++;
        for (int i = 0; i < n; i++) ck_assert_int_eq(seen[i], 1);
        for (int i = Ns[k]; i < n && k == 0; i++) ck_assert_int_eq(pos[i], i);  // nothing drawn: in order
        bd_clip_positions(again, n, Ns[k], 3);
        ck_assert_int_eq(memcmp(pos, again, sizeof pos), 0);
    }
    bd_clip_positions(pos, n, 10, 3);
    bd_clip_positions(again, n, 10, 4);
    ck_assert_int_ne(memcmp(pos, again, 10 * sizeof(int)), 0);
}
END_TEST

typedef struct {
    char names[32][16];
    int n, stop_at;
    float mx[64 * 64], mn[64 * 64];  // of the first layer
    uint64_t last_progress;
} seen_layers;

static int collect(void *ctx, const char *tensor, int layer, const float *mx, const float *mn, int OC, int NG) {
    seen_layers *s = ctx;
    if (s->n == s->stop_at) return BD_ERR_IO;
    if (s->n == 0) {
        memcpy(s->mx, mx, sizeof(float) * (size_t)OC * NG);
        memcpy(s->mn, mn, sizeof(float) * (size_t)OC * NG);
    }
    snprintf(s->names[s->n++], 16, "%d.%s", layer, tensor);
    return BD_OK;
}

static void progress(void *ctx, uint64_t done) { ((seen_layers *)ctx)->last_progress = done; }

START_TEST(test_clip_model) {
    bd_test_variant v = {"tiny", 16, 2, 4, 2, 4, 24, 29, BD_ROPE_HALF, false, false, false};
    bd_config c = bd_test_variant_config(&v);
    bd_model m;
    bd_test_random_model(&m, &c, rnd);
    enum { B = 2, T = 8, N = 12, C = 16 };
    int32_t ids[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 11 + 4) % 29;
    bd_fwd_state fs;
    char why[300];
    ck_assert_int_eq(bd_clip_calibrate(&fs, &m, ids, B, T, why, sizeof why), BD_OK);
    int pos[B * T];
    bd_clip_positions(pos, B * T, N, 5);
    bd_clip_opts o = {.q = {BD_Q_INT, 3, 8}, .grid = {10, 4}};
    ck_assert_int_eq(bd_qpolicy_exclude(&o.policy, "layers.1.*"), BD_OK);
    seen_layers *s = calloc(1, sizeof *s);
    s->stop_at = -1;
    int searched;
    ck_assert_int_eq(bd_clip_model(&m, &fs, pos, N, &o, collect, progress, s, &searched, why, sizeof why), BD_OK);
    const char *want[] = {"0.wv", "0.wo", "0.w1", "0.w3", "0.w2"};
    ck_assert_int_eq(searched, 5);
    ck_assert_int_eq(s->n, 5);
    for (int i = 0; i < 5; i++) ck_assert_str_eq(s->names[i], want[i]);
    ck_assert_int_eq(s->last_progress, 13);  // layer 1's w2: 1*7 + 6
    // Layer 0's wv: its input is RMSNorm(embedding) * rms_att at the sampled positions.
    float X[N * C], mx[8 * 2], mn[8 * 2];
    for (int i = 0; i < N; i++) {
        const float *e = m.w.tok_emb + (size_t)ids[pos[i]] * C;
        double ss = 0;
        for (int k = 0; k < C; k++) ss += (double)e[k] * e[k];
        double r = 1.0 / sqrt(ss / C + c.norm_eps);
        for (int k = 0; k < C; k++) X[i * C + k] = (float)(e[k] * r * m.w.rms_att[k]);
    }
    ck_assert_int_eq(bd_clip_search_ref(mx, mn, m.w.wv, X, N, 8, C, &o.q, o.grid), BD_OK);
    for (int i = 0; i < 8 * 2; i++) {
        ck_assert_close(s->mx[i], mx[i], 1e-6);
        ck_assert_close(s->mn[i], mn[i], 1e-6);
    }
    // With q and k, no exclusion: every linear layer; an emit error stops the search.
    bd_clip_opts all = {.q = {BD_Q_INT, 3, 8}, .grid = {10, 4}, .include_qk = true};
    memset(s, 0, sizeof *s);
    s->stop_at = -1;
    ck_assert_int_eq(bd_clip_model(&m, &fs, pos, N, &all, collect, NULL, s, &searched, why, sizeof why), BD_OK);
    ck_assert_int_eq(searched, 14);
    ck_assert_str_eq(s->names[7], "1.wq");
    memset(s, 0, sizeof *s);
    s->stop_at = 3;
    ck_assert_int_eq(bd_clip_model(&m, &fs, pos, N, &all, collect, NULL, s, &searched, why, sizeof why), BD_ERR_IO);
    ck_assert_int_eq(searched, 3);
    free(s);
    bd_fwd_state_free(&fs);
    bd_model_free(&m);
}
END_TEST

Suite *suite_clipsearch(void) {
    Suite *s = suite_create("clipsearch");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_clip_positions);
    tcase_add_test(tc, test_clip_model);
    suite_add_tcase(s, tc);
    return s;
}
