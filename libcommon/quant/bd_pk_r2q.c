// r2q: the 2-bit lattice {m +- a1 +- a2} of a group. Block (bd_block_r2q): its 4 f32 values,
// then 2-bit codes; w = lv[q]. int8 activations: the scalar dot over the code values; the
// SIMD paths have no integer kernel.
#include "bd_pk_simd.h"

void bd_quantize_row_r2q_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    (void)q;
    for (int g = 0; g < t->ngroups; g++) {
        bd_block_r2q *b = bd_pk_block(dst, t, g);
        const float *x = w + (size_t)g * t->group;
        int n = bd_pk_group_len(t, g);
        bd_qgroup qg = bd_qgroup_r2q(x, n);
        memset(b, 0, t->block_bytes);
        memcpy(b->lv, qg.lv, sizeof b->lv);
        for (int i = 0; i < n; i++) bd_put2(b->qs, i, bd_qlevel_r2q(&qg, x[i]));
    }
}

void bd_dequantize_row_r2q(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_r2q *b = bd_pk_cblock(src, t, g);
        float *o = out + (size_t)g * t->group;
        for (int i = 0, n = bd_pk_group_len(t, g); i < n; i++) o[i] = b->lv[bd_get2(b->qs, i)];
    }
}

int bd_validate_row_r2q(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_r2q *b = bd_pk_cblock(row, t, g);
        for (int k = 0; k < 4; k++)
            if (!isfinite(b->lv[k])) return bd_pk_bad(why, ws, r, g, "level %g is not finite", b->lv[k]);
    }
    return BD_OK;
}

float bd_vec_dot_r2q_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_r2q *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        for (int i = 0; i < t->gpad; i++) acc += b->lv[bd_get2(b->qs, i)] * x[i];
    }
    return acc;
}

float bd_vec_dot_r2q_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                               float xs) {
    (void)xsum;
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_r2q *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        for (int i = 0; i < t->gpad; i++) acc += b->lv[bd_get2(b->qs, i)] * (float)x[i];
    }
    return acc * xs;
}

#ifdef BD_X86
T_AVX2 float bd_vec_dot_r2q_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_r2q *b = bd_pk_cblock(row, t, g);
        bd_dot2_f32_avx2(_mm256_broadcast_ps((const __m128 *)(const void *)b->lv), b->qs, xp + (size_t)g * t->gpad,
                         t->gpad, &a0, &a1);
    }
    return bd_hsum256(_mm256_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_r2q_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_r2q *b = bd_pk_cblock(row, t, g);
        bd_dot2_f32_avx512(_mm512_broadcast_f32x4(_mm_loadu_ps(b->lv)), b->qs, xp + (size_t)g * t->gpad, t->gpad, &a0,
                           &a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}
#endif
