// Model loading and saving: stories260K against the README facts and raw file reads,
// round trips through every format (files written by hand in the test where the format is
// external: llama2.c v0/v1/v2, safetensors, config.json), and corrupt inputs.
#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bd_model_io.h"
#include "bd_safetensors.h"
#include "bd_test.h"

static char why[512];

static const char *tmp(const char *name) {
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/mio_%s", bd_test_tmpdir(), name);
    return buf[k];
}

static const char *stories(void) { return bd_test_data("models/stories260K/stories260K.bin"); }

static uint64_t rng_state;
static double rnd(void) {  // uniform in [-1, 1)
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1;
}

static bd_config tiny_cfg(bool tied) {
    bd_config c = {.arch = "llama",
                   .dim = 16,
                   .n_layers = 2,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = 4,
                   .ffn_dim = 24,
                   .vocab = 40,
                   .max_seq = 32,
                   .norm_eps = 1e-5f,
                   .rope_theta = 10000.0f,
                   .rope = BD_ROPE_INTERLEAVED,
                   .tied_embeddings = tied,
                   .bos = 1,
                   .eos = 2};
    return c;
}

// Random weights; exact: multiples of 1/64 in [-1, 1] (exact in bf16 and f16).
static void fill(bd_model *m, uint64_t seed, bool exact) {
    rng_state = seed;
    for (size_t i = 0; i < m->n_params; i++) {
        double v = rnd();
        m->params[i] = exact ? (float)(round(v * 64) / 64) : (float)v;
    }
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(*n + 1);
    ck_assert_uint_eq(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static void assert_same_params(const bd_model *a, const bd_model *b) {
    ck_assert_uint_eq(a->n_params, b->n_params);
    for (size_t i = 0; i < a->n_params; i++)
        ck_assert_msg(a->params[i] == b->params[i], "param %zu: %.9g vs %.9g", i, a->params[i], b->params[i]);
}

static void assert_same_config(const bd_config *a, const bd_config *b) {
    ck_assert_int_eq(a->dim, b->dim);
    ck_assert_int_eq(a->n_layers, b->n_layers);
    ck_assert_int_eq(a->n_heads, b->n_heads);
    ck_assert_int_eq(a->n_kv_heads, b->n_kv_heads);
    ck_assert_int_eq(a->head_dim, b->head_dim);
    ck_assert_int_eq(a->ffn_dim, b->ffn_dim);
    ck_assert_int_eq(a->vocab, b->vocab);
    ck_assert_int_eq(a->max_seq, b->max_seq);
    ck_assert_int_eq(a->tied_embeddings, b->tied_embeddings);
    ck_assert_int_eq(a->qkv_bias, b->qkv_bias);
    ck_assert_int_eq(a->qk_norm, b->qk_norm);
    ck_assert(a->norm_eps == b->norm_eps);
    ck_assert(a->rope_theta == b->rope_theta);
}

// Load must fail with code, and the message must mention each of the given words.
static void expect_fail(const char *path, int code, const char *w1, const char *w2) {
    bd_model m;
    why[0] = 0;
    int rc = bd_model_load(path, &m, why, sizeof why);
    ck_assert_msg(rc == code, "%s: got %d (%s), expected %d", path, rc, why, code);
    ck_assert_ptr_null(m.params);
    ck_assert_msg(strchr(why, '\n') == NULL, "multi-line message: %s", why);
    if (w1) ck_assert_msg(strstr(why, w1), "message \"%s\" lacks \"%s\"", why, w1);
    if (w2) ck_assert_msg(strstr(why, w2), "message \"%s\" lacks \"%s\"", why, w2);
}

// ---- stories260K ----------------------------------------------------------------------------

START_TEST(test_stories_config) {
    bd_model m;
    int rc = bd_model_load(stories(), &m, why, sizeof why);
    ck_assert_msg(rc == BD_OK, "%s", why);
    const bd_config *c = &m.cfg;
    // README: dim 64, ffn 172, 5 layers, 8 heads, 4 kv heads, vocab 512, max seq 512.
    ck_assert_int_eq(c->dim, 64);
    ck_assert_int_eq(c->ffn_dim, 172);
    ck_assert_int_eq(c->n_layers, 5);
    ck_assert_int_eq(c->n_heads, 8);
    ck_assert_int_eq(c->n_kv_heads, 4);
    ck_assert_int_eq(c->vocab, 512);
    ck_assert_int_eq(c->max_seq, 512);
    ck_assert_int_eq(c->head_dim, 8);
    ck_assert(c->tied_embeddings);
    ck_assert_int_eq(c->rope, BD_ROPE_INTERLEAVED);
    ck_assert_str_eq(c->arch, "llama");
    ck_assert(c->norm_eps == 1e-5f && c->rope_theta == 10000.0f);
    ck_assert_uint_eq(m.n_params, 260032);  // README: 260,032 params
    ck_assert_ptr_eq(m.w.wcls, m.w.tok_emb);
    char d[200];
    bd_model_describe(&m, d, sizeof d);
    ck_assert_str_eq(d, "llama C=64 L=5 NH=8 KV=4 HS=8 F=172 V=512 seq=512 rope=interleaved tied 260032 params");
    ck_assert_int_eq(bd_model_sniff(stories(), why, sizeof why), BD_MODEL_FMT_LLAMA2C_V0);
    bd_model_free(&m);
}
END_TEST

// A GGUF file given as a model is sniffed as such (bd_gguf_read.c; test_gguf_read.c), and an
// empty one is refused as GGUF, not as a broken llama2.c header.
START_TEST(test_gguf_is_named) {
    const char *p = tmp("model.gguf");
    unsigned char hdr[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    write_bytes(p, hdr, sizeof hdr);
    ck_assert_int_eq(bd_model_sniff(p, why, sizeof why), BD_MODEL_FMT_GGUF);
    bd_model m;
    ck_assert_int_lt(bd_model_load(p, &m, why, sizeof why), 0);
    ck_assert_msg(strstr(why, "GGUF key general.architecture is missing") && strstr(why, "model.gguf") &&
                          !strstr(why, "llama2.c header"),
                  "%s", why);
}
END_TEST

// One float of the raw file at a float index after the 28-byte header.
static float raw_float(FILE *f, size_t idx) {
    float v;
    ck_assert_int_eq(fseek(f, 28 + 4 * (long)idx, SEEK_SET), 0);
    ck_assert_uint_eq(fread(&v, 4, 1, f), 1);
    return v;
}

START_TEST(test_stories_weights) {
    bd_model m;
    ck_assert_msg(bd_model_load(stories(), &m, why, sizeof why) == BD_OK, "%s", why);
    FILE *f = fopen(stories(), "rb");
    ck_assert_ptr_nonnull(f);
    // README order: tok_emb[V,D], rms_att[L,D], wq[L,D,D], wk[L,KV*hs,D], wv, wo[L,D,D],
    // rms_ffn[L,D], w1[L,H,D], w2[L,D,H], w3[L,H,D], rms_final[D].
    const size_t V = 512, D = 64, L = 5, KVD = 32, H = 172;
    size_t o_emb = 0, o_att = o_emb + V * D, o_wq = o_att + L * D, o_wk = o_wq + L * D * D, o_wv = o_wk + L * KVD * D,
           o_wo = o_wv + L * KVD * D, o_ffn = o_wo + L * D * D, o_w1 = o_ffn + L * D, o_w2 = o_w1 + L * H * D,
           o_w3 = o_w2 + L * D * H, o_fin = o_w3 + L * H * D;
    ck_assert(m.w.tok_emb[0] == raw_float(f, o_emb));
    ck_assert(m.w.tok_emb[V * D - 1] == raw_float(f, o_emb + V * D - 1));
    ck_assert(m.w.rms_att[2 * D + 5] == raw_float(f, o_att + 2 * D + 5));
    ck_assert(m.w.wq[(3 * D + 10) * D + 20] == raw_float(f, o_wq + (3 * D + 10) * D + 20));
    ck_assert(m.w.wk[(4 * KVD + 31) * D + 63] == raw_float(f, o_wk + (4 * KVD + 31) * D + 63));
    ck_assert(m.w.wv[(1 * KVD + 7) * D + 2] == raw_float(f, o_wv + (1 * KVD + 7) * D + 2));
    ck_assert(m.w.wo[(2 * D + 33) * D + 1] == raw_float(f, o_wo + (2 * D + 33) * D + 1));
    ck_assert(m.w.rms_ffn[4 * D + 63] == raw_float(f, o_ffn + 4 * D + 63));
    ck_assert(m.w.w1[(1 * H + 171) * D + 9] == raw_float(f, o_w1 + (1 * H + 171) * D + 9));
    ck_assert(m.w.w2[(3 * D + 5) * H + 170] == raw_float(f, o_w2 + (3 * D + 5) * H + 170));
    ck_assert(m.w.w3[(4 * H + 0) * D + 0] == raw_float(f, o_w3 + 4 * H * D));
    ck_assert(m.w.rms_final[63] == raw_float(f, o_fin + 63));
    // Norm weights of a trained model are not all zero: the spot checks saw real data.
    ck_assert(m.w.rms_final[0] != 0 && m.w.wq[0] != 0);
    fclose(f);
    bd_model_free(&m);
}
END_TEST

// ---- bd.model streams -----------------------------------------------------------------------

START_TEST(test_bd_roundtrip) {
    bd_model m, r;
    ck_assert_msg(bd_model_load(stories(), &m, why, sizeof why) == BD_OK, "%s", why);
    bd_producer prod = {"test", 0, NULL};
    const char *p = tmp("rt.bdz");
    ck_assert_msg(bd_model_save(&m, p, &prod, BD_F32, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(bd_model_sniff(p, why, sizeof why), BD_MODEL_FMT_BD);
    ck_assert_msg(bd_model_load(p, &r, why, sizeof why) == BD_OK, "%s", why);
    assert_same_config(&m.cfg, &r.cfg);
    ck_assert_str_eq(r.cfg.arch, "llama");
    ck_assert_int_eq(r.cfg.rope, BD_ROPE_INTERLEAVED);
    ck_assert_int_eq(r.cfg.bos, m.cfg.bos);
    ck_assert_int_eq(r.cfg.eos, m.cfg.eos);
    assert_same_params(&m, &r);
    bd_model_free(&r);
    // bf16 keeps 8 significant bits, f16 11 (relative error at most 2^-9 and 2^-12 when
    // rounding to nearest; weights here are far from f16's subnormal range or tiny).
    bd_dtype dts[2] = {BD_BF16, BD_F16};
    double rel[2] = {1.0 / 256, 1.0 / 2048};
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(bd_model_save(&m, p, &prod, dts[k], why, sizeof why) == BD_OK, "%s", why);
        ck_assert_msg(bd_model_load(p, &r, why, sizeof why) == BD_OK, "%s", why);
        for (size_t i = 0; i < m.n_params; i++)
            ck_assert_close(r.params[i], m.params[i], fabs(m.params[i]) * rel[k] + 3e-8);
        bd_model_free(&r);
    }
    bd_model_free(&m);
}
END_TEST

START_TEST(test_bd_qwen_features) {
    // A config with every optional tensor (bias, q/k norm, untied) survives the round trip.
    bd_config c = tiny_cfg(false);
    c.qkv_bias = c.qk_norm = true;
    c.head_dim = 6;  // NH*HS != C
    c.rope = BD_ROPE_HALF;
    snprintf(c.arch, sizeof c.arch, "qwen3");
    bd_model m, r;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m, 7, false);
    const char *p = tmp("qf.bdz");
    ck_assert_msg(bd_model_save(&m, p, NULL, BD_F32, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load(p, &r, why, sizeof why) == BD_OK, "%s", why);
    assert_same_config(&m.cfg, &r.cfg);
    ck_assert_int_eq(r.cfg.rope, BD_ROPE_HALF);
    ck_assert_str_eq(r.cfg.arch, "qwen3");
    assert_same_params(&m, &r);
    bd_model_free(&r);
    bd_model_free(&m);
}
END_TEST

static void pack_cfg(msgpack_packer *pk, const bd_config *c) {
    msgpack_pack_map(pk, 17);
    bd_pack_kv_str(pk, "arch", c->arch);
    bd_pack_kv_int(pk, "dim", c->dim);
    bd_pack_kv_int(pk, "n_layers", c->n_layers);
    bd_pack_kv_int(pk, "n_heads", c->n_heads);
    bd_pack_kv_int(pk, "n_kv_heads", c->n_kv_heads);
    bd_pack_kv_int(pk, "head_dim", c->head_dim);
    bd_pack_kv_int(pk, "ffn_dim", c->ffn_dim);
    bd_pack_kv_int(pk, "vocab", c->vocab);
    bd_pack_kv_int(pk, "max_seq", c->max_seq);
    bd_pack_kv_double(pk, "norm_eps", c->norm_eps);
    bd_pack_kv_double(pk, "rope_theta", c->rope_theta);
    bd_pack_kv_str(pk, "rope", "interleaved");
    bd_pack_str(pk, "tied_embeddings");
    msgpack_pack_true(pk);
    bd_pack_str(pk, "qkv_bias");
    msgpack_pack_false(pk);
    bd_pack_str(pk, "qk_norm");
    msgpack_pack_false(pk);
    bd_pack_kv_int(pk, "bos", 1);
    bd_pack_kv_int(pk, "eos", 2);
}

// Hand-written bd.model streams. mode: 0 valid with wq split in two slices, 1 duplicate
// tensor, 2 missing tensor, 3 wrong shape, 4 NaN, 5 unknown name, 6 i32 dtype.
static void write_bd_by_hand(const char *path, const bd_model *m, int mode) {
    int rc;
    bd_writer *w = bd_writer_open(path, 0, &rc);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.model", NULL, 2), BD_OK);
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_str(pk, "config");
    pack_cfg(pk, &m->cfg);
    bd_pack_str(pk, "quant");
    msgpack_pack_nil(pk);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&m->cfg, t, NULL);
    float *nanbuf = NULL;
    for (int k = 0; k < nt; k++) {
        int64_t shape[3] = {t[k].shape[0], t[k].shape[1], t[k].shape[2]};
        const float *data = m->params + t[k].offset;
        if (mode == 2 && !strcmp(t[k].name, "w2")) continue;
        if (mode == 0 && !strcmp(t[k].name, "wq")) {  // two slices along the layer axis
            size_t per = t[k].numel / (size_t)shape[0];
            for (int s = 0; s < 2; s++) {
                int64_t sh[3] = {1, shape[1], shape[2]};
                msgpack_pack_map(pk, 5);
                bd_pack_kv_str(pk, "name", "wq");
                bd_pack_kv_str(pk, "dtype", "f32");
                bd_pack_str(pk, "shape");
                msgpack_pack_array(pk, 3);
                for (int d = 0; d < 3; d++) msgpack_pack_int64(pk, sh[d]);
                bd_pack_str(pk, "data");
                msgpack_pack_bin(pk, per * 4);
                msgpack_pack_bin_body(pk, data + (size_t)s * per, per * 4);
                bd_pack_kv_int(pk, "start", s);
                ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
            }
            continue;
        }
        if (mode == 3 && !strcmp(t[k].name, "w1")) {
            shape[1] = t[k].shape[2];
            shape[2] = t[k].shape[1];
        }
        if (mode == 4 && !strcmp(t[k].name, "wv")) {
            nanbuf = malloc(t[k].numel * 4);
            memcpy(nanbuf, data, t[k].numel * 4);
            nanbuf[37] = NAN;
            data = nanbuf;
        }
        const char *name = mode == 5 && !strcmp(t[k].name, "w3") ? "w4" : t[k].name;
        bd_pack_tensor(pk, name, mode == 6 && !strcmp(t[k].name, "wo") ? BD_I32 : BD_F32, t[k].ndim, shape, data);
        ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
        if (mode == 1 && !strcmp(t[k].name, "rms_ffn")) {
            bd_pack_tensor(pk, name, BD_F32, t[k].ndim, shape, data);
            ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
        }
    }
    free(nanbuf);
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
}

START_TEST(test_bd_by_hand) {
    bd_config c = tiny_cfg(true);
    bd_model m, r;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m, 11, false);
    const char *p = tmp("hand.bdz");
    write_bd_by_hand(p, &m, 0);
    ck_assert_msg(bd_model_load(p, &r, why, sizeof why) == BD_OK, "%s", why);
    assert_same_params(&m, &r);
    bd_model_free(&r);
    write_bd_by_hand(p, &m, 1);
    expect_fail(p, BD_ERR_SCHEMA, "rms_ffn", "twice");
    write_bd_by_hand(p, &m, 2);
    expect_fail(p, BD_ERR_SCHEMA, "w2", "missing");
    write_bd_by_hand(p, &m, 3);
    expect_fail(p, BD_ERR_SHAPE, "w1", "[2, 16, 24]");
    write_bd_by_hand(p, &m, 4);
    expect_fail(p, BD_ERR_VALUE, "wv", "element 37 is NaN");
    write_bd_by_hand(p, &m, 5);
    expect_fail(p, BD_ERR_SCHEMA, "\"w4\"", "hand.bdz");
    write_bd_by_hand(p, &m, 6);
    expect_fail(p, BD_ERR_SHAPE, "wo", "i32");
    bd_model_free(&m);
}
END_TEST

START_TEST(test_bd_truncated) {
    bd_config c = tiny_cfg(false);
    bd_model m;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m, 5, false);
    const char *p = tmp("trunc.bdz"), *q = tmp("trunc_cut.bdz");
    ck_assert_int_eq(bd_model_save(&m, p, NULL, BD_F32, why, sizeof why), BD_OK);
    size_t n;
    unsigned char *b = read_all(p, &n);
    size_t cuts[] = {5, 40, n / 3, n / 2, n - 30, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(q, b, cuts[i]);
        bd_model r;
        int rc = bd_model_load(q, &r, why, sizeof why);
        ck_assert_msg(rc == BD_ERR_TRUNCATED || rc == BD_ERR_CORRUPT, "cut at %zu: rc %d (%s)", cuts[i], rc, why);
        ck_assert_ptr_null(r.params);
        ck_assert(strstr(why, "trunc_cut.bdz"));
    }
    free(b);
    // Not a model stream: another schema.
    int rc;
    bd_writer *w = bd_writer_open(q, 0, &rc);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.tokens", NULL, 0), BD_OK);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
    expect_fail(q, BD_ERR_SCHEMA, "bd.model", "trunc_cut.bdz");
    // Saving a NaN is refused; so is a value that overflows f16.
    m.w.w3[3] = NAN;
    ck_assert_int_eq(bd_model_save(&m, p, NULL, BD_F32, why, sizeof why), BD_ERR_VALUE);
    m.w.w3[3] = 70000.0f;
    ck_assert_int_eq(bd_model_save(&m, p, NULL, BD_F16, why, sizeof why), BD_ERR_VALUE);
    ck_assert(strstr(why, "w3"));
    bd_model_free(&m);
}
END_TEST

// ---- llama2.c files written by hand ---------------------------------------------------------

static void put_i32(FILE *f, int32_t v) { ck_assert_uint_eq(fwrite(&v, 4, 1, f), 1); }
static void put_f32s(FILE *f, const float *p, size_t n) { ck_assert_uint_eq(fwrite(p, 4, n, f), n); }

static void ak42_header(FILE *f, int version, const bd_config *c, int group) {
    put_i32(f, 0x616b3432);
    put_i32(f, version);
    int32_t h[7] = {c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab, c->max_seq};
    for (int i = 0; i < 7; i++) put_i32(f, h[i]);
    fputc(c->tied_embeddings ? 1 : 0, f);
    if (version == 2) put_i32(f, group);
    while (ftell(f) < 256) fputc(0, f);
}

// Writes m as llama2.c v1 (export.py version1_export order).
static void write_v1(const char *path, const bd_model *m) {
    const bd_config *c = &m->cfg;
    size_t L = (size_t)c->n_layers, C = (size_t)c->dim, F = (size_t)c->ffn_dim,
           KD = (size_t)(c->n_kv_heads * c->head_dim);
    FILE *f = fopen(path, "wb");
    ak42_header(f, 1, c, 0);
    put_f32s(f, m->w.rms_att, L * C);
    put_f32s(f, m->w.rms_ffn, L * C);
    put_f32s(f, m->w.rms_final, C);
    put_f32s(f, m->w.tok_emb, (size_t)c->vocab * C);
    put_f32s(f, m->w.wq, L * C * C);
    put_f32s(f, m->w.wk, L * KD * C);
    put_f32s(f, m->w.wv, L * KD * C);
    put_f32s(f, m->w.wo, L * C * C);
    put_f32s(f, m->w.w1, L * F * C);
    put_f32s(f, m->w.w2, L * C * F);
    put_f32s(f, m->w.w3, L * F * C);
    if (!c->tied_embeddings) put_f32s(f, m->w.wcls, (size_t)c->vocab * C);
    ck_assert_int_eq(fclose(f), 0);
}

// Q8_0 as export.py: per group scale = max|w| / 127, q = round(w / scale); writes q then
// the scales, and stores the dequantized values q * scale into expect.
static void put_q8(FILE *f, const float *w, size_t n, int gs, float *expect) {
    signed char *q = malloc(n);
    float *s = malloc(n / (size_t)gs * 4);
    for (size_t g = 0; g < n / (size_t)gs; g++) {
        float mx = 0;
        for (int k = 0; k < gs; k++) mx = fmaxf(mx, fabsf(w[g * (size_t)gs + (size_t)k]));
        s[g] = mx / 127.0f;
        for (int k = 0; k < gs; k++) {
            size_t i = g * (size_t)gs + (size_t)k;
            q[i] = (signed char)lrintf(w[i] / s[g]);
            expect[i] = (float)q[i] * s[g];
        }
    }
    ck_assert_uint_eq(fwrite(q, 1, n, f), n);
    put_f32s(f, s, n / (size_t)gs);
    free(q);
    free(s);
}

// Writes m as llama2.c v2 (export.py version2_export); exp receives the dequantized model.
static void write_v2(const char *path, const bd_model *m, int gs, bd_model *exp) {
    const bd_config *c = &m->cfg;
    size_t L = (size_t)c->n_layers, C = (size_t)c->dim;
    ck_assert_int_eq(bd_model_alloc(exp, c), BD_OK);
    memcpy(exp->params, m->params, m->n_params * 4);
    FILE *f = fopen(path, "wb");
    ak42_header(f, 2, c, gs);
    put_f32s(f, m->w.rms_att, L * C);
    put_f32s(f, m->w.rms_ffn, L * C);
    put_f32s(f, m->w.rms_final, C);
    put_q8(f, m->w.tok_emb, (size_t)c->vocab * C, gs, exp->w.tok_emb);
    const float *src[7] = {m->w.wq, m->w.wk, m->w.wv, m->w.wo, m->w.w1, m->w.w2, m->w.w3};
    float *dst[7] = {exp->w.wq, exp->w.wk, exp->w.wv, exp->w.wo, exp->w.w1, exp->w.w2, exp->w.w3};
    size_t KD = (size_t)(c->n_kv_heads * c->head_dim), F = (size_t)c->ffn_dim;
    size_t per[7] = {C * C, KD * C, KD * C, C * C, F * C, C * F, F * C};
    for (int k = 0; k < 7; k++)
        for (size_t l = 0; l < L; l++) put_q8(f, src[k] + l * per[k], per[k], gs, dst[k] + l * per[k]);
    if (!c->tied_embeddings) put_q8(f, m->w.wcls, (size_t)c->vocab * C, gs, exp->w.wcls);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_llama2c_v1) {
    for (int tied = 0; tied < 2; tied++) {
        bd_config c = tiny_cfg(tied);
        bd_model m, r;
        ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
        fill(&m, 100 + (uint64_t)tied, false);
        const char *p = tmp("v1.bin");
        write_v1(p, &m);
        ck_assert_int_eq(bd_model_sniff(p, why, sizeof why), BD_MODEL_FMT_LLAMA2C_V1);
        ck_assert_msg(bd_model_load(p, &r, why, sizeof why) == BD_OK, "%s", why);
        assert_same_config(&m.cfg, &r.cfg);
        ck_assert_int_eq(r.cfg.rope, BD_ROPE_INTERLEAVED);
        assert_same_params(&m, &r);
        bd_model_free(&r);
        bd_model_free(&m);
    }
}
END_TEST

START_TEST(test_llama2c_v2) {
    bd_config c = tiny_cfg(false);
    bd_model m, r, exp;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m, 42, false);
    const char *p = tmp("v2.bin");
    write_v2(p, &m, 8, &exp);
    ck_assert_int_eq(bd_model_sniff(p, why, sizeof why), BD_MODEL_FMT_LLAMA2C_V2);
    ck_assert_msg(bd_model_load(p, &r, why, sizeof why) == BD_OK, "%s", why);
    assert_same_config(&m.cfg, &r.cfg);
    for (size_t i = 0; i < m.n_params; i++) {
        ck_assert_close(r.params[i], exp.params[i], 1e-7);
        ck_assert_close(r.params[i], m.params[i], 1.0 / 254 + 1e-6);  // Q8_0 error <= scale / 2
    }
    bd_model_free(&r);
    // A group size that does not divide the tensors, and an unknown version.
    FILE *f = fopen(p, "r+b");
    fseek(f, 37, SEEK_SET);
    put_i32(f, 7);
    fclose(f);
    expect_fail(p, BD_ERR_MALFORMED, "group size 7", "v2.bin");
    f = fopen(p, "r+b");
    fseek(f, 4, SEEK_SET);
    put_i32(f, 3);
    fclose(f);
    expect_fail(p, BD_ERR_VERSION, "version 3", "v2.bin");
    bd_model_free(&exp);
    bd_model_free(&m);
}
END_TEST

