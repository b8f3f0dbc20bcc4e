// Hugging Face model directories: config.json + safetensors (one file, shards named by
// model.safetensors.index.json, or every *.safetensors in the directory).
// Tensor names (per layer N):
//   model.embed_tokens.weight (V, C)            -> tok_emb
//   model.layers.N.input_layernorm.weight (C)   -> rms_att
//   model.layers.N.self_attn.{q,k,v,o}_proj.weight, q/k/v .bias (Qwen2)
//   model.layers.N.self_attn.{q,k}_norm.weight (HS) (Qwen3)
//   model.layers.N.post_attention_layernorm.weight (C) -> rms_ffn
//   model.layers.N.mlp.{gate,down,up}_proj.weight -> w1, w2, w3
//   model.norm.weight (C) -> rms_final;  lm_head.weight (V, C) -> wcls (absent when tied)
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bd_log.h"
#include "bd_readfile.h"
#include "bd_model_io.h"
#include "bd_model_io_impl.h"
#include "bd_outfile.h"
#include "bd_packed.h"
#include "bd_safetensors.h"

#define MAX_SHARDS 4096
#define MAX_JSON_BYTES (64u << 20)

// The HF name of one layer's slice of a bd tensor (layer < 0: a whole, unlayered tensor).
static bool hf_name(const char *bd, int layer, char *buf, size_t n) {
    static const struct {
        const char *bd, *hf;
    } map[] = {{"rms_att", "input_layernorm.weight"},
               {"wq", "self_attn.q_proj.weight"},
               {"wk", "self_attn.k_proj.weight"},
               {"wv", "self_attn.v_proj.weight"},
               {"wo", "self_attn.o_proj.weight"},
               {"bq", "self_attn.q_proj.bias"},
               {"bk", "self_attn.k_proj.bias"},
               {"bv", "self_attn.v_proj.bias"},
               {"q_norm", "self_attn.q_norm.weight"},
               {"k_norm", "self_attn.k_norm.weight"},
               {"rms_ffn", "post_attention_layernorm.weight"},
               {"w1", "mlp.gate_proj.weight"},
               {"w2", "mlp.down_proj.weight"},
               {"w3", "mlp.up_proj.weight"}};
    const char *whole = !strcmp(bd, "tok_emb")     ? "model.embed_tokens.weight"
                        : !strcmp(bd, "rms_final") ? "model.norm.weight"
                        : !strcmp(bd, "wcls")      ? "lm_head.weight"
                                                   : NULL;
    if (whole) {
        snprintf(buf, n, "%s", whole);
        return true;
    }
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(bd, map[i].bd)) {
            snprintf(buf, n, "model.layers.%d.%s", layer, map[i].hf);
            return true;
        }
    return false;
}

static bool is_layered(const char *bd) {
    return strcmp(bd, "tok_emb") && strcmp(bd, "rms_final") && strcmp(bd, "wcls");
}

static char *read_text(const char *path, int *rc, char *why, size_t ws) {
    char *buf;
    size_t n;
    if ((*rc = bd_read_small_file(path, MAX_JSON_BYTES, &buf, &n, why, ws)) < 0) {
        if (*rc == BD_ERR_IO && errno == ENOENT) *rc = BD_ERR_SCHEMA;  // a missing file of the directory
        return NULL;
    }
    return buf;
}

static cJSON *read_json(const char *path, int *rc, char *why, size_t ws) {
    char *text = read_text(path, rc, why, ws);
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        *rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: not a JSON object", path);
        return NULL;
    }
    return j;
}

// ---- config.json --------------------------------------------------------------------------

// An integer config value; absent -> def (if def_ok), else BD_ERR_SCHEMA.
static int json_int(const cJSON *cfg, const char *key, int def, bool def_ok, int *out, const char *path, char *why,
                    size_t ws) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        if (!def_ok) return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: missing \"%s\"", path, key);
        *out = def;
        return BD_OK;
    }
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) v = cJSON_GetArrayItem(v, 0);  // eos_token_id: [a, b]
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 2147483647.0)
        return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: \"%s\" is not an integer", path, key);
    *out = (int)v->valuedouble;
    return BD_OK;
}

