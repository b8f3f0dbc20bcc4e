// GGUF input (llama.cpp / ggml model files, versions 2 and 3, little-endian), read through
// mmap. Every weight is dequantized to f32: the loaded model is a plain full-precision bd model
// (a K-quant or ternary file gives its dequantized weights, which is what llama.cpp computes
// with). The vocabulary (tokenizer.ggml.*) is not read: tools take the tokenizer with -k.
//
// File: "GGUF", u32 version, u64 tensor count, u64 metadata count; metadata (string key, u32
// value type, value); tensor infos (string name, u32 n_dims, u64 ne[n_dims] innermost first,
// u32 ggml type, u64 offset into the data section); the data section starts at the next
// multiple of general.alignment (default 32), every offset a multiple of it too.
// Strings: u64 length + bytes. Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32,
// 7 bool, 8 string, 9 array (u32 element type, u64 count, elements), 10 u64, 11 i64, 12 f64.
//
// Architectures ("general.architecture"):
//   llama   token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
//           ffn_gate, ffn_down, ffn_up}, output_norm, output (absent: tied to token_embd).
//           llama.cpp rotates interleaved pairs: bd's BD_ROPE_INTERLEAVED, rows as stored.
//   bitnet  the same plus blk.N.attn_sub_norm {NH*HS} and blk.N.ffn_sub_norm {F}: bd's SubLN of
//           the paper's placement, with the file's one epsilon (subln_eps = norm_eps). NEOX
//           RoPE: BD_ROPE_HALF, rows as stored.
// bd-pack --format gguf permutes q/k rows into these layouts (bd_gguf.h), so a model written
// and read back computes the same logits; its RoPE style may differ from the original's.
// Keys (<a> the architecture): <a>.embedding_length, block_count, feed_forward_length,
// context_length, attention.head_count, attention.layer_norm_rms_epsilon (required);
// attention.head_count_kv (default head_count), attention.key_length (default C/NH; value_length
// and rope.dimension_count must equal it), rope.freq_base (default 10000), vocab_size (must match
// token_embd's rows); tokenizer.ggml.bos_token_id / eos_token_id (else -1).
// Weight types: F32, F16, BF16, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0, IQ2_BN (ggml's
// dequantization arithmetic).
//
// Nothing in the file is trusted: every count and length is bounded by the bytes left,
// shapes must be the ones the keys imply, and each tensor's data must lie inside the file.
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bd_dtype.h"
#include "bd_gguf.h"
#include "bd_kquant.h"
#include "bd_model_io.h"
#include "bd_model_io_impl.h"

enum {
    GV_U8 = 0,
    GV_I8,
    GV_U16,
    GV_I16,
    GV_U32,
    GV_I32,
    GV_F32,
    GV_BOOL,
    GV_STRING,
    GV_ARRAY,
    GV_U64,
    GV_I64,
    GV_F64,
    GV_COUNT
};

static const char *const gv_names[GV_COUNT] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                               "bool", "string", "array", "u64", "i64", "f64"};

// Bytes of a scalar value type (0 for string and array).
static size_t gv_size(uint32_t t) {
    static const uint8_t sz[GV_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < GV_COUNT ? sz[t] : 0;
}

// ggml type ids this reader knows beyond bd_gguf.h's.
enum {
    GGML_BF16 = 30,
    GGML_Q8_0 = 8,
    GGML_Q5_K = 13,
    GGML_Q6_K = 14,
};

static const char *ggml_type_name(uint32_t t) {
    static const char *const names[] = {
            [0] = "f32",     [1] = "f16",    [2] = "q4_0",     [3] = "q4_1",    [6] = "q5_0",     [7] = "q5_1",
            [8] = "q8_0",    [9] = "q8_1",   [10] = "q2_K",    [11] = "q3_K",   [12] = "q4_K",    [13] = "q5_K",
            [14] = "q6_K",   [15] = "q8_K",  [16] = "iq2_xxs", [17] = "iq2_xs", [18] = "iq3_xxs", [19] = "iq1_s",
            [20] = "iq4_nl", [21] = "iq3_s", [22] = "iq2_s",   [23] = "iq4_xs", [24] = "i8",      [25] = "i16",
            [26] = "i32",    [27] = "i64",   [28] = "f64",     [29] = "iq1_m",  [30] = "bf16",    [34] = "tq1_0",
            [35] = "tq2_0",  [39] = "mxfp4"};
    if (t < sizeof names / sizeof *names && names[t]) return names[t];
    if (t == 134) return "iq1_bn (ik_llama.cpp)";
    if (t == 135) return "iq2_bn (ik_llama.cpp)";
    return "unknown";
}

// Weights per block and bytes per block of the types read; 0 for any other type.
static void type_block(uint32_t t, int *qk, int *bytes) {
    *qk = 0, *bytes = 0;
    switch (t) {
    case BD_GGML_TYPE_F32: *qk = 1, *bytes = 4; break;
    case BD_GGML_TYPE_F16:
    case GGML_BF16: *qk = 1, *bytes = 2; break;
    case GGML_Q8_0: *qk = 32, *bytes = 34; break;
    case BD_GGML_TYPE_Q2_K: *qk = BD_QK_K, *bytes = (int)sizeof(bd_block_q2_K); break;
    case BD_GGML_TYPE_Q3_K: *qk = BD_QK_K, *bytes = (int)sizeof(bd_block_q3_K); break;
    case BD_GGML_TYPE_Q4_K: *qk = BD_QK_K, *bytes = (int)sizeof(bd_block_q4_K); break;
    case GGML_Q5_K: *qk = BD_QK_K, *bytes = 176; break;
    case GGML_Q6_K: *qk = BD_QK_K, *bytes = 210; break;
    case BD_GGML_TYPE_TQ1_0: *qk = 256, *bytes = (int)sizeof(bd_block_tq1_0); break;
    case BD_GGML_TYPE_TQ2_0: *qk = BD_QK_TQ2_0, *bytes = (int)sizeof(bd_block_tq2_0); break;
    case BD_GGML_TYPE_IQ2_BN: *qk = BD_QK_IQ2_BN, *bytes = 16; break;  // plus a 4-byte f32 per row
    }
}

static uint64_t row_bytes(uint32_t t, int64_t ne0) {
    int qk, b;
    type_block(t, &qk, &b);
    return (uint64_t)(ne0 / qk) * (uint64_t)b + (t == BD_GGML_TYPE_IQ2_BN ? 4 : 0);
}

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

// q5_K: d, dmin (f16), 12 bytes of 6-bit scales and mins (q4_K's packing), qh[32] (the 5th bits),
// qs[128]. Weights 64j..64j+31 take low nibbles of qs[32j..] and bit 2j of qh; 64j+32.. the high
// nibbles and bit 2j+1; sub-block 2j and 2j+1.
static void dequant_q5_K(const uint8_t *b, float *y) {
    float d = bd_f16_to_f32(ld16(b)), dmin = bd_f16_to_f32(ld16(b + 2));
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    for (int j = 0; j < 4; j++) {
        for (int h = 0; h < 2; h++) {
            int sc, m;
            bd_q4_K_scale_min(scales, 2 * j + h, &sc, &m);
            float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int q = (h ? ql[32 * j + l] >> 4 : ql[32 * j + l] & 15) + (qh[l] >> (2 * j + h) & 1 ? 16 : 0);
                float v = dl * (float)q;  // ggml: one product, then the subtraction
                y[64 * j + 32 * h + l] = v - ml;
            }
        }
    }
}

