// The QAT run (bd_qat_setup) on a tiny random model, against plain computations from the
// reference forward pass: cakld's g for a live teacher and for stored log-probabilities (worked
// by hand), the teacher's logits of a step, a step's loss for cross-entropy and for cakld on a
// fake-quantized student (mean and per-sequence sums), the epochs' data order, the evaluation,
// and loading a student as stored or as it runs. Errors come back as codes with reasons.
#include <string.h>

#include "bd_forward.h"
#include "bd_model_io.h"
#include "bd_qat_setup.h"
#include "bd_qmodel.h"
#include "bd_test_streams.h"

static uint64_t st = 0x2545F4914F6CDD1Dull;
static float rnd(void) {
    st ^= st << 13, st ^= st >> 7, st ^= st << 17;
    return (float)((st >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

enum { V = 23 };
static const bd_test_variant tiny = {"tiny", 16, 2, 4, 2, 4, 24, V, BD_ROPE_HALF, false, false, false};

static void model(bd_model *m) {
    bd_config c = bd_test_variant_config(&tiny);
    bd_test_random_model(m, &c, rnd);
}

static void copy_model(bd_model *dst, const bd_model *src) {
    ck_assert_int_eq(bd_model_alloc(dst, &src->cfg), BD_OK);
    memcpy(dst->params, src->params, src->n_params * sizeof(float));
}

// Sequences of T random tokens, targets the next token (the last position predicts ids[T]).
static void random_seqs(bd_seqs *s, int n, int T) {
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n * T + 1));
    for (int i = 0; i <= n * T; i++) ids[i] = (int32_t)((rnd() + 1) * 0.5f * V) % V;
    ck_assert_int_eq(bd_seqs_from_ids(s, ids, (size_t)n * T + 1, T), BD_OK);
    free(ids);
}

// log_softmax of one row, in double.
static void log_softmax(double *out, const float *x) {
    double mx = -INFINITY, z = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, x[v]);
    for (int v = 0; v < V; v++) z += exp(x[v] - mx);
    for (int v = 0; v < V; v++) out[v] = x[v] - mx - log(z);
}

static float *ref_logits(const bd_model *m, const int32_t *tok, int B, int T) {
    float *lg = malloc(sizeof(float) * (size_t)B * T * V);
    ck_assert_int_eq(bd_forward_ref(m, tok, B, T, lg, NULL, 0), BD_OK);
    return lg;
}