static int json_float(const cJSON *cfg, const char *key, float def, float *out, const char *path, char *why,
                      size_t ws) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return BD_OK;
    }
    if (!cJSON_IsNumber(v)) return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: \"%s\" is not a number", path, key);
    *out = (float)v->valuedouble;
    return BD_OK;
}

static int parse_config(const cJSON *j, const char *path, bd_config *c, int *tie_explicit, char *why, size_t ws) {
    memset(c, 0, sizeof *c);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : NULL;
    if (!type) {  // older configs: infer from "architectures"
        const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "architectures"), 0);
        if (cJSON_IsString(a)) {
            if (!strcmp(a->valuestring, "LlamaForCausalLM"))
                type = "llama";
            else if (!strcmp(a->valuestring, "Qwen2ForCausalLM"))
                type = "qwen2";
            else if (!strcmp(a->valuestring, "Qwen3ForCausalLM"))
                type = "qwen3";
        }
    }
    if (!type) return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: no \"model_type\" (or known \"architectures\")", path);
    if (strcmp(type, "llama") && strcmp(type, "qwen2") && strcmp(type, "qwen3"))
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: model_type \"%.40s\" is not supported (llama, qwen2, qwen3)", path,
                       type);
    snprintf(c->arch, sizeof c->arch, "%s", type);
    int rc;
    if ((rc = json_int(j, "hidden_size", 0, false, &c->dim, path, why, ws)) < 0 ||
        (rc = json_int(j, "intermediate_size", 0, false, &c->ffn_dim, path, why, ws)) < 0 ||
        (rc = json_int(j, "num_hidden_layers", 0, false, &c->n_layers, path, why, ws)) < 0 ||
        (rc = json_int(j, "num_attention_heads", 0, false, &c->n_heads, path, why, ws)) < 0 ||
        (rc = json_int(j, "num_key_value_heads", c->n_heads, true, &c->n_kv_heads, path, why, ws)) < 0 ||
        (rc = json_int(j, "vocab_size", 0, false, &c->vocab, path, why, ws)) < 0 ||
        (rc = json_int(j, "max_position_embeddings", 2048, true, &c->max_seq, path, why, ws)) < 0 ||
        (rc = json_int(j, "bos_token_id", -1, true, &c->bos, path, why, ws)) < 0 ||
        (rc = json_int(j, "eos_token_id", -1, true, &c->eos, path, why, ws)) < 0 ||
        (rc = json_float(j, "rms_norm_eps", 1e-6f, &c->norm_eps, path, why, ws)) < 0 ||
        (rc = json_float(j, "rope_theta", 10000.0f, &c->rope_theta, path, why, ws)) < 0)
        return rc;
    if (c->n_heads <= 0) return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: num_attention_heads must be positive", path);
    if ((rc = json_int(j, "head_dim", c->dim / c->n_heads, true, &c->head_dim, path, why, ws)) < 0) return rc;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: hidden_act must be \"silu\"", path);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (rs && !cJSON_IsNull(rs))
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: rope_scaling is not supported (only plain RoPE)", path);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    *tie_explicit = cJSON_IsBool(tie) ? cJSON_IsTrue(tie) : -1;
    c->rope = BD_ROPE_HALF;
    c->qk_norm = !strcmp(type, "qwen3");
    char cwhy[200];
    if (bd_config_check(c, cwhy, sizeof cwhy) < 0 || c->max_seq <= 0)
        return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: %s", path,
                       c->max_seq <= 0 ? "max_position_embeddings must be positive" : cwhy);
    return BD_OK;
}

// ---- shards -------------------------------------------------------------------------------

typedef struct {
    bd_safetensors *st;
    bool **used;  // per shard, per tensor
    int n;
} shard_set;

static void shards_close(shard_set *s) {
    for (int i = 0; i < s->n; i++) {
        bd_safetensors_close(&s->st[i]);
        free(s->used[i]);
    }
    free(s->st);
    free(s->used);
    memset(s, 0, sizeof *s);
}

