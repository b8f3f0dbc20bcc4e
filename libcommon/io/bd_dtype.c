#include "bd_dtype.h"

#include <math.h>
#include <string.h>

static const char *dtype_names[BD_DTYPE_COUNT] = {"f32", "bf16", "f16", "i8", "u8", "i32", "u32"};
static const size_t dtype_sizes[BD_DTYPE_COUNT] = {4, 2, 2, 1, 1, 4, 4};

const char *bd_dtype_name(bd_dtype t) { return (unsigned)t < BD_DTYPE_COUNT ? dtype_names[t] : NULL; }

int bd_dtype_parse(const char *name, size_t n) {
    for (int i = 0; i < BD_DTYPE_COUNT; i++)
        if (strlen(dtype_names[i]) == n && memcmp(dtype_names[i], name, n) == 0) return i;
    return -1;
}

size_t bd_dtype_size(bd_dtype t) { return (unsigned)t < BD_DTYPE_COUNT ? dtype_sizes[t] : 0; }

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t bd_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x40);  // keep it a (quiet) NaN
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float bd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {  // zero or subnormal: man * 2^-24
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp - 15 + 127) << 23) | (man << 13));
}

uint16_t bd_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    float a = fabsf(f);
    if (isnan(f)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;  // rounds to inf
    if (a < 6.103515625e-05f) {               // subnormal range: units of 2^-24, nearest even
        float q = a * 16777216.0f;
        return sign | (uint16_t)lrintf(q);
    }
    uint32_t au = u & 0x7fffffffu;
    uint32_t exp = (au >> 23) - 127 + 15, man = au & 0x7fffff;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;  // carry may bump the exponent: correct
    return sign | (uint16_t)h;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// One loop per type (a switch per element kept the bf16 loop, which converts a model's
// embedding and head on every load, from vectorizing).
void bd_convert_to_f32(float *dst, const void *src, bd_dtype t, size_t n) {
    const uint8_t *p = src;
    switch (t) {
    case BD_F32:
        for (size_t i = 0; i < n; i++) dst[i] = bits_f32(le32(p + 4 * i));
        break;
    case BD_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = bd_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case BD_F16:
        for (size_t i = 0; i < n; i++) dst[i] = bd_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case BD_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)p[i];
        break;
    case BD_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)p[i];
        break;
    case BD_I32:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int32_t)le32(p + 4 * i);
        break;
    case BD_U32:
        for (size_t i = 0; i < n; i++) dst[i] = (float)le32(p + 4 * i);
        break;
    default:
        for (size_t i = 0; i < n; i++) dst[i] = NAN;
    }
}
