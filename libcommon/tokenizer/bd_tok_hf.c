// Hugging Face tokenizer.json (model.type "BPE"), read with cJSON.
// Supported: vocab + merges ("a b" strings or [a, b] pairs; rank = merge priority),
// added_tokens (matched literally in text before BPE; special ones are control tokens),
// byte_fallback, fuse_unk, ignore_merges, unk_token; normalizers Sequence/Prepend/Replace
// (string patterns); pre-tokenizers Sequence/Metaspace/ByteLevel/Split (the GPT-2, Qwen2
// and Llama 3 patterns); decoders Strip/Metaspace/ByteLevel (for the leading-space rule).
// BOS/EOS come from tokenizer_config.json beside the file, else the post-processor's
// template, else well-known token names.
#include <errno.h>
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_log.h"
#include "bd_readfile.h"
#include "bd_tok_internal.h"

#define FAIL(...)                             \
    do {                                      \
        snprintf(why, why_size, __VA_ARGS__); \
        return BD_ERR_MALFORMED;              \
    } while (0)

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool bool_of(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static bool int_of(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 2147483647.0 ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static int add_norm(bd_tokenizer *t, int kind, const char *a, const char *b, bool first_only, bool unless_starts) {
    if (t->n_norm == BD_MAX_NORM_OPS) return BD_ERR_MALFORMED;
    bd_norm_op *op = &t->norm[t->n_norm++];
    *op = (bd_norm_op){.kind = kind, .first_only = first_only, .unless_starts = unless_starts};
    op->a = strdup(a);
    op->a_len = strlen(a);
    op->b = strdup(b ? b : "");
    op->b_len = b ? strlen(b) : 0;
    return op->a && op->b ? BD_OK : BD_ERR_NOMEM;
}

static void set_space(bd_tokenizer *t, const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof t->space) return;
    memcpy(t->space, s, n + 1);
    t->space_len = n;
}

static int parse_normalizer(bd_tokenizer *t, const cJSON *n, char *why, size_t why_size, int depth) {
    if (!n || cJSON_IsNull(n)) return BD_OK;
    const char *type = str_of(n, "type");
    if (!type || depth > 8) FAIL("normalizer: no \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            int rc = parse_normalizer(t, e, why, why_size, depth + 1);
            if (rc < 0) return rc;
        }
    } else if (strcmp(type, "Prepend") == 0) {
        const char *p = str_of(n, "prepend");
        if (!p) FAIL("normalizer Prepend: no \"prepend\" string");
        if (add_norm(t, BD_NORM_PREPEND, p, NULL, false, false) < 0) FAIL("normalizer: too many steps");
    } else if (strcmp(type, "Replace") == 0) {
        const char *pat = str_of(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String"),
                   *content = str_of(n, "content");
        if (!pat || !content)
            FAIL("normalizer Replace: only {\"String\": ...} patterns with a \"content\" are supported");
        if (add_norm(t, BD_NORM_REPLACE, pat, content, false, false) < 0) FAIL("normalizer: too many steps");
        if (strcmp(pat, " ") == 0) set_space(t, content);
    } else if (strncmp(type, "NF", 2) == 0) {
        bd_log(BD_LOG_INFO, "tokenizer.json: normalizer %s is not applied (input taken as already normalized)", type);
    } else {
        bd_log(BD_LOG_WARN, "tokenizer.json: normalizer %s is not supported and not applied", type);
    }
    return BD_OK;
}

static int split_style(const char *re) {
    if (strstr(re, "\\p{N}{1,3}")) return BD_PRETOK_LLAMA3;
    if (strstr(re, "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+")) return BD_PRETOK_QWEN2;
    if (strstr(re, " ?\\p{L}+")) return BD_PRETOK_GPT2;
    bd_log(BD_LOG_WARN, "tokenizer.json: Split pattern not recognized; using the Qwen2 split rules: %.80s", re);
    return BD_PRETOK_QWEN2;
}

static int parse_pretok(bd_tokenizer *t, const cJSON *p, char *why, size_t why_size, int depth) {
    if (!p || cJSON_IsNull(p)) return BD_OK;
    const char *type = str_of(p, "type");
    if (!type || depth > 8) FAIL("pre_tokenizer: no \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            int rc = parse_pretok(t, e, why, why_size, depth + 1);
            if (rc < 0) return rc;
        }
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *rep = str_of(p, "replacement"), *scheme = str_of(p, "prepend_scheme");
        if (!rep) rep = "\xe2\x96\x81";
        bool prepend = scheme ? strcmp(scheme, "never") != 0 : bool_of(p, "add_prefix_space", true);
        if (add_norm(t, BD_NORM_REPLACE, " ", rep, false, false) < 0) FAIL("pre_tokenizer: too many steps");
        if (prepend && add_norm(t, BD_NORM_PREPEND, rep, NULL, scheme && strcmp(scheme, "first") == 0, true) < 0)
            FAIL("pre_tokenizer: too many steps");
        set_space(t, rep);
        if (bool_of(p, "split", true)) t->pretok = BD_PRETOK_METASPACE;
    } else if (strcmp(type, "ByteLevel") == 0) {
        t->byte_level = true;
        t->add_prefix_space = bool_of(p, "add_prefix_space", false);
        if (bool_of(p, "use_regex", true) && t->pretok == BD_PRETOK_NONE) t->pretok = BD_PRETOK_GPT2;
    } else if (strcmp(type, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = str_of(pat, "Regex"), *behavior = str_of(p, "behavior");
        if (!re) FAIL("pre_tokenizer Split: only {\"Regex\": ...} patterns are supported");
        if (bool_of(p, "invert", false) || (behavior && strcmp(behavior, "Isolated") != 0))
            FAIL("pre_tokenizer Split: only behavior \"Isolated\" without invert is supported");
        t->pretok = split_style(re);
    } else {
        FAIL("pre_tokenizer %s is not supported", type);
    }
    return BD_OK;
}

static void parse_decoder(bd_tokenizer *t, const cJSON *d, int depth) {
    if (!d || cJSON_IsNull(d) || depth > 8) return;
    const char *type = str_of(d, "type");
    if (!type) return;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "decoders")) parse_decoder(t, e, depth + 1);
    } else if (strcmp(type, "Strip") == 0) {
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const char *content = str_of(d, "content");
        if (cJSON_IsNumber(start) && start->valuedouble >= 1 && content && strcmp(content, " ") == 0)
            t->strip_leading_space = true;
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *scheme = str_of(d, "prepend_scheme");
        if (scheme ? strcmp(scheme, "never") != 0 : bool_of(d, "add_prefix_space", true)) t->strip_leading_space = true;
    }
}