static int add_shard(shard_set *s, const char *dir, const char *file, char *why, size_t ws) {
    char path[4096];
    if (strstr(file, "..") || file[0] == '/')
        return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: shard name \"%.100s\" leaves the directory", dir, file);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->st[i].path, path)) return BD_OK;
    if (s->n >= MAX_SHARDS) return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: more than %d shards", dir, MAX_SHARDS);
    bd_safetensors *nst = realloc(s->st, ((size_t)s->n + 1) * sizeof *nst);
    if (!nst) return BD_ERR_NOMEM;
    s->st = nst;
    bool **nu = realloc(s->used, ((size_t)s->n + 1) * sizeof *nu);
    if (!nu) return BD_ERR_NOMEM;
    s->used = nu;
    int rc = bd_safetensors_open(&s->st[s->n], path, why, ws);
    if (rc < 0) return rc;
    if (!(s->used[s->n] = calloc((size_t)s->st[s->n].n + 1, sizeof(bool)))) {
        bd_safetensors_close(&s->st[s->n]);
        return BD_ERR_NOMEM;
    }
    s->n++;
    return BD_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int open_shards(shard_set *s, const char *dir, char *why, size_t ws) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    int rc = BD_OK;
    if (access(path, F_OK) == 0) {
        cJSON *idx = read_json(path, &rc, why, ws);
        if (!idx) return rc;
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
        if (!cJSON_IsObject(wm)) rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: no \"weight_map\" object", path);
        for (const cJSON *e = wm ? wm->child : NULL; rc == BD_OK && e; e = e->next) {
            if (!cJSON_IsString(e))
                rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: weight_map[\"%s\"] is not a file name", path, e->string);
            else
                rc = add_shard(s, dir, e->valuestring, why, ws);
        }
        cJSON_Delete(idx);
        if (rc == BD_OK && s->n == 0) rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: weight_map names no files", path);
        return rc;
    }
    DIR *d = opendir(dir);
    if (!d) return bd_fail(why, ws, BD_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 12 && !strcmp(e->d_name + len - 12, ".safetensors") && e->d_name[0] != '.') {
            char **nn = realloc(names, ((size_t)n + 1) * sizeof *nn);
            if (!nn || !(nn[n] = strdup(e->d_name))) {
                names = nn ? nn : names;
                rc = BD_ERR_NOMEM;
                break;
            }
            names = nn;
            n++;
        }
    }
    closedir(d);
    if (rc == BD_OK && n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; rc == BD_OK && i < n; i++) rc = add_shard(s, dir, names[i], why, ws);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc == BD_OK && s->n == 0)
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: no *.safetensors files (other weight formats are not supported)",
                     dir);
    return rc;
}

// Finds name in the shards; BD_ERR_MALFORMED if two shards both hold it. *t NULL if absent.
static int find_tensor(shard_set *s, const char *name, int *shard, const bd_st_tensor **t, char *why, size_t ws) {
    *t = NULL;
    for (int i = 0; i < s->n; i++) {
        const bd_st_tensor *x = bd_safetensors_find(&s->st[i], name);
        if (!x) continue;
        if (*t)
            return bd_fail(why, ws, BD_ERR_MALFORMED, "tensor %s is in both %s and %s", name, s->st[*shard].path,
                           s->st[i].path);
        *t = x;
        *shard = i;
    }
    return BD_OK;
}

// ---- mapped linears -------------------------------------------------------------------------

// What a mapped model holds on to: the open (mapped) safetensors files its linears point into.
struct bd_model_mapping {
    shard_set s;
};

void bd_model_mapping_free(struct bd_model_mapping *mp) {
    if (!mp) return;
    shards_close(&mp->s);
    free(mp);
}

int bd_model_copy_mapped(bd_model *m, uint64_t budget, uint64_t *copied) {
    *copied = 0;
    if (!m->mapping || !m->packed) return BD_OK;
    bd_pk_model *p = m->packed;
    int n = m->cfg.n_layers * BD_N_LINEARS;
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++)
        if (p->slots[i].borrowed) bytes += p->slots[i].row_bytes * (uint64_t)p->slots[i].rows;
    if (!bytes || bytes > budget) return BD_OK;
    bd_pk_tensor *own = calloc((size_t)n, sizeof *own);
    int rc = own ? BD_OK : BD_ERR_NOMEM;
    for (int i = 0; i < n && rc == BD_OK; i++) {
        if (!p->slots[i].borrowed) continue;
        own[i] = p->slots[i];
        own[i].borrowed = false;
        if ((rc = bd_pk_alloc(&own[i])) == BD_OK)
            memcpy(own[i].data, p->slots[i].data, p->slots[i].row_bytes * (size_t)p->slots[i].rows);
    }
    for (int i = 0; own && i < n; i++) {  // all copied: take them; else drop what was
        if (!p->slots[i].borrowed || !own[i].data) continue;
        if (rc == BD_OK)
            p->slots[i] = own[i];
        else
            bd_pk_free(&own[i]);
    }
    free(own);
    if (rc < 0) return rc;
    shards_close(&m->mapping->s);  // nothing points into the files now (m->mapping stays: no f32 linears)
    *copied = bytes;
    return BD_OK;
}

