// Training sequences (bd_seqs): cut from ids and made from samples, checked against arrays
// worked out by hand (prompt masking, truncation, short samples, stored teacher rows); the
// batch gather against a plain loop; the dense teacher against its definition.
#include <math.h>
#include <string.h>

#include "bd_seqs.h"
#include "bd_test_streams.h"

START_TEST(test_seqs_from_ids) {
    int32_t ids[11];
    for (int i = 0; i < 11; i++) ids[i] = 100 + i;
    bd_seqs s;
    ck_assert_int_eq(bd_seqs_from_ids(&s, ids, 11, 3), BD_OK);
    // (11 - 1) / 3 = 3 sequences: inputs 100.., targets shifted by one; the tail 109, 110 dropped.
    ck_assert_int_eq(s.n, 3);
    ck_assert_uint_eq(s.data_tokens, 11);
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 3; t++) {
            ck_assert_int_eq(s.tok[i * 3 + t], 100 + 3 * i + t);
            ck_assert_int_eq(s.tgt[i * 3 + t], 101 + 3 * i + t);
        }
    bd_seqs_free(&s);
    ck_assert_int_eq(bd_seqs_from_ids(&s, ids, 3, 3), BD_OK);  // 3 ids: no sequence of 3 + 1
    ck_assert_int_eq(s.n, 0);
    bd_seqs_free(&s);
}
END_TEST

START_TEST(test_seqs_from_samples) {
    // Sample 0: prompt 1 4, completion 5 6 2. Sample 1: too short (1 token). Sample 2: 7 tokens,
    // cut to T + 1 = 5.
    int32_t p0[] = {1, 4}, c0[] = {5, 6, 2}, p1[] = {1}, p2[] = {1, 3}, c2[] = {8, 9, 10, 11, 12};
    bd_test_sample smp[3] = {{p0, c0, 2, 3, NULL, NULL}, {p1, NULL, 1, 0, NULL, NULL}, {p2, c2, 2, 5, NULL, NULL}};
    const char *p = bd_test_path("seqs.bdz");
    bd_test_write_samples(p, smp, 3, 0);
    bd_seqs s;
    char why[600];
    ck_assert_int_eq(bd_seqs_from_samples(&s, p, 16, 4, false, false, why, sizeof why), BD_OK);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(s.truncated, 1);
    int32_t tok[8] = {1, 4, 5, 6, 1, 3, 8, 9}, tgt[8] = {4, 5, 6, 2, 3, 8, 9, 10};
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(s.tok[i], tok[i]);
        ck_assert_int_eq(s.tgt[i], tgt[i]);
    }
    bd_seqs_free(&s);
    // T = 6 pads sample 0 (padding 0, unscored); --mask-prompt leaves the prompt's targets unscored.
    ck_assert_int_eq(bd_seqs_from_samples(&s, p, 16, 6, true, false, why, sizeof why), BD_OK);
    int32_t tok6[12] = {1, 4, 5, 6, 2, 0, 1, 3, 8, 9, 10, 11}, tgt6[12] = {-1, 5, 6, 2, -1, -1, -1, 8, 9, 10, 11, 12};
    ck_assert_int_eq(s.truncated, 0);
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(s.tok[i], tok6[i]);
        ck_assert_int_eq(s.tgt[i], tgt6[i]);
    }
    // The batch of sequences 1, 0: a plain copy, and its scored positions counted.
    long long idx[2] = {1, 0};
    int32_t bt[12], bg[12], lens[2];
    ck_assert_int_eq(bd_seqs_gather(&s, idx, 2, bt, bg, lens), 5 + 3);
    ck_assert_int_eq(lens[0], 6);  // cut to T: every input real
    ck_assert_int_eq(lens[1], 5);  // 5 tokens, one position of padding
    for (int t = 0; t < 6; t++) {
        ck_assert_int_eq(bt[t], tok6[6 + t]);
        ck_assert_int_eq(bg[6 + t], tgt6[t]);
    }
    bd_seqs_free(&s);
    // Not a bd.samples stream.
    ck_assert_int_eq(bd_seqs_from_samples(&s, bd_test_path("none.bdz"), 16, 4, false, false, why, sizeof why),
                     BD_ERR_IO);
}
END_TEST

