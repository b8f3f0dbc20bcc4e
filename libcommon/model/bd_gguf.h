// GGUF version 3 export (the llama.cpp / ggml model file), for Llama-architecture bd models
// and SubLN students, with the model's vocabulary: a llama2.c tokenizer.bin or a tokenizer.json
// (SentencePiece-style as tokenizer.ggml.model "llama", byte-level BPE as "gpt2"; bd_gguf.c's
// write_vocab says how each is written).
//
// File: "GGUF", u32 version 3, u64 tensor count, u64 metadata count; metadata key/values
// (general.*, <arch>.*, tokenizer.ggml.*); tensor infos (name, dims innermost first, ggml
// type, offset); padding to general.alignment (32); tensor data, each tensor aligned to 32.
// Architectures, chosen by the model:
//   "llama"  models without SubLN. Tensors: token_embd, blk.N.{attn_norm, attn_q, attn_k,
//            attn_v, attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up}, output_norm, output
//            (untied models). q/k rows in the interleaved RoPE layout llama.cpp's llama
//            architecture rotates (half-split models are permuted to it).
//   "bitnet" SubLN students with the paper's placement (llama.cpp's LLM_ARCH_BITNET): the same
//            tensors plus blk.N.attn_sub_norm {C} (before attn_output) and blk.N.ffn_sub_norm
//            {F} (before ffn_down), no output (bitnet ties the head to token_embd). llama.cpp
//            rotates bitnet's q/k with NEOX RoPE (pairs i, i + HS/2), so q/k rows of an
//            interleaved model are permuted to the half-split layout (within each head, rows
//            2i go to i and 2i+1 to HS/2 + i; q.k is unchanged because both move alike).
//            It uses one RMSNorm epsilon for every norm: the file holds the model's norm_eps,
//            so the sub-norms run with norm_eps instead of subln_eps (bd_gguf_report says so).
//            Refused (BD_ERR_ARG): placement "all", an untied head, NH*HS != C (llama.cpp
//            sizes attn_q, attn_output and attn_sub_norm by C), q/k norms, qkv biases.
// Token pieces get U+2581 for spaces; token types: unknown, control (BOS, EOS), byte
// (<0xNN>), normal.
// Weight types (what bd-pack --gguf-type offers, and which runtime reads it):
//   F32    every tensor f32: exact for any model (fake-quantized weights as they run); any runtime.
//   F16    2-D weights f16, norms f32: loses precision (f16 rounding of every weight); any runtime.
//   Q2_K, Q3_K, Q4_K  students trained (or rounded) with --quant q2_K / q3_K / q4_K: their packed
//          rows are ggml's blocks (bd_kquant.h) and go out byte for byte, exact; llama.cpp and
//          ik_llama.cpp both read them.
//   TQ2_0  ternary students, for mainline llama.cpp (ggml type 35; ik_llama.cpp has no type 35
//          and must not be given these files): blocks of 256 weights, 64 bytes of 2-bit codes
//          q+1 and an f16 scale d = D, the per-tensor absmean scale. The codes are exact; d is D
//          rounded to f16 (relative error <= 2^-11, one factor for the whole matrix).
//   TQ1_0  ternary students, for mainline llama.cpp (ggml type 34; not in ik_llama.cpp): blocks of
//          256 weights in 54 bytes (1.6875 bits per weight): five codes q+1 per byte as a base-3
//          number (the first code most significant) scaled to a byte by ceil(n * 256 / 243), in
//          32 bytes for weights m + 32n (n < 5, the first 160), 16 bytes for 160 + m + 16n, then
//          4 bytes of four codes (weights 240 + j + 4n, times 3 for an unused fifth digit), and
//          the f16 scale d = D. A digit n of byte b reads back as ((b * 3^n mod 256) * 3) >> 8.
//          Exact codes, d as for TQ2_0.
//   IQ2_BN ternary students, for ik_llama.cpp (its type 135; mainline llama.cpp has none): each
//          row an f32 scale (D, exact) then blocks of 64 weights in 16 bytes, weight 16s + j at
//          bits 2s of byte j, code q+1. Exact. ik_llama.cpp aborts on rows under 512 weights.
//   For TQ1_0, TQ2_0 and IQ2_BN, a ternary linear whose rows are not a multiple of the block (256, 64),
//   or for IQ2_BN shorter than 512, is written as F16 instead: the same values (+-f16(D) and 0),
//   counted in bd_gguf_report.
// Other packed formats (q2, q3, q8, nf3, r2q with per-group f32 scales and zero points) have
// no lossless ggml type: export them as F32 (exact, large) or F16.
// Reading: bd_model_load reads GGUF files (these and llama.cpp's llama/bitnet files) back as
// full-precision models, every weight dequantized to f32 (bd_gguf_read.c): an F32 file gives
// the model written (q/k rows in the architecture's RoPE layout: interleaved for llama,
// half-split for bitnet, the same logits), F16 its f16-rounded weights, the low-bit types the
// student's fake-quantized weights (TQ2_0 with D rounded to f16). A bitnet file's sub-norms get
// its one epsilon (subln_eps = norm_eps).
#ifndef BD_GGUF_H
#define BD_GGUF_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"
#include "bd_model.h"
#include "bd_packed.h"
#include "bd_tokenizer.h"