START_TEST(test_llama2c_v0_untied) {
    bd_config c = tiny_cfg(false);
    bd_model m, r;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m, 9, false);
    const char *p = tmp("v0.bin");
    FILE *f = fopen(p, "wb");
    int32_t h[7] = {c.dim, c.ffn_dim, c.n_layers, c.n_heads, c.n_kv_heads, -c.vocab, c.max_seq};
    for (int i = 0; i < 7; i++) put_i32(f, h[i]);
    // The bd table order up to rms_final is the v0 order; then freq_cis, then wcls.
    size_t before_cls = (size_t)(m.w.wcls - m.params);
    put_f32s(f, m.params, before_cls);
    for (size_t i = 0; i < (size_t)(c.max_seq * c.head_dim); i++) {
        float z = 99.0f;
        put_f32s(f, &z, 1);
    }
    put_f32s(f, m.w.wcls, (size_t)(c.vocab * c.dim));
    fclose(f);
    ck_assert_msg(bd_model_load(p, &r, why, sizeof why) == BD_OK, "%s", why);
    ck_assert(!r.cfg.tied_embeddings);
    ck_assert_int_eq(r.cfg.vocab, 40);
    assert_same_params(&m, &r);
    bd_model_free(&r);
    bd_model_free(&m);
}
END_TEST

