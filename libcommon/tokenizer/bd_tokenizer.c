// The tokenizer front: loading by content sniffing, encode (added tokens, then
// normalization, pre-tokenization and BPE per segment), decode, and lookups.
#include "bd_tokenizer.h"
#include "bd_readfile.h"

#include <ctype.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_log.h"
#include "bd_tok_internal.h"

// ---- buffers ------------------------------------------------------------------------------

void bd_token_buf_free(bd_token_buf *b) {
    free(b->ids);
    memset(b, 0, sizeof *b);
}

void bd_text_buf_free(bd_text_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

int bd_token_buf_push(bd_token_buf *b, int32_t id) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        int32_t *p = realloc(b->ids, cap * sizeof *p);
        if (!p) return BD_ERR_NOMEM;
        b->ids = p;
        b->cap = cap;
    }
    b->ids[b->n++] = id;
    return BD_OK;
}

static int text_append(bd_text_buf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return BD_ERR_NOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    return BD_OK;
}

// ---- building a tokenizer ----------------------------------------------------------------

int bd_tok_alloc(bd_tokenizer *t, int32_t n_vocab) {
    t->n_vocab = n_vocab;
    size_t n = (size_t)n_vocab;
    t->piece = calloc(n, sizeof *t->piece);
    t->piece_len = calloc(n, sizeof *t->piece_len);
    t->score = calloc(n, sizeof *t->score);
    t->type = malloc(n);
    t->dec = calloc(n, sizeof *t->dec);
    t->dec_len = calloc(n, sizeof *t->dec_len);
    if (!t->piece || !t->piece_len || !t->score || !t->type || !t->dec || !t->dec_len) return BD_ERR_NOMEM;
    memset(t->type, BD_TOKT_UNUSED, n);
    return BD_OK;
}

int bd_tok_set_piece(bd_tokenizer *t, int32_t id, const char *s, size_t n, float score, int type) {
    char *p = malloc(n + 1);
    if (!p) return BD_ERR_NOMEM;
    memcpy(p, s, n);
    p[n] = 0;
    free(t->piece[id]);
    t->piece[id] = p;
    t->piece_len[id] = (uint32_t)n;
    t->score[id] = score;
    t->type[id] = (uint8_t)type;
    return BD_OK;
}

// Byte-level pieces spell bytes with printable characters (GPT-2's bytes_to_unicode):
// '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF stand for themselves, the other 68 bytes map
// in order to U+0100 onwards.
static uint32_t byte_to_char(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) k++;
    return 256u + (uint32_t)k;
}

static size_t utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | cp >> 12);
    out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

static int set_dec(bd_tokenizer *t, int32_t id, const char *s, size_t n) {
    t->dec[id] = malloc(n ? n : 1);
    if (!t->dec[id]) return BD_ERR_NOMEM;
    if (n) memcpy(t->dec[id], s, n);
    t->dec_len[id] = (uint32_t)n;
    return BD_OK;
}

int bd_tok_byte_piece(const char *p, size_t n) {
    if (n != 6 || strncmp(p, "<0x", 3) != 0 || !isxdigit((unsigned char)p[3]) || !isxdigit((unsigned char)p[4]) ||
        p[5] != '>')
        return -1;
    char hex[3] = {p[3], p[4], 0};
    return (int)strtol(hex, NULL, 16);
}

