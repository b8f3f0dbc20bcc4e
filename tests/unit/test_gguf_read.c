// GGUF input (bd_gguf_read.c): files bd_gguf_write makes load back as the model they were made
// from (F32: every tensor exact, q/k rows in the architecture's RoPE layout; F16: the f16-rounded
// weights; q2_K/q3_K/q4_K and TQ2_0/IQ2_BN students: their fake-quantized weights exactly); files
// written by hand here hold every weight type read (f32, f16, bf16, q8_0, q2_K ... q6_K, tq2_0,
// iq2_bn: random blocks, dequantized by reference loops written from ggml's layouts) and
// metadata variants; corrupt files (every truncation of the header region, some inside the
// data, bad magic/version, absurd counts, unknown types, offsets outside the file, duplicate,
// missing or unknown tensors, wrong shapes, NaN) are refused with a message naming the file.
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bd_dtype.h"
#include "bd_gguf.h"
#include "bd_kquant.h"
#include "bd_model_io.h"
#include "bd_model_io_impl.h"
#include "bd_packed.h"
#include "bd_qmodel.h"
#include "bd_test.h"
#include "bd_tokenizer.h"

static char why[1024];
static uint64_t rs = 1;
static float urand(void) {  // uniform in [-1, 1)
    rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2 - 1);
}
static uint8_t ubyte(void) { return (uint8_t)((urand() + 1) * 128); }