// q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d. Per half n of 128
// weights, weight 128n + 32s + l (s < 4, l < 32): low nibble of ql[64n + l + 32(s&1)] (s < 2) or
// its high nibble (s >= 2), high bits 2s of qh[32n + l]; value q - 32; scale scales[8n + l/16 + 2s].
static void dequant_q6_K(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = bd_f16_to_f32(ld16(b + 208));
    for (int n = 0; n < 2; n++)
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < 32; l++) {
                uint8_t lo = ql[64 * n + l + 32 * (s & 1)];
                int q = ((s < 2 ? lo & 15 : lo >> 4) | (qh[32 * n + l] >> (2 * s) & 3) << 4) - 32;
                float ds = d * (float)sc[8 * n + l / 16 + 2 * s];
                y[128 * n + 32 * s + l] = ds * (float)q;
            }
}

// One row of ne0 weights of type t at src into y.
static void dequant_row(uint32_t t, const uint8_t *src, float *y, int64_t ne0) {
    switch (t) {
    case BD_GGML_TYPE_F32: memcpy(y, src, (size_t)ne0 * 4); return;  // little-endian host
    case BD_GGML_TYPE_F16:
        for (int64_t i = 0; i < ne0; i++) y[i] = bd_f16_to_f32(ld16(src + 2 * i));
        return;
    case GGML_BF16:
        for (int64_t i = 0; i < ne0; i++) y[i] = bd_bf16_to_f32(ld16(src + 2 * i));
        return;
    case GGML_Q8_0:
        for (int64_t b = 0; b < ne0 / 32; b++) {
            const uint8_t *p = src + 34 * b;
            float d = bd_f16_to_f32(ld16(p));
            for (int j = 0; j < 32; j++) y[32 * b + j] = (float)(int8_t)p[2 + j] * d;
        }
        return;
    case BD_GGML_TYPE_IQ2_BN: bd_dequantize_row_iq2_bn(src, y, (int)ne0); return;
    default: break;
    }
    int qk, bytes;
    type_block(t, &qk, &bytes);
    for (int64_t b = 0; b < ne0 / qk; b++) {
        const uint8_t *p = src + (size_t)b * (size_t)bytes;
        float *o = y + b * qk;
        union {  // the blocks as aligned locals (the file's are plain bytes)
            bd_block_q2_K q2;
            bd_block_q3_K q3;
            bd_block_q4_K q4;
            bd_block_tq2_0 tq;
            bd_block_tq1_0 tq1;
        } u;
        memcpy(&u, p, (size_t)bytes < sizeof u ? (size_t)bytes : sizeof u);
        switch (t) {
        case BD_GGML_TYPE_Q2_K: bd_dequantize_block_q2_K(&u.q2, o); break;
        case BD_GGML_TYPE_Q3_K: bd_dequantize_block_q3_K(&u.q3, o); break;
        case BD_GGML_TYPE_Q4_K: bd_dequantize_block_q4_K(&u.q4, o); break;
        case BD_GGML_TYPE_TQ2_0: bd_dequantize_row_tq2_0(&u.tq, o, BD_QK_TQ2_0); break;
        case BD_GGML_TYPE_TQ1_0: bd_dequantize_row_tq1_0(&u.tq1, o, 256); break;
        case GGML_Q5_K: dequant_q5_K(p, o); break;
        case GGML_Q6_K: dequant_q6_K(p, o); break;
        }
    }
}

// ---- the reader -----------------------------------------------------------------------------

typedef struct {
    const uint8_t *p;
    size_t n, pos;
    const char *path;
    char *why;
    size_t ws;
} rd;