// "<s>" or {"content": "<s>", ...}; *present tells whether the key was there at all.
static const char *config_token(const cJSON *cfg, const char *key, bool *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *present = v != NULL;
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return str_of(v, "content");
    return NULL;
}

static int32_t lookup(const bd_tokenizer *t, const char *s) {
    return s ? bd_strmap_get(&t->vocab, t, s, strlen(s)) : -1;
}

static void find_bos_eos(bd_tokenizer *t, const cJSON *root, const char *dir) {
    bool have_bos = false, have_eos = false, present;
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *buf = NULL, msg[600];
    size_t n = 0;
    int rc = bd_read_small_file(path, BD_MAX_TOKENIZER_BYTES, &buf, &n, msg, sizeof msg);
    if (rc < 0 && !(rc == BD_ERR_IO && errno == ENOENT)) bd_log(BD_LOG_WARN, "%s; ignored", msg);
    if (rc == BD_OK) {
        cJSON *cfg = cJSON_ParseWithLength(buf, n);
        if (cfg) {
            const char *b = config_token(cfg, "bos_token", &present);
            if (present) {
                have_bos = true;
                t->bos = lookup(t, b);
            }
            const char *e = config_token(cfg, "eos_token", &present);
            if (present) {
                have_eos = true;
                t->eos = lookup(t, e);
            }
            cJSON_Delete(cfg);
        } else {
            bd_log(BD_LOG_WARN, "%s: not valid JSON; ignored", path);
        }
        free(buf);
    }
    // The post-processor template: special tokens before the sequence are BOS, after it EOS.
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    const char *pp_type = str_of(pp, "type");
    if (pp_type && strcmp(pp_type, "TemplateProcessing") == 0) {
        bool after = false;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "single")) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) after = true;
            if (!sp) continue;
            int32_t id = lookup(t, str_of(sp, "id"));
            if (!after && !have_bos && id >= 0) {
                t->bos = id;
                have_bos = true;
            }
            if (after && !have_eos && id >= 0) {
                t->eos = id;
                have_eos = true;
            }
        }
    }
    static const char *bos_names[] = {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"};
    static const char *eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"};
    for (size_t i = 0; !have_bos && i < sizeof bos_names / sizeof *bos_names; i++)
        if ((t->bos = lookup(t, bos_names[i])) >= 0) have_bos = true;
    for (size_t i = 0; !have_eos && i < sizeof eos_names / sizeof *eos_names; i++)
        if ((t->eos = lookup(t, eos_names[i])) >= 0) have_eos = true;
}

