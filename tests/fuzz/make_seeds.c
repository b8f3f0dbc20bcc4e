// Writes the seed corpus of every fuzz target into tests/fuzz/seeds/<target>/ (run by
// `make fuzz-seeds`; the output is committed). Seeds are valid files of each format, made
// by bd's own writers where bd has one, for a tiny model (C=16, L=2, V=32); the real files
// under BD_DATA are added when fuzzing and replayed by `make test` (never copied here).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "bd_ckpt.h"
#include "bd_dtype.h"
#include "bd_clipfile.h"
#include "bd_model_io.h"
#include "bd_packed.h"
#include "bd_safetensors.h"
#include "bd_samples.h"

static void die(const char *what) {
    fprintf(stderr, "make_seeds: %s\n", what);
    exit(1);
}

static const char *out_dir, *work_dir;

// work_dir/name (scratch files the writers make).
static const char *wpath(const char *name) {
    static char p[2][1024];
    static int k;
    k ^= 1;
    if ((size_t)snprintf(p[k], sizeof p[k], "%s/%s", work_dir, name) >= sizeof p[k]) die("path too long");
    return p[k];
}
static const uint8_t SEP[4] = {0, 'B', 'D', 0};


static char *path_of(const char *target, const char *name) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", out_dir, target);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", out_dir, target, name);
    return p;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) die(path);
    fclose(f);
    *n = (size_t)len;
    return b;
}

// Writes the concatenation of parts (separated by "\0BD\0") as target/name.
static void seed(const char *target, const char *name, int nparts, const uint8_t **part, const size_t *len) {
    FILE *f = fopen(path_of(target, name), "wb");
    if (!f) die(name);
    for (int i = 0; i < nparts; i++) {
        if (i) fwrite(SEP, 1, 4, f);
        fwrite(part[i], 1, len[i], f);
    }
    fclose(f);
}
static void seed1(const char *target, const char *name, const void *d, size_t n) {
    const uint8_t *p = d;
    seed(target, name, 1, &p, &n);
}

// The decompressed content of a bd stream file.
static uint8_t *content(const char *path, size_t *n) {
    size_t zn;
    uint8_t *z = slurp(path, &zn);
    unsigned long long cap = ZSTD_getFrameContentSize(z, zn);
    if (cap == ZSTD_CONTENTSIZE_ERROR) die("not zstd");
    if (cap == ZSTD_CONTENTSIZE_UNKNOWN) cap = zn * 64 + 65536;
    uint8_t *c = malloc(cap);
    size_t got = ZSTD_decompress(c, cap, z, zn);
    if (ZSTD_isError(got)) die("zstd");
    free(z);
    *n = got;
    return c;
}

static uint32_t rng = 12345;
static float rnd(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 16777216.0f - 0.5f;
}

static bd_config tiny(void) {
    bd_config c = {.arch = "llama",
                   .dim = 16,
                   .n_layers = 2,
                   .n_heads = 2,
                   .n_kv_heads = 1,
                   .head_dim = 8,
                   .ffn_dim = 24,
                   .vocab = 32,
                   .max_seq = 64,
                   .norm_eps = 1e-5f,
                   .rope_theta = 10000.0f,
                   .tied_embeddings = true,
                   .bos = 1,
                   .eos = 2};
    return c;
}

static void put_i32(uint8_t *p, int32_t v) { memcpy(p, &v, 4); }

static void llama2c_seeds(const bd_model *m) {
    const bd_config *c = &m->cfg;
    size_t nf = m->n_params, nfreq = (size_t)c->max_seq * (size_t)c->head_dim;
    int32_t h[7] = {c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab, c->max_seq};
    // v0: 28-byte header, weights, freq_cis tables.
    size_t n0 = 28 + 4 * (nf + nfreq);
    uint8_t *b = calloc(1, n0);
    memcpy(b, h, 28);
    for (size_t i = 0; i < nf + nfreq; i++) {
        float v = rnd();
        memcpy(b + 28 + 4 * i, &v, 4);
    }
    seed1("llama2c", "v0_tied.bin", b, n0);
    // v1 (ak42): 256-byte header with the shared flag, weights.
    size_t n1 = 256 + 4 * nf;
    uint8_t *b1 = calloc(1, n1);
    put_i32(b1, 0x616b3432);
    put_i32(b1 + 4, 1);
    memcpy(b1 + 8, h, 28);
    b1[36] = 1;
    memcpy(b1 + 256, b + 28, 4 * nf);
    seed1("llama2c", "v1_tied.bin", b1, n1);
    free(b);
    free(b1);
}

