// Reading multiple-choice task files into bd_mc_task items (layouts in bd_mc.h).
#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_log.h"
#include "bd_mc.h"
#include "bd_parse.h"
#include "bd_readfile.h"
#include "bd_text.h"


static const char *const format_names[] = {"auto", "hellaswag", "piqa", "jsonl"};

int bd_mc_format_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, format_names[i]) == 0) return i;
    return -1;
}

const char *bd_mc_format_name(bd_mc_format f) { return (unsigned)f < 4 ? format_names[f] : "?"; }

// ---- lines ----

typedef struct {
    const char *p, *end;
    long lineno;  // of the line last returned
} line_iter;

// The next line (without "\n" or "\r\n"); false at the end. A final newline does not start
// another line.
static bool next_line(line_iter *it, const char **s, size_t *n) {
    if (it->p >= it->end) return false;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    const char *e = nl ? nl : it->end;
    *s = it->p;
    *n = (size_t)(e - it->p);
    if (*n && (*s)[*n - 1] == '\r') (*n)--;
    it->p = nl ? nl + 1 : it->end;
    it->lineno++;
    return true;
}

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) return false;
    return true;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

// ---- items ----

static void item_free(bd_mc_item *it) {
    free(it->context);
    for (int i = 0; i < it->n_choices; i++) free(it->choices[i]);
    free(it->choices);
    memset(it, 0, sizeof *it);
}

void bd_mc_task_free(bd_mc_task *t) {
    for (long i = 0; i < t->n; i++) item_free(&t->items[i]);
    free(t->items);
    memset(t, 0, sizeof *t);
}

typedef struct {
    bd_mc_task *task;
    long cap;
    const char *name;
    char *why;
    size_t ws;
} loader;