static void copy_truncated(const char *dst, const unsigned char *b, size_t n) { write_bytes(dst, b, n); }

START_TEST(test_llama2c_corrupt) {
    size_t n;
    unsigned char *b = read_all(stories(), &n);
    const char *p = tmp("bad260K.bin");
    // Cut at several offsets: header, first tensor, a middle tensor, the freq tables.
    struct {
        size_t cut;
        const char *tensor;
    } cuts[] = {{0, NULL},          {10, NULL},        {27, NULL},
                {28, "tok_emb"},    {1000, "tok_emb"}, {28 + 4 * (32768 + 320 + 20480 + 100), "wk"},
                {n - 1, "freq_cis"}};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        copy_truncated(p, b, cuts[i].cut);
        expect_fail(p, BD_ERR_TRUNCATED, "bad260K.bin", cuts[i].tensor);
    }
    // One byte too many: the header does not describe this file.
    unsigned char *big = malloc(n + 1);
    memcpy(big, b, n);
    big[n] = 0;
    write_bytes(p, big, n + 1);
    expect_fail(p, BD_ERR_SHAPE, "bad260K.bin", "1 extra");
    free(big);
    // Absurd header: negative layer count; heads that do not divide dim.
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    int32_t v = -5;
    memcpy(c + 8, &v, 4);
    write_bytes(p, c, n);
    expect_fail(p, BD_ERR_MALFORMED, "bad260K.bin", "layers -5");
    memcpy(c, b, n);
    v = 7;
    memcpy(c + 12, &v, 4);
    write_bytes(p, c, n);
    expect_fail(p, BD_ERR_MALFORMED, "bad260K.bin", "heads 7");
    // A NaN weight in wq of layer 1 (element 5 of that layer).
    memcpy(c, b, n);
    float nanv = NAN;
    memcpy(c + 28 + 4 * (32768 + 320 + 4096 + 5), &nanv, 4);
    write_bytes(p, c, n);
    expect_fail(p, BD_ERR_VALUE, "wq (layer 1): element 5 is NaN", "bad260K.bin");
    free(c);
    free(b);
    expect_fail(tmp("does_not_exist.bin"), BD_ERR_IO, "does_not_exist", NULL);
}
END_TEST

