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

// The exp of every lane of x (VF: a float vector type, VI: its int32 twin), one body for every
// width, so a lane's result does not depend on the width that computed it.
#define BD_VEXP_BODY(VF, VI)                                                                     \
    const VF zero = {0}, lo = zero + -87.33f, hi = zero + 88.0f;                                 \
    VI valid = x > lo, below = x < hi;                                                           \
    x = (VF)(((VI)x & below) | ((VI)hi & ~below));                                               \
    x = (VF)(((VI)x & valid) | ((VI)lo & ~valid));                                               \
    /* n = round(x / ln2) through the 1.5*2^23 trick; its integer value sits in the low bits. */ \
    const VF magic = zero + 12582912.0f;                                                         \
    VF t = x * 1.44269504088896341f + magic;                                                     \
    VI ni = (VI)t - 0x4B400000;                                                                  \
    VF n = t - magic;                                                                            \
    VF r = x - n * 0.693359375f;                                                                 \
    r = r - n * -2.12194440e-4f;                                                                 \
    VF p = zero + 1.9875691500e-4f;                                                              \
    p = p * r + 1.3981999507e-3f;                                                                \
    p = p * r + 8.3334519073e-3f;                                                                \
    p = p * r + 4.1665795894e-2f;                                                                \
    p = p * r + 1.6666665459e-1f;                                                                \
    p = p * r + 5.0000001201e-1f;                                                                \
    VF y = p * (r * r) + r + 1.0f;                                                               \
    VF scale = (VF)((ni + 127) << 23);                                                           \
    y = y * scale;                                                                               \
    return (VF)((VI)y & valid);

static inline bd_v4f bd_v4_exp(bd_v4f x) { BD_VEXP_BODY(bd_v4f, bd_v4i) }

// 16 lanes for AVX-512 kernels (callers check the CPU: bd_pk_simd() == BD_SIMD_AVX512).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BD_VMATH_V16 1
#define BD_T_V16 __attribute__((target("avx2,fma,avx512f")))
typedef float bd_v16f __attribute__((vector_size(64)));
typedef int32_t bd_v16i __attribute__((vector_size(64)));
BD_T_V16 static inline bd_v16f bd_v16_load(const float *p) {
    bd_v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}
BD_T_V16 static inline void bd_v16_store(float *p, bd_v16f v) { memcpy(p, &v, sizeof v); }
BD_T_V16 static inline bd_v16f bd_v16_exp(bd_v16f x) { BD_VEXP_BODY(bd_v16f, bd_v16i) }
#endif

// The same function for one value (tails of vector loops), so results do not depend on
// where an element falls.
static inline float bd_expf_fast(float x) { return bd_v4_exp(bd_v4_set1(x))[0]; }

#endif