// The top bit of each 16-bit lane of w (four little-endian values) whose bits include all of
// mask (the exponent: NaN or inf in both bf16 and f16). Per lane, x = ~w & mask is zero
// exactly for such a value, and x + 0x7fff sets the lane's top bit exactly when x is not zero
// (x fits in 15 bits, so no carry crosses a lane).
static uint64_t nonfinite_lanes(uint64_t w, uint64_t mask4) {
    uint64_t x = ~w & mask4;
    return ~(x + UINT64_C(0x7fff7fff7fff7fff)) & UINT64_C(0x8000800080008000);
}

// Index of the first NaN/inf among n little-endian 16-bit values of dtype dt, or -1. Chunks
// of 512 values, four per 64-bit word with no branch inside (a loop that vectorizes; the byte
// loop it replaced ran at 2.9 GB/s, and this pass over a mapped model is the only one its load
// makes); a chunk that has one is searched byte by byte for the index.
static long long first_nonfinite16(const uint8_t *p, size_t n, bd_dtype dt) {
    uint16_t mask = dt == BD_BF16 ? 0x7f80 : 0x7c00;
    uint64_t mask4 = mask * UINT64_C(0x0001000100010001);
    size_t i = 0;
    for (; i + 512 <= n; i += 512) {
        uint64_t bad = 0;
        for (size_t k = 0; k < 128; k++) {
            uint64_t w;
            memcpy(&w, p + 2 * i + 8 * k, 8);
            bad |= nonfinite_lanes(w, mask4);
        }
        if (bad) break;
    }
    for (; i < n; i++)
        if (((p[2 * i] | p[2 * i + 1] << 8) & mask) == mask) return (long long)i;
    return -1;
}

// Slot (layer l, linear k) of m->packed becomes a view of x's rows in the mapped file: bf16, f16
// or f32 as stored, checked finite. A tensor not aligned to its element size is copied instead.
static int map_linear(bd_model *m, const bd_safetensors *st, const bd_st_tensor *x, const char *name, int l,
                      bd_linear k, char *why, size_t ws) {
    int type = x->dtype == BD_BF16 ? BD_PK_BF16 : x->dtype == BD_F16 ? BD_PK_F16 : x->dtype == BD_F32 ? BD_PK_F32 : -1;
    if (type < 0)
        return bd_fail(why, ws, BD_ERR_SHAPE, "%s: tensor %s is %s; only F32, BF16 and F16 weights are read", st->path,
                       name, x->dtype_name);
    bd_pk_tensor *t = &m->packed->slots[l * BD_N_LINEARS + (int)k];
    if (bd_pk_geometry(t, (bd_pk_type)type, (int)x->shape[0], (int)x->shape[1], 0) < 0)
        return bd_fail(why, ws, BD_ERR_SHAPE, "%s: tensor %s: impossible shape", st->path, name);
    const uint8_t *src = bd_safetensors_data(st, x);
    size_t esize = bd_dtype_size((bd_dtype)x->dtype), n = (size_t)x->numel;
    if ((uintptr_t)src % esize == 0) {
        t->data = (uint8_t *)src;  // read only: the kernels never write weights
        t->borrowed = true;
    } else {
        if (bd_pk_alloc(t) < 0) return bd_fail(why, ws, BD_ERR_NOMEM, "%s: out of memory for %s", st->path, name);
        memcpy(t->data, src, n * esize);
    }
    if (type == BD_PK_F32) {
        float *f = (float *)t->data;
        for (size_t i = 0; i < n; i++)
            if (!isfinite(f[i])) return bd_io_check_finite(f, n, st->path, name, why, ws);
        return BD_OK;
    }
    long long bad = first_nonfinite16(t->data, n, (bd_dtype)x->dtype);
    if (bad >= 0)
        return bd_fail(why, ws, BD_ERR_VALUE, "%s: tensor %s: element %lld is not finite", st->path, name, bad);
    return BD_OK;
}

