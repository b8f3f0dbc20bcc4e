// Parsing for bd_task.h: the template, the verbalizer, and the labelled records (TSV or JSONL).
#include "bd_task.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bd_text.h"

// ---- growable text ----

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static int sbuf_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return BD_ERR_NOMEM;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
    return BD_OK;
}

static int sbuf_puts(sbuf *b, const char *s) { return sbuf_put(b, s, strlen(s)); }

// Up to about 300 bytes of names joined by ", " (for messages that list what is there).
static void join_names(char *out, size_t size, char *const *names, int n) {
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; i < n && at + 1 < size; i++) {
        int k = snprintf(out + at, size - at, "%s%s", i ? ", " : "", names[i]);
        if (k < 0 || (size_t)k >= size - at) break;
        at += (size_t)k;
    }
    if (!n) snprintf(out, size, "(none)");
}

// ---- template ----

static int add_part(bd_task_template *t, const char *s, size_t n, bool field, int column) {
    bd_task_part *p = realloc(t->parts, sizeof *p * (size_t)(t->n + 1));
    if (!p) return BD_ERR_NOMEM;
    t->parts = p;
    char *text = malloc(n + 1);
    if (!text) return BD_ERR_NOMEM;
    memcpy(text, s, n);
    text[n] = 0;
    t->parts[t->n++] = (bd_task_part){text, field, column};
    t->n_fields += field;
    return BD_OK;
}

// {N}: digits only, 1..999999 -> N; else 0 (a name).
static int column_number(const char *s, size_t n) {
    if (n == 0 || n > 6) return 0;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

// Frees what t and lit hold, then bd_fail.
static int template_fail(bd_task_template *t, sbuf *lit, char *why, size_t ws, int rc, const char *fmt, ...)
        __attribute__((format(printf, 6, 7)));
static int template_fail(bd_task_template *t, sbuf *lit, char *why, size_t ws, int rc, const char *fmt, ...) {
    char msg[400];  // formatted before anything is freed
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bd_task_template_free(t);
    free(lit->s);
    return bd_fail(why, ws, rc, "--template: %s", msg);
}

int bd_task_template_parse(bd_task_template *t, const char *spec, char *why, size_t ws) {
    memset(t, 0, sizeof *t);
    sbuf lit = {0};
    for (const char *p = spec; *p; p++) {
        int rc = BD_OK;
        if (*p == '\\') {
            char c = p[1] == 'n' ? '\n' : p[1] == 't' ? '\t' : p[1] && strchr("\\{}", p[1]) ? p[1] : 0;
            if (!c)
                return template_fail(t, &lit, why, ws, BD_ERR_ARG,
                                     "unknown escape \"\\%.1s\" (known: \\n \\t \\\\ \\{ \\})", p + 1);
            rc = sbuf_put(&lit, &c, 1);
            p++;
        } else if (*p == '}') {
            return template_fail(t, &lit, why, ws, BD_ERR_ARG, "\"}\" without \"{\" (write \\} for a brace)");
        } else if (*p == '{') {
            size_t n = strcspn(p + 1, "{}");
            if (p[1 + n] != '}')
                return template_fail(t, &lit, why, ws, BD_ERR_ARG, "\"{\" without \"}\" (write \\{ for a brace)");
            if (n == 0) return template_fail(t, &lit, why, ws, BD_ERR_ARG, "empty field name \"{}\"");
            if (lit.n) rc = add_part(t, lit.s, lit.n, false, 0);
            lit.n = 0;
            if (rc == BD_OK) rc = add_part(t, p + 1, n, true, column_number(p + 1, n));
            p += n + 1;
        } else {
            rc = sbuf_put(&lit, p, 1);
        }
        if (rc < 0) return template_fail(t, &lit, why, ws, rc, "out of memory");
    }
    if (lit.n && add_part(t, lit.s, lit.n, false, 0) < 0)
        return template_fail(t, &lit, why, ws, BD_ERR_NOMEM, "out of memory");
    if (t->n_fields == 0)
        return template_fail(t, &lit, why, ws, BD_ERR_ARG,
                             "\"%.200s\" has no field: name one as {name} or {N} (the N-th TSV column)", spec);
    free(lit.s);
    return BD_OK;
}

void bd_task_template_free(bd_task_template *t) {
    for (int i = 0; i < t->n; i++) free(t->parts[i].text);
    free(t->parts);
    memset(t, 0, sizeof *t);
}

// ---- verbalizer ----

static bool edge_space(const char *s) {
    return *s && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1]));
}