int bd_tok_finish(bd_tokenizer *t) {
    int rc = BD_OK;
    for (int i = 0; i < 256; i++) t->byte_id[i] = t->bytechar_id[i] = -1;
    if (!t->vocab.slot && (rc = bd_strmap_build(&t->vocab, t)) < 0) return rc;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *p = t->piece[id];
        if (t->type[id] == BD_TOKT_BYTE) {
            int v = bd_tok_byte_piece(p, strlen(p));
            if (v >= 0 && t->byte_id[v] < 0) t->byte_id[v] = id;
        }
    }
    // Inverse of byte_to_char, for decoding byte-level pieces.
    int16_t char_byte[324];
    memset(char_byte, 0xff, sizeof char_byte);
    if (t->byte_level)
        for (int b = 0; b < 256; b++) {
            char cs[4];
            uint32_t c = byte_to_char(b);
            char_byte[c] = (int16_t)b;
            t->bytechar_id[b] = bd_strmap_get(&t->vocab, t, cs, utf8_put(cs, c));
        }
    t->split_words = !t->byte_level && t->space_len > 0;
    for (int32_t id = 0; id < t->n_vocab && t->split_words; id++) {
        const char *p = t->piece[id];
        size_t n = t->piece_len[id], m = t->space_len;
        if (t->type[id] != BD_TOKT_NORMAL) continue;
        for (size_t i = 1; i + m <= n; i++)
            if (memcmp(p + i, t->space, m) == 0 && !(i >= m && memcmp(p + i - m, t->space, m) == 0))
                t->split_words = false;
    }
    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (int32_t id = 0; id < t->n_vocab && rc >= 0; id++) {
        const char *p = t->piece[id];
        size_t n = t->piece_len[id], m = 0;
        if (tmp_cap < n + 1) {
            free(tmp);
            tmp_cap = 2 * n + 16;
            if (!(tmp = malloc(tmp_cap))) return BD_ERR_NOMEM;
        }
        switch (t->type[id]) {
        case BD_TOKT_UNUSED: break;
        case BD_TOKT_BYTE: {
            int v = bd_tok_byte_piece(p, strlen(p));
            if (v >= 0) tmp[m++] = (char)v;
            break;
        }
        case BD_TOKT_CONTROL:
            if (t->hf) {
                memcpy(tmp, p, n);
                m = n;
            }  // SentencePiece: control pieces decode to ""
            break;
        case BD_TOKT_ADDED:
            memcpy(tmp, p, n);
            m = n;
            break;
        default:
            for (size_t i = 0; i < n;) {
                uint32_t cp;
                int len = bd_utf8_decode((const uint8_t *)p + i, n - i, &cp);
                if (t->byte_level && len > 0 && cp < 324 && char_byte[cp] >= 0) {
                    tmp[m++] = (char)char_byte[cp];
                    i += (size_t)len;
                } else if (!t->byte_level && n - i >= t->space_len && memcmp(p + i, t->space, t->space_len) == 0) {
                    tmp[m++] = ' ';
                    i += t->space_len;
                } else {
                    tmp[m++] = p[i++];
                }
            }
        }
        rc = set_dec(t, id, tmp, m);
    }
    free(tmp);
    return rc;
}

void bd_tokenizer_free(bd_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->piece) free(t->piece[i]);
        if (t->dec) free(t->dec[i]);
    }
    free(t->piece);
    free(t->piece_len);
    free(t->score);
    free(t->type);
    free(t->dec);
    free(t->dec_len);
    bd_strmap_free(&t->vocab);
    bd_pairmap_free(&t->merges);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->added);
    free(t->merge_list);
    free(t);
}

// ---- loading -------------------------------------------------------------------------------

static void say(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t size, const char *fmt, ...) {
    if (!why || !size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
}

// The tokenizer file inside a directory: tokenizer.json, tokenizer.bin, then the first
// tok*.bin by name.
static int find_in_dir(const char *dir, char *out, size_t size) {
    static const char *names[] = {"tokenizer.json", "tokenizer.bin"};
    struct stat st;
    for (int i = 0; i < 2; i++) {
        snprintf(out, size, "%s/%s", dir, names[i]);
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return BD_OK;
    }
    DIR *d = opendir(dir);
    if (!d) return BD_ERR_IO;
    struct dirent *e;
    char best[256] = "";
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 7 && strncmp(e->d_name, "tok", 3) == 0 && strcmp(e->d_name + n - 4, ".bin") == 0 && n < sizeof best &&
            (!best[0] || strcmp(e->d_name, best) < 0))
            memcpy(best, e->d_name, n + 1);
    }
    closedir(d);
    if (!best[0]) return BD_ERR_MALFORMED;
    snprintf(out, size, "%s/%s", dir, best);
    return BD_OK;
}

