// Training: the training forward gives bd_forward_nll's loss; recomputation gives the same
// gradient as keeping activations; gradient accumulation over micro-batches equals one big
// batch; runs are deterministic; checkpoints round-trip and a resumed run reaches the same
// weights bit for bit (one thread); a weights file that does not match its state is refused;
// the epoch order is a seeded permutation; and stories260K trained for a few steps on real
// text sees its loss fall.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bd_ckpt.h"
#include "bd_forward.h"
#include "bd_model_io.h"
#include "bd_test.h"
#include "bd_threads.h"
#include "bd_tokenizer.h"
#include "bd_train.h"

static uint64_t rng = 0x853C49E6748FEA9Bull;
static float urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

static bd_config tiny_config(bool qk_norm) {
    bd_config c = {0};
    snprintf(c.arch, sizeof c.arch, "llama");
    c.dim = 16, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 4, c.ffn_dim = 24, c.vocab = 29;
    c.max_seq = 64, c.norm_eps = 1e-5f, c.rope_theta = 10000.0f, c.rope = BD_ROPE_HALF, c.qk_norm = qk_norm;
    c.qkv_bias = qk_norm, c.bos = 1, c.eos = 2;
    return c;
}

static void random_model(bd_model *m, const bd_config *c) {
    ck_assert_int_eq(bd_model_alloc(m, c), BD_OK);
    bd_param_entry t[BD_MAX_PARAMS];
    int n = bd_param_table(c, t, NULL);
    for (int i = 0; i < n; i++) {
        bool norm = strstr(t[i].name, "norm") || !strncmp(t[i].name, "rms", 3);
        for (size_t j = 0; j < t[i].numel; j++)
            m->params[t[i].offset + j] = (norm ? 1.0f : 0.0f) + (norm ? 0.2f : 0.4f) * urand();
    }
}

static void random_tokens(int32_t *tok, int n, int V) {
    for (int i = 0; i < n; i++) tok[i] = (int32_t)((urand() + 1) * 0.5f * V) % V;
}

START_TEST(test_forward_matches_and_recompute) {
    bd_config c = tiny_config(true);
    bd_model m;
    random_model(&m, &c);
    int B = 3, T = 11;
    int32_t tok[33];
    random_tokens(tok, B * T, c.vocab);
    bd_fwd_state fs;
    ck_assert_int_eq(bd_fwd_state_init(&fs, &c, B, T, false), BD_OK);
    double want;
    int n = bd_forward_nll(&fs, &m, tok, NULL, B, T, &want);
    float *g[2];
    for (int r = 0; r < 2; r++) {
        bd_train_state st;
        ck_assert_int_eq(bd_train_state_init(&st, &c, B, T, r == 1), BD_OK);
        g[r] = calloc(m.n_params, sizeof(float));
        bd_weights gw;
        bd_weights_layout(&c, g[r], &gw);
        double loss;
        ck_assert_int_eq(bd_train_fwd_bwd(&st, &m, &gw, tok, NULL, B, T, 1.0f / n, NULL, &loss), n);
        ck_assert_close(loss, want, 1e-6);
        for (int i = 0; i < B * T; i++) ck_assert(st.losses[i] == fs.losses[i]);  // same kernels, same order
        bd_train_state_free(&st);
    }
    ck_assert(bd_train_state_bytes(&c, B, T, true) < bd_train_state_bytes(&c, B, T, false));
    ck_assert_mem_eq(g[0], g[1], m.n_params * sizeof(float));
    free(g[0]), free(g[1]);
    bd_fwd_state_free(&fs);
    bd_model_free(&m);
}
END_TEST

static void train_steps(bd_model *m, int B, int accum, const int32_t *tok, int T, int steps) {
    bd_trainer tr;
    bd_adamw_cfg oc = {0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, BD_F32};
    bd_schedule sc = {BD_SCHED_COSINE, 1e-2f, 1e-3f, 2, steps};
    ck_assert_int_eq(bd_trainer_init(&tr, m, B, T, accum, &oc, &sc, false), BD_OK);
    for (int s = 0; s < steps; s++) {
        bd_step_stats st;
        ck_assert_int_eq(bd_trainer_step(&tr, tok, NULL, B, T, NULL, &st), BD_OK);
        ck_assert(isfinite(st.loss) && st.scored == (long long)B * accum * (T - 1));
    }
    bd_trainer_free(&tr);
}

