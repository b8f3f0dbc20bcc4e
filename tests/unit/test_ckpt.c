// The identity of training data recorded in checkpoints: bd_ckpt_data_hash must tell apart
// data that differs in one id, in order, or in length (and never be 0, "not recorded").
#include <stdint.h>

#include "bd_ckpt.h"
#include "bd_test.h"

START_TEST(test_data_hash) {
    int32_t a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 2, 3, 4, 5, 7}, c[6] = {2, 1, 3, 4, 5, 6};
    uint64_t ha = bd_ckpt_data_hash(a, 6);
    ck_assert(ha == bd_ckpt_data_hash(a, 6));
    ck_assert(ha != bd_ckpt_data_hash(b, 6));
    ck_assert(ha != bd_ckpt_data_hash(c, 6));
    ck_assert(ha != bd_ckpt_data_hash(a, 5));
    ck_assert(bd_ckpt_data_hash(a, 0) != 0 && ha != 0);
    int32_t z[2] = {0, 0};
    ck_assert(bd_ckpt_data_hash(z, 1) != bd_ckpt_data_hash(z, 2));
}
END_TEST

Suite *suite_ckpt(void) {
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("ckpt");
    tcase_add_test(tc, test_data_hash);
    suite_add_tcase(s, tc);
    return s;
}
