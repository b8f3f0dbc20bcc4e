// llama.cpp's K-quant block formats, byte for byte (ggml-common.h), so that a student trained
// with these fake quantizers is written to GGUF without any loss: what the student computes
// with is what the file's blocks dequantize to.
//
// A super-block holds 256 consecutive weights of a row (rows must be a multiple of 256), split
// into sub-blocks that each have a small integer scale (and min) times the block's f16 factors:
//   q2_K  16 sub-blocks of 16; 4-bit scale sc and 4-bit min m per sub-block; 2-bit codes q;
//         w = (d*sc)*q - dmin*m                           84 bytes, 2.625 bits/weight
//   q3_K  16 sub-blocks of 16; signed 6-bit scale sc in -32..31, stored as sc+32; 3-bit codes
//         q in 0..7; w = (d*sc)*(q - 4)                    110 bytes, 3.4375 bits/weight
//   q4_K  8 sub-blocks of 32; 6-bit scale sc and 6-bit min m; 4-bit codes q;
//         w = (d*sc)*q - dmin*m                           144 bytes, 4.5 bits/weight
// Weight order inside a block (the layouts ggml's dequantize_row_* walk):
//   q2_K, q3_K low bits: weight i = 128h + 32s + l (h < 2, s < 4, l < 32) at bits 2s of qs[32h + l];
//          sub-block i/16 (scales[i/16] of q2_K: scale in the low nibble, min in the high one).
//   q3_K high bit: bit i/32 of hmask[i%32], set for q >= 4. The 16 6-bit scales: scale j has its
//          low 4 bits in scales[j%8] (low nibble for j < 8, high above) and its high 2 bits at
//          bits 2(j/4) of scales[8 + j%4].
//   q4_K   weight i = 64h + 32s + l (h < 4, s < 2, l < 32) in the low (s = 0) or high nibble of
//          qs[32h + l]; sub-block i/32. Scale and min j (6 bits each): j < 4: scales[j] and
//          scales[j+4] low 6 bits; j >= 4: low 4 bits in the low / high nibble of scales[j+4],
//          high 2 bits in bits 6-7 of scales[j-4] / scales[j].
// The dequantization repeats ggml's float arithmetic step by step (products of an f16 value and
// small integers, then one subtraction, never fused), so bd, ggml and any reader that follows
// the format get the same floats.
//
// How the scales are chosen is bd's own rule (ggml's llama-quantize searches harder; the file
// format does not care): q2_K and q4_K take each sub-block's min-max range with the minimum
// clamped to <= 0 (so zero is in range, as ggml's mins are), s = range/(2^b - 1), m = -min; the
// block's d and dmin are the largest s and m over the 63 (q4_K) or 15 (q2_K) integer steps,
// rounded to f16; each sub-block's integer scale and min are the nearest steps; the codes are
// the nearest levels under those exact factors. q3_K maps the weight of largest magnitude of each
// sub-block to level -4 (a signed scale), d = -(largest such scale)/32 and the 6-bit scales
// the nearest steps. Rounding is to nearest, halves to even.
#ifndef BD_KQUANT_H
#define BD_KQUANT_H

#include <assert.h>
#include <stdint.h>

#define BD_QK_K 256

typedef struct {
    uint8_t scales[BD_QK_K / 16];  // low nibble scale, high nibble min
    uint8_t qs[BD_QK_K / 4];
    uint16_t d, dmin;  // f16
} bd_block_q2_K;
typedef struct {
    uint8_t hmask[BD_QK_K / 8];
    uint8_t qs[BD_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;  // f16
} bd_block_q3_K;
typedef struct {
    uint16_t d, dmin;  // f16
    uint8_t scales[12];
    uint8_t qs[BD_QK_K / 2];
} bd_block_q4_K;
static_assert(sizeof(bd_block_q2_K) == 84, "bd_block_q2_K is ggml's 84-byte block_q2_K");
static_assert(sizeof(bd_block_q3_K) == 110, "bd_block_q3_K is ggml's 110-byte block_q3_K");
static_assert(sizeof(bd_block_q4_K) == 144, "bd_block_q4_K is ggml's 144-byte block_q4_K");

// Quantize 256 finite weights x into one block (bd's rule above); dequantize one block into 256
// floats (ggml's arithmetic). A block is plain bytes: callers may pass unaligned storage through
// memcpy'd locals.
void bd_quantize_block_q2_K(const float *x, bd_block_q2_K *b);
void bd_quantize_block_q3_K(const float *x, bd_block_q3_K *b);
void bd_quantize_block_q4_K(const float *x, bd_block_q4_K *b);
void bd_dequantize_block_q2_K(const bd_block_q2_K *b, float *y);
void bd_dequantize_block_q3_K(const bd_block_q3_K *b, float *y);
void bd_dequantize_block_q4_K(const bd_block_q4_K *b, float *y);

// The 6-bit scale (q3_K: stored value, sc + 32) of sub-block j; q4_K: scale and min.
int bd_q3_K_scale(const uint8_t scales[12], int j);
void bd_q4_K_scale_min(const uint8_t scales[12], int j, int *sc, int *m);
// All 8 of a q4_K block at once (bd_q4_K_scale_min's rule, inlined for the kernels: a call per
// sub-block was 17% of a q4_K token).
static inline void bd_q4_K_scales_mins(const uint8_t q[12], int sc[8], int m[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = q[j] & 63;
        m[j] = q[j + 4] & 63;
        sc[j + 4] = (q[j + 8] & 15) | (q[j] >> 6) << 4;
        m[j + 4] = (q[j + 8] >> 4) | (q[j + 4] >> 6) << 4;
    }
}

#endif
