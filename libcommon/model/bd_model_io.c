// Model loading by content sniffing, the bd.model stream format (read and write), RoPE row
// permutations and shared checks. llama2.c files: bd_llama2c.c; Hugging Face: bd_hf.c; GGUF:
// bd_gguf_read.c.
//
// bd.model stream: header {"config": {every bd_config field by name; rope "interleaved" or
// "half"; "subln" and "subln_eps" only in a model with SubLN norms}, "quant": nil or the
// student's spec ("act_bits" only when 8), "n_params": int}; one record per tensor of bd_param_table, a tensor
// map {"name","dtype","shape","data"} with the table's name and shape. A tensor larger than
// BD_MODEL_SLICE_BYTES is split along its first axis into records that also carry
// "start" (first index along axis 0) and the slice's shape; slices come in order.
#include "bd_model_io.h"
#include "bd_qmodel.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include "bd_input.h"
#include "bd_log.h"
#include "bd_model_io_impl.h"
#include "bd_packed.h"

// ---- shared helpers ---------------------------------------------------------------------


int bd_io_check_finite(const float *p, size_t n, const char *file, const char *tensor, char *why, size_t ws) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return bd_fail(why, ws, BD_ERR_VALUE, "%s: tensor %s: element %zu is %s", file, tensor, i,
                           isnan(p[i]) ? "NaN" : "infinite");
    return BD_OK;
}

int bd_io_check_model_finite(const bd_model *m, const char *file, char *why, size_t ws) {
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&m->cfg, t, NULL);
    for (int k = 0; k < nt; k++) {
        const float *p = bd_weights_get(&m->w, t[k].name);  // NULL: a mapped model's linear (checked on load)
        for (size_t i = 0; p && i < t[k].numel; i++) {
            if (isfinite(p[i])) continue;
            const char *what = isnan(p[i]) ? "NaN" : "infinite";
            // Per-layer tensors are named by layer and index within the layer.
            bool layered = t[k].ndim >= 2 && strcmp(t[k].name, "tok_emb") && strcmp(t[k].name, "wcls");
            if (layered) {
                size_t per = t[k].numel / (size_t)t[k].shape[0];
                return bd_fail(why, ws, BD_ERR_VALUE, "%s: tensor %s (layer %zu): element %zu is %s", file, t[k].name,
                               i / per, i % per, what);
            }
            return bd_fail(why, ws, BD_ERR_VALUE, "%s: tensor %s: element %zu is %s", file, t[k].name, i, what);
        }
    }
    return BD_OK;
}

const bd_param_entry *bd_io_entry(const bd_param_entry *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) return &t[i];
    return NULL;
}

const char *bd_model_format_name(bd_model_format f) {
    switch (f) {
    case BD_MODEL_FMT_LLAMA2C_V0: return "llama2.c v0";
    case BD_MODEL_FMT_LLAMA2C_V1: return "llama2.c v1";
    case BD_MODEL_FMT_LLAMA2C_V2: return "llama2.c v2";
    case BD_MODEL_FMT_HF: return "Hugging Face";
    case BD_MODEL_FMT_BD: return "bd.model";
    case BD_MODEL_FMT_GGUF: return "GGUF";
    }
    return "unknown";
}

// ---- sniffing -----------------------------------------------------------------------------

// The format of a file from its first bytes b[0..n); size: its size, -1 if not a regular file.
static int sniff_bytes(const char *path, const uint8_t *b, size_t n, int64_t size, char *why, size_t ws) {
    if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) return BD_MODEL_FMT_BD;
    if (n >= 4 && memcmp(b, "GGUF", 4) == 0) return BD_MODEL_FMT_GGUF;
    if (n >= 4 && b[0] == 0x32 && b[1] == 0x34 && b[2] == 0x6b && b[3] == 0x61) {  // "ak42" as LE u32
        if (n < 8) return bd_fail(why, ws, BD_ERR_TRUNCATED, "%s: truncated llama2.c ak42 header", path);
        int32_t ver = (int32_t)((uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24);
        if (ver == 1) return BD_MODEL_FMT_LLAMA2C_V1;
        if (ver == 2) return BD_MODEL_FMT_LLAMA2C_V2;
        return bd_fail(why, ws, BD_ERR_VERSION, "%s: llama2.c ak42 version %d is not supported (only 1 and 2)", path,
                       ver);
    }
    if (n >= 9 && b[8] == '{') {  // safetensors: u64 length of a JSON header that fits in the file
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--) len = len << 8 | b[i];
        if (len >= 2 && size >= 8 && len <= (uint64_t)size - 8) return BD_MODEL_FMT_HF;
    }
    if (n >= 1 && b[0] == '{') return BD_MODEL_FMT_HF;  // config.json
    // Anything else must look like a v0 header; bd_load_llama2c checks it in full.
    return BD_MODEL_FMT_LLAMA2C_V0;
}