typedef struct {
    const char *key;  // in the mapped file, not NUL-terminated
    size_t klen;
    uint32_t type;
    size_t vpos;  // the value's first byte
} kv_entry;

// A name from the file, printable and bounded, for messages.
static const char *shown(const char *s, size_t n, char *buf, size_t size) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < size; i++) buf[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (k < n && k + 4 <= size) memcpy(buf + k, "...", 3), k += 3;
    buf[k] = 0;
    return buf;
}

// n more bytes at the read position, or BD_ERR_TRUNCATED naming what was being read.
static int need(rd *r, uint64_t n, const char *what) {
    if (n <= r->n - r->pos) return BD_OK;
    return bd_fail(r->why, r->ws, BD_ERR_TRUNCATED,
                   "%s: GGUF file ends inside %s (at byte %zu, %llu bytes needed, %zu left): truncated or corrupt",
                   r->path, what, r->pos, (unsigned long long)n, r->n - r->pos);
}

static uint32_t get32(rd *r) {
    uint32_t v;
    memcpy(&v, r->p + r->pos, 4);
    r->pos += 4;
    return v;
}

static uint64_t get64(rd *r) {
    uint64_t v;
    memcpy(&v, r->p + r->pos, 8);
    r->pos += 8;
    return v;
}

static int rd_u32(rd *r, uint32_t *v, const char *what) {
    int rc = need(r, 4, what);
    if (rc == BD_OK) *v = get32(r);
    return rc;
}

static int rd_u64(rd *r, uint64_t *v, const char *what) {
    int rc = need(r, 8, what);
    if (rc == BD_OK) *v = get64(r);
    return rc;
}

// A string: u64 length, bytes (bounded by the file).
static int rd_str(rd *r, const char **s, size_t *len, const char *what) {
    uint64_t n = 0;
    int rc;
    if ((rc = rd_u64(r, &n, what)) < 0 || (rc = need(r, n, what)) < 0) return rc;
    *s = (const char *)r->p + r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return BD_OK;
}

// Skips a value of type t (what: the key, for messages). Arrays hold scalars or strings.
static int skip_value(rd *r, uint32_t t, const char *what) {
    char w[240];
    int rc;
    if (t == GV_STRING) {
        const char *s;
        size_t n;
        return rd_str(r, &s, &n, what);
    }
    if (t == GV_ARRAY) {
        uint32_t et;
        uint64_t cnt;
        if ((rc = rd_u32(r, &et, what)) < 0 || (rc = rd_u64(r, &cnt, what)) < 0) return rc;
        if (et == GV_ARRAY || et >= GV_COUNT)
            return bd_fail(r->why, r->ws, BD_ERR_MALFORMED,
                           "%s: GGUF %s: array element type %u (expected 0..12, not an array)", r->path, what, et);
        size_t esz = et == GV_STRING ? 8 : gv_size(et);  // a string takes at least its length
        if (cnt > (r->n - r->pos) / esz)
            return bd_fail(r->why, r->ws, BD_ERR_TRUNCATED,
                           "%s: GGUF %s: array of %llu %s elements does not fit in the %zu bytes left", r->path, what,
                           (unsigned long long)cnt, gv_names[et], r->n - r->pos);
        if (et != GV_STRING) {
            r->pos += (size_t)cnt * esz;
            return BD_OK;
        }
        for (uint64_t i = 0; i < cnt; i++) {
            uint64_t n = 8;  // the length, then its bytes
            if (r->n - r->pos >= 8) {
                n = get64(r);
                if (n <= r->n - r->pos) {
                    r->pos += (size_t)n;
                    continue;
                }
            }
            snprintf(w, sizeof w, "%.120s (string %llu of %llu)", what, (unsigned long long)i, (unsigned long long)cnt);
            return need(r, n, w);
        }
        return BD_OK;
    }
    if (t >= GV_COUNT)
        return bd_fail(r->why, r->ws, BD_ERR_MALFORMED, "%s: GGUF %s: value type %u is not a GGUF type (0..12)",
                       r->path, what, t);
    if ((rc = need(r, gv_size(t), what)) < 0) return rc;
    r->pos += gv_size(t);
    return BD_OK;
}

static int kv_cmp(const void *a, const void *b) {
    const kv_entry *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

typedef struct {
    rd r;
    kv_entry *kv;  // sorted by key
    size_t nkv;
    char arch[64];
} gguf;

static const kv_entry *kv_find(const gguf *g, const char *key) {
    kv_entry k = {key, strlen(key), 0, 0};
    return bsearch(&k, g->kv, g->nkv, sizeof *g->kv, kv_cmp);
}

// The key "<arch>.suffix" (or the key itself when it has a dot-free prefix "general." etc.).
static const char *arch_key(const gguf *g, const char *suffix, char *buf, size_t size) {
    snprintf(buf, size, "%s.%s", g->arch, suffix);
    return buf;
}

// An integer key. Absent: *v = def and BD_OK if !required, else BD_ERR_SCHEMA.
static int get_int(gguf *g, const char *key, bool required, int64_t def, int64_t *v) {
    const kv_entry *e = kv_find(g, key);
    if (!e) {
        *v = def;
        if (!required) return BD_OK;
        return bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA, "%s: GGUF key %s is missing (a %s model needs it)", g->r.path,
                       key, g->arch);
    }
    const uint8_t *p = g->r.p + e->vpos;
    switch (e->type) {
    case GV_U8: *v = p[0]; return BD_OK;
    case GV_I8: *v = (int8_t)p[0]; return BD_OK;
    case GV_U16: *v = ld16(p); return BD_OK;
    case GV_I16: *v = (int16_t)ld16(p); return BD_OK;
    case GV_U32: {
        uint32_t u;
        memcpy(&u, p, 4);
        *v = u;
        return BD_OK;
    }
    case GV_I32: {
        int32_t i;
        memcpy(&i, p, 4);
        *v = i;
        return BD_OK;
    }
    case GV_U64: {
        uint64_t u;
        memcpy(&u, p, 8);
        *v = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        return BD_OK;
    }
    case GV_I64: memcpy(v, p, 8); return BD_OK;
    }
    return bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA, "%s: GGUF key %s is %s%s, expected an integer", g->r.path, key,
                   e->type == GV_ARRAY ? "an array (per-layer values, which bd does not support)" : "of type ",
                   e->type == GV_ARRAY ? "" : gv_names[e->type]);
}