typedef enum {
    BD_GGUF_F32 = 0,
    BD_GGUF_F16,
    BD_GGUF_TQ2_0,
    BD_GGUF_IQ2_BN,
    BD_GGUF_Q2_K,
    BD_GGUF_Q3_K,
    BD_GGUF_Q4_K,
    BD_GGUF_TQ1_0,
    BD_GGUF_WTYPE_COUNT
} bd_gguf_wtype;
// "f32", "f16", "tq2_0", "iq2_bn", "q2_K", "q3_K", "q4_K", "tq1_0"; parse gives -1 for an unknown name.
const char *bd_gguf_wtype_name(bd_gguf_wtype t);
int bd_gguf_wtype_parse(const char *name);
// The packed format a weight type writes verbatim or converts (BD_PK_TQ2 for TQ1_0, TQ2_0 and
// IQ2_BN, BD_PK_Q2_K ... for the K-quants), or -1 for F32/F16, which take any model.
int bd_gguf_wtype_packed(bd_gguf_wtype t);

// ggml type ids used in the file.
enum {
    BD_GGML_TYPE_F32 = 0,
    BD_GGML_TYPE_F16 = 1,
    BD_GGML_TYPE_Q2_K = 10,
    BD_GGML_TYPE_Q3_K = 11,
    BD_GGML_TYPE_Q4_K = 12,
    BD_GGML_TYPE_TQ1_0 = 34,    // mainline llama.cpp
    BD_GGML_TYPE_TQ2_0 = 35,    // mainline llama.cpp
    BD_GGML_TYPE_IQ2_BN = 135,  // ik_llama.cpp
};
#define BD_GGUF_ALIGNMENT 32
#define BD_QK_TQ2_0 256
typedef struct {
    uint8_t qs[BD_QK_TQ2_0 / 4];  // weight 128h + 32l + m at bits 2l of qs[32h + m]
    uint16_t d;                   // f16 scale
} bd_block_tq2_0;
static_assert(sizeof(bd_block_tq2_0) == 66, "bd_block_tq2_0 is 66 bytes");

// Converts one row of bd tq2 blocks (C weights, C % 256 == 0) into C/256 TQ2_0 blocks.
void bd_quantize_row_tq2_0_from_tq2(const bd_block_tq2 *in, bd_block_tq2_0 *out, int C, float D);
void bd_dequantize_row_tq2_0(const bd_block_tq2_0 *in, float *out, int C);
typedef struct {
    uint8_t qs[48];  // five codes per byte: weights m + 32n in qs[m] (m < 32), 160 + m + 16n in qs[32 + m]
    uint8_t qh[4];   // four codes per byte: weights 240 + j + 4n in qh[j]
    uint16_t d;      // f16 scale
} bd_block_tq1_0;
static_assert(sizeof(bd_block_tq1_0) == 54, "bd_block_tq1_0 is 54 bytes");
// Converts one row of bd tq2 blocks (C weights, C % 256 == 0) into C/256 TQ1_0 blocks.
void bd_quantize_row_tq1_0_from_tq2(const bd_block_tq2 *in, bd_block_tq1_0 *out, int C, float D);
void bd_dequantize_row_tq1_0(const bd_block_tq1_0 *in, float *out, int C);
#define BD_QK_IQ2_BN 64
#define BD_IQ2_BN_MIN_ROW 512  // ik_llama.cpp runs IQ2_BN rows of at least 8 blocks
// One IQ2_BN row (C weights, C % 64 == 0) from a row of bd tq2 blocks: 4 + C/4 bytes at out.
void bd_quantize_row_iq2_bn_from_tq2(const bd_block_tq2 *in, uint8_t *out, int C, float D);
void bd_dequantize_row_iq2_bn(const uint8_t *in, float *out, int C);

// What a successful bd_gguf_write wrote, for the caller to report.
typedef struct {
    const char *arch;  // "llama" or "bitnet"
    int n_typed;       // linears written in the requested low-bit type
    int n_tq2_f16;     // ternary linears written as F16 because their rows are not multiples of the block
    int tq2_f16_cols;  // the row length of the first of those
    bool eps_differs;  // bitnet: subln_eps != norm_eps, and llama.cpp runs the sub-norms with norm_eps
    bool permuted_qk;  // q/k rows were permuted to the architecture's RoPE layout
} bd_gguf_report;

// The GGUF architecture m goes out as ("llama" or "bitnet"), or NULL with why for a model no
// architecture holds (see the list above).
const char *bd_gguf_arch(const bd_config *c, char *why, size_t why_size);

// Writes m to path (atomically; "-" is stdout). The linear weights are those the model runs
// with: m->packed if present (TQ2_0 needs a ternary packed model), else m's f32 weights
// (apply a student's fake quantization first). The low-bit types need m packed in the format
// bd_gguf_wtype_packed names. rep (may be NULL) gets what was written.
// BD_ERR_ARG with why for what GGUF cannot hold (see bd_gguf_arch; a vocabulary size mismatch, a packed layer of another format than the type
// needs), BD_ERR_IO on write errors.
BD_MUST_CHECK int bd_gguf_write(const bd_model *m, const bd_tokenizer *tok, const char *path, bd_gguf_wtype wtype,
                                bd_gguf_report *rep, char *why, size_t why_size);

#endif