int bd_model_sniff(const char *path, char *why, size_t ws) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return BD_MODEL_FMT_HF;
    bd_input in;
    int rc = bd_input_open(&in, path, why, ws);
    if (rc < 0) return rc;
    rc = sniff_bytes(path, in.head, in.head_len, in.size, why, ws);
    bd_input_close(&in);
    return rc;
}

// ---- the remembered tokenizer ----

int bd_io_parse_tokenizer(const msgpack_object *h, bd_model *m, const char *path, char *why, size_t ws) {
    m->tok_path[0] = m->tok_id[0] = 0;
    const msgpack_object *t = bd_obj_get(h, "tokenizer");
    if (!t) return BD_OK;
    const msgpack_object *p = t->type == MSGPACK_OBJECT_MAP ? bd_obj_get(t, "path") : NULL,
                         *id = t->type == MSGPACK_OBJECT_MAP ? bd_obj_get(t, "id") : NULL;
    if (!p || !id || bd_obj_strcpy(p, m->tok_path, sizeof m->tok_path) < 0 ||
        bd_obj_strcpy(id, m->tok_id, sizeof m->tok_id) < 0) {
        m->tok_path[0] = m->tok_id[0] = 0;
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: \"tokenizer\" must be a map {\"path\": str, \"id\": str}",
                       path);
    }
    return BD_OK;
}

bool bd_io_has_tokenizer(const bd_model *m) { return m->tok_path[0] && m->tok_id[0]; }

void bd_io_pack_tokenizer(msgpack_packer *pk, const bd_model *m) {
    bd_pack_str(pk, "tokenizer");
    msgpack_pack_map(pk, 2);
    bd_pack_kv_str(pk, "path", m->tok_path);
    bd_pack_kv_str(pk, "id", m->tok_id);
}

// ---- bd.model reading ---------------------------------------------------------------------

static const char *rope_name(bd_rope_style r) { return r == BD_ROPE_HALF ? "half" : "interleaved"; }

static int cfg_int(const msgpack_object *c, const char *key, int *out, const char *path, char *why, size_t ws) {
    int64_t v;
    if (bd_obj_int(bd_obj_get(c, key), &v) < 0 || v < INT32_MIN || v > INT32_MAX)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header config: field \"%s\" missing or not an integer", path, key);
    *out = (int)v;
    return BD_OK;
}

static int cfg_bool(const msgpack_object *c, const char *key, bool *out, const char *path, char *why, size_t ws) {
    const msgpack_object *o = bd_obj_get(c, key);
    if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header config: field \"%s\" missing or not a boolean", path, key);
    *out = o->via.boolean;
    return BD_OK;
}

static int cfg_float(const msgpack_object *c, const char *key, float *out, const char *path, char *why, size_t ws) {
    double d;
    if (bd_obj_num(bd_obj_get(c, key), &d) < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header config: field \"%s\" missing or not a number", path, key);
    *out = (float)d;
    return BD_OK;
}

int bd_io_parse_config(const msgpack_object *h, bd_config *cfg, const char *path, char *why, size_t ws) {
    const msgpack_object *c = bd_obj_get(h, "config");
    if (!c || c->type != MSGPACK_OBJECT_MAP)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header lacks a \"config\" map", path);
    memset(cfg, 0, sizeof *cfg);
    int rc;
    if (bd_obj_strcpy(bd_obj_get(c, "arch"), cfg->arch, sizeof cfg->arch) < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header config: field \"arch\" missing or not a short string", path);
    struct {
        const char *k;
        int *v;
    } ints[] = {{"dim", &cfg->dim},           {"n_layers", &cfg->n_layers},
                {"n_heads", &cfg->n_heads},   {"n_kv_heads", &cfg->n_kv_heads},
                {"head_dim", &cfg->head_dim}, {"ffn_dim", &cfg->ffn_dim},
                {"vocab", &cfg->vocab},       {"max_seq", &cfg->max_seq},
                {"bos", &cfg->bos},           {"eos", &cfg->eos}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if ((rc = cfg_int(c, ints[i].k, ints[i].v, path, why, ws)) < 0) return rc;
    if ((rc = cfg_float(c, "norm_eps", &cfg->norm_eps, path, why, ws)) < 0 ||
        (rc = cfg_float(c, "rope_theta", &cfg->rope_theta, path, why, ws)) < 0 ||
        (rc = cfg_bool(c, "tied_embeddings", &cfg->tied_embeddings, path, why, ws)) < 0 ||
        (rc = cfg_bool(c, "qkv_bias", &cfg->qkv_bias, path, why, ws)) < 0 ||
        (rc = cfg_bool(c, "qk_norm", &cfg->qk_norm, path, why, ws)) < 0)
        return rc;
    // SubLN (optional: absent in every model without it): "subln" "paper"|"all", "subln_eps".
    const msgpack_object *sl = bd_obj_get(c, "subln");
    if (sl) {
        char name[16];
        int k;
        if (bd_obj_strcpy(sl, name, sizeof name) < 0 || (k = bd_subln_parse(name)) < 0)
            return bd_fail(why, ws, BD_ERR_SCHEMA,
                           "%s: header config: field \"subln\" must be \"none\", \"paper\" or \"all\"", path);
        cfg->subln = (bd_subln)k;
        if (cfg->subln && (rc = cfg_float(c, "subln_eps", &cfg->subln_eps, path, why, ws)) < 0) return rc;
    }
    const msgpack_object *r = bd_obj_get(c, "rope");
    if (bd_obj_is_str(r, "interleaved"))
        cfg->rope = BD_ROPE_INTERLEAVED;
    else if (bd_obj_is_str(r, "half"))
        cfg->rope = BD_ROPE_HALF;
    else
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header config: field \"rope\" must be \"interleaved\" or \"half\"",
                       path);
    char cwhy[200];
    if (bd_config_check(cfg, cwhy, sizeof cwhy) < 0)
        return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: header: %s", path, cwhy);
    return BD_OK;
}