// A positive integer key that fits an int and is at most max.
static int get_size(gguf *g, const char *suffix, bool required, int64_t def, int64_t max, int *out) {
    char key[96];
    int64_t v;
    int rc = get_int(g, arch_key(g, suffix, key, sizeof key), required, def, &v);
    if (rc < 0) return rc;
    if (v < 1 || v > max)
        return bd_fail(g->r.why, g->r.ws, BD_ERR_MALFORMED, "%s: GGUF key %s = %lld, expected 1..%lld", g->r.path, key,
                       (long long)v, (long long)max);
    *out = (int)v;
    return BD_OK;
}

// A positive finite float key (f32 or f64).
static int get_float(gguf *g, const char *suffix, bool required, float def, float *out) {
    char key[96];
    arch_key(g, suffix, key, sizeof key);
    const kv_entry *e = kv_find(g, key);
    if (!e) {
        *out = def;
        if (!required) return BD_OK;
        return bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA, "%s: GGUF key %s is missing (a %s model needs it)", g->r.path,
                       key, g->arch);
    }
    double d;
    if (e->type == GV_F32) {
        float f;
        memcpy(&f, g->r.p + e->vpos, 4);
        d = f;
    } else if (e->type == GV_F64) {
        memcpy(&d, g->r.p + e->vpos, 8);
    } else {
        return bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA, "%s: GGUF key %s is of type %s, expected f32", g->r.path, key,
                       gv_names[e->type]);
    }
    if (!(d > 0) || !isfinite((float)d))
        return bd_fail(g->r.why, g->r.ws, BD_ERR_MALFORMED, "%s: GGUF key %s = %g, expected a positive finite number",
                       g->r.path, key, d);
    *out = (float)d;
    return BD_OK;
}

// A string key into buf (NULL and BD_OK when absent and !required).
static int get_str(gguf *g, const char *key, bool required, char *buf, size_t size, bool *found) {
    const kv_entry *e = kv_find(g, key);
    *found = e != NULL;
    if (!e)
        return required ? bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA, "%s: GGUF key %s is missing", g->r.path, key)
                        : BD_OK;
    if (e->type != GV_STRING)
        return bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA, "%s: GGUF key %s is of type %s, expected a string", g->r.path,
                       key, gv_names[e->type]);
    uint64_t n;
    memcpy(&n, g->r.p + e->vpos, 8);
    shown((const char *)g->r.p + e->vpos + 8, (size_t)n, buf, size);
    return BD_OK;
}

// ---- tensors ------------------------------------------------------------------------------------

// Tensor kinds: three of the whole model, then per layer.
enum { K_EMB, K_OUT_NORM, K_OUT, K_GLOBAL };
enum { K_ATTN_NORM, K_Q, K_K, K_V, K_O, K_FFN_NORM, K_GATE, K_DOWN, K_UP, K_ATTN_SUB, K_FFN_SUB, K_PER_LAYER };
static const char *const global_names[K_GLOBAL] = {"token_embd", "output_norm", "output"};
static const char *const layer_names[K_PER_LAYER] = {"attn_norm",   "attn_q",        "attn_k",      "attn_v",
                                                     "attn_output", "ffn_norm",      "ffn_gate",    "ffn_down",
                                                     "ffn_up",      "attn_sub_norm", "ffn_sub_norm"};

typedef struct {
    bool present;
    uint32_t ndim, type;
    int64_t ne[4];
    uint64_t offset;
} slot;

// The slot of a tensor name ("token_embd.weight", "blk.3.attn_q.weight"), or -1.
static int slot_of(const char *s, size_t n, int L) {
    static const char suffix[] = ".weight";
    size_t sl = sizeof suffix - 1;
    if (n <= sl || memcmp(s + n - sl, suffix, sl) != 0) return -1;
    n -= sl;
    for (int k = 0; k < K_GLOBAL; k++)
        if (n == strlen(global_names[k]) && memcmp(s, global_names[k], n) == 0) return k;
    if (n < 6 || memcmp(s, "blk.", 4) != 0) return -1;
    size_t i = 4;
    long layer = 0;
    if (s[i] < '0' || s[i] > '9' || (s[i] == '0' && i + 1 < n && s[i + 1] != '.')) return -1;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        layer = layer * 10 + (s[i] - '0');
        if (layer >= L) return -2;  // a layer beyond block_count
    }
    if (i >= n || s[i] != '.') return -1;
    i++;
    for (int k = 0; k < K_PER_LAYER; k++)
        if (n - i == strlen(layer_names[k]) && memcmp(s + i, layer_names[k], n - i) == 0)
            return K_GLOBAL + (int)layer * K_PER_LAYER + k;
    return -1;
}

static void slot_name(int k, char *buf, size_t size) {
    if (k < K_GLOBAL)
        snprintf(buf, size, "%s.weight", global_names[k]);
    else
        snprintf(buf, size, "blk.%d.%s.weight", (k - K_GLOBAL) / K_PER_LAYER,
                 layer_names[(k - K_GLOBAL) % K_PER_LAYER]);
}

