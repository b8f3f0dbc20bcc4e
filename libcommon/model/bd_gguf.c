// GGUF v3 writer (see bd_gguf.h). Dimension key: C dim, OC rows of a weight, HS head dim,
// L layers. Everything is little-endian; the file is written in one pass: metadata and tensor
// infos first (offsets computed up front), then each tensor, converted row by row.
#include "bd_gguf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bd_dtype.h"
#include "bd_kquant.h"
#include "bd_outfile.h"
#include "bd_packed.h"

enum { GT_U32 = 4, GT_I32 = 5, GT_F32 = 6, GT_STRING = 8, GT_ARRAY = 9 };

// The 2-bit code (q + 1) of weight w in a row of bd tq2 blocks: bits 2(w%4) of byte w/4 of its block.
static int tq2_code(const bd_block_tq2 *in, int w) { return in[w / BD_QK].qs[w % BD_QK / 4] >> (2 * (w & 3)) & 3; }

void bd_quantize_row_tq2_0_from_tq2(const bd_block_tq2 *in, bd_block_tq2_0 *out, int C, float D) {
    for (int b = 0; b < C / BD_QK_TQ2_0; b++) {
        memset(out[b].qs, 0, sizeof out[b].qs);
        for (int i = 0; i < BD_QK_TQ2_0; i++) {
            int w = b * BD_QK_TQ2_0 + i, q = tq2_code(in, w);
            int h = i / 128, l = i % 128 / 32, m = i % 32;
            out[b].qs[32 * h + m] |= (uint8_t)(q << (2 * l));
        }
        out[b].d = bd_f32_to_f16(D);
    }
}

void bd_dequantize_row_tq2_0(const bd_block_tq2_0 *in, float *out, int C) {
    for (int b = 0; b < C / BD_QK_TQ2_0; b++) {
        float d = bd_f16_to_f32(in[b].d);
        for (int i = 0; i < BD_QK_TQ2_0; i++) {
            int h = i / 128, l = i % 128 / 32, m = i % 32;
            out[b * BD_QK_TQ2_0 + i] = (float)((in[b].qs[32 * h + m] >> (2 * l) & 3) - 1) * d;
        }
    }
}

// TQ1_0: codes c0..c4 (c0 first) as the base-3 number n = c0*81 + c1*27 + ... + c4, stored as
// ceil(n * 256 / 243) so that digit k comes back as ((byte * 3^k mod 256) * 3) >> 8.
static uint8_t tq1_byte(const int *c, int n) {
    int v = 0;
    for (int i = 0; i < 5; i++) v = v * 3 + (i < n ? c[i] : 0);
    return (uint8_t)((v * 256 + 242) / 243);
}
static int tq1_digit(uint8_t b, int k) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return (uint8_t)(b * pow3[k]) * 3 >> 8;
}

// The weight index within a TQ1_0 block of digit k of byte i (qs then qh, 52 bytes).
static int tq1_weight(int i, int k) {
    if (i < 32) return i + 32 * k;
    if (i < 48) return 160 + (i - 32) + 16 * k;
    return 240 + (i - 48) + 4 * k;
}

void bd_quantize_row_tq1_0_from_tq2(const bd_block_tq2 *in, bd_block_tq1_0 *out, int C, float D) {
    for (int b = 0; b < C / 256; b++) {
        uint8_t *bytes = out[b].qs;  // qs and qh are contiguous: 52 bytes
        static_assert(offsetof(bd_block_tq1_0, qh) == 48, "qh follows qs");
        for (int i = 0; i < 52; i++) {
            int c[5], n = i < 48 ? 5 : 4;
            for (int k = 0; k < n; k++) c[k] = tq2_code(in, b * 256 + tq1_weight(i, k));
            bytes[i] = tq1_byte(c, n);
        }
        out[b].d = bd_f32_to_f16(D);
    }
}

void bd_dequantize_row_tq1_0(const bd_block_tq1_0 *in, float *out, int C) {
    for (int b = 0; b < C / 256; b++) {
        float d = bd_f16_to_f32(in[b].d);
        for (int i = 0; i < 52; i++)
            for (int k = 0; k < (i < 48 ? 5 : 4); k++)
                out[b * 256 + tq1_weight(i, k)] = (float)(tq1_digit(in[b].qs[i], k) - 1) * d;
    }
}

