// llama.cpp's K-quant blocks (q2_K, q3_K, q4_K): bd's quantizer and ggml's dequantization
// arithmetic. See bd_kquant.h for the layouts and the rule that picks the scales.
#include "bd_kquant.h"

#include <math.h>
#include <string.h>

#include "bd_dtype.h"

static float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

// The nearest integer step of v in units of unit, within [0, top]; 0 when unit is 0.
static int nearest_step(float v, float unit, int top) {
    return unit > 0 ? (int)clampf(rintf(v / unit), 0, (float)top) : 0;
}

// Asymmetric sub-blocks (q2_K, q4_K): for each of nsub sub-blocks of len weights, the scale
// s = (max - min)/qmax and the min m = -min of its range with min clamped to <= 0.
static void affine_subblocks(const float *x, int nsub, int len, int qmax, float *s, float *m, float *smax,
                             float *mmax) {
    *smax = 0;
    *mmax = 0;
    for (int j = 0; j < nsub; j++) {
        const float *v = x + j * len;
        float lo = 0, hi = v[0];
        for (int l = 0; l < len; l++) {
            lo = fminf(lo, v[l]);
            hi = fmaxf(hi, v[l]);
        }
        s[j] = (hi - lo) / (float)qmax;
        m[j] = -lo;
        *smax = fmaxf(*smax, s[j]);
        *mmax = fmaxf(*mmax, m[j]);
    }
}

// The code of w under value = dl*q - ml, q in [0, qmax]; 0 when the scale is 0.
static int affine_code(float w, float dl, float ml, int qmax) {
    return dl > 0 ? (int)clampf(rintf((w + ml) / dl), 0, (float)qmax) : 0;
}

// Code layouts (bd_kquant.h). 2-bit planes (q2_K, q3_K's low bits): weight i = 128h + 32s + l at
// bits 2s of byte 32h + l. Nibbles (q4_K): weight i = 64h + 32s + l in nibble s of byte 32h + l.
static void put2(uint8_t *qs, int i, int q) { qs[32 * (i / 128) + i % 32] |= (uint8_t)(q << (2 * (i % 128 / 32))); }
static int get2(const uint8_t *qs, int i) { return qs[32 * (i / 128) + i % 32] >> (2 * (i % 128 / 32)) & 3; }
static void put4(uint8_t *qs, int i, int q) { qs[32 * (i / 64) + i % 32] |= (uint8_t)(q << (4 * (i % 64 / 32))); }
static int get4(const uint8_t *qs, int i) { return qs[32 * (i / 64) + i % 32] >> (4 * (i % 64 / 32)) & 15; }

// dl*q - ml as ggml computes it: two roundings, never one fused multiply-add (separate
// statements keep a compiler from contracting them).
static float affine_value(float dl, int q, float ml) {
    float a = dl * (float)q;
    return a - ml;
}

// ---- q2_K ---------------------------------------------------------------------------------------

void bd_quantize_block_q2_K(const float *x, bd_block_q2_K *b) {
    float s[16], m[16], smax, mmax;
    affine_subblocks(x, 16, 16, 3, s, m, &smax, &mmax);
    memset(b, 0, sizeof *b);
    b->d = bd_f32_to_f16(smax / 15);
    b->dmin = bd_f32_to_f16(mmax / 15);
    float d = bd_f16_to_f32(b->d), dmin = bd_f16_to_f32(b->dmin);
    for (int j = 0; j < 16; j++) {
        int sc = nearest_step(s[j], d, 15), mq = nearest_step(m[j], dmin, 15);
        b->scales[j] = (uint8_t)(sc | mq << 4);
        float dl = d * (float)sc, ml = dmin * (float)mq;
        for (int l = 0; l < 16; l++) {
            int i = 16 * j + l;
            put2(b->qs, i, affine_code(x[i], dl, ml, 3));
        }
    }
}

void bd_dequantize_block_q2_K(const bd_block_q2_K *b, float *y) {
    float d = bd_f16_to_f32(b->d), dmin = bd_f16_to_f32(b->dmin);
    for (int j = 0; j < 16; j++) {
        float dl = d * (float)(b->scales[j] & 15), ml = dmin * (float)(b->scales[j] >> 4);
        for (int l = 0; l < 16; l++) {
            int i = 16 * j + l;
            y[i] = affine_value(dl, get2(b->qs, i), ml);
        }
    }
}

// ---- q3_K ---------------------------------------------------------------------------------------

