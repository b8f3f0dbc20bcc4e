// Loading and saving models (bd_model). Formats are told apart by content, never by name:
//   - llama2.c checkpoints: legacy v0 (7 x int32 header), v1 "ak42" (fp32), v2 "ak42" (Q8_0,
//     dequantized on load). Interleaved RoPE.
//   - Hugging Face directories: config.json + *.safetensors (one file, or shards listed by
//     model.safetensors.index.json or found in the directory); F32/BF16/F16. Llama, Qwen2
//     (qkv bias), Qwen3 (q/k norm). Half-split RoPE; weights kept as in the file.
//   - bd.model streams (schema "bd.model", see man/bd-stream.5).
//   - GGUF files (llama.cpp; versions 2 and 3): architectures llama (interleaved RoPE) and
//     bitnet (SubLN of the paper's placement, half-split RoPE); weights f32, f16, bf16, q8_0,
//     q2_K ... q6_K, tq2_0, iq2_bn, all dequantized to f32 on load (a full-precision bd model;
//     the vocabulary in the file is not read). See bd_gguf_read.c.
// Errors come back as distinct codes with a one-line reason naming the file and tensor:
//   BD_ERR_IO cannot open/read, BD_ERR_TRUNCATED file shorter than its header implies,
//   BD_ERR_MALFORMED unknown format / absurd header / bad JSON, BD_ERR_VERSION unknown format
//   version, BD_ERR_SCHEMA missing, duplicate or unexpected tensor or config key,
//   BD_ERR_SHAPE size, shape or dtype that disagrees with the config, BD_ERR_VALUE NaN/inf.
#ifndef BD_MODEL_IO_H
#define BD_MODEL_IO_H

#include <stddef.h>

#include "bd_dtype.h"
#include "bd_error.h"
#include "bd_model.h"
#include "bd_stream.h"

typedef enum {
    BD_MODEL_FMT_LLAMA2C_V0 = 0,
    BD_MODEL_FMT_LLAMA2C_V1,
    BD_MODEL_FMT_LLAMA2C_V2,
    BD_MODEL_FMT_HF,    // a directory, or a *.safetensors / config.json inside one
    BD_MODEL_FMT_BD,    // a bd stream (zstd magic); the schema is checked on load
    BD_MODEL_FMT_GGUF,  // a GGUF file ("GGUF" magic), read from a named regular file
} bd_model_format;

// Largest record bd streams hold (msgpack bin lengths are 32-bit); packed tensors must fit.
#define BD_MODEL_RECORD_BYTES ((size_t)1 << 30)
// f32/bf16 tensors above this are written as slices along their first axis, records that
// carry "start": a record is built whole in the writer's buffer before it is compressed, and
// a 1.1B model's 1 GB stacked w1 record had pushed a QAT run past its memory plan (OOM-killed
// at the final save).
#define BD_MODEL_SLICE_BYTES ((size_t)64 << 20)

// The format of path (>= 0, a bd_model_format) or an error code with why filled.
BD_MUST_CHECK int bd_model_sniff(const char *path, char *why, size_t why_size);
const char *bd_model_format_name(bd_model_format f);

// Loads path into m (allocated here; bd_model_free releases it). On error m is left empty.
BD_MUST_CHECK int bd_model_load(const char *path, bd_model *m, char *why, size_t why_size);

