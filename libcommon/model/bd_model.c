#include "bd_model.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_hugemem.h"
#include "bd_packed.h"

const char *const bd_linear_names[BD_N_LINEARS] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};

int bd_linear_parse(const char *name) {
    for (int k = 0; k < BD_N_LINEARS; k++)
        if (strcmp(name, bd_linear_names[k]) == 0) return k;
    return -1;
}

const char *const bd_subln_names[BD_N_LINEARS] = {"wq_sub_norm", "wk_sub_norm",  "wv_sub_norm", "attn_sub_norm",
                                                  "w1_sub_norm", "ffn_sub_norm", "w3_sub_norm"};
static const char *const subln_kinds[BD_SUBLN_COUNT] = {"none", "paper", "all"};

const char *bd_subln_name(bd_subln s) { return (unsigned)s < BD_SUBLN_COUNT ? subln_kinds[s] : "?"; }

int bd_subln_parse(const char *name) {
    for (int i = 0; i < BD_SUBLN_COUNT; i++)
        if (strcmp(name, subln_kinds[i]) == 0) return i;
    return -1;
}

bool bd_subln_has(const bd_config *c, int k) {
    if (k < 0 || k >= BD_N_LINEARS) return false;
    return c->subln == BD_SUBLN_ALL || (c->subln == BD_SUBLN_PAPER && (k == BD_WO || k == BD_W2));
}

int bd_linear_in(const bd_config *c, int k) {
    return k == BD_WO ? c->n_heads * c->head_dim : k == BD_W2 ? c->ffn_dim : c->dim;
}

int bd_config_check(const bd_config *c, char *why, size_t why_size) {
    const char *bad = NULL;
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->ffn_dim <= 0 || c->vocab <= 0 || c->max_seq <= 0)
        bad = "sizes must be positive";
    else if (c->n_heads % c->n_kv_heads != 0)
        bad = "n_kv_heads must divide n_heads";
    else if (c->head_dim % 2 != 0)
        bad = "head_dim must be even for RoPE";
    else if (!(c->norm_eps > 0) || !(c->rope_theta > 0))
        bad = "norm_eps and rope_theta must be positive";
    else if ((unsigned)c->subln >= BD_SUBLN_COUNT)
        bad = "unknown SubLN placement";
    else if (c->subln != BD_SUBLN_NONE && !(c->subln_eps > 0 && c->subln_eps < 1))
        bad = "subln_eps must be in (0, 1)";
    else if (c->dim > (1 << 20) || c->ffn_dim > (1 << 22) || c->vocab > (1 << 24) || c->n_layers > 1024)
        bad = "sizes are implausibly large";
    if (!bad) return BD_OK;
    if (why) snprintf(why, why_size, "invalid model config: %s", bad);
    return BD_ERR_VALUE;
}