int bd_tokenizer_file(const char *path, char *file, size_t size, char *why, size_t why_size) {
    struct stat st;
    if (stat(path, &st) != 0) {
        say(why, why_size, "%s: %s", path, strerror(errno));
        return BD_ERR_IO;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(file, size, "%s", path);
        return BD_OK;
    }
    int rc = find_in_dir(path, file, size);
    if (rc < 0) {
        say(why, why_size, "%s: no tokenizer.json, tokenizer.bin or tok*.bin in this directory", path);
        return rc == BD_ERR_IO ? BD_ERR_IO : BD_ERR_MALFORMED;
    }
    return BD_OK;
}

int bd_tokenizer_load(const char *path, bd_tokenizer **out, char *why, size_t why_size) {
    *out = NULL;
    char file[4096];
    int rc = bd_tokenizer_file(path, file, sizeof file, why, why_size);
    if (rc < 0) return rc;
    uint8_t *data;
    size_t n;
    rc = bd_read_small_file(file, BD_MAX_TOKENIZER_BYTES, (char **)&data, &n, why, why_size);
    if (rc < 0) return rc;
    bd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(data);
        return BD_ERR_NOMEM;
    }
    t->bos = t->eos = t->unk = -1;
    size_t i = 0;
    while (i < n && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) i++;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char reason[400] = "";
    if (i < n && data[i] == '{') {
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", base == file ? 1 : (int)(base - file - 1), base == file ? "." : file);
        rc = bd_tok_load_hf(t, (const char *)data, n, dir, reason, sizeof reason);
        snprintf(t->ident, sizeof t->ident, "hf:%016llx", (unsigned long long)bd_tok_hash(data, n));
    } else {
        rc = bd_tok_load_llama2c(t, data, n, reason, sizeof reason);
        if (rc == BD_ERR_MALFORMED && n > 0 && data[0] == 0x0A)
            snprintf(reason + strlen(reason), sizeof reason - strlen(reason),
                     " (a SentencePiece .model file? use the llama2.c tokenizer.bin or a tokenizer.json)");
        snprintf(t->ident, sizeof t->ident, "llama2c:%.60s:%016llx", base, (unsigned long long)bd_tok_hash(data, n));
    }
    free(data);
    if (rc >= 0) rc = bd_tok_finish(t);
    if (rc < 0) {
        say(why, why_size, "%s: %s", file, rc == BD_ERR_NOMEM ? "out of memory" : reason);
        bd_tokenizer_free(t);
        return rc;
    }
    bd_log(BD_LOG_INFO, "tokenizer %s: %d pieces, %llu merges, bos %d, eos %d", t->ident, t->n_vocab,
           (unsigned long long)t->merges.count, t->bos, t->eos);
    *out = t;
    return BD_OK;
}

// ---- encoding ------------------------------------------------------------------------------

static int buf_reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return BD_OK;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *p = realloc(*buf, c);
    if (!p) return BD_ERR_NOMEM;
    *buf = p;
    *cap = c;
    return BD_OK;
}