// IQ2_BN (ik_llama.cpp): the row's f32 scale, then per 64 weights 16 bytes; weight 16s + j of a
// block at bits 2s of byte j, code q + 1 (0, 1, 2 for -1, 0, +1).
void bd_quantize_row_iq2_bn_from_tq2(const bd_block_tq2 *in, uint8_t *out, int C, float D) {
    memcpy(out, &D, 4);
    uint8_t *qs = out + 4;
    memset(qs, 0, (size_t)C / 4);
    for (int w = 0; w < C; w++) {
        int q = tq2_code(in, w), i = w % BD_QK_IQ2_BN;
        qs[w / BD_QK_IQ2_BN * 16 + i % 16] |= (uint8_t)(q << (2 * (i / 16)));
    }
}

void bd_dequantize_row_iq2_bn(const uint8_t *in, float *out, int C) {
    float D;
    memcpy(&D, in, 4);
    const uint8_t *qs = in + 4;
    for (int w = 0; w < C; w++) {
        int i = w % BD_QK_IQ2_BN;
        out[w] = (float)((qs[w / BD_QK_IQ2_BN * 16 + i % 16] >> (2 * (i / 16)) & 3) - 1) * D;
    }
}

// ---- weight types -------------------------------------------------------------------------------

static const struct {
    const char *name;
    uint32_t ggml;  // the linears' ggml type
    int packed;     // the packed format it needs, or -1
} wtypes[BD_GGUF_WTYPE_COUNT] = {
        [BD_GGUF_F32] = {"f32", BD_GGML_TYPE_F32, -1},
        [BD_GGUF_F16] = {"f16", BD_GGML_TYPE_F16, -1},
        [BD_GGUF_TQ2_0] = {"tq2_0", BD_GGML_TYPE_TQ2_0, BD_PK_TQ2},
        [BD_GGUF_IQ2_BN] = {"iq2_bn", BD_GGML_TYPE_IQ2_BN, BD_PK_TQ2},
        [BD_GGUF_Q2_K] = {"q2_K", BD_GGML_TYPE_Q2_K, BD_PK_Q2_K},
        [BD_GGUF_Q3_K] = {"q3_K", BD_GGML_TYPE_Q3_K, BD_PK_Q3_K},
        [BD_GGUF_Q4_K] = {"q4_K", BD_GGML_TYPE_Q4_K, BD_PK_Q4_K},
        [BD_GGUF_TQ1_0] = {"tq1_0", BD_GGML_TYPE_TQ1_0, BD_PK_TQ2},
};

const char *bd_gguf_wtype_name(bd_gguf_wtype t) { return (unsigned)t < BD_GGUF_WTYPE_COUNT ? wtypes[t].name : "?"; }

int bd_gguf_wtype_parse(const char *name) {
    for (int i = 0; i < BD_GGUF_WTYPE_COUNT; i++)
        if (strcasecmp(name, wtypes[i].name) == 0) return i;
    return -1;
}

int bd_gguf_wtype_packed(bd_gguf_wtype t) { return (unsigned)t < BD_GGUF_WTYPE_COUNT ? wtypes[t].packed : -1; }

// Whether a ternary type holds rows of C weights (else the row goes out as F16): whole blocks,
// and for IQ2_BN at least 512 weights, below which ik_llama.cpp's activation quantizer
// (quantize_row_q8_K64) aborts.
static bool ternary_fits(uint32_t ggml, int C) {
    if (ggml == BD_GGML_TYPE_TQ1_0 || ggml == BD_GGML_TYPE_TQ2_0) return C % 256 == 0;
    return C % BD_QK_IQ2_BN == 0 && C >= BD_IQ2_BN_MIN_ROW;
}

// ---- little-endian output ----------------------------------------------------------------------

static void w32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void w64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }
static void wstr(FILE *f, const char *s, size_t n) {
    w64(f, n);
    fwrite(s, 1, n, f);
}
static void kv_head(FILE *f, const char *key, uint32_t type) {
    wstr(f, key, strlen(key));
    w32(f, type);
}
static void kv_u32(FILE *f, const char *key, uint32_t v) {
    kv_head(f, key, GT_U32);
    w32(f, v);
}
static void kv_f32(FILE *f, const char *key, float v) {
    kv_head(f, key, GT_F32);
    fwrite(&v, 4, 1, f);
}
static void kv_str(FILE *f, const char *key, const char *v) {
    kv_head(f, key, GT_STRING);
    wstr(f, v, strlen(v));
}