// ---- RoPE permutation -----------------------------------------------------------------------

START_TEST(test_rope_permutation) {
    // Worked by hand: 2 heads of 4 rows; llama2.c pairs (0,1),(2,3) become HF (0,2),(1,3).
    float src[8] = {0, 1, 2, 3, 4, 5, 6, 7}, dst[8], back[8];
    float want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    bd_rope_permute_rows(dst, src, 2, 4, 1, BD_ROPE_HALF);
    for (int i = 0; i < 8; i++) ck_assert(dst[i] == want[i]);
    bd_rope_permute_rows(back, dst, 2, 4, 1, BD_ROPE_INTERLEAVED);
    for (int i = 0; i < 8; i++) ck_assert(back[i] == src[i]);
    // One head of 6: rows 0,2,4 then 1,3,5; with 2 columns each row moves whole.
    float s6[12], d6[12];
    for (int i = 0; i < 12; i++) s6[i] = (float)i;
    float w6[12] = {0, 1, 4, 5, 8, 9, 2, 3, 6, 7, 10, 11};
    bd_rope_permute_rows(d6, s6, 1, 6, 2, BD_ROPE_HALF);
    for (int i = 0; i < 12; i++) ck_assert(d6[i] == w6[i]);
}
END_TEST

// ---- Hugging Face ---------------------------------------------------------------------------