// Appends a new zeroed item with n_choices slots (at most BD_MC_MAX_CHOICES, checked by the
// callers through check_choices); NULL when out of memory.
static bd_mc_item *add_item(loader *ld, int n_choices, long line) {
    bd_mc_task *t = ld->task;
    if (t->n == ld->cap) {
        long cap = ld->cap ? ld->cap * 2 : 256;
        bd_mc_item *p = realloc(t->items, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        t->items = p;
        ld->cap = cap;
    }
    bd_mc_item *it = &t->items[t->n];
    memset(it, 0, sizeof *it);
    it->choices = calloc((size_t)n_choices, sizeof(char *));
    if (!it->choices) return NULL;
    it->n_choices = n_choices;
    it->line = line;
    t->n++;
    if (n_choices > t->max_choices) t->max_choices = n_choices;
    return it;
}

static int nomem(loader *ld) { return bd_fail(ld->why, ld->ws, BD_ERR_NOMEM, "\"%s\": out of memory", ld->name); }

// Checks the strings of a finished item: endings non-empty (acc_norm divides by their length).
static int check_item(loader *ld, const bd_mc_item *it) {
    if (!it->context) return nomem(ld);
    size_t bytes = strlen(it->context);
    for (int i = 0; i < it->n_choices; i++) {
        if (!it->choices[i]) return nomem(ld);
        if (!it->choices[i][0])
            return bd_fail(ld->why, ld->ws, BD_ERR_VALUE, "\"%s\" line %ld: choice %d is empty", ld->name, it->line, i);
        bytes += strlen(it->choices[i]);
    }
    if (bytes > BD_MC_MAX_ITEM_BYTES)
        return bd_fail(ld->why, ld->ws, BD_ERR_VALUE, "\"%s\" line %ld: the item has %zu bytes of text, more than %zu",
                       ld->name, it->line, bytes, BD_MC_MAX_ITEM_BYTES);
    return BD_OK;
}

// ---- HellaSwag preprocessing ----

char *bd_mc_hellaswag_clean(char *s) {
    // strip
    size_t n = strlen(s), a = 0;
    while (a < n && isspace((unsigned char)s[a])) a++;
    while (n > a && isspace((unsigned char)s[n - 1])) n--;
    memmove(s, s + a, n - a);
    n -= a;
    s[n] = '\0';
    // " [title]" -> ". " (shorter, so in place left to right)
    size_t w = 0;
    for (size_t r = 0; r < n;) {
        if (strncmp(s + r, " [title]", 8) == 0) {
            s[w++] = '.', s[w++] = ' ';
            r += 8;
        } else {
            s[w++] = s[r++];
        }
    }
    n = w;
    s[n] = '\0';
    // remove "[...]": each '[' up to the nearest following ']' (regex \[.*?\])
    w = 0;
    for (size_t r = 0; r < n;) {
        const char *close = s[r] == '[' ? memchr(s + r, ']', n - r) : NULL;
        if (close)
            r = (size_t)(close - s) + 1;
        else
            s[w++] = s[r++];
    }
    n = w;
    s[n] = '\0';
    // "  " -> " ", one pass (Python's str.replace: "   " becomes "  ")
    w = 0;
    for (size_t r = 0; r < n;) {
        if (s[r] == ' ' && r + 1 < n && s[r + 1] == ' ') {
            s[w++] = ' ';
            r += 2;
        } else {
            s[w++] = s[r++];
        }
    }
    s[w] = '\0';
    return s;
}

// Python's str.capitalize on ASCII: first letter upper case, the rest lower case.
static void capitalize(char *s) {
    for (size_t i = 0; s[i]; i++) s[i] = (char)(i == 0 ? toupper((unsigned char)s[i]) : tolower((unsigned char)s[i]));
}

// ---- the HellaSwag text layout (llama.cpp): 6 lines per item ----

static int parse_hellaswag_text(loader *ld, const char *text, size_t len) {
    line_iter li = {text, text + len, 0};
    const char *s;
    size_t n;
    for (;;) {
        if (!next_line(&li, &s, &n)) return BD_OK;
        long first = li.lineno;
        bd_mc_item *it = add_item(ld, 4, first);
        if (!it) return nomem(ld);
        it->context = bd_mc_hellaswag_clean(dup_n(s, n));
        if (it->context && !it->context[0])
            return bd_fail(ld->why, ld->ws, BD_ERR_VALUE, "\"%s\" line %ld: empty context", ld->name, first);
        if (!next_line(&li, &s, &n))
            return bd_fail(ld->why, ld->ws, BD_ERR_TRUNCATED,
                           "\"%s\" line %ld: item %ld is truncated: the file ends before its gold index", ld->name,
                           li.lineno + 1, ld->task->n);
        char num[32];
        int64_t gold;
        if (n >= sizeof num || (memcpy(num, s, n), num[n] = '\0', bd_parse_int64(num, 0, 3, &gold)) != BD_OK)
            return bd_fail(ld->why, ld->ws, BD_ERR_VALUE,
                           "\"%s\" line %ld: expected the gold index 0..3 of item %ld, got \"%.*s\"", ld->name,
                           li.lineno, ld->task->n, n > 40 ? 40 : (int)n, s);
        it->gold = (int)gold;
        for (int c = 0; c < 4; c++) {
            if (!next_line(&li, &s, &n))
                return bd_fail(ld->why, ld->ws, BD_ERR_TRUNCATED,
                               "\"%s\" line %ld: item %ld is truncated: %d of 4 endings", ld->name, li.lineno + 1,
                               ld->task->n, c);
            it->choices[c] = bd_mc_hellaswag_clean(dup_n(s, n));
        }
        int rc = check_item(ld, it);
        if (rc < 0) return rc;
    }
}

// ---- JSONL ----

// Parses one line as a JSON object; NULL with why filled otherwise.
static cJSON *parse_object(loader *ld, const char *s, size_t n, long line) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (j && end && !blank(end, n - (size_t)(end - s))) {
        cJSON_Delete(j);
        j = NULL;
    }
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED, "\"%s\" line %ld: not a JSON object", ld->name, line);
        return NULL;
    }
    return j;
}

static const char *get_str(loader *ld, const cJSON *o, const char *key, long line, int *rc) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || !v->valuestring) {
        *rc = bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED, "\"%s\" line %ld: field \"%s\" %s", ld->name, line, key,
                      v ? "is not a string" : "is missing");
        return NULL;
    }
    return v->valuestring;
}

