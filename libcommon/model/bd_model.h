// The model: a Llama-family decoder (Llama 2/3, Qwen2 with qkv bias, Qwen3 with q/k norm,
// llama2.c TinyStories models). Dimension key used in comments throughout bd:
//   V vocab, C model dim, L layers, NH query heads, KV key/value heads, HS head dim,
//   F feed-forward (SwiGLU hidden) dim, B batch, T sequence length.
#ifndef BD_MODEL_H
#define BD_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "bd_error.h"
#include "bd_quant.h"

typedef enum {
    BD_ROPE_INTERLEAVED = 0,  // llama2.c / Meta: rotate pairs (2i, 2i+1)
    BD_ROPE_HALF = 1,         // Hugging Face: rotate (i, i + HS/2)
} bd_rope_style;

// SubLN (BitNet, BitNet Distillation): an extra RMSNorm with its own weight on the input of
// some block linears. PAPER: before wo (the attention output, QD) and before w2 (the SwiGLU
// product, F), the paper's placement and llama.cpp's "bitnet" architecture (attn_sub_norm,
// ffn_sub_norm); ALL: before every linear of the block (the official BitDistill code's default
// "allnorm": wq, wk and wv each normalize xn_att again with their own weight, w1 and w3 xn_ffn).
typedef enum { BD_SUBLN_NONE = 0, BD_SUBLN_PAPER, BD_SUBLN_ALL, BD_SUBLN_COUNT } bd_subln;
const char *bd_subln_name(bd_subln s);  // "none", "paper", "all"
int bd_subln_parse(const char *name);   // a bd_subln, or -1

typedef struct {
    char arch[32];   // "llama", "qwen2", "qwen3"
    int dim;         // C
    int n_layers;    // L
    int n_heads;     // NH
    int n_kv_heads;  // KV (divides NH)
    int head_dim;    // HS (usually C / NH; Qwen3 may differ)
    int ffn_dim;     // F
    int vocab;       // V
    int max_seq;     // longest context the model was trained for
    float norm_eps;  // RMSNorm epsilon
    float rope_theta;
    bd_rope_style rope;
    bool tied_embeddings;  // output head shares tok_emb
    bool qkv_bias;         // Qwen2
    bool qk_norm;          // Qwen3: RMSNorm over HS on q and k per head, before RoPE
    int bos, eos;          // -1 if unknown
    bd_subln subln;        // SubLN norms (BD_SUBLN_NONE for every model not made by bd-qat --subln)
    float subln_eps;       // their RMSNorm epsilon (BitDistill's code: 1e-8); used only with subln
} bd_config;

// The linear layers of a block, by name. BD_HEAD (the output projection) follows them where a
// table has a slot for it.
typedef enum {
    BD_WQ,
    BD_WK,
    BD_WV,
    BD_WO,  // attention: query, key, value, output
    BD_W1,
    BD_W2,
    BD_W3,  // SwiGLU: gate, down, up
    BD_N_LINEARS,
    BD_HEAD = BD_N_LINEARS,
} bd_linear;
extern const char *const bd_linear_names[BD_N_LINEARS];  // "wq" ... "w3", the bd.model tensor names
int bd_linear_parse(const char *name);                   // a bd_linear, or -1
// Whether linear k (not BD_HEAD) has a SubLN norm on its input in config c.
bool bd_subln_has(const bd_config *c, int k);
// The bd.model name of linear k's SubLN weight: "attn_sub_norm" (wo), "ffn_sub_norm" (w2), "wq_sub_norm", ...
extern const char *const bd_subln_names[BD_N_LINEARS];
// The input width of linear k (C, QD or F) in config c.
int bd_linear_in(const bd_config *c, int k);

