#include "bd_ids.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(bd_ids *l, size_t more) {
    if (l->n + more <= l->cap) return BD_OK;
    size_t cap = l->cap ? l->cap : 4096;
    while (cap < l->n + more) cap *= 2;
    int32_t *p = realloc(l->ids, cap * sizeof *p);
    if (!p) return BD_ERR_NOMEM;
    l->ids = p;
    l->cap = cap;
    return BD_OK;
}

int bd_ids_push(bd_ids *l, const int32_t *ids, size_t n) {
    if (reserve(l, n) < 0) return BD_ERR_NOMEM;
    if (n) memcpy(l->ids + l->n, ids, n * sizeof *ids);
    l->n += n;
    return BD_OK;
}

// vocab names whose vocabulary V is ("the model's") in the message about an id outside it.
static int append(bd_ids *l, const msgpack_object *rec, const char *field, int V, const char *vocab, size_t max,
                  char *why, size_t ws) {
    bd_tensor_view t;
    char reason[300];
    int rc = bd_obj_tensor(bd_obj_get(rec, field), &t, reason, sizeof reason);
    if (rc < 0) return bd_fail(why, ws, rc, "field \"%s\": %s", field, reason);
    if ((t.dtype != BD_U32 && t.dtype != BD_I32) || t.ndim != 1)
        return bd_fail(why, ws, BD_ERR_SHAPE, "field \"%s\" must be a 1-D u32 tensor", field);
    size_t n = (size_t)t.numel < max ? (size_t)t.numel : max;
    if (reserve(l, n) < 0) return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for %zu ids", l->n + n);
    int32_t *dst = l->ids + l->n;
    if (n) memcpy(dst, t.data, n * sizeof *dst);  // little-endian hosts: the stored bytes are the ints
    for (size_t i = 0; i < n; i++)
        if (dst[i] < 0 || dst[i] >= V)
            return bd_fail(why, ws, BD_ERR_VALUE, "field \"%s\": id %u at position %zu is outside %s vocabulary of %d",
                           field, (unsigned)dst[i], i, vocab, V);
    l->n += n;
    return BD_OK;
}

int bd_ids_append_max(bd_ids *l, const msgpack_object *rec, const char *field, int V, size_t max, char *why,
                      size_t ws) {
    return append(l, rec, field, V, "the model's", max, why, ws);
}

int bd_ids_append(bd_ids *l, const msgpack_object *rec, const char *field, int V, char *why, size_t ws) {
    return bd_ids_append_max(l, rec, field, V, SIZE_MAX, why, ws);
}

void bd_ids_free(bd_ids *l) {
    free(l->ids);
    memset(l, 0, sizeof *l);
}

// ---- token streams ----

// With t->r open: its schema, and its header's vocabulary when checked.
static int tokens_start(bd_tokens *t, const char *schema, int V, bool check_vocab, char *why, size_t ws) {
    const char *got = bd_reader_schema(t->r), *name = bd_reader_name(t->r);
    t->samples = strcmp(got, "bd.samples") == 0;
    int64_t hv;
    int rc = BD_OK;
    if (!schema && !t->samples && strcmp(got, "bd.tokens") != 0)
        rc = bd_fail(why, ws, BD_ERR_SCHEMA,
                     "\"%s\" header: schema is \"%s\", expected \"bd.tokens\" or \"bd.samples\"", name, got);
    else if (check_vocab && bd_obj_int(bd_obj_get(bd_reader_header(t->r), "vocab_size"), &hv) == BD_OK && hv > V)
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "\"%s\" header: tokens from a vocabulary of %lld, the model has %d", name,
                     (long long)hv, V);
    if (rc < 0) bd_tokens_close(t);
    return rc;
}

int bd_tokens_open(bd_tokens *t, const char *path, const char *schema, int V, bool check_vocab, char *why, size_t ws) {
    memset(t, 0, sizeof *t);
    t->V = V;
    t->max_per_record = SIZE_MAX;
    int err;
    char msg[600];
    if (!(t->r = bd_reader_open(path, schema, &err, msg, sizeof msg)))
        return bd_fail(why, ws, err, "\"%s\" %s", path ? path : "-", msg);
    return tokens_start(t, schema, V, check_vocab, why, ws);
}

int bd_tokens_open_file(bd_tokens *t, FILE *f, const char *name, const char *schema, int V, bool check_vocab, char *why,
                        size_t ws) {
    memset(t, 0, sizeof *t);
    t->V = V;
    t->max_per_record = SIZE_MAX;
    int err;
    char msg[600];
    if (!(t->r = bd_reader_open_file(f, name, schema, &err, msg, sizeof msg)))
        return bd_fail(why, ws, err, "\"%s\" %s", name, msg);
    return tokens_start(t, schema, V, check_vocab, why, ws);
}