// An integer field (or a string holding one, as in Hugging Face exports) in [0, hi).
// An index field: a JSON integer; HellaSwag's "label" also comes as a string ("0").
static int get_index(loader *ld, const cJSON *v, const char *key, int hi, long line, int *out) {
    double d = NAN;
    bool strings_ok = strcmp(key, "label") == 0;
    if (cJSON_IsNumber(v))
        d = v->valuedouble;
    else if (cJSON_IsString(v) && !strings_ok)
        return bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED,
                       "\"%s\" line %ld: field \"%s\" is a string, expected an integer", ld->name, line, key);
    else if (cJSON_IsString(v) && v->valuestring) {
        int64_t k;
        if (bd_parse_int64(v->valuestring, -1000000, 1000000, &k) == BD_OK) d = (double)k;
    }
    if (!v)
        return bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED, "\"%s\" line %ld: field \"%s\" is missing", ld->name, line,
                       key);
    if (!(d == floor(d)) || fabs(d) > 1e9)
        return bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED, "\"%s\" line %ld: field \"%s\" is not an integer", ld->name,
                       line, key);
    if (d < 0 || d >= hi)
        return bd_fail(ld->why, ld->ws, BD_ERR_VALUE, "\"%s\" line %ld: \"%s\" is %.0f, expected an index in [0, %d)",
                       ld->name, line, key, d, hi);
    *out = (int)d;
    return BD_OK;
}

typedef struct {
    const char *text;
    size_t len;
    const char *name;
} labels_src;

static int jsonl_record(loader *ld, bd_mc_format f, const cJSON *o, long line, bool need_label) {
    int rc = BD_OK;
    if (f == BD_MC_JSONL) {
        const char *ctx = get_str(ld, o, "context", line, &rc);
        if (!ctx) return rc;
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
        int nc = cJSON_IsArray(ch) ? cJSON_GetArraySize(ch) : 0;
        if (nc < 2)
            return bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED, "\"%s\" line %ld: field \"choices\" %s", ld->name, line,
                           !ch                 ? "is missing"
                           : cJSON_IsArray(ch) ? "needs at least 2 strings"
                                               : "is not an array");
        if (nc > BD_MC_MAX_CHOICES)
            return bd_fail(ld->why, ld->ws, BD_ERR_VALUE,
                           "\"%s\" line %ld: %d choices, more than the %d an item may have", ld->name, line, nc,
                           BD_MC_MAX_CHOICES);
        bd_mc_item *it = add_item(ld, nc, line);
        if (!it) return nomem(ld);
        it->context = strdup(ctx);
        for (int c = 0; c < nc; c++) {
            const cJSON *e = cJSON_GetArrayItem(ch, c);
            if (!cJSON_IsString(e) || !e->valuestring)
                return bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED, "\"%s\" line %ld: choices[%d] is not a string",
                               ld->name, line, c);
            it->choices[c] = strdup(e->valuestring);
        }
        if ((rc = get_index(ld, cJSON_GetObjectItemCaseSensitive(o, "gold"), "gold", nc, line, &it->gold)) < 0)
            return rc;
        return check_item(ld, it);
    }
    if (f == BD_MC_PIQA) {
        const char *goal = get_str(ld, o, "goal", line, &rc), *s1, *s2;
        if (!goal || !(s1 = get_str(ld, o, "sol1", line, &rc)) || !(s2 = get_str(ld, o, "sol2", line, &rc))) return rc;
        bd_mc_item *it = add_item(ld, 2, line);
        if (!it) return nomem(ld);
        size_t n = strlen(goal) + 32;
        if ((it->context = malloc(n))) snprintf(it->context, n, "Question: %s\nAnswer:", goal);
        it->choices[0] = strdup(s1);
        it->choices[1] = strdup(s2);
        if (need_label &&
            (rc = get_index(ld, cJSON_GetObjectItemCaseSensitive(o, "label"), "label", 2, line, &it->gold)) < 0)
            return rc;
        return check_item(ld, it);
    }
    // HellaSwag JSONL: the harness's query and choices
    const char *act = get_str(ld, o, "activity_label", line, &rc), *a, *b;
    if (!act || !(a = get_str(ld, o, "ctx_a", line, &rc)) || !(b = get_str(ld, o, "ctx_b", line, &rc))) return rc;
    const cJSON *ends = cJSON_GetObjectItemCaseSensitive(o, "endings");
    int nc = cJSON_IsArray(ends) ? cJSON_GetArraySize(ends) : 0;
    if (nc < 2)
        return bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED, "\"%s\" line %ld: field \"endings\" %s", ld->name, line,
                       !ends ? "is missing" : "is not an array of at least 2 strings");
    if (nc > BD_MC_MAX_CHOICES)
        return bd_fail(ld->why, ld->ws, BD_ERR_VALUE, "\"%s\" line %ld: %d endings, more than the %d an item may have",
                       ld->name, line, nc, BD_MC_MAX_CHOICES);
    bd_mc_item *it = add_item(ld, nc, line);
    if (!it) return nomem(ld);
    char *cb = strdup(b);
    size_t n = strlen(act) + strlen(a) + strlen(b) + 4;
    if (cb && (it->context = malloc(n))) {
        capitalize(cb);
        snprintf(it->context, n, "%s: %s %s", act, a, cb);
        bd_mc_hellaswag_clean(it->context);
    }
    free(cb);
    for (int c = 0; c < nc; c++) {
        const cJSON *e = cJSON_GetArrayItem(ends, c);
        if (!cJSON_IsString(e) || !e->valuestring)
            return bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED, "\"%s\" line %ld: endings[%d] is not a string", ld->name,
                           line, c);
        if ((it->choices[c] = strdup(e->valuestring))) bd_mc_hellaswag_clean(it->choices[c]);
    }
    if ((rc = get_index(ld, cJSON_GetObjectItemCaseSensitive(o, "label"), "label", nc, line, &it->gold)) < 0) return rc;
    return check_item(ld, it);
}