START_TEST(test_hf_export_stories) {
    bd_model m, r;
    ck_assert_msg(bd_model_load(stories(), &m, why, sizeof why) == BD_OK, "%s", why);
    const char *dir = tmp("hf260K");
    ck_assert_msg(bd_model_save_hf(&m, dir, BD_F32, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(bd_model_sniff(dir, why, sizeof why), BD_MODEL_FMT_HF);
    ck_assert_msg(bd_model_load(dir, &r, why, sizeof why) == BD_OK, "%s", why);
    assert_same_config(&m.cfg, &r.cfg);
    ck_assert_int_eq(r.cfg.rope, BD_ROPE_HALF);
    ck_assert_int_eq(r.cfg.bos, 1);
    ck_assert_int_eq(r.cfg.eos, 2);
    // wq/wk rows: HF row h*HS+j = llama2.c row h*HS+2j, HF row h*HS+HS/2+j = row h*HS+2j+1.
    const int C = 64, HS = 8, L = 5;
    struct {
        const float *a, *b;
        int heads;
    } pw[2] = {{m.w.wq, r.w.wq, 8}, {m.w.wk, r.w.wk, 4}};
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < pw[k].heads; h++)
                for (int j = 0; j < HS; j++) {
                    int il = j < HS / 2 ? 2 * j : 2 * (j - HS / 2) + 1;
                    size_t base = (size_t)l * pw[k].heads * HS * C;
                    ck_assert(memcmp(pw[k].b + base + (size_t)(h * HS + j) * C,
                                     pw[k].a + base + (size_t)(h * HS + il) * C, C * 4) == 0);
                }
    // Everything else unchanged.
    size_t wq_off = (size_t)(m.w.wq - m.params), wv_off = (size_t)(m.w.wv - m.params);
    ck_assert(memcmp(m.params, r.params, wq_off * 4) == 0);
    ck_assert(memcmp(m.params + wv_off, r.params + wv_off, (m.n_params - wv_off) * 4) == 0);
    // Converting back restores the llama2.c layout exactly.
    ck_assert_int_eq(bd_model_convert_rope(&r, BD_ROPE_INTERLEAVED), BD_OK);
    ck_assert_int_eq(r.cfg.rope, BD_ROPE_INTERLEAVED);
    assert_same_params(&m, &r);
    // config.json carries the facts HF needs.
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t n;
    char *text = (char *)read_all(path, &n);
    text[n] = 0;
    cJSON *j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "architectures"), 0)->valuestring, "LlamaForCausalLM");
    ck_assert_int_eq(cJSON_GetObjectItem(j, "num_key_value_heads")->valueint, 4);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "tie_word_embeddings")));
    ck_assert(cJSON_GetObjectItem(j, "rms_norm_eps")->valuedouble == 1e-5);
    cJSON_Delete(j);
    free(text);
    // Loading through a file of the directory works too.
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    bd_model r2;
    ck_assert_msg(bd_model_load(path, &r2, why, sizeof why) == BD_OK, "%s", why);
    bd_model_free(&r2);
    bd_model_free(&r);
    bd_model_free(&m);
}
END_TEST