// ---- tensors ------------------------------------------------------------------------------------------

typedef struct {
    char name[48];
    int ndim;
    int64_t ne0, ne1;  // columns (C), rows
    uint32_t type;     // ggml type
    const float *f32;  // source rows (f32), or NULL for a packed slot
    int layer, k;      // packed slot (k: a bd_linear), or k = -1
    int perm;          // q/k rows: PERM_NONE, PERM_TO_INTERLEAVED or PERM_TO_HALF
    uint64_t offset, nbytes;
} gg_tensor;

static size_t row_bytes(uint32_t type, int64_t C) {
    switch (type) {
    case BD_GGML_TYPE_F32: return (size_t)C * 4;
    case BD_GGML_TYPE_F16: return (size_t)C * 2;
    case BD_GGML_TYPE_TQ1_0: return (size_t)C / 256 * sizeof(bd_block_tq1_0);
    case BD_GGML_TYPE_TQ2_0: return (size_t)C / BD_QK_TQ2_0 * sizeof(bd_block_tq2_0);
    case BD_GGML_TYPE_IQ2_BN: return 4 + (size_t)C / 4;
    case BD_GGML_TYPE_Q2_K: return (size_t)C / BD_QK_K * sizeof(bd_block_q2_K);
    case BD_GGML_TYPE_Q3_K: return (size_t)C / BD_QK_K * sizeof(bd_block_q3_K);
    default: return (size_t)C / BD_QK_K * sizeof(bd_block_q4_K);  // Q4_K
    }
}

enum { PERM_NONE = 0, PERM_TO_INTERLEAVED, PERM_TO_HALF };

// Source row of destination row r, within each head of HS rows. To interleaved (a half-split
// model for llama's NORM RoPE): dst 2j <- src j, dst 2j+1 <- src HS/2 + j. To half-split (an
// interleaved model for bitnet's NEOX RoPE): dst j <- src 2j, dst HS/2 + j <- src 2j+1.
static int64_t src_row(const gg_tensor *t, int64_t r, int HS) {
    int64_t h = r / HS, i = r % HS;
    if (t->perm == PERM_TO_INTERLEAVED) return h * HS + (i % 2 ? HS / 2 + i / 2 : i / 2);
    if (t->perm == PERM_TO_HALF) return h * HS + (i < HS / 2 ? 2 * i : 2 * (i - HS / 2) + 1);
    return r;
}

static int write_tensor(FILE *f, const bd_model *m, const gg_tensor *t, float *row, uint8_t *buf, char *why,
                        size_t ws) {
    int HS = m->cfg.head_dim;
    const bd_pk_tensor *p = t->k >= 0 ? bd_pk_model_slot(m, t->layer, (bd_linear)t->k) : NULL;
    for (int64_t r = 0; r < t->ne1; r++) {
        int64_t s = src_row(t, r, HS);
        size_t nb = row_bytes(t->type, t->ne0);
        if (t->type == BD_GGML_TYPE_TQ1_0 || t->type == BD_GGML_TYPE_TQ2_0 || t->type == BD_GGML_TYPE_IQ2_BN) {
            const bd_block_tq2 *codes = (const void *)(p->data + (size_t)s * p->row_bytes);
            if (t->type == BD_GGML_TYPE_TQ1_0)
                bd_quantize_row_tq1_0_from_tq2(codes, (bd_block_tq1_0 *)(void *)buf, (int)t->ne0, p->scale);
            else if (t->type == BD_GGML_TYPE_TQ2_0)
                bd_quantize_row_tq2_0_from_tq2(codes, (bd_block_tq2_0 *)(void *)buf, (int)t->ne0, p->scale);
            else
                bd_quantize_row_iq2_bn_from_tq2(codes, buf, (int)t->ne0, p->scale);
            fwrite(buf, 1, nb, f);
            continue;
        }
        if (t->type == BD_GGML_TYPE_Q2_K || t->type == BD_GGML_TYPE_Q3_K || t->type == BD_GGML_TYPE_Q4_K) {
            fwrite(p->data + (size_t)s * p->row_bytes, 1, nb, f);  // ggml's blocks already (bd_pk_kquant.c)
            continue;
        }
        const float *x = row;
        if (p)
            bd_pk_dequantize_row(p, (int)s, row);
        else
            x = t->f32 + (size_t)s * (size_t)t->ne0;
        if (t->type == BD_GGML_TYPE_F32) {
            fwrite(x, 4, (size_t)t->ne0, f);
            continue;
        }
        uint16_t *h = (uint16_t *)(void *)buf;
        for (int64_t i = 0; i < t->ne0; i++) {
            h[i] = bd_f32_to_f16(x[i]);
            if ((h[i] & 0x7c00) == 0x7c00) {
                snprintf(why, ws, "tensor %s: element %lld = %g does not fit in f16", t->name,
                         (long long)(r * t->ne0 + i), (double)x[i]);
                return BD_ERR_VALUE;
            }
        }
        fwrite(h, 2, (size_t)t->ne0, f);
    }
    return BD_OK;
}