// "quant": nil, or {"kind", "bits", "group", "include_head", "exclude": [patterns]}.
int bd_io_parse_quant(const msgpack_object *h, bd_qspec *q, bd_qpolicy *p, const char *path, char *why, size_t ws) {
    memset(q, 0, sizeof *q);
    memset(p, 0, sizeof *p);
    const msgpack_object *o = bd_obj_get(h, "quant");
    if (!o || o->type == MSGPACK_OBJECT_NIL) return BD_OK;
    char kind[16];
    int64_t bits, group;
    int k;
    if (o->type != MSGPACK_OBJECT_MAP || bd_obj_strcpy(bd_obj_get(o, "kind"), kind, sizeof kind) < 0 ||
        (k = bd_qkind_parse(kind)) < 0 || bd_obj_int(bd_obj_get(o, "bits"), &bits) < 0 ||
        bd_obj_int(bd_obj_get(o, "group"), &group) < 0 || bits < 0 || bits > 32 || group < 0 || group > (1 << 24))
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "%s: header: \"quant\" must be nil or {kind, bits, group, ...} with a known kind", path);
    *q = (bd_qspec){(bd_qkind)k, (int)bits, (int)group};
    const msgpack_object *ab = bd_obj_get(o, "act_bits");  // optional: 0 (f32) or 8
    int64_t act = 0;
    if (ab && (bd_obj_int(ab, &act) < 0 || (act != 0 && act != 8)))
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: quant.act_bits must be 0 or 8", path);
    p->act_bits = (int)act;
    const msgpack_object *ih = bd_obj_get(o, "include_head"), *ex = bd_obj_get(o, "exclude");
    if (ih && ih->type == MSGPACK_OBJECT_BOOLEAN) p->include_head = ih->via.boolean;
    if (ex && ex->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < ex->via.array.size; i++) {
            char pat[64];
            if (bd_obj_strcpy(&ex->via.array.ptr[i], pat, sizeof pat) < 0 || bd_qpolicy_exclude(p, pat) < 0)
                return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: quant.exclude[%u] is not a short pattern", path, i);
        }
    return BD_OK;
}

void bd_io_pack_quant(msgpack_packer *pk, const bd_qspec *q, const bd_qpolicy *p) {
    if (q->kind == BD_Q_NONE) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, p->act_bits ? 6 : 5);
    bd_pack_kv_str(pk, "kind", bd_qkind_name(q->kind));
    if (p->act_bits) bd_pack_kv_int(pk, "act_bits", p->act_bits);
    bd_pack_kv_int(pk, "bits", q->bits);
    bd_pack_kv_int(pk, "group", q->group);
    bd_pack_str(pk, "include_head");
    if (p->include_head)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    bd_pack_str(pk, "exclude");
    msgpack_pack_array(pk, (size_t)p->n_exclude);
    for (int i = 0; i < p->n_exclude; i++) bd_pack_str(pk, p->exclude[i]);
}