// Parses the header and metadata into g (g->kv sorted) and the config keys into cfg (vocab
// still unknown). Returns BD_OK or an error with why filled.
static int read_metadata(gguf *g, uint64_t *n_tensors) {
    rd *r = &g->r;
    int rc;
    uint32_t version;
    if ((rc = need(r, 4, "the magic")) < 0) return rc;
    if (memcmp(r->p, "GGUF", 4) != 0)
        return bd_fail(r->why, r->ws, BD_ERR_MALFORMED, "%s: not a GGUF file (no \"GGUF\" magic)", r->path);
    r->pos = 4;
    if ((rc = rd_u32(r, &version, "the version")) < 0) return rc;
    if (version != 2 && version != 3) {
        uint32_t sw = __builtin_bswap32(version);
        return bd_fail(r->why, r->ws, BD_ERR_VERSION,
                       "%s: GGUF version %u%s; bd reads versions 2 and 3 (little-endian)", r->path, version,
                       sw == 2 || sw == 3 ? " (a big-endian file)" : "");
    }
    uint64_t nkv;
    if ((rc = rd_u64(r, n_tensors, "the tensor count")) < 0 || (rc = rd_u64(r, &nkv, "the metadata count")) < 0)
        return rc;
    // A key/value takes at least 13 bytes (key length, type, a one-byte value), a tensor info 32
    // (name length, n_dims, one dim, type, offset): counts beyond what the file can hold are
    // refused before anything is allocated.
    size_t left = r->n - r->pos;
    if (nkv > left / 13 || *n_tensors > left / 32 || nkv * 13 + *n_tensors * 32 > left)
        return bd_fail(
                r->why, r->ws, BD_ERR_TRUNCATED,
                "%s: GGUF header claims %llu tensors and %llu metadata keys, more than the %zu bytes after it can "
                "hold: truncated or corrupt",
                r->path, (unsigned long long)*n_tensors, (unsigned long long)nkv, left);
    g->kv = calloc(nkv ? (size_t)nkv : 1, sizeof *g->kv);
    if (!g->kv)
        return bd_fail(r->why, r->ws, BD_ERR_NOMEM, "%s: no memory for %llu GGUF keys", r->path,
                       (unsigned long long)nkv);
    char what[200], kb[100];
    for (uint64_t i = 0; i < nkv; i++) {
        kv_entry *e = &g->kv[i];
        snprintf(what, sizeof what, "metadata key %llu of %llu", (unsigned long long)i, (unsigned long long)nkv);
        if ((rc = rd_str(r, &e->key, &e->klen, what)) < 0) return rc;
        snprintf(what, sizeof what, "metadata key %llu (%s)", (unsigned long long)i,
                 shown(e->key, e->klen, kb, sizeof kb));
        if ((rc = rd_u32(r, &e->type, what)) < 0) return rc;
        e->vpos = r->pos;
        if ((rc = skip_value(r, e->type, what)) < 0) return rc;
        g->nkv++;
    }
    qsort(g->kv, g->nkv, sizeof *g->kv, kv_cmp);
    for (size_t i = 1; i < g->nkv; i++)
        if (kv_cmp(&g->kv[i - 1], &g->kv[i]) == 0)
            return bd_fail(r->why, r->ws, BD_ERR_SCHEMA, "%s: GGUF key %s appears twice", r->path,
                           shown(g->kv[i].key, g->kv[i].klen, kb, sizeof kb));
    return BD_OK;
}