// llama2.c's tokenizer.bin holds BOS and EOS as "\n<s>\n" and "\n</s>\n"; llama.cpp's own
// converter (from tokenizer.model) writes "<s>" and "</s>", which is what its tokenizer matches
// when a prompt spells them. Control pieces lose surrounding newlines and spaces.
static void control_piece(const char **pc, size_t *len) {
    while (*len && (**pc == '\n' || **pc == ' ')) ++*pc, --*len;
    while (*len && ((*pc)[*len - 1] == '\n' || (*pc)[*len - 1] == ' ')) --*len;
}

static bool is_byte_piece(const char *p, size_t n) {
    return n == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>' && strchr("0123456789ABCDEF", p[3]) &&
           strchr("0123456789ABCDEF", p[4]) && p[3] && p[4];
}

// llama.cpp's pre-tokenizer name for bd's split pattern of a byte-level vocabulary.
static const char *gguf_pre_name(const char *split) {
    return !strcmp(split, "qwen2") ? "qwen2" : !strcmp(split, "llama3") ? "llama-bpe" : "gpt-2";
}

// ggml's token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
static int32_t gguf_token_type(bd_tok_token_type t) {
    static const int32_t map[] = {[BD_TOKTYPE_NORMAL] = 1, [BD_TOKTYPE_UNKNOWN] = 2, [BD_TOKTYPE_CONTROL] = 3,
                                  [BD_TOKTYPE_ADDED] = 4,  [BD_TOKTYPE_UNUSED] = 5,  [BD_TOKTYPE_BYTE] = 6};
    return map[t];
}