// Frees v, then bd_fail.
static int verbalizer_fail(bd_task_verbalizer *v, char *why, size_t ws, int rc, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
static int verbalizer_fail(bd_task_verbalizer *v, char *why, size_t ws, int rc, const char *fmt, ...) {
    char msg[700];  // formatted before v is freed: the arguments may point into it
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bd_task_verbalizer_free(v);
    return bd_fail(why, ws, rc, "--verbalizer: %s", msg);
}

int bd_task_verbalizer_parse(bd_task_verbalizer *v, const char *spec, char *why, size_t ws) {
    memset(v, 0, sizeof *v);
    static const char form[] = "(expected LABEL=word,LABEL=word,...)";
    for (const char *p = spec;; p++) {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        int in = n < 200 ? (int)n : 200;  // the item, for messages
        if (!eq) return verbalizer_fail(v, why, ws, BD_ERR_ARG, "\"%.*s\" has no \"=\" %s", in, p, form);
        char **l = realloc(v->labels, sizeof *l * (size_t)(v->n + 1));
        if (l) v->labels = l;
        char **w = realloc(v->words, sizeof *w * (size_t)(v->n + 1));
        if (w) v->words = w;
        char *lab = l && w ? strndup(p, (size_t)(eq - p)) : NULL;
        char *word = lab ? strndup(eq + 1, n - (size_t)(eq - p) - 1) : NULL;
        if (!word) {
            free(lab);
            return verbalizer_fail(v, why, ws, BD_ERR_NOMEM, "out of memory");
        }
        v->labels[v->n] = lab, v->words[v->n] = word, v->n++;
        if (!*lab) return verbalizer_fail(v, why, ws, BD_ERR_ARG, "\"%.*s\" has an empty label %s", in, p, form);
        if (!*word) return verbalizer_fail(v, why, ws, BD_ERR_ARG, "\"%.*s\" has an empty word %s", in, p, form);
        if (edge_space(lab) || edge_space(word))
            return verbalizer_fail(v, why, ws, BD_ERR_ARG,
                                   "\"%.*s\": a label or word starts or ends with whitespace (the scorer puts one "
                                   "space between context and word)",
                                   in, p);
        for (int i = 0; i < v->n - 1; i++) {
            if (!strcmp(v->labels[i], lab))
                return verbalizer_fail(v, why, ws, BD_ERR_ARG, "label \"%.200s\" appears twice", lab);
            if (!strcmp(v->words[i], word))
                return verbalizer_fail(v, why, ws, BD_ERR_ARG, "word \"%.200s\" appears twice", word);
        }
        p += n;
        if (!*p) break;
    }
    if (v->n < 2)
        return verbalizer_fail(v, why, ws, BD_ERR_ARG, "\"%.200s\" has one label; a task needs at least 2 %s", spec,
                               form);
    return BD_OK;
}

int bd_task_verbalizer_find(const bd_task_verbalizer *v, const char *label) {
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->labels[i], label)) return i;
    return -1;
}

void bd_task_verbalizer_free(bd_task_verbalizer *v) {
    for (int i = 0; i < v->n; i++) free(v->labels[i]), free(v->words[i]);
    free(v->labels);
    free(v->words);
    memset(v, 0, sizeof *v);
}

// ---- formats ----

static const char *const format_names[] = {"auto", "tsv", "jsonl"};

int bd_task_format_parse(const char *s) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, format_names[i])) return i;
    return -1;
}

const char *bd_task_format_name(bd_task_format f) { return f >= 0 && f <= BD_TASK_JSONL ? format_names[f] : "?"; }

// ---- records ----

typedef struct {
    const bd_input *in;
    const bd_task_template *t;
    const char *label_field;
    const bd_task_verbalizer *v;
    long limit;
    bd_task_set *set;
    char *why;
    size_t ws;
    long line;
    // TSV
    char **cols;  // (n_cols) header names
    int n_cols;
    int *part_col;  // (t->n) 0-based column of each placeholder
    int label_col;
    char **vals;  // (n_cols) the current row's values, pointing into the line
    sbuf ctx;
    long kept_cap;
} reader;

