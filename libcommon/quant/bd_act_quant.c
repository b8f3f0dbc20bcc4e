// 8-bit per-token activation quantization (see bd_act_quant.h for the formula).
// Dimension key: N rows, C row length.
#include "bd_act_quant.h"

#include <math.h>
#include <stddef.h>

#include "bd_threads.h"

// The row's factor d and the multiplier 127/max: both from the same clamped max.
static float row_scale(const float *x, int C, float *inv) {
    float amax = 0;
    for (int i = 0; i < C; i++) amax = fmaxf(amax, fabsf(x[i]));
    amax = fmaxf(amax, BD_ACT_EPS);
    *inv = 127.0f / amax;
    return amax / 127.0f;
}

static inline float level(float x, float inv) {
    float q = rintf(x * inv);
    return q > 127.0f ? 127.0f : q < -128.0f ? -128.0f : q;
}

void bd_act_quant_row(const float *x, int8_t *q, int C, float *d) {
    float inv;
    *d = row_scale(x, C, &inv);
    for (int i = 0; i < C; i++) q[i] = (int8_t)level(x[i], inv);
}

static void fakequant_row(float *out, const float *x, int C) {
    float inv, d = row_scale(x, C, &inv);
    for (int i = 0; i < C; i++) out[i] = level(x[i], inv) * d;
}

typedef struct {
    float *out;
    const float *x;
    int C;
} fq_job;

static void fq_rows(void *ctx, int r0, int r1) {
    const fq_job *j = ctx;
    for (int r = r0; r < r1; r++) fakequant_row(j->out + (size_t)r * j->C, j->x + (size_t)r * j->C, j->C);
}

void bd_act_fakequant(float *out, const float *x, int N, int C) {
    fq_job j = {out, x, C};
    bd_parallel_for(N, 1 + 16384 / (C > 0 ? C : 1), fq_rows, &j);
}

void bd_act_fakequant_ref(float *out, const float *x, int N, int C) {
    for (int r = 0; r < N; r++) fakequant_row(out + (size_t)r * C, x + (size_t)r * C, C);
}
