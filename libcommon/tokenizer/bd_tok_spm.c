// llama2.c tokenizer.bin: a SentencePiece BPE vocabulary with scores.
// Layout: uint32 max_token_length, then per token: float32 score, int32 len, len bytes.
// The vocabulary size is not stored: the records run to the end of the file. Ids 0, 1, 2
// are <unk>, BOS ("\n<s>\n") and EOS ("\n</s>\n"); spaces inside pieces are plain ' '
// (the export replaced U+2581). Encoding is SentencePiece's: a ' ' is put before non-empty
// text (add_dummy_prefix), then adjacent symbols merge into the vocabulary piece with the
// highest score (leftmost first on ties) until none applies.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bd_tok_internal.h"

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// Every piece that is the concatenation of two pieces a|b becomes the merge (a, b) with
// priority -score: the pair table makes each merge candidate a single hash lookup.
static int build_score_merges(bd_tokenizer *t) {
    int rc = bd_pairmap_init(&t->merges, (uint64_t)t->n_vocab * 2);
    if (rc < 0) return rc;
    bd_strmap tmp = {0};
    if ((rc = bd_strmap_build(&tmp, t)) < 0) return rc;
    for (int32_t id = 0; id < t->n_vocab && rc >= 0; id++) {
        if (t->type[id] != BD_TOKT_NORMAL) continue;
        const char *p = t->piece[id];
        size_t n = t->piece_len[id];
        for (size_t k = 1; k < n && rc >= 0; k++) {
            if (((uint8_t)p[k] & 0xC0) == 0x80) continue;  // split only between characters
            int32_t a = bd_strmap_get(&tmp, t, p, k), b = bd_strmap_get(&tmp, t, p + k, n - k);
            if (a < 0 || b < 0 || t->type[a] != BD_TOKT_NORMAL || t->type[b] != BD_TOKT_NORMAL) continue;
            rc = bd_pairmap_put(&t->merges, a, b, -t->score[id], id);
        }
    }
    bd_strmap_free(&tmp);
    return rc;
}

int bd_tok_load_llama2c(bd_tokenizer *t, const uint8_t *data, size_t n, char *why, size_t why_size) {
    if (n < 4) {
        snprintf(why, why_size, "unknown tokenizer format (%zu bytes: neither JSON nor a llama2.c tokenizer.bin)", n);
        return BD_ERR_MALFORMED;
    }
    uint32_t max_len = rd_u32(data);
    // First pass: validate and count.
    size_t off = 4;
    int32_t count = 0;
    while (off < n) {
        if (n - off < 8) {
            snprintf(why, why_size,
                     "unknown tokenizer format (llama2.c tokenizer.bin token %d: record cut at byte %zu)", count, off);
            return BD_ERR_MALFORMED;
        }
        float score;
        memcpy(&score, data + off, 4);
        int32_t len = (int32_t)rd_u32(data + off + 4);
        if (!isfinite(score) || len < 0 || (uint32_t)len > max_len || (size_t)len > n - off - 8) {
            snprintf(
                    why, why_size,
                    "unknown tokenizer format (llama2.c tokenizer.bin token %d at byte %zu: score %g, length %d, max %u)",
                    count, off, (double)score, len, max_len);
            return BD_ERR_MALFORMED;
        }
        off += 8 + (size_t)len;
        if (++count > (1 << 24)) break;
    }
    if (count < 3) {
        snprintf(why, why_size, "unknown tokenizer format (llama2.c tokenizer.bin with %d tokens; needs unk, BOS, EOS)",
                 count);
        return BD_ERR_MALFORMED;
    }
    int rc = bd_tok_alloc(t, count);
    off = 4;
    for (int32_t id = 0; id < count && rc >= 0; id++) {
        float score;
        memcpy(&score, data + off, 4);
        size_t len = rd_u32(data + off + 4);
        const char *p = (const char *)data + off + 8;
        int type = id <= 2 ? BD_TOKT_CONTROL : bd_tok_byte_piece(p, len) >= 0 ? BD_TOKT_BYTE : BD_TOKT_NORMAL;
        rc = bd_tok_set_piece(t, id, p, len, score, type);
        off += 8 + len;
    }
    if (rc < 0) return rc;
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    t->byte_fallback = true;  // used when the <0xNN> pieces exist (bd_tok_finish finds them)
    t->strip_leading_space = true;
    t->space[0] = ' ';
    t->space_len = 1;
    t->pretok = BD_PRETOK_NONE;
    t->norm[0] = (bd_norm_op){.kind = BD_NORM_PREPEND, .a = strdup(" "), .a_len = 1};
    t->n_norm = 1;
    if (!t->norm[0].a) return BD_ERR_NOMEM;
    return build_score_merges(t);
}
