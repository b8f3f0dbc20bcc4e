// The token stream reader (bd_tokens, bd_ids): the ids of written documents come back in
// order; samples give prompt then completion; the caps keep what they say and still check
// the rest; bad ids, vocabularies and schemas are refused with messages naming the file and
// record; text documents encode as the tokenizer encodes each of them.
#include <string.h>

#include "bd_ids.h"
#include "bd_test_streams.h"

static const int32_t docs[] = {1, 5, 6, 7, 1, 9, 1, 10, 11, 12, 13};
static const int lens[] = {4, 2, 0, 5};

START_TEST(test_tokens_read_all) {
    const char *p = bd_test_path("ids.bdz");
    bd_test_write_tokens(p, docs, lens, 4, 20);
    bd_ids all = {0};
    char why[600];
    ck_assert_int_eq(bd_tokens_read(p, "bd.tokens", 20, true, SIZE_MAX, &all, why, sizeof why), BD_OK);
    ck_assert_uint_eq(all.n, 11);
    for (size_t i = 0; i < all.n; i++) ck_assert_int_eq(all.ids[i], docs[i]);
    // A cap keeps the first ids only, appended after what out holds.
    ck_assert_int_eq(bd_tokens_read(p, NULL, 20, false, 5, &all, why, sizeof why), BD_OK);
    ck_assert_uint_eq(all.n, 16);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(all.ids[11 + i], docs[i]);
    // Record by record, with at most 3 ids of each.
    bd_tokens t;
    ck_assert_int_eq(bd_tokens_open(&t, p, "bd.tokens", 20, true, why, sizeof why), BD_OK);
    t.max_per_record = 3;
    size_t want[] = {3, 2, 0, 3};
    for (int d = 0; d < 4; d++) {
        ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_OK);
        ck_assert_uint_eq(t.doc.n, want[d]);
        ck_assert_uint_eq(t.n_prompt, want[d]);
    }
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_EOF);
    bd_tokens_close(&t);
    bd_ids_free(&all);
}
END_TEST

START_TEST(test_tokens_refused) {
    const char *p = bd_test_path("bad.bdz");
    int32_t bad[] = {1, 2, 3, 4, 25, 6};
    int blen[] = {3, 3};
    bd_test_write_tokens(p, bad, blen, 2, 0);
    bd_ids all = {0};
    char why[600] = "";
    // Id 25 sits at position 1 of record 2; past a cap it is still found.
    ck_assert_int_eq(bd_tokens_read(p, "bd.tokens", 20, true, 2, &all, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(
            strstr(why,
                   "bad.bdz\" record 2: field \"ids\": id 25 at position 1 is outside the model's vocabulary of 20"),
            "%s", why);
    // Whose vocabulary it is can be named; a cap per record leaves the id unread.
    bd_tokens t;
    ck_assert_int_eq(bd_tokens_open(&t, p, NULL, 20, false, why, sizeof why), BD_OK);
    t.vocab = "the tokenizer's";
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "outside the tokenizer's vocabulary of 20"), "%s", why);
    bd_tokens_close(&t);
    ck_assert_int_eq(bd_tokens_open(&t, p, NULL, 20, false, why, sizeof why), BD_OK);
    t.max_per_record = 1;
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_OK);
    ck_assert_int_eq(t.doc.ids[0], 4);
    bd_tokens_close(&t);
    // The header's vocabulary, when checked.
    const char *q = bd_test_path("big.bdz");
    bd_test_write_tokens(q, docs, lens, 4, 32000);
    ck_assert_int_eq(bd_tokens_read(q, "bd.tokens", 20, true, SIZE_MAX, &all, why, sizeof why), BD_ERR_SCHEMA);
    ck_assert_msg(strstr(why, "big.bdz\" header: tokens from a vocabulary of 32000, the model has 20"), "%s", why);
    ck_assert_int_eq(bd_tokens_read(q, "bd.tokens", 20, false, SIZE_MAX, &all, why, sizeof why), BD_OK);
    // A schema that is neither, and a file that does not exist.
    bd_writer *w = bd_writer_open(bd_test_path("other.bdz"), 0, NULL);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.other", NULL, 0), BD_OK);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
    ck_assert_int_eq(bd_tokens_read(bd_test_path("other.bdz"), NULL, 20, false, SIZE_MAX, &all, why, sizeof why),
                     BD_ERR_SCHEMA);
    ck_assert_msg(strstr(why, "schema is \"bd.other\", expected \"bd.tokens\" or \"bd.samples\""), "%s", why);
    ck_assert_int_eq(bd_tokens_read(bd_test_path("other.bdz"), "bd.tokens", 20, false, SIZE_MAX, &all, why, sizeof why),
                     BD_ERR_SCHEMA);
    ck_assert_int_eq(bd_tokens_read(bd_test_path("none.bdz"), "bd.tokens", 20, false, SIZE_MAX, &all, why, sizeof why),
                     BD_ERR_IO);
    ck_assert_msg(strstr(why, "none.bdz\" cannot open"), "%s", why);
    bd_ids_free(&all);
}
END_TEST