// Every parameter tensor is a view into one flat array; the same layout serves
// parameters, gradients and optimizer moments (bd_weights_layout on another base).
// Linear weights are (out, in), row-major, as in PyTorch and llama2.c.
typedef struct {
    float *tok_emb;    // (V, C)
    float *rms_att;    // (L, C)
    float *wq;         // (L, NH*HS, C)
    float *wk;         // (L, KV*HS, C)
    float *wv;         // (L, KV*HS, C)
    float *wo;         // (L, C, NH*HS)
    float *bq;         // (L, NH*HS)  only if qkv_bias, else NULL
    float *bk;         // (L, KV*HS)  only if qkv_bias
    float *bv;         // (L, KV*HS)  only if qkv_bias
    float *q_norm;     // (L, HS)     only if qk_norm
    float *k_norm;     // (L, HS)     only if qk_norm
    float *rms_ffn;    // (L, C)
    float *w1;         // (L, F, C)   gate
    float *w2;         // (L, C, F)   down
    float *w3;         // (L, F, C)   up
    float *rms_final;  // (C)
    float *wcls;       // (V, C)      == tok_emb when tied
    // SubLN weights of linear k's input, (L, in_k), only where bd_subln_has(cfg, k), else NULL:
    // sub_norm[BD_WO] (L, QD) "attn_sub_norm", sub_norm[BD_W2] (L, F) "ffn_sub_norm", ...
    float *sub_norm[BD_N_LINEARS];
} bd_weights;

// One entry of the parameter table: a named tensor and where it lives in the flat array.
typedef struct {
    const char *name;  // "wq", "rms_att", ... (bd.model tensor names)
    int ndim;
    long long shape[3];
    size_t offset;  // in floats from the base
    size_t numel;
    bool is_linear;  // a linear layer of the blocks (a candidate for quantization)
} bd_param_entry;

#define BD_MAX_PARAMS 28

typedef struct {
    bd_config cfg;
    bd_weights w;
    float *params;    // the one allocation
    size_t n_params;  // floats in params
    // A student's quantization, stored with its latent weights (bd.model "quant"); quant.kind
    // is BD_Q_NONE for a full-precision model. Tools apply it on load (bd_tool_load_model).
    bd_qspec quant;
    bd_qpolicy qpolicy;
    // Packed linear layers (bd_packed.h), or NULL. A model loaded from a bd.packed stream has
    // them (and no f32 copy of those layers); the forward pass multiplies with them.
    struct bd_pk_model *packed;
    // The files a mapped model's linears are read from (bd_model_load_mapped: its packed slots
    // borrow rows from these mappings), released by bd_model_free; NULL otherwise. Such a model
    // has no f32 storage for its linears (their views in w are NULL): it can compute, not train.
    struct bd_model_mapping *mapping;
    // The tokenizer the model goes with, as a bd.model or bd.packed header remembers it (its
    // "tokenizer" map), so that tools find it without --tokenizer: the file's path (absolute,
    // as it was when the stream was written) and its bd_tokenizer_id ("" when unknown).
    char tok_path[1024];
    char tok_id[160];
} bd_model;

// Checks a config for consistency (positive sizes, KV divides NH, ...). BD_ERR_VALUE with a
// message in why otherwise.
BD_MUST_CHECK int bd_config_check(const bd_config *cfg, char *why, size_t why_size);
// Fills table (at most BD_MAX_PARAMS entries) and returns the count; *total gets the floats.
int bd_param_table(const bd_config *cfg, bd_param_entry *table, size_t *total);
// Points every field of w into base according to the table.
void bd_weights_layout(const bd_config *cfg, float *base, bd_weights *w);
// The tensor called name (a bd_param_table name: "wq", "rms_att", ...) in w, or NULL (unknown
// name, or no storage).
float *bd_weights_get(const bd_weights *w, const char *name);
// Allocates a zeroed model for cfg.
BD_MUST_CHECK int bd_model_alloc(bd_model *m, const bd_config *cfg);
void bd_model_free(bd_model *m);
// Allocates a zeroed model for cfg without storage for the linear layers of its blocks (their
// views in m->w are NULL; n_params counts only what is allocated): for weights kept elsewhere.
BD_MUST_CHECK int bd_model_alloc_frozen(bd_model *m, const bd_config *cfg);
// Releases a mapping (defined by the loader that made it, bd_hf.c).
void bd_model_mapping_free(struct bd_model_mapping *mp);
// Gives m (full precision or a student's latent weights; not packed) SubLN norms of placement
// s (not BD_SUBLN_NONE) with epsilon eps, their weights ones: the model computes what it did
// before up to the norms' rescaling (bd-qat --subln). Every other tensor, the quantization spec
// and policy are kept. BD_ERR_ARG (why says: packed, already has SubLN, bad eps), BD_ERR_NOMEM.
BD_MUST_CHECK int bd_model_add_subln(bd_model *m, bd_subln s, float eps, char *why, size_t why_size);

#endif