// tokenizer.ggml.*: the vocabulary as llama.cpp's converter writes it.
//   llama2.c tokenizer.bin: model "llama", pieces with U+2581 for spaces, its scores; types
//     unknown (<unk>), control (BOS, EOS), byte (<0xNN>), normal.
//   SentencePiece-style tokenizer.json: model "llama" too (pieces already carry U+2581). Its
//     merges are ranks, and llama.cpp's SentencePiece tokenizer merges the pair whose joined
//     piece scores highest: a piece made by merge k scores -k (its earliest merge), one no
//     merge makes -1e9, so merges apply in rank order.
//   Byte-level tokenizer.json: model "gpt2", pre-tokenizer named after bd's split pattern
//     (gpt-2, qwen2, llama-bpe), pieces as stored, and the merges as "left right" strings.
// BD_OK, or BD_ERR_NOMEM (no room for the scores).
static int write_vocab(FILE *f, const bd_tokenizer *tok) {
    int V = bd_tokenizer_vocab_size(tok);
    int32_t bos = bd_tokenizer_bos(tok), eos = bd_tokenizer_eos(tok);
    bd_tok_vocab_kind kind = bd_tokenizer_kind(tok);
    kv_str(f, "tokenizer.ggml.model", kind == BD_TOKV_BYTE_LEVEL ? "gpt2" : "llama");
    if (kind == BD_TOKV_BYTE_LEVEL) kv_str(f, "tokenizer.ggml.pre", gguf_pre_name(bd_tokenizer_split_name(tok)));
    kv_head(f, "tokenizer.ggml.tokens", GT_ARRAY);
    w32(f, GT_STRING);
    w64(f, (uint64_t)V);
    for (int i = 0; i < V; i++) {
        size_t len;
        const char *pc = bd_tokenizer_piece(tok, i, &len);
        if (!pc) len = 0;
        if (kind == BD_TOKV_BYTE_LEVEL) {  // as stored
            wstr(f, pc ? pc : "", len);
            continue;
        }
        if (kind == BD_TOKV_SPM_BIN && (i == bos || i == eos)) control_piece(&pc, &len);
        size_t spaces = 0;
        for (size_t j = 0; j < len; j++) spaces += pc[j] == ' ';
        w64(f, len + 2 * spaces);  // ' ' -> U+2581 (3 bytes)
        for (size_t j = 0; j < len; j++) {
            if (pc[j] == ' ')
                fwrite("\xe2\x96\x81", 1, 3, f);
            else
                fputc(pc[j], f);
        }
    }
    if (kind != BD_TOKV_BYTE_LEVEL) {
        float *sc = malloc((size_t)V * sizeof *sc);
        if (!sc) return BD_ERR_NOMEM;
        for (int i = 0; i < V; i++) sc[i] = kind == BD_TOKV_SPM_BIN ? bd_tokenizer_score(tok, i) : -1e9f;
        for (int32_t k = bd_tokenizer_n_merges(tok) - 1; kind == BD_TOKV_SPM_JSON && k >= 0; k--) {
            int32_t a, b, r;
            if (bd_tokenizer_merge(tok, k, &a, &b, &r) == BD_OK) sc[r] = -(float)k;  // the earliest merge wins
        }
        kv_head(f, "tokenizer.ggml.scores", GT_ARRAY);
        w32(f, GT_F32);
        w64(f, (uint64_t)V);
        fwrite(sc, 4, (size_t)V, f);
        free(sc);
    }
    kv_head(f, "tokenizer.ggml.token_type", GT_ARRAY);
    w32(f, GT_I32);
    w64(f, (uint64_t)V);
    for (int i = 0; i < V; i++) {
        int32_t ty = 1;  // normal
        if (kind != BD_TOKV_SPM_BIN) {
            ty = gguf_token_type(bd_tokenizer_token_type(tok, i));
        } else {
            size_t len;
            const char *pc = bd_tokenizer_piece(tok, i, &len);
            if (pc && len == 5 && memcmp(pc, "<unk>", 5) == 0)
                ty = 2;
            else if (i == bos || i == eos)
                ty = 3;
            else if (pc && is_byte_piece(pc, len))
                ty = 6;
        }
        w32(f, (uint32_t)ty);
    }
    if (kind == BD_TOKV_BYTE_LEVEL) {
        int32_t nm = bd_tokenizer_n_merges(tok);
        kv_head(f, "tokenizer.ggml.merges", GT_ARRAY);
        w32(f, GT_STRING);
        w64(f, (uint64_t)nm);
        for (int32_t k = 0; k < nm; k++) {
            int32_t a, b, r;
            size_t la = 0, lb = 0;
            const char *pa = "", *pb = "";
            if (bd_tokenizer_merge(tok, k, &a, &b, &r) == BD_OK) {
                pa = bd_tokenizer_piece(tok, a, &la);
                pb = bd_tokenizer_piece(tok, b, &lb);
            }
            w64(f, la + 1 + lb);
            fwrite(pa, 1, la, f);
            fputc(' ', f);
            fwrite(pb, 1, lb, f);
        }
    }
    return BD_OK;
}