// PIQA labels: one 0/1 per line, as many as items (blank lines only at the end).
static int apply_labels(loader *ld, const labels_src *lb) {
    line_iter li = {lb->text, lb->text + lb->len, 0};
    const char *s;
    size_t n;
    long k = 0;
    bd_mc_task *t = ld->task;
    while (next_line(&li, &s, &n)) {
        if (blank(s, n)) {
            long at = li.lineno;
            while (next_line(&li, &s, &n))
                if (!blank(s, n))
                    return bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED,
                                   "\"%s\" line %ld: blank line before the last label", lb->name, at);
            break;
        }
        if (k >= t->n)
            return bd_fail(ld->why, ld->ws, BD_ERR_VALUE, "\"%s\" line %ld: more labels than the %ld items of \"%s\"",
                           lb->name, li.lineno, t->n, ld->name);
        char num[32];
        int64_t v;
        if (n >= sizeof num || (memcpy(num, s, n), num[n] = '\0', bd_parse_int64(num, 0, 1, &v)) != BD_OK)
            return bd_fail(ld->why, ld->ws, BD_ERR_VALUE, "\"%s\" line %ld: expected a label 0 or 1, got \"%.*s\"",
                           lb->name, li.lineno, n > 40 ? 40 : (int)n, s);
        t->items[k++].gold = (int)v;
    }
    if (k < t->n)
        return bd_fail(ld->why, ld->ws, BD_ERR_VALUE, "\"%s\" line %ld: only %ld labels for the %ld items of \"%s\"",
                       lb->name, li.lineno + 1, k, t->n, ld->name);
    return BD_OK;
}