int bd_param_table(const bd_config *c, bd_param_entry *t, size_t *total) {
    long long V = c->vocab, C = c->dim, L = c->n_layers, HS = c->head_dim;
    long long QD = (long long)c->n_heads * HS, KD = (long long)c->n_kv_heads * HS, F = c->ffn_dim;
    int n = 0;
    size_t off = 0;
#define ADD(nm, lin, nd, a, b, cc)                                                               \
    do {                                                                                         \
        t[n] = (bd_param_entry){nm, nd, {a, b, cc}, off, 0, lin};                                \
        t[n].numel = (size_t)(a) * (size_t)((nd) > 1 ? (b) : 1) * (size_t)((nd) > 2 ? (cc) : 1); \
        off += t[n].numel;                                                                       \
        n++;                                                                                     \
    } while (0)
    ADD("tok_emb", false, 2, V, C, 0);
    ADD("rms_att", false, 2, L, C, 0);
    ADD("wq", true, 3, L, QD, C);
    ADD("wk", true, 3, L, KD, C);
    ADD("wv", true, 3, L, KD, C);
    ADD("wo", true, 3, L, C, QD);
    for (int k = BD_WQ; k <= BD_WO; k++)  // SubLN weights of the attention's linears
        if (bd_subln_has(c, k)) ADD(bd_subln_names[k], false, 2, L, bd_linear_in(c, k), 0);
    if (c->qkv_bias) {
        ADD("bq", false, 2, L, QD, 0);
        ADD("bk", false, 2, L, KD, 0);
        ADD("bv", false, 2, L, KD, 0);
    }
    if (c->qk_norm) {
        ADD("q_norm", false, 2, L, HS, 0);
        ADD("k_norm", false, 2, L, HS, 0);
    }
    ADD("rms_ffn", false, 2, L, C, 0);
    ADD("w1", true, 3, L, F, C);
    ADD("w2", true, 3, L, C, F);
    ADD("w3", true, 3, L, F, C);
    for (int k = BD_W1; k <= BD_W3; k++)  // SubLN weights of the FFN's linears
        if (bd_subln_has(c, k)) ADD(bd_subln_names[k], false, 2, L, bd_linear_in(c, k), 0);
    ADD("rms_final", false, 1, C, 0, 0);
    if (!c->tied_embeddings) ADD("wcls", false, 2, V, C, 0);
#undef ADD
    if (total) *total = off;
    return n;
}

// Points w's fields into base by the table, at the given offsets (in floats; SIZE_MAX: no storage, NULL).
// The field of w that holds tensor name (a bd_param_table name), or NULL for an unknown name.
static float **field(bd_weights *w, const char *name) {
    static const struct {
        const char *name;
        size_t offset;
    } f[] = {{"tok_emb", offsetof(bd_weights, tok_emb)}, {"rms_att", offsetof(bd_weights, rms_att)},
             {"wq", offsetof(bd_weights, wq)},           {"wk", offsetof(bd_weights, wk)},
             {"wv", offsetof(bd_weights, wv)},           {"wo", offsetof(bd_weights, wo)},
             {"bq", offsetof(bd_weights, bq)},           {"bk", offsetof(bd_weights, bk)},
             {"bv", offsetof(bd_weights, bv)},           {"q_norm", offsetof(bd_weights, q_norm)},
             {"k_norm", offsetof(bd_weights, k_norm)},   {"rms_ffn", offsetof(bd_weights, rms_ffn)},
             {"w1", offsetof(bd_weights, w1)},           {"w2", offsetof(bd_weights, w2)},
             {"w3", offsetof(bd_weights, w3)},           {"rms_final", offsetof(bd_weights, rms_final)},
             {"wcls", offsetof(bd_weights, wcls)}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!strcmp(name, f[i].name)) return (float **)((char *)w + f[i].offset);
    for (int k = 0; k < BD_N_LINEARS; k++)
        if (!strcmp(name, bd_subln_names[k])) return &w->sub_norm[k];
    return NULL;
}

float *bd_weights_get(const bd_weights *w, const char *name) {
    float **p = field((bd_weights *)w, name);
    return p ? *p : NULL;
}

// Points w's fields into base by the table, at the given offsets (in floats; SIZE_MAX: no storage, NULL).
static void layout_at(const bd_config *cfg, float *base, const bd_param_entry *t, int n, const size_t *offset,
                      bd_weights *w) {
    memset(w, 0, sizeof *w);
    for (int i = 0; i < n; i++) {
        float **f = field(w, t[i].name);
        if (f) *f = offset[i] == SIZE_MAX ? NULL : base + offset[i];
    }
    if (cfg->tied_embeddings) w->wcls = w->tok_emb;
}

void bd_weights_layout(const bd_config *cfg, float *base, bd_weights *w) {
    bd_param_entry t[BD_MAX_PARAMS];
    size_t offset[BD_MAX_PARAMS];
    int n = bd_param_table(cfg, t, NULL);
    for (int i = 0; i < n; i++) offset[i] = t[i].offset;
    layout_at(cfg, base, t, n, offset, w);
}

