// Packed formats: the traits table (one row per format; its functions live in
// bd_pk_<format>.c), geometry, packing whole matrices, dequantizing and validating rows.
// Dimension key: C row length, G group, GP padded group, NG groups per row, OC rows.
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bd_hugemem.h"
#include "bd_kquant.h"
#include "bd_pk_impl.h"

#ifdef BD_X86
#define X86(f) f
#else
#define X86(f) NULL
#endif
#define K(kind) (1u << (kind))
#define ANY INT_MIN, INT_MAX

// name, qk, head_bytes, code_bits, row_group, qkinds, qbits_min, qbits_max, tensor_scale,
// quantize_row_ref, dequantize_row, validate_row, vec_dot_f32[scalar avx2 avx512], vec_dot_i8[...],
// gemm_i8[...] (integer tiles, bd_pk_tiles.c), gemv_i8[...] and gemv_f32[...] (generation's
// matrix-vector products)
const bd_pk_traits bd_pk_traits_table[BD_PK_COUNT] = {
        [BD_PK_F32] = {"f32",
                       1,
                       0,
                       32,
                       true,
                       K(BD_Q_NONE),
                       ANY,
                       NULL,
                       bd_quantize_row_f32_ref,
                       bd_dequantize_row_f32,
                       bd_validate_row_f32,
                       {bd_vec_dot_f32_f32_scalar, X86(bd_vec_dot_f32_f32_avx2), X86(bd_vec_dot_f32_f32_avx512)},
                       {bd_vec_dot_f32_i8_scalar, NULL, NULL},
                       {NULL, NULL, NULL},
                       {NULL, NULL, NULL},
                       {NULL, NULL, X86(bd_gemv_f32_avx512)}},
        [BD_PK_Q2] = {"q2",
                      BD_QK,
                      8,
                      2,
                      false,
                      K(BD_Q_INT) | K(BD_Q_SYM),
                      2,
                      2,
                      NULL,
                      bd_quantize_row_q2_ref,
                      bd_dequantize_row_q2,
                      bd_validate_row_q2,
                      {bd_vec_dot_q2_f32_scalar, X86(bd_vec_dot_q2_f32_avx2), X86(bd_vec_dot_q2_f32_avx512)},
                      {bd_vec_dot_q2_i8_scalar, X86(bd_vec_dot_q2_i8_avx2), X86(bd_vec_dot_q2_i8_avx512)},
                      {NULL, X86(bd_gemm_q2_i8_avx2), X86(bd_gemm_q2_i8_avx512)},
                      {NULL, NULL, NULL},
                      {NULL, NULL, NULL}},
        [BD_PK_Q3] = {"q3",
                      BD_QK,
                      8,
                      3,
                      false,
                      K(BD_Q_INT) | K(BD_Q_SYM),
                      3,
                      3,
                      NULL,
                      bd_quantize_row_q3_ref,
                      bd_dequantize_row_q3,
                      bd_validate_row_q3,
                      {bd_vec_dot_q3_f32_scalar, X86(bd_vec_dot_q3_f32_avx2), X86(bd_vec_dot_q3_f32_avx512)},
                      {bd_vec_dot_q3_i8_scalar, X86(bd_vec_dot_q3_i8_avx2), X86(bd_vec_dot_q3_i8_avx512)},
                      {NULL, X86(bd_gemm_q3_i8_avx2), X86(bd_gemm_q3_i8_avx512)},
                      {NULL, NULL, NULL},
                      {NULL, NULL, NULL}},
        [BD_PK_Q8] = {"q8",
                      BD_QK,
                      8,
                      8,
                      false,
                      K(BD_Q_INT) | K(BD_Q_SYM),
                      INT_MIN,
                      8,
                      NULL,  // after q2, q3: the rest
                      bd_quantize_row_q8_ref,
                      bd_dequantize_row_q8,
                      bd_validate_row_q8,
                      {bd_vec_dot_q8_f32_scalar, X86(bd_vec_dot_q8_f32_avx2), X86(bd_vec_dot_q8_f32_avx512)},
                      {bd_vec_dot_q8_i8_scalar, X86(bd_vec_dot_q8_i8_avx2), X86(bd_vec_dot_q8_i8_avx512)},
                      {NULL, NULL, X86(bd_gemm_q8_i8_avx512)},
                      {NULL, NULL, NULL},
                      {NULL, NULL, NULL}},
        [BD_PK_NF3] = {"nf3",
                       BD_QK,
                       8,
                       3,
                       false,
                       K(BD_Q_NF3),
                       ANY,
                       NULL,
                       bd_quantize_row_nf3_ref,
                       bd_dequantize_row_nf3,
                       bd_validate_row_nf3,
                       {bd_vec_dot_nf3_f32_scalar, X86(bd_vec_dot_nf3_f32_avx2), X86(bd_vec_dot_nf3_f32_avx512)},
                       {bd_vec_dot_nf3_i8_scalar, NULL, NULL},
                       {NULL, NULL, NULL},
                       {NULL, NULL, NULL},
                       {NULL, NULL, NULL}},
        [BD_PK_R2Q] = {"r2q",
                       BD_QK,
                       16,
                       2,
                       false,
                       K(BD_Q_R2Q),
                       ANY,
                       NULL,
                       bd_quantize_row_r2q_ref,
                       bd_dequantize_row_r2q,
                       bd_validate_row_r2q,
                       {bd_vec_dot_r2q_f32_scalar, X86(bd_vec_dot_r2q_f32_avx2), X86(bd_vec_dot_r2q_f32_avx512)},
                       {bd_vec_dot_r2q_i8_scalar, NULL, NULL},
                       {NULL, NULL, NULL},
                       {NULL, NULL, NULL},
                       {NULL, NULL, NULL}},
        [BD_PK_TQ2] = {"tq2",
                       BD_QK,
                       0,
                       2,
                       true,
                       K(BD_Q_TERNARY),
                       ANY,
                       bd_pk_tq2_scale,
                       bd_quantize_row_tq2_ref,
                       bd_dequantize_row_tq2,
                       bd_validate_row_tq2,
                       {bd_vec_dot_tq2_f32_scalar, X86(bd_vec_dot_tq2_f32_avx2), X86(bd_vec_dot_tq2_f32_avx512)},
                       {bd_vec_dot_tq2_i8_scalar, X86(bd_vec_dot_tq2_i8_avx2), X86(bd_vec_dot_tq2_i8_avx512)},
                       {NULL, X86(bd_gemm_tq2_i8_avx2), X86(bd_gemm_tq2_i8_avx512)},
                       {NULL, NULL, X86(bd_gemv_tq2_i8_avx512)},
                       {NULL, NULL, NULL}},
        [BD_PK_Q6] = {"q6",
                      BD_QK,
                      8,
                      6,
                      false,
                      K(BD_Q_INT) | K(BD_Q_SYM),
                      6,
                      6,
                      NULL,  // after q8, which holds 6-bit specs: reached through bd_pk_pack_as only
                      bd_quantize_row_q6_ref,
                      bd_dequantize_row_q6,
                      bd_validate_row_q6,
                      {bd_vec_dot_q6_f32_scalar, X86(bd_vec_dot_q6_f32_avx2), X86(bd_vec_dot_q6_f32_avx512)},
                      {bd_vec_dot_q6_i8_scalar, X86(bd_vec_dot_q6_i8_avx2), X86(bd_vec_dot_q6_i8_avx512)},
                      {NULL, X86(bd_gemm_q6_i8_avx2), X86(bd_gemm_q6_i8_avx512)},
                      {NULL, NULL, NULL},
                      {NULL, NULL, NULL}},
        // llama.cpp's K-quants (bd_pk_kquant.c): head = the block's scales and f16 factors
        [BD_PK_Q2_K] = {"q2_K",
                        BD_QK_K,
                        20,
                        2,
                        false,
                        K(BD_Q_Q2_K),
                        ANY,
                        NULL,
                        bd_quantize_row_kquant_ref,
                        bd_dequantize_row_kquant,
                        bd_validate_row_kquant,
                        {bd_vec_dot_kquant_f32_scalar, X86(bd_vec_dot_kquant_f32_avx2),
                         X86(bd_vec_dot_kquant_f32_avx512)},
                        {bd_vec_dot_kquant_i8_scalar, NULL, X86(bd_vec_dot_kquant_i8_avx512)},
                        {NULL, NULL, NULL},
                        {NULL, NULL, X86(bd_gemv_kquant_i8_avx512)},
                        {NULL, NULL, NULL}},
        [BD_PK_Q3_K] = {"q3_K",
                        BD_QK_K,
                        14,
                        3,
                        false,
                        K(BD_Q_Q3_K),
                        ANY,
                        NULL,
                        bd_quantize_row_kquant_ref,
                        bd_dequantize_row_kquant,
                        bd_validate_row_kquant,
                        {bd_vec_dot_kquant_f32_scalar, X86(bd_vec_dot_kquant_f32_avx2),
                         X86(bd_vec_dot_kquant_f32_avx512)},
                        {bd_vec_dot_kquant_i8_scalar, NULL, X86(bd_vec_dot_kquant_i8_avx512)},
                        {NULL, NULL, NULL},
                        {NULL, NULL, NULL},
                        {NULL, NULL, NULL}},
        [BD_PK_Q4_K] = {"q4_K",
                        BD_QK_K,
                        16,
                        4,
                        false,
                        K(BD_Q_Q4_K),
                        ANY,
                        NULL,
                        bd_quantize_row_kquant_ref,
                        bd_dequantize_row_kquant,
                        bd_validate_row_kquant,
                        {bd_vec_dot_kquant_f32_scalar, X86(bd_vec_dot_kquant_f32_avx2),
                         X86(bd_vec_dot_kquant_f32_avx512)},
                        {bd_vec_dot_kquant_i8_scalar, NULL, X86(bd_vec_dot_kquant_i8_avx512)},
                        {NULL, NULL, NULL},
                        {NULL, NULL, X86(bd_gemv_kquant_i8_avx512)},
                        {NULL, NULL, NULL}},
        // A frozen model's 16-bit weights (bd_pk_half.c): no quantizer, one block per row
        [BD_PK_BF16] = {"bf16",
                        1,
                        0,
                        16,
                        true,
                        0,
                        ANY,
                        NULL,
                        bd_quantize_row_bf16_ref,
                        bd_dequantize_row_bf16,
                        bd_validate_row_bf16,
                        {bd_vec_dot_bf16_f32_scalar, X86(bd_vec_dot_bf16_f32_avx2), X86(bd_vec_dot_bf16_f32_avx512)},
                        {bd_vec_dot_bf16_i8_scalar, NULL, NULL},
                        {NULL, NULL, NULL},
                        {NULL, NULL, NULL},
                        {NULL, NULL, NULL}},
        [BD_PK_F16] = {"f16",
                       1,
                       0,
                       16,
                       true,
                       0,
                       ANY,
                       NULL,
                       bd_quantize_row_f16_ref,
                       bd_dequantize_row_f16,
                       bd_validate_row_f16,
                       {bd_vec_dot_f16_f32_scalar, NULL, X86(bd_vec_dot_f16_f32_avx512)},
                       {bd_vec_dot_f16_i8_scalar, NULL, NULL},
                       {NULL, NULL, NULL},
                       {NULL, NULL, NULL},
                       {NULL, NULL, NULL}},
};