// Applies the normalization steps to s[0..n) into w->buf.
static int normalize(const bd_tokenizer *t, const char *s, size_t n, bool at_start, bd_bpe_work *w) {
    int rc;
    if ((rc = buf_reserve(&w->buf, &w->buf_cap, n + 1)) < 0) return rc;
    memcpy(w->buf, s, n);
    w->buf_len = n;
    for (int k = 0; k < t->n_norm; k++) {
        const bd_norm_op *op = &t->norm[k];
        size_t len = w->buf_len;
        if (op->kind == BD_NORM_PREPEND) {
            if (len == 0 || (op->first_only && !at_start)) continue;
            if (op->unless_starts && len >= op->a_len && memcmp(w->buf, op->a, op->a_len) == 0) continue;
            if ((rc = buf_reserve(&w->buf, &w->buf_cap, len + op->a_len)) < 0) return rc;
            memmove(w->buf + op->a_len, w->buf, len);
            memcpy(w->buf, op->a, op->a_len);
            w->buf_len = len + op->a_len;
        } else if (op->kind == BD_NORM_REPLACE && op->a_len > 0) {
            size_t grow = op->b_len > op->a_len ? op->b_len - op->a_len : 0;
            size_t count = 0;
            for (size_t i = 0; i + op->a_len <= len;) {
                if (memcmp(w->buf + i, op->a, op->a_len) == 0) {
                    count++;
                    i += op->a_len;
                } else
                    i++;
            }
            if (!count) continue;
            if ((rc = buf_reserve(&w->buf2, &w->buf2_cap, len + count * grow + 1)) < 0) return rc;
            size_t m = 0;
            for (size_t i = 0; i < len;) {
                if (i + op->a_len <= len && memcmp(w->buf + i, op->a, op->a_len) == 0) {
                    memcpy(w->buf2 + m, op->b, op->b_len);
                    m += op->b_len;
                    i += op->a_len;
                } else {
                    w->buf2[m++] = w->buf[i++];
                }
            }
            char *tb = w->buf;
            size_t tc = w->buf_cap;
            w->buf = w->buf2;
            w->buf_cap = w->buf2_cap;
            w->buf2 = tb;
            w->buf2_cap = tc;
            w->buf_len = m;
        }
    }
    return BD_OK;
}

// Emits the merged symbols of one word; characters outside the vocab fall back to their
// <0xNN> pieces (all of them present) or to unk.
static int emit_word(const bd_tokenizer *t, const char *word, bd_bpe_work *w, bd_token_buf *out) {
    int rc;
    bool last_unk = false;
    for (int32_t i = 0; i >= 0 && w->n_sym > 0; i = w->sym[i].next) {
        const bd_bpe_sym *s = &w->sym[i];
        if (s->id >= 0) {
            if ((rc = bd_token_buf_push(out, s->id)) < 0) return rc;
            last_unk = false;
            continue;
        }
        bool all = t->byte_fallback;
        for (uint32_t k = 0; all && k < s->len; k++) all = t->byte_id[(uint8_t)word[s->start + k]] >= 0;
        if (all) {
            for (uint32_t k = 0; k < s->len; k++)
                if ((rc = bd_token_buf_push(out, t->byte_id[(uint8_t)word[s->start + k]])) < 0) return rc;
            last_unk = false;
        } else if (t->unk >= 0) {
            if (!(t->fuse_unk && last_unk) && (rc = bd_token_buf_push(out, t->unk)) < 0) return rc;
            last_unk = true;
        } else {
            return BD_ERR_VALUE;  // neither byte fallback nor unk: the text cannot be encoded
        }
    }
    return BD_OK;
}

// BPE over one word s[0..n) (already normalized).
static int encode_word(const bd_tokenizer *t, const char *s, size_t n, bd_bpe_work *w, bd_token_buf *out) {
    int rc;
    if (n == 0) return BD_OK;
    if (t->ignore_merges) {
        int32_t id = bd_strmap_get(&t->vocab, t, s, n);
        if (id >= 0 && t->type[id] == BD_TOKT_NORMAL) return bd_token_buf_push(out, id);
    }
    w->n_sym = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++)
            if ((rc = bd_bpe_push_sym(w, t->bytechar_id[(uint8_t)s[i]], (uint32_t)i, 1)) < 0) return rc;
    } else {
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            int len = bd_utf8_decode((const uint8_t *)s + i, n - i, &cp);
            if (len == 0) len = 1;  // an invalid byte stands alone (and falls back to its byte piece)
            int32_t id = bd_strmap_get(&t->vocab, t, s + i, (size_t)len);
            if (id >= 0 && t->type[id] != BD_TOKT_NORMAL) id = -1;
            if ((rc = bd_bpe_push_sym(w, id, (uint32_t)i, (uint32_t)len)) < 0) return rc;
            i += (size_t)len;
        }
    }
    if ((rc = bd_bpe_merge(&t->merges, w)) < 0) return rc;
    return emit_word(t, s, w, out);
}