static int fail_line(reader *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_line(reader *r, int rc, const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bd_fail(r->why, r->ws, rc, "\"%s\" line %ld: %s", r->in->name, r->line, msg);
}

static int nomem(reader *r) { return bd_fail(r->why, r->ws, BD_ERR_NOMEM, "\"%s\": out of memory", r->in->name); }

// The gold index of a label value, or an error naming the label and the verbalizer's labels.
static int gold_of(reader *r, const char *label, int *gold) {
    *gold = bd_task_verbalizer_find(r->v, label);
    if (*gold >= 0) return BD_OK;
    char have[400];
    join_names(have, sizeof have, r->v->labels, r->v->n);
    return fail_line(r, BD_ERR_VALUE, "label \"%.200s\" is not in the verbalizer (its labels: %s)", label, have);
}

// Keeps the current example (its context in r->ctx) unless the limit is reached.
static int keep(reader *r, int gold) {
    bd_task_set *s = r->set;
    if (r->limit > 0 && s->n >= r->limit) return BD_OK;
    if (s->n >= r->kept_cap) {
        long cap = r->kept_cap ? r->kept_cap * 2 : 256;
        bd_task_example *e = realloc(s->ex, sizeof *e * (size_t)cap);
        if (!e) return nomem(r);
        s->ex = e;
        r->kept_cap = cap;
    }
    char *c = strdup(r->ctx.s ? r->ctx.s : "");
    if (!c) return nomem(r);
    s->ex[s->n++] = (bd_task_example){c, gold, r->line};
    return BD_OK;
}

// Splits line at tabs into out (at most max values); returns the count (may exceed max).
static int split_tabs(char *line, char **out, int max) {
    int n = 0;
    for (char *p = line;;) {
        char *tab = strchr(p, '\t');
        if (tab) *tab = 0;
        if (n < max) out[n] = p;
        n++;
        if (!tab) return n;
        p = tab + 1;
    }
}

// The column named name: its index, -1 if none, -2 if the header has it twice.
static int find_col(const reader *r, const char *name) {
    int at = -1;
    for (int i = 0; i < r->n_cols; i++)
        if (!strcmp(r->cols[i], name)) {
            if (at >= 0) return -2;
            at = i;
        }
    return at;
}

// The 0-based column of a placeholder or the label field: {N} by number, else by name.
static int resolve_col(reader *r, const char *what, const char *name, int column, int *out) {
    char have[400];
    join_names(have, sizeof have, r->cols, r->n_cols);
    if (column > 0) {
        if (column > r->n_cols)
            return fail_line(r, BD_ERR_SCHEMA, "%s {%d} is past the header's %d columns (%s)", what, column, r->n_cols,
                             have);
        *out = column - 1;
        return BD_OK;
    }
    int c = find_col(r, name);
    if (c == -2)
        return fail_line(r, BD_ERR_SCHEMA, "%s \"%.200s\" names two columns of the header (%s)", what, name, have);
    if (c < 0)
        return fail_line(r, BD_ERR_SCHEMA, "%s \"%.200s\" is not a column of the header; the columns are: %s", what,
                         name, have);
    *out = c;
    return BD_OK;
}

static int tsv_header(reader *r, char *line) {
    int n = split_tabs(line, NULL, 0);
    r->cols = calloc((size_t)n, sizeof *r->cols);
    r->vals = calloc((size_t)n, sizeof *r->vals);
    r->part_col = calloc((size_t)r->t->n, sizeof *r->part_col);
    if (!r->cols || !r->vals || !r->part_col) return nomem(r);
    // split_tabs cut the line in place: walk the pieces.
    char *p = line;
    for (int i = 0; i < n; i++) {
        if (!(r->cols[i] = strdup(p))) return nomem(r);
        r->n_cols++;
        p += strlen(p) + 1;
    }
    int rc;
    for (int i = 0; i < r->t->n; i++) {
        const bd_task_part *pt = &r->t->parts[i];
        if (pt->field && (rc = resolve_col(r, "template field", pt->text, pt->column, &r->part_col[i])) < 0) return rc;
    }
    return resolve_col(r, "label field", r->label_field, 0, &r->label_col);
}

static int tsv_row(reader *r, char *line) {
    int n = split_tabs(line, r->vals, r->n_cols);
    if (n != r->n_cols)
        return fail_line(r, BD_ERR_VALUE, "%d tab-separated columns, expected %d as in the header", n, r->n_cols);
    int gold, rc;
    if ((rc = gold_of(r, r->vals[r->label_col], &gold)) < 0) return rc;
    r->ctx.n = 0;
    for (int i = 0; i < r->t->n; i++) {
        const bd_task_part *pt = &r->t->parts[i];
        if (sbuf_puts(&r->ctx, pt->field ? r->vals[r->part_col[i]] : pt->text) < 0) return nomem(r);
    }
    return keep(r, gold);
}

// The names of o's members, for messages.
static void json_names(const cJSON *o, char *out, size_t size) {
    char *names[32];
    int n = 0;
    for (const cJSON *c = o->child; c && n < 32; c = c->next) names[n++] = c->string;
    join_names(out, size, names, n);
}

static int json_missing(reader *r, const cJSON *o, const char *what, const char *name) {
    char have[400];
    json_names(o, have, sizeof have);
    return fail_line(r, BD_ERR_SCHEMA, "%s \"%.200s\" is missing; the record has fields: %s", what, name, have);
}

static int jsonl_record(reader *r, const cJSON *o) {
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(o, r->label_field);
    if (!lv) return json_missing(r, o, "label field", r->label_field);
    char num[32];
    const char *label = num;
    if (cJSON_IsString(lv))
        label = lv->valuestring;
    else if (cJSON_IsNumber(lv) && fabs(lv->valuedouble) < 1e15 && lv->valuedouble == floor(lv->valuedouble))
        snprintf(num, sizeof num, "%lld", (long long)lv->valuedouble);
    else
        return fail_line(r, BD_ERR_SCHEMA, "label field \"%.200s\" is not a string or an integer", r->label_field);
    int gold, rc;
    if ((rc = gold_of(r, label, &gold)) < 0) return rc;
    r->ctx.n = 0;
    for (int i = 0; i < r->t->n; i++) {
        const bd_task_part *pt = &r->t->parts[i];
        const char *s = pt->text;
        if (pt->field) {
            const cJSON *fv = cJSON_GetObjectItemCaseSensitive(o, pt->text);
            if (!fv) return json_missing(r, o, "template field", pt->text);
            if (!cJSON_IsString(fv))
                return fail_line(r, BD_ERR_SCHEMA, "template field \"%.200s\" is not a string", pt->text);
            s = fv->valuestring;
        }
        if (sbuf_puts(&r->ctx, s) < 0) return nomem(r);
    }
    return keep(r, gold);
}

static int jsonl_line(reader *r, const char *line, size_t len) {
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!o || !cJSON_IsObject(o)) {
        const char *at = cJSON_GetErrorPtr();
        long col = !o && at && at >= line && at <= line + len ? (long)(at - line) + 1 : 1;
        bool parsed = o != NULL;
        cJSON_Delete(o);
        if (parsed) return fail_line(r, BD_ERR_VALUE, "not a JSON object (expected one object per line)");
        return fail_line(r, BD_ERR_VALUE, "invalid JSON at column %ld (expected one object per line)", col);
    }
    int rc = jsonl_record(r, o);
    cJSON_Delete(o);
    return rc;
}