// The test's own HF naming of m's tensors, as safetensors write entries (data in dtype).
typedef struct {
    bd_st_write_tensor t[256];
    char names[256][96];
    void *bufs[256];
    int n;
} hf_list;

static void hf_add(hf_list *h, const char *name, const float *src, int ndim, int64_t d0, int64_t d1, bd_dtype dt) {
    bd_st_write_tensor *t = &h->t[h->n];
    snprintf(h->names[h->n], 96, "%s", name);
    size_t n = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
    void *buf = malloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        uint32_t u;
        memcpy(&u, &v, 4);
        if (dt == BD_F32)
            ((float *)buf)[i] = v;
        else if (dt == BD_BF16)
            ((uint16_t *)buf)[i] = (uint16_t)(u >> 16);  // exact for k/64 values
        else {  // f16 of k/64 (|k| <= 64): sign, exponent, 10-bit mantissa, all exact
            uint16_t s = v < 0 ? 0x8000 : 0;
            float a = fabsf(v);
            if (a == 0)
                ((uint16_t *)buf)[i] = s;
            else {
                int e;
                float fr = frexpf(a, &e);  // a = fr * 2^e, fr in [0.5, 1)
                ((uint16_t *)buf)[i] =
                        (uint16_t)(s | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)lrintf((fr * 2 - 1) * 1024));
            }
        }
    }
    *t = (bd_st_write_tensor){h->names[h->n], dt, ndim, {d0, ndim > 1 ? d1 : 0}, buf};
    h->bufs[h->n++] = buf;
}

static void hf_list_model(hf_list *h, const bd_model *m, bd_dtype dt) {
    const bd_config *c = &m->cfg;
    int64_t C = c->dim, F = c->ffn_dim, QD = (int64_t)c->n_heads * c->head_dim,
            KD = (int64_t)c->n_kv_heads * c->head_dim, HS = c->head_dim;
    char nm[96];
    memset(h, 0, sizeof *h);
    hf_add(h, "model.embed_tokens.weight", m->w.tok_emb, 2, c->vocab, C, dt);
    for (int l = 0; l < c->n_layers; l++) {
#define L2(suffix, ptr, a, b)                                                \
    do {                                                                     \
        snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);            \
        hf_add(h, nm, (ptr) + (size_t)l * (size_t)((a) * (b)), 2, a, b, dt); \
    } while (0)
#define L1(suffix, ptr, a)                                           \
    do {                                                             \
        snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);    \
        hf_add(h, nm, (ptr) + (size_t)l * (size_t)(a), 1, a, 0, dt); \
    } while (0)
        L1("input_layernorm.weight", m->w.rms_att, C);
        L2("self_attn.q_proj.weight", m->w.wq, QD, C);
        L2("self_attn.k_proj.weight", m->w.wk, KD, C);
        L2("self_attn.v_proj.weight", m->w.wv, KD, C);
        L2("self_attn.o_proj.weight", m->w.wo, C, QD);
        if (c->qkv_bias) {
            L1("self_attn.q_proj.bias", m->w.bq, QD);
            L1("self_attn.k_proj.bias", m->w.bk, KD);
            L1("self_attn.v_proj.bias", m->w.bv, KD);
        }
        if (c->qk_norm) {
            L1("self_attn.q_norm.weight", m->w.q_norm, HS);
            L1("self_attn.k_norm.weight", m->w.k_norm, HS);
        }
        L1("post_attention_layernorm.weight", m->w.rms_ffn, C);
        L2("mlp.gate_proj.weight", m->w.w1, F, C);
        L2("mlp.down_proj.weight", m->w.w2, C, F);
        L2("mlp.up_proj.weight", m->w.w3, F, C);
#undef L1
#undef L2
    }
    hf_add(h, "model.norm.weight", m->w.rms_final, 1, C, 0, dt);
    if (!c->tied_embeddings) hf_add(h, "lm_head.weight", m->w.wcls, 2, c->vocab, C, dt);
}

static void hf_list_free(hf_list *h) {
    for (int i = 0; i < h->n; i++) free(h->bufs[i]);
}

static void write_config_json(const char *dir, const bd_config *c, const char *type, int ffn_override,
                              const char *extra) {
    char path[4200], text[2048];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(
            text, sizeof text,
            "{\"architectures\": [\"X\"], \"model_type\": \"%s\", \"hidden_size\": %d, \"intermediate_size\": %d,\n"
            " \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d,\n"
            " \"vocab_size\": %d, \"max_position_embeddings\": %d, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0,\n"
            " \"tie_word_embeddings\": %s, \"bos_token_id\": 151643, \"eos_token_id\": [151645, 151643], \"hidden_act\": \"silu\"%s}\n",
            type, c->dim, ffn_override ? ffn_override : c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
            c->vocab, c->max_seq, c->tied_embeddings ? "true" : "false", extra ? extra : "");
    write_text(path, text);
}

static const char *mkdir_tmp(const char *name) {
    const char *d = tmp(name);
    mkdir(d, 0777);
    return d;
}

