// f32: a layer kept in full precision, as a packed tensor of one block per row (C floats).
// Models keep such layers in their f32 weights (bd_pk_model_slot gives NULL); the row exists
// so every tensor type has the same behaviour. int8 activations: the scalar dot.
#include "bd_pk_simd.h"

void bd_quantize_row_f32_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    (void)q;
    memcpy(dst, w, (size_t)t->cols * sizeof *w);
}

void bd_dequantize_row_f32(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    memcpy(out, src, (size_t)t->cols * sizeof *out);
}

int bd_validate_row_f32(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    const float *w = (const void *)row;
    for (int i = 0; i < t->cols; i++)
        if (!isfinite(w[i])) return bd_pk_bad(why, ws, r, i, "weight %g is not finite", w[i]);
    return BD_OK;
}

float bd_vec_dot_f32_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    const float *w = (const void *)row;
    float acc = 0;
    for (int i = 0; i < t->cols; i++) acc += w[i] * xp[i];
    return acc;
}

float bd_vec_dot_f32_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                               float xs) {
    (void)xsum;
    const float *w = (const void *)row;
    float acc = 0;
    for (int i = 0; i < t->cols; i++) acc += w[i] * (float)xq[i];
    return acc * xs;
}