static int load(bd_tokenizer *t, const cJSON *root, const char *dir, char *why, size_t why_size) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) FAIL("no \"model\" object (not a tokenizer.json?)");
    const char *type = str_of(model, "type");
    if (type && strcmp(type, "BPE") != 0) FAIL("model.type \"%s\" is not supported (only BPE)", type);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab)) FAIL("model.vocab: expected an object {token: id}");
    if (!cJSON_IsArray(merges)) FAIL("model.merges: expected an array");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) FAIL("added_tokens: expected an array");
    const char *cont = str_of(model, "continuing_subword_prefix"), *eow = str_of(model, "end_of_word_suffix");
    if ((cont && *cont) || (eow && *eow)) FAIL("model: continuing_subword_prefix/end_of_word_suffix are not supported");

    int64_t max_id = -1, id;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!int_of(e, &id)) FAIL("model.vocab[\"%.60s\"]: expected an id in [0, 2^31)", e->string);
        if (id > max_id) max_id = id;
    }
    int k = 0;
    cJSON_ArrayForEach(e, added) {
        if (!int_of(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) || !str_of(e, "content"))
            FAIL("added_tokens[%d]: expected {\"id\": int, \"content\": str}", k);
        if (id > max_id) max_id = id;
        k++;
    }
    if (max_id < 0) FAIL("model.vocab is empty");
    if (max_id >= (1 << 24)) FAIL("vocabulary too large (id %lld)", (long long)max_id);
    int rc = bd_tok_alloc(t, (int32_t)(max_id + 1));
    if (rc < 0) return rc;
    t->hf = true;
    t->byte_fallback = bool_of(model, "byte_fallback", false);
    t->fuse_unk = bool_of(model, "fuse_unk", false);
    t->ignore_merges = bool_of(model, "ignore_merges", false);
    t->space[0] = ' ';
    t->space_len = 1;
    cJSON_ArrayForEach(e, vocab) {
        int_of(e, &id);
        int ty = t->byte_fallback && bd_tok_byte_piece(e->string, strlen(e->string)) >= 0 ? BD_TOKT_BYTE
                                                                                          : BD_TOKT_NORMAL;
        if ((rc = bd_tok_set_piece(t, (int32_t)id, e->string, strlen(e->string), 0.0f, ty)) < 0) return rc;
    }
    int n_added = 0;
    cJSON_ArrayForEach(e, added) {
        int_of(cJSON_GetObjectItemCaseSensitive(e, "id"), &id);
        const char *c = str_of(e, "content");
        int ty = bool_of(e, "special", false) ? BD_TOKT_CONTROL : BD_TOKT_ADDED;
        if ((rc = bd_tok_set_piece(t, (int32_t)id, c, strlen(c), 0.0f, ty)) < 0) return rc;
        if (*c) n_added++;
    }
    if ((rc = bd_strmap_build(&t->vocab, t)) < 0) return rc;

    // Added tokens, longest first so that the longest match wins.
    t->added = malloc((size_t)(n_added ? n_added : 1) * sizeof *t->added);
    if (!t->added) return BD_ERR_NOMEM;
    cJSON_ArrayForEach(e, added) {
        int_of(cJSON_GetObjectItemCaseSensitive(e, "id"), &id);
        if (t->piece_len[id] == 0 || (t->type[id] != BD_TOKT_CONTROL && t->type[id] != BD_TOKT_ADDED)) continue;
        bool dup = false;
        for (int i = 0; i < t->n_added; i++) dup |= t->added[i] == (int32_t)id;
        if (dup) continue;
        int i = t->n_added++;
        while (i > 0 && t->piece_len[t->added[i - 1]] < t->piece_len[id]) {
            t->added[i] = t->added[i - 1];
            i--;
        }
        t->added[i] = (int32_t)id;
    }

    // Merges: rank = position in the list.
    if ((rc = bd_pairmap_init(&t->merges, (uint64_t)cJSON_GetArraySize(merges))) < 0) return rc;
    if (!(t->merge_list = malloc(((size_t)cJSON_GetArraySize(merges) + 1) * 3 * sizeof *t->merge_list)))
        return BD_ERR_NOMEM;
    int rank = 0;
    cJSON_ArrayForEach(e, merges) {
        char pair[2][1024];
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ') || (size_t)(sp - s) >= sizeof pair[0] || strlen(sp + 1) >= sizeof pair[1])
                FAIL("model.merges[%d]: expected \"a b\", got \"%.60s\"", rank, s);
            snprintf(pair[0], sizeof pair[0], "%.*s", (int)(sp - s), s);
            snprintf(pair[1], sizeof pair[1], "%s", sp + 1);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1)) &&
                   strlen(cJSON_GetArrayItem(e, 0)->valuestring) < sizeof pair[0] &&
                   strlen(cJSON_GetArrayItem(e, 1)->valuestring) < sizeof pair[1]) {
            snprintf(pair[0], sizeof pair[0], "%s", cJSON_GetArrayItem(e, 0)->valuestring);
            snprintf(pair[1], sizeof pair[1], "%s", cJSON_GetArrayItem(e, 1)->valuestring);
        } else {
            FAIL("model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", rank);
        }
        char joined[2048];
        snprintf(joined, sizeof joined, "%s%s", pair[0], pair[1]);
        int32_t a = lookup(t, pair[0]), b = lookup(t, pair[1]), r = lookup(t, joined);
        if (a < 0 || b < 0 || r < 0)
            FAIL("model.merges[%d]: token \"%.60s\" is not in the vocab", rank,
                 a < 0   ? pair[0]
                 : b < 0 ? pair[1]
                         : joined);
        if ((rc = bd_pairmap_put(&t->merges, a, b, (float)rank, r)) < 0) return rc;
        t->merge_list[3 * rank] = a, t->merge_list[3 * rank + 1] = b, t->merge_list[3 * rank + 2] = r;
        t->n_merges = ++rank;
    }

    if ((rc = parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), why, why_size, 0)) < 0)
        return rc;
    if ((rc = parse_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), why, why_size, 0)) < 0)
        return rc;
    parse_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0);
    if (t->byte_level) t->strip_leading_space = false;
    t->unk = lookup(t, str_of(model, "unk_token"));
    find_bos_eos(t, root, dir);
    return BD_OK;
}

int bd_tok_load_hf(bd_tokenizer *t, const char *json, size_t n, const char *dir, char *why, size_t why_size) {
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + n ? (size_t)(at - json) : 0;
        int line = 1;
        for (size_t i = 0; i < off; i++) line += json[i] == '\n';
        snprintf(why, why_size, "invalid JSON at line %d (byte %zu)", line, off);
        return BD_ERR_MALFORMED;
    }
    int rc = load(t, root, dir, why, why_size);
    cJSON_Delete(root);
    return rc;
}
