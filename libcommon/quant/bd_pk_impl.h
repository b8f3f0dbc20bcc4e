// Internals of the packed formats (bd_packed.c, bd_pk_kernels.c, bd_pk_<format>.c): code bit
// access, block addressing, the affine header shared by q2 q3 q8, and the functions each format
// file defines for its row of bd_pk_traits_table. Not part of the library's interface.
#ifndef BD_PK_IMPL_H
#define BD_PK_IMPL_H

#include <string.h>

#include "bd_packed.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BD_X86 1
#include <immintrin.h>
#endif

// ---- codes ------------------------------------------------------------------------------------------
// 2-bit: weight i at bits 2(i%4) of qs[i/4]. 3-bit: its low 2 bits as a 2-bit code in qs[0, GP/4),
// bit 2 at bit i%8 of the high plane qs[GP/4 + i/8]. Blocks are zeroed before codes are or'ed in.
static inline void bd_put2(uint8_t *qs, int i, int q) { qs[i >> 2] |= (uint8_t)((q & 3) << (2 * (i & 3))); }
static inline int bd_get2(const uint8_t *qs, int i) { return qs[i >> 2] >> (2 * (i & 3)) & 3; }
static inline void bd_put3(uint8_t *qs, int gp, int i, int q) {
    bd_put2(qs, i, q & 3);
    qs[gp / 4 + (i >> 3)] |= (uint8_t)((q >> 2 & 1) << (i & 7));
}
static inline int bd_get3(const uint8_t *qs, int gp, int i) {
    return bd_get2(qs, i) | (qs[gp / 4 + (i >> 3)] >> (i & 7) & 1) << 2;
}

// ---- blocks -----------------------------------------------------------------------------------------
static inline void *bd_pk_block(uint8_t *row, const bd_pk_tensor *t, int g) { return row + (size_t)g * t->block_bytes; }
static inline const void *bd_pk_cblock(const uint8_t *row, const bd_pk_tensor *t, int g) {
    return row + (size_t)g * t->block_bytes;
}
// Weights in group g of a row (the last group may be short).
static inline int bd_pk_group_len(const bd_pk_tensor *t, int g) {
    int g0 = g * t->group;
    return t->cols - g0 < t->group ? t->cols - g0 : t->group;
}

// A validation failure: "row R group G: <fmt with v>" into why; returns BD_ERR_VALUE.
int bd_pk_bad(char *why, size_t why_size, int r, int g, const char *fmt, double v);

// ---- affine header (q2 q3 q8 q6) -----------------------------------------------------------------------
// The int or sym quantizer of a group (bd_quant.h) as block header s, z and codes: sym stores
// level + 2^(b-1) with z = 2^(b-1).
static inline bd_qgroup bd_pk_affine_group(const float *w, int n, const bd_qspec *q) {
    return q->kind == BD_Q_SYM ? bd_qgroup_sym(w, n, q->bits) : bd_qgroup_int(w, n, q->bits);
}
static inline int bd_pk_affine_code(const bd_qgroup *g, const bd_qspec *q, float w) {
    return q->kind == BD_Q_SYM ? (int)bd_qlevel_sym(g, w) + (int)g->z : (int)bd_qlevel_int(g, w);
}
// lut[c] = (c - z) * s for the 8 codes c (2-bit formats use the first 4).
static inline void bd_pk_affine_lut(float lut[8], float s, int z) {
#ifdef BD_X86
    // The loop below in two SSE2 steps (baseline x86-64): the loop was a measurable share of
    // the scalar 2-bit kernel's time.
    __m128 sv = _mm_set1_ps(s);
    __m128i zv = _mm_set1_epi32(z);
    _mm_storeu_ps(lut, _mm_mul_ps(_mm_cvtepi32_ps(_mm_sub_epi32(_mm_setr_epi32(0, 1, 2, 3), zv)), sv));
    _mm_storeu_ps(lut + 4, _mm_mul_ps(_mm_cvtepi32_ps(_mm_sub_epi32(_mm_setr_epi32(4, 5, 6, 7), zv)), sv));
#else
    for (int c = 0; c < 8; c++) lut[c] = (float)(c - z) * s;
#endif
}
// Scale finite and positive, zero point below 2^zbits: BD_OK, else bd_pk_bad.
int bd_pk_affine_check(float s, int z, int zbits, int r, int g, char *why, size_t why_size);

