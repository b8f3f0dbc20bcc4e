// llama2.c checkpoints (karpathy/llama2.c export.py), read through mmap:
//   v0: 7 x int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab (< 0: untied
//       classifier), seq_len}; fp32 tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
//       rms_final, freq_cis_real (S, HS/2), freq_cis_imag (S, HS/2) (skipped), [wcls].
//   v1: u32 magic "ak42", int32 version 1, the same 7 ints, u8 shared_classifier, zero pad
//       to 256 bytes; fp32 rms_att, rms_ffn, rms_final, tok_emb, wq, wk, wv, wo, w1, w2, w3,
//       [wcls].
//   v2: as v1 plus int32 group_size right after the flag byte (offset 37); fp32 rms_att,
//       rms_ffn, rms_final; then Q8_0 tensors tok_emb, each layer's wq, then wk, wv, wo, w1,
//       w2, w3, [wcls], each as int8 values followed by its fp32 scales (one per group of
//       group_size consecutive values): w = q * scale.
// The whole expected size is computed from the header and compared with the file before
// anything is allocated.
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bd_log.h"
#include "bd_model_io.h"
#include "bd_model_io_impl.h"

#define AK42_MAGIC 0x616b3432u
#define AK42_HEADER 256
#define V0_HEADER 28
#define MAX_SEQ_SANE (1 << 24)

typedef enum { SEG_F32, SEG_Q8, SEG_SKIP } seg_kind;
typedef struct {
    const char *name;  // bd tensor name ("freq_cis" for the skipped tables)
    int layer;         // -1: the whole tensor (all layers), else one layer of it
    size_t numel;
    seg_kind kind;
} seg;

static int32_t get_i32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (int32_t)u;
}

// Parses the header into cfg. Returns the format, or an error.
static int parse_header(const uint8_t *p, size_t size, const char *path, bd_config *cfg, int *group_size,
                        size_t *hdr_bytes, char *why, size_t ws) {
    int fmt, gs = 0;
    const uint8_t *h;
    bool shared;
    if (size >= 4 && get_i32(p) == (int32_t)AK42_MAGIC) {
        if (size < 8)
            return bd_fail(why, ws, BD_ERR_TRUNCATED, "%s: llama2.c ak42 file of %zu bytes: truncated header", path,
                           size);
        int ver = get_i32(p + 4);
        if (ver != 1 && ver != 2)
            return bd_fail(why, ws, BD_ERR_VERSION, "%s: llama2.c ak42 version %d is not supported (only 1 and 2)",
                           path, ver);
        if (size < AK42_HEADER)
            return bd_fail(why, ws, BD_ERR_TRUNCATED,
                           "%s: llama2.c v%d file of %zu bytes: truncated header (256 bytes)", path, ver, size);
        fmt = ver == 1 ? BD_MODEL_FMT_LLAMA2C_V1 : BD_MODEL_FMT_LLAMA2C_V2;
        h = p + 8;
        if (p[36] > 1)
            return bd_fail(why, ws, BD_ERR_MALFORMED,
                           "%s: llama2.c v%d header: shared_classifier flag is %d, expected 0 or 1", path, ver, p[36]);
        shared = p[36] == 1;
        if (ver == 2) {
            gs = get_i32(p + 37);
            if (gs <= 0 || gs > (1 << 20))
                return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: llama2.c v2 header: group size %d is implausible", path,
                               gs);
        }
        if (get_i32(h + 20) <= 0)
            return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: llama2.c v%d header: vocab_size %d must be positive", path,
                           ver, get_i32(h + 20));
        *hdr_bytes = AK42_HEADER;
    } else {
        if (size < V0_HEADER)
            return bd_fail(why, ws, BD_ERR_TRUNCATED,
                           "%s: %zu bytes: too short for any model format (a llama2.c header has 28)", path, size);
        fmt = BD_MODEL_FMT_LLAMA2C_V0;
        h = p;
        shared = get_i32(h + 20) > 0;
        *hdr_bytes = V0_HEADER;
    }
    int32_t v[7];
    for (int i = 0; i < 7; i++) v[i] = get_i32(h + 4 * i);
    int64_t vocab = v[5] < 0 ? -(int64_t)v[5] : v[5];
    const char *fname = bd_model_format_name((bd_model_format)fmt);
    if (v[0] <= 0 || v[1] <= 0 || v[2] <= 0 || v[3] <= 0 || v[4] <= 0 || vocab == 0 || v[6] <= 0 ||
        v[6] > MAX_SEQ_SANE || vocab > (1 << 24) || v[0] % v[3] != 0)
        return bd_fail(
                why, ws, BD_ERR_MALFORMED,
                "%s: %s header {dim %d, hidden %d, layers %d, heads %d, kv_heads %d, vocab %d, seq %d} is not a plausible model",
                path, fname, v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->arch, sizeof cfg->arch, "llama");
    cfg->dim = v[0];
    cfg->ffn_dim = v[1];
    cfg->n_layers = v[2];
    cfg->n_heads = v[3];
    cfg->n_kv_heads = v[4];
    cfg->vocab = (int)vocab;
    cfg->max_seq = v[6];
    cfg->head_dim = v[0] / v[3];
    cfg->norm_eps = 1e-5f;
    cfg->rope_theta = 10000.0f;
    cfg->rope = BD_ROPE_INTERLEAVED;
    cfg->tied_embeddings = shared;
    cfg->bos = 1;  // llama2.c's run.c hard-codes the SentencePiece ids BOS=1, EOS=2
    cfg->eos = 2;
    char cwhy[200];
    if (bd_config_check(cfg, cwhy, sizeof cwhy) < 0)
        return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: %s header: %s", path, fname, cwhy);
    *group_size = gs;
    return fmt;
}

