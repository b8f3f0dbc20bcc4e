// Shards (bd_shard, bd_eval_part): "K/N" parsed strictly; the counts and unit numbers of a
// shard against a plain loop; headers of one run accepted in any order and every kind of
// mismatch refused with the file named; the merged header drops the shard and the --shard
// arguments only; records interleaved in unit order, a wrong index, a short or a long shard
// refused; eval-part records read back into the tallies they came from.
#include <string.h>

#include "bd_eval_part.h"
#include "bd_shard.h"
#include "bd_test_streams.h"

START_TEST(test_shard_parse) {
    bd_shard s;
    char why[200];
    const char *good[] = {"0/1", "2/3", "0/3", "1048575/1048576", "007/10"};
    const int64_t gk[] = {0, 2, 0, 1048575, 7}, gn[] = {1, 3, 3, 1048576, 10};
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(bd_shard_parse(good[i], &s, why, sizeof why) == BD_OK, "%s: %s", good[i], why);
        ck_assert_int_eq(s.k, gk[i]);
        ck_assert_int_eq(s.n, gn[i]);
    }
    const char *bad[] = {"3/2",
                         "0/0",
                         "1/",
                         "-1/2",
                         "a/b",
                         "/2",
                         "1/2x",
                         " 1/2",
                         "+1/2",
                         "1//2",
                         "2/2",
                         "1/2/3",
                         "1 /2",
                         "",
                         "12",
                         "0/-1",
                         "0/1048577",
                         "1/0x3",
                         "99999999999999999999/3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s = (bd_shard){-5, -5};
        ck_assert_msg(bd_shard_parse(bad[i], &s, why, sizeof why) == BD_ERR_VALUE, "\"%s\" accepted", bad[i]);
        ck_assert_msg(strstr(why, "is not K/N with 0 <= K < N"), "%s", why);
        ck_assert_int_eq(s.n, -5);  // untouched
    }
    ck_assert_int_eq(bd_shard_parse(NULL, &s, NULL, 0), BD_ERR_VALUE);
}
END_TEST

START_TEST(test_shard_count) {
    // Against a plain loop: the units of each shard partition 0..total-1, in order.
    for (int64_t n = 1; n <= 7; n++)
        for (int64_t total = 0; total <= 30; total++) {
            int64_t seen = 0;
            for (int64_t k = 0; k < n; k++) {
                bd_shard s = {k, n};
                int64_t want = 0;
                for (int64_t u = 0; u < total; u++) want += u % n == k;
                ck_assert_int_eq(bd_shard_count(&s, total), want);
                for (int64_t j = 0; j < want; j++) {
                    int64_t u = bd_shard_unit(&s, j);
                    ck_assert(u < total && u % n == k && (j == 0 || u > bd_shard_unit(&s, j - 1)));
                }
                seen += want;
            }
            ck_assert_int_eq(seen, total);
        }
    bd_shard whole = {0, 0};
    ck_assert_int_eq(bd_shard_count(&whole, 11), 11);
    ck_assert_int_eq(bd_shard_unit(&whole, 5), 5);
}
END_TEST

// A header {magic, schema, producer {tool, version, argv: [tool, --x, <argv1>, --shard, K/N]},
// seed, shard {k, n, units, argv: [--shard, K/N], stats {seconds}}}; k < 0: no shard.
typedef struct {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
} hdr;