// ---- loading ------------------------------------------------------------------------------

// The config of the model in dir: config.json, with the qkv bias and the tied head told by
// the tensors the shards s (opened here; the caller closes them) hold.
static int hf_config(const char *dir, bd_config *cfg, shard_set *s, char *why, size_t ws) {
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    int rc = BD_OK, tie_explicit = -1;
    cJSON *cj = read_json(cpath, &rc, why, ws);
    if (!cj) return rc;
    rc = parse_config(cj, cpath, cfg, &tie_explicit, why, ws);
    cJSON_Delete(cj);
    if (rc < 0 || (rc = open_shards(s, dir, why, ws)) < 0) return rc;
    int sh;
    const bd_st_tensor *x;
    if ((rc = find_tensor(s, "model.layers.0.self_attn.q_proj.bias", &sh, &x, why, ws)) < 0) return rc;
    cfg->qkv_bias = x != NULL || !strcmp(cfg->arch, "qwen2");
    if ((rc = find_tensor(s, "lm_head.weight", &sh, &x, why, ws)) < 0) return rc;
    // Tied when the config says so (HF then ignores lm_head.weight), or when nothing says
    // otherwise and there is no lm_head.weight.
    cfg->tied_embeddings = tie_explicit == 1 || (tie_explicit == -1 && !x);
    return BD_OK;
}

int bd_hf_peek(const char *dir, bd_config *cfg, char *why, size_t ws) {
    shard_set s = {0};
    int rc = hf_config(dir, cfg, &s, why, ws);
    shards_close(&s);
    return rc;
}

int bd_load_hf(const char *dir, bool mapped, bd_model *m, char *why, size_t ws) {
    memset(m, 0, sizeof *m);
    bd_config cfg;
    shard_set s = {0};
    int sh, rc;
    const bd_st_tensor *x;
    if ((rc = hf_config(dir, &cfg, &s, why, ws)) < 0) goto out;
    if ((rc = mapped ? bd_model_alloc_frozen(m, &cfg) : bd_model_alloc(m, &cfg)) < 0) {
        bd_fail(why, ws, rc, "%s: cannot allocate the model", dir);
        goto out;
    }
    if (mapped && !(m->packed = bd_pk_model_new(&cfg))) {
        rc = bd_fail(why, ws, BD_ERR_NOMEM, "%s: cannot allocate the model", dir);
        goto out;
    }

    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&cfg, t, NULL);
    char name[160];
    for (int k = 0; k < nt; k++) {
        const bd_param_entry *e = &t[k];
        bool layered = is_layered(e->name);
        int nl = layered ? cfg.n_layers : 1;
        size_t per = e->numel / (size_t)nl;
        // Expected HF shape: the table's shape without the layer axis.
        int nd = layered ? e->ndim - 1 : e->ndim;
        const long long *want = layered ? e->shape + 1 : e->shape;
        for (int l = 0; l < nl; l++) {
            hf_name(e->name, layered ? l : -1, name, sizeof name);
            if ((rc = find_tensor(&s, name, &sh, &x, why, ws)) < 0) goto out;
            if (!x) {
                rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: missing tensor %s%s", dir, name,
                             !strcmp(e->name, "wcls") ? " (tie_word_embeddings is false)" : "");
                goto out;
            }
            bool ok = x->ndim == nd;
            for (int d = 0; ok && d < nd; d++) ok = x->shape[d] == want[d];
            if (!ok) {
                char got[96] = "", exp[96] = "";
                for (int d = 0; d < x->ndim; d++)
                    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                             (long long)x->shape[d]);
                for (int d = 0; d < nd; d++)
                    snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", d ? ", " : "", want[d]);
                rc = bd_fail(why, ws, BD_ERR_SHAPE, "%s: tensor %s has shape [%s], config.json implies [%s]",
                             s.st[sh].path, name, got, exp);
                goto out;
            }
            s.used[sh][x - s.st[sh].tensors] = true;
            if (mapped && e->is_linear) {
                if ((rc = map_linear(m, &s.st[sh], x, name, l, (bd_linear)bd_linear_parse(e->name), why, ws)) < 0)
                    goto out;
                continue;
            }
            float *dst = bd_weights_get(&m->w, e->name) + (size_t)l * per;
            if ((rc = bd_safetensors_read_f32(&s.st[sh], x, dst, why, ws)) < 0) goto out;
            if ((rc = bd_io_check_finite(dst, per, s.st[sh].path, name, why, ws)) < 0) goto out;
        }
    }
    // Every tensor in the files must have been used: anything else means the config and
    // the weights disagree (or a feature bd does not implement, such as o_proj.bias).
    for (int i = 0; i < s.n; i++)
        for (int k = 0; k < s.st[i].n; k++) {
            const char *nm = s.st[i].tensors[k].name;
            size_t len = strlen(nm), sl = strlen("rotary_emb.inv_freq");
            if (s.used[i][k] || (len >= sl && !strcmp(nm + len - sl, "rotary_emb.inv_freq"))) continue;
            if (!strcmp(nm, "lm_head.weight") && cfg.tied_embeddings) continue;  // HF ignores it when tied
            rc = bd_fail(why, ws, BD_ERR_SCHEMA,
                         "%s: unexpected tensor %s (not part of a %s model with this config.json)", s.st[i].path, nm,
                         cfg.arch);
            goto out;
        }
    bd_log(BD_LOG_INFO, "%s: Hugging Face %s model from %d safetensors file%s%s", dir, cfg.arch, s.n,
           s.n == 1 ? "" : "s", mapped ? ", linear layers mapped in the file's dtype" : "");
    if (mapped) {
        if (!(m->mapping = calloc(1, sizeof *m->mapping))) {
            rc = bd_fail(why, ws, BD_ERR_NOMEM, "%s: cannot allocate the model", dir);
            goto out;
        }
        m->mapping->s = s;  // the model's slots point into these files now
        return BD_OK;
    }