static const char *tmp(const char *name) {
    static char buf[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/gr_%s", bd_test_tmpdir(), name);
    return buf[k];
}

static bd_tokenizer *tok512(void) {
    bd_tokenizer *t;
    ck_assert_msg(bd_tokenizer_load(bd_test_data("models/stories260K/tok512.bin"), &t, why, sizeof why) == BD_OK, "%s",
                  why);
    return t;
}

static void clone(bd_model *dst, const bd_model *src) {
    ck_assert_int_eq(bd_model_alloc(dst, &src->cfg), BD_OK);
    memcpy(dst->params, src->params, src->n_params * sizeof(float));
}

// Same config and every tensor equal (== per element: a zero may change sign).
static void expect_same_model(const bd_model *got, const bd_model *want, const char *what) {
    const bd_config *a = &got->cfg, *b = &want->cfg;
    ck_assert_msg(a->dim == b->dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
                          a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim && a->ffn_dim == b->ffn_dim &&
                          a->vocab == b->vocab && a->max_seq == b->max_seq,
                  "%s: sizes differ", what);
    ck_assert_msg(a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta && a->rope == b->rope &&
                          a->tied_embeddings == b->tied_embeddings && a->qkv_bias == b->qkv_bias &&
                          a->qk_norm == b->qk_norm && a->bos == b->bos && a->eos == b->eos && a->subln == b->subln &&
                          (!a->subln || a->subln_eps == b->subln_eps),
                  "%s: config differs (rope %d vs %d, tied %d vs %d, subln %d vs %d, eps %g vs %g)", what, a->rope,
                  b->rope, a->tied_embeddings, b->tied_embeddings, a->subln, b->subln, (double)a->subln_eps,
                  (double)b->subln_eps);
    ck_assert_str_eq(a->arch, "llama");
    ck_assert_ptr_null(got->packed);
    ck_assert_int_eq(got->quant.kind, BD_Q_NONE);
    bd_param_entry t[BD_MAX_PARAMS];
    int n = bd_param_table(a, t, NULL);
    ck_assert_uint_eq(got->n_params, want->n_params);
    for (int k = 0; k < n; k++)
        for (size_t i = 0; i < t[k].numel; i++) {
            float x = got->params[t[k].offset + i], y = want->params[t[k].offset + i];
            if (x != y)  // (one check per element would cost Check a pipe write each)
                ck_abort_msg("%s: tensor %s element %zu: %.9g, expected %.9g", what, t[k].name, i, (double)x,
                             (double)y);
        }
}

static bd_config cfg256(bd_rope_style rope, bool tied) {
    bd_test_variant v = {"gguf256", 256, 2, 4, 2, 64, 512, 512, rope, tied, false, false};
    return bd_test_variant_config(&v);
}

// F32 GGUF of llama models (both RoPE styles, tied or not) and of a bitnet student load back
// exactly, in the architecture's RoPE layout.
START_TEST(test_gguf_read_f32_round_trip) {
    bd_tokenizer *tok = tok512();
    bd_test_variant vs[] = {
            {"il_untied", 64, 2, 8, 4, 8, 96, 512, BD_ROPE_INTERLEAVED, false, false, false},
            {"half_tied", 64, 2, 4, 2, 16, 96, 512, BD_ROPE_HALF, true, false, false},
            {"il_gqa", 48, 3, 6, 2, 8, 80, 512, BD_ROPE_INTERLEAVED, true, false, false},
    };
    for (size_t v = 0; v < sizeof vs / sizeof *vs + 2; v++) {
        bool bitnet = v >= sizeof vs / sizeof *vs;
        bd_config c =
                bitnet ? cfg256(v % 2 ? BD_ROPE_HALF : BD_ROPE_INTERLEAVED, true) : bd_test_variant_config(&vs[v]);
        c.bos = 1, c.eos = 2, c.max_seq = 77, c.norm_eps = 1e-6f, c.rope_theta = 5e5f;
        bd_model m, want, got;
        bd_test_random_model(&m, &c, urand);
        if (bitnet) {
            ck_assert_msg(bd_model_add_subln(&m, BD_SUBLN_PAPER, 1e-8f, why, sizeof why) == BD_OK, "%s", why);
            for (size_t i = 0; i < m.n_params; i++)
                if (m.params[i] == 1.0f) m.params[i] = 1.0f + 0.1f * urand();  // the new sub-norms
        }
        const char *p = tmp("f32.gguf");
        ck_assert_msg(bd_gguf_write(&m, tok, p, BD_GGUF_F32, NULL, why, sizeof why) == BD_OK, "%s", why);
        ck_assert_int_eq(bd_model_sniff(p, why, sizeof why), BD_MODEL_FMT_GGUF);
        ck_assert_str_eq(bd_model_format_name(BD_MODEL_FMT_GGUF), "GGUF");
        ck_assert_msg(bd_model_load(p, &got, why, sizeof why) == BD_OK, "%s", why);
        clone(&want, &m);
        // llama.cpp's llama rotates interleaved pairs, bitnet NEOX halves: the writer permuted q/k
        // rows to those layouts, and the model comes back in them.
        ck_assert_int_eq(bd_model_convert_rope(&want, bitnet ? BD_ROPE_HALF : BD_ROPE_INTERLEAVED), BD_OK);
        if (bitnet) want.cfg.subln_eps = want.cfg.norm_eps;  // the file has one epsilon
        expect_same_model(&got, &want, bitnet ? "bitnet" : vs[v].name);
        bd_model_free(&got);
        bd_model_free(&want);
        bd_model_free(&m);
    }
    bd_tokenizer_free(tok);
}
END_TEST

// F16: 2-D tensors rounded to f16, norms f32.
START_TEST(test_gguf_read_f16) {
    bd_tokenizer *tok = tok512();
    bd_test_variant v = {"f16", 64, 2, 8, 4, 8, 96, 512, BD_ROPE_INTERLEAVED, false, false, false};
    bd_config c = bd_test_variant_config(&v);
    bd_model m, want, got;
    bd_test_random_model(&m, &c, urand);
    const char *p = tmp("f16.gguf");
    ck_assert_msg(bd_gguf_write(&m, tok, p, BD_GGUF_F16, NULL, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load(p, &got, why, sizeof why) == BD_OK, "%s", why);
    clone(&want, &m);
    bd_param_entry t[BD_MAX_PARAMS];
    int n = bd_param_table(&c, t, NULL);
    int rounded = 0;
    for (int k = 0; k < n; k++) {
        if (strncmp(t[k].name, "rms", 3) == 0) continue;
        rounded++;
        for (size_t i = 0; i < t[k].numel; i++) {
            float *x = &want.params[t[k].offset + i];
            *x = bd_f16_to_f32(bd_f32_to_f16(*x));
        }
    }
    ck_assert_int_eq(rounded, 9);  // tok_emb, 7 linears, wcls
    expect_same_model(&got, &want, "f16");
    // And it differs from the unrounded model (the test sees rounding).
    bool differs = false;
    for (size_t i = 0; i < m.n_params && !differs; i++) differs = got.params[i] != m.params[i];
    ck_assert(differs);
    bd_model_free(&got);
    bd_model_free(&want);
    bd_model_free(&m);
    bd_tokenizer_free(tok);
}
END_TEST

// Packed K-quant and ternary students: the file's blocks load as the fake-quantized weights.
START_TEST(test_gguf_read_quantized_students) {
    bd_tokenizer *tok = tok512();
    struct {
        bd_qspec q;
        bd_gguf_wtype wt;
        int C, F;
    } cs[] = {{{BD_Q_Q2_K, 2, 256}, BD_GGUF_Q2_K, 256, 512},
              {{BD_Q_Q3_K, 3, 256}, BD_GGUF_Q3_K, 256, 512},
              {{BD_Q_Q4_K, 4, 256}, BD_GGUF_Q4_K, 256, 512},
              {{BD_Q_TERNARY, 2, 0}, BD_GGUF_TQ2_0, 256, 512},
              {{BD_Q_TERNARY, 2, 0}, BD_GGUF_IQ2_BN, 512, 512}};
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        bd_test_variant v = {"q", cs[i].C, 2, 4, 2, cs[i].C / 4, cs[i].F, 512, BD_ROPE_INTERLEAVED, true, false, false};
        bd_config c = bd_test_variant_config(&v);
        bd_model m, fq, got;
        bd_test_random_model(&m, &c, urand);
        m.quant = cs[i].q;
        ck_assert_int_eq(bd_model_alloc(&fq, &c), BD_OK);
        ck_assert_msg(bd_model_fakequant(&fq, &m, &m.quant, &m.qpolicy, why, sizeof why) == BD_OK, "%s", why);
        ck_assert_msg(bd_pk_model_pack(&m, why, sizeof why) == BD_OK, "%s", why);
        const char *p = tmp("q.gguf");
        bd_gguf_report rep;
        ck_assert_msg(bd_gguf_write(&m, tok, p, cs[i].wt, &rep, why, sizeof why) == BD_OK, "%s", why);
        ck_assert_int_eq(rep.n_typed, 7 * c.n_layers);
        ck_assert_msg(bd_model_load(p, &got, why, sizeof why) == BD_OK, "%s", why);
        if (cs[i].wt == BD_GGUF_TQ2_0) {  // TQ2_0 stores the scale as f16: D -> f16(D) in every ternary weight
            bd_param_entry t[BD_MAX_PARAMS];
            int n = bd_param_table(&c, t, NULL);
            for (int k = 0; k < n; k++)
                if (t[k].is_linear)
                    for (size_t j = 0; j < t[k].numel; j++) {
                        float *x = &fq.params[t[k].offset + j];
                        *x = bd_f16_to_f32(bd_f32_to_f16(*x));
                    }
        }
        expect_same_model(&got, &fq, bd_gguf_wtype_name(cs[i].wt));
        bd_model_free(&got);
        bd_model_free(&fq);
        bd_model_free(&m);
    }
    bd_tokenizer_free(tok);
}
END_TEST

// ---- a GGUF writer for files bd does not write ----------------------------------------------

typedef struct {
    uint8_t *b;
    size_t n, cap;
    uint64_t nkv;
} gbuf;

static void put(gbuf *g, const void *p, size_t n) {
    if (g->n + n > g->cap) {
        g->cap = (g->n + n) * 2 + 1024;
        g->b = realloc(g->b, g->cap);
        ck_assert_ptr_nonnull(g->b);
    }
    memcpy(g->b + g->n, p, n);
    g->n += n;
}
static void put32(gbuf *g, uint32_t v) { put(g, &v, 4); }
static void put64(gbuf *g, uint64_t v) { put(g, &v, 8); }
static void putstr(gbuf *g, const char *s) {
    put64(g, strlen(s));
    put(g, s, strlen(s));
}
static void kv_int(gbuf *g, const char *k, uint32_t type, int64_t v) {  // type 4 u32, 5 i32, 10 u64, 11 i64
    putstr(g, k);
    put32(g, type);
    if (type == 4 || type == 5)
        put32(g, (uint32_t)v);
    else
        put64(g, (uint64_t)v);
    g->nkv++;
}
static void kv_f32(gbuf *g, const char *k, float v) {
    putstr(g, k);
    put32(g, 6);
    put(g, &v, 4);
    g->nkv++;
}
static void kv_f64(gbuf *g, const char *k, double v) {
    putstr(g, k);
    put32(g, 12);
    put(g, &v, 8);
    g->nkv++;
}
static void kv_str(gbuf *g, const char *k, const char *v) {
    putstr(g, k);
    put32(g, 8);
    putstr(g, v);
    g->nkv++;
}

typedef struct {
    char name[64];
    int ndim;
    int64_t ne0, ne1;
    uint32_t type;
    uint8_t *data;
    size_t nbytes;
} htensor;

static void write_gguf(const char *path, const gbuf *kv, const htensor *t, int nt) {
    gbuf o = {0};
    put(&o, "GGUF", 4);
    put32(&o, 3);
    put64(&o, (uint64_t)nt);
    put64(&o, kv->nkv);
    put(&o, kv->b, kv->n);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        putstr(&o, t[i].name);
        put32(&o, (uint32_t)t[i].ndim);
        put64(&o, (uint64_t)t[i].ne0);
        if (t[i].ndim > 1) put64(&o, (uint64_t)t[i].ne1);
        put32(&o, t[i].type);
        put64(&o, off);
        off = (off + t[i].nbytes + 31) / 32 * 32;
    }
    static const uint8_t zeros[32];
    put(&o, zeros, (32 - o.n % 32) % 32);
    for (int i = 0; i < nt; i++) {
        put(&o, t[i].data, t[i].nbytes);
        put(&o, zeros, (32 - t[i].nbytes % 32) % 32);
    }
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(o.b, 1, o.n, f), o.n);
    ck_assert_int_eq(fclose(f), 0);
    free(o.b);
}