// GGUF: a hand-written llama file of m (metadata, tensor infos, 32-aligned data), tensors in
// f32 (norms, token_embd), f16 (attention) and bf16 (FFN); a second with an untied head.
typedef struct {
    uint8_t *b;
    size_t n;
} gg_buf;
static void gg_put(gg_buf *g, const void *p, size_t n) {
    g->b = realloc(g->b, g->n + n);
    if (!g->b) die("memory");
    memcpy(g->b + g->n, p, n);
    g->n += n;
}
static void gg_u32(gg_buf *g, uint32_t v) { gg_put(g, &v, 4); }
static void gg_u64(gg_buf *g, uint64_t v) { gg_put(g, &v, 8); }
static void gg_str(gg_buf *g, const char *s) {
    gg_u64(g, strlen(s));
    gg_put(g, s, strlen(s));
}
static void gg_kv_u32(gg_buf *g, const char *k, uint32_t v) {
    gg_str(g, k);
    gg_u32(g, 4);
    gg_u32(g, v);
}

static void gguf_seed(const bd_model *m, bool untied, const char *name) {
    const bd_config *c = &m->cfg;
    const bd_weights *w = &m->w;
    int C = c->dim, F = c->ffn_dim, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    struct {
        char name[48];
        int ne0, ne1;
        uint32_t type;
        const float *src;
    } t[64];
    int nt = 0;
#define T(nm, a, b, ty, p)                                                                                            \
    (snprintf(t[nt].name, sizeof t[nt].name, "%s", nm), t[nt].ne0 = a, t[nt].ne1 = b, t[nt].type = ty, t[nt].src = p, \
     nt++)
    char nm[48];
    T("token_embd.weight", C, c->vocab, 0, w->tok_emb);
    for (int l = 0; l < c->n_layers; l++) {
        static const char *const names[] = {"attn_norm", "attn_q",   "attn_k",   "attn_v", "attn_output",
                                            "ffn_norm",  "ffn_gate", "ffn_down", "ffn_up"};
        const float *src[] = {w->rms_att + l * C, w->wq + l * QD * C, w->wk + l * KD * C,
                              w->wv + l * KD * C, w->wo + l * C * QD, w->rms_ffn + l * C,
                              w->w1 + l * F * C,  w->w2 + l * C * F,  w->w3 + l * F * C};
        int shape[][2] = {{C, 1}, {C, QD}, {C, KD}, {C, KD}, {QD, C}, {C, 1}, {C, F}, {F, C}, {C, F}};
        uint32_t type[] = {0, 1, 1, 1, 1, 0, 30, 30, 30};
        for (int k = 0; k < 9; k++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, names[k]);
            T(nm, shape[k][0], shape[k][1], type[k], src[k]);
        }
    }
    T("output_norm.weight", C, 1, 0, w->rms_final);
    if (untied) T("output.weight", C, c->vocab, 1, w->tok_emb);
#undef T
    gg_buf g = {0};
    gg_put(&g, "GGUF", 4);
    gg_u32(&g, 3);
    gg_u64(&g, (uint64_t)nt);
    gg_u64(&g, 8);
    gg_str(&g, "general.architecture");
    gg_u32(&g, 8);
    gg_str(&g, "llama");
    gg_kv_u32(&g, "llama.context_length", (uint32_t)c->max_seq);
    gg_kv_u32(&g, "llama.embedding_length", (uint32_t)C);
    gg_kv_u32(&g, "llama.block_count", (uint32_t)c->n_layers);
    gg_kv_u32(&g, "llama.feed_forward_length", (uint32_t)F);
    gg_kv_u32(&g, "llama.attention.head_count", (uint32_t)c->n_heads);
    gg_kv_u32(&g, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    gg_str(&g, "llama.attention.layer_norm_rms_epsilon");
    gg_u32(&g, 6);
    gg_put(&g, &c->norm_eps, 4);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        gg_str(&g, t[i].name);
        gg_u32(&g, t[i].ne1 > 1 ? 2 : 1);
        gg_u64(&g, (uint64_t)t[i].ne0);
        if (t[i].ne1 > 1) gg_u64(&g, (uint64_t)t[i].ne1);
        gg_u32(&g, t[i].type);
        gg_u64(&g, off);
        off += ((uint64_t)t[i].ne0 * (uint64_t)t[i].ne1 * (t[i].type ? 2 : 4) + 31) / 32 * 32;
    }
    static const uint8_t zeros[32];
    gg_put(&g, zeros, (32 - g.n % 32) % 32);
    for (int i = 0; i < nt; i++) {
        size_t n = (size_t)t[i].ne0 * (size_t)t[i].ne1, nb = n * (t[i].type ? 2 : 4);
        for (size_t j = 0; j < n; j++) {
            uint16_t h = t[i].type == 1 ? bd_f32_to_f16(t[i].src[j]) : bd_f32_to_bf16(t[i].src[j]);
            if (t[i].type)
                gg_put(&g, &h, 2);
            else
                gg_put(&g, &t[i].src[j], 4);
        }
        gg_put(&g, zeros, (32 - nb % 32) % 32);
    }
    seed1("gguf", name, g.b, g.n);
    free(g.b);
}