static int parse_jsonl(loader *ld, bd_mc_format f, const char *text, size_t len, const labels_src *lb) {
    line_iter li = {text, text + len, 0};
    const char *s;
    size_t n;
    int rc = BD_OK;
    long last_blank = 0;
    while (rc == BD_OK && next_line(&li, &s, &n)) {
        if (blank(s, n)) {
            last_blank = li.lineno;
            continue;
        }
        if (last_blank && lb)  // labels pair with records by position: no gaps
            return bd_fail(ld->why, ld->ws, BD_ERR_MALFORMED, "\"%s\" line %ld: blank line between records", ld->name,
                           last_blank);
        cJSON *o = parse_object(ld, s, n, li.lineno);
        if (!o) return BD_ERR_MALFORMED;
        rc = jsonl_record(ld, f, o, li.lineno, f == BD_MC_PIQA && !lb);
        cJSON_Delete(o);
    }
    if (rc < 0) return rc;
    if (ld->task->n == 0) return bd_fail(ld->why, ld->ws, BD_ERR_VALUE, "\"%s\": no items", ld->name);
    return lb ? apply_labels(ld, lb) : BD_OK;
}

// ---- detection ----

// The layout of text; BD_MC_AUTO with why filled if none fits.
static bd_mc_format detect(const char *text, size_t len, const char *name, char *why, size_t ws) {
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3;  // UTF-8 byte-order mark
    while (i < len && isspace((unsigned char)text[i])) i++;
    if (i < len && text[i] == '{') {
        const char *e = memchr(text + i, '\n', len - i);
        size_t n = e ? (size_t)(e - text) - i : len - i;
        cJSON *o = cJSON_ParseWithLength(text + i, n);
        bd_mc_format f = BD_MC_AUTO;
        if (cJSON_IsObject(o)) {
            if (cJSON_HasObjectItem(o, "context") && cJSON_HasObjectItem(o, "choices"))
                f = BD_MC_JSONL;
            else if (cJSON_HasObjectItem(o, "goal") && cJSON_HasObjectItem(o, "sol1"))
                f = BD_MC_PIQA;
            else if (cJSON_HasObjectItem(o, "ctx_a") && cJSON_HasObjectItem(o, "endings"))
                f = BD_MC_HELLASWAG;
        }
        cJSON_Delete(o);
        if (f == BD_MC_AUTO)
            bd_fail(why, ws, BD_ERR_MALFORMED,
                    "\"%s\": cannot tell the task layout: the first record has none of \"context\"+\"choices\" (jsonl), "
                    "\"goal\"+\"sol1\" (piqa), \"ctx_a\"+\"endings\" (hellaswag)",
                    name);
        return f;
    }
    line_iter li = {text, text + len, 0};
    const char *s;
    size_t n;
    char num[32];
    int64_t v;
    if (next_line(&li, &s, &n) && next_line(&li, &s, &n) && n < sizeof num &&
        (memcpy(num, s, n), num[n] = '\0', bd_parse_int64(num, 0, 3, &v)) == BD_OK)
        return BD_MC_HELLASWAG;
    bd_fail(why, ws, BD_ERR_MALFORMED,
            "\"%s\": cannot tell the task layout: not JSONL, and line 2 is not a gold index as in the HellaSwag text layout",
            name);
    return BD_MC_AUTO;
}

static void task_name(bd_mc_task *t, const char *path) {
    if (t->format != BD_MC_JSONL) {
        snprintf(t->name, sizeof t->name, "%s", bd_mc_format_name(t->format));
        return;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(path, "-") == 0) base = "stdin";
    snprintf(t->name, sizeof t->name, "%s", base);
    static const char *const ext[] = {".bz2", ".jsonl", ".json", ".txt"};
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(t->name), e = strlen(ext[i]);
        if (n > e && strcmp(t->name + n - e, ext[i]) == 0) t->name[n - e] = '\0';
    }
}

// Items are C strings: a NUL in the text (or a JSON \u0000) would end one silently.
static int refuse_nul(const char *text, size_t len, const char *name, bool json, char *why, size_t ws) {
    long long line = bd_text_nul_line(text, len, json);
    if (!line) return BD_OK;
    return bd_fail(why, ws, BD_ERR_MALFORMED, "\"%s\" line %lld: NUL byte%s", name, line,
                   json ? " or \\u0000 escape" : "");
}