out:
    if (rc < 0) bd_model_free(m);
    shards_close(&s);
    return rc;
}

// ---- export -------------------------------------------------------------------------------

// The shortest decimal that reads back as the same float, as a double for cJSON.
static double float_for_json(float f) {
    char buf[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static int write_config(const bd_config *c, const char *arch_cls, const char *type, const char *torch_dtype,
                        const char *path, char *why, size_t ws) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return BD_ERR_NOMEM;
    cJSON *arr = cJSON_AddArrayToObject(j, "architectures");
    if (arr) cJSON_AddItemToArray(arr, cJSON_CreateString(arch_cls));
    cJSON_AddStringToObject(j, "model_type", type);
    cJSON_AddNumberToObject(j, "hidden_size", c->dim);
    cJSON_AddNumberToObject(j, "intermediate_size", c->ffn_dim);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_seq);
    cJSON_AddNumberToObject(j, "rms_norm_eps", float_for_json(c->norm_eps));
    cJSON_AddNumberToObject(j, "rope_theta", float_for_json(c->rope_theta));
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tied_embeddings);
    cJSON_AddBoolToObject(j, "attention_bias", c->qkv_bias && !strcmp(type, "llama"));
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddStringToObject(j, "torch_dtype", torch_dtype);
    if (c->bos >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos);
    if (c->eos >= 0) cJSON_AddNumberToObject(j, "eos_token_id", c->eos);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return BD_ERR_NOMEM;
    int rc = BD_OK;
    bd_outfile *o = bd_outfile_open(path, "w");
    if (!o)
        rc = bd_fail(why, ws, BD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    else if (fputs(text, bd_outfile_fp(o)) == EOF || fputc('\n', bd_outfile_fp(o)) == EOF) {
        int e = errno;
        bd_outfile_abort(o);
        rc = bd_fail(why, ws, BD_ERR_IO, "%s: write failed: %s", path, strerror(e));
    } else if ((rc = bd_outfile_commit(o)) < 0)
        bd_fail(why, ws, rc, "%s: write failed: %s", path, strerror(errno));
    free(text);
    return rc;
}

