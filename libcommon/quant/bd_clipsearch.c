#include "bd_clipsearch.h"

#include <stdlib.h>
#include <string.h>

#include "bd_packed.h"

int bd_clip_calibrate(bd_fwd_state *st, const bd_model *m, const int32_t *ids, int B, int T, char *why, size_t ws) {
    if (bd_fwd_state_init(st, &m->cfg, B, T, true) < 0)
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for %d x %d calibration activations", B, T);
    int rc = bd_forward(st, m, ids, B, T, NULL);
    return rc < 0 ? bd_fail(why, ws, rc, "forward pass failed: %s", st->why) : BD_OK;
}

void bd_clip_positions(int *pos, int n, int N, uint64_t seed) {
    for (int i = 0; i < n; i++) pos[i] = i;
    uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < N; i++) {  // partial Fisher-Yates: the first N entries are the sample
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int j = i + (int)(rng % (uint64_t)(n - i));
        int tmp = pos[i];
        pos[i] = pos[j];
        pos[j] = tmp;
    }
}

// The widest input (maxC) and the most output channels (maxOC) of a block linear.
static void widest(const bd_config *c, size_t *maxC, size_t *maxOC) {
    size_t QD = (size_t)c->n_heads * c->head_dim;
    *maxC = (size_t)(c->dim > c->ffn_dim ? c->dim : c->ffn_dim);
    if (QD > *maxC) *maxC = QD;
    *maxOC = (size_t)c->ffn_dim > QD ? (size_t)c->ffn_dim : QD;
}

size_t bd_clip_model_bytes(const bd_config *c, int N, const bd_clip_opts *o) {
    size_t maxC, maxOC, search = 0;
    widest(c, &maxC, &maxOC);
    int QD = c->n_heads * c->head_dim, ins[3] = {c->dim, QD, c->ffn_dim};
    for (int i = 0; i < 3; i++) {
        size_t b = bd_clip_search_bytes(N, ins[i], &o->q, o->grid);
        if (b > search) search = b;
    }
    return sizeof(float) * ((size_t)N * maxC + 2 * maxOC * maxC) + search;
}

int bd_clip_model(const bd_model *m, const bd_fwd_state *st, const int *pos, int N, const bd_clip_opts *o,
                  bd_clip_emit_fn emit, void (*progress)(void *ctx, uint64_t done), void *ctx, int *searched, char *why,
                  size_t ws) {
    const bd_config *c = &m->cfg;
    int QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    struct {
        const char *name;
        float *weights;
        float *inputs;
        int OC, C;
    } lin[7] = {{"wq", m->w.wq, st->xn_att, QD, c->dim},         {"wk", m->w.wk, st->xn_att, KD, c->dim},
                {"wv", m->w.wv, st->xn_att, KD, c->dim},         {"wo", m->w.wo, st->att, c->dim, QD},
                {"w1", m->w.w1, st->xn_ffn, c->ffn_dim, c->dim}, {"w3", m->w.w3, st->xn_ffn, c->ffn_dim, c->dim},
                {"w2", m->w.w2, st->hg, c->dim, c->ffn_dim}};
    for (int k = 0; k < 7; k++) {  // SubLN: a linear's input is its sub-norm's output
        int lk = bd_linear_parse(lin[k].name);
        if (bd_subln_has(c, lk)) lin[k].inputs = bd_acts_sub(&st->acts, (bd_linear)lk);
    }
    size_t maxC, maxOC;  // bd_clip_model_bytes counts these buffers
    widest(c, &maxC, &maxOC);
    float *X = malloc(sizeof(float) * (size_t)N * maxC), *mx = malloc(sizeof(float) * maxOC * maxC),
          *mn = malloc(sizeof(float) * maxOC * maxC);
    // A mapped model's linears (bd_model_load_mapped) are decoded here one matrix at a time.
    float *rows = m->mapping ? malloc(sizeof(float) * maxOC * maxC) : NULL;
    int rc = X && mx && mn && (rows || !m->mapping) ? BD_OK : bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    *searched = 0;
    for (int l = 0; rc == BD_OK && l < c->n_layers; l++)
        for (int k = 0; rc == BD_OK && k < 7; k++) {
            if (progress) progress(ctx, (uint64_t)(l * 7 + k));
            bool qk = k < 2;
            if ((qk && !o->include_qk) || !bd_qpolicy_covers(&o->policy, lin[k].name, l)) continue;
            int OC = lin[k].OC, C = lin[k].C, G = bd_qspec_group(&o->q, C);
            const float *act = bd_fwd_layer(st, lin[k].inputs, l, (size_t)C);
            for (int i = 0; i < N; i++) memcpy(X + (size_t)i * C, act + (size_t)pos[i] * C, sizeof(float) * (size_t)C);
            const float *W = lin[k].weights
                                     ? lin[k].weights + (size_t)l * OC * C
                                     : bd_pk_model_linear_f32(m, l, (bd_linear)bd_linear_parse(lin[k].name), rows);
            if (!W)
                rc = bd_fail(why, ws, BD_ERR_ARG, "layer %d %s: the model has no weights for it", l, lin[k].name);
            else if ((rc = bd_clip_search(mx, mn, W, X, N, OC, C, &o->q, o->grid)) < 0)
                bd_fail(why, ws, rc, "layer %d %s: clip search failed: %s", l, lin[k].name, bd_strerror(rc));
            else if ((rc = emit(ctx, lin[k].name, l, mx, mn, OC, bd_qspec_ngroups(C, G))) == BD_OK)
                (*searched)++;
        }
    free(X), free(mx), free(mn), free(rows);
    return rc;
}
