#include "bd_qmodel.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

int bd_qpolicy_exclude(bd_qpolicy *p, const char *pattern) {
    if (p->n_exclude >= BD_QPOLICY_MAX_EXCLUDE || strlen(pattern) >= sizeof p->exclude[0]) return BD_ERR_ARG;
    strcpy(p->exclude[p->n_exclude++], pattern);
    return BD_OK;
}

bool bd_qpolicy_covers(const bd_qpolicy *p, const char *name, int layer) {
    static const char *linears[] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};
    bool linear = false;
    for (size_t i = 0; i < sizeof linears / sizeof linears[0]; i++) linear |= strcmp(name, linears[i]) == 0;
    if (!linear && !(p->include_head && strcmp(name, "wcls") == 0)) return false;
    char full[96];
    if (layer >= 0)
        snprintf(full, sizeof full, "layers.%d.%s", layer, name);
    else
        snprintf(full, sizeof full, "%s", name);
    for (int i = 0; i < p->n_exclude; i++)
        if (fnmatch(p->exclude[i], full, 0) == 0 || fnmatch(p->exclude[i], name, 0) == 0) return false;
    return true;
}

int bd_qpolicy_check(const bd_qpolicy *p, const bd_qspec *q, const bd_config *cfg, char *why, size_t why_size) {
    if (p->act_bits != 0 && p->act_bits != 8) {
        snprintf(why, why_size, "activations are quantized to 8 bits or not at all (act_bits %d)", p->act_bits);
        return BD_ERR_ARG;
    }
    if (p->include_head && cfg->tied_embeddings) {
        snprintf(why, why_size, "the output head shares the embedding table; it cannot be quantized alone");
        return BD_ERR_ARG;
    }
    bd_param_entry t[BD_MAX_PARAMS];
    int n = bd_param_table(cfg, t, NULL);
    for (int i = 0; i < n; i++) {
        bool is_head = strcmp(t[i].name, "wcls") == 0;
        if (!t[i].is_linear && !is_head) continue;
        int C = (int)t[i].shape[t[i].ndim - 1];
        char reason[160];
        if ((is_head ? p->include_head : true) && bd_qspec_check(q, C, reason, sizeof reason) < 0) {
            snprintf(why, why_size, "%s: %s", t[i].name, reason);
            return BD_ERR_ARG;
        }
    }
    return BD_OK;
}

int bd_model_fakequant(bd_model *dst, const bd_model *src, const bd_qspec *q, const bd_qpolicy *p, char *why,
                       size_t why_size) {
    if (dst->n_params != src->n_params) {
        snprintf(why, why_size, "models differ in size");
        return BD_ERR_ARG;
    }
    int rc = bd_qpolicy_check(p, q, &src->cfg, why, why_size);
    if (rc < 0) return rc;
    if (dst != src) memcpy(dst->params, src->params, src->n_params * sizeof(float));
    if (q->kind == BD_Q_NONE) return BD_OK;
    bd_param_entry t[BD_MAX_PARAMS];
    int n = bd_param_table(&src->cfg, t, NULL);
    for (int i = 0; i < n; i++) {
        if (!t[i].is_linear && strcmp(t[i].name, "wcls") != 0) continue;
        bool stacked = t[i].ndim == 3;  // (L, OC, C) per-layer matrices
        int layers = stacked ? (int)t[i].shape[0] : 1;
        int OC = (int)t[i].shape[t[i].ndim - 2], C = (int)t[i].shape[t[i].ndim - 1];
        for (int l = 0; l < layers; l++) {
            if (!bd_qpolicy_covers(p, t[i].name, stacked ? l : -1)) continue;
            size_t off = t[i].offset + (size_t)l * OC * C;
            rc = bd_fakequant_forward(dst->params + off, dst->params + off, OC, C, q);
            if (rc < 0) {
                snprintf(why, why_size, "%s of layer %d: %s", t[i].name, l,
                         rc == BD_ERR_VALUE ? "NaN or infinite weight" : "cannot be quantized with this spec");
                return rc;
            }
        }
    }
    return BD_OK;
}