START_TEST(test_accumulation_and_determinism) {
    bd_config c = tiny_config(false);
    bd_model a, b, d;
    random_model(&a, &c);
    ck_assert_int_eq(bd_model_alloc(&b, &c), BD_OK);
    ck_assert_int_eq(bd_model_alloc(&d, &c), BD_OK);
    memcpy(b.params, a.params, a.n_params * sizeof(float));
    memcpy(d.params, a.params, a.n_params * sizeof(float));
    int T = 9;
    int32_t tok[4 * 9];
    random_tokens(tok, 4 * T, c.vocab);
    train_steps(&a, 4, 1, tok, T, 3);  // one batch of 4
    train_steps(&b, 2, 2, tok, T, 3);  // two micro-batches of 2, the same sequences
    train_steps(&d, 4, 1, tok, T, 3);  // a repeat of a
    double mx = 0;
    for (size_t i = 0; i < a.n_params; i++) mx = fmax(mx, fabs(a.params[i] - b.params[i]));
    ck_assert_msg(mx < 1e-5, "accumulated and single-batch steps differ by %g", mx);
    ck_assert_mem_eq(a.params, d.params, a.n_params * sizeof(float));
    bd_model_free(&a), bd_model_free(&b), bd_model_free(&d);
}
END_TEST

START_TEST(test_epoch_order) {
    long long p[50], q[50], r[50];
    bd_epoch_order(p, 50, 7, 0);
    bd_epoch_order(q, 50, 7, 0);
    bd_epoch_order(r, 50, 7, 1);
    int seen[50] = {0}, same = 0;
    for (int i = 0; i < 50; i++) {
        ck_assert(p[i] >= 0 && p[i] < 50);
        seen[p[i]]++;
        ck_assert(p[i] == q[i]);
        same += p[i] == r[i];
    }
    for (int i = 0; i < 50; i++) ck_assert_int_eq(seen[i], 1);
    ck_assert_int_lt(same, 10);  // another epoch, another order
}
END_TEST

// Checkpoint at step 2 of 4, resume, and compare with 4 uninterrupted steps: bit-identical,
// with f32 moments (_i 0) and bf16 moments (_i 1, stored as bf16).
START_TEST(test_checkpoint_resume) {
    bd_dtype dt = _i ? BD_BF16 : BD_F32;
    bd_set_num_threads(1);
    bd_config c = tiny_config(true);
    bd_model a, b;
    random_model(&a, &c);
    ck_assert_int_eq(bd_model_alloc(&b, &c), BD_OK);
    memcpy(b.params, a.params, a.n_params * sizeof(float));
    int B = 2, T = 8;
    int32_t tok[16];
    random_tokens(tok, B * T, c.vocab);
    bd_adamw_cfg oc = {0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, dt};
    bd_schedule sc = {BD_SCHED_COSINE, 1e-2f, 1e-3f, 1, 4};
    bd_trainer ta, tb;
    bd_step_stats st;
    ck_assert_int_eq(bd_trainer_init(&ta, &a, B, T, 1, &oc, &sc, false), BD_OK);
    for (int s = 0; s < 4; s++) ck_assert_int_eq(bd_trainer_step(&ta, tok, NULL, B, T, NULL, &st), BD_OK);
    ck_assert_int_eq(bd_trainer_init(&tb, &b, B, T, 1, &oc, &sc, false), BD_OK);
    for (int s = 0; s < 2; s++) ck_assert_int_eq(bd_trainer_step(&tb, tok, NULL, B, T, NULL, &st), BD_OK);
    char path[512], why[600];
    snprintf(path, sizeof path, "%s/ck.state", bd_test_tmpdir());
    bd_ckpt_info info = {2, 1, 7, 32, 99, B, T, 1, 0.625, 0xfeedull, 1.5, "loss fkl, teacher the starting model"}, got;
    char recs[] = "\x81\xa4step\x01\x81\xa4step\x02";  // the metrics log: {"step":1} {"step":2}
    bd_ckpt_log log = {recs, sizeof recs - 1, 2}, lg;
    bd_producer prod = {"test", 0, NULL};
    ck_assert_int_eq(bd_ckpt_save(path, &b, &tb.opt, &info, NULL, &prod, why, sizeof why), BD_OK);
    info.step = 1;  // an older generation is removed by the next save
    ck_assert_int_eq(bd_ckpt_save(path, &b, &tb.opt, &info, NULL, &prod, why, sizeof why), BD_OK);
    info.step = 2;
    ck_assert_int_eq(bd_ckpt_save(path, &b, &tb.opt, &info, &log, &prod, why, sizeof why), BD_OK);
    char w1[600];
    snprintf(w1, sizeof w1, "%s.w1", path);
    ck_assert_int_ne(access(w1, F_OK), 0);
    bd_trainer_free(&tb);
    bd_model_free(&b);

    bd_model r;
    bd_ckpt_moments mom;
    ck_assert_int_eq(bd_ckpt_load(path, &r, &got, &mom, &lg, why, sizeof why), BD_OK);
    long long t = mom.t;
    ck_assert_int_eq(mom.dtype, dt);
    ck_assert(got.step == 2 && got.epoch == 1 && got.pos == 7 && got.tokens == 32 && got.seed == 99 && got.batch == B &&
              got.seq_len == T && got.grad_accum == 1 && got.gamma == 0.625 && got.data_hash == 0xfeedull &&
              got.seconds == 1.5 && t == 2 && !strcmp(got.objective, info.objective));
    ck_assert(lg.records == 2 && lg.len == log.len && !memcmp(lg.data, recs, log.len));
    free(lg.data);
    bd_trainer tr;
    ck_assert_int_eq(bd_trainer_init(&tr, &r, B, T, 1, &oc, &sc, false), BD_OK);
    size_t half = r.n_params * bd_dtype_size(dt);
    ck_assert_int_eq(bd_adamw_set_moments(&tr.opt, dt, mom.data, (char *)mom.data + half, t), BD_OK);
    tr.step = got.step;
    free(mom.data);
    for (int s = 0; s < 2; s++) ck_assert_int_eq(bd_trainer_step(&tr, tok, NULL, B, T, NULL, &st), BD_OK);
    ck_assert_mem_eq(r.params, a.params, a.n_params * sizeof(float));
    ck_assert_mem_eq(bd_adamw_moment(&tr.opt, 0), bd_adamw_moment(&ta.opt, 0), 2 * half);  // m then v

    // A weights file that is not the one the state names: refused.
    char wpath[600];
    snprintf(wpath, sizeof wpath, "%s.w2", path);
    ck_assert_int_eq(bd_model_save(&a, wpath, &prod, BD_F32, why, sizeof why), BD_OK);
    bd_model x;
    ck_assert_int_eq(bd_ckpt_load(path, &x, &got, &mom, NULL, why, sizeof why), BD_ERR_SCHEMA);
    ck_assert_ptr_null(mom.data);
    ck_assert_msg(strstr(why, "does not match"), "%s", why);
    bd_trainer_free(&tr);
    bd_trainer_free(&ta);
    bd_model_free(&r);
    bd_model_free(&a);
    bd_set_num_threads(0);
}
END_TEST