// The file's tensors in order. Returns the count (segs must hold 7 * L + 16).
static int build_segments(int fmt, const bd_config *c, seg *s) {
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(c, t, NULL);
    int n = 0;
#define WHOLE(nm, kind)                                    \
    do {                                                   \
        const bd_param_entry *e_ = bd_io_entry(t, nt, nm); \
        s[n++] = (seg){nm, -1, e_->numel, kind};           \
    } while (0)
    static const char *const lin[] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};
    if (fmt == BD_MODEL_FMT_LLAMA2C_V0) {
        static const char *const order[] = {"tok_emb", "rms_att", "wq", "wk", "wv",       "wo",
                                            "rms_ffn", "w1",      "w2", "w3", "rms_final"};
        for (size_t i = 0; i < sizeof order / sizeof *order; i++) WHOLE(order[i], SEG_F32);
        s[n++] = (seg){"freq_cis", -1, (size_t)c->max_seq * (size_t)c->head_dim, SEG_SKIP};
        if (!c->tied_embeddings) WHOLE("wcls", SEG_F32);
    } else if (fmt == BD_MODEL_FMT_LLAMA2C_V1) {
        static const char *const order[] = {"rms_att", "rms_ffn", "rms_final", "tok_emb", "wq", "wk",
                                            "wv",      "wo",      "w1",        "w2",      "w3"};
        for (size_t i = 0; i < sizeof order / sizeof *order; i++) WHOLE(order[i], SEG_F32);
        if (!c->tied_embeddings) WHOLE("wcls", SEG_F32);
    } else {
        WHOLE("rms_att", SEG_F32);
        WHOLE("rms_ffn", SEG_F32);
        WHOLE("rms_final", SEG_F32);
        WHOLE("tok_emb", SEG_Q8);
        for (int k = 0; k < 7; k++) {
            const bd_param_entry *e = bd_io_entry(t, nt, lin[k]);
            for (int l = 0; l < c->n_layers; l++) s[n++] = (seg){lin[k], l, e->numel / (size_t)c->n_layers, SEG_Q8};
        }
        if (!c->tied_embeddings) WHOLE("wcls", SEG_Q8);
    }
#undef WHOLE
    return n;
}

static size_t seg_bytes(const seg *s, int gs) {
    return s->kind == SEG_Q8 ? s->numel + 4 * (s->numel / (size_t)gs) : 4 * s->numel;
}

static void seg_label(const seg *s, char *buf, size_t n) {
    if (s->layer >= 0)
        snprintf(buf, n, "%s (layer %d)", s->name, s->layer);
    else
        snprintf(buf, n, "%s", s->name);
}

