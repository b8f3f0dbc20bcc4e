// GGUF export read back by an independent parser written here from the GGUF v3 layout:
// header, every metadata key and value, the vocabulary (spaces -> U+2581, token types), tensor
// infos (names, dims, types, aligned offsets) and tensor data: f32 tensors equal the
// fake-quantized weights bit for bit, TQ2_0 blocks decode (by the ggml layout, decoded here
// by hand) to the ternary codes with d = f16(D), and q/k rows of a half-split RoPE model come
// out in the interleaved order.
#include <string.h>

#include "bd_dtype.h"
#include "bd_gguf.h"
#include "bd_packed.h"
#include "bd_qmodel.h"
#include "bd_test.h"
#include "bd_tokenizer.h"

typedef struct {
    const uint8_t *p;
    size_t n, pos;
} rd;

static uint64_t u64(rd *r) {
    uint64_t v;
    ck_assert(r->pos + 8 <= r->n);
    memcpy(&v, r->p + r->pos, 8);
    r->pos += 8;
    return v;
}
static uint32_t u32(rd *r) {
    uint32_t v;
    ck_assert(r->pos + 4 <= r->n);
    memcpy(&v, r->p + r->pos, 4);
    r->pos += 4;
    return v;
}
static float f32(rd *r) {
    float v;
    ck_assert(r->pos + 4 <= r->n);
    memcpy(&v, r->p + r->pos, 4);
    r->pos += 4;
    return v;
}
static const char *str(rd *r, size_t *len) {
    *len = u64(r);
    ck_assert(r->pos + *len <= r->n);
    const char *s = (const char *)r->p + r->pos;
    r->pos += *len;
    return s;
}
static bool key_is(const char *k, size_t n, const char *want) { return n == strlen(want) && memcmp(k, want, n) == 0; }

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    ck_assert_int_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

typedef struct {
    char name[64];
    uint32_t ndim, type;
    uint64_t ne[4], off;
} tinfo;