START_TEST(test_hf_sharded_qwen2) {
    // Qwen2-style: qkv bias, untied, GQA; two shards and an index, written by hand.
    bd_config c = tiny_cfg(false);
    c.qkv_bias = true;
    bd_model m, r;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m, 21, false);
    const char *dir = mkdir_tmp("qwen2_sharded");
    write_config_json(dir, &c, "qwen2", 0, NULL);
    hf_list h;
    hf_list_model(&h, &m, BD_F32);
    int half = h.n / 2;
    char p1[4200], p2[4200], idx[4200], json[16384];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    ck_assert_int_eq(bd_safetensors_write(p1, h.t, half, NULL, 0, why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_safetensors_write(p2, h.t + half, h.n - half, NULL, 0, why, sizeof why), BD_OK);
    size_t off = (size_t)snprintf(json, sizeof json, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < h.n; i++)
        off += (size_t)snprintf(json + off, sizeof json - off, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                                i ? ", " : "", h.names[i], i < half ? 1 : 2);
    snprintf(json + off, sizeof json - off, "}}\n");
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    write_text(idx, json);
    ck_assert_msg(bd_model_load(dir, &r, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_str_eq(r.cfg.arch, "qwen2");
    ck_assert(r.cfg.qkv_bias && !r.cfg.qk_norm && !r.cfg.tied_embeddings);
    ck_assert_int_eq(r.cfg.rope, BD_ROPE_HALF);
    ck_assert(r.cfg.norm_eps == 1e-6f && r.cfg.rope_theta == 1e6f);
    ck_assert_int_eq(r.cfg.bos, 151643);
    ck_assert_int_eq(r.cfg.eos, 151645);
    assert_same_params(&m, &r);
    bd_model_free(&r);
    // A shard listed by the index is missing: the load fails naming it.
    unlink(p2);
    expect_fail(dir, BD_ERR_IO, "model-00002-of-00002.safetensors", NULL);
    hf_list_free(&h);
    bd_model_free(&m);
}
END_TEST

START_TEST(test_hf_qwen3_halfprec) {
    // Qwen3-style: q/k norm, head_dim from config (NH*HS != C), tied; BF16 and F16 files
    // found by listing the directory (no index).
    for (int k = 0; k < 2; k++) {
        bd_dtype dt = k ? BD_F16 : BD_BF16;
        bd_config c = tiny_cfg(true);
        c.qk_norm = true;
        c.head_dim = 6;
        bd_model m, r;
        ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
        fill(&m, 31 + (uint64_t)k, true);
        const char *dir = mkdir_tmp(k ? "qwen3_f16" : "qwen3_bf16");
        write_config_json(dir, &c, "qwen3", 0, NULL);
        hf_list h;
        hf_list_model(&h, &m, dt);
        char p[4200];
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        ck_assert_int_eq(bd_safetensors_write(p, h.t, h.n, NULL, 0, why, sizeof why), BD_OK);
        ck_assert_msg(bd_model_load(dir, &r, why, sizeof why) == BD_OK, "%s", why);
        ck_assert(r.cfg.qk_norm && !r.cfg.qkv_bias && r.cfg.tied_embeddings);
        ck_assert_int_eq(r.cfg.head_dim, 6);
        assert_same_params(&m, &r);
        bd_model_free(&r);
        // Export and reload (f32, HF layout already: no permutation).
        const char *dir2 = tmp(k ? "qwen3_f16_out" : "qwen3_bf16_out");
        ck_assert_int_eq(bd_model_load(dir, &r, why, sizeof why), BD_OK);
        ck_assert_msg(bd_model_save_hf(&r, dir2, BD_F32, why, sizeof why) == BD_OK, "%s", why);
        bd_model r2;
        ck_assert_msg(bd_model_load(dir2, &r2, why, sizeof why) == BD_OK, "%s", why);
        ck_assert_str_eq(r2.cfg.arch, "qwen3");
        assert_same_params(&m, &r2);
        bd_model_free(&r2);
        bd_model_free(&r);
        hf_list_free(&h);
        bd_model_free(&m);
    }
}
END_TEST

START_TEST(test_hf_interleaved_qk_norm_export) {
    // An interleaved model with q/k norm and biases exported to HF: the vectors follow the
    // row permutation, so converting back gives the original.
    bd_config c = tiny_cfg(false);
    c.qk_norm = true;
    bd_model m, r;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m, 77, false);
    const char *dir = tmp("il_qknorm");
    ck_assert_msg(bd_model_save_hf(&m, dir, BD_F32, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load(dir, &r, why, sizeof why) == BD_OK, "%s", why);
    ck_assert(r.w.q_norm[1] == m.w.q_norm[2] && r.w.q_norm[2] == m.w.q_norm[1]);  // HS = 4: rows 0,2,1,3
    ck_assert_int_eq(bd_model_convert_rope(&r, BD_ROPE_INTERLEAVED), BD_OK);
    assert_same_params(&m, &r);
    bd_model_free(&r);
    bd_model_free(&m);
}
END_TEST

START_TEST(test_hf_corrupt) {
    bd_config c = tiny_cfg(true);
    bd_model m;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m, 3, false);
    const char *dir = mkdir_tmp("hf_bad");
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    hf_list h;
    hf_list_model(&h, &m, BD_F32);
    ck_assert_int_eq(bd_safetensors_write(p, h.t, h.n, NULL, 0, why, sizeof why), BD_OK);
    // config.json disagrees with the tensors' shapes.
    write_config_json(dir, &c, "llama", 30, NULL);
    expect_fail(dir, BD_ERR_SHAPE, "model.layers.0.mlp.gate_proj.weight", "[24, 16]");
    // Untied by config, but there is no lm_head.weight.
    c.tied_embeddings = false;
    write_config_json(dir, &c, "llama", 0, NULL);
    expect_fail(dir, BD_ERR_SCHEMA, "lm_head.weight", "missing");
    c.tied_embeddings = true;
    write_config_json(dir, &c, "llama", 0, ", \"rope_scaling\": {\"type\": \"llama3\"}");
    expect_fail(dir, BD_ERR_SCHEMA, "rope_scaling", "config.json");
    write_config_json(dir, &c, "llama", 0, NULL);
    bd_model r;
    ck_assert_msg(bd_model_load(dir, &r, why, sizeof why) == BD_OK, "%s", why);
    bd_model_free(&r);
    // Fewer layers in the config than in the file: unexpected tensors.
    c.n_layers = 1;
    write_config_json(dir, &c, "llama", 0, NULL);
    expect_fail(dir, BD_ERR_SCHEMA, "model.layers.1.", "unexpected");
    c.n_layers = 2;
    write_config_json(dir, &c, "mistral", 0, NULL);
    expect_fail(dir, BD_ERR_SCHEMA, "mistral", NULL);
    write_config_json(dir, &c, "llama", 0, NULL);
    // A NaN in one weight.
    float *q = (float *)h.t[3].data;  // model.layers.0.self_attn.k_proj.weight
    ck_assert_str_eq(h.t[3].name, "model.layers.0.self_attn.k_proj.weight");
    float keep = q[17];
    q[17] = NAN;
    ck_assert_int_eq(bd_safetensors_write(p, h.t, h.n, NULL, 0, why, sizeof why), BD_OK);
    expect_fail(dir, BD_ERR_VALUE, "model.layers.0.self_attn.k_proj.weight", "element 17 is NaN");
    q[17] = keep;
    // A weight stored as I32.
    h.t[4].dtype = BD_I32;
    ck_assert_int_eq(bd_safetensors_write(p, h.t, h.n, NULL, 0, why, sizeof why), BD_OK);
    expect_fail(dir, BD_ERR_SHAPE, "self_attn.v_proj.weight", "I32");
    h.t[4].dtype = BD_F32;
    // A missing tensor.
    ck_assert_int_eq(bd_safetensors_write(p, h.t, h.n - 1, NULL, 0, why, sizeof why), BD_OK);
    expect_fail(dir, BD_ERR_SCHEMA, "model.norm.weight", "missing");
    // Truncated safetensors file.
    ck_assert_int_eq(bd_safetensors_write(p, h.t, h.n, NULL, 0, why, sizeof why), BD_OK);
    size_t n;
    unsigned char *b = read_all(p, &n);
    size_t cuts[] = {0, 7, 20, n - 1};
    for (size_t i = 0; i < 4; i++) {
        write_bytes(p, b, cuts[i]);
        expect_fail(dir, BD_ERR_TRUNCATED, "model.safetensors", NULL);
    }
    free(b);
    // No weights at all.
    unlink(p);
    expect_fail(dir, BD_ERR_SCHEMA, "no *.safetensors", NULL);
    // No config.json.
    char cp[4200];
    snprintf(cp, sizeof cp, "%s/config.json", dir);
    unlink(cp);
    expect_fail(dir, BD_ERR_SCHEMA, "config.json", NULL);
    hf_list_free(&h);
    bd_model_free(&m);
}
END_TEST

// ---- safetensors by hand --------------------------------------------------------------------

static void write_st_raw(const char *path, const char *json, const void *data, size_t nd) {
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(json);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(json, 1, n, f);
    fwrite(data, 1, nd, f);
    fclose(f);
}

START_TEST(test_safetensors_by_hand) {
    const char *p = tmp("hand.safetensors");
    // b: bf16 [1.0, -2.0] = 0x3f80, 0xc000; a: f32 [2] = 0.5, 3.0
    unsigned char data[12] = {0x80, 0x3f, 0x00, 0xc0, 0, 0, 0, 0x3f, 0, 0, 0x40, 0x40};
    write_st_raw(
            p,
            "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[4,12]}}",
            data, sizeof data);
    bd_safetensors st;
    ck_assert_msg(bd_safetensors_open(&st, p, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(st.n, 2);
    ck_assert_str_eq(bd_safetensors_meta(&st, "format"), "pt");
    const bd_st_tensor *a = bd_safetensors_find(&st, "a"), *b = bd_safetensors_find(&st, "b");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_null(bd_safetensors_find(&st, "c"));
    ck_assert_int_eq(a->ndim, 2);
    ck_assert_int_eq(a->shape[1], 2);
    float v[2];
    ck_assert_int_eq(bd_safetensors_read_f32(&st, a, v, why, sizeof why), BD_OK);
    ck_assert(v[0] == 0.5f && v[1] == 3.0f);
    ck_assert_int_eq(bd_safetensors_read_f32(&st, b, v, why, sizeof why), BD_OK);
    ck_assert(v[0] == 1.0f && v[1] == -2.0f);
    bd_safetensors_close(&st);
    // Overlapping tensors, offsets past the end, byte count != shape x dtype, bad JSON.
    struct {
        const char *json;
        int code;
        const char *word;
    } bad[] = {
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             BD_ERR_MALFORMED, "overlap"},
            // an empty tensor between two overlapping ones must not hide the overlap
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]}}",
             BD_ERR_MALFORMED, "overlap"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", BD_ERR_TRUNCATED, "\"a\""},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", BD_ERR_SHAPE, "\"a\""},
            {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", BD_ERR_MALFORMED, "Q4"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", BD_ERR_MALFORMED, "shape"},
            {"{\"a\":", BD_ERR_MALFORMED, "JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_st_raw(p, bad[i].json, data, sizeof data);
        int rc = bd_safetensors_open(&st, p, why, sizeof why);
        ck_assert_msg(rc == bad[i].code, "case %zu: rc %d (%s)", i, rc, why);
        ck_assert_msg(strstr(why, bad[i].word) && strstr(why, "hand.safetensors"), "case %zu: %s", i, why);
    }
    // The writer's output, read back byte by byte: length, aligned JSON header, data.
    float fv[3] = {1.5f, -2.25f, 8.0f};
    bd_st_write_tensor wt = {"x", BD_F32, 1, {3}, fv};
    ck_assert_int_eq(bd_safetensors_write(p, &wt, 1, NULL, 0, why, sizeof why), BD_OK);
    size_t n;
    unsigned char *raw = read_all(p, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | raw[i];
    ck_assert_uint_eq(hl % 8, 0);
    ck_assert_uint_eq(n, 8 + hl + 12);
    char *hj = strndup((char *)raw + 8, hl);
    cJSON *j = cJSON_Parse(hj);
    ck_assert_ptr_nonnull(j);
    cJSON *x = cJSON_GetObjectItem(j, "x");
    ck_assert_str_eq(cJSON_GetObjectItem(x, "dtype")->valuestring, "F32");
    ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(x, "data_offsets"), 1)->valueint, 12);
    ck_assert(memcmp(raw + 8 + hl, fv, 12) == 0);
    cJSON_Delete(j);
    free(hj);
    free(raw);
}
END_TEST