START_TEST(test_gamma_stored_by_hand) {
    // Two sequences of T = 2 with TK = 2; scored positions (0,1) and (1,0).
    int32_t tgt[4] = {-1, 3, 4, -1}, tok[4] = {0}, ids[8] = {0};
    float lp[8] = {-9, -9, -0.2f, -1.7f, -2.0f, -0.7f, -9, -9};
    bd_seqs s = {.T = 2, .n = 2, .tok = tok, .tgt = tgt, .tk = 2, .top_ids = ids, .top_lp = lp};
    bd_qat_teacher t;
    bd_config c = bd_test_variant_config(&tiny);
    char why[300];
    ck_assert_int_eq(bd_qat_teacher_init(&t, NULL, &c, 1, 2, 1, why, sizeof why), BD_OK);
    double g;
    long long n;
    ck_assert_int_eq(bd_qat_gamma(&t, &s, &g, &n, NULL, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_close(g, (exp(-0.2) + exp(-0.7)) / 2, 1e-7);
    tgt[1] = tgt[2] = -1;  // nothing scored
    ck_assert_int_eq(bd_qat_gamma(&t, &s, &g, &n, NULL, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_close(g, 0.5, 0);
    s.tk = 0;  // no stored log-probabilities: an error, not a guess
    ck_assert_int_eq(bd_qat_gamma(&t, &s, &g, &n, NULL, NULL, why, sizeof why), BD_ERR_ARG);
    bd_qat_teacher_free(&t);
}
END_TEST

START_TEST(test_teacher_live) {
    enum { T = 6, B = 2, A = 2 };
    bd_model tm, m;
    model(&tm);
    model(&m);
    bd_seqs s;
    random_seqs(&s, 5, T);
    s.tgt[3] = -1;  // one position unscored
    bd_qat_teacher t;
    char why[300];
    bd_model keep;
    copy_model(&keep, &tm);
    ck_assert_int_eq(bd_qat_teacher_init(&t, &tm, &m.cfg, B, T, A, why, sizeof why), BD_OK);
    // g: the mean over scored positions of the largest softmax probability.
    double g, want = 0, lsm[V];
    long long n;
    ck_assert_int_eq(bd_qat_gamma(&t, &s, &g, &n, NULL, NULL, why, sizeof why), BD_OK);
    float *lg = ref_logits(&keep, s.tok, (int)s.n, T);
    for (int p = 0; p < s.n * T; p++) {
        if (s.tgt[p] < 0) continue;
        log_softmax(lsm, lg + (size_t)p * V);
        double top = 0;
        for (int v = 0; v < V; v++) top = fmax(top, exp(lsm[v]));
        want += top;
    }
    ck_assert_int_eq(n, s.n * T - 1);
    ck_assert_close(g, want / (double)n, 1e-5);
    // A step's logits: the teacher run on each micro-batch of the step's tokens.
    long long idx[4] = {4, 0, 2, 1};
    int32_t tok[A * B * T], tgt[A * B * T];
    bd_seqs_gather(&s, idx, A * B, tok, tgt, NULL);
    ck_assert_int_eq(bd_qat_teacher_step(&t, &s, idx, tok, tgt, why, sizeof why), BD_OK);
    float *want_lg = ref_logits(&keep, tok, A * B, T);
    for (int i = 0; i < A * B * T * V; i++) ck_assert_close(t.logits[i], want_lg[i], 1e-4);
    free(lg), free(want_lg);
    bd_qat_teacher_free(&t);
    bd_model_free(&keep);
    // Another vocabulary is refused (another width is fine: bd-qat --teacher).
    bd_test_variant other = tiny;
    other.V = V + 1;
    bd_config oc = bd_test_variant_config(&other);
    bd_model om;
    bd_test_random_model(&om, &oc, rnd);
    ck_assert_int_eq(bd_qat_teacher_init(&t, &om, &m.cfg, B, T, A, why, sizeof why), BD_ERR_SHAPE);
    ck_assert_msg(strstr(why, "vocabulary"), "%s", why);
    bd_qat_teacher_free(&t);
    bd_seqs_free(&s);
    bd_model_free(&m);
}
END_TEST

// The run's settings for the tiny model: B = 1, T = 5, A = 2, constant lr.
static bd_qat_cfg cfg(bd_qkind kind) {
    bd_qat_cfg c = {.B = 1,
                    .T = 5,
                    .A = 2,
                    .seed = 7,
                    .opt = {0.9f, 0.95f, 1e-8f, 0, 1},
                    .sched = {BD_SCHED_CONSTANT, 1e-3f, 1e-4f, 0, 10},
                    .q = {kind, 2, 8}};
    return c;
}

START_TEST(test_step_ce_and_order) {
    bd_model m, m0;
    model(&m);
    copy_model(&m0, &m);
    bd_seqs s;
    random_seqs(&s, 3, 5);
    bd_qat_cfg c = cfg(BD_Q_NONE);
    bd_ckpt_info info = {.seed = 7, .gamma = -1};
    bd_qat_run r;
    char why[300];
    ck_assert_int_eq(bd_qat_init(&r, &m, &s, &c, &info, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_qat_set_loss(&r, NULL, NULL, NULL, false, why, sizeof why), BD_OK);
    bd_step_stats stats;
    ck_assert_int_eq(bd_qat_step(&r, &stats, why, sizeof why), BD_OK);
    // The first two sequences of epoch 0's order; the loss is their mean cross-entropy before the update.
    long long order[3];
    bd_epoch_order(order, 3, 7, 0);
    for (int i = 0; i < 2; i++)
        for (int t = 0; t < 5; t++) ck_assert_int_eq(r.tokens[i * 5 + t], s.tok[order[i] * 5 + t]);
    float *lg = ref_logits(&m0, r.tokens, 2, 5);
    double want = 0, lsm[V];
    for (int p = 0; p < 10; p++) {
        log_softmax(lsm, lg + (size_t)p * V);
        want -= lsm[r.targets[p]];
    }
    ck_assert_close(stats.loss, want / 10, 1e-5);
    ck_assert_int_eq(r.info.step, 1);
    ck_assert_int_eq(r.info.pos, 2);
    ck_assert_int_eq(r.info.tokens, 10);
    // One sequence is left: the next step starts epoch 1 in its own order.
    ck_assert_int_eq(bd_qat_step(&r, &stats, why, sizeof why), BD_OK);
    bd_epoch_order(order, 3, 7, 1);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(r.tokens[i * 5], s.tok[order[i] * 5]);
    ck_assert_int_eq(r.info.epoch, 1);
    ck_assert_int_eq(r.info.pos, 2);
    ck_assert_int_eq(r.info.step, 2);
    free(lg);
    bd_qat_free(&r);
    bd_seqs_free(&s);
    bd_model_free(&m);
    bd_model_free(&m0);
}
END_TEST

// The step's loss of a fake-quantized student distilled from a live teacher with cakld (g = 0.3),
// by plain loops: weight 1/scored per position (mean) or 1/sequences (seqsum).
static void check_cakld(bool seqsum) {
    bd_model m, tm, fq, keep;
    model(&m);
    model(&tm);
    copy_model(&keep, &tm);
    bd_seqs s;
    random_seqs(&s, 4, 5);
    for (int i = 0; i < 4; i++) s.tgt[i * 5 + 2] = -1;  // every sequence has an unscored position
    bd_qat_cfg c = cfg(BD_Q_INT);
    c.seqsum = seqsum;
    m.quant = c.q;
    copy_model(&fq, &m);
    char why[300];
    ck_assert_int_eq(bd_model_fakequant(&fq, &m, &c.q, &c.policy, why, sizeof why), BD_OK);
    bd_ckpt_info info = {.seed = 7, .gamma = -1};
    bd_qat_run r;
    bd_qat_teacher t;
    ck_assert_int_eq(bd_qat_init(&r, &m, &s, &c, &info, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_qat_teacher_init(&t, &tm, &m.cfg, c.B, c.T, c.A, why, sizeof why), BD_OK);
    bd_loss_spec spec = {BD_LOSS_CAKLD, 0.3f, 1};
    ck_assert_int_eq(bd_qat_set_loss(&r, &t, &spec, NULL, true, why, sizeof why), BD_OK);
    bd_step_stats stats;
    ck_assert_int_eq(bd_qat_step(&r, &stats, why, sizeof why), BD_OK);
    float *ls = ref_logits(&fq, r.tokens, 2, 5), *lt = ref_logits(&keep, r.tokens, 2, 5);
    double sum = 0, a[V], b[V];
    int scored = 0;
    for (int p = 0; p < 10; p++) {
        if (r.targets[p] < 0) continue;
        log_softmax(a, ls + (size_t)p * V);
        log_softmax(b, lt + (size_t)p * V);
        double fkl = 0, rkl = 0;
        for (int v = 0; v < V; v++) fkl += exp(b[v]) * (b[v] - a[v]), rkl += exp(a[v]) * (a[v] - b[v]);
        sum += 0.3 * rkl + 0.7 * fkl;
        scored++;
    }
    ck_assert_int_eq(scored, 8);
    ck_assert_close(stats.loss, sum / (seqsum ? 2.0 : scored), 1e-5);
    free(ls), free(lt);
    bd_qat_free(&r);
    bd_qat_teacher_free(&t);
    bd_seqs_free(&s);
    bd_model_free(&m);
    bd_model_free(&fq);
    bd_model_free(&keep);
}

START_TEST(test_step_cakld_student) {
    check_cakld(false);
    check_cakld(true);
}
END_TEST

START_TEST(test_step_errors) {
    bd_model m;
    model(&m);
    bd_seqs s;
    random_seqs(&s, 2, 5);
    bd_qat_cfg c = cfg(BD_Q_INT);
    m.quant = c.q;
    bd_ckpt_info info = {.seed = 7, .gamma = -1};
    bd_qat_run r;
    char why[300];
    ck_assert_int_eq(bd_qat_init(&r, &m, &s, &c, &info, NULL, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_qat_set_loss(&r, NULL, NULL, NULL, false, why, sizeof why), BD_OK);
    r.hooks.q = (bd_qspec){BD_Q_NF3, 2, 8};  // a spec the quantizer refuses: the step fails, saying why
    bd_step_stats stats;
    ck_assert_int_eq(bd_qat_step(&r, &stats, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "step 1 failed: fake quantization: wq: nf3 is a 3-bit grid"), "%s", why);
    ck_assert_msg(strstr(r.hooks.why, "fake quantization: "), "%s", r.hooks.why);
    ck_assert_int_eq(r.tr.step, 0);
    bd_qat_free(&r);
    bd_seqs_free(&s);
    bd_model_free(&m);
}
END_TEST

START_TEST(test_evaluate) {
    bd_model m, fq;
    model(&m);
    int32_t buf[23];
    for (int i = 0; i < 23; i++) buf[i] = (i * 7 + 3) % V;
    bd_ids ids = {buf, 23, 23};
    char why[300];
    for (int student = 0; student < 2; student++) {
        if (student) m.quant = (bd_qspec){BD_Q_INT, 3, 8};
        copy_model(&fq, &m);
        ck_assert_int_eq(bd_model_fakequant(&fq, &m, &m.quant, &m.qpolicy, why, sizeof why), BD_OK);
        double nll, want = 0, lsm[V];
        ck_assert_int_eq(bd_qat_evaluate(&m, &ids, 7, 2, &nll, why, sizeof why), BD_OK);
        // Windows [0,7) [7,14) [14,21), every next token inside a window scored, as the student runs.
        float *lg = ref_logits(&fq, buf, 3, 7);
        for (int w = 0; w < 3; w++)
            for (int t = 0; t + 1 < 7; t++) {
                log_softmax(lsm, lg + (size_t)(w * 7 + t) * V);
                want -= lsm[buf[w * 7 + t + 1]];
            }
        ck_assert_close(nll, want / 18, 2e-5);
        free(lg);
        bd_model_free(&fq);
    }
    bd_model_free(&m);
}
END_TEST

START_TEST(test_load_model) {
    bd_model m, a, b, fq;
    model(&m);
    m.quant = (bd_qspec){BD_Q_INT, 2, 8};
    char why[600];
    const char *p = bd_test_path("student.bdz");
    bd_producer prod = {"test", 0, NULL};
    ck_assert_int_eq(bd_model_save(&m, p, &prod, BD_F32, why, sizeof why), BD_OK);
    // Latent: the weights as stored; running: quantized as the student runs.
    ck_assert_int_eq(bd_qat_load_model(p, true, &a, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_qat_load_model(p, false, &b, why, sizeof why), BD_OK);
    copy_model(&fq, &m);
    ck_assert_int_eq(bd_model_fakequant(&fq, &m, &m.quant, &m.qpolicy, why, sizeof why), BD_OK);
    ck_assert_int_eq(a.quant.kind, BD_Q_INT);
    ck_assert_int_eq(memcmp(a.params, m.params, m.n_params * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(b.params, fq.params, m.n_params * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(a.params, b.params, m.n_params * sizeof(float)), 0);
    bd_model_free(&a);
    bd_model_free(&b);
    bd_model_free(&fq);
    bd_model_free(&m);
    ck_assert_int_lt(bd_qat_load_model(bd_test_path("none.bdz"), false, &a, why, sizeof why), 0);
    ck_assert_msg(strstr(why, "none.bdz"), "%s", why);
}
END_TEST

Suite *suite_qat_setup(void) {
    Suite *s = suite_create("qat_setup");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gamma_stored_by_hand);
    tcase_add_test(tc, test_teacher_live);
    tcase_add_test(tc, test_step_ce_and_order);
    tcase_add_test(tc, test_step_cakld_student);
    tcase_add_test(tc, test_step_errors);
    tcase_add_test(tc, test_evaluate);
    tcase_add_test(tc, test_load_model);
    suite_add_tcase(s, tc);
    return s;
}