int bd_pk_type_parse(const char *name) {
    for (int i = 0; i < BD_PK_COUNT; i++)
        if (strcmp(name, bd_pk_traits_table[i].name) == 0) return i;
    return -1;
}

static bool holds(const bd_pk_traits *tr, const bd_qspec *q) {
    return tr->qkinds & K(q->kind) && q->bits >= tr->qbits_min && q->bits <= tr->qbits_max;
}

int bd_pk_type_for(const bd_qspec *q) {
    if ((unsigned)q->kind >= BD_Q_COUNT) return -1;
    for (int i = 0; i < BD_PK_COUNT; i++)
        if (holds(&bd_pk_traits_table[i], q)) return i;
    return -1;
}

int bd_pk_head_format_parse(const char *name) {
    int t = bd_pk_type_parse(name);
    return t == BD_PK_F32 || t == BD_PK_Q8 || t == BD_PK_Q6 ? t : -1;
}

bd_qspec bd_pk_head_spec(bd_pk_type type) {
    if (type == BD_PK_Q8) return (bd_qspec){BD_Q_INT, 8, BD_PK_HEAD_GROUP};
    if (type == BD_PK_Q6) return (bd_qspec){BD_Q_INT, 6, BD_PK_HEAD_GROUP};
    return (bd_qspec){BD_Q_NONE, 0, 0};
}