// A bd.model stream from r, past its header (the caller closes r).
static int load_bd(bd_reader *r, bd_model *m, char *why, size_t ws) {
    memset(m, 0, sizeof *m);
    int rc;
    const char *path = bd_reader_name(r);
    bd_config cfg;
    size_t *filled = NULL;  // rows (along axis 0) read so far, per table entry
    if ((rc = bd_io_parse_config(bd_reader_header(r), &cfg, path, why, ws)) < 0) goto out;
    if ((rc = bd_model_alloc(m, &cfg)) < 0) {
        bd_fail(why, ws, rc, "%s: cannot allocate the model", path);
        goto out;
    }
    if ((rc = bd_io_parse_quant(bd_reader_header(r), &m->quant, &m->qpolicy, path, why, ws)) < 0) goto out;
    if ((rc = bd_io_parse_tokenizer(bd_reader_header(r), m, path, why, ws)) < 0) goto out;
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&cfg, t, NULL);
    filled = calloc(BD_MAX_PARAMS, sizeof *filled);
    if (!filled) {
        rc = BD_ERR_NOMEM;
        goto out;
    }
    const msgpack_object *rec;
    char tw[300], name[64];
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        unsigned long long ri = (unsigned long long)bd_reader_record_index(r);
        bd_tensor_view v;
        if ((rc = bd_obj_tensor(rec, &v, tw, sizeof tw)) < 0) {
            bd_fail(why, ws, rc, "%s: record %llu: %s", path, ri, tw);
            goto out;
        }
        snprintf(name, sizeof name, "%.*s", (int)(v.name_len < 60 ? v.name_len : 60), v.name ? v.name : "");
        const bd_param_entry *e = bd_io_entry(t, nt, name);
        if (!e) {
            rc = bd_fail(why, ws, BD_ERR_SCHEMA,
                         "%s: record %llu: unexpected tensor \"%s\" (not in this config's parameter table)", path, ri,
                         name);
            goto out;
        }
        size_t k = (size_t)(e - t);
        int64_t start = 0;
        const msgpack_object *so = bd_obj_get(rec, "start");
        if (so && (bd_obj_int(so, &start) < 0 || start < 0)) {
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: \"start\" is not a non-negative integer",
                         path, ri, name);
            goto out;
        }
        if (filled[k] == (size_t)e->shape[0]) {
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s appears twice", path, ri, name);
            goto out;
        }
        if ((size_t)start != filled[k]) {
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: slice starts at %lld, expected %zu", path,
                         ri, name, (long long)start, filled[k]);
            goto out;
        }
        bool shape_ok =
                v.ndim == e->ndim && v.shape[0] >= 1 && (uint64_t)start + (uint64_t)v.shape[0] <= (uint64_t)e->shape[0];
        for (int d = 1; shape_ok && d < e->ndim; d++) shape_ok = v.shape[d] == e->shape[d];
        if (!shape_ok) {
            char got[96] = "", want[96] = "";
            for (int d = 0; d < v.ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)v.shape[d]);
            for (int d = 0; d < e->ndim; d++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", e->shape[d]);
            rc = bd_fail(why, ws, BD_ERR_SHAPE, "%s: record %llu: tensor %s has shape [%s], the config implies [%s]",
                         path, ri, name, got, want);
            goto out;
        }
        if (v.dtype != BD_F32 && v.dtype != BD_BF16 && v.dtype != BD_F16) {
            rc = bd_fail(why, ws, BD_ERR_SHAPE, "%s: record %llu: tensor %s has dtype %s, expected f32, bf16 or f16",
                         path, ri, name, bd_dtype_name(v.dtype));
            goto out;
        }
        size_t row = e->numel / (size_t)e->shape[0];
        float *dst = m->params + e->offset + (size_t)start * row;
        bd_convert_to_f32(dst, v.data, v.dtype, (size_t)v.numel);
        char label[96];
        snprintf(label, sizeof label, start ? "%s (rows from %lld)" : "%s", name, (long long)start);
        if ((rc = bd_io_check_finite(dst, (size_t)v.numel, path, label, why, ws)) < 0) goto out;
        filled[k] += (size_t)v.shape[0];
    }
    if (rc != BD_EOF) {
        bd_fail(why, ws, rc, "%s: %s", path, bd_reader_error(r));
        goto out;
    }
    rc = BD_OK;
    for (int k = 0; k < nt; k++)
        if (filled[k] != (size_t)t[k].shape[0]) {
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, filled[k] ? "%s: tensor %s is incomplete" : "%s: tensor %s is missing",
                         path, t[k].name);
            break;
        }
out:
    if (rc < 0) bd_model_free(m);
    free(filled);
    return rc;
}

// ---- dispatch -----------------------------------------------------------------------------

// A bd.model or bd.packed stream (told apart by the schema), read once from in.
static int load_stream(const bd_input *in, bd_model *m, char *why, size_t ws) {
    int rc;
    char msg[600];
    bd_reader *r = bd_reader_open_file(in->f, in->name, NULL, &rc, msg, sizeof msg);
    if (!r) return bd_fail(why, ws, rc, "%s: %s", in->name, msg);
    const char *schema = bd_reader_schema(r);
    if (strcmp(schema, "bd.packed") == 0)
        rc = bd_pk_model_load(r, m, why, ws);
    else if (strcmp(schema, "bd.model") == 0)
        rc = load_bd(r, m, why, ws);
    else
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: schema is \"%s\", expected \"bd.model\" or \"bd.packed\"",
                     in->name, schema);
    bd_reader_close(r);
    return rc;
}