// The tensors of the file in llama.cpp's order, with their ggml types and data offsets; bitnet
// adds the sub-norms (before attn_output and ffn_down) and permutes q/k of interleaved models.
// BD_ERR_ARG with why for what the weight type cannot hold.
static int plan_tensors(const bd_model *m, bd_gguf_wtype wtype, bool bitnet, gg_tensor *ts, int *count,
                        bd_gguf_report *rep, char *why, size_t ws) {
    const bd_config *c = &m->cfg;
    int L = c->n_layers, C = c->dim, HS = c->head_dim, QD = c->n_heads * HS, KD = c->n_kv_heads * HS, F = c->ffn_dim;
    const bd_weights *w = &m->w;
    int n = 0;
    uint32_t t2d = wtype == BD_GGUF_F16 ? BD_GGML_TYPE_F16 : BD_GGML_TYPE_F32;
#define ADD(nm, nd, c0, c1, ty, src, lay, kk)                                                                 \
    do {                                                                                                      \
        gg_tensor *t_ = &ts[n++];                                                                             \
        snprintf(t_->name, sizeof t_->name, "%s", nm);                                                        \
        t_->ndim = nd, t_->ne0 = c0, t_->ne1 = c1, t_->type = ty, t_->f32 = src, t_->layer = lay, t_->k = kk; \
    } while (0)
    ADD("token_embd.weight", 2, C, c->vocab, t2d, w->tok_emb, 0, bd_pk_model_embedding(m) ? BD_HEAD : -1);
    static const char *gname[BD_N_LINEARS] = {
            [BD_WQ] = "attn_q",   [BD_WK] = "attn_k",   [BD_WV] = "attn_v", [BD_WO] = "attn_output",
            [BD_W1] = "ffn_gate", [BD_W2] = "ffn_down", [BD_W3] = "ffn_up"};
    const float *lin[BD_N_LINEARS] = {[BD_WQ] = w->wq, [BD_WK] = w->wk, [BD_WV] = w->wv, [BD_WO] = w->wo,
                                      [BD_W1] = w->w1, [BD_W2] = w->w2, [BD_W3] = w->w3};
    int shape[BD_N_LINEARS][2] = {
            [BD_WQ] = {C, QD}, [BD_WK] = {C, KD}, [BD_WV] = {C, KD}, [BD_WO] = {QD, C},  // (cols, rows)
            [BD_W1] = {C, F},  [BD_W2] = {F, C},  [BD_W3] = {C, F}};
    int rc = BD_OK;
    char nm[48];
    for (int l = 0; l < L && rc == BD_OK; l++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        ADD(nm, 1, C, 1, BD_GGML_TYPE_F32, w->rms_att + (size_t)l * C, 0, -1);
        for (bd_linear k = BD_WQ; k < BD_N_LINEARS; k++) {
            const bd_pk_tensor *p = bd_pk_model_slot(m, l, k);
            uint32_t ty = t2d;
            int need = wtypes[wtype].packed;
            if (need >= 0 && p) {
                if ((int)p->type != need) {
                    snprintf(why, ws, "GGUF type %s holds %s weights; layer %d %s is %s", wtypes[wtype].name,
                             bd_pk_traits_table[need].name, l, bd_pk_linear_names[k], bd_pk_traits_table[p->type].name);
                    rc = BD_ERR_ARG;
                    break;
                }
                ty = wtypes[wtype].ggml;
                if (need == BD_PK_TQ2 && !ternary_fits(ty, shape[k][0])) {  // F16 holds the same values: +-f16(D), 0
                    if (rep->n_tq2_f16++ == 0) rep->tq2_f16_cols = shape[k][0];
                    ty = BD_GGML_TYPE_F16;
                } else {
                    rep->n_typed++;
                }
            } else if (need >= 0) {
                ty = BD_GGML_TYPE_F32;  // a layer the policy left in full precision
            }
            if (k == BD_W1) {  // ffn_norm comes with the FFN
                snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
                ADD(nm, 1, C, 1, BD_GGML_TYPE_F32, w->rms_ffn + (size_t)l * C, 0, -1);
            }
            if (bitnet && (k == BD_WO || k == BD_W2)) {  // the paper's SubLN: {QD = C} and {F}
                snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, k == BD_WO ? "attn_sub_norm" : "ffn_sub_norm");
                ADD(nm, 1, shape[k][0], 1, BD_GGML_TYPE_F32, w->sub_norm[k] + (size_t)l * shape[k][0], 0, -1);
            }
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, gname[k]);
            ADD(nm, 2, shape[k][0], shape[k][1], ty, lin[k] + (size_t)l * shape[k][0] * shape[k][1], l,
                p ? (int)k : -1);
            if ((k == BD_WQ || k == BD_WK) && bitnet && c->rope == BD_ROPE_INTERLEAVED)
                ts[n - 1].perm = PERM_TO_HALF;
            else if ((k == BD_WQ || k == BD_WK) && !bitnet && c->rope == BD_ROPE_HALF)
                ts[n - 1].perm = PERM_TO_INTERLEAVED;
            rep->permuted_qk |= ts[n - 1].perm != PERM_NONE;
        }
    }
    if (rc == BD_OK && wtypes[wtype].packed >= 0) {
        bool any = false;
        for (int i = 0; i < n; i++) any |= ts[i].k >= 0 && ts[i].type != BD_GGML_TYPE_F32;
        if (!any) {
            snprintf(why, ws, "GGUF type %s needs a packed %s student", wtypes[wtype].name,
                     bd_pk_traits_table[wtypes[wtype].packed].name);
            rc = BD_ERR_ARG;
        }
    }
    if (rc < 0) return rc;
    ADD("output_norm.weight", 1, C, 1, BD_GGML_TYPE_F32, w->rms_final, 0, -1);
    if (!c->tied_embeddings) {  // never for bitnet (refused by bd_gguf_arch)
        const bd_pk_tensor *p = bd_pk_model_slot(m, 0, BD_HEAD);
        ADD("output.weight", 2, C, c->vocab, t2d, w->wcls, 0, p ? BD_HEAD : -1);
    }
