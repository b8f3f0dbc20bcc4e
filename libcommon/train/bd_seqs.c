#include "bd_seqs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bd_ids.h"

int bd_seqs_from_ids(bd_seqs *s, const int32_t *ids, size_t n_ids, int T) {
    memset(s, 0, sizeof *s);
    s->T = T;
    s->n = n_ids > 0 ? (long long)((n_ids - 1) / (size_t)T) : 0;
    s->data_tokens = n_ids;
    s->tok = malloc(sizeof(int32_t) * (size_t)(s->n ? s->n : 1) * T);
    s->tgt = malloc(sizeof(int32_t) * (size_t)(s->n ? s->n : 1) * T);
    s->len = malloc(sizeof(int32_t) * (size_t)(s->n ? s->n : 1));
    if (!s->tok || !s->tgt || !s->len) {
        bd_seqs_free(s);
        return BD_ERR_NOMEM;
    }
    for (long long i = 0; i < s->n; i++) {
        memcpy(s->tok + i * T, ids + i * T, sizeof(int32_t) * (size_t)T);
        memcpy(s->tgt + i * T, ids + i * T + 1, sizeof(int32_t) * (size_t)T);
        s->len[i] = T;
    }
    return BD_OK;
}

int bd_seqs_from_tokens(bd_seqs *s, const char *path, int V, int T, char *why, size_t ws) {
    bd_ids data = {0};
    int rc = bd_tokens_read(path, "bd.tokens", V, false, SIZE_MAX, &data, why, ws);
    if (rc == BD_OK && (rc = bd_seqs_from_ids(s, data.ids, data.n, T)) < 0) bd_fail(why, ws, rc, "out of memory");
    bd_ids_free(&data);
    return rc;
}

// Room for one more sequence.
static int grow(bd_seqs *s, long long *cap) {
    if (s->n < *cap) return BD_OK;
    *cap = *cap ? *cap * 2 : 1024;
    size_t n = (size_t)*cap * s->T;
    int32_t *tok = realloc(s->tok, sizeof(int32_t) * n);
    if (tok) s->tok = tok;
    int32_t *tgt = realloc(s->tgt, sizeof(int32_t) * n);
    if (tgt) s->tgt = tgt;
    int32_t *len = realloc(s->len, sizeof(int32_t) * (size_t)*cap);
    if (len) s->len = len;
    if (!tok || !tgt || !len) return BD_ERR_NOMEM;
    if (!s->tk) return BD_OK;
    int32_t *ti = realloc(s->top_ids, sizeof(int32_t) * n * s->tk);
    if (ti) s->top_ids = ti;
    float *tl = realloc(s->top_lp, sizeof(float) * n * s->tk);
    if (tl) s->top_lp = tl;
    return ti && tl ? BD_OK : BD_ERR_NOMEM;
}

// What the stored rows of every record are checked against: TK ids of the vocabulary V per
// row, each row's ids told apart by stamping them with the row's number.
typedef struct {
    int tk, V;
    uint32_t *stamp;  // (V) the last row that listed each id
    uint32_t row;
} rows_check;

static int32_t row_id(const bd_tensor_view *ti, size_t i) {
    int32_t v;
    memcpy(&v, (const char *)ti->data + 4 * i, 4);  // any alignment; ids >= 2^31 turn negative
    return v;
}

static float row_lp(const bd_tensor_view *tl, size_t i) {
    float v;
    memcpy(&v, (const char *)tl->data + 4 * i, 4);
    return v;
}

// One row of the teacher's distribution: distinct ids of the vocabulary, log-probabilities
// finite, at most 0, in decreasing order (as written) and together at most probability 1.
static int check_row(rows_check *c, const bd_tensor_view *ti, const bd_tensor_view *tl, int64_t r, char *reason,
                     size_t rs) {
    if (++c->row == 0) memset(c->stamp, 0, sizeof *c->stamp * (size_t)c->V), c->row = 1;
    double mass = 0;
    for (int k = 0; k < c->tk; k++) {
        size_t i = (size_t)r * c->tk + k;
        int32_t id = row_id(ti, i);
        float lp = row_lp(tl, i);
        if (id < 0 || id >= c->V)
            return bd_fail(reason, rs, BD_ERR_VALUE, "top_ids row %lld: id %u is outside the vocabulary of %d",
                           (long long)r, (unsigned)id, c->V);
        if (c->stamp[id] == c->row)
            return bd_fail(reason, rs, BD_ERR_VALUE, "top_ids row %lld: id %d appears twice", (long long)r, id);
        c->stamp[id] = c->row;
        if (!isfinite(lp) || lp > 0)
            return bd_fail(reason, rs, BD_ERR_VALUE,
                           "top_logprobs row %lld: %g is not a log-probability (finite, at most 0)", (long long)r,
                           (double)lp);
        if (k > 0 && lp > row_lp(tl, i - 1))
            return bd_fail(reason, rs, BD_ERR_VALUE, "top_logprobs row %lld is not in decreasing order", (long long)r);
        mass += exp((double)lp);
    }
    if (mass > 1.001)  // float rounding of K log-probabilities stays far below this
        return bd_fail(reason, rs, BD_ERR_VALUE, "top_logprobs row %lld: probabilities add up to %.4f, more than 1",
                       (long long)r, mass);
    return BD_OK;
}