int bd_pk_geometry(bd_pk_tensor *t, bd_pk_type type, int rows, int cols, int group) {
    memset(t, 0, sizeof *t);
    if ((unsigned)type >= BD_PK_COUNT || rows <= 0 || cols <= 0) return BD_ERR_ARG;
    const bd_pk_traits *tr = &bd_pk_traits_table[type];
    if (tr->row_group || group <= 0 || group >= cols) group = cols;
    t->type = type;
    t->rows = rows;
    t->cols = cols;
    t->group = group;
    t->gpad = (group + tr->qk - 1) / tr->qk * tr->qk;
    t->ngroups = (cols + group - 1) / group;
    t->block_bytes = (size_t)tr->head_bytes + (size_t)t->gpad * (size_t)tr->code_bits / 8;
    t->row_bytes = (size_t)t->ngroups * t->block_bytes;
    return BD_OK;
}

int bd_pk_alloc(bd_pk_tensor *t) {
    size_t n = t->row_bytes * (size_t)t->rows;
    n = (n + 64 + 63) / 64 * 64;  // 64 spare bytes: SIMD loads may read a little past the last block
    t->data = bd_huge_alloc(n);  // zeroed; read whole on every token: 2 MB pages (bd_hugemem.h)
    return t->data ? BD_OK : BD_ERR_NOMEM;
}