int bd_q3_K_scale(const uint8_t scales[12], int j) {
    int low = j < 8 ? scales[j] & 15 : scales[j - 8] >> 4;
    return low | (scales[8 + j % 4] >> (2 * (j / 4)) & 3) << 4;
}

void bd_quantize_block_q3_K(const float *x, bd_block_q3_K *b) {
    float s[16], smax = 0;  // s: signed, the sub-block's largest-magnitude weight maps to level -4
    for (int j = 0; j < 16; j++) {
        float big = 0;
        for (int l = 0; l < 16; l++)
            if (fabsf(x[16 * j + l]) > fabsf(big)) big = x[16 * j + l];
        s[j] = big / -4.0f;
        if (fabsf(s[j]) > fabsf(smax)) smax = s[j];
    }
    memset(b, 0, sizeof *b);
    if (smax != 0) {
        float iscale = -32.0f / smax;
        for (int j = 0; j < 16; j++) {
            int stored = (int)clampf(rintf(iscale * s[j]), -32, 31) + 32;
            if (j < 8)
                b->scales[j] |= (uint8_t)(stored & 15);
            else
                b->scales[j - 8] |= (uint8_t)((stored & 15) << 4);
            b->scales[8 + j % 4] |= (uint8_t)((stored >> 4) << (2 * (j / 4)));
        }
        b->d = bd_f32_to_f16(1 / iscale);
    }
    float d = bd_f16_to_f32(b->d);
    for (int j = 0; j < 16; j++) {
        float dl = d * (float)(bd_q3_K_scale(b->scales, j) - 32);
        for (int l = 0; l < 16; l++) {
            int i = 16 * j + l;
            int q = dl != 0 ? (int)clampf(rintf(x[i] / dl), -4, 3) + 4 : 4;
            put2(b->qs, i, q & 3);
            b->hmask[i % 32] |= (uint8_t)((q >> 2) << (i / 32));
        }
    }
}

void bd_dequantize_block_q3_K(const bd_block_q3_K *b, float *y) {
    float d = bd_f16_to_f32(b->d);
    for (int j = 0; j < 16; j++) {
        float dl = d * (float)(bd_q3_K_scale(b->scales, j) - 32);
        for (int l = 0; l < 16; l++) {
            int i = 16 * j + l;
            int q = get2(b->qs, i) | (b->hmask[i % 32] >> (i / 32) & 1) << 2;
            y[i] = dl * (float)(q - 4);
        }
    }
}

// ---- q4_K ---------------------------------------------------------------------------------------

void bd_q4_K_scale_min(const uint8_t scales[12], int j, int *sc, int *m) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4;
        *m = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4;
    }
}

void bd_quantize_block_q4_K(const float *x, bd_block_q4_K *b) {
    float s[8], m[8], smax, mmax;
    affine_subblocks(x, 8, 32, 15, s, m, &smax, &mmax);
    memset(b, 0, sizeof *b);
    b->d = bd_f32_to_f16(smax / 63);
    b->dmin = bd_f32_to_f16(mmax / 63);
    float d = bd_f16_to_f32(b->d), dmin = bd_f16_to_f32(b->dmin);
    for (int j = 0; j < 8; j++) {
        int sc = nearest_step(s[j], d, 63), mq = nearest_step(m[j], dmin, 63);
        if (j < 4) {
            b->scales[j] |= (uint8_t)sc;
            b->scales[j + 4] |= (uint8_t)mq;
        } else {
            b->scales[j + 4] = (uint8_t)((sc & 15) | (mq & 15) << 4);
            b->scales[j - 4] |= (uint8_t)((sc >> 4) << 6);
            b->scales[j] |= (uint8_t)((mq >> 4) << 6);
        }
    }
    for (int j = 0; j < 8; j++) {
        int sc, mq;
        bd_q4_K_scale_min(b->scales, j, &sc, &mq);
        float dl = d * (float)sc, ml = dmin * (float)mq;
        for (int l = 0; l < 32; l++) {
            int i = 32 * j + l;
            put4(b->qs, i, affine_code(x[i], dl, ml, 15));
        }
    }
}

void bd_dequantize_block_q4_K(const bd_block_q4_K *b, float *y) {
    float d = bd_f16_to_f32(b->d), dmin = bd_f16_to_f32(b->dmin);
    for (int j = 0; j < 8; j++) {
        int sc, mq;
        bd_q4_K_scale_min(b->scales, j, &sc, &mq);
        float dl = d * (float)sc, ml = dmin * (float)mq;
        for (int l = 0; l < 32; l++) {
            int i = 32 * j + l;
            y[i] = affine_value(dl, get4(b->qs, i), ml);
        }
    }
}
