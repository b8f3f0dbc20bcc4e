// 8-bit activation quantization per token (BitNet b1.58; BitDistill's activation_quant, the
// official code's core.py), shared by QAT's fake quantization (the forward of a W1.58A8
// model, bd_block_linear) and the packed kernels' int8 activations (bd_pk_kernels.c), so a
// packed W1.58A8 model sees exactly the levels its fake-quantized twin was trained with.
// Dimension key: N rows (tokens), C row length.
//
// For each row x (C):  s = 127 / max(max_i |x_i|, 1e-5)     (the eps clamps the max)
//                      level_i = clamp(round(x_i * s), -128, 127)   round half to even
//                      value_i = level_i * d,  d = max(max_i |x_i|, 1e-5) / 127
// |x_i * s| <= 127, so -128 never occurs: the levels are symmetric, -127..127, as the packed
// kernels assume. value = level * d is the official level / s up to one rounding of the
// factor (bd uses d because the int8 kernels multiply their integer dot by it).
// Straight-through backward (not here: bd_train.c): the gradient passes the quantizer
// unchanged, and a linear's weight gradient uses the quantized input.
#ifndef BD_ACT_QUANT_H
#define BD_ACT_QUANT_H

#include <stdint.h>

#define BD_ACT_EPS 1e-5f  // floor of a row's max |x|

// One row: levels q (C) and the factor *d of their values.
void bd_act_quant_row(const float *x, int8_t *q, int C, float *d);
// Fake quantization of N rows: out (N, C) gets the values (out may equal x). Rows are split
// over threads; each row is computed the same way as bd_act_quant_row (bit-identical).
void bd_act_fakequant(float *out, const float *x, int N, int C);
// Plain single-threaded twin.
void bd_act_fakequant_ref(float *out, const float *x, int N, int C);

#endif