int bd_task_read(const bd_input *in, bd_task_format format, const bd_task_template *t, const char *label_field,
                 const bd_task_verbalizer *v, long limit, bd_task_set *set, char *why, size_t ws) {
    memset(set, 0, sizeof *set);
    reader r = {.in = in, .t = t, .label_field = label_field, .v = v, .limit = limit, .set = set, .why = why, .ws = ws};
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    bool header_seen = false;
    long records = 0;  // examples read, kept or not
    int rc = BD_OK;
    while (rc == BD_OK && (got = getline(&line, &cap, in->f)) >= 0) {
        r.line++;
        size_t len = (size_t)got;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        char *s = line;
        if (r.line == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) s += 3, len -= 3;  // a UTF-8 byte order mark
        size_t k = 0;
        while (k < len && (s[k] == ' ' || s[k] == '\t')) k++;
        if (format == BD_TASK_AUTO && k < len) format = s[k] == '{' ? BD_TASK_JSONL : BD_TASK_TSV;
        bool json = format == BD_TASK_JSONL;
        if (len == 0 || (json && k == len)) continue;  // empty lines between records
        if (bd_text_nul_line(s, len, json)) {
            rc = fail_line(&r, BD_ERR_VALUE, "NUL byte%s in text", json ? " or \\u0000 escape" : "");
            break;
        }
        s[len] = 0;
        if (json) {
            rc = jsonl_line(&r, s, len);
        } else if (!header_seen) {
            header_seen = true;
            rc = tsv_header(&r, s);
            continue;
        } else {
            rc = tsv_row(&r, s);
        }
        records++;
    }
    if (rc == BD_OK && ferror(in->f))
        rc = bd_fail(why, ws, BD_ERR_IO, "\"%s\": read error: %s", in->name, strerror(errno));
    if (rc == BD_OK && records == 0)
        rc = bd_fail(why, ws, BD_ERR_VALUE,
                     header_seen ? "\"%s\": no labelled records after the TSV header line"
                                 : "\"%s\": empty input: expected a TSV header line and rows, or JSONL records",
                     in->name);
    set->format = format == BD_TASK_AUTO ? BD_TASK_TSV : format;
    free(line);
    free(r.ctx.s);
    for (int i = 0; i < r.n_cols; i++) free(r.cols[i]);
    free(r.cols), free(r.vals), free(r.part_col);
    if (rc < 0) bd_task_set_free(set);
    return rc;
}

void bd_task_set_free(bd_task_set *set) {
    for (long i = 0; i < set->n; i++) free(set->ex[i].context);
    free(set->ex);
    memset(set, 0, sizeof *set);
}
