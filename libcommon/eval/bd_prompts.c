#include "bd_prompts.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_ids.h"
#include "bd_text.h"

static const char alpaca_input[] =
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n### Instruction:\n{}\n\n### Input:\n{input}\n\n"
        "### Response:\n";
static const char alpaca_plain[] =
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\n{}\n\n### Response:\n";

int bd_prompts_add(bd_prompt_set *ps, const int32_t *ids, size_t n) {
    if (ps->n_ids + n > ps->cap_ids) {
        size_t cap = ps->cap_ids ? ps->cap_ids : 4096;
        while (cap < ps->n_ids + n) cap *= 2;
        int32_t *p = realloc(ps->ids, cap * sizeof *p);
        if (!p) return BD_ERR_NOMEM;
        ps->ids = p;
        ps->cap_ids = cap;
    }
    if (ps->count + 2 > ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 256;
        size_t *p = realloc(ps->start, (size_t)cap * sizeof *p);
        if (!p) return BD_ERR_NOMEM;
        ps->start = p;
        ps->cap = cap;
    }
    if (ps->count == 0) ps->start[0] = 0;
    if (n) memcpy(ps->ids + ps->n_ids, ids, n * sizeof *ids);
    ps->n_ids += n;
    ps->start[++ps->count] = ps->n_ids;
    return BD_OK;
}

int bd_prompts_fit_add(bd_prompt_set *ps, const int32_t *ids, size_t n, int max_seq, int32_t bos) {
    if (n + 1 <= (size_t)max_seq) return bd_prompts_add(ps, ids, n);
    size_t keep = (size_t)max_seq / 2, k = 0;
    int32_t *tmp = malloc((keep ? keep : 1) * sizeof *tmp);
    if (!tmp) return BD_ERR_NOMEM;
    if (bos >= 0 && ids[0] == bos) tmp[k++] = bos;
    memcpy(tmp + k, ids + n - (keep - k), (keep - k) * sizeof *tmp);
    int rc = bd_prompts_add(ps, tmp, keep);
    free(tmp);
    ps->truncated += rc == BD_OK;
    return rc;
}

void bd_prompts_free(bd_prompt_set *ps) {
    free(ps->ids);
    free(ps->start);
    memset(ps, 0, sizeof *ps);
}

// ---- text prompts ----

static int put_text(bd_text_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return BD_ERR_NOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return BD_OK;
}

// Fills out with template t: {} is text, {NAME} the string field NAME of json (NULL for text
// prompts), \n \t \\ escapes (custom templates only). Errors name where.
static int apply_template(const char *t, bool escapes, const char *text, const cJSON *json, const char *where,
                          bd_text_buf *out, char *why, size_t ws) {
    out->len = 0;
    int rc = BD_OK;
    for (const char *p = t; *p && rc == BD_OK;) {
        if (escapes && p[0] == '\\' && p[1]) {
            char c = p[1] == 'n' ? '\n' : p[1] == 't' ? '\t' : p[1];
            rc = put_text(out, &c, 1);
            p += 2;
        } else if (p[0] == '{') {
            const char *e = strchr(p, '}');
            if (!e) return bd_fail(why, ws, BD_ERR_ARG, "--template: \"{\" without \"}\"");
            if (e == p + 1) {
                rc = put_text(out, text, strlen(text));
            } else {
                char name[128];
                if ((size_t)(e - p - 1) >= sizeof name)
                    return bd_fail(why, ws, BD_ERR_ARG, "--template: field name too long");
                memcpy(name, p + 1, (size_t)(e - p - 1));
                name[e - p - 1] = 0;
                if (!json) return bd_fail(why, ws, BD_ERR_ARG, "--template: {%s} needs JSONL prompts (--field)", name);
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(json, name);
                if (!v)
                    return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: field \"%s\" (used by --template) is missing", where,
                                   name);
                if (!cJSON_IsString(v))
                    return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: field \"%s\" is not a string", where, name);
                rc = put_text(out, v->valuestring, strlen(v->valuestring));
            }
            p = e + 1;
        } else {
            rc = put_text(out, p, 1);
            p++;
        }
    }
    return rc < 0 ? bd_fail(why, ws, rc, "out of memory") : BD_OK;
}

typedef struct {
    bd_prompt_set *ps;
    const bd_prompt_opts *po;
    const bd_tokenizer *tok;
    int max_seq;
    bd_text_buf tb;
    bd_token_buf ids;
} text_ctx;