int bd_tok_encode_segment(const bd_tokenizer *t, const char *s, size_t n, bool at_start, bd_bpe_work *w,
                          bd_token_buf *out) {
    int rc;
    if (n == 0) return BD_OK;
    if (t->byte_level) {
        if ((rc = normalize(t, s, n, at_start, w)) < 0) return rc;  // copies into w->buf
        if (t->add_prefix_space && w->buf_len > 0 && w->buf[0] != ' ') {
            if ((rc = buf_reserve(&w->buf, &w->buf_cap, w->buf_len + 1)) < 0) return rc;
            memmove(w->buf + 1, w->buf, w->buf_len);
            w->buf[0] = ' ';
            w->buf_len++;
        }
        s = w->buf;
        n = w->buf_len;
        const uint8_t *u = (const uint8_t *)s;
        for (size_t i = 0; i < n;) {
            size_t e = t->pretok == BD_PRETOK_NONE ? n : bd_pretok_next(t->pretok, u, n, i);
            if (e <= i) e = i + 1;  // cannot happen; guards against a loop
            if ((rc = encode_word(t, s + i, e - i, w, out)) < 0) return rc;
            i = e;
        }
        return BD_OK;
    }
    if ((rc = normalize(t, s, n, at_start, w)) < 0) return rc;
    const char *b = w->buf;
    size_t m = w->buf_len;
    bool every = t->pretok == BD_PRETOK_METASPACE;
    if (!every && !t->split_words) return encode_word(t, b, m, w, out);
    // A new word starts at every space marker (Metaspace split), or at each one that follows
    // another character (split_words).
    size_t start = 0, sl = t->space_len;
    for (size_t i = 1; i <= m; i++) {
        if (i == m || (i + sl <= m && memcmp(b + i, t->space, sl) == 0 &&
                       (every || !(i >= sl && memcmp(b + i - sl, t->space, sl) == 0)))) {
            if ((rc = encode_word(t, b + start, i - start, w, out)) < 0) return rc;
            start = i;
        }
    }
    return BD_OK;
}

// The added token that matches at s[0..n), longest first, or -1.
static int32_t match_added(const bd_tokenizer *t, const char *s, size_t n) {
    for (int k = 0; k < t->n_added; k++) {
        int32_t id = t->added[k];
        size_t len = t->piece_len[id];
        if (len <= n && len > 0 && s[0] == t->piece[id][0] && memcmp(s, t->piece[id], len) == 0) return id;
    }
    return -1;
}

int bd_tokenizer_encode(const bd_tokenizer *t, const char *text, size_t len, unsigned flags, bd_token_buf *out) {
    out->n = 0;
    if (((flags & BD_TOK_BOS) && t->bos < 0) || ((flags & BD_TOK_EOS) && t->eos < 0)) return BD_ERR_ARG;
    int rc = BD_OK;
    if (flags & BD_TOK_BOS) rc = bd_token_buf_push(out, t->bos);
    bd_bpe_work w = {0};
    if (rc >= 0 && t->n_added == 0) {
        rc = bd_tok_encode_segment(t, text, len, true, &w, out);
    } else if (rc >= 0) {
        // Added tokens split the text into segments, each encoded on its own.
        bool first_byte[256] = {false};
        for (int k = 0; k < t->n_added; k++) first_byte[(uint8_t)t->piece[t->added[k]][0]] = true;
        size_t seg = 0;
        for (size_t i = 0; i < len && rc >= 0;) {
            int32_t id = first_byte[(uint8_t)text[i]] ? match_added(t, text + i, len - i) : -1;
            if (id < 0) {
                i++;
                continue;
            }
            rc = bd_tok_encode_segment(t, text + seg, i - seg, seg == 0, &w, out);
            if (rc >= 0) rc = bd_token_buf_push(out, id);
            i += t->piece_len[id];
            seg = i;
        }
        if (rc >= 0) rc = bd_tok_encode_segment(t, text + seg, len - seg, seg == 0, &w, out);
    }
    if (rc >= 0 && (flags & BD_TOK_EOS)) rc = bd_token_buf_push(out, t->eos);
    bd_bpe_work_free(&w);
    return rc;
}