// A Hugging Face directory, given or holding the file path.
static int load_hf(const char *path, bool mapped, bd_model *m, char *why, size_t ws) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return bd_load_hf(path, mapped, m, why, ws);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    return bd_load_hf(dir[0] ? dir : "/", mapped, m, why, ws);
}

// Whether file starts like a llama2.c checkpoint: the "ak42" magic, or a v0 header of seven
// int32 (dim, hidden, layers, heads, kv heads, +-vocab, seq_len) of plausible sizes.
static bool looks_llama2c(const char *file) {
    FILE *f = fopen(file, "rb");
    if (!f) return false;
    int32_t h[7];
    size_t n = fread(h, sizeof h[0], 7, f);
    fclose(f);
    if (n >= 2 && memcmp(h, "ak42", 4) == 0) return h[1] == 1 || h[1] == 2;
    if (n < 7) return false;
    int32_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv = h[4], vocab = h[5] < 0 ? -h[5] : h[5];
    return dim > 0 && dim < (1 << 16) && hidden > 0 && hidden < (1 << 20) && layers > 0 && layers < 1024 && heads > 0 &&
           dim % heads == 0 && kv > 0 && kv <= heads && heads % kv == 0 && vocab > 0 && vocab < (1 << 24) && h[6] > 0 &&
           h[6] < (1 << 24);
}

// A directory without config.json: not a Hugging Face model. Names the llama2.c checkpoints in
// it (the usual mistake: the directory of stories260K.bin given as the model). BD_ERR_SCHEMA,
// as for any directory without config.json.
static int not_hf_dir(const char *dir, char *why, size_t ws) {
    char found[1024] = "", file[4200];
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        struct stat sb;
        if ((size_t)snprintf(file, sizeof file, "%s/%s", dir, e->d_name) >= sizeof file) continue;
        if (e->d_name[0] == '.' || stat(file, &sb) != 0 || !S_ISREG(sb.st_mode) || !looks_llama2c(file)) continue;
        size_t len = strlen(found), fl = strlen(file);
        if (len + fl + 8 < sizeof found) {  // ", " and the path, if they fit
            if (n) memcpy(found + len, ", ", 2), len += 2;
            memcpy(found + len, file, fl + 1);
        }
        n++;
    }
    if (d) closedir(d);
    if (n == 1)
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "%s: a directory without config.json (not a Hugging Face model) that holds the llama2.c "
                       "checkpoint %s: give that file as the model",
                       dir, found);
    if (n > 1)
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "%s: a directory without config.json (not a Hugging Face model) that holds %d llama2.c "
                       "checkpoints (%s): give one of them as the model",
                       dir, n, found);
    return bd_fail(why, ws, BD_ERR_SCHEMA,
                   "%s: a directory without config.json: neither a Hugging Face model nor holding a llama2.c "
                   "checkpoint; give a model file or a Hugging Face directory",
                   dir);
}

static int load_any(const char *path, bool mapped, bd_model *m, char *why, size_t ws) {
    memset(m, 0, sizeof *m);
    if (!path) return bd_fail(why, ws, BD_ERR_ARG, "no model path given");
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        if (stat(cfg, &sb) != 0) return not_hf_dir(path, why, ws);
        return bd_load_hf(path, mapped, m, why, ws);
    }
    // Opened once and sniffed from the first bytes: a stream may come through a pipe.
    bd_input in;
    int rc = bd_input_open(&in, path, why, ws);
    if (rc < 0) return rc;
    if (in.head_len == 0) {
        rc = bd_fail(why, ws, BD_ERR_TRUNCATED, "%s: empty%s", in.name,
                     in.size < 0 ? " (nothing came through the pipe: did the stage before fail?)" : "");
        bd_input_close(&in);
        return rc;
    }
    int fmt = sniff_bytes(in.name, in.head, in.head_len, in.size, why, ws);
    if (fmt == BD_MODEL_FMT_BD)
        rc = load_stream(&in, m, why, ws);
    else if (fmt >= 0 && (in.size < 0 || strcmp(in.name, "-") == 0))
        rc = bd_fail(why, ws, BD_ERR_ARG,
                     "%s: a %s model is read from a file it names (only bd.model and bd.packed streams come "
                     "through pipes)",
                     in.name, bd_model_format_name((bd_model_format)fmt));
    bd_input_close(&in);
    if (fmt < 0 || fmt == BD_MODEL_FMT_BD || rc < 0) return fmt < 0 ? fmt : rc;
    if (fmt == BD_MODEL_FMT_GGUF) return bd_load_gguf(path, m, why, ws);
    return fmt == BD_MODEL_FMT_HF ? load_hf(path, mapped, m, why, ws) : bd_load_llama2c(path, m, why, ws);
}

int bd_model_load(const char *path, bd_model *m, char *why, size_t ws) { return load_any(path, false, m, why, ws); }