START_TEST(test_seqs_teacher_rows) {
    // TK = 2: completion row j holds the teacher's top ids and log-probs for predicting
    // completion token j; prompt targets have none and are not scored.
    int32_t p0[] = {1, 4}, c0[] = {5, 6}, ti[4] = {5, 7, 6, 3};
    float tl[4] = {-0.1f, -2.5f, -0.3f, -1.5f};
    bd_test_sample smp[1] = {{p0, c0, 2, 2, ti, tl}};
    const char *p = bd_test_path("tl.bdz");
    bd_test_write_samples(p, smp, 1, 2);
    bd_seqs s;
    char why[600];
    ck_assert_int_eq(bd_seqs_from_samples(&s, p, 16, 4, false, true, why, sizeof why), BD_OK);
    ck_assert_int_eq(s.tk, 2);
    int32_t tgt[4] = {-1, 5, 6, -1};
    for (int t = 0; t < 4; t++) ck_assert_int_eq(s.tgt[t], tgt[t]);
    ck_assert_int_eq(s.top_ids[1 * 2 + 0], 5);
    ck_assert_int_eq(s.top_ids[2 * 2 + 1], 3);
    ck_assert(s.top_lp[1 * 2 + 1] == -2.5f && s.top_lp[2 * 2 + 0] == -0.3f);
    // The step's teacher logits: the scored positions only, each the dense row of its stored one.
    enum { V = 16 };
    float u[4 * V], row[V];
    for (int i = 0; i < 4 * V; i++) u[i] = 99;
    long long idx[1] = {0};
    bd_seqs_teacher_logits(&s, idx, 1, s.tgt, u, V);
    ck_assert(u[0] == 99 && u[3 * V] == 99);
    bd_seqs_dense_teacher(row, ti + 2, tl + 2, 2, V);
    for (int v = 0; v < V; v++) ck_assert(u[2 * V + v] == row[v]);
    bd_seqs_free(&s);
    // A stream without stored log-probabilities, and one whose rows are malformed.
    bd_test_sample plain[1] = {{p0, c0, 2, 2, NULL, NULL}};
    bd_test_write_samples(bd_test_path("plain.bdz"), plain, 1, 0);
    ck_assert_int_eq(bd_seqs_from_samples(&s, bd_test_path("plain.bdz"), 16, 4, false, true, why, sizeof why),
                     BD_ERR_SCHEMA);
    ck_assert_msg(strstr(why, "carries no teacher log-probabilities"), "%s", why);
    tl[3] = 0.5f;  // a log-probability above 0
    bd_test_write_samples(p, smp, 1, 2);
    ck_assert_int_eq(bd_seqs_from_samples(&s, p, 16, 4, false, true, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "tl.bdz\" record 1: top_logprobs row 1: 0.5 is not a log-probability"), "%s", why);
}
END_TEST

// Reads rows with TK = 2 (ids ti, log-probabilities tl of 3 completion tokens; T = 2 uses
// only the first two) under header_k; NULL want: accepted, else the message has want.
static void teacher_rows(const int32_t *ti, const float *tl, int64_t header_k, int want_rc, const char *want) {
    int32_t p0[] = {1}, c0[] = {5, 6, 7};
    bd_test_sample smp[1] = {{p0, c0, 1, 3, ti, tl}};
    const char *p = bd_test_path("rows.bdz");
    bd_test_write_samples_k(p, smp, 1, 2, header_k);
    bd_seqs s;
    char why[600] = "";
    ck_assert_int_eq(bd_seqs_from_samples(&s, p, 16, 2, false, true, why, sizeof why), want_rc);
    if (want) ck_assert_msg(strstr(why, want), "%s", why);
    if (want_rc == BD_OK) bd_seqs_free(&s);
}