int bd_mc_parse(const char *text, size_t len, const char *name, bd_mc_format format, const char *labels_text,
                size_t labels_len, const char *labels_name, long limit, bd_mc_task *task, char *why, size_t ws) {
    memset(task, 0, sizeof *task);
    bd_mc_format f = format;
    if (f == BD_MC_AUTO && (f = detect(text, len, name, why, ws)) == BD_MC_AUTO) return BD_ERR_MALFORMED;
    if (labels_text && f != BD_MC_PIQA)
        return bd_fail(why, ws, BD_ERR_ARG, "\"%s\": a labels file is only used with PIQA, this is %s", name,
                       bd_mc_format_name(f));
    loader ld = {task, 0, name, why, ws};
    task->format = f;
    task_name(task, name);
    size_t skip = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    labels_src lb = {labels_text, labels_len, labels_name ? labels_name : "labels"};
    bool hs_text = f == BD_MC_HELLASWAG && !(len > skip && text[skip] == '{');
    int rc = refuse_nul(text, len, name, !hs_text, why, ws);
    if (rc == BD_OK && labels_text) rc = refuse_nul(labels_text, labels_len, lb.name, false, why, ws);
    if (rc == BD_OK)
        rc = hs_text ? parse_hellaswag_text(&ld, text + skip, len - skip)
                     : parse_jsonl(&ld, f, text + skip, len - skip, labels_text ? &lb : NULL);
    if (rc == BD_OK && task->n == 0) rc = bd_fail(why, ws, BD_ERR_VALUE, "\"%s\": no items", name);
    if (rc < 0) {
        bd_mc_task_free(task);
        return rc;
    }
    if (limit > 0 && limit < task->n) {
        for (long i = limit; i < task->n; i++) item_free(&task->items[i]);
        task->n = limit;
        task->max_choices = 0;
        for (long i = 0; i < task->n; i++)
            if (task->items[i].n_choices > task->max_choices) task->max_choices = task->items[i].n_choices;
    }
    return BD_OK;
}

// "dir/dev.jsonl" -> "dir/dev-labels.lst" (the PIQA release's naming), also from .jsonl.bz2.
void bd_mc_labels_path(const char *path, char *out, size_t n) {
    snprintf(out, n, "%s", path);
    size_t len = strlen(out);
    if (len > 4 && strcmp(out + len - 4, ".bz2") == 0) out[len -= 4] = '\0';
    if (len > 6 && strcmp(out + len - 6, ".jsonl") == 0) out[len - 6] = '\0';
    size_t k = strlen(out);
    snprintf(out + k, n - k, "-labels.lst");
}

int bd_mc_load(const char *path, bd_mc_format format, const char *labels, long limit, bd_mc_task *task, char *why,
               size_t ws) {
    memset(task, 0, sizeof *task);
    char *text = NULL, *ltext = NULL;
    size_t len = 0, llen = 0;
    int rc = bd_read_file(path, &text, &len, why, ws);
    if (rc < 0) return rc;
    bd_mc_format f = format;
    if (f == BD_MC_AUTO && (f = detect(text, len, path, why, ws)) == BD_MC_AUTO) {
        free(text);
        return BD_ERR_MALFORMED;
    }
    char def[4096];
    const char *lname = labels;
    if (f == BD_MC_PIQA && !labels && strcmp(path, "-") != 0) {
        bd_mc_labels_path(path, def, sizeof def);
        struct stat st;
        if (stat(def, &st) == 0) lname = def;
    }
    if (lname && (rc = bd_read_file(lname, &ltext, &llen, why, ws)) < 0) {
        free(text);
        return rc;
    }
    if (lname && lname == def) bd_log(BD_LOG_INFO, "labels from %s", def);
    rc = bd_mc_parse(text, len, path, f, ltext, llen, lname, limit, task, why, ws);
    if (rc < 0 && f == BD_MC_PIQA && !lname && strstr(why, "\"label\" is missing")) {
        bd_mc_labels_path(path, def, sizeof def);
        size_t k = strlen(why);
        snprintf(why + k, ws - k, " (no labels file: give one, or put it at \"%s\")", def);
    }
    free(text);
    free(ltext);
    return rc;
}