// ---- the formats ------------------------------------------------------------------------------------
// Each bd_pk_<format>.c defines its row's functions; SIMD ones exist on x86-64 only.
bd_pk_quantize_fn bd_quantize_row_kquant_ref, bd_quantize_row_q2_ref, bd_quantize_row_q3_ref, bd_quantize_row_q8_ref,
        bd_quantize_row_nf3_ref, bd_quantize_row_r2q_ref, bd_quantize_row_tq2_ref, bd_quantize_row_f32_ref,
        bd_quantize_row_q6_ref;
bd_pk_dequantize_fn bd_dequantize_row_kquant, bd_dequantize_row_q2, bd_dequantize_row_q3, bd_dequantize_row_q8,
        bd_dequantize_row_nf3, bd_dequantize_row_r2q, bd_dequantize_row_tq2, bd_dequantize_row_f32,
        bd_dequantize_row_q6;
bd_pk_validate_fn bd_validate_row_kquant, bd_validate_row_q2, bd_validate_row_q3, bd_validate_row_q8,
        bd_validate_row_nf3, bd_validate_row_r2q, bd_validate_row_tq2, bd_validate_row_f32, bd_validate_row_q6;
bd_pk_dot_f32_fn bd_vec_dot_kquant_f32_scalar, bd_vec_dot_kquant_f32_avx2, bd_vec_dot_kquant_f32_avx512;
bd_pk_dot_i8_fn bd_vec_dot_kquant_i8_scalar, bd_vec_dot_kquant_i8_avx512;
bd_pk_dot_f32_fn bd_vec_dot_q2_f32_scalar, bd_vec_dot_q2_f32_avx2, bd_vec_dot_q2_f32_avx512;
bd_pk_dot_f32_fn bd_vec_dot_q3_f32_scalar, bd_vec_dot_q3_f32_avx2, bd_vec_dot_q3_f32_avx512;
bd_pk_dot_f32_fn bd_vec_dot_q8_f32_scalar, bd_vec_dot_q8_f32_avx2, bd_vec_dot_q8_f32_avx512;
bd_pk_dot_f32_fn bd_vec_dot_q6_f32_scalar, bd_vec_dot_q6_f32_avx2, bd_vec_dot_q6_f32_avx512;
bd_pk_dot_f32_fn bd_vec_dot_nf3_f32_scalar, bd_vec_dot_nf3_f32_avx2, bd_vec_dot_nf3_f32_avx512;
bd_pk_dot_f32_fn bd_vec_dot_r2q_f32_scalar, bd_vec_dot_r2q_f32_avx2, bd_vec_dot_r2q_f32_avx512;
bd_pk_dot_f32_fn bd_vec_dot_tq2_f32_scalar, bd_vec_dot_tq2_f32_avx2, bd_vec_dot_tq2_f32_avx512;
bd_pk_dot_f32_fn bd_vec_dot_f32_f32_scalar, bd_vec_dot_f32_f32_avx2, bd_vec_dot_f32_f32_avx512;
bd_pk_dot_i8_fn bd_vec_dot_q2_i8_scalar, bd_vec_dot_q2_i8_avx2, bd_vec_dot_q2_i8_avx512;
bd_pk_dot_i8_fn bd_vec_dot_tq2_i8_scalar, bd_vec_dot_tq2_i8_avx2, bd_vec_dot_tq2_i8_avx512;
bd_pk_dot_i8_fn bd_vec_dot_q3_i8_scalar, bd_vec_dot_q8_i8_scalar, bd_vec_dot_q6_i8_scalar, bd_vec_dot_nf3_i8_scalar,
        bd_vec_dot_r2q_i8_scalar, bd_vec_dot_f32_i8_scalar;