// The config from the metadata (vocab from token_embd later).
static int read_config(gguf *g, bd_config *c, int64_t *align) {
    int rc;
    bool found;
    char key[96], s[64];
    if ((rc = get_str(g, "general.architecture", true, s, sizeof s, &found)) < 0) return rc;
    if (strcmp(s, "llama") != 0 && strcmp(s, "bitnet") != 0)
        return bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA,
                       "%s: GGUF architecture \"%s\" is not supported (bd reads \"llama\" and \"bitnet\")", g->r.path,
                       s);
    snprintf(g->arch, sizeof g->arch, "%s", s);
    memset(c, 0, sizeof *c);
    snprintf(c->arch, sizeof c->arch, "llama");
    if ((rc = get_int(g, "general.alignment", false, BD_GGUF_ALIGNMENT, align)) < 0) return rc;
    if (*align < 1 || *align > (1 << 24) || (*align & (*align - 1)))
        return bd_fail(g->r.why, g->r.ws, BD_ERR_MALFORMED,
                       "%s: GGUF key general.alignment = %lld, expected a power of two", g->r.path, (long long)*align);
    int64_t v;
    if ((rc = get_int(g, arch_key(g, "expert_count", key, sizeof key), false, 0, &v)) < 0) return rc;
    if (v > 0)
        return bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA,
                       "%s: GGUF key %s = %lld: a mixture-of-experts model; bd reads dense models", g->r.path, key,
                       (long long)v);
    if ((rc = get_size(g, "embedding_length", true, 0, 1 << 20, &c->dim)) < 0 ||
        (rc = get_size(g, "block_count", true, 0, 1024, &c->n_layers)) < 0 ||
        (rc = get_size(g, "feed_forward_length", true, 0, 1 << 22, &c->ffn_dim)) < 0 ||
        (rc = get_size(g, "context_length", true, 0, INT32_MAX, &c->max_seq)) < 0 ||
        (rc = get_size(g, "attention.head_count", true, 0, 1 << 16, &c->n_heads)) < 0 ||
        (rc = get_size(g, "attention.head_count_kv", false, c->n_heads, 1 << 16, &c->n_kv_heads)) < 0 ||
        (rc = get_size(g, "attention.key_length", false, c->dim / c->n_heads ? c->dim / c->n_heads : 1, 1 << 16,
                       &c->head_dim)) < 0 ||
        (rc = get_float(g, "attention.layer_norm_rms_epsilon", true, 0, &c->norm_eps)) < 0 ||
        (rc = get_float(g, "rope.freq_base", false, 10000.0f, &c->rope_theta)) < 0)
        return rc;
    if (!kv_find(g, arch_key(g, "attention.key_length", key, sizeof key)) && c->dim % c->n_heads != 0)
        return bd_fail(g->r.why, g->r.ws, BD_ERR_SHAPE,
                       "%s: GGUF: %s.embedding_length %d is not a multiple of attention.head_count %d and "
                       "attention.key_length is absent",
                       g->r.path, g->arch, c->dim, c->n_heads);
    int other;
    static const char *const same_as_hs[] = {"attention.value_length", "rope.dimension_count"};
    for (int i = 0; i < 2; i++) {
        if ((rc = get_size(g, same_as_hs[i], false, c->head_dim, 1 << 16, &other)) < 0) return rc;
        if (other != c->head_dim)
            return bd_fail(g->r.why, g->r.ws, BD_ERR_SHAPE,
                           "%s: GGUF key %s = %d, expected the head dimension %d (bd has one head size and rotates "
                           "whole heads)",
                           g->r.path, arch_key(g, same_as_hs[i], key, sizeof key), other, c->head_dim);
    }
    if ((rc = get_str(g, arch_key(g, "rope.scaling.type", key, sizeof key), false, s, sizeof s, &found)) < 0) return rc;
    if (found && strcmp(s, "none") != 0)
        return bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA, "%s: GGUF key %s = \"%s\": bd has no RoPE scaling", g->r.path,
                       key, s);
    float scale;
    if ((rc = get_float(g, "rope.scale_linear", false, 1.0f, &scale)) < 0) return rc;
    if (scale != 1.0f)
        return bd_fail(g->r.why, g->r.ws, BD_ERR_SCHEMA, "%s: GGUF key %s = %g: bd has no RoPE scaling", g->r.path,
                       arch_key(g, "rope.scale_linear", key, sizeof key), (double)scale);
    c->rope = strcmp(g->arch, "bitnet") == 0 ? BD_ROPE_HALF : BD_ROPE_INTERLEAVED;
    if (c->rope == BD_ROPE_HALF) {
        c->subln = BD_SUBLN_PAPER;  // attn_sub_norm before attn_output, ffn_sub_norm before ffn_down
        c->subln_eps = c->norm_eps;
    }
    return BD_OK;
}

// Reads the tensor infos into slots (sized K_GLOBAL + L * K_PER_LAYER).
static int read_infos(gguf *g, uint64_t nt, int L, bool bitnet, slot *slots) {
    rd *r = &g->r;
    char what[200], nb[100];
    int rc;
    for (uint64_t i = 0; i < nt; i++) {
        const char *name;
        size_t nl;
        snprintf(what, sizeof what, "tensor info %llu of %llu", (unsigned long long)i, (unsigned long long)nt);
        if ((rc = rd_str(r, &name, &nl, what)) < 0) return rc;
        shown(name, nl, nb, sizeof nb);
        snprintf(what, sizeof what, "tensor info %llu (%s)", (unsigned long long)i, nb);
        int k = slot_of(name, nl, L);
        if (k == -2)
            return bd_fail(r->why, r->ws, BD_ERR_SCHEMA, "%s: GGUF tensor %s: layer beyond %s.block_count = %d",
                           r->path, nb, g->arch, L);
        if (k >= K_GLOBAL && !bitnet && (k - K_GLOBAL) % K_PER_LAYER >= K_ATTN_SUB) k = -1;
        if (k < 0)
            return bd_fail(r->why, r->ws, BD_ERR_SCHEMA,
                           "%s: GGUF tensor %s is not part of a %s model as bd reads it%s", r->path, nb, g->arch,
                           strncmp(nb, "rope_freqs", 10) == 0 ? " (RoPE frequency factors: bd has no RoPE scaling)"
                                                              : "");
        slot *s = &slots[k];
        if (s->present) return bd_fail(r->why, r->ws, BD_ERR_SCHEMA, "%s: GGUF tensor %s appears twice", r->path, nb);
        s->present = true;
        if ((rc = rd_u32(r, &s->ndim, what)) < 0) return rc;
        if (s->ndim < 1 || s->ndim > 4)
            return bd_fail(r->why, r->ws, BD_ERR_MALFORMED, "%s: GGUF tensor %s has %u dimensions, expected 1..4",
                           r->path, nb, s->ndim);
        for (uint32_t d = 0; d < s->ndim; d++) {
            uint64_t ne = 0;
            if ((rc = rd_u64(r, &ne, what)) < 0) return rc;
            if (ne < 1 || ne > ((uint64_t)1 << 40))
                return bd_fail(r->why, r->ws, BD_ERR_MALFORMED, "%s: GGUF tensor %s: dimension %u is %llu", r->path, nb,
                               d, (unsigned long long)ne);
            s->ne[d] = (int64_t)ne;
        }
        for (uint32_t d = s->ndim; d < 4; d++) s->ne[d] = 1;
        if ((rc = rd_u32(r, &s->type, what)) < 0 || (rc = rd_u64(r, &s->offset, what)) < 0) return rc;
    }
    return BD_OK;
}

