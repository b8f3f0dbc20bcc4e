// nf3: BitDistiller's NF3 grid. Block (bd_block_nf3): f32 sp, sn (scales of the positive and
// negative halves), then 3-bit codes as q3; w = grid[q] * (q >= 3 ? sp : sn). int8
// activations: the scalar dot over the code values; the SIMD paths have no integer kernel.
#include "bd_pk_simd.h"

void bd_quantize_row_nf3_ref(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q) {
    for (int g = 0; g < t->ngroups; g++) {
        bd_block_nf3 *b = bd_pk_block(dst, t, g);
        const float *x = w + (size_t)g * t->group;
        int n = bd_pk_group_len(t, g);
        bd_qgroup qg = bd_qgroup_nf3(x, n);
        memset(b, 0, t->block_bytes);
        b->sp = qg.sp;
        b->sn = qg.sn;
        for (int i = 0; i < n; i++) bd_put3(b->qs, t->gpad, i, bd_qlevel_nf3(&qg, x[i]));
    }
}

void bd_dequantize_row_nf3(const uint8_t *src, float *out, const bd_pk_tensor *t) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_nf3 *b = bd_pk_cblock(src, t, g);
        float *o = out + (size_t)g * t->group;
        for (int i = 0, n = bd_pk_group_len(t, g); i < n; i++)
            o[i] = bd_qvalue_nf3(bd_get3(b->qs, t->gpad, i), b->sp, b->sn);
    }
}

int bd_validate_row_nf3(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t ws) {
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_nf3 *b = bd_pk_cblock(row, t, g);
        bool sp_ok = isfinite(b->sp) && b->sp > 0;
        if (!sp_ok || !(isfinite(b->sn) && b->sn > 0))
            return bd_pk_bad(why, ws, r, g, "scale %g is not a finite positive number", sp_ok ? b->sn : b->sp);
    }
    return BD_OK;
}

static void nf3_lut(float lut[8], const bd_block_nf3 *b) {
    for (int c = 0; c < 8; c++) lut[c] = bd_qvalue_nf3(c, b->sp, b->sn);
}

float bd_vec_dot_nf3_f32_scalar(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_nf3 *b = bd_pk_cblock(row, t, g);
        const float *x = xp + (size_t)g * t->gpad;
        float lut[8];
        nf3_lut(lut, b);
        for (int i = 0; i < t->gpad; i++) acc += lut[bd_get3(b->qs, t->gpad, i)] * x[i];
    }
    return acc;
}

float bd_vec_dot_nf3_i8_scalar(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                               float xs) {
    (void)xsum;
    float acc = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_nf3 *b = bd_pk_cblock(row, t, g);
        const int8_t *x = xq + (size_t)g * t->gpad;
        float lut[8];
        nf3_lut(lut, b);
        for (int i = 0; i < t->gpad; i++) acc += lut[bd_get3(b->qs, t->gpad, i)] * (float)x[i];
    }
    return acc * xs;
}

#ifdef BD_X86
T_AVX2 float bd_vec_dot_nf3_f32_avx2(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    const __m256 grid = _mm256_loadu_ps(bd_nf3_grid);
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_nf3 *b = bd_pk_cblock(row, t, g);
        __m256 L = _mm256_mul_ps(grid, _mm256_blend_ps(_mm256_set1_ps(b->sn), _mm256_set1_ps(b->sp), 0xf8));
        bd_dot3_f32_avx2(L, b->qs, xp + (size_t)g * t->gpad, t->gpad, &a0, &a1);
    }
    return bd_hsum256(_mm256_add_ps(a0, a1));
}

T_AVX512 float bd_vec_dot_nf3_f32_avx512(const bd_pk_tensor *t, const uint8_t *row, const float *xp) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    const float *G = bd_nf3_grid;
    const __m512 grid = _mm512_setr_ps(G[0], G[1], G[2], G[3], G[4], G[5], G[6], G[7], G[0], G[1], G[2], G[3], G[4],
                                       G[5], G[6], G[7]);
    for (int g = 0; g < t->ngroups; g++) {
        const bd_block_nf3 *b = bd_pk_cblock(row, t, g);
        __m512 L = _mm512_mul_ps(grid,
                                 _mm512_mask_blend_ps((__mmask16)0xf8f8, _mm512_set1_ps(b->sn), _mm512_set1_ps(b->sp)));
        bd_dot3_f32_avx512(L, b->qs, xp + (size_t)g * t->gpad, t->gpad, &a0, &a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}
#endif