// The header and every row of every record are checked before anything trains on them.
START_TEST(test_seqs_teacher_rows_refused) {
    const float inf = INFINITY;
    int32_t ok_ids[6] = {5, 7, 6, 3, 7, 1}, dup[6] = {5, 7, 6, 3, 7, 7}, big[6] = {5, 7, 6, 3, 7, 16};
    float ok_lp[6] = {-0.1f, -2.5f, -0.3f, -1.5f, -1, -2};
    teacher_rows(ok_ids, ok_lp, 2, BD_OK, NULL);
    teacher_rows(ok_ids, ok_lp, ((int64_t)1 << 32) + 2, BD_ERR_SCHEMA, "logits_top_k 4294967298 is outside 1..16");
    teacher_rows(ok_ids, ok_lp, (int64_t)1 << 31, BD_ERR_SCHEMA, "logits_top_k 2147483648 is outside 1..16");
    teacher_rows(ok_ids, ok_lp, 17, BD_ERR_SCHEMA, "logits_top_k 17 is outside 1..16");
    teacher_rows(ok_ids, ok_lp, -2, BD_ERR_SCHEMA, "logits_top_k -2 is outside");
    float neg_inf[6] = {-0.1f, -2.5f, -0.3f, -inf, -1, -2};
    teacher_rows(ok_ids, neg_inf, 2, BD_ERR_VALUE, "record 1: top_logprobs row 1: -inf is not a log-probability");
    float nan_lp[6] = {-0.1f, NAN, -0.3f, -1.5f, -1, -2};
    teacher_rows(ok_ids, nan_lp, 2, BD_ERR_VALUE, "top_logprobs row 0: nan is not");
    teacher_rows(dup, ok_lp, 2, BD_ERR_VALUE, "top_ids row 2: id 7 appears twice");  // a row past T: read all the same
    teacher_rows(big, ok_lp, 2, BD_ERR_VALUE, "top_ids row 2: id 16 is outside the vocabulary of 16");
    float rising[6] = {-0.1f, -2.5f, -1.5f, -0.3f, -1, -2};
    teacher_rows(ok_ids, rising, 2, BD_ERR_VALUE, "top_logprobs row 1 is not in decreasing order");
    float heavy[6] = {-0.1f, -0.2f, -0.3f, -1.5f, -1, -2};
    teacher_rows(ok_ids, heavy, 2, BD_ERR_VALUE, "top_logprobs row 0: probabilities add up to 1.7236, more than 1");
}
END_TEST

START_TEST(test_dense_teacher) {
    // softmax(u) is the stored probabilities at the listed ids and shares the rest equally.
    enum { V = 10, TK = 3 };
    int32_t ids[TK] = {4, 0, 7};
    float lp[TK] = {-0.5f, -1.5f, -3.0f}, u[V];
    bd_seqs_dense_teacher(u, ids, lp, TK, V);
    double z = 0;
    for (int v = 0; v < V; v++) z += exp((double)u[v]);
    ck_assert_close(z, 1.0, 1e-6);
    double top = exp(-0.5) + exp(-1.5) + exp(-3.0), other = (1 - top) / (V - TK);
    for (int v = 0; v < V; v++) {
        double want = v == 4 ? exp(-0.5) : v == 0 ? exp(-1.5) : v == 7 ? exp(-3.0) : other;
        ck_assert_close(exp((double)u[v]), want, 1e-7);
    }
}
END_TEST

Suite *suite_seqs(void) {
    Suite *s = suite_create("seqs");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_seqs_from_ids);
    tcase_add_test(tc, test_seqs_from_samples);
    tcase_add_test(tc, test_seqs_teacher_rows);
    tcase_add_test(tc, test_seqs_teacher_rows_refused);
    tcase_add_test(tc, test_dense_teacher);
    suite_add_tcase(s, tc);
    return s;
}