bd_pk_dot_i8_fn bd_vec_dot_q3_i8_avx2, bd_vec_dot_q3_i8_avx512, bd_vec_dot_q8_i8_avx2, bd_vec_dot_q8_i8_avx512,
        bd_vec_dot_q6_i8_avx2, bd_vec_dot_q6_i8_avx512;
float bd_pk_tq2_scale(const float *w, size_t n);
// Integer tiles (bd_pk_tiles.c): the traits' gemm_i8 entries (q8: no AVX2 one), and the route of
// bd_pk_matmul for int8 activations at N >= 8 when the path has an entry and tiles_fit (int32 bound).
bd_pk_gemm_i8_fn bd_gemm_q2_i8_avx2, bd_gemm_q2_i8_avx512, bd_gemm_tq2_i8_avx2, bd_gemm_tq2_i8_avx512,
        bd_gemm_q3_i8_avx2, bd_gemm_q3_i8_avx512, bd_gemm_q6_i8_avx2, bd_gemm_q6_i8_avx512, bd_gemm_q8_i8_avx512;
// Generation's matrix-vector products (the traits' gemv_i8 entries; N < 8 with int8 activations).
bd_pk_gemv_i8_fn bd_gemv_tq2_i8_avx512, bd_gemv_kquant_i8_avx512;
bd_pk_gemv_f32_fn bd_gemv_f32_avx512;
int bd_pk_tile_rows(bd_simd s);  // RB, the rows of a tile on path s
bool bd_pk_tiles_fit(const bd_pk_tensor *t);
size_t bd_pk_tiles_scratch_bytes(const bd_pk_tensor *t, int N);  // 64-byte aligned start assumed
void bd_pk_matmul_tiles(float *out, const float *inp, const bd_pk_tensor *t, int N, bd_simd simd, bd_pk_gemm_i8_fn *fn,
                        void *scratch);
// K-quant integer tiles (bd_pk_kquant_tiles.c): q2_K and q4_K, int8 activations at N >= 8 on
// AVX-512; equal bit for bit to bd_vec_dot_kquant_i8_scalar.
bool bd_pk_kquant_tiles_fit(const bd_pk_tensor *t);
size_t bd_pk_kquant_tiles_scratch_bytes(const bd_pk_tensor *t, int N);  // 64-byte aligned start assumed
void bd_pk_matmul_kquant_tiles(float *out, const float *inp, const bd_pk_tensor *t, int N, void *scratch);
// f32 tiles (bd_pk_f32_tiles.c): f32 activations at N >= 8 on AVX-512, any format. Scratch: the
// dequantized rows of one block per thread (none for f32 weights read in place), at the current
// bd_num_threads().
size_t bd_pk_f32_tiles_scratch_bytes(const bd_pk_tensor *t);
void bd_pk_matmul_f32_tiles(float *out, const float *inp, const bd_pk_tensor *t, int N, void *scratch);
// bf16 and f16 (bd_pk_half.c): f16 has no AVX2 dot (F16C is not part of the AVX2 path's check).
bd_pk_quantize_fn bd_quantize_row_bf16_ref, bd_quantize_row_f16_ref;
bd_pk_dequantize_fn bd_dequantize_row_bf16, bd_dequantize_row_f16;
bd_pk_validate_fn bd_validate_row_bf16, bd_validate_row_f16;
bd_pk_dot_f32_fn bd_vec_dot_bf16_f32_scalar, bd_vec_dot_bf16_f32_avx2, bd_vec_dot_bf16_f32_avx512,
        bd_vec_dot_f16_f32_scalar, bd_vec_dot_f16_f32_avx512;
bd_pk_dot_i8_fn bd_vec_dot_bf16_i8_scalar, bd_vec_dot_f16_i8_scalar;

#endif