// Loads path for computing only (evaluation, generation, a teacher): a Hugging Face model's
// linear layers stay in the safetensors files' dtype (bf16, f16 or f32) and memory-mapped, not
// converted or copied (m->packed's slots borrow the rows; m->mapping keeps the files open), and
// the matrix products convert rows to f32 as they go; the other tensors (embedding, head, norms)
// are f32 copies as in bd_model_load. The files must not be rewritten while the model is in use
// (the mapping would see the change; a file replaced by rename is safe). Other formats load as
// bd_model_load does (bd.model streams are compressed; GGUF and llama2.c files are converted).
// Such a model cannot be trained, re-quantized, packed or saved (its linears have no f32 copy).
BD_MUST_CHECK int bd_model_load_mapped(const char *path, bd_model *m, char *why, size_t why_size);
// A mapped model's linears (bd_model_load_mapped) copied, in the files' dtype, into memory of the
// model's own in 2 MB pages when they take at most budget bytes; the files are then let go. Pages
// of a file that was just written (exported, downloaded) are mapped 4 KB at a time, and a
// generation step streams every weight through the TLB: the copy ran the 110M f32 model's
// generation about 25% faster at 1 thread, 40% at 2 (README). For tools that read the weights
// many times with memory to spare (their plan's headroom); a model that is not mapped, or whose
// linears exceed budget, is left as it is. *copied gets the bytes copied (0 when nothing was).
// BD_ERR_NOMEM leaves the model as it was.
BD_MUST_CHECK int bd_model_copy_mapped(bd_model *m, uint64_t budget, uint64_t *copied);

// What a model says about itself before its weights are read: enough to size a run (memory
// plans). packed: a bd.packed stream, whose head is in head_format (a bd_pk_type, 0 = f32).
// mapped is the caller's: the model is loaded with bd_model_load_mapped (a Hugging Face model's
// linears then stay in the files).
typedef struct {
    bd_config cfg;
    bd_qspec quant;  // kind BD_Q_NONE: full precision
    bd_qpolicy qpolicy;
    bool packed;
    int head_format;
    int format;  // a bd_model_format
    bool mapped;
} bd_model_info;

// Reads the config of the model at path from its header alone (config.json and the safetensors
// headers, the llama2.c or GGUF header, the bd stream's header map), checking no weight. The
// errors of bd_model_load for a bad header; BD_ERR_ARG for standard input or a pipe, which can
// be read only once (the caller learns the config from the loaded model: bd_model_info_of).
BD_MUST_CHECK int bd_model_peek(const char *path, bd_model_info *info, char *why, size_t why_size);
// The same of a loaded model.
void bd_model_info_of(const bd_model *m, bd_model_info *info);

// Writes m as a bd.model stream with tensors in dtype (BD_F32, BD_BF16 or BD_F16).
// BD_ERR_VALUE if a weight is NaN/inf or does not fit in dtype.
BD_MUST_CHECK int bd_model_save(const bd_model *m, const char *path, const bd_producer *prod, bd_dtype dtype, char *why,
                                size_t why_size);

// Writes a Hugging Face directory (created if missing): config.json + model.safetensors in
// dtype (BD_F32, or BD_BF16: every weight rounded to bf16, torch_dtype "bfloat16").
// Interleaved-RoPE models get wq/wk (and bq/bk, q_norm/k_norm) rows permuted within each
// head so that the exported model computes the same logits with half-split RoPE.
// Architecture: Qwen3 if qk_norm, Qwen2 if qkv_bias, else Llama.
BD_MUST_CHECK int bd_model_save_hf(const bd_model *m, const char *dir, bd_dtype dtype, char *why, size_t why_size);

// Reorders the rows of one projection (n_heads * head_dim rows of cols floats) from one
// RoPE pairing to the other. to == BD_ROPE_HALF: dst row h*HS + j = src row h*HS + 2j and
// dst row h*HS + HS/2 + j = src row h*HS + 2j + 1 (j < HS/2); BD_ROPE_INTERLEAVED: the
// inverse. Vectors (biases, q/k norm weights) are the case cols == 1. dst != src.
void bd_rope_permute_rows(float *dst, const float *src, int n_heads, int head_dim, size_t cols, bd_rope_style to);
// Converts a loaded model in place to the other RoPE style (same logits, other layout).
BD_MUST_CHECK int bd_model_convert_rope(bd_model *m, bd_rope_style to);

// One line: "llama C=64 L=5 NH=8 KV=4 HS=8 F=172 V=512 seq=512 rope=interleaved tied 260032 params".
void bd_model_describe(const bd_model *m, char *buf, size_t size);

#endif