int bd_model_alloc(bd_model *m, const bd_config *cfg) {
    memset(m, 0, sizeof *m);
    if (bd_config_check(cfg, NULL, 0) < 0) return BD_ERR_VALUE;
    size_t total;
    bd_param_entry t[BD_MAX_PARAMS];
    bd_param_table(cfg, t, &total);
    m->params = total <= SIZE_MAX / sizeof(float) ? bd_huge_alloc(total * sizeof(float)) : NULL;  // zeroed
    if (!m->params) return BD_ERR_NOMEM;
    m->cfg = *cfg;
    m->n_params = total;
    bd_weights_layout(cfg, m->params, &m->w);
    return BD_OK;
}

int bd_model_alloc_frozen(bd_model *m, const bd_config *cfg) {
    memset(m, 0, sizeof *m);
    if (bd_config_check(cfg, NULL, 0) < 0) return BD_ERR_VALUE;
    bd_param_entry t[BD_MAX_PARAMS];
    size_t offset[BD_MAX_PARAMS], total = 0;
    int n = bd_param_table(cfg, t, NULL);
    for (int i = 0; i < n; i++) {
        offset[i] = t[i].is_linear ? SIZE_MAX : total;
        if (!t[i].is_linear) total += t[i].numel;
    }
    if (!(m->params = bd_huge_alloc(total * sizeof(float)))) return BD_ERR_NOMEM;
    m->cfg = *cfg;
    m->n_params = total;
    layout_at(cfg, m->params, t, n, offset, &m->w);
    return BD_OK;
}

void bd_model_free(bd_model *m) {
    bd_pk_model_free(m->packed);
    bd_model_mapping_free(m->mapping);
    bd_huge_free(m->params);
    memset(m, 0, sizeof *m);
}

int bd_model_add_subln(bd_model *m, bd_subln s, float eps, char *why, size_t ws) {
    if (m->packed) return bd_fail(why, ws, BD_ERR_ARG, "SubLN cannot be added to a packed model");
    if (m->cfg.subln != BD_SUBLN_NONE)
        return bd_fail(why, ws, BD_ERR_ARG, "the model already has SubLN norms (%s)", bd_subln_name(m->cfg.subln));
    bd_config c = m->cfg;
    c.subln = s;
    c.subln_eps = eps;
    char cwhy[160];
    if (s == BD_SUBLN_NONE || bd_config_check(&c, cwhy, sizeof cwhy) < 0)
        return bd_fail(why, ws, BD_ERR_ARG, "cannot add SubLN: %s", s == BD_SUBLN_NONE ? "no placement" : cwhy);
    bd_model n;
    int rc = bd_model_alloc(&n, &c);
    if (rc < 0) return bd_fail(why, ws, rc, "cannot add SubLN: out of memory");
    bd_param_entry to[BD_MAX_PARAMS], from[BD_MAX_PARAMS];
    int nto = bd_param_table(&c, to, NULL), nfrom = bd_param_table(&m->cfg, from, NULL);
    for (int i = 0; i < nto; i++) {
        const bd_param_entry *e = NULL;
        for (int j = 0; j < nfrom && !e; j++)
            if (!strcmp(from[j].name, to[i].name)) e = &from[j];
        float *dst = n.params + to[i].offset;
        if (e)
            memcpy(dst, m->params + e->offset, e->numel * sizeof(float));
        else  // a new SubLN weight
            for (size_t k = 0; k < to[i].numel; k++) dst[k] = 1.0f;
    }
    n.quant = m->quant;
    n.qpolicy = m->qpolicy;
    memcpy(n.tok_path, m->tok_path, sizeof n.tok_path);
    memcpy(n.tok_id, m->tok_id, sizeof n.tok_id);
    bd_model_free(m);
    *m = n;
    return BD_OK;
}