// Parses the file, checks the metadata against cfg and tok (keys of architecture arch),
// returns the tensor infos and the data section start.
static int parse(const uint8_t *b, size_t n, const bd_config *c, const bd_tokenizer *tok, const char *arch, tinfo *ti,
                 size_t *data0) {
    rd r = {b, n, 0};
    ck_assert(memcmp(b, "GGUF", 4) == 0);
    r.pos = 4;
    ck_assert_uint_eq(u32(&r), 3);
    uint64_t nt = u64(&r), nkv = u64(&r);
    int seen = 0;
    for (uint64_t i = 0; i < nkv; i++) {
        size_t kl, sl;
        const char *k0 = str(&r, &kl);
        char kb[128];  // the key with "<arch>." as "A."
        size_t al = strlen(arch);
        ck_assert(kl < sizeof kb - 2);
        if (kl > al && memcmp(k0, arch, al) == 0 && k0[al] == '.')
            kl = (size_t)snprintf(kb, sizeof kb, "A.%.*s", (int)(kl - al - 1), k0 + al + 1);
        else
            kl = (size_t)snprintf(kb, sizeof kb, "%.*s", (int)kl, k0);
        const char *k = kb;
        uint32_t ty = u32(&r);
        if (ty == 4) {  // u32
            uint32_t v = u32(&r);
            struct {
                const char *k;
                uint32_t want;
            } u[] = {{"general.alignment", 32},
                     {"A.context_length", (uint32_t)c->max_seq},
                     {"A.embedding_length", (uint32_t)c->dim},
                     {"A.block_count", (uint32_t)c->n_layers},
                     {"A.feed_forward_length", (uint32_t)c->ffn_dim},
                     {"A.attention.head_count", (uint32_t)c->n_heads},
                     {"A.attention.head_count_kv", (uint32_t)c->n_kv_heads},
                     {"A.rope.dimension_count", (uint32_t)c->head_dim},
                     {"tokenizer.ggml.bos_token_id", 1},
                     {"tokenizer.ggml.eos_token_id", 2},
                     {"A.vocab_size", (uint32_t)c->vocab},
                     {"A.attention.key_length", (uint32_t)c->head_dim},
                     {"A.attention.value_length", (uint32_t)c->head_dim}};
            bool known = false;
            for (size_t j = 0; j < sizeof u / sizeof *u; j++)
                if (key_is(k, kl, u[j].k)) {
                    ck_assert_msg(v == u[j].want, "%s = %u, expected %u", u[j].k, v, u[j].want);
                    known = true;
                    seen++;
                }
            ck_assert_msg(known, "unexpected u32 key %.*s", (int)kl, k);
        } else if (ty == 6) {
            float v = f32(&r);
            if (key_is(k, kl, "A.rope.freq_base"))
                ck_assert(v == c->rope_theta);
            else if (key_is(k, kl, "A.attention.layer_norm_rms_epsilon"))
                ck_assert(v == c->norm_eps);
            else
                ck_abort_msg("unexpected f32 key %.*s", (int)kl, k);
            seen++;
        } else if (ty == 8) {
            const char *s = str(&r, &sl);
            if (key_is(k, kl, "general.architecture"))
                ck_assert(sl == strlen(arch) && memcmp(s, arch, sl) == 0);
            else if (key_is(k, kl, "tokenizer.ggml.model"))
                ck_assert(sl == 5 && memcmp(s, "llama", 5) == 0);
            else
                ck_assert_msg(key_is(k, kl, "general.name"), "unexpected string key %.*s", (int)kl, k);
            seen++;
        } else if (ty == 9) {
            uint32_t et = u32(&r);
            uint64_t cnt = u64(&r);
            ck_assert_uint_eq(cnt, (uint64_t)c->vocab);
            for (uint64_t t = 0; t < cnt; t++) {
                size_t pl;
                const char *piece = bd_tokenizer_piece(tok, (int32_t)t, &pl);
                if (key_is(k, kl, "tokenizer.ggml.tokens")) {
                    ck_assert_uint_eq(et, 8);
                    const char *s = str(&r, &sl);
                    char want[256];  // the piece with every space as U+2581
                    size_t wn = 0;
                    for (size_t j = 0; j < pl && wn + 3 < sizeof want; j++) {
                        if (piece[j] == ' ') {
                            memcpy(want + wn, "\xe2\x96\x81", 3);
                            wn += 3;
                        } else
                            want[wn++] = piece[j];
                    }
                    if (t == 1 || t == 2) {  // BOS and EOS as llama.cpp's converter writes them
                        wn = strlen(t == 1 ? "<s>" : "</s>");
                        memcpy(want, t == 1 ? "<s>" : "</s>", wn);
                    }
                    ck_assert_msg(sl == wn && memcmp(s, want, wn) == 0, "token %llu: \"%.*s\"", (unsigned long long)t,
                                  (int)sl, s);
                } else if (key_is(k, kl, "tokenizer.ggml.scores")) {
                    ck_assert_uint_eq(et, 6);
                    ck_assert(f32(&r) == bd_tokenizer_score(tok, (int32_t)t));
                } else {
                    ck_assert(key_is(k, kl, "tokenizer.ggml.token_type") && et == 5);
                    int32_t tt = (int32_t)u32(&r);
                    // tok512: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then normal pieces.
                    int32_t want = t == 0 ? 2 : t <= 2 ? 3 : t <= 258 ? 6 : 1;
                    ck_assert_msg(tt == want, "token %llu type %d, expected %d", (unsigned long long)t, tt, want);
                }
            }
            seen++;
        } else {
            ck_abort_msg("unexpected type %u for %.*s", ty, (int)kl, k);
        }
    }
    ck_assert_int_eq(seen, (int)nkv);
    ck_assert_int_ge(seen, 21);
    for (uint64_t i = 0; i < nt; i++) {
        size_t nl;
        const char *nm = str(&r, &nl);
        ck_assert(nl < sizeof ti[i].name);
        memcpy(ti[i].name, nm, nl);
        ti[i].name[nl] = 0;
        ti[i].ndim = u32(&r);
        ck_assert(ti[i].ndim >= 1 && ti[i].ndim <= 2);
        for (uint32_t d = 0; d < ti[i].ndim; d++) ti[i].ne[d] = u64(&r);
        ti[i].type = u32(&r);
        ti[i].off = u64(&r);
        ck_assert_uint_eq(ti[i].off % 32, 0);
    }
    *data0 = (r.pos + 31) / 32 * 32;
    return (int)nt;
}