START_TEST(test_unknown_format) {
    const char *p = tmp("junk.bin");
    write_text(p, "this is not a model at all, just some text here....");
    expect_fail(p, BD_ERR_MALFORMED, "junk.bin", "not a plausible model");
}
END_TEST

Suite *suite_model_io(void) {
    Suite *s = suite_create("model_io");
    TCase *tc = tcase_create("model_io");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stories_config);
    tcase_add_test(tc, test_gguf_is_named);
    tcase_add_test(tc, test_stories_weights);
    tcase_add_test(tc, test_bd_roundtrip);
    tcase_add_test(tc, test_bd_qwen_features);
    tcase_add_test(tc, test_bd_by_hand);
    tcase_add_test(tc, test_bd_truncated);
    tcase_add_test(tc, test_llama2c_v1);
    tcase_add_test(tc, test_llama2c_v2);
    tcase_add_test(tc, test_llama2c_v0_untied);
    tcase_add_test(tc, test_llama2c_corrupt);
    tcase_add_test(tc, test_rope_permutation);
    tcase_add_test(tc, test_hf_export_stories);
    tcase_add_test(tc, test_hf_sharded_qwen2);
    tcase_add_test(tc, test_hf_qwen3_halfprec);
    tcase_add_test(tc, test_hf_interleaved_qk_norm_export);
    tcase_add_test(tc, test_hf_corrupt);
    tcase_add_test(tc, test_safetensors_by_hand);
    tcase_add_test(tc, test_unknown_format);
    suite_add_tcase(s, tc);
    return s;
}
