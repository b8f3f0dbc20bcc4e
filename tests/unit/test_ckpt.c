// The identity of training data recorded in checkpoints: bd_seqs_hash must tell apart sequences
// that differ in one token, one target (a masked prompt), their order, their length, or a stored
// teacher log-probability; it ignores the rows of unscored positions and is never 0 ("not
// recorded").
#include <stdint.h>
#include <string.h>

#include "bd_seqs.h"
#include "bd_test.h"

static uint64_t hash_of(const int32_t *ids, size_t n, int T) {
    bd_seqs s;
    ck_assert_int_eq(bd_seqs_from_ids(&s, ids, n, T), BD_OK);
    uint64_t h = bd_seqs_hash(&s);
    bd_seqs_free(&s);
    return h;
}

START_TEST(test_data_hash) {
    int32_t a[7] = {1, 2, 3, 4, 5, 6, 7}, b[7] = {1, 2, 3, 4, 5, 6, 8}, c[7] = {2, 1, 3, 4, 5, 6, 7};
    uint64_t ha = hash_of(a, 7, 3);
    ck_assert(ha == hash_of(a, 7, 3));
    ck_assert(ha != hash_of(b, 7, 3));
    ck_assert(ha != hash_of(c, 7, 3));
    ck_assert(ha != hash_of(a, 7, 2));
    ck_assert(ha != hash_of(a, 4, 3));
    ck_assert(ha != 0 && hash_of(a, 0, 3) != 0);
    int32_t z[5] = {0};
    ck_assert(hash_of(z, 3, 2) != hash_of(z, 5, 2));
    // A masked target, and the stored teacher rows.
    bd_seqs s;
    ck_assert_int_eq(bd_seqs_from_ids(&s, a, 7, 3), BD_OK);
    s.tgt[0] = -1;
    ck_assert(bd_seqs_hash(&s) != ha);
    s.tk = 1;
    s.top_ids = calloc(6, sizeof(int32_t)), s.top_lp = calloc(6, sizeof(float));
    uint64_t ht = bd_seqs_hash(&s);
    s.top_ids[0] = 99;  // position 0 is not scored: its row does not count
    ck_assert(bd_seqs_hash(&s) == ht);
    s.top_lp[1] = -0.5f;
    ck_assert(bd_seqs_hash(&s) != ht);
    bd_seqs_free(&s);
}
END_TEST

Suite *suite_ckpt(void) {
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("ckpt");
    tcase_add_test(tc, test_data_hash);
    suite_add_tcase(s, tc);
    return s;
}