// ---- decoding ------------------------------------------------------------------------------

int bd_tokenizer_decode_next(const bd_tokenizer *t, int32_t prev, int32_t id, unsigned flags, bd_text_buf *out) {
    if (id < 0 || id >= t->n_vocab) return BD_ERR_VALUE;
    int type = t->type[id];
    if ((flags & BD_TOK_SKIP_SPECIAL) && type == BD_TOKT_CONTROL) return BD_OK;
    const char *d = t->dec[id];
    size_t n = t->dec_len[id];
    // The dummy-prefix space of the first piece (or the first after a BOS) is not text.
    if (t->strip_leading_space && (prev < 0 || prev == t->bos) && type == BD_TOKT_NORMAL && n > 0 && d[0] == ' ' &&
        t->piece_len[id] >= t->space_len && memcmp(t->piece[id], t->space, t->space_len) == 0) {
        d++;
        n--;
    }
    return text_append(out, d, n);
}

int bd_tokenizer_decode(const bd_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, bd_text_buf *out) {
    int32_t prev = -1;
    for (size_t i = 0; i < n; i++) {
        int rc = bd_tokenizer_decode_next(t, prev, ids[i], flags, out);
        if (rc < 0) return rc;
        prev = ids[i];
    }
    return BD_OK;
}

// ---- lookups -------------------------------------------------------------------------------

int32_t bd_tokenizer_vocab_size(const bd_tokenizer *t) { return t->n_vocab; }
int32_t bd_tokenizer_bos(const bd_tokenizer *t) { return t->bos; }
int32_t bd_tokenizer_eos(const bd_tokenizer *t) { return t->eos; }
const char *bd_tokenizer_id(const bd_tokenizer *t) { return t->ident; }

const char *bd_tokenizer_piece(const bd_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab || !t->piece[id]) return NULL;
    if (len) *len = t->piece_len[id];
    return t->piece[id];
}

int32_t bd_tokenizer_lookup(const bd_tokenizer *t, const char *piece, size_t len) {
    return bd_strmap_get(&t->vocab, t, piece, len);
}

float bd_tokenizer_score(const bd_tokenizer *t, int32_t id) { return id >= 0 && id < t->n_vocab ? t->score[id] : 0.0f; }

bd_tok_vocab_kind bd_tokenizer_kind(const bd_tokenizer *t) {
    return !t->hf ? BD_TOKV_SPM_BIN : t->byte_level ? BD_TOKV_BYTE_LEVEL : BD_TOKV_SPM_JSON;
}

const char *bd_tokenizer_split_name(const bd_tokenizer *t) {
    switch (t->pretok) {
    case BD_PRETOK_GPT2: return "gpt2";
    case BD_PRETOK_QWEN2: return "qwen2";
    case BD_PRETOK_LLAMA3: return "llama3";
    case BD_PRETOK_METASPACE: return "metaspace";
    default: return "none";
    }
}

int32_t bd_tokenizer_n_merges(const bd_tokenizer *t) { return t->n_merges; }

int bd_tokenizer_merge(const bd_tokenizer *t, int32_t i, int32_t *left, int32_t *right, int32_t *result) {
    if (i < 0 || i >= t->n_merges) return BD_ERR_ARG;
    *left = t->merge_list[3 * i], *right = t->merge_list[3 * i + 1], *result = t->merge_list[3 * i + 2];
    return BD_OK;
}

bd_tok_token_type bd_tokenizer_token_type(const bd_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return BD_TOKTYPE_UNUSED;
    if (id == t->unk) return BD_TOKTYPE_UNKNOWN;
    switch (t->type[id]) {
    case BD_TOKT_BYTE: return BD_TOKTYPE_BYTE;
    case BD_TOKT_CONTROL: return BD_TOKTYPE_CONTROL;
    case BD_TOKT_ADDED: return BD_TOKTYPE_ADDED;
    case BD_TOKT_UNUSED: return BD_TOKTYPE_UNUSED;
    default: return BD_TOKTYPE_NORMAL;
    }
}