int bd_llama2c_peek(const char *path, bd_config *cfg, char *why, size_t ws) {
    uint8_t head[AK42_HEADER] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return bd_fail(why, ws, BD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    int gs = 0;
    size_t hdr = 0;
    int fmt = parse_header(head, got, path, cfg, &gs, &hdr, why, ws);
    return fmt < 0 ? fmt : BD_OK;
}

int bd_load_llama2c(const char *path, bd_model *m, char *why, size_t ws) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return bd_fail(why, ws, BD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return bd_fail(why, ws, BD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    size_t size = (size_t)sb.st_size;
    uint8_t head[AK42_HEADER] = {0};
    ssize_t got = pread(fd, head, sizeof head, 0);
    if (got < 0) {
        close(fd);
        return bd_fail(why, ws, BD_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    }
    bd_config cfg;
    int gs = 0;
    size_t hdr = 0;
    int fmt = parse_header(head, (size_t)got < size ? (size_t)got : size, path, &cfg, &gs, &hdr, why, ws);
    if (fmt < 0) {
        close(fd);
        return fmt;
    }
    const char *fname = bd_model_format_name((bd_model_format)fmt);

    seg *segs = malloc(((size_t)7 * (size_t)cfg.n_layers + 16) * sizeof *segs);
    if (!segs) {
        close(fd);
        return BD_ERR_NOMEM;
    }
    int ns = build_segments(fmt, &cfg, segs);
    uint64_t expect = hdr;
    int rc = BD_OK;
    char label[64];
    for (int i = 0; i < ns; i++) {
        if (segs[i].kind == SEG_Q8 && segs[i].numel % (size_t)gs != 0) {
            seg_label(&segs[i], label, sizeof label);
            rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: %s: group size %d does not divide the %zu values of tensor %s",
                         path, fname, gs, segs[i].numel, label);
            goto out;
        }
        uint64_t nb = seg_bytes(&segs[i], gs);
        if (expect + nb > size) {
            seg_label(&segs[i], label, sizeof label);
            rc = bd_fail(why, ws, BD_ERR_TRUNCATED,
                         "%s: %s: file ends inside tensor %s (file has %zu bytes, that tensor ends at byte %llu)", path,
                         fname, label, size, (unsigned long long)(expect + nb));
            goto out;
        }
        expect += nb;
    }
    if (expect != size) {
        rc = bd_fail(why, ws, BD_ERR_SHAPE,
                     "%s: %s: file has %zu bytes, its header implies %llu (%llu extra bytes; wrong header?)", path,
                     fname, size, (unsigned long long)expect, (unsigned long long)(size - expect));
        goto out;
    }
    if ((rc = bd_model_alloc(m, &cfg)) < 0) {
        bd_fail(why, ws, rc, "%s: cannot allocate the model", path);
        goto out;
    }
    const uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = bd_fail(why, ws, BD_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        goto out;
    }
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&cfg, t, NULL);
    const uint8_t *p = map + hdr;
    for (int i = 0; i < ns; i++) {
        const seg *s = &segs[i];
        if (s->kind != SEG_SKIP) {
            const bd_param_entry *e = bd_io_entry(t, nt, s->name);
            float *dst = m->params + e->offset + (s->layer >= 0 ? (size_t)s->layer * s->numel : 0);
            if (s->kind == SEG_F32) {
                memcpy(dst, p, 4 * s->numel);  // little-endian host (bd_stream.c refuses others)
            } else {
                const int8_t *q = (const int8_t *)p;
                const uint8_t *sc = p + s->numel;
                for (size_t g = 0; g < s->numel / (size_t)gs; g++) {
                    float scale;
                    memcpy(&scale, sc + 4 * g, 4);
                    for (size_t k = g * (size_t)gs; k < (g + 1) * (size_t)gs; k++) dst[k] = (float)q[k] * scale;
                }
            }
        }
        p += seg_bytes(s, gs);
    }
    munmap((void *)map, size);
    rc = bd_io_check_model_finite(m, path, why, ws);
    if (rc == BD_OK)
        bd_log(BD_LOG_INFO, "%s: %s checkpoint%s", path, fname,
               fmt == BD_MODEL_FMT_LLAMA2C_V2 ? " (Q8_0 weights dequantized)" : "");
out:
    if (rc < 0) bd_model_free(m);
    free(segs);
    close(fd);
    return rc;
}