// stories260K, 6 steps on 8 sequences of 64 tokens of real text: the loss on them falls.
START_TEST(test_stories260k_loss_falls) {
    bd_model m;
    char why[600];
    if (bd_model_load(bd_test_data("models/stories260K/stories260K.bin"), &m, why, sizeof why) < 0)
        ck_abort_msg("%s", why);
    bd_tokenizer *tk = NULL;
    ck_assert_int_eq(bd_tokenizer_load(bd_test_data("models/stories260K/tok512.bin"), &tk, why, sizeof why), BD_OK);
    FILE *f = fopen(bd_test_data("eval/tinystories/tinystories_val_a.txt"), "rb");
    ck_assert_ptr_nonnull(f);
    char text[8192];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    bd_token_buf ids = {0};
    ck_assert_int_eq(bd_tokenizer_encode(tk, text, len, BD_TOK_BOS, &ids), BD_OK);
    int B = 8, T = 64;
    ck_assert(ids.n >= (size_t)B * T);
    bd_trainer tr;
    bd_adamw_cfg oc = {0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, BD_F32};
    bd_schedule sc = {BD_SCHED_CONSTANT, 5e-4f, 0, 0, 6};
    ck_assert_int_eq(bd_trainer_init(&tr, &m, B, T, 1, &oc, &sc, false), BD_OK);
    bd_step_stats st;
    double first = 0;
    for (int s = 0; s < 6; s++) {
        ck_assert_int_eq(bd_trainer_step(&tr, ids.ids, NULL, B, T, NULL, &st), BD_OK);
        if (s == 0) first = st.loss;
    }
    bd_fwd_state fs;
    ck_assert_int_eq(bd_fwd_state_init(&fs, &m.cfg, B, T, false), BD_OK);
    double after;
    ck_assert_int_ge(bd_forward_nll(&fs, &m, ids.ids, NULL, B, T, &after), 1);
    printf("train stories260K: loss %.4f at step 1, %.4f after 6 steps\n", first, after);
    ck_assert(first > 1.0 && first < 3.0);  // a trained model on its own kind of text
    ck_assert_msg(after < first - 0.05, "loss %.4f -> %.4f did not fall", first, after);
    bd_fwd_state_free(&fs);
    bd_trainer_free(&tr);
    bd_token_buf_free(&ids);
    bd_tokenizer_free(tk);
    bd_model_free(&m);
}
END_TEST

Suite *suite_train(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_forward_matches_and_recompute);
    tcase_add_test(tc, test_accumulation_and_determinism);
    tcase_add_test(tc, test_epoch_order);
    tcase_add_loop_test(tc, test_checkpoint_resume, 0, 2);
    tcase_add_test(tc, test_stories260k_loss_falls);
    suite_add_tcase(s, tc);
    return s;
}