// Prompts: a flags byte (bit 0 JSONL, bits 1-2 template: none, alpaca, own, "{input}: {}"; bits
// 4-7 context 2 + 8k), the prompts file, and the own template after "\0BD\0".
static void prompt_seeds(void) {
    static const struct {
        const char *name;
        uint8_t flags;
        const char *text, *tmpl;
    } s[] = {
            {"text", 0xf0, "Once upon a time\n\n  \nTom had a red\r\nThe cat sat\n", NULL},
            {"text_short_context", 0x10, "a long prompt that leaves no room in a context of ten tokens\n", NULL},
            {"text_template", 0xf4, "The cat sat\n", "Q: {}\\nA:\\t\\\\"},
            {"jsonl_alpaca", 0xf3, "{\"q\":\"Tell a story.\",\"input\":\"\"}\n{\"q\":\"Go on:\",\"input\":\"a b\"}\n",
             NULL},
            {"jsonl_fields", 0xf7, "{\"q\":\"ab\",\"input\":\"x\"}\n\n{\"q\":\"\\u00e9t\\u00e9\",\"input\":\"y\"}\n",
             NULL},
            {"jsonl_own", 0xf5, "{\"q\":\"ab\",\"ctx\":\"the\"}\n", "{ctx} / {} / {q}"},
    };
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
        size_t n = strlen(s[i].text);
        uint8_t *b = malloc(n + 1);
        b[0] = s[i].flags;
        memcpy(b + 1, s[i].text, n);
        const uint8_t *parts[2] = {b, (const uint8_t *)s[i].tmpl};
        size_t lens[2] = {n + 1, s[i].tmpl ? strlen(s[i].tmpl) : 0};
        seed("prompts", s[i].name, s[i].tmpl ? 2 : 1, parts, lens);
        free(b);
    }
}

// A bd.samples stream as bd-teacher-gen writes it (header of a run, 4 samples, top-TK rows if
// tk), decompressed, after a flags byte.
static void samples_seed(const char *name, uint8_t flags, int tk) {
    bd_prompt_opts po = {.kind = "bos", .template_ = ""};
    bd_gen_opts go = {.sampling = {.temperature = 0.7, .top_k = 0, .top_p = 1.0},
                      .max_new = 8,
                      .batch = 1,
                      .seed = 1,
                      .stop_ids = {2},
                      .n_stop = 1,
                      .logits_top_k = tk};
    bd_samples_run run = {.model_path = "tiny",
                          .desc = "tiny",
                          .tok_id = "",
                          .vocab = 32,
                          .bos = 1,
                          .eos = 2,
                          .po = &po,
                          .n_prompts = 1,
                          .hash = "0000000000000000",
                          .go = &go,
                          .n = 4,
                          .threads = 1};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    bd_samples_pack_header(&sb, &run);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS) die("samples header");
    const char *path = wpath("samples.bdz");
    int err;
    bd_producer prod = {"make_seeds", 0, NULL};
    bd_writer *w = bd_writer_open(path, 1, &err);
    if (!w || bd_writer_begin_header(w, "bd.samples", &prod, u.data.via.map.size) != BD_OK) die("samples");
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        msgpack_pack_object(bd_writer_packer(w), u.data.via.map.ptr[i].key);
        msgpack_pack_object(bd_writer_packer(w), u.data.via.map.ptr[i].val);
    }
    if (bd_writer_end_object(w) != BD_OK) die("samples");
    // From BOS, as the fuzz target's run: 4, 1 and 3 new ids, then an empty completion (which
    // bd-qat skips and a resumed run refuses).
    int32_t prompt[1] = {1}, completion[4] = {7, 8, 9, 2}, ids[16];
    float lp[16];
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 4; k++) ids[r * 4 + k] = (completion[r] + k) % 32, lp[r * 4 + k] = -0.5f - (float)k;
    bd_gen_sample smp[4] = {{0, prompt, 1, completion, 4, BD_GEN_EOS, ids, lp},
                            {1, prompt, 1, completion + 3, 1, BD_GEN_EOS, ids, lp},
                            {2, prompt, 1, completion, 3, BD_GEN_LENGTH, ids, lp},
                            {3, prompt, 1, completion, 0, BD_GEN_LENGTH, ids, lp}};
    for (int i = 0; i < 4; i++)
        if (bd_samples_write(w, &smp[i], tk) != BD_OK) die("samples");
    if (bd_writer_close(w) != BD_OK) die("samples");
    size_t n;
    uint8_t *c = content(path, &n);
    FILE *f = fopen(path_of("samples", name), "wb");  // the flags byte, then the content
    if (!f || fwrite(&flags, 1, 1, f) != 1 || fwrite(c, 1, n, f) != n) die(name);
    fclose(f);
    free(c);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