// The teacher's top_ids (u32) and top_logprobs (f32) of a record: one row of TK per completion
// token, every row checked.
static int stored_rows(const bd_tokens *t, rows_check *c, int64_t nc, bd_tensor_view *ti, bd_tensor_view *tl, char *why,
                       size_t ws) {
    char reason[300];
    unsigned long long ri = (unsigned long long)bd_reader_record_index(t->r);
    const char *path = bd_tokens_name(t);
    int rc, tk = c->tk;
    if ((rc = bd_obj_tensor(bd_obj_get(t->rec, "top_ids"), ti, reason, sizeof reason)) < 0 ||
        (rc = bd_obj_tensor(bd_obj_get(t->rec, "top_logprobs"), tl, reason, sizeof reason)) < 0)
        return bd_fail(why, ws, rc, "\"%s\" record %llu: top_ids/top_logprobs: %s", path, ri, reason);
    if (ti->dtype != BD_U32 || tl->dtype != BD_F32 || ti->ndim != 2 || tl->ndim != 2 || ti->shape[1] != tk ||
        tl->shape[1] != tk || ti->shape[0] != nc || tl->shape[0] != nc)
        return bd_fail(
                why, ws, BD_ERR_SHAPE,
                "\"%s\" record %llu: top_ids must be u32 and top_logprobs f32 [%lld, %d] (one row per completion token)",
                path, ri, (long long)nc, tk);
    for (int64_t r = 0; r < nc; r++)
        if ((rc = check_row(c, ti, tl, r, reason, sizeof reason)) < 0)
            return bd_fail(why, ws, rc, "\"%s\" record %llu: %s", path, ri, reason);
    return BD_OK;
}

// The header's logits_top_k: TK in 1..V (absent or 0: the stream has no stored rows).
static int header_topk(const bd_tokens *t, const char *path, int V, int *tk, char *why, size_t ws) {
    int64_t k = 0;
    const msgpack_object *o = bd_obj_get(bd_reader_header(t->r), "logits_top_k");
    int rc = o ? bd_obj_int_in(o, 1, V, &k) : BD_ERR_VALUE;
    if (rc == BD_ERR_VALUE && k == 0)
        return bd_fail(
                why, ws, BD_ERR_SCHEMA,
                "--teacher-logits: \"%s\" carries no teacher log-probabilities (make it with bd-teacher-gen --logits K)",
                path);
    if (rc == BD_ERR_VALUE)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "\"%s\" header: logits_top_k %lld is outside 1..%d (the vocabulary)",
                       path, (long long)k, V);
    if (rc < 0) return bd_fail(why, ws, BD_ERR_SCHEMA, "\"%s\" header: logits_top_k is not an integer", path);
    *tk = (int)k;
    return BD_OK;
}

// Sequence s->n from the current sample of t: tokens, targets and (with TK) the stored rows.
static void add_sample(bd_seqs *s, const bd_tokens *t, bool mask_prompt, const bd_tensor_view *ti,
                       const bd_tensor_view *tl) {
    int T = s->T, tk = s->tk;
    int64_t np = (int64_t)t->n_prompt, nc = (int64_t)t->doc.n - np, len = np + nc;
    const int32_t *p = t->doc.ids, *c = t->doc.ids + np;
    int32_t *tok = s->tok + s->n * T, *tgt = s->tgt + s->n * T;
    if (len > T + 1) {
        len = T + 1;
        s->truncated++;
    }
    s->len[s->n] = (int32_t)(len < T ? len : T);
    for (int i = 0; i < T; i++) {
        int64_t j = i + 1;
        tok[i] = i < len ? (i < np ? p[i] : c[i - np]) : 0;
        tgt[i] = j < len && !(mask_prompt && j < np) ? (j < np ? p[j] : c[j - np]) : -1;
        if (!tk) continue;
        // Only completion tokens have the teacher's distribution: the rest are not scored.
        size_t o = ((size_t)s->n * T + (size_t)i) * tk;
        if (tgt[i] < 0 || j < np) {
            tgt[i] = -1;
            continue;
        }
        memcpy(s->top_ids + o, (const char *)ti->data + (size_t)(j - np) * tk * 4, (size_t)tk * 4);
        memcpy(s->top_lp + o, (const char *)tl->data + (size_t)(j - np) * tk * 4, (size_t)tk * 4);
    }
    s->n++;
}

