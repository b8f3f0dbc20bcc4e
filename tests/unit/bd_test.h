// Shared helpers for the Check unit tests. Each tests/unit/test_<name>.c defines
// `Suite *suite_<name>(void)`; main.c runs them all.
#ifndef BD_TEST_H
#define BD_TEST_H

#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "bd_model.h"

// |a - b| <= tol, written so that NaN fails.
#define ck_assert_close(a, b, tol)                                                                 \
    do {                                                                                           \
        double a_ = (a), b_ = (b), t_ = (tol);                                                     \
        ck_assert_msg(fabs(a_ - b_) <= t_, "%s = %.9g, expected %.9g (tol %.3g)", #a, a_, b_, t_); \
    } while (0)

// Path of a file under BD_DATA (default ../shared/data); returned buffer is static.
const char *bd_test_data(const char *rel);
// A fresh scratch directory for this process (BD_TMP or /tmp); returned path is static.
const char *bd_test_tmpdir(void);

// A tiny model variant for the forward and backward tests.
typedef struct {
    const char *name;
    int C, L, NH, KV, HS, F, V;
    bd_rope_style rope;
    bool tied, qkv_bias, qk_norm;
} bd_test_variant;

bd_config bd_test_variant_config(const bd_test_variant *v);

// Runs fn(ctx) in a child process whose address space may grow by at most margin bytes
// (RLIMIT_AS), so a huge allocation fails there; returns fn's result (0..255; 255 when the
// child died or the limit could not be set).
int bd_test_run_limited(size_t margin, int (*fn)(void *ctx), void *ctx);
// Random weights from rnd (uniform in [-1, 1)): norms near 1, linear weights ~ 1/sqrt(fan-in)
// so activations stay O(1) and attention is far from uniform.
void bd_test_random_model(bd_model *m, const bd_config *c, float (*rnd)(void));

#endif
