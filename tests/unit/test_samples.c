// bd.samples as bd-teacher-gen writes them (bd_samples): a header agrees with itself; each field
// that decides the samples, changed alone, is named as the difference; batch and threads only
// warn; records copy when their indices run 0, 1, ... up to n and each is a sample the resumed
// run could have written (its prompt, ids in the vocabulary, lengths within -K and the context,
// the top-K rows); a written record reads back.
#include <math.h>
#include <string.h>

#include "bd_samples.h"
#include "bd_test_streams.h"

static bd_prompt_opts po = {.kind = "text", .path = "p.txt", .template_ = ""};

static bd_samples_run run_of(bd_gen_opts *go) {
    *go = (bd_gen_opts){
            .sampling = {0.7, 0, 1.0}, .max_new = 16, .batch = 4, .seed = 3, .stop_ids = {2, 1}, .n_stop = 2};
    bd_samples_run r = {.model_path = "m.bin",
                        .desc = "tiny",
                        .tok_id = "tok:abc",
                        .vocab = 32,
                        .bos = 1,
                        .eos = 2,
                        .po = &po,
                        .n_prompts = 5,
                        .hash = "0123456789abcdef",
                        .go = go,
                        .n = 10,
                        .threads = 2};
    return r;
}

// The header map of r (kept in sb and u until the caller destroys them).
static const msgpack_object *header(const bd_samples_run *r, msgpack_sbuffer *sb, msgpack_unpacked *u) {
    msgpack_sbuffer_init(sb);
    bd_samples_pack_header(sb, r);
    msgpack_unpacked_init(u);
    ck_assert_int_eq(msgpack_unpack_next(u, sb->data, sb->size, NULL), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(u->data.type, MSGPACK_OBJECT_MAP);
    ck_assert_int_eq(u->data.via.map.size, 14);
    return &u->data;
}

START_TEST(test_samples_resume_check) {
    bd_gen_opts go0, go1;
    bd_samples_run base = run_of(&go0);
    msgpack_sbuffer sb0, sb1;
    msgpack_unpacked u0, u1;
    const msgpack_object *h0 = header(&base, &sb0, &u0);
    char why[600];
    unsigned differs = 99;
    ck_assert_int_eq(bd_samples_check_resume(h0, h0, "s.bdz", &differs, why, sizeof why), BD_OK);
    ck_assert_uint_eq(differs, 0);
    // Each change alone, and the field the check names.
    for (int k = 0; k < 8; k++) {
        bd_samples_run r = run_of(&go1);
        bd_prompt_opts p2 = po;
        const char *want[] = {"tokenizer", "sampling",      "seed",         "stop_ids",
                              "teacher",   "prompt_source", "logits_top_k", ""};
        switch (k) {
        case 0: r.tok_id = "tok:xyz"; break;
        case 1: go1.sampling.top_p = 0.9; break;
        case 2: go1.seed = 4; break;
        case 3: go1.n_stop = 1; break;
        case 4: snprintf(r.desc, sizeof r.desc, "other"); break;
        case 5: r.hash[0] = 'f'; break;
        case 6: go1.logits_top_k = 4; break;
        case 7: p2.path = "q.txt", r.po = &p2, r.model_path = "n.bin", r.n = 99, go1.batch = 8, r.threads = 1; break;
        }
        const msgpack_object *h1 = header(&r, &sb1, &u1);
        int rc = bd_samples_check_resume(h0, h1, "s.bdz", &differs, why, sizeof why);
        if (k < 7) {
            ck_assert_int_eq(rc, BD_ERR_SCHEMA);
            char msg[100];
            snprintf(msg, sizeof msg, "\"s.bdz\" header: its \"%s\" differs", want[k]);
            ck_assert_msg(strstr(why, msg), "case %d: %s", k, why);
        } else {  // paths and n may differ; batch and threads are reported
            ck_assert_int_eq(rc, BD_OK);
            ck_assert_uint_eq(differs, BD_SAMPLES_OTHER_BATCH | BD_SAMPLES_OTHER_THREADS);
        }
        msgpack_unpacked_destroy(&u1);
        msgpack_sbuffer_destroy(&sb1);
    }
    msgpack_unpacked_destroy(&u0);
    msgpack_sbuffer_destroy(&sb0);
}
END_TEST

// A bd.samples stream of n records with indices idx[i], written by bd_samples_write.
static void write_records(const char *path, const int64_t *idx, int n, int tk) {
    bd_writer *w = bd_writer_open(path, 0, NULL);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.samples", NULL, 0), BD_OK);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    int32_t prompt[2] = {1, 5}, completion[3] = {6, 7, 2}, top[6] = {6, 3, 7, 4, 2, 9};
    float lp[6] = {-0.1f, -2, -0.2f, -3, -0.3f, -4};
    for (int i = 0; i < n; i++) {
        bd_gen_sample s = {idx[i], prompt, 2, completion, 3, BD_GEN_EOS, tk ? top : NULL, tk ? lp : NULL};
        ck_assert_int_eq(bd_samples_write(w, &s, tk), BD_OK);
    }
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
}

static const int32_t the_prompt[2] = {1, 5};
static const bd_gen_prompt prompts[1] = {{the_prompt, 2}};

// Copies the records of path as a run with limits lim would on --resume.
static int copy_as(const char *path, int64_t n, const bd_samples_limits *lim, int64_t *copied, char *why, size_t ws) {
    bd_reader *r = bd_reader_open(path, "bd.samples", NULL, NULL, 0);
    ck_assert_ptr_nonnull(r);
    bd_writer *w = bd_writer_open(bd_test_path("copy.bdz"), 0, NULL);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.samples", NULL, 0), BD_OK);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    int rc = bd_samples_copy(r, w, n, NULL, lim, copied, why, ws);
    bd_reader_close(r);
    if (rc == BD_OK)
        ck_assert_int_eq(bd_writer_close(w), BD_OK);
    else
        bd_writer_abort(w);
    return rc;
}

// The same with vocabulary 10, -K 4, context 8, top-K tk and the prompt {1, 5}.
static int copy(const char *path, int64_t n, int tk, int64_t *copied, char *why, size_t ws) {
    bd_samples_limits lim = {10, 8, 4, tk, prompts, 1};
    return copy_as(path, n, &lim, copied, why, ws);
}

START_TEST(test_samples_records) {
    const char *p = bd_test_path("rec.bdz");
    int64_t idx[3] = {0, 1, 2};
    write_records(p, idx, 3, 2);
    // The record reads back as written.
    bd_reader *r = bd_reader_open(p, "bd.samples", NULL, NULL, 0);
    const msgpack_object *rec;
    ck_assert_int_eq(bd_reader_next(r, &rec), BD_OK);
    int64_t v;
    ck_assert_int_eq(bd_obj_int(bd_obj_get(rec, "index"), &v), BD_OK);
    ck_assert_int_eq(v, 0);
    ck_assert(bd_obj_is_str(bd_obj_get(rec, "finished"), "eos"));
    bd_tensor_view t;
    ck_assert_int_eq(bd_obj_tensor(bd_obj_get(rec, "top_logprobs"), &t, NULL, 0), BD_OK);
    ck_assert_int_eq(t.ndim, 2);
    ck_assert_int_eq(t.shape[0], 3);
    ck_assert_int_eq(t.shape[1], 2);
    float lp4;  // tensor data in a stream need not be aligned
    memcpy(&lp4, (const char *)t.data + 4 * sizeof lp4, sizeof lp4);
    ck_assert(lp4 == -0.3f);
    ck_assert_int_eq(bd_obj_tensor(bd_obj_get(rec, "completion"), &t, NULL, 0), BD_OK);
    int32_t id2;
    memcpy(&id2, (const char *)t.data + 2 * sizeof id2, sizeof id2);
    ck_assert_int_eq(id2, 2);
    bd_reader_close(r);
    char why[600];
    int64_t copied;
    ck_assert_int_eq(copy(p, 3, 2, &copied, why, sizeof why), BD_OK);
    ck_assert_int_eq(copied, 3);
    ck_assert_int_eq(copy(p, 2, 2, &copied, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "rec.bdz\" already holds more than 2 samples"), "%s", why);
    int64_t gap[3] = {0, 2, 3};
    write_records(p, gap, 3, 0);
    ck_assert_int_eq(copy(p, 9, 0, &copied, why, sizeof why), BD_ERR_SCHEMA);
    ck_assert_msg(strstr(why, "rec.bdz\" record 2: field \"index\" should be 1"), "%s", why);
    ck_assert_int_eq(copied, 1);
}
END_TEST

// A stream of one sample (index 0) made by hand, with tk top-K rows.
static void write_sample(const char *path, const bd_gen_sample *s, int tk) {
    bd_writer *w = bd_writer_open(path, 0, NULL);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.samples", NULL, 0), BD_OK);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    ck_assert_int_eq(bd_samples_write(w, s, tk), BD_OK);
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
}

START_TEST(test_samples_resume_limits) {
    const char *p = bd_test_path("lim.bdz");
    int32_t other[2] = {1, 6}, c[6] = {6, 7, 3, 4, 5, 2}, big[3] = {6, 99999, 2}, top[12] = {6, 3, 7, 4, 2, 9};
    float lp[12] = {-0.1f, -2, -0.2f, -3, -0.3f, -4};
    float lp_inf[6] = {-0.1f, -2, -0.2f, -INFINITY, -0.3f, -4};  // bd-qat refuses -inf: so does the resume check
    bd_samples_limits lim = {10, 8, 4, 2, prompts, 1};
    char why[600];
    int64_t copied;
    struct {
        bd_gen_sample s;
        int tk, max_new, max_seq;
        const char *want;
    } cases[] = {
            {{0, the_prompt, 2, c, 3, BD_GEN_EOS, top, lp}, 2, 4, 8, NULL},
            {{0, the_prompt, 2, big, 3, BD_GEN_EOS, top, lp},
             2,
             4,
             8,
             "holds id 99999 at 1, outside the vocabulary of 10"},
            {{0, the_prompt, 2, c, 6, BD_GEN_LENGTH, top, lp},
             2,
             4,
             8,
             "\"completion\" has 6 ids; this run makes 1 to 4"},
            {{0, the_prompt, 2, c, 3, BD_GEN_EOS, top, lp}, 2, 4, 4, "\"completion\" has 3 ids"},
            {{0, other, 2, c, 3, BD_GEN_EOS, top, lp}, 2, 4, 8, "is not this run's prompt 0"},
            {{0, the_prompt, 2, c, 3, BD_GEN_EOS, NULL, NULL}, 0, 4, 8, "fields \"top_ids\" (u32)"},
            {{0, the_prompt, 2, c, 3, BD_GEN_EOS, top + 1, lp}, 2, 4, 8, "an id outside the vocabulary"},
            {{0, the_prompt, 2, c, 3, BD_GEN_EOS, top, lp + 3}, 2, 4, 8, "not a finite number <= 0"},
            {{0, the_prompt, 2, c, 3, BD_GEN_EOS, top, lp_inf}, 2, 4, 8, "not a finite number <= 0"},
    };
    top[6] = 99, lp[6] = 0.5f;  // past the rows of the valid case: top + 1 reaches 99, lp + 3 reaches 0.5
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        write_sample(p, &cases[k].s, cases[k].tk);
        lim.max_new = cases[k].max_new, lim.max_seq = cases[k].max_seq;
        int rc = copy_as(p, 5, &lim, &copied, why, sizeof why);
        if (!cases[k].want) {
            ck_assert_int_eq(rc, BD_OK);
            continue;
        }
        ck_assert_msg(rc < 0 && strstr(why, cases[k].want) && strstr(why, "lim.bdz\" record 1: "), "case %zu: %s", k,
                      why);
    }
    // A record without its prompt.
    bd_writer *w = bd_writer_open(p, 0, NULL);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.samples", NULL, 0), BD_OK);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    msgpack_pack_map(bd_writer_packer(w), 1);
    bd_pack_kv_int(bd_writer_packer(w), "index", 0);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
    ck_assert_int_eq(copy_as(p, 5, &lim, &copied, why, sizeof why), BD_ERR_SCHEMA);
    ck_assert_msg(strstr(why, "record 1: field \"prompt\""), "%s", why);
}
END_TEST

Suite *suite_samples(void) {
    Suite *s = suite_create("samples");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_samples_resume_check);
    tcase_add_test(tc, test_samples_records);
    tcase_add_test(tc, test_samples_resume_limits);
    suite_add_tcase(s, tc);
    return s;
}
