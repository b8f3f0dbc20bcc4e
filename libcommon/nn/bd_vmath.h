// Internal: 4-wide float vectors (GCC/Clang vector extensions, plain SSE2 on x86-64) and a
// fast exp for the non-BLAS kernels. Not part of the public API.
// exp: Cephes-style range reduction x = n*ln2 + r and a degree-6 polynomial for e^r,
// relative error about 2e-7 over the whole float range; inputs below -87.33 give 0.
#ifndef BD_VMATH_H
#define BD_VMATH_H

#include <stdint.h>
#include <string.h>

typedef float bd_v4f __attribute__((vector_size(16)));
typedef int32_t bd_v4i __attribute__((vector_size(16)));

static inline bd_v4f bd_v4_load(const float *p) {
    bd_v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void bd_v4_store(float *p, bd_v4f v) { memcpy(p, &v, sizeof v); }
static inline bd_v4f bd_v4_set1(float x) { return (bd_v4f){x, x, x, x}; }
// Lane-wise select: m is all-ones where a is wanted.
static inline bd_v4f bd_v4_sel(bd_v4i m, bd_v4f a, bd_v4f b) { return (bd_v4f)(((bd_v4i)a & m) | ((bd_v4i)b & ~m)); }
static inline bd_v4f bd_v4_max(bd_v4f a, bd_v4f b) { return bd_v4_sel(a > b, a, b); }
static inline float bd_v4_hsum(bd_v4f v) { return (v[0] + v[1]) + (v[2] + v[3]); }
static inline float bd_v4_hmax(bd_v4f v) {
    float a = v[0] > v[1] ? v[0] : v[1], b = v[2] > v[3] ? v[2] : v[3];
    return a > b ? a : b;
}

static inline bd_v4f bd_v4_exp(bd_v4f x) {
    const bd_v4f lo = bd_v4_set1(-87.33f), hi = bd_v4_set1(88.0f);
    bd_v4i valid = x > lo;
    x = bd_v4_sel(x < hi, x, hi);
    x = bd_v4_sel(valid, x, lo);
    // n = round(x / ln2) through the 1.5*2^23 trick; its integer value sits in the low bits.
    const bd_v4f magic = bd_v4_set1(12582912.0f);
    bd_v4f t = x * 1.44269504088896341f + magic;
    bd_v4i ni = (bd_v4i)t - 0x4B400000;
    bd_v4f n = t - magic;
    bd_v4f r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    bd_v4f p = bd_v4_set1(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    bd_v4f y = p * (r * r) + r + 1.0f;
    bd_v4f scale = (bd_v4f)((ni + 127) << 23);
    y = y * scale;
    return (bd_v4f)((bd_v4i)y & valid);
}

// The same function for one value (tails of vector loops), so results do not depend on
// where an element falls.
static inline float bd_expf_fast(float x) { return bd_v4_exp(bd_v4_set1(x))[0]; }

#endif
