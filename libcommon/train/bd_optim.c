#include "bd_optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t bd_adamw_state_bytes(size_t k, bd_dtype moments) {  // m and v
    return 2 * (k ? k : 1) * (moments == BD_BF16 ? sizeof(uint16_t) : sizeof(float));
}

int bd_adamw_init(bd_adamw *o, const bd_param_entry *table, int n_entries, size_t n, const bd_adamw_cfg *cfg) {
    return bd_adamw_init_shard(o, table, n_entries, n, cfg, 0, n);
}

int bd_adamw_init_shard(bd_adamw *o, const bd_param_entry *table, int n_entries, size_t n, const bd_adamw_cfg *cfg,
                        size_t lo, size_t hi) {
    memset(o, 0, sizeof *o);
    if (n_entries > BD_MAX_PARAMS || (cfg->moments != BD_F32 && cfg->moments != BD_BF16) || lo > hi || hi > n)
        return BD_ERR_ARG;
    size_t k = hi - lo;
    if (cfg->moments == BD_BF16) {  // bd_adamw_state_bytes counts these
        if (!(o->m16 = calloc(bd_adamw_state_bytes(k, BD_BF16) / sizeof(uint16_t), sizeof(uint16_t))))
            return BD_ERR_NOMEM;
        o->v16 = o->m16 + k;
    } else {
        if (!(o->m = calloc(bd_adamw_state_bytes(k, BD_F32) / sizeof(float), sizeof(float)))) return BD_ERR_NOMEM;
        o->v = o->m + k;
    }
    o->n = n;
    o->lo = lo;
    o->hi = hi;
    o->cfg = *cfg;
    o->n_ranges = n_entries;
    for (int i = 0; i < n_entries; i++) {
        const char *nm = table[i].name;
        bool matrix = table[i].is_linear || !strcmp(nm, "tok_emb") || !strcmp(nm, "wcls");
        size_t len = strlen(nm);
        bool subln = len > 9 && !strcmp(nm + len - 9, "_sub_norm");
        o->ranges[i].offset = table[i].offset;
        o->ranges[i].n = table[i].numel;
        o->ranges[i].decay = matrix || subln;
    }
    return BD_OK;
}

void bd_adamw_free(bd_adamw *o) {
    free(o->m);
    free(o->m16);
    memset(o, 0, sizeof *o);
}

size_t bd_adamw_moment_bytes(const bd_adamw *o) { return 2 * (o->hi - o->lo) * bd_dtype_size(o->cfg.moments); }

const void *bd_adamw_moment(const bd_adamw *o, int which) {
    if (o->m16) return which ? o->v16 : o->m16;
    return which ? o->v : o->m;
}

int bd_adamw_set_moments(bd_adamw *o, bd_dtype dt, const void *m, const void *v, long long t) {
    if (dt != BD_F32 && dt != BD_BF16) return BD_ERR_ARG;
    size_t k = o->hi - o->lo;
    for (int which = 0; which < 2; which++) {
        const char *src = (const char *)(which ? v : m) + o->lo * bd_dtype_size(dt);  // the shard's part
        if (dt == o->cfg.moments) {
            memcpy((void *)bd_adamw_moment(o, which), src, k * bd_dtype_size(dt));
        } else if (dt == BD_BF16) {  // widening: exact
            const uint16_t *s = (const uint16_t *)src;
            float *d = which ? o->v : o->m;
            for (size_t i = 0; i < k; i++) d[i] = bd_bf16_to_f32(s[i]);
        } else {  // narrowing: rounded as every step's store is
            const float *s = (const float *)src;
            uint16_t *d = which ? o->v16 : o->m16;
            for (size_t i = 0; i < k; i++) d[i] = bd_f32_to_bf16(s[i]);
        }
    }
    o->t = t;
    return BD_OK;
}

double bd_grad_norm(const float *g, size_t n) { return sqrt(bd_grad_sumsq(g, 0, n)); }

double bd_grad_sumsq(const float *g, size_t lo, size_t hi) {
    double s = 0;
    for (size_t i = lo; i < hi; i++) s += (double)g[i] * g[i];
    return s;
}

static void update_range(bd_adamw *o, float *p, const float *g, size_t off, size_t n, float lr, float decay,
                         float scale, float bc1, float bc2) {
    float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    float *m = o->m + (off - o->lo), *v = o->v + (off - o->lo);
    p += off;
    g += off;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        float mh = m[i] / bc1, vh = v[i] / bc2;
        p[i] *= 1 - lr * decay;  // decoupled weight decay, as torch.optim.AdamW
        p[i] -= lr * mh / (sqrtf(vh) + eps);
    }
}

// The same with bf16 moments: widened, updated and used in f32, rounded when stored.
static void update_range_bf16(bd_adamw *o, float *p, const float *g, size_t off, size_t n, float lr, float decay,
                              float scale, float bc1, float bc2) {
    float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    uint16_t *m16 = o->m16 + (off - o->lo), *v16 = o->v16 + (off - o->lo);
    p += off;
    g += off;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * scale;
        float m = b1 * bd_bf16_to_f32(m16[i]) + (1 - b1) * gi;
        float v = b2 * bd_bf16_to_f32(v16[i]) + (1 - b2) * gi * gi;
        m16[i] = bd_f32_to_bf16(m);
        v16[i] = bd_f32_to_bf16(v);
        float mh = m / bc1, vh = v / bc2;
        p[i] *= 1 - lr * decay;
        p[i] -= lr * mh / (sqrtf(vh) + eps);
    }
}

double bd_adamw_step(bd_adamw *o, float *params, float *grads, float lr) {
    return bd_adamw_step_norm(o, params, grads, lr, bd_grad_norm(grads, o->n));
}

double bd_adamw_step_norm(bd_adamw *o, float *params, const float *grads, float lr, double norm) {
    if (!isfinite(norm)) return NAN;
    float scale = 1.0f;
    if (o->cfg.grad_clip > 0 && norm > o->cfg.grad_clip) scale = (float)(o->cfg.grad_clip / norm);
    o->t++;
    float bc1 = (float)(1.0 - pow(o->cfg.beta1, (double)o->t)), bc2 = (float)(1.0 - pow(o->cfg.beta2, (double)o->t));
    for (int r = 0; r < o->n_ranges; r++) {
        size_t a = o->ranges[r].offset, b = a + o->ranges[r].n;  // the tensor, cut to the shard
        if (a < o->lo) a = o->lo;
        if (b > o->hi) b = o->hi;
        if (a >= b) continue;
        (o->m16 ? update_range_bf16 : update_range)(o, params, grads, a, b - a, lr,
                                                    o->ranges[r].decay ? o->cfg.weight_decay : 0.0f, scale, bc1, bc2);
    }
    return norm;
}

float bd_schedule_lr(const bd_schedule *s, long long t) {
    if (s->warmup > 0 && t < s->warmup) return s->lr * (float)(t + 1) / (float)s->warmup;
    if (s->kind == BD_SCHED_CONSTANT || s->total <= s->warmup) return s->lr;
    double f = (double)(t - s->warmup) / (double)(s->total - s->warmup);
    if (f > 1) f = 1;
    if (s->kind == BD_SCHED_LINEAR) return (float)(s->min_lr + (s->lr - s->min_lr) * (1.0 - f));
    return (float)(s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(M_PI * f)));
}