// One text prompt (a line, or a JSONL field) through the template and the tokenizer.
static int add_text_prompt(text_ctx *c, const char *text, const cJSON *json, const char *where, char *why, size_t ws) {
    const char *t = c->po->template_;
    bool escapes = true;
    if (!strcmp(t, "alpaca")) {
        const cJSON *in = json ? cJSON_GetObjectItemCaseSensitive(json, "input") : NULL;
        t = in && cJSON_IsString(in) && in->valuestring[0] ? alpaca_input : alpaca_plain;
        escapes = false;
    }
    const char *s = text;
    size_t len = strlen(text);
    int rc;
    if (*t) {
        if ((rc = apply_template(t, escapes, text, json, where, &c->tb, why, ws)) < 0) return rc;
        s = c->tb.data ? c->tb.data : "", len = c->tb.len;
    }
    int32_t bos = bd_tokenizer_bos(c->tok);
    if ((rc = bd_tokenizer_encode(c->tok, s, len, bos >= 0 ? BD_TOK_BOS : 0, &c->ids)) < 0)
        return bd_fail(why, ws, BD_ERR_VALUE, "%s: cannot encode: %s", where, bd_strerror(rc));
    if (c->ids.n == 0)
        return bd_fail(why, ws, BD_ERR_VALUE, "%s: the prompt is empty (and the tokenizer has no BOS)", where);
    if (bd_prompts_fit_add(c->ps, c->ids.ids, c->ids.n, c->max_seq, bos) < 0)
        return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    return BD_OK;
}

// One line of a text or JSONL file (blank lines skipped).
static int add_line(text_ctx *c, char *line, size_t len, const char *where, char *why, size_t ws) {
    if (bd_text_nul_line(line, len, c->po->field != NULL))
        return bd_fail(why, ws, BD_ERR_VALUE, "%s: NUL byte%s in a text prompt", where,
                       c->po->field ? " or \\u0000 escape" : "");
    size_t k = 0;
    while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
    if (k == len) return BD_OK;  // blank line
    const char *field = c->po->field;
    if (!field) return add_text_prompt(c, line, NULL, where, why, ws);
    cJSON *o = cJSON_ParseWithLength(line, len);
    int rc;
    const cJSON *v = o && cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, field) : NULL;
    if (!o || !cJSON_IsObject(o))
        rc = bd_fail(why, ws, BD_ERR_VALUE, "%s: invalid JSON%s", where, o ? ": not an object" : "");
    else if (!v)
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: field \"%s\" is missing", where, field);
    else if (!cJSON_IsString(v))
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: field \"%s\" is not a string", where, field);
    else
        rc = add_text_prompt(c, v->valuestring, o, where, why, ws);
    cJSON_Delete(o);
    return rc;
}

static int read_text(bd_prompt_set *ps, const bd_prompt_opts *po, const bd_input *in, const bd_tokenizer *tok,
                     int64_t max_n, int max_seq, char *why, size_t ws) {
    FILE *f = in->f;
    text_ctx c = {ps, po, tok, max_seq, {0}, {0}};
    char *line = NULL, where[4200];
    size_t cap = 0;
    ssize_t n;
    long long lineno = 0;
    int rc = BD_OK;
    while (rc == BD_OK && (max_n < 0 || ps->count < max_n) && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        line[len] = 0;
        snprintf(where, sizeof where, "\"%s\" line %lld", in->name, lineno);
        rc = add_line(&c, line, len, where, why, ws);
    }
    if (rc == BD_OK && ferror(f)) rc = bd_fail(why, ws, BD_ERR_IO, "\"%s\": read error: %s", in->name, strerror(errno));
    free(line);
    bd_text_buf_free(&c.tb);
    bd_token_buf_free(&c.ids);
    return rc;
}

// ---- token prompts ----

static int read_tokens(bd_prompt_set *ps, const bd_prompt_opts *po, const bd_input *in, int V, int64_t max_n,
                       int max_seq, int32_t bos, char *why, size_t ws) {
    bd_tokens t;
    int rc = bd_tokens_open_file(&t, in->f, in->name, "bd.tokens", V, true, why, ws);
    if (rc < 0) return rc;
    t.max_per_record = (size_t)po->prompt_len;
    while ((max_n < 0 || ps->count < max_n) && (rc = bd_tokens_next(&t, why, ws)) == BD_OK)
        if (t.doc.n > 0 && bd_prompts_fit_add(ps, t.doc.ids, t.doc.n, max_seq, bos) < 0) {  // empty documents: skipped
            rc = bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
            break;
        }
    bd_tokens_close(&t);
    return rc == BD_EOF ? BD_OK : rc;
}

int bd_prompts_read(bd_prompt_set *ps, bd_prompt_opts *po, const bd_input *in, const bd_tokenizer *tok, int V,
                    int64_t max_n, int max_seq, int32_t bos, char *why, size_t ws) {
    bool is_stream = bd_input_is_zstd(in);
    po->kind = is_stream ? "tokens" : po->field ? "jsonl" : "text";
    return is_stream ? read_tokens(ps, po, in, V, max_n, max_seq, bos, why, ws)
                     : read_text(ps, po, in, tok, max_n, max_seq, why, ws);
}

// ---- hash ----

static uint64_t fnv_word(uint64_t h, uint32_t w) {
    for (int b = 0; b < 4; b++) h = (h ^ ((w >> (8 * b)) & 0xff)) * 0x100000001b3ull;
    return h;
}

void bd_prompts_hash(const bd_prompt_set *ps, char out[17]) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < ps->count; i++) {
        h = fnv_word(h, (uint32_t)(ps->start[i + 1] - ps->start[i]));
        for (size_t j = ps->start[i]; j < ps->start[i + 1]; j++) h = fnv_word(h, (uint32_t)ps->ids[j]);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}