static const msgpack_object *make_hdr(hdr *h, int k, int n, int seed, const char *argv1, int units, double secs) {
    msgpack_sbuffer_init(&h->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &h->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, k >= 0 ? 5 : 4);
    bd_pack_kv_str(&pk, "magic", "bd");
    bd_pack_kv_str(&pk, "schema", "bd.samples");
    bd_pack_str(&pk, "producer");
    msgpack_pack_map(&pk, 3);
    bd_pack_kv_str(&pk, "tool", "bd-teacher-gen");
    bd_pack_kv_str(&pk, "version", "0.1.0");
    char spec[32];
    snprintf(spec, sizeof spec, "%d/%d", k, n);
    char *argv[5] = {"bd-teacher-gen", "--x", (char *)argv1, "--shard", spec};
    bd_pack_str(&pk, "argv");
    msgpack_pack_array(&pk, k >= 0 ? 5 : 3);
    for (int i = 0; i < (k >= 0 ? 5 : 3); i++) bd_pack_str(&pk, argv[i]);
    bd_pack_kv_int(&pk, "seed", seed);
    if (k >= 0) {
        bd_shard s = {k, n};
        bd_shard_pack(&pk, &s, units, 2, argv + 3, 1);
        bd_pack_str(&pk, "stats");
        msgpack_pack_map(&pk, 1);
        bd_pack_kv_double(&pk, "seconds", secs);
    }
    msgpack_unpacked_init(&h->u);
    ck_assert_int_eq(msgpack_unpack_next(&h->u, h->sb.data, h->sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    return &h->u.data;
}

static void free_hdr(hdr *h) {
    msgpack_unpacked_destroy(&h->u);
    msgpack_sbuffer_destroy(&h->sb);
}

// Checks count headers made from (k, n, seed, argv1, units) rows; returns the code, order and why.
static int check(int count, const int (*rows)[4], const char *argv1_of_last, int *order, char *why, size_t ws) {
    hdr h[8];
    const msgpack_object *o[8] = {0};
    const char *names[8] = {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"};
    for (int i = 0; i < count; i++)
        o[i] = make_hdr(&h[i], rows[i][0], rows[i][1], rows[i][2], i == count - 1 ? argv1_of_last : "a", rows[i][3],
                        i * 1.5);
    int rc = bd_shards_check(o, names, count, order, why, ws);
    for (int i = 0; i < count; i++) free_hdr(&h[i]);
    return rc;
}

START_TEST(test_shard_check) {
    int order[8];
    char why[600];
    // One run in any order (producer argv and stats may differ): order[k] is the file of shard k.
    const int ok[3][4] = {{2, 3, 7, 10}, {0, 3, 7, 10}, {1, 3, 7, 10}};
    ck_assert_msg(check(3, ok, "b", order, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(order[0], 1);
    ck_assert_int_eq(order[1], 2);
    ck_assert_int_eq(order[2], 0);
    // The refusals, each naming the file.
    struct {
        int count;
        int rows[4][4];
        const char *want;
    } bad[] = {
            {2, {{0, 3, 7, 10}, {1, 3, 7, 10}}, "shard 2/3 is missing (2 files given)"},
            {3, {{0, 3, 7, 10}, {2, 3, 7, 10}, {2, 3, 7, 10}}, "\"s2\" is shard 2/3 again (as \"s1\")"},
            {4, {{0, 3, 7, 10}, {1, 3, 7, 10}, {2, 3, 7, 10}, {0, 3, 7, 10}}, "\"s3\" is shard 0/3 again"},
            {2, {{0, 2, 7, 10}, {1, 3, 7, 10}}, "\"s1\" is shard 1/3, \"s0\" shard 0/2: not one run"},
            {2, {{0, 2, 7, 10}, {1, 2, 8, 10}}, "\"s1\" header: its \"seed\" differs from \"s0\"'s"},
            {2, {{0, 2, 7, 10}, {1, 2, 7, 11}}, "\"s1\" header: its \"shard.units\" differs from \"s0\"'s"},
            {2, {{0, 2, 7, 10}, {-1, 2, 7, 10}}, "\"s1\" header: no \"shard\": not the output of a --shard run"},
            {1, {{1, 2, 7, 10}}, "shard 0/2 is missing (1 file given)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(check(bad[i].count, (const int(*)[4])bad[i].rows, "a", order, why, sizeof why), BD_ERR_SCHEMA);
        ck_assert_msg(strstr(why, bad[i].want), "case %zu: %s", i, why);
    }
    // Another producer (its version) is another run.
    hdr a, b;
    const msgpack_object *o[2] = {make_hdr(&a, 0, 2, 7, "a", 10, 0), make_hdr(&b, 1, 2, 7, "a", 10, 0)};
    msgpack_object *ver = (msgpack_object *)bd_obj_get(bd_obj_get(o[1], "producer"), "version");
    ver->via.str.ptr = "0.2.0";
    const char *names[2] = {"x", "y"};
    ck_assert_int_eq(bd_shards_check(o, names, 2, order, why, sizeof why), BD_ERR_SCHEMA);
    ck_assert_msg(strstr(why, "\"y\" header: its \"producer.version\" differs"), "%s", why);
    free_hdr(&a), free_hdr(&b);
}
END_TEST

// The merged header is the shard's without "shard", its argv without the --shard arguments.
START_TEST(test_shard_merged_header) {
    hdr h, want;
    const msgpack_object *o = make_hdr(&h, 1, 3, 7, "--shard", 10, 2.0);  // an argument "--shard" before the option
    make_hdr(&want, -1, 3, 7, "--shard", 10, 0);  // the same without a shard: argv [tool, --x, --shard]
    for (int with_schema = 0; with_schema < 2; with_schema++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        bd_shard_pack_merged_header(&pk, o, with_schema ? "bd.other" : NULL);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
        if (!with_schema) {
            ck_assert_msg(msgpack_object_equal(u.data, want.u.data), "merged header differs from the unsharded one");
            ck_assert_uint_eq(sb.size, want.sb.size);
            ck_assert(!memcmp(sb.data, want.sb.data, sb.size));  // the same bytes
        } else {
            ck_assert(bd_obj_is_str(bd_obj_get(&u.data, "schema"), "bd.other"));
        }
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
    }
    free_hdr(&h), free_hdr(&want);
}
END_TEST

// A stream of records {index} for the merge, with a shard header.
static void write_shard(const char *path, int k, int n, int units, const int64_t *idx, int count) {
    bd_writer *w = bd_writer_open(path, 0, NULL);
    ck_assert_ptr_nonnull(w);
    char spec[32];
    snprintf(spec, sizeof spec, "--shard=%d/%d", k, n);
    char *argv[1] = {spec};
    bd_shard s = {k, n};
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.samples", NULL, 1), BD_OK);
    bd_shard_pack(bd_writer_packer(w), &s, units, 1, argv, 0);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    for (int i = 0; i < count; i++) {
        msgpack_packer *pk = bd_writer_packer(w);
        msgpack_pack_map(pk, 2);
        bd_pack_kv_int(pk, "index", idx[i]);
        bd_pack_kv_int(pk, "value", 100 + idx[i]);
        ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    }
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
}

typedef struct {
    int64_t got[32];
    int n;
} seen;

static int note(void *ctx, const msgpack_object *rec, int64_t u, const char *where, char *why, size_t ws) {
    seen *s = ctx;
    int64_t v;
    ck_assert_int_eq(bd_obj_int(bd_obj_get(rec, "value"), &v), BD_OK);
    ck_assert_int_eq(v, 100 + u);
    s->got[s->n++] = u;
    return BD_OK;
}

// Runs bd_shards_each over shards 0, 1 of 2 (units 5) written with the given indices.
static int each(const int64_t *i0, int n0, const int64_t *i1, int n1, seen *s, char *why, size_t ws) {
    write_shard(bd_test_path("m0.bdz"), 0, 2, 5, i0, n0);
    write_shard(bd_test_path("m1.bdz"), 1, 2, 5, i1, n1);
    bd_reader *rs[2] = {bd_reader_open(bd_test_path("m1.bdz"), NULL, NULL, NULL, 0),
                        bd_reader_open(bd_test_path("m0.bdz"), NULL, NULL, NULL, 0)};
    const msgpack_object *h[2] = {bd_reader_header(rs[0]), bd_reader_header(rs[1])};
    const char *names[2] = {"m1", "m0"};
    int order[2];
    ck_assert_int_eq(bd_shards_check(h, names, 2, order, why, ws), BD_OK);
    ck_assert_int_eq(order[0], 1);
    *s = (seen){0};
    int rc = bd_shards_each(rs, order, 2, 5, note, s, why, ws);
    bd_reader_close(rs[0]), bd_reader_close(rs[1]);
    return rc;
}

START_TEST(test_shard_each) {
    seen s;
    char why[600];
    const int64_t e[3] = {0, 2, 4}, o[2] = {1, 3};
    ck_assert_msg(each(e, 3, o, 2, &s, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(s.n, 5);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(s.got[i], i);
    // A record out of place (an index of the other shard), a shard cut short, one too long.
    const int64_t swapped[3] = {0, 3, 4}, cut[2] = {0, 2}, longer[3] = {1, 3, 5};
    ck_assert_int_eq(each(swapped, 3, o, 2, &s, why, sizeof why), BD_ERR_SCHEMA);
    ck_assert_msg(strstr(why, "record 2: field \"index\" should be 2 (shard 0/2 holds 0, 2, ...)"), "%s", why);
    ck_assert_int_eq(each(cut, 2, o, 2, &s, why, sizeof why), BD_ERR_TRUNCATED);
    ck_assert_msg(strstr(why, "m0.bdz\" ends after 2 records; shard 0/2 of 5 has 3"), "%s", why);
    ck_assert_int_eq(each(e, 3, longer, 3, &s, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "m1.bdz\" holds more than the 2 records of shard 1/2 of 5"), "%s", why);
}
END_TEST

// Part records read back into what was tallied, and malformed ones refused.
START_TEST(test_eval_part_records) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const int items[4][3] = {{4, 1, 1}, {4, 2, 0}, {2, 0, 1}, {3, 2, 2}};  // choices, gold, pred (= pred_norm here)
    bd_mc_tally want = {0}, got = {0};
    for (int i = 0; i < 4; i++) {
        bd_eval_part_pack_item(&pk, i, items[i][0], items[i][1], items[i][2], items[i][2]);
        bd_mc_tally_count(&want, items[i][0], items[i][1], items[i][2], items[i][2]);
    }
    bd_ppl_unit units[2] = {{0, 3, 21, 30.125}, {1, 1, 7, 0.1}};
    for (int i = 0; i < 2; i++) bd_eval_part_pack_unit(&pk, &units[i]);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    char why[300];
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        ck_assert_int_eq(bd_eval_part_add_item(&got, &u.data, "r", why, sizeof why), BD_OK);
    }
    ck_assert_int_eq(got.n, 4);
    ck_assert_int_eq(got.correct, 2);
    ck_assert_int_eq(got.correct, want.correct);
    ck_assert(got.chance_sum == want.chance_sum);  // the same additions in the same order
    bd_ppl_result r = {0};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        ck_assert_int_eq(bd_eval_part_add_unit(&r, &u.data, "r", why, sizeof why), BD_OK);
    }
    ck_assert(r.nll_sum == 30.125 + 0.1);
    ck_assert_int_eq(r.scored, 28);
    ck_assert_int_eq(r.windows, 4);
    // An item is not a unit (no windows), a unit is not an item; out-of-range fields.
    msgpack_sbuffer_clear(&sb);
    bd_eval_part_pack_item(&pk, 0, 4, 4, 0, 0);  // gold 4 of 4 choices
    bd_eval_part_pack_item(&pk, 0, 1, 0, 0, 0);  // one choice
    bd_ppl_unit bad = {0, 1, 5, -1.0};           // negative nll
    bd_eval_part_pack_unit(&pk, &bad);
    off = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        int rc = i < 2 ? bd_eval_part_add_item(&got, &u.data, "\"p\" record 3", why, sizeof why)
                       : bd_eval_part_add_unit(&r, &u.data, "\"p\" record 3", why, sizeof why);
        ck_assert_int_eq(rc, BD_ERR_SCHEMA);
        ck_assert_msg(strstr(why, "\"p\" record 3: expected"), "%s", why);
        ck_assert_int_eq(bd_eval_part_add_unit(&r, &u.data, "x", why, sizeof why), BD_ERR_SCHEMA);
    }
    ck_assert_int_eq(got.n, 4);  // nothing added by a refused record
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

Suite *suite_shard(void) {
    Suite *s = suite_create("shard");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_shard_parse);
    tcase_add_test(tc, test_shard_count);
    tcase_add_test(tc, test_shard_check);
    tcase_add_test(tc, test_shard_merged_header);
    tcase_add_test(tc, test_shard_each);
    tcase_add_test(tc, test_eval_part_records);
    suite_add_tcase(s, tc);
    return s;
}