int main(int argc, char **argv) {
    if (argc != 4) die("usage: make_seeds OUT_DIR FIXTURES_DIR WORK_DIR");
    out_dir = argv[1];
    const char *fix = argv[2];
    work_dir = argv[3];
    char why[512], tmp[1024];
    bd_model m;
    bd_config c = tiny();
    if (bd_model_alloc(&m, &c) != BD_OK) die("alloc");
    for (size_t i = 0; i < m.n_params; i++) m.params[i] = rnd();
    llama2c_seeds(&m);
    gguf_seed(&m, false, "tiny_tied.gguf");
    gguf_seed(&m, true, "tiny_untied.gguf");

    // Hugging Face directory and the safetensors file alone.
    if (bd_model_save_hf(&m, wpath("hf"), BD_F32, why, sizeof why) != BD_OK) die(why);
    size_t nc, ns;
    uint8_t *cfg = slurp(wpath("hf/config.json"), &nc);
    uint8_t *st = slurp(wpath("hf/model.safetensors"), &ns);
    const uint8_t *parts[3] = {cfg, st, NULL};
    size_t lens[3] = {nc, ns, 0};
    seed("hf", "tiny.hf", 2, parts, lens);
    static const char index_json[] = "{\"weight_map\":{\"model.embed_tokens.weight\":\"model.safetensors\"}}";
    parts[2] = (const uint8_t *)index_json, lens[2] = sizeof index_json - 1;
    seed("hf", "tiny_index.hf", 3, parts, lens);
    seed1("safetensors", "tiny.safetensors", st, ns);

    // bd.model, bd.packed, bd.trainstate, bd.clip: the content of streams bd writes.
    bd_producer prod = {"make_seeds", 0, NULL};
    snprintf(tmp, sizeof tmp, "%s", wpath("m.bdz"));
    if (bd_model_save(&m, tmp, &prod, BD_F32, why, sizeof why) != BD_OK) die(why);
    size_t n;
    uint8_t *mc = content(tmp, &n);
    seed1("model_stream", "tiny.model", mc, n);
    if (bd_model_save(&m, tmp, &prod, BD_BF16, why, sizeof why) != BD_OK) die(why);
    uint8_t *mb = content(tmp, &n);
    seed1("model_stream", "tiny_bf16.model", mb, n);
    free(mb);
    m.quant = (bd_qspec){BD_Q_INT, 2, 8};
    if (bd_pk_model_pack(&m, why, sizeof why) != BD_OK) die(why);
    if (bd_pk_model_save(&m, tmp, &prod, why, sizeof why) != BD_OK) die(why);
    uint8_t *pc = content(tmp, &n);
    seed1("model_stream", "tiny_int2.packed", pc, n);
    free(pc);
    bd_pk_model_free(m.packed);
    m.packed = NULL;
    m.quant = (bd_qspec){BD_Q_NONE, 0, 0};

    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&m.cfg, t, NULL);
    bd_adamw opt;
    bd_adamw_cfg acfg = {0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, BD_F32};
    if (bd_adamw_init(&opt, t, nt, m.n_params, &acfg) != BD_OK) die("adamw");
    opt.t = 1;
    bd_ckpt_info info = {.step = 1,
                         .epoch = 0,
                         .pos = 4,
                         .tokens = 256,
                         .seed = 7,
                         .batch = 2,
                         .seq_len = 32,
                         .grad_accum = 1,
                         .gamma = -1};
    snprintf(tmp, sizeof tmp, "%s", wpath("ck"));
    if (bd_ckpt_save(tmp, &m, &opt, &info, NULL, &prod, why, sizeof why) != BD_OK) die(why);
    size_t nsc, nwc;
    uint8_t *sc = content(tmp, &nsc);
    strcat(tmp, ".w1");
    uint8_t *wc = content(tmp, &nwc);
    parts[0] = sc, lens[0] = nsc, parts[1] = wc, lens[1] = nwc;
    seed("trainstate", "tiny.ck", 2, parts, lens);
    bd_adamw_free(&opt);

    snprintf(tmp, sizeof tmp, "%s", wpath("clip.bdz"));
    int err;
    bd_writer *w = bd_writer_open(tmp, 1, &err);
    if (!w || bd_writer_begin_header(w, "bd.clip", &prod, 3) != BD_OK) die("clip");
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_kv_str(pk, "quant", "int");
    bd_pack_kv_int(pk, "bits", 2);
    bd_pack_kv_int(pk, "group", 8);
    if (bd_writer_end_object(w) != BD_OK) die("clip");
    float mx[48], mn[48];
    for (int i = 0; i < 48; i++) mx[i] = 0.3f, mn[i] = -0.3f;
    if (bd_clipfile_write_record(w, "wo", 1, mx, mn, 16, 2) != BD_OK ||
        bd_clipfile_write_record(w, "w1", 0, mx, mn, 24, 2) != BD_OK || bd_writer_close(w) != BD_OK)
        die("clip");
    uint8_t *cc = content(tmp, &n);
    seed1("clip", "tiny.clip", cc, n);

    // Tokenizers: the fixtures in tests/fixtures, and a tiny llama2.c tokenizer.bin.
    const char *tj[] = {"tok_spm", "tok_bytelevel"};
    static const char tcfg[] = "{\"bos_token\":\"<s>\",\"eos_token\":{\"content\":\"</s>\"}}";
    for (int i = 0; i < 2; i++) {
        snprintf(tmp, sizeof tmp, "%s/%s/tokenizer.json", fix, tj[i]);
        uint8_t *j = slurp(tmp, &n);
        parts[0] = j, lens[0] = n, parts[1] = (const uint8_t *)tcfg, lens[1] = sizeof tcfg - 1;
        char name[64];
        snprintf(name, sizeof name, "%s.json", tj[i]);
        seed("tokenizer_json", name, i == 0 ? 2 : 1, parts, lens);
        free(j);
    }
    FILE *f = fopen(path_of("tokenizer_bin", "tiny.bin"), "wb");
    int32_t maxlen = 6;
    fwrite(&maxlen, 4, 1, f);
    const char *pieces[] = {"<unk>",
                            "<s>",
                            "</s>",
                            "a",
                            "b",
                            " a",
                            "ab",
                            " ab",
                            "\xe2\x96\x81"
                            "cat"};
    for (int i = 0; i < 256 + 9; i++) {
        char bytepiece[8];
        const char *s = i < 3     ? pieces[i]
                        : i < 259 ? (snprintf(bytepiece, sizeof bytepiece, "<0x%02X>", i - 3), bytepiece)
                                  : pieces[i - 256];
        float score = i < 259 ? 0.0f : -(float)(i - 259);
        int32_t len = (int32_t)strlen(s);
        fwrite(&score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(s, 1, (size_t)len, f);
    }
    fclose(f);

    // Tasks: the first byte picks the format (0 auto, 1 hellaswag, 2 piqa, 3 jsonl).
    struct {
        const char *file, *labels;
        uint8_t fmt;
    } tasks[] = {{"hellaswag.txt", NULL, 1},
                 {"hellaswag.jsonl", NULL, 0},
                 {"piqa.jsonl", "piqa-labels.lst", 2},
                 {"generic.jsonl", NULL, 3}};
    for (size_t i = 0; i < sizeof tasks / sizeof *tasks; i++) {
        snprintf(tmp, sizeof tmp, "%s/mc/%s", fix, tasks[i].file);
        uint8_t *tx = slurp(tmp, &n);
        uint8_t *buf = malloc(n + 1);
        buf[0] = tasks[i].fmt;
        memcpy(buf + 1, tx, n);
        parts[0] = buf, lens[0] = n + 1;
        size_t nl = 0;
        uint8_t *lb = NULL;
        if (tasks[i].labels) {
            snprintf(tmp, sizeof tmp, "%s/mc/%s", fix, tasks[i].labels);
            lb = slurp(tmp, &nl);
            parts[1] = lb, lens[1] = nl;
        }
        seed("task", tasks[i].file, tasks[i].labels ? 2 : 1, parts, lens);
        free(tx), free(buf), free(lb);
    }
    prompt_seeds();
    samples_seed("plain", 0x2d, 0);
    samples_seed("teacher_rows", 0x62, 4);
    samples_seed("teacher_rows_masked", 0x33, 4);
    bd_model_free(&m);
    free(cfg), free(st), free(mc), free(sc), free(wc), free(cc);
    return 0;
}
