// bd.clip streams as bd_clipfile_apply reads them: the header's quantizer, bits and group
// must match the quantizer they are applied for; records are checked (name agrees with the
// layer, one record per layer, min <= max). The clamp itself is checked on values by hand.
#include <stdio.h>
#include <string.h>

#include "bd_clipfile.h"
#include "bd_test.h"

static float zero(void) { return 0.5f; }

// A tiny model: C=8 L=2, wq of layer 1 has 8 rows of 8.
static void tiny(bd_model *m) {
    bd_test_variant v = {"clip", 8, 2, 2, 2, 4, 12, 16, BD_ROPE_INTERLEAVED, true, false, false};
    bd_config c = bd_test_variant_config(&v);
    bd_test_random_model(m, &c, zero);
}

typedef struct {
    const char *quant;
    int bits, group;
    const char *name;  // record name (NULL: the right one)
    int records;       // 1, or 2 for a duplicate
    float lo, hi;      // every group's min and max
} clip_case;

static const char *write_clip(const clip_case *cc) {
    static char path[1200];
    snprintf(path, sizeof path, "%s/clip_case.bdz", bd_test_tmpdir());
    int err;
    bd_writer *w = bd_writer_open(path, 1, &err);
    ck_assert_ptr_nonnull(w);
    bd_producer prod = {"test", 0, NULL};
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.clip", &prod, 3), BD_OK);
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_kv_str(pk, "quant", cc->quant);
    bd_pack_kv_int(pk, "bits", cc->bits);
    bd_pack_kv_int(pk, "group", cc->group);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    float mx[16], mn[16];  // 8 rows x 2 groups of 4
    for (int i = 0; i < 16; i++) mx[i] = cc->hi, mn[i] = cc->lo;
    for (int k = 0; k < cc->records; k++) {
        if (!cc->name) {
            ck_assert_int_eq(bd_clipfile_write_record(w, "wq", 1, mx, mn, 8, 2), BD_OK);
            continue;
        }
        int64_t shape[2] = {8, 2};
        msgpack_pack_map(pk, 5);
        bd_pack_kv_str(pk, "name", cc->name);
        bd_pack_kv_str(pk, "tensor", "wq");
        bd_pack_kv_int(pk, "layer", 1);
        bd_pack_str(pk, "max");
        bd_pack_tensor(pk, "max", BD_F32, 2, shape, mx);
        bd_pack_str(pk, "min");
        bd_pack_tensor(pk, "min", BD_F32, 2, shape, mn);
        ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    }
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
    return path;
}

START_TEST(test_clipfile_checks) {
    bd_model m;
    tiny(&m);
    bd_qspec q = {BD_Q_INT, 2, 4};
    char why[600];
    // A good file clamps layer 1's wq to [-0.25, 0.25] (the weights are 0.5 / sqrt(8) = 0.177, so
    // set them to +-1 first) and leaves layer 0 alone.
    size_t per = (size_t)8 * 8;
    float *wq1 = m.w.wq + per, *wq0 = m.w.wq;
    for (size_t i = 0; i < per; i++) wq1[i] = i % 2 ? 1.0f : -1.0f, wq0[i] = 1.0f;
    clip_case ok = {"int", 2, 4, NULL, 1, -0.25f, 0.25f};
    ck_assert_int_eq(bd_clipfile_apply(write_clip(&ok), &m, &q, why, sizeof why), BD_OK);
    for (size_t i = 0; i < per; i++) {
        ck_assert(wq1[i] == (i % 2 ? 0.25f : -0.25f));
        ck_assert(wq0[i] == 1.0f);
    }
    struct {
        clip_case c;
        int code;
        const char *word;
    } bad[] = {
            {{"int", 2, 8, NULL, 1, -1, 1}, BD_ERR_ARG, "group 8"},
            {{"int", 3, 4, NULL, 1, -1, 1}, BD_ERR_ARG, "int 3-bit, but the quantizer is int 2-bit"},
            {{"nf3", 2, 4, NULL, 1, -1, 1}, BD_ERR_ARG, "nf3 2-bit"},
            {{"int", 2, 4, "layers.0.wq", 1, -1, 1}, BD_ERR_SCHEMA, "must be \"layers.1.wq\""},
            {{"int", 2, 4, NULL, 2, -1, 1}, BD_ERR_SCHEMA, "a second record for layers.1.wq"},
            {{"int", 2, 4, NULL, 1, 0.5f, 0.25f}, BD_ERR_VALUE, "min 0.5 is above max 0.25"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = 0;
        int rc = bd_clipfile_apply(write_clip(&bad[i].c), &m, &q, why, sizeof why);
        ck_assert_msg(rc == bad[i].code, "case %zu: rc %d (%s)", i, rc, why);
        ck_assert_msg(strstr(why, bad[i].word) && strstr(why, "clip_case.bdz"), "case %zu: %s", i, why);
    }
    bd_model_free(&m);
}
END_TEST

Suite *suite_clipfile(void) {
    Suite *s = suite_create("clipfile");
    TCase *tc = tcase_create("clipfile");
    tcase_add_test(tc, test_clipfile_checks);
    suite_add_tcase(s, tc);
    return s;
}
