// Shared helpers for the Check unit tests. Each tests/unit/test_<name>.c defines
// `Suite *suite_<name>(void)`; main.c runs them all.
#ifndef BD_TEST_H
#define BD_TEST_H

#include <check.h>
#include <math.h>
#include <stdlib.h>

// |a - b| <= tol, written so that NaN fails.
#define ck_assert_close(a, b, tol)                                                        \
    do {                                                                                   \
        double a_ = (a), b_ = (b), t_ = (tol);                                             \
        ck_assert_msg(fabs(a_ - b_) <= t_, "%s = %.9g, expected %.9g (tol %.3g)", #a, a_, b_, t_); \
    } while (0)

// Path of a file under BD_DATA (default ../shared/data); returned buffer is static.
const char *bd_test_data(const char *rel);
// A fresh scratch directory for this process (BD_TMP or /tmp); returned path is static.
const char *bd_test_tmpdir(void);

#endif