// The shape (ne0, ne1) slot k must have in config c.
static void slot_shape(const bd_config *c, int k, int64_t *ne0, int64_t *ne1) {
    int64_t C = c->dim, V = c->vocab, F = c->ffn_dim, QD = (int64_t)c->n_heads * c->head_dim,
            KD = (int64_t)c->n_kv_heads * c->head_dim;
    static const int8_t rows_of[K_PER_LAYER] = {0, 1, 2, 2, 3, 0, 4, 3, 4, 0, 0};  // 0: 1, 1: QD, 2: KD, 3: C, 4: F
    static const int8_t cols_of[K_PER_LAYER] = {3, 3, 3, 3, 1, 3, 3, 4, 3, 1, 4};
    if (k < K_GLOBAL) {
        *ne0 = C, *ne1 = k == K_OUT_NORM ? 1 : V;
        return;
    }
    int64_t dims[5] = {1, QD, KD, C, F};
    *ne0 = dims[cols_of[(k - K_GLOBAL) % K_PER_LAYER]];
    *ne1 = dims[rows_of[(k - K_GLOBAL) % K_PER_LAYER]];
}

// Where slot k's f32 values go in m (the slot's layer of a bd tensor).
static float *slot_dst(const bd_model *m, int k) {
    const bd_weights *w = &m->w;
    if (k < K_GLOBAL) return k == K_EMB ? w->tok_emb : k == K_OUT_NORM ? w->rms_final : w->wcls;
    int64_t ne0, ne1;
    slot_shape(&m->cfg, k, &ne0, &ne1);
    size_t per = (size_t)(ne0 * ne1), l = (size_t)((k - K_GLOBAL) / K_PER_LAYER);
    float *const base[K_PER_LAYER] = {w->rms_att,        w->wq, w->wk, w->wv, w->wo,
                                      w->rms_ffn,        w->w1, w->w2, w->w3, w->sub_norm[BD_WO],
                                      w->sub_norm[BD_W2]};
    return base[(k - K_GLOBAL) % K_PER_LAYER] + l * per;
}

// Checks slot k against the model: shape, type, alignment, data inside the file.
static int check_slot(const gguf *g, const bd_config *c, const slot *s, int k, int64_t align, size_t data0) {
    const rd *r = &g->r;
    char nm[64];
    slot_name(k, nm, sizeof nm);
    int64_t ne0, ne1;
    slot_shape(c, k, &ne0, &ne1);
    if (s->ne[0] != ne0 || s->ne[1] != ne1 || s->ne[2] != 1 || s->ne[3] != 1) {
        char got[100] = "";
        for (uint32_t d = 0; d < s->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)s->ne[d]);
        char want[48];
        if (ne1 == 1)
            snprintf(want, sizeof want, "%lld", (long long)ne0);
        else
            snprintf(want, sizeof want, "%lld, %lld", (long long)ne0, (long long)ne1);
        return bd_fail(r->why, r->ws, BD_ERR_SHAPE,
                       "%s: GGUF tensor %s has shape [%s] (innermost first), the model's keys imply [%s]", r->path, nm,
                       got, want);
    }
    int qk, bytes;
    type_block(s->type, &qk, &bytes);
    if (!qk)
        return bd_fail(r->why, r->ws, BD_ERR_SHAPE,
                       "%s: GGUF tensor %s has ggml type %u (%s); bd reads f32, f16, bf16, q8_0, q2_K, q3_K, q4_K, "
                       "q5_K, q6_K, tq1_0, tq2_0 and iq2_bn",
                       r->path, nm, s->type, ggml_type_name(s->type));
    if (ne0 % qk != 0)
        return bd_fail(r->why, r->ws, BD_ERR_SHAPE,
                       "%s: GGUF tensor %s: rows of %lld weights are not whole %s blocks of %d", r->path, nm,
                       (long long)ne0, ggml_type_name(s->type), qk);
    if (s->offset % (uint64_t)align != 0)
        return bd_fail(r->why, r->ws, BD_ERR_MALFORMED,
                       "%s: GGUF tensor %s: data offset %llu is not a multiple of the alignment %lld", r->path, nm,
                       (unsigned long long)s->offset, (long long)align);
    uint64_t nbytes = row_bytes(s->type, ne0) * (uint64_t)ne1, avail = r->n - data0;
    if (s->offset > avail || nbytes > avail - s->offset)
        return bd_fail(
                r->why, r->ws, BD_ERR_TRUNCATED,
                "%s: GGUF tensor %s: its %llu bytes at data offset %llu end past the end of the file (%llu bytes of "
                "tensor data): truncated or corrupt",
                r->path, nm, (unsigned long long)nbytes, (unsigned long long)s->offset, (unsigned long long)avail);
    return BD_OK;
}

