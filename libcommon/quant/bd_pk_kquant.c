// q2_K, q3_K, q4_K: llama.cpp's K-quant blocks stored verbatim (bd_kquant.h), one 256-weight
// super-block per group, so a packed student's rows are the bytes its GGUF file holds. The
// dots dequantize one block at a time (ggml's arithmetic) and multiply; int8 activations use
// the same dequantized weights. No SIMD kernels yet: every path takes the scalar one.
#include "bd_kquant.h"
#include "bd_pk_simd.h"

typedef void kq_quant_fn(const float *x, void *block);
typedef void kq_dequant_fn(const void *block, float *y);

static void quant_q2_K(const float *x, void *b) { bd_quantize_block_q2_K(x, b); }
static void quant_q3_K(const float *x, void *b) { bd_quantize_block_q3_K(x, b); }
static void quant_q4_K(const float *x, void *b) { bd_quantize_block_q4_K(x, b); }
static void dequant_q2_K(const void *b, float *y) { bd_dequantize_block_q2_K(b, y); }
static void dequant_q3_K(const void *b, float *y) { bd_dequantize_block_q3_K(b, y); }
static void dequant_q4_K(const void *b, float *y) { bd_dequantize_block_q4_K(b, y); }

static kq_quant_fn *quant_of(bd_pk_type type) {
    return type == BD_PK_Q2_K ? quant_q2_K : type == BD_PK_Q3_K ? quant_q3_K : quant_q4_K;
}
static kq_dequant_fn *dequant_of(bd_pk_type type) {
    return type == BD_PK_Q2_K ? dequant_q2_K : type == BD_PK_Q3_K ? dequant_q3_K : dequant_q4_K;
}

void bd_quantize_row_kquant_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    (void)q;
    kq_quant_fn *quant = quant_of(t->type);
    for (int g = 0; g < t->ngroups; g++) quant(w + (size_t)g * BD_QK_K, bd_pk_block(dst, t, g));
}

void bd_dequantize_row_kquant(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    kq_dequant_fn *dequant = dequant_of(t->type);
    for (int g = 0; g < t->ngroups; g++) dequant(bd_pk_cblock(src, t, g), out + (size_t)g * BD_QK_K);
}

// The f16 factors must be finite (ggml reads any bit pattern, but inf or NaN would poison
// every product); scales, mins and codes are any bits by construction.
int bd_validate_row_kquant(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int g = 0; g < t->ngroups; g++) {
        const uint8_t *b = bd_pk_cblock(row, t, g);
        uint16_t f[2];
        int nf = 1;
        if (t->type == BD_PK_Q2_K)
            memcpy(f, b + offsetof(bd_block_q2_K, d), 4), nf = 2;
        else if (t->type == BD_PK_Q3_K)
            memcpy(f, b + offsetof(bd_block_q3_K, d), 2);
        else
            memcpy(f, b + offsetof(bd_block_q4_K, d), 4), nf = 2;
        for (int i = 0; i < nf; i++)
            if ((f[i] & 0x7c00) == 0x7c00)
                return bd_pk_bad(why, ws, r, g, "f16 factor %g is not finite", bd_f16_to_f32(f[i]));
    }
    return BD_OK;
}

float bd_vec_dot_kquant_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    kq_dequant_fn *dequant = dequant_of(t->type);
    float w[BD_QK_K], acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        dequant(bd_pk_cblock(row, t, g), w);
        const float *x = xp + (size_t)g * BD_QK_K;
        for (int i = 0; i < BD_QK_K; i++) acc += w[i] * x[i];
    }
    return acc;
}

float bd_vec_dot_kquant_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                                  float xs) {
    (void)xsum;
    kq_dequant_fn *dequant = dequant_of(t->type);
    float w[BD_QK_K], acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        dequant(bd_pk_cblock(row, t, g), w);
        const int8_t *x = xq + (size_t)g * BD_QK_K;
        for (int i = 0; i < BD_QK_K; i++) acc += w[i] * (float)x[i];
    }
    return acc * xs;
}