int bd_tokens_next(bd_tokens *t, char *why, size_t ws) {
    int rc = bd_reader_next(t->r, &t->rec);
    if (rc == BD_EOF) return rc;
    if (rc < 0) return bd_fail(why, ws, rc, "\"%s\" %s", bd_reader_name(t->r), bd_reader_error(t->r));
    char reason[400];
    t->doc.n = 0;
    const char *vocab = t->vocab ? t->vocab : "the model's";
    int e = append(&t->doc, t->rec, t->samples ? "prompt" : "ids", t->V, vocab, t->max_per_record, reason,
                   sizeof reason);
    t->n_prompt = t->doc.n;
    if (e == 0 && t->samples)
        e = append(&t->doc, t->rec, "completion", t->V, vocab, t->max_per_record, reason, sizeof reason);
    if (e < 0)
        return bd_fail(why, ws, e, "\"%s\" record %llu: %s", bd_reader_name(t->r),
                       (unsigned long long)bd_reader_record_index(t->r), reason);
    return BD_OK;
}

void bd_tokens_close(bd_tokens *t) {
    if (t->r) bd_reader_close(t->r);
    bd_ids_free(&t->doc);
    memset(t, 0, sizeof *t);
}

const char *bd_tokens_name(const bd_tokens *t) { return bd_reader_name(t->r); }

int bd_tokens_read(const char *path, const char *schema, int V, bool check_vocab, size_t max, bd_ids *out, char *why,
                   size_t ws) {
    bd_tokens t;
    int rc = bd_tokens_open(&t, path, schema, V, check_vocab, why, ws);
    if (rc < 0) return rc;
    size_t keep = max;
    while ((rc = bd_tokens_next(&t, why, ws)) == BD_OK) {
        size_t n = t.doc.n < keep ? t.doc.n : keep;  // enough: the rest is only checked
        if ((rc = bd_ids_push(out, t.doc.ids, n)) < 0) {
            bd_fail(why, ws, rc, "out of memory");
            break;
        }
        keep -= n;
    }
    bd_tokens_close(&t);
    return rc == BD_EOF ? BD_OK : rc;
}

// ---- text ----

int bd_ids_read_text(const char *path, const bd_tokenizer *tok, bd_ids *out, char *why, size_t ws) {
    FILE *f = fopen(path, "rb");
    if (!f) return bd_fail(why, ws, BD_ERR_IO, "\"%s\": cannot open: %s", path, strerror(errno));
    bd_text_buf doc = {0};
    bd_token_buf ids = {0};
    char *line = NULL;
    size_t lcap = 0;
    int rc = BD_OK;
    long long lineno = 0;
    for (bool more = true; more && rc == BD_OK;) {
        ssize_t len = getline(&line, &lcap, f);
        more = len >= 0;
        lineno += more;
        if (more && memchr(line, 0, (size_t)len)) {  // a C string of the text would end there
            rc = bd_fail(why, ws, BD_ERR_VALUE, "\"%s\" line %lld: NUL byte in text", path, lineno);
            break;
        }
        bool blank = more && (len == 1 && line[0] == '\n');
        if (more && !blank) {
            if (doc.len + (size_t)len > doc.cap) {
                doc.cap = (doc.len + (size_t)len) * 2;
                char *p = realloc(doc.data, doc.cap);
                if (!p) {
                    rc = bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
                    break;
                }
                doc.data = p;
            }
            memcpy(doc.data + doc.len, line, (size_t)len);
            doc.len += (size_t)len;
            continue;
        }
        if (doc.len > 0) {
            if (doc.data[doc.len - 1] == '\n') doc.len--;  // the newline before the separator
            if (bd_tokenizer_encode(tok, doc.data, doc.len, BD_TOK_BOS, &ids) < 0)
                rc = bd_fail(why, ws, BD_ERR_VALUE, "\"%s\": cannot encode", path);
            else if (bd_ids_push(out, ids.ids, ids.n) < 0)
                rc = bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
            doc.len = 0;
        }
    }
    if (rc == BD_OK && ferror(f)) rc = bd_fail(why, ws, BD_ERR_IO, "\"%s\": read error: %s", path, strerror(errno));
    fclose(f);
    free(line);
    bd_text_buf_free(&doc);
    bd_token_buf_free(&ids);
    return rc;
}