// Into m; with m NULL only the config, into *peek, once everything but the weights is checked.
static int load_mapped(gguf *g, bd_model *m, bd_config *peek) {
    rd *r = &g->r;
    uint64_t nt;
    int rc;
    int64_t align;
    bd_config cfg;
    slot *slots = NULL;
    if ((rc = read_metadata(g, &nt)) < 0 || (rc = read_config(g, &cfg, &align)) < 0) return rc;
    bool bitnet = cfg.subln != BD_SUBLN_NONE;
    int L = cfg.n_layers, ns = K_GLOBAL + L * K_PER_LAYER;
    if (!(slots = calloc((size_t)ns, sizeof *slots)))
        return bd_fail(r->why, r->ws, BD_ERR_NOMEM, "%s: no memory for the tensor list", r->path);
    if ((rc = read_infos(g, nt, L, bitnet, slots)) < 0) goto out;
    size_t pad = ((size_t)align - r->pos % (size_t)align) % (size_t)align;
    if (pad > r->n - r->pos) {
        rc = bd_fail(r->why, r->ws, BD_ERR_TRUNCATED,
                     "%s: GGUF file ends in the padding before its tensor data (byte %zu, alignment %lld)", r->path,
                     r->n, (long long)align);
        goto out;
    }
    size_t data0 = r->pos + pad;
    char nm[64];
    for (int k = 0; k < ns; k++) {
        int kind = k < K_GLOBAL ? k : K_GLOBAL + (k - K_GLOBAL) % K_PER_LAYER;
        bool sub = k >= K_GLOBAL && (k - K_GLOBAL) % K_PER_LAYER >= K_ATTN_SUB;
        if (slots[k].present || kind == K_OUT || (sub && !bitnet)) continue;
        slot_name(k, nm, sizeof nm);
        rc = bd_fail(r->why, r->ws, BD_ERR_SCHEMA, "%s: GGUF tensor %s is missing (a %s model of %d layers needs it)",
                     r->path, nm, g->arch, L);
        goto out;
    }
    // The vocabulary is token_embd's row count.
    const slot *emb = &slots[K_EMB];
    if (emb->ndim < 2 || emb->ne[1] > (1 << 24) || emb->ne[0] != cfg.dim) {
        rc = bd_fail(r->why, r->ws, BD_ERR_SHAPE,
                     "%s: GGUF tensor token_embd.weight has shape [%lld, %lld], expected [%d, vocabulary <= 2^24]",
                     r->path, (long long)emb->ne[0], (long long)emb->ne[1], cfg.dim);
        goto out;
    }
    cfg.vocab = (int)emb->ne[1];
    cfg.tied_embeddings = !slots[K_OUT].present;
    char key[96];
    int64_t v;
    if ((rc = get_int(g, arch_key(g, "vocab_size", key, sizeof key), false, cfg.vocab, &v)) < 0) goto out;
    if (v != cfg.vocab) {
        rc = bd_fail(r->why, r->ws, BD_ERR_SHAPE, "%s: GGUF key %s = %lld, but token_embd.weight has %d rows", r->path,
                     key, (long long)v, cfg.vocab);
        goto out;
    }
    static const char *const special[2] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    for (int i = 0; i < 2; i++) {
        if ((rc = get_int(g, special[i], false, -1, &v)) < 0) goto out;
        if (v < -1 || v >= cfg.vocab) {
            rc = bd_fail(r->why, r->ws, BD_ERR_VALUE, "%s: GGUF key %s = %lld, expected a token id below %d", r->path,
                         special[i], (long long)v, cfg.vocab);
            goto out;
        }
        *(i ? &cfg.eos : &cfg.bos) = (int)v;
    }
    char cwhy[200];
    if (bd_config_check(&cfg, cwhy, sizeof cwhy) < 0) {
        rc = bd_fail(r->why, r->ws, BD_ERR_MALFORMED, "%s: GGUF %s keys: %s", r->path, g->arch, cwhy);
        goto out;
    }
    // Shapes and bounds are checked in full before the model is allocated.
    for (int k = 0; k < ns; k++)
        if (slots[k].present && (rc = check_slot(g, &cfg, &slots[k], k, align, data0)) < 0) goto out;
    if (!m) {
        *peek = cfg;
        rc = BD_OK;
        goto out;
    }
    if ((rc = bd_model_alloc(m, &cfg)) < 0) {
        bd_fail(r->why, r->ws, rc, "%s: cannot allocate the model", r->path);
        goto out;
    }
    for (int k = 0; k < ns; k++) {
        const slot *s = &slots[k];
        if (!s->present) continue;
        int64_t ne0, ne1;
        slot_shape(&cfg, k, &ne0, &ne1);
        float *dst = slot_dst(m, k);
        const uint8_t *src = r->p + data0 + s->offset;
        uint64_t rb = row_bytes(s->type, ne0);
        for (int64_t row = 0; row < ne1; row++) dequant_row(s->type, src + (uint64_t)row * rb, dst + row * ne0, ne0);
        slot_name(k, nm, sizeof nm);
        if ((rc = bd_io_check_finite(dst, (size_t)(ne0 * ne1), r->path, nm, r->why, r->ws)) < 0) goto out;
    }
    rc = BD_OK;
out:
    if (rc < 0 && m) bd_model_free(m);
    free(slots);
    return rc;
}

// bd_load_gguf (m) or bd_gguf_peek (m NULL, the config into *peek).
static int gguf_open(const char *path, bd_model *m, bd_config *peek, char *why, size_t ws) {
    if (m) memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return bd_fail(why, ws, BD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return bd_fail(why, ws, BD_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return bd_fail(why, ws, BD_ERR_ARG, "%s: a GGUF model is read from a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 24) {
        close(fd);
        return bd_fail(why, ws, BD_ERR_TRUNCATED, "%s: GGUF file of %zu bytes: truncated header (24 bytes)", path,
                       size);
    }
    const uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return bd_fail(why, ws, BD_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    gguf g = {.r = {map, size, 0, path, why, ws}};
    int rc = load_mapped(&g, m, peek);
    free(g.kv);
    munmap((void *)map, size);
    return rc;
}

int bd_load_gguf(const char *path, bd_model *m, char *why, size_t ws) { return gguf_open(path, m, NULL, why, ws); }

int bd_gguf_peek(const char *path, bd_config *cfg, char *why, size_t ws) { return gguf_open(path, NULL, cfg, why, ws); }