int bd_seqs_from_samples(bd_seqs *s, const char *path, int V, int T, bool mask_prompt, bool teacher_logits, char *why,
                         size_t ws) {
    memset(s, 0, sizeof *s);
    s->T = T;
    bd_tokens t;
    int rc = bd_tokens_open(&t, path, "bd.samples", V, false, why, ws);
    if (rc < 0) return rc;
    rows_check rows = {.V = V};
    if (teacher_logits && (rc = header_topk(&t, path, V, &s->tk, why, ws)) == BD_OK &&
        !(rows.stamp = calloc((size_t)V, sizeof *rows.stamp)))
        rc = bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    rows.tk = s->tk;
    long long cap = 0;
    while (rc == BD_OK && (rc = bd_tokens_next(&t, why, ws)) == BD_OK) {
        bd_tensor_view ti = {0}, tl = {0};
        if (s->tk && (rc = stored_rows(&t, &rows, (int64_t)(t.doc.n - t.n_prompt), &ti, &tl, why, ws)) < 0) break;
        if (t.doc.n < 2) continue;  // nothing to predict
        if (grow(s, &cap) < 0) {
            rc = bd_fail(why, ws, BD_ERR_NOMEM, "out of memory reading \"%s\"", path);
            break;
        }
        add_sample(s, &t, mask_prompt, &ti, &tl);
    }
    bd_tokens_close(&t);
    free(rows.stamp);
    if (rc == BD_EOF) rc = BD_OK;
    s->data_tokens = (size_t)s->n * T;
    if (rc < 0) bd_seqs_free(s);
    return rc;
}

void bd_seqs_free(bd_seqs *s) {
    free(s->tok), free(s->tgt), free(s->len), free(s->top_ids), free(s->top_lp);
    s->tok = s->tgt = s->len = s->top_ids = NULL;
    s->top_lp = NULL;
    s->n = 0;
}

// FNV-1a over n 32-bit words, continuing h.
static uint64_t fnv_words(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, (const char *)p + 4 * i, 4);
        h = (h ^ u) * 0x100000001b3ull;
    }
    return h;
}

uint64_t bd_seqs_hash(const bd_seqs *s) {
    size_t nt = (size_t)s->n * (size_t)s->T;
    uint32_t dims[4] = {(uint32_t)s->n, (uint32_t)((uint64_t)s->n >> 32), (uint32_t)s->T, (uint32_t)s->tk};
    uint64_t h = fnv_words(0xcbf29ce484222325ull, dims, 4);
    h = fnv_words(fnv_words(h, s->tok, nt), s->tgt, nt);
    for (size_t i = 0; s->tk && i < nt; i++)  // the rows of unscored positions are never set
        if (s->tgt[i] >= 0)
            h = fnv_words(fnv_words(h, s->top_ids + i * s->tk, (size_t)s->tk), s->top_lp + i * s->tk, (size_t)s->tk);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;  // 0 means "not recorded"
}

long long bd_seqs_gather(const bd_seqs *s, const long long *idx, long long S, int32_t *tokens, int32_t *targets,
                         int32_t *lens) {
    int T = s->T;
    long long scored = 0;
    for (long long i = 0; i < S; i++) {
        long long k = idx[i];
        if (lens) lens[i] = s->len[k];
        memcpy(tokens + i * T, s->tok + k * T, sizeof(int32_t) * (size_t)T);
        memcpy(targets + i * T, s->tgt + k * T, sizeof(int32_t) * (size_t)T);
        for (int t = 0; t < T; t++) scored += targets[i * T + t] >= 0;
    }
    return scored;
}

void bd_seqs_dense_teacher(float *u, const int32_t *ids, const float *lp, int tk, int V) {
    double top = 0;
    for (int k = 0; k < tk; k++) top += exp((double)lp[k]);
    double rest = 1.0 - top > 1e-12 ? 1.0 - top : 1e-12;
    float other = (float)log(rest / (double)(V > tk ? V - tk : 1));
    for (int v = 0; v < V; v++) u[v] = other;
    for (int k = 0; k < tk; k++) u[ids[k]] = lp[k];
}

void bd_seqs_teacher_logits(const bd_seqs *s, const long long *idx, long long S, const int32_t *targets, float *u,
                            int V) {
    int T = s->T, tk = s->tk;
    for (long long i = 0; i < S; i++)
        for (int t = 0; t < T; t++)
            if (targets[i * T + t] >= 0)
                bd_seqs_dense_teacher(u + ((size_t)i * T + t) * V, s->top_ids + ((size_t)idx[i] * T + t) * tk,
                                      s->top_lp + ((size_t)idx[i] * T + t) * tk, tk, V);
}