int bd_model_save_hf(const bd_model *m, const char *dir, bd_dtype dtype, char *why, size_t ws) {
    const bd_config *c = &m->cfg;
    char cwhy[200];
    if (!m->params || m->mapping || bd_config_check(c, cwhy, sizeof cwhy) < 0)
        return bd_fail(why, ws, BD_ERR_ARG, "%s: cannot export: %s", dir,
                       !m->params   ? "empty model"
                       : m->mapping ? "its linears are mapped, not in memory"
                                    : cwhy);
    if (dtype != BD_F32 && dtype != BD_BF16)
        return bd_fail(why, ws, BD_ERR_ARG, "%s: Hugging Face export writes f32 or bf16", dir);
    if (c->qkv_bias && c->qk_norm)
        return bd_fail(why, ws, BD_ERR_ARG, "%s: no Hugging Face architecture has both qkv bias and q/k norm", dir);
    if (c->subln)
        return bd_fail(why, ws, BD_ERR_ARG,
                       "%s: a SubLN model cannot be exported to Hugging Face (no Llama/Qwen tensor for its sub-norms)",
                       dir);
    int frc = bd_io_check_model_finite(m, dir, why, ws);
    if (frc < 0) return frc;
    const char *type = c->qk_norm ? "qwen3" : c->qkv_bias ? "qwen2" : "llama";
    const char *cls = c->qk_norm ? "Qwen3ForCausalLM" : c->qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return bd_fail(why, ws, BD_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));

    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(c, t, NULL);
    size_t cap = 3 + (size_t)c->n_layers * BD_MAX_PARAMS;
    bd_st_write_tensor *wt = calloc(cap, sizeof *wt);
    char(*names)[96] = calloc(cap, sizeof *names);
    // Interleaved models: permuted copies of the tensors RoPE touches (the model is const);
    // bf16: converted copies of every tensor.
    float *perm[BD_MAX_PARAMS] = {0};
    uint16_t *half[BD_MAX_PARAMS] = {0};
    int n = 0, rc = BD_OK;
    if (!wt || !names) {
        rc = BD_ERR_NOMEM;
        goto out;
    }
    for (int k = 0; k < nt; k++) {
        const bd_param_entry *e = &t[k];
        bool layered = is_layered(e->name);
        int nl = layered ? c->n_layers : 1;
        size_t per = e->numel / (size_t)nl;
        const float *src = m->params + e->offset;
        int heads = !strcmp(e->name, "wq") || !strcmp(e->name, "bq")           ? c->n_heads
                    : !strcmp(e->name, "wk") || !strcmp(e->name, "bk")         ? c->n_kv_heads
                    : !strcmp(e->name, "q_norm") || !strcmp(e->name, "k_norm") ? 1
                                                                               : 0;
        if (heads && c->rope != BD_ROPE_HALF) {
            if (!(perm[k] = malloc(e->numel * sizeof(float)))) {
                rc = BD_ERR_NOMEM;
                goto out;
            }
            size_t cols = per / ((size_t)heads * (size_t)c->head_dim);
            for (int l = 0; l < nl; l++)
                bd_rope_permute_rows(perm[k] + (size_t)l * per, src + (size_t)l * per, heads, c->head_dim, cols,
                                     BD_ROPE_HALF);
            src = perm[k];
        }
        if (dtype == BD_BF16) {
            if (!(half[k] = malloc(e->numel * sizeof(uint16_t)))) {
                rc = BD_ERR_NOMEM;
                goto out;
            }
            for (size_t i = 0; i < e->numel; i++) half[k][i] = bd_f32_to_bf16(src[i]);
        }
        for (int l = 0; l < nl; l++) {
            hf_name(e->name, layered ? l : -1, names[n], sizeof names[n]);
            bd_st_write_tensor *w = &wt[n];
            w->name = names[n];
            w->dtype = dtype;
            w->ndim = layered ? e->ndim - 1 : e->ndim;
            for (int d = 0; d < w->ndim; d++) w->shape[d] = layered ? e->shape[d + 1] : e->shape[d];
            w->data = dtype == BD_BF16 ? (const void *)(half[k] + (size_t)l * per)
                                       : (const void *)(src + (size_t)l * per);
            n++;
        }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    static const char *const meta[] = {"format", "pt"};
    if ((rc = bd_safetensors_write(path, wt, n, meta, 1, why, ws)) < 0) goto out;
    snprintf(path, sizeof path, "%s/config.json", dir);
    rc = write_config(c, cls, type, dtype == BD_BF16 ? "bfloat16" : "float32", path, why, ws);
out:
    for (int k = 0; k < BD_MAX_PARAMS; k++) free(perm[k]), free(half[k]);
    free(wt);
    free(names);
    return rc;
}