START_TEST(test_tokens_samples) {
    int32_t p0[] = {1, 4}, c0[] = {5, 6, 2}, p1[] = {1}, c1[] = {7};
    bd_test_sample s[2] = {{p0, c0, 2, 3, NULL, NULL}, {p1, c1, 1, 1, NULL, NULL}};
    const char *p = bd_test_path("s.bdz");
    bd_test_write_samples(p, s, 2, 0);
    bd_tokens t;
    char why[600];
    ck_assert_int_eq(bd_tokens_open(&t, p, NULL, 10, true, why, sizeof why), BD_OK);
    ck_assert(t.samples);
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_OK);
    int32_t want[] = {1, 4, 5, 6, 2};
    ck_assert_uint_eq(t.doc.n, 5);
    ck_assert_uint_eq(t.n_prompt, 2);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(t.doc.ids[i], want[i]);
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_OK);
    ck_assert_uint_eq(t.doc.n, 2);
    ck_assert_uint_eq(t.n_prompt, 1);
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_EOF);
    bd_tokens_close(&t);
    // An id outside the vocabulary in a completion names that field.
    ck_assert_int_eq(bd_tokens_open(&t, p, "bd.samples", 6, false, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "record 1: field \"completion\": id 6 at position 1"), "%s", why);
    bd_tokens_close(&t);
}
END_TEST

START_TEST(test_ids_read_text) {
    bd_tokenizer *tok;
    char why[600];
    ck_assert_msg(bd_tokenizer_load(bd_test_data("models/stories260K/tok512.bin"), &tok, why, sizeof why) == BD_OK,
                  "%s", why);
    const char *p = bd_test_path("t.txt");
    FILE *f = fopen(p, "w");
    fputs("One day a cat.\nIt ran.\n\n\nThe end.", f);
    fclose(f);
    bd_ids ids = {0};
    ck_assert_int_eq(bd_ids_read_text(p, tok, &ids, why, sizeof why), BD_OK);
    // Two documents, each encoded on its own with BOS (the newline before the blank line dropped).
    const char *doc[2] = {"One day a cat.\nIt ran.", "The end."};
    size_t at = 0;
    for (int d = 0; d < 2; d++) {
        bd_token_buf b = {0};
        ck_assert_int_eq(bd_tokenizer_encode(tok, doc[d], strlen(doc[d]), BD_TOK_BOS, &b), BD_OK);
        ck_assert_int_eq(b.ids[0], bd_tokenizer_bos(tok));
        for (size_t i = 0; i < b.n; i++) ck_assert_int_eq(ids.ids[at + i], b.ids[i]);
        at += b.n;
        bd_token_buf_free(&b);
    }
    ck_assert_uint_eq(ids.n, at);
    ck_assert_int_eq(bd_ids_read_text(bd_test_path("none.txt"), tok, &ids, why, sizeof why), BD_ERR_IO);
    // A NUL byte is not text (a C string of it would end there): refused with its line.
    ck_assert_ptr_nonnull(f = fopen(p, "wb"));
    fwrite("One day.\n\nA c\0at.\n", 1, 19, f);
    fclose(f);
    ck_assert_int_eq(bd_ids_read_text(p, tok, &ids, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "t.txt\" line 3: NUL byte in text"), "%s", why);
    bd_ids_free(&ids);
    bd_tokenizer_free(tok);
}
END_TEST

// An empty first document (or an empty prompt) leaves the list without storage: appending
// nothing to it copies nothing (memcpy with a NULL destination is undefined, UBSan says).
START_TEST(test_tokens_empty_first) {
    static const int32_t d[] = {1, 5, 6};
    static const int l[] = {0, 3};
    const char *p = bd_test_path("empty_first.bdz");
    bd_test_write_tokens(p, d, l, 2, 20);
    bd_ids all = {0};
    char why[600];
    ck_assert_int_eq(bd_tokens_read(p, "bd.tokens", 20, true, SIZE_MAX, &all, why, sizeof why), BD_OK);
    ck_assert_uint_eq(all.n, 3);
    bd_ids_free(&all);
    ck_assert_int_eq(bd_ids_push(&all, NULL, 0), BD_OK);
    ck_assert_uint_eq(all.n, 0);
    int32_t c0[] = {7};
    bd_test_sample s = {d, c0, 0, 1, NULL, NULL};
    const char *q = bd_test_path("empty_prompt.bdz");
    bd_test_write_samples(q, &s, 1, 0);
    bd_tokens t;
    ck_assert_int_eq(bd_tokens_open(&t, q, "bd.samples", 20, false, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_tokens_next(&t, why, sizeof why), BD_OK);
    ck_assert_uint_eq(t.n_prompt, 0);
    ck_assert_uint_eq(t.doc.n, 1);
    bd_tokens_close(&t);
}
END_TEST

Suite *suite_ids(void) {
    Suite *s = suite_create("ids");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_tokens_read_all);
    tcase_add_test(tc, test_tokens_refused);
    tcase_add_test(tc, test_tokens_samples);
    tcase_add_test(tc, test_ids_read_text);
    tcase_add_test(tc, test_tokens_empty_first);
    suite_add_tcase(s, tc);
    return s;
}