static uint16_t rand_f16(float scale) { return bd_f32_to_f16(scale * urand()); }
static void set16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static uint16_t get16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

// Reference dequantizers written from ggml's dequantize_row_* loops (ggml-quants.c).
static void ref_q8_0(const uint8_t *x, float *y, int k) {
    for (int i = 0; i < k / 32; i++) {
        const float d = bd_f16_to_f32(get16(x + 34 * i));
        for (int j = 0; j < 32; ++j) y[i * 32 + j] = (float)(int8_t)x[34 * i + 2 + j] * d;
    }
}
static void ref_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}
static void ref_q5_K(const uint8_t *x, float *y, int k) {
    for (int i = 0; i < k / 256; i++) {
        const uint8_t *b = x + 176 * i, *ql = b + 48, *qh = b + 16;
        const float d = bd_f16_to_f32(get16(b)), min = bd_f16_to_f32(get16(b + 2));
        int is = 0;
        uint8_t sc, m, u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64) {
            ref_scale_min_k4(is + 0, b + 4, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            ref_scale_min_k4(is + 1, b + 4, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32, is += 2, u1 <<= 2, u2 <<= 2;
        }
    }
}
static void ref_q6_K(const uint8_t *x, float *y, int k) {
    for (int i = 0; i < k / 256; i++) {
        const uint8_t *b = x + 210 * i, *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = bd_f16_to_f32(get16(b + 208));
        for (int n = 0; n < 256; n += 128) {
            for (int l = 0; l < 32; ++l) {
                int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128, ql += 64, qh += 32, sc += 8;
        }
    }
}

// Random rows of type t (ne0 x ne1) into a new buffer, their values into y.
static uint8_t *random_rows(uint32_t t, int64_t ne0, int64_t ne1, float *y, size_t *nbytes) {
    struct {
        uint32_t t;
        int qk, bytes, f16_at[2];  // block size, bytes, offsets of f16 factors (-1: none)
    } L[] = {{0, 1, 4, {-1, -1}},       {1, 1, 2, {-1, -1}},       {30, 1, 2, {-1, -1}},   {8, 32, 34, {0, -1}},
             {10, 256, 84, {80, 82}},   {11, 256, 110, {108, -1}}, {12, 256, 144, {0, 2}}, {13, 256, 176, {0, 2}},
             {14, 256, 210, {208, -1}}, {35, 256, 66, {64, -1}},   {135, 64, 16, {-1, -1}}};
    size_t li = 0;
    while (L[li].t != t) li++;
    size_t rb = (size_t)(ne0 / L[li].qk) * (size_t)L[li].bytes + (t == 135 ? 4 : 0);
    *nbytes = rb * (size_t)ne1;
    uint8_t *b = malloc(*nbytes);
    ck_assert_ptr_nonnull(b);
    for (int64_t r = 0; r < ne1; r++) {
        uint8_t *row = b + (size_t)r * rb;
        float *yr = y + r * ne0;
        for (size_t i = 0; i < rb; i++) row[i] = ubyte();
        if (t == 0) {
            for (int64_t i = 0; i < ne0; i++) yr[i] = urand(), memcpy(row + 4 * i, &yr[i], 4);
            continue;
        }
        if (t == 1 || t == 30) {
            for (int64_t i = 0; i < ne0; i++) {
                uint16_t h = t == 1 ? bd_f32_to_f16(urand()) : bd_f32_to_bf16(urand());
                set16(row + 2 * i, h);
                yr[i] = t == 1 ? bd_f16_to_f32(h) : bd_bf16_to_f32(h);
            }
            continue;
        }
        if (t == 135) {
            float D = 0.05f * (urand() + 1.5f);
            memcpy(row, &D, 4);
            bd_dequantize_row_iq2_bn(row, yr, (int)ne0);
            continue;
        }
        for (int64_t k = 0; k < ne0 / L[li].qk; k++) {
            uint8_t *blk = row + (size_t)k * (size_t)L[li].bytes;
            for (int f = 0; f < 2; f++)
                if (L[li].f16_at[f] >= 0) set16(blk + L[li].f16_at[f], rand_f16(0.01f));
            float *o = yr + k * L[li].qk;
            union {
                bd_block_q2_K q2;
                bd_block_q3_K q3;
                bd_block_q4_K q4;
                bd_block_tq2_0 tq;
            } u;
            memcpy(&u, blk, (size_t)L[li].bytes < sizeof u ? (size_t)L[li].bytes : sizeof u);
            switch (t) {
            case 8: ref_q8_0(blk, o, 32); break;
            case 10: bd_dequantize_block_q2_K(&u.q2, o); break;
            case 11: bd_dequantize_block_q3_K(&u.q3, o); break;
            case 12: bd_dequantize_block_q4_K(&u.q4, o); break;
            case 13: ref_q5_K(blk, o, 256); break;
            case 14: ref_q6_K(blk, o, 256); break;
            case 35: bd_dequantize_row_tq2_0(&u.tq, o, 256); break;
            }
        }
    }
    return b;
}

enum { H_C = 256, H_NH = 4, H_KV = 2, H_HS = 64, H_F = 512, H_V = 40 };

typedef struct {
    gbuf kv;
    htensor t[32];
    int nt;
} hmodel;

static void add_tensor(hmodel *h, const char *name, int ndim, int64_t ne0, int64_t ne1, uint32_t type, float *vals) {
    htensor *t = &h->t[h->nt++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim, t->ne0 = ne0, t->ne1 = ne1, t->type = type;
    t->data = random_rows(type, ne0, ne1, vals, &t->nbytes);
}

static void free_hmodel(hmodel *h) {
    for (int i = 0; i < h->nt; i++) free(h->t[i].data);
    free(h->kv.b);
    memset(h, 0, sizeof *h);
}

// A one-layer llama file, 2-D weights of types from the list starting at rot, and the model
// it must load as (want). Keys as int types of several widths, epsilon as f64.
static void hand_model(hmodel *h, bd_model *want, int rot, bool keys_only) {
    static const uint32_t types[] = {0, 1, 30, 8, 10, 11, 12, 13, 14, 35, 135};
    memset(h, 0, sizeof *h);
    bd_config c = {.arch = "llama",
                   .dim = H_C,
                   .n_layers = 1,
                   .n_heads = H_NH,
                   .n_kv_heads = H_KV,
                   .head_dim = H_HS,
                   .ffn_dim = H_F,
                   .vocab = H_V,
                   .max_seq = 1024,
                   .norm_eps = (float)1e-5,
                   .rope_theta = 10000.0f,
                   .rope = BD_ROPE_INTERLEAVED,
                   .tied_embeddings = false,
                   .bos = 1,
                   .eos = -1};
    ck_assert_int_eq(bd_model_alloc(want, &c), BD_OK);
    gbuf *g = &h->kv;
    kv_str(g, "general.architecture", "llama");
    kv_str(g, "general.name", "hand");
    kv_int(g, "llama.context_length", 11, 1024);
    kv_int(g, "llama.embedding_length", 4, H_C);
    kv_int(g, "llama.block_count", 10, 1);
    kv_int(g, "llama.feed_forward_length", 5, H_F);
    kv_int(g, "llama.attention.head_count", 4, H_NH);
    kv_int(g, "llama.attention.head_count_kv", 4, H_KV);
    kv_f64(g, "llama.attention.layer_norm_rms_epsilon", 1e-5);
    kv_int(g, "tokenizer.ggml.bos_token_id", 4, 1);
    if (keys_only) return;
    const bd_weights *w = &want->w;
    int k = rot;
#define NEXT types[k++ % (int)(sizeof types / sizeof *types)]
    add_tensor(h, "token_embd.weight", 2, H_C, H_V, NEXT, w->tok_emb);
    add_tensor(h, "blk.0.attn_norm.weight", 1, H_C, 1, 0, w->rms_att);
    add_tensor(h, "blk.0.attn_q.weight", 2, H_C, H_NH * H_HS, NEXT, w->wq);
    add_tensor(h, "blk.0.attn_k.weight", 2, H_C, H_KV * H_HS, NEXT, w->wk);
    add_tensor(h, "blk.0.attn_v.weight", 2, H_C, H_KV * H_HS, NEXT, w->wv);
    add_tensor(h, "blk.0.attn_output.weight", 2, H_NH * H_HS, H_C, NEXT, w->wo);
    add_tensor(h, "blk.0.ffn_norm.weight", 1, H_C, 1, 0, w->rms_ffn);
    add_tensor(h, "blk.0.ffn_gate.weight", 2, H_C, H_F, NEXT, w->w1);
    add_tensor(h, "blk.0.ffn_down.weight", 2, H_F, H_C, NEXT, w->w2);
    add_tensor(h, "blk.0.ffn_up.weight", 2, H_C, H_F, NEXT, w->w3);
    add_tensor(h, "output.weight", 2, H_C, H_V, NEXT, w->wcls);
    add_tensor(h, "output_norm.weight", 1, H_C, 1, 0, w->rms_final);
#undef NEXT
}

// Every weight type read, at least once in every 2-D tensor position over the passes.
START_TEST(test_gguf_read_all_types) {
    for (int rot = 0; rot < 11; rot += 3) {
        hmodel h;
        bd_model want, got;
        hand_model(&h, &want, rot, false);
        const char *p = tmp("hand.gguf");
        write_gguf(p, &h.kv, h.t, h.nt);
        ck_assert_msg(bd_model_load(p, &got, why, sizeof why) == BD_OK, "rot %d: %s", rot, why);
        char what[32];
        snprintf(what, sizeof what, "types from %d", rot);
        expect_same_model(&got, &want, what);
        bd_model_free(&got);
        bd_model_free(&want);
        free_hmodel(&h);
    }
}
END_TEST

// Loads the hand model with extra keys (added by fn) and expects rc and text in the message.
static void hand_expect(void (*fn)(hmodel *), int rc, const char *text) {
    hmodel h;
    bd_model want, got;
    hand_model(&h, &want, 0, false);
    fn(&h);
    const char *p = tmp("var.gguf");
    write_gguf(p, &h.kv, h.t, h.nt);
    int r = bd_model_load(p, &got, why, sizeof why);
    ck_assert_msg(r == rc, "%s: rc %d, expected %d: %s", text, r, rc, rc ? why : "");
    if (rc == BD_OK) {
        expect_same_model(&got, &want, text);
        bd_model_free(&got);
    } else {
        ck_assert_msg(strstr(why, text) && strstr(why, p), "message \"%s\" lacks \"%s\" or the path", why, text);
        ck_assert_msg(!strchr(why, '\n'), "message has a newline: %s", why);
        ck_assert_ptr_null(got.params);
    }
    bd_model_free(&want);
    free_hmodel(&h);
}
static void add_nothing(hmodel *h) { (void)h; }
static void add_same_hs(hmodel *h) {
    kv_int(&h->kv, "llama.rope.dimension_count", 4, H_HS);
    kv_int(&h->kv, "llama.attention.key_length", 4, H_HS);
    kv_f32(&h->kv, "llama.rope.freq_base", 10000.0f);
    kv_str(&h->kv, "llama.rope.scaling.type", "none");
    kv_int(&h->kv, "llama.vocab_size", 4, H_V);
}
static void add_partial_rope(hmodel *h) { kv_int(&h->kv, "llama.rope.dimension_count", 4, H_HS / 2); }
static void add_scaling(hmodel *h) { kv_str(&h->kv, "llama.rope.scaling.type", "yarn"); }
static void add_scale_linear(hmodel *h) { kv_f32(&h->kv, "llama.rope.scale_linear", 4.0f); }
static void add_moe(hmodel *h) { kv_int(&h->kv, "llama.expert_count", 4, 8); }
static void add_vocab(hmodel *h) { kv_int(&h->kv, "llama.vocab_size", 4, 32000); }
static void add_bad_bos(hmodel *h) { kv_int(&h->kv, "tokenizer.ggml.eos_token_id", 4, H_V); }
static void add_dup_key(hmodel *h) { kv_int(&h->kv, "llama.block_count", 4, 1); }
static void add_str_key(hmodel *h) { kv_str(&h->kv, "general.alignment", "32"); }
static void add_array_key(hmodel *h) {
    gbuf *g = &h->kv;
    putstr(g, "llama.attention.head_count_kv");  // a per-layer array (replaces nothing: a duplicate is caught first)
    put32(g, 9);
    put32(g, 4);
    put64(g, 1);
    put32(g, H_KV);
    g->nkv++;
}
static void add_rope_freqs(hmodel *h) {
    static float f[H_HS / 2];
    add_tensor(h, "rope_freqs.weight", 1, H_HS / 2, 1, 0, f);
}
static void add_dup_tensor(hmodel *h) { snprintf(h->t[3].name, sizeof h->t[3].name, "blk.0.attn_q.weight"); }
static void add_layer_beyond(hmodel *h) { snprintf(h->t[3].name, sizeof h->t[3].name, "blk.1.attn_k.weight"); }
static void drop_output_norm(hmodel *h) { free(h->t[--h->nt].data); }
static void drop_output(hmodel *h) {
    free(h->t[10].data);
    h->t[10] = h->t[11];
    h->nt--;
}
static void bad_shape(hmodel *h) {
    h->t[4].ne1 = 1, h->t[4].ne0 = (int64_t)h->t[4].nbytes / (h->t[4].type == 0 ? 4 : 1);
}
static void bad_type(hmodel *h) { h->t[1].type = 2; }  // q4_0
static void qwen2_arch(hmodel *h) { memcpy(h->kv.b + 8 + strlen("general.architecture") + 4 + 8, "qwen2", 5); }

START_TEST(test_gguf_read_metadata) {
    hand_expect(add_nothing, BD_OK, "plain");
    hand_expect(add_same_hs, BD_OK, "optional keys that agree");
    hand_expect(add_partial_rope, BD_ERR_SHAPE, "llama.rope.dimension_count");
    hand_expect(add_scaling, BD_ERR_SCHEMA, "yarn");
    hand_expect(add_scale_linear, BD_ERR_SCHEMA, "llama.rope.scale_linear = 4");
    hand_expect(add_moe, BD_ERR_SCHEMA, "mixture-of-experts");
    hand_expect(add_vocab, BD_ERR_SHAPE, "llama.vocab_size");
    hand_expect(add_bad_bos, BD_ERR_VALUE, "tokenizer.ggml.eos_token_id");
    hand_expect(add_dup_key, BD_ERR_SCHEMA, "llama.block_count appears twice");
    hand_expect(add_str_key, BD_ERR_SCHEMA, "general.alignment");
    hand_expect(add_array_key, BD_ERR_SCHEMA, "appears twice");
    hand_expect(add_rope_freqs, BD_ERR_SCHEMA, "rope_freqs.weight");
    hand_expect(add_dup_tensor, BD_ERR_SCHEMA, "blk.0.attn_q.weight appears twice");
    hand_expect(add_layer_beyond, BD_ERR_SCHEMA, "blk.1.attn_k.weight");
    hand_expect(drop_output_norm, BD_ERR_SCHEMA, "output_norm.weight is missing");
    hand_expect(bad_shape, BD_ERR_SHAPE, "blk.0.attn_v.weight has shape");
    hand_expect(bad_type, BD_ERR_SHAPE, "blk.0.attn_norm.weight has ggml type 2 (q4_0)");
    hand_expect(qwen2_arch, BD_ERR_SCHEMA, "\"qwen2\"");
    // No output tensor: tied, the head is token_embd.
    hmodel h;
    bd_model want, got;
    hand_model(&h, &want, 0, false);
    drop_output(&h);
    const char *p = tmp("tied.gguf");
    write_gguf(p, &h.kv, h.t, h.nt);
    ck_assert_msg(bd_model_load(p, &got, why, sizeof why) == BD_OK, "%s", why);
    ck_assert(got.cfg.tied_embeddings && got.w.wcls == got.w.tok_emb);
    ck_assert(memcmp(got.w.tok_emb, want.w.tok_emb, (size_t)H_V * H_C * 4) == 0);
    bd_model_free(&got);
    bd_model_free(&want);
    free_hmodel(&h);
    // A per-layer array where one value is needed.
    hand_model(&h, &want, 0, true);
    free(h.kv.b);
    memset(&h.kv, 0, sizeof h.kv);
    gbuf *g = &h.kv;
    kv_str(g, "general.architecture", "llama");
    putstr(g, "llama.embedding_length");
    put32(g, 9);
    put32(g, 4);
    put64(g, 1);
    put32(g, 1);
    g->nkv++;
    write_gguf(p, g, NULL, 0);
    ck_assert_int_eq(bd_model_load(p, &got, why, sizeof why), BD_ERR_SCHEMA);
    ck_assert_msg(strstr(why, "llama.embedding_length is an array (per-layer"), "%s", why);
    free(g->b);
    bd_model_free(&want);
}
END_TEST

// ---- corrupt files ------------------------------------------------------------------------------

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

// The offset of the first occurrence of the string s (as GGUF stores it: u64 length + bytes),
// pointing past it.
static size_t after_str(const uint8_t *b, size_t n, const char *s) {
    size_t l = strlen(s);
    for (size_t i = 8; i + l <= n; i++)
        if (memcmp(b + i, s, l) == 0) {
            uint64_t len;
            memcpy(&len, b + i - 8, 8);
            if (len == l) return i + l;
        }
    ck_abort_msg("string %s not in the file", s);
    return 0;
}

// Loads the bytes b (n) written to path: expects error rc (0: any error) and text in why.
static void expect_bad(const char *path, const uint8_t *b, size_t n, int rc, const char *text) {
    spit(path, b, n);
    bd_model m;
    int r = bd_model_load(path, &m, why, sizeof why);
    ck_assert_msg(r < 0 && (rc == 0 || r == rc), "%s: rc %d, expected %d (%s)", text, r, rc, r < 0 ? why : "loaded");
    ck_assert_msg(strstr(why, path) && strstr(why, text), "message \"%s\" lacks the path or \"%s\"", why, text);
    ck_assert_msg(!strchr(why, '\n'), "message has a newline: %s", why);
    ck_assert_ptr_null(m.params);
}

START_TEST(test_gguf_read_corrupt) {
    bd_tokenizer *tok = tok512();
    bd_test_variant v = {"c", 32, 1, 4, 2, 8, 64, 512, BD_ROPE_INTERLEAVED, true, false, false};
    bd_config c = bd_test_variant_config(&v);
    bd_model m;
    bd_test_random_model(&m, &c, urand);
    const char *good = tmp("good.gguf"), *p = tmp("bad.gguf");
    ck_assert_msg(bd_gguf_write(&m, tok, good, BD_GGUF_F32, NULL, why, sizeof why) == BD_OK, "%s", why);
    size_t n;
    uint8_t *b = slurp(good, &n), *x = malloc(n);
    // The data section: after the last tensor info (output_norm of a tied model), aligned.
    size_t data0 = (after_str(b, n, "output_norm.weight") + 4 + 8 + 4 + 8 + 31) / 32 * 32;
    ck_assert_uint_lt(data0, n);
    // Every prefix of the start and of the tensor infos through the first data bytes, every 13th
    // inside the vocabulary arrays, every 61st in the data: an error naming the file, no crash.
    size_t infos = after_str(b, n, "token_embd.weight") - 8 - strlen("token_embd.weight");
    spit(p, b, n);
    bd_model got;
    for (size_t len = n - 1;; len -= len > data0 + 200 ? 61 : len > infos || len < 1024 ? 1 : 13) {
        ck_assert_int_eq(truncate(p, (off_t)len), 0);
        int r = bd_model_load(p, &got, why, sizeof why);
        ck_assert_msg(r < 0, "prefix of %zu bytes loads", len);
        ck_assert_msg(strstr(why, p) && !strchr(why, '\n'), "prefix %zu: %s", len, why);
        ck_assert_ptr_null(got.params);
        if (len >= 24 && len < data0) ck_assert_msg(r == BD_ERR_TRUNCATED, "prefix %zu: rc %d (%s)", len, r, why);
        if (len == 0) break;
    }
    // Short files (< 4 bytes) are not sniffed as GGUF; 4..23 bytes are, and are refused.
    ck_assert_int_eq(truncate(p, 10), 0);
    ck_assert_int_eq(bd_load_gguf(p, &got, why, sizeof why), BD_ERR_TRUNCATED);
    ck_assert_msg(strstr(why, "truncated header"), "%s", why);
    // Byte by byte: magic, version, counts.
    memcpy(x, b, n);
    x[0] = 'g';
    spit(p, x, n);
    ck_assert_int_eq(bd_load_gguf(p, &got, why, sizeof why), BD_ERR_MALFORMED);
    ck_assert_msg(strstr(why, "magic") && strstr(why, p), "%s", why);
    memcpy(x, b, n);
    x[4] = 4;
    expect_bad(p, x, n, BD_ERR_VERSION, "GGUF version 4");
    x[4] = 0, x[7] = 3;
    expect_bad(p, x, n, BD_ERR_VERSION, "big-endian");
    memcpy(x, b, n);
    uint64_t huge = (uint64_t)1 << 60;
    memcpy(x + 8, &huge, 8);
    expect_bad(p, x, n, BD_ERR_TRUNCATED, "claims 1152921504606846976 tensors");
    memcpy(x, b, n);
    memcpy(x + 16, &huge, 8);
    expect_bad(p, x, n, BD_ERR_TRUNCATED, "metadata keys");
    // An array count far beyond the file.
    memcpy(x, b, n);
    size_t sc = after_str(b, n, "tokenizer.ggml.scores");
    memcpy(x + sc + 8, &huge, 8);
    expect_bad(p, x, n, BD_ERR_TRUNCATED, "tokenizer.ggml.scores");
    // A string length far beyond the file, inside the token array.
    memcpy(x, b, n);
    size_t tk = after_str(b, n, "tokenizer.ggml.tokens");
    memcpy(x + tk + 4 + 4 + 8, &huge, 8);  // type, element type, count, then the first string's length
    expect_bad(p, x, n, BD_ERR_TRUNCATED, "tokenizer.ggml.tokens) (string 0 of 512)");
    // Unknown value types: of a key, of array elements.
    memcpy(x, b, n);
    uint32_t bad = 13;
    memcpy(x + after_str(b, n, "general.alignment"), &bad, 4);
    expect_bad(p, x, n, BD_ERR_MALFORMED, "general.alignment): value type 13");
    memcpy(x, b, n);
    memcpy(x + sc + 4, &bad, 4);
    expect_bad(p, x, n, BD_ERR_MALFORMED, "array element type 13");
    // A misread alignment: 0 and not a power of two.
    uint32_t al = 48;
    memcpy(x, b, n);
    memcpy(x + after_str(b, n, "general.alignment") + 4, &al, 4);
    expect_bad(p, x, n, BD_ERR_MALFORMED, "general.alignment = 48");
    // Tensor infos: an unknown ggml type, an offset outside the file, an unaligned offset, a dim.
    size_t on = after_str(b, n, "output_norm.weight");  // u32 n_dims, u64 ne0, u32 type, u64 offset
    memcpy(x, b, n);
    uint32_t ty = 77;
    memcpy(x + on + 12, &ty, 4);
    expect_bad(p, x, n, BD_ERR_SHAPE, "output_norm.weight has ggml type 77 (unknown)");
    memcpy(x, b, n);
    uint64_t off = (uint64_t)1 << 40;
    memcpy(x + on + 16, &off, 8);
    expect_bad(p, x, n, BD_ERR_TRUNCATED, "output_norm.weight: its 128 bytes at data offset 1099511627776 end past");
    memcpy(x, b, n);
    off = UINT64_MAX - 31;  // offset + size overflows
    memcpy(x + on + 16, &off, 8);
    expect_bad(p, x, n, BD_ERR_TRUNCATED, "output_norm.weight");
    memcpy(x, b, n);
    memcpy(&off, b + on + 16, 8);
    off += 4;
    memcpy(x + on + 16, &off, 8);
    expect_bad(p, x, n, BD_ERR_MALFORMED, "not a multiple of the alignment 32");
    memcpy(x, b, n);
    uint32_t nd = 5;
    memcpy(x + on, &nd, 4);
    expect_bad(p, x, n, BD_ERR_MALFORMED, "output_norm.weight has 5 dimensions");
    memcpy(x, b, n);
    memcpy(x + on + 4, &huge, 8);
    expect_bad(p, x, n, BD_ERR_MALFORMED, "output_norm.weight: dimension 0");
    memcpy(x, b, n);
    uint64_t ne = 33;
    memcpy(x + on + 4, &ne, 8);
    expect_bad(p, x, n, BD_ERR_SHAPE,
               "output_norm.weight has shape [33] (innermost first), the model's keys imply [32]");
    // A missing key, a tensor renamed to an unknown one, and a NaN weight.
    memcpy(x, b, n);
    memcpy(x + after_str(b, n, "llama.block_count") - 5, "Count", 5);
    expect_bad(p, x, n, BD_ERR_SCHEMA, "GGUF key llama.block_count is missing");
    memcpy(x, b, n);
    memcpy(x + after_str(b, n, "blk.0.attn_k.weight") - 8, "x", 1);
    expect_bad(p, x, n, BD_ERR_SCHEMA, "tensor blk.0.attn_x.weight is not part of a llama model");
    memcpy(x, b, n);
    float nan = NAN;
    uint64_t wq_off;
    memcpy(&wq_off, b + after_str(b, n, "blk.0.attn_q.weight") + 4 + 16 + 4, 8);
    memcpy(x + data0 + wq_off + 4 * 37, &nan, 4);
    expect_bad(p, x, n, BD_ERR_VALUE, "tensor blk.0.attn_q.weight: element 37 is NaN");
    // The unmodified bytes load.
    spit(p, b, n);
    ck_assert_msg(bd_model_load(p, &got, why, sizeof why) == BD_OK, "%s", why);
    bd_model_free(&got);
    // A GGUF model comes from a named file, not a pipe.
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], b, 64), 64);
    close(fds[1]);
    char dev[64];
    snprintf(dev, sizeof dev, "/dev/fd/%d", fds[0]);
    ck_assert_int_eq(bd_model_load(dev, &got, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "GGUF model is read from a file"), "%s", why);
    close(fds[0]);
    free(b);
    free(x);
    bd_model_free(&m);
    bd_tokenizer_free(tok);
}
END_TEST

Suite *suite_gguf_read(void) {
    Suite *s = suite_create("gguf_read");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gguf_read_f32_round_trip);
    tcase_add_test(tc, test_gguf_read_f16);
    tcase_add_test(tc, test_gguf_read_quantized_students);
    tcase_add_test(tc, test_gguf_read_all_types);
    tcase_add_test(tc, test_gguf_read_metadata);
    tcase_add_test(tc, test_gguf_read_corrupt);
    suite_add_tcase(s, tc);
    return s;
}