static const tinfo *find(const tinfo *ti, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(ti[i].name, name) == 0) return &ti[i];
    ck_abort_msg("tensor %s missing", name);
    return NULL;
}

// A model whose rows (256, 512) fit the 256-weight blocks of the ternary types.
static bd_config gguf_test_config(bd_rope_style rope, bool tied) {
    return (bd_config){.arch = "llama",
                       .dim = 256,
                       .n_layers = 2,
                       .n_heads = 4,
                       .n_kv_heads = 2,
                       .head_dim = 64,
                       .ffn_dim = 512,
                       .vocab = 512,
                       .max_seq = 128,
                       .norm_eps = 1e-5f,
                       .rope_theta = 10000.0f,
                       .rope = rope,
                       .tied_embeddings = tied,
                       .bos = 1,
                       .eos = 2};
}

START_TEST(test_gguf_round_trip) {
    bd_tokenizer *tok;
    char why[512], path[4200];
    ck_assert_msg(bd_tokenizer_load(bd_test_data("models/stories260K/tok512.bin"), &tok, why, sizeof why) == BD_OK,
                  "%s", why);
    bd_config c = gguf_test_config(BD_ROPE_HALF, false);
    bd_model m, fq;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    ck_assert_int_eq(bd_model_alloc(&fq, &c), BD_OK);
    unsigned s = 3;
    for (size_t i = 0; i < m.n_params; i++) {
        s = s * 1103515245u + 12345u;
        m.params[i] = (s >> 8) / 16777216.0f - 0.5f;
    }
    m.quant = (bd_qspec){BD_Q_TERNARY, 2, 0};
    ck_assert_int_eq(bd_model_fakequant(&fq, &m, &m.quant, &m.qpolicy, why, sizeof why), BD_OK);
    ck_assert_msg(bd_pk_model_pack(&m, why, sizeof why) == BD_OK, "%s", why);
    int HS = c.head_dim, QD = c.n_heads * HS, C = c.dim;

    for (int pass = 0; pass < 2; pass++) {
        bd_gguf_wtype wt = pass == 0 ? BD_GGUF_TQ2_0 : BD_GGUF_F32;
        snprintf(path, sizeof path, "%s/m%d.gguf", bd_test_tmpdir(), pass);
        ck_assert_msg(bd_gguf_write(&m, tok, path, wt, NULL, why, sizeof why) == BD_OK, "%s", why);
        size_t n;
        uint8_t *b = slurp(path, &n);
        tinfo ti[64];
        size_t d0;
        int nt = parse(b, n, &c, tok, "llama", ti, &d0);
        ck_assert_int_eq(nt, 1 + 9 * c.n_layers + 2);
        ck_assert_str_eq(ti[0].name, "token_embd.weight");
        ck_assert_str_eq(ti[1].name, "blk.0.attn_norm.weight");
        ck_assert_str_eq(ti[nt - 1].name, "output.weight");
        // Offsets follow each other with 32-byte padding and the file ends with the last tensor.
        for (int i = 0; i < nt; i++) {
            uint64_t numel = ti[i].ne[0] * (ti[i].ndim > 1 ? ti[i].ne[1] : 1);
            uint64_t bytes = ti[i].type == 0 ? numel * 4 : numel / 256 * 66;
            ck_assert(ti[i].type == 0 || ti[i].type == 35);
            if (i + 1 < nt)
                ck_assert_uint_eq(ti[i + 1].off, (ti[i].off + bytes + 31) / 32 * 32);
            else
                ck_assert_uint_le(d0 + ti[i].off + bytes, n);
        }
        const tinfo *emb = find(ti, nt, "token_embd.weight");
        ck_assert(emb->ne[0] == (uint64_t)C && emb->ne[1] == (uint64_t)c.vocab && emb->type == 0);
        ck_assert_mem_eq(b + d0 + emb->off, m.w.tok_emb, (size_t)C * c.vocab * 4);
        const tinfo *nrm = find(ti, nt, "blk.1.ffn_norm.weight");
        ck_assert(nrm->ndim == 1 && nrm->ne[0] == (uint64_t)C);
        ck_assert_mem_eq(b + d0 + nrm->off, m.w.rms_ffn + C, (size_t)C * 4);
        // Layer 1 attn_q: rows back in interleaved order: dst h*HS + 2j = src h*HS + j,
        // dst h*HS + 2j + 1 = src h*HS + HS/2 + j.
        const tinfo *q = find(ti, nt, "blk.1.attn_q.weight");
        ck_assert(q->ne[0] == (uint64_t)C && q->ne[1] == (uint64_t)QD);
        const bd_pk_tensor *pk = bd_pk_model_slot(&m, 1, BD_WQ);
        const float *fqq = fq.w.wq + (size_t)QD * C;
        for (int r = 0; r < QD; r++) {
            int h = r / HS, i = r % HS, src = h * HS + (i % 2 ? HS / 2 + i / 2 : i / 2);
            const float *want = fqq + (size_t)src * C;
            if (pass == 1) {  // equal values (a ternary zero may be +0 where fake quantization gave -0)
                for (int k = 0; k < C; k++) {
                    float got;
                    memcpy(&got, b + d0 + q->off + ((size_t)r * C + k) * 4, 4);
                    ck_assert_msg(got == want[k], "row %d col %d: %g vs %g", r, k, got, want[k]);
                }
                continue;
            }
            ck_assert_int_eq(q->type, 35);
            for (int blk = 0; blk < C / 256; blk++) {
                const uint8_t *bb = b + d0 + q->off + ((size_t)r * (C / 256) + blk) * 66;
                uint16_t d;
                memcpy(&d, bb + 64, 2);
                ck_assert_uint_eq(d, bd_f32_to_f16(pk->scale));
                for (int k = 0; k < 256; k++) {  // ggml: weight 128h + 32l + m at bits 2l of qs[32h + m]
                    int hh = k / 128, l = k % 128 / 32, mm = k % 32, code = bb[32 * hh + mm] >> (2 * l) & 3;
                    float w = want[blk * 256 + k];  // the fake-quantized value: -D, 0 or D
                    int lev = w > 0 ? 1 : w < 0 ? -1 : 0;
                    ck_assert_msg(code - 1 == lev, "row %d weight %d: code %d, value %g", r, blk * 256 + k, code, w);
                }
            }
        }
        // The head stays f32 and is the model's own.
        const tinfo *out = find(ti, nt, "output.weight");
        ck_assert_int_eq(out->type, 0);
        ck_assert_mem_eq(b + d0 + out->off, m.w.wcls, (size_t)C * c.vocab * 4);
        free(b);
    }
    // What GGUF cannot hold is refused with a reason.
    bd_config c2 = c;
    c2.dim = 64, c2.head_dim = 16;
    bd_model small;
    ck_assert_int_eq(bd_model_alloc(&small, &c2), BD_OK);
    for (size_t i = 0; i < small.n_params; i++) {
        s = s * 1103515245u + 12345u;
        small.params[i] = (s >> 8) / 16777216.0f - 0.5f;
    }
    small.quant = (bd_qspec){BD_Q_TERNARY, 2, 0};
    ck_assert_int_eq(bd_pk_model_pack(&small, why, sizeof why), BD_OK);
    // Ternary rows that are not multiples of 256 weights go out as F16 (w2's rows of 512 as TQ2_0).
    bd_gguf_report rep;
    ck_assert_msg(bd_gguf_write(&small, tok, path, BD_GGUF_TQ2_0, &rep, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(rep.n_tq2_f16, 6 * c2.n_layers);
    ck_assert_int_eq(rep.n_typed, c2.n_layers);
    ck_assert_int_eq(rep.tq2_f16_cols, 64);
    ck_assert_str_eq(rep.arch, "llama");
    {
        size_t n;
        uint8_t *b = slurp(path, &n);
        tinfo ti[64];
        size_t d0;
        int nt = parse(b, n, &c2, tok, "llama", ti, &d0);
        ck_assert_int_eq(find(ti, nt, "blk.0.attn_q.weight")->type, 1);
        ck_assert_int_eq(find(ti, nt, "blk.0.ffn_down.weight")->type, 35);
        const tinfo *q = find(ti, nt, "blk.1.attn_v.weight");  // the values: +-f16(D) and 0
        const bd_pk_tensor *pk = bd_pk_model_slot(&small, 1, BD_WV);
        float row[64];
        for (int r = 0; r < (int)q->ne[1]; r++) {
            bd_pk_dequantize_row(pk, r, row);
            for (int k = 0; k < 64; k++) {
                uint16_t h;
                memcpy(&h, b + d0 + q->off + ((size_t)r * 64 + k) * 2, 2);
                ck_assert(bd_f16_to_f32(h) == (row[k] > 0   ? 1
                                               : row[k] < 0 ? -1
                                                            : 0) *
                                                      bd_f16_to_f32(bd_f32_to_f16(pk->scale)));
            }
        }
        free(b);
    }
    small.cfg.vocab = 100;
    ck_assert_int_eq(bd_gguf_write(&small, tok, path, BD_GGUF_F32, NULL, why, sizeof why), BD_ERR_ARG);
    small.cfg.vocab = 512;
    ck_assert_msg(strstr(why, "512 tokens"), "%s", why);
    bd_model_free(&small);
    bd_model_free(&m);
    bd_model_free(&fq);
    bd_tokenizer_free(tok);
}
END_TEST

// A SubLN student (paper placement, tied, interleaved RoPE) goes out as llama.cpp's bitnet:
// architecture keys, the sub-norms as the model's weights, no output tensor, q/k rows permuted
// to the half-split layout of NEOX RoPE (dst j <- src 2j, dst HS/2 + j <- src 2j + 1 within a
// head), TQ2_0 linears. What bitnet cannot hold is refused.
START_TEST(test_gguf_bitnet) {
    bd_tokenizer *tok;
    char why[512], path[4200];
    ck_assert_msg(bd_tokenizer_load(bd_test_data("models/stories260K/tok512.bin"), &tok, why, sizeof why) == BD_OK,
                  "%s", why);
    bd_config c = gguf_test_config(BD_ROPE_INTERLEAVED, true);
    bd_model m, fq;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    ck_assert_msg(bd_model_add_subln(&m, BD_SUBLN_PAPER, 1e-8f, why, sizeof why) == BD_OK, "%s", why);
    c = m.cfg;
    ck_assert_int_eq(bd_model_alloc(&fq, &c), BD_OK);
    unsigned s = 5;
    for (size_t i = 0; i < m.n_params; i++) {
        s = s * 1103515245u + 12345u;
        m.params[i] = (s >> 8) / 16777216.0f - 0.5f;
    }
    m.quant = (bd_qspec){BD_Q_TERNARY, 2, 0};
    ck_assert_int_eq(bd_model_fakequant(&fq, &m, &m.quant, &m.qpolicy, why, sizeof why), BD_OK);
    ck_assert_msg(bd_pk_model_pack(&m, why, sizeof why) == BD_OK, "%s", why);
    int HS = c.head_dim, C = c.dim, F = c.ffn_dim, KD = c.n_kv_heads * HS;
    for (int pass = 0; pass < 2; pass++) {
        bd_gguf_report rep;
        snprintf(path, sizeof path, "%s/b%d.gguf", bd_test_tmpdir(), pass);
        ck_assert_msg(bd_gguf_write(&m, tok, path, pass ? BD_GGUF_F32 : BD_GGUF_TQ2_0, &rep, why, sizeof why) == BD_OK,
                      "%s", why);
        ck_assert_str_eq(rep.arch, "bitnet");
        ck_assert(rep.eps_differs && rep.permuted_qk);
        ck_assert_int_eq(rep.n_typed, pass ? 0 : 7 * c.n_layers);
        size_t n;
        uint8_t *b = slurp(path, &n);
        tinfo ti[64];
        size_t d0;
        int nt = parse(b, n, &c, tok, "bitnet", ti, &d0);
        ck_assert_int_eq(nt, 1 + 11 * c.n_layers + 1);
        for (int i = 0; i < nt; i++) ck_assert_msg(strcmp(ti[i].name, "output.weight") != 0, "bitnet has no output");
        for (int l = 0; l < c.n_layers; l++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.attn_sub_norm.weight", l);
            const tinfo *t = find(ti, nt, nm);
            ck_assert(t->ndim == 1 && t->ne[0] == (uint64_t)C && t->type == 0);
            ck_assert_mem_eq(b + d0 + t->off, m.w.sub_norm[BD_WO] + (size_t)l * C, (size_t)C * 4);
            snprintf(nm, sizeof nm, "blk.%d.ffn_sub_norm.weight", l);
            t = find(ti, nt, nm);
            ck_assert(t->ndim == 1 && t->ne[0] == (uint64_t)F && t->type == 0);
            ck_assert_mem_eq(b + d0 + t->off, m.w.sub_norm[BD_W2] + (size_t)l * F, (size_t)F * 4);
            snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);
            t = find(ti, nt, nm);
            ck_assert(t->ne[0] == (uint64_t)F && t->ne[1] == (uint64_t)C && t->type == (pass ? 0u : 35u));
        }
        // Layer 1 attn_k, f32 pass: rows permuted to the half-split layout; TQ2_0 pass: codes.
        const tinfo *k = find(ti, nt, "blk.1.attn_k.weight");
        ck_assert(k->ne[0] == (uint64_t)C && k->ne[1] == (uint64_t)KD);
        const float *fqk = fq.w.wk + (size_t)KD * C;
        for (int r = 0; r < KD; r++) {
            int h = r / HS, i = r % HS, src = h * HS + (i < HS / 2 ? 2 * i : 2 * (i - HS / 2) + 1);
            const float *want = fqk + (size_t)src * C;
            for (int j = 0; j < C; j++) {
                float got;
                if (pass) {
                    memcpy(&got, b + d0 + k->off + ((size_t)r * C + j) * 4, 4);
                    ck_assert_msg(got == want[j], "row %d col %d: %g vs %g", r, j, got, want[j]);
                } else {
                    const uint8_t *bb = b + d0 + k->off + (size_t)r * 66;  // one block per row (C = 256)
                    int code = bb[32 * (j / 128) + j % 32] >> (2 * (j % 128 / 32)) & 3;
                    ck_assert_msg(code - 1 == (want[j] > 0) - (want[j] < 0), "row %d col %d", r, j);
                }
            }
        }
        free(b);
    }
    // Refused, each with its reason: placement "all", an untied head, n_heads*head_dim != dim,
    // q/k norms, qkv biases; no file is written.
    static const char *const bad[] = {"--subln=paper", "untied", "n_heads*head_dim = 128, dim 256", "q/k norms",
                                      "biases"};
    for (int i = 0; i < 5; i++) {
        bd_config b2 = c;
        if (i == 0) b2.subln = BD_SUBLN_ALL;
        if (i == 1) b2.tied_embeddings = false;
        if (i == 2) b2.head_dim = 32;
        if (i == 3) b2.qk_norm = true;
        if (i == 4) b2.qkv_bias = true;
        ck_assert_ptr_null(bd_gguf_arch(&b2, why, sizeof why));
        ck_assert_msg(strstr(why, bad[i]), "%s", why);
    }
    bd_model all;
    bd_config ca = c;
    ca.subln = BD_SUBLN_NONE;
    ck_assert_int_eq(bd_model_alloc(&all, &ca), BD_OK);
    ck_assert_int_eq(bd_model_add_subln(&all, BD_SUBLN_ALL, 1e-5f, why, sizeof why), BD_OK);
    snprintf(path, sizeof path, "%s/all.gguf", bd_test_tmpdir());
    ck_assert_int_eq(bd_gguf_write(&all, tok, path, BD_GGUF_F32, NULL, why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "\"all\"") && strstr(why, "--subln=paper"), "%s", why);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_null(f);
    bd_model_free(&all);
    bd_model_free(&m);
    bd_model_free(&fq);
    bd_tokenizer_free(tok);
}
END_TEST

START_TEST(test_tq2_0_blocks) {
    // bd tq2 blocks -> TQ2_0 -> values (q - 1) * f16(D), for a row of 512 weights (16 blocks of 32).
    bd_block_tq2 codes[16] = {0};
    static_assert(sizeof codes == 128, "2 bits per weight");
    for (int i = 0; i < 512; i++) codes[i / 32].qs[i % 32 / 4] |= (uint8_t)((i * 7 % 3) << (2 * (i % 4)));
    bd_block_tq2_0 blk[2];
    bd_quantize_row_tq2_0_from_tq2(codes, blk, 512, 0.75f);
    float out[512];
    bd_dequantize_row_tq2_0(blk, out, 512);
    for (int i = 0; i < 512; i++) ck_assert(out[i] == (float)(i * 7 % 3 - 1) * 0.75f);
}
END_TEST

START_TEST(test_tq1_0_blocks) {
    // bd tq2 codes -> TQ1_0 -> values (code - 1) * f16(D), for a row of 512 weights.
    bd_block_tq2 codes[16] = {0};
    for (int i = 0; i < 512; i++) codes[i / 32].qs[i % 32 / 4] |= (uint8_t)((i * 7 % 3) << (2 * (i % 4)));
    bd_block_tq1_0 blk[2];
    bd_quantize_row_tq1_0_from_tq2(codes, blk, 512, 0.75f);
    // By hand: byte 0 holds the codes of weights 0, 32, 64, 96, 128: i*7 % 3 = 0, 2, 1, 0, 2, the
    // base-3 number 0*81 + 2*27 + 1*9 + 0*3 + 2 = 65, stored as ceil(65 * 256 / 243) = 69.
    ck_assert_int_eq(blk[0].qs[0], 69);
    // qh byte 1 holds weights 241, 245, 249, 253: codes 1, 2, 0, 1 -> (1*27 + 2*9 + 0*3 + 1) * 3 =
    // 138 (the fifth digit is 0), stored as ceil(138 * 256 / 243) = 146.
    ck_assert_int_eq(blk[0].qh[1], 146);
    ck_assert_int_eq(blk[1].d, bd_f32_to_f16(0.75f));
    float out[512];
    bd_dequantize_row_tq1_0(blk, out, 512);
    for (int i = 0; i < 512; i++) ck_assert(out[i] == (float)(i * 7 % 3 - 1) * 0.75f);
    // Every code pattern of a byte survives: all 3^5 numbers, decoded by ggml's digit rule.
    for (int v = 0; v < 243; v++) {
        bd_block_tq2 one[8] = {0};
        for (int k = 0, p = 81; k < 5; k++, p /= 3) {  // weight 32k gets digit k (the first most significant)
            int w = 32 * k;
            one[w / 32].qs[w % 32 / 4] |= (uint8_t)(v / p % 3 << (2 * (w % 4)));
        }
        bd_block_tq1_0 b;
        bd_quantize_row_tq1_0_from_tq2(one, &b, 256, 1.0f);
        float y[256];
        bd_dequantize_row_tq1_0(&b, y, 256);
        for (int k = 0, p = 81; k < 5; k++, p /= 3)
            ck_assert_msg(y[32 * k] == (float)(v / p % 3 - 1), "v=%d k=%d", v, k);
    }
}
END_TEST

Suite *suite_gguf(void) {
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_gguf_round_trip);
    tcase_add_test(tc, test_gguf_bitnet);
    tcase_add_test(tc, test_tq2_0_blocks);
    tcase_add_test(tc, test_tq1_0_blocks);
    suite_add_tcase(s, tc);
    return s;
}