int bd_model_load_mapped(const char *path, bd_model *m, char *why, size_t ws) {
    return load_any(path, true, m, why, ws);
}

// ---- the header alone ----------------------------------------------------------------------

// The header of a bd.model or bd.packed stream in a named file.
static int peek_stream(const char *path, bd_model_info *mi, char *why, size_t ws) {
    int rc;
    char msg[600];
    bd_reader *r = bd_reader_open(path, NULL, &rc, msg, sizeof msg);
    if (!r) return bd_fail(why, ws, rc, "%s: %s", path, msg);
    const char *schema = bd_reader_schema(r);
    const msgpack_object *h = bd_reader_header(r);
    mi->packed = strcmp(schema, "bd.packed") == 0;
    if (!mi->packed && strcmp(schema, "bd.model") != 0)
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: schema is \"%s\", expected \"bd.model\" or \"bd.packed\"",
                     path, schema);
    else if ((rc = bd_io_parse_config(h, &mi->cfg, path, why, ws)) >= 0)
        rc = bd_io_parse_quant(h, &mi->quant, &mi->qpolicy, path, why, ws);
    const msgpack_object *hf = mi->packed ? bd_obj_get(h, "head_format") : NULL;
    char name[16];
    if (rc >= 0 && hf && bd_obj_strcpy(hf, name, sizeof name) >= 0 && bd_pk_head_format_parse(name) > 0)
        mi->head_format = bd_pk_head_format_parse(name);
    bd_reader_close(r);
    return rc < 0 ? rc : BD_OK;
}

int bd_model_peek(const char *path, bd_model_info *mi, char *why, size_t ws) {
    memset(mi, 0, sizeof *mi);
    if (!path) return bd_fail(why, ws, BD_ERR_ARG, "no model path given");
    struct stat sb;
    if (!strcmp(path, "-")) return bd_fail(why, ws, BD_ERR_ARG, "standard input is read once: no header to read ahead");
    if (stat(path, &sb) != 0) return bd_fail(why, ws, BD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        if (stat(cfg, &sb) != 0) return not_hf_dir(path, why, ws);
        mi->format = BD_MODEL_FMT_HF;
        return bd_hf_peek(path, &mi->cfg, why, ws);
    }
    if (!S_ISREG(sb.st_mode)) return bd_fail(why, ws, BD_ERR_ARG, "%s: not a regular file: read once", path);
    int fmt = bd_model_sniff(path, why, ws);
    if (fmt < 0) return fmt;
    mi->format = fmt;
    if (fmt == BD_MODEL_FMT_BD) return peek_stream(path, mi, why, ws);
    if (fmt == BD_MODEL_FMT_GGUF) return bd_gguf_peek(path, &mi->cfg, why, ws);
    if (fmt != BD_MODEL_FMT_HF) return bd_llama2c_peek(path, &mi->cfg, why, ws);
    char dir[4096];  // a file inside a Hugging Face directory
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    return bd_hf_peek(dir[0] ? dir : "/", &mi->cfg, why, ws);
}

void bd_model_info_of(const bd_model *m, bd_model_info *mi) {
    memset(mi, 0, sizeof *mi);
    mi->cfg = m->cfg;
    mi->quant = m->quant;
    mi->qpolicy = m->qpolicy;
    mi->mapped = m->mapping != NULL;  // a mapped model's slots are its own linears, not packed ones
    mi->packed = m->packed != NULL && !mi->mapped;
    mi->head_format = mi->packed ? (int)m->packed->head_format : 0;
    mi->format = mi->mapped ? BD_MODEL_FMT_HF : BD_MODEL_FMT_BD;  // what loading told apart no longer matters
}

// ---- bd.model writing ---------------------------------------------------------------------

static void pack_float(msgpack_packer *pk, const char *key, float v) {
    bd_pack_str(pk, key);
    msgpack_pack_float(pk, v);
}