#undef ADD
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        ts[i].offset = off;
        ts[i].nbytes = (uint64_t)row_bytes(ts[i].type, ts[i].ne0) * (uint64_t)ts[i].ne1;
        off += (ts[i].nbytes + BD_GGUF_ALIGNMENT - 1) / BD_GGUF_ALIGNMENT * BD_GGUF_ALIGNMENT;
    }
    *count = n;
    return BD_OK;
}

// Header, metadata (general.*, llama.*, tokenizer.ggml.*) and the infos of the n tensors.
// BD_OK, or BD_ERR_NOMEM.
static int write_header(FILE *f, const bd_model *m, const bd_tokenizer *tok, const char *arch, const gg_tensor *ts,
                        int n) {
    const bd_config *c = &m->cfg;
    int V = c->vocab, C = c->dim, HS = c->head_dim, L = c->n_layers, F = c->ffn_dim;
    fwrite("GGUF", 1, 4, f);
    w32(f, 3);
    w64(f, (uint64_t)n);
    int32_t bos = bd_tokenizer_bos(tok), eos = bd_tokenizer_eos(tok);
    // The kv_* calls below: 15 (general.*, <arch>.*), the vocabulary's (write_vocab: model, tokens,
    // scores, token_type; byte-level: model, pre, tokens, token_type, merges), BOS and EOS ids.
    w64(f, 15 + 4 + (bd_tokenizer_kind(tok) == BD_TOKV_BYTE_LEVEL) + (bos >= 0) + (eos >= 0));
    char key[64];
#define AK(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    kv_str(f, "general.architecture", arch);
    kv_str(f, "general.name", c->arch);
    kv_u32(f, "general.alignment", BD_GGUF_ALIGNMENT);
    kv_u32(f, AK("context_length"), (uint32_t)c->max_seq);
    kv_u32(f, AK("embedding_length"), (uint32_t)C);
    kv_u32(f, AK("block_count"), (uint32_t)L);
    kv_u32(f, AK("feed_forward_length"), (uint32_t)F);
    kv_u32(f, AK("attention.head_count"), (uint32_t)c->n_heads);
    kv_u32(f, AK("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    kv_f32(f, AK("rope.freq_base"), c->rope_theta);
    kv_f32(f, AK("attention.layer_norm_rms_epsilon"), c->norm_eps);  // bitnet: every norm's
    kv_u32(f, AK("rope.dimension_count"), (uint32_t)HS);
    kv_u32(f, AK("attention.key_length"), (uint32_t)HS);
    kv_u32(f, AK("attention.value_length"), (uint32_t)HS);
    kv_u32(f, AK("vocab_size"), (uint32_t)V);
#undef AK
    int rc = write_vocab(f, tok);
    if (rc < 0) return rc;
    if (bos >= 0) kv_u32(f, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0) kv_u32(f, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    for (int i = 0; i < n; i++) {
        wstr(f, ts[i].name, strlen(ts[i].name));
        w32(f, (uint32_t)ts[i].ndim);
        w64(f, (uint64_t)ts[i].ne0);
        if (ts[i].ndim > 1) w64(f, (uint64_t)ts[i].ne1);
        w32(f, ts[i].type);
        w64(f, ts[i].offset);
    }
    return BD_OK;
}

const char *bd_gguf_arch(const bd_config *c, char *why, size_t ws) {
    if (c->subln == BD_SUBLN_NONE) {
        if (c->qkv_bias || c->qk_norm)
            return snprintf(why, ws, "GGUF export covers the llama architecture; this model has %s",
                            c->qkv_bias ? "qkv biases (Qwen2)" : "q/k norms (Qwen3)"),
                   NULL;
        return "llama";
    }
    int QD = c->n_heads * c->head_dim;
    if (c->subln != BD_SUBLN_PAPER)
        snprintf(why, ws,
                 "SubLN placement \"%s\" (a norm before every block linear) has no place in llama.cpp's bitnet "
                 "architecture; train with --subln=paper",
                 bd_subln_name(c->subln));
    else if (c->qk_norm)
        snprintf(why, ws, "llama.cpp's bitnet architecture has no q/k norms; this model has them (Qwen3)");
    else if (c->qkv_bias)
        snprintf(why, ws, "llama.cpp's bitnet architecture has no q/k/v biases; this model has them (Qwen2)");
    else if (!c->tied_embeddings)
        snprintf(why, ws,
                 "llama.cpp's bitnet architecture ties the output head to token_embd; this model's head is untied");
    else if (QD != c->dim)
        snprintf(why, ws,
                 "llama.cpp's bitnet architecture sizes attn_q, attn_output and attn_sub_norm by the model dim; "
                 "this model has n_heads*head_dim = %d, dim %d",
                 QD, c->dim);
    else
        return "bitnet";
    return NULL;
}

int bd_gguf_write(const bd_model *m, const bd_tokenizer *tok, const char *path, bd_gguf_wtype wtype,
                  bd_gguf_report *rep, char *why, size_t ws) {
    const bd_config *c = &m->cfg;
    bd_gguf_report rp = {0};
    if (!rep) rep = &rp;
    *rep = (bd_gguf_report){0};
    if ((unsigned)wtype >= BD_GGUF_WTYPE_COUNT) return snprintf(why, ws, "unknown GGUF weight type"), BD_ERR_ARG;
    const char *arch = bd_gguf_arch(c, why, ws);
    if (!arch) return BD_ERR_ARG;
    bool bitnet = strcmp(arch, "bitnet") == 0;
    if (!tok) return snprintf(why, ws, "GGUF export needs the model's tokenizer"), BD_ERR_ARG;
    int V = bd_tokenizer_vocab_size(tok);
    if (V != c->vocab)
        return snprintf(why, ws, "the tokenizer has %d tokens, the model's vocabulary %d", V, c->vocab), BD_ERR_ARG;
    gg_tensor *ts = calloc((size_t)(11 * c->n_layers + 3), sizeof *ts);
    if (!ts) return snprintf(why, ws, "no memory for the tensor list"), BD_ERR_NOMEM;
    int n, rc = plan_tensors(m, wtype, bitnet, ts, &n, rep, why, ws);
    if (rc < 0) {
        free(ts);
        return rc;
    }
    bd_outfile *o = bd_outfile_open(path, "wb");
    if (!o) {
        snprintf(why, ws, "%s: cannot create: %s", path, strerror(errno));
        free(ts);
        return BD_ERR_IO;
    }
    FILE *f = bd_outfile_fp(o);
    rc = write_header(f, m, tok, arch, ts, n);
    static const uint8_t zeros[BD_GGUF_ALIGNMENT];
    long pos = ftell(f);
    if (pos >= 0) fwrite(zeros, 1, (size_t)((BD_GGUF_ALIGNMENT - pos % BD_GGUF_ALIGNMENT) % BD_GGUF_ALIGNMENT), f);
    int C = c->dim, F = c->ffn_dim, QD = c->n_heads * c->head_dim;
    size_t maxc = (size_t)(C > F ? C : F) > (size_t)QD ? (size_t)(C > F ? C : F) : (size_t)QD;
    float *row = malloc(maxc * sizeof *row);
    uint8_t *buf = malloc(maxc * 4);
    if (rc == BD_OK && !(row && buf)) rc = BD_ERR_NOMEM;
    if (rc < 0) snprintf(why, ws, "no memory for a row or the vocabulary's scores");
    for (int i = 0; i < n && rc == BD_OK; i++) {
        rc = write_tensor(f, m, &ts[i], row, buf, why, ws);
        fwrite(zeros, 1, (size_t)((BD_GGUF_ALIGNMENT - ts[i].nbytes % BD_GGUF_ALIGNMENT) % BD_GGUF_ALIGNMENT), f);
    }
    free(row);
    free(buf);
    free(ts);
    if (rc == BD_OK && pos < 0) {
        snprintf(why, ws, "%s: GGUF needs a seekable output (a file, not a pipe)", path);
        rc = BD_ERR_IO;
    }
    if (rc == BD_OK && ferror(f)) {
        snprintf(why, ws, "%s: write failed: %s", path, strerror(errno));
        rc = BD_ERR_IO;
    }
    if (rc < 0) {
        bd_outfile_abort(o);
        return rc;
    }
    if (bd_outfile_commit(o) < 0) {
        snprintf(why, ws, "%s: write failed: %s", path, strerror(errno));
        return BD_ERR_IO;
    }
    rep->arch = arch;
    rep->eps_differs = bitnet && c->subln_eps != c->norm_eps;
    return BD_OK;
}