void bd_pk_free(bd_pk_tensor *t) {
    if (!t->borrowed) bd_huge_free(t->data);
    t->data = NULL;
}

void bd_pk_dequantize_row(const bd_pk_tensor *t, int r, float *out) {
    bd_pk_traits_table[t->type].dequantize_row(t->data + (size_t)r * t->row_bytes, out, t);
}

int bd_pk_pack(bd_pk_tensor *t, const float *w, int OC, int C, const bd_qspec *q, char *why, size_t ws) {
    memset(t, 0, sizeof *t);
    int type = bd_pk_type_for(q);
    if (type < 0)
        return bd_fail(why, ws, BD_ERR_ARG, "no packed format for %s %d-bit", bd_qkind_name(q->kind), q->bits);
    return bd_pk_pack_as(t, (bd_pk_type)type, w, OC, C, q, why, ws);
}

int bd_pk_pack_as(bd_pk_tensor *t, bd_pk_type type, const float *w, int OC, int C, const bd_qspec *q, char *why,
                  size_t ws) {
    memset(t, 0, sizeof *t);
    int rc;
    char reason[160];
    if ((unsigned)type >= BD_PK_COUNT || (unsigned)q->kind >= BD_Q_COUNT || !holds(&bd_pk_traits_table[type], q))
        return bd_fail(why, ws, BD_ERR_ARG, "format %s does not hold %s %d-bit",
                       (unsigned)type < BD_PK_COUNT ? bd_pk_traits_table[type].name : "?",
                       (unsigned)q->kind < BD_Q_COUNT ? bd_qkind_name(q->kind) : "?", q->bits);
    if (bd_qspec_check(q, C, reason, sizeof reason) < 0) return bd_fail(why, ws, BD_ERR_ARG, "%s", reason);
    size_t n = (size_t)OC * (size_t)C;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i]))
            return bd_fail(why, ws, BD_ERR_VALUE, "weight [%zu, %zu] = %g is not finite", i / (size_t)C, i % (size_t)C,
                           w[i]);
    if ((rc = bd_pk_geometry(t, (bd_pk_type)type, OC, C, bd_qspec_group(q, C))) < 0)
        return bd_fail(why, ws, rc, "a matrix of %d rows", OC);
    if ((rc = bd_pk_alloc(t)) < 0)
        return bd_fail(why, ws, rc, "no memory for %zu bytes of packed weights", t->row_bytes * (size_t)OC);
    const bd_pk_traits *tr = &bd_pk_traits_table[type];
    if (tr->tensor_scale) t->scale = tr->tensor_scale(w, n);
    for (int r = 0; r < OC; r++) tr->quantize_row_ref(w + (size_t)r * C, t->data + (size_t)r * t->row_bytes, t, q);
    return BD_OK;
}

int bd_pk_bad(char *why, size_t ws, int r, int g, const char *fmt, double v) {
    if (why && ws) {
        char msg[128];
        snprintf(msg, sizeof msg, fmt, v);
        snprintf(why, ws, "row %d group %d: %s", r, g, msg);
    }
    return BD_ERR_VALUE;
}

int bd_pk_affine_check(float s, int z, int zbits, int r, int g, char *why, size_t ws) {
    if (!(isfinite(s) && s > 0)) return bd_pk_bad(why, ws, r, g, "scale %g is not a finite positive number", s);
    if (z >= 1 << zbits) return bd_pk_bad(why, ws, r, g, "zero point %g is out of range", z);
    return BD_OK;
}

int bd_pk_validate(const bd_pk_tensor *t, char *why, size_t ws) {
    bd_pk_validate_fn *check = bd_pk_traits_table[t->type].validate_row;
    for (int r = 0; r < t->rows; r++) {
        int rc = check(t, t->data + (size_t)r * t->row_bytes, r, why, ws);
        if (rc < 0) return rc;
    }
    return BD_OK;
}