static void pack_bool(msgpack_packer *pk, const char *key, bool v) {
    bd_pack_str(pk, key);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

void bd_io_pack_config(msgpack_packer *pk, const bd_config *c) {
    msgpack_pack_map(pk, c->subln ? 19 : 17);  // SubLN's two fields only when it has the norms
    bd_pack_kv_str(pk, "arch", c->arch);
    bd_pack_kv_int(pk, "dim", c->dim);
    bd_pack_kv_int(pk, "n_layers", c->n_layers);
    bd_pack_kv_int(pk, "n_heads", c->n_heads);
    bd_pack_kv_int(pk, "n_kv_heads", c->n_kv_heads);
    bd_pack_kv_int(pk, "head_dim", c->head_dim);
    bd_pack_kv_int(pk, "ffn_dim", c->ffn_dim);
    bd_pack_kv_int(pk, "vocab", c->vocab);
    bd_pack_kv_int(pk, "max_seq", c->max_seq);
    pack_float(pk, "norm_eps", c->norm_eps);
    pack_float(pk, "rope_theta", c->rope_theta);
    bd_pack_kv_str(pk, "rope", rope_name(c->rope));
    pack_bool(pk, "tied_embeddings", c->tied_embeddings);
    pack_bool(pk, "qkv_bias", c->qkv_bias);
    pack_bool(pk, "qk_norm", c->qk_norm);
    bd_pack_kv_int(pk, "bos", c->bos);
    bd_pack_kv_int(pk, "eos", c->eos);
    if (c->subln) {
        bd_pack_kv_str(pk, "subln", bd_subln_name(c->subln));
        pack_float(pk, "subln_eps", c->subln_eps);
    }
}

// One record: a tensor map, plus "start" when it is a slice along axis 0.
static void pack_slice(msgpack_packer *pk, const char *name, bd_dtype dt, int ndim, const int64_t *shape,
                       const void *data, size_t nbytes, int64_t start, bool sliced) {
    msgpack_pack_map(pk, sliced ? 5 : 4);
    bd_pack_kv_str(pk, "name", name);
    bd_pack_kv_str(pk, "dtype", bd_dtype_name(dt));
    bd_pack_str(pk, "shape");
    msgpack_pack_array(pk, (size_t)ndim);
    for (int i = 0; i < ndim; i++) msgpack_pack_int64(pk, shape[i]);
    bd_pack_str(pk, "data");
    msgpack_pack_bin(pk, nbytes);
    msgpack_pack_bin_body(pk, data, nbytes);
    if (sliced) bd_pack_kv_int(pk, "start", start);
}

int bd_model_save(const bd_model *m, const char *path, const bd_producer *prod, bd_dtype dtype, char *why, size_t ws) {
    if (dtype != BD_F32 && dtype != BD_BF16 && dtype != BD_F16)
        return bd_fail(why, ws, BD_ERR_ARG, "%s: model tensors can be saved as f32, bf16 or f16, not %s", path,
                       bd_dtype_name(dtype) ? bd_dtype_name(dtype) : "?");
    int rc;
    char cwhy[200];
    if (!m->params || m->mapping || bd_config_check(&m->cfg, cwhy, sizeof cwhy) < 0)
        return bd_fail(why, ws, BD_ERR_ARG, "%s: cannot save: %s", path,
                       !m->params   ? "empty model"
                       : m->mapping ? "its linears are mapped, not in memory"
                                    : cwhy);
    if ((rc = bd_io_check_model_finite(m, path, why, ws)) < 0) return rc;
    bd_param_entry t[BD_MAX_PARAMS];
    size_t total;
    int nt = bd_param_table(&m->cfg, t, &total);
    size_t esz = bd_dtype_size(dtype);
    bd_writer *w = bd_writer_open(path, 0, &rc);
    if (!w) return bd_fail(why, ws, rc, "%s: cannot create: %s", path, strerror(errno));
    uint16_t *conv = NULL;
    if ((rc = bd_writer_begin_header(w, "bd.model", prod, bd_io_has_tokenizer(m) ? 4 : 3)) < 0) goto fail;
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_str(pk, "config");
    bd_io_pack_config(pk, &m->cfg);
    bd_pack_str(pk, "quant");
    bd_io_pack_quant(pk, &m->quant, &m->qpolicy);
    bd_pack_kv_int(pk, "n_params", (int64_t)total);
    if (bd_io_has_tokenizer(m)) bd_io_pack_tokenizer(pk, m);
    if ((rc = bd_writer_end_object(w)) < 0) goto fail;
    for (int k = 0; k < nt; k++) {
        const bd_param_entry *e = &t[k];
        size_t row = e->numel / (size_t)e->shape[0];
        size_t rows_per = BD_MODEL_SLICE_BYTES / (row * esz);
        if (rows_per == 0 && row * esz <= BD_MODEL_RECORD_BYTES) rows_per = 1;  // one index of axis 0 a record
        if (rows_per == 0) {
            rc = bd_fail(why, ws, BD_ERR_ARG, "%s: tensor %s: one row exceeds the record limit", path, e->name);
            goto fail_msg;
        }
        bool sliced = rows_per < (size_t)e->shape[0];
        for (size_t r0 = 0; r0 < (size_t)e->shape[0]; r0 += rows_per) {
            size_t nr = (size_t)e->shape[0] - r0 < rows_per ? (size_t)e->shape[0] - r0 : rows_per;
            size_t n = nr * row;
            const float *src = m->params + e->offset + r0 * row;
            int64_t shape[3] = {(int64_t)nr, e->shape[1], e->shape[2]};
            const void *data = src;
            if (dtype != BD_F32) {
                free(conv);
                if (!(conv = malloc(n * 2))) {
                    rc = BD_ERR_NOMEM;
                    goto fail;
                }
                for (size_t i = 0; i < n; i++) {
                    conv[i] = dtype == BD_BF16 ? bd_f32_to_bf16(src[i]) : bd_f32_to_f16(src[i]);
                    // Overflow to inf would make the file unloadable: refuse now.
                    if ((conv[i] & (dtype == BD_BF16 ? 0x7f80 : 0x7c00)) == (dtype == BD_BF16 ? 0x7f80 : 0x7c00)) {
                        rc = bd_fail(why, ws, BD_ERR_VALUE, "%s: tensor %s: element %zu = %g does not fit in %s", path,
                                     e->name, r0 * row + i, (double)src[i], bd_dtype_name(dtype));
                        goto fail_msg;
                    }
                }
                data = conv;
            }
            pack_slice(pk, e->name, dtype, e->ndim, shape, data, n * esz, (int64_t)r0, sliced);
            if ((rc = bd_writer_end_object(w)) < 0) goto fail;
        }
    }
    free(conv);
    if ((rc = bd_writer_close(w)) < 0) return bd_fail(why, ws, rc, "%s: write failed: %s", path, strerror(errno));
    return BD_OK;
fail:
    bd_fail(why, ws, rc, "%s: write failed: %s", path, rc == BD_ERR_IO ? strerror(errno) : bd_strerror(rc));
fail_msg:
    free(conv);
    bd_writer_abort(w);
    return rc;
}

// ---- RoPE layouts ---------------------------------------------------------------------------

void bd_rope_permute_rows(float *dst, const float *src, int n_heads, int head_dim, size_t cols, bd_rope_style to) {
    size_t hs = (size_t)head_dim, half = hs / 2;
    for (size_t h = 0; h < (size_t)n_heads; h++)
        for (size_t j = 0; j < half; j++) {
            size_t il0 = h * hs + 2 * j, il1 = il0 + 1;  // interleaved pair
            size_t hf0 = h * hs + j, hf1 = hf0 + half;   // half-split pair
            if (to == BD_ROPE_HALF) {
                memcpy(dst + hf0 * cols, src + il0 * cols, cols * sizeof *dst);
                memcpy(dst + hf1 * cols, src + il1 * cols, cols * sizeof *dst);
            } else {
                memcpy(dst + il0 * cols, src + hf0 * cols, cols * sizeof *dst);
                memcpy(dst + il1 * cols, src + hf1 * cols, cols * sizeof *dst);
            }
        }
}

int bd_model_convert_rope(bd_model *m, bd_rope_style to) {
    const bd_config *c = &m->cfg;
    if (c->rope == to) return BD_OK;
    size_t C = (size_t)c->dim, HS = (size_t)c->head_dim, QD = (size_t)c->n_heads * HS, KD = (size_t)c->n_kv_heads * HS;
    float *tmp = malloc(QD * C * sizeof *tmp);
    if (!tmp) return BD_ERR_NOMEM;
    for (size_t l = 0; l < (size_t)c->n_layers; l++) {
        struct {
            float *p;
            int heads;
            size_t cols;
        } v[] = {{m->w.wq + l * QD * C, c->n_heads, C},
                 {m->w.wk + l * KD * C, c->n_kv_heads, C},
                 {m->w.bq ? m->w.bq + l * QD : NULL, c->n_heads, 1},
                 {m->w.bk ? m->w.bk + l * KD : NULL, c->n_kv_heads, 1},
                 {m->w.q_norm ? m->w.q_norm + l * HS : NULL, 1, 1},
                 {m->w.k_norm ? m->w.k_norm + l * HS : NULL, 1, 1}};
        for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
            if (!v[i].p) continue;
            size_t n = (size_t)v[i].heads * HS * v[i].cols;
            memcpy(tmp, v[i].p, n * sizeof *tmp);
            bd_rope_permute_rows(v[i].p, tmp, v[i].heads, c->head_dim, v[i].cols, to);
        }
    }
    free(tmp);
    m->cfg.rope = to;
    return BD_OK;
}

void bd_model_describe(const bd_model *m, char *buf, size_t size) {
    const bd_config *c = &m->cfg;
    size_t params;  // every weight's count, also those not in m->params (packed or mapped linears)
    bd_param_table(c, (bd_param_entry[BD_MAX_PARAMS]){0}, &params);
    snprintf(buf, size, "%s C=%d L=%d NH=%d KV=%d HS=%d F=%d V=%d seq=%d rope=%s %s%s%s%s%s %zu params%s", c->arch,
             c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim, c->vocab, c->max_seq,
             rope_name(c->rope), c->tied_embeddings ? "tied" : "untied", c->qkv_bias ? " qkv-bias" : "",
             c->qk_norm ? " qk-norm" : "", c->subln ? " subln=" : "", c->subln ? bd_subln_name(c->subln) : "", params,
             m->mapping ? " (linears mapped from the file)" : "");
}
