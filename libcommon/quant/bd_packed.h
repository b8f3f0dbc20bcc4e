// Packed low-bit weights: the block formats that store a quantized linear layer, their
// type-traits table, and the kernels that compute with them.
// Dimension key: OC rows (output channels), C row length (input dim), G group size, GP the
// group padded to a multiple of the format's qk (32), NG = ceil(C/G) groups per row, N tokens.
//
// A packed tensor is OC rows of NG blocks; a block is one quantization group: a small header
// followed by the codes of GP weights (the last group of a row, shorter when G does not divide
// C, and any group with G % 32 != 0, is padded with code 0; kernels mask the padding by
// padding the activations with zeros). Packing computes each group with bd_quant.h's group
// maths (bd_qgroup_*, bd_qlevel_*), the fake quantizer's own, so dequantized values equal
// bd_fakequant_forward's output exactly (== ; a sym or ternary zero is +0 where the fake
// quantizer may give -0). Scales are f32 because f16 scales would not reproduce the
// fake-quantized values.
//
//   format  quantizers it holds        header per group          codes   bits/weight at G=128
//   q2      int 2-bit, sym 2-bit       f32 s, u8 z (8 bytes)      2 bits  2.5
//   q3      int 3-bit, sym 3-bit       f32 s, u8 z (8 bytes)      3 bits  3.5
//   q8      int/sym 4..8-bit           f32 s, u8 z (8 bytes)      8 bits  8.5
//   nf3     nf3                        f32 sp, f32 sn (8 bytes)   3 bits  3.5
//   r2q     r2q                        4 f32 levels (16 bytes)    2 bits  3.0
//   tq2     ternary (per-tensor D)     none (D once per tensor)   2 bits  2.0
//   f32     none (full precision)      none, one block per row    f32
//   q6      int/sym 6-bit (head only)  f32 s, u8 z (8 bytes)      6 bits  6.5 (7.0 at the head's G = 64)
//   q2_K    q2_K (G = 256)             ggml's block_q2_K          2 bits  2.625
//   q3_K    q3_K (G = 256)             ggml's block_q3_K          3 bits  3.4375
//   q4_K    q4_K (G = 256)             ggml's block_q4_K          4 bits  4.5
//   bf16    none (frozen weights)      none, one block per row    16 bits 16
//   f16     none (frozen weights)      none, one block per row    16 bits 16
// q6 is never a student's format (q8 holds 6-bit specs first); bd-pack --head-format uses it, and q8,
// for an output head quantized after training (bd_pk_model_pack_head). bf16 and f16 hold no
// quantizer either: they are a full-precision model's linears left in its file's dtype and
// memory-mapped (bd_model_load_mapped), the products converting rows to f32 on the fly.
// Affine formats (q2 q3 q8 q6): w = (q - z) * s with q the code (sym: q = level + 2^(b-1),
// z = 2^(b-1)). nf3: w = grid[q] * (q >= 3 ? sp : sn). r2q: w = level[q]. tq2: w = (q-1) * D.
// Code layouts, within a block: 2-bit codes little-end first (weight i at bits 2(i%4) of byte
// i/4); 3-bit as a 2-bit low plane (GP/4 bytes, as above) then a 1-bit high plane (GP/8
// bytes, weight i at bit i%8 of byte i/8); 8-bit one byte per weight; 6-bit, per chunk of 32
// weights (chunk c = i/32, j = i%32), a low plane of 4 bits (GP/2 bytes: j%16 of byte 16c + j%16,
// the low nibble for j < 16, the high one above) then a high plane of 2 bits (GP/4 bytes: bits
// 2(j/8) of byte GP/2 + 8c + j%8), as ggml's Q6_K splits its codes.
//
// Each format is one row of bd_pk_traits_table: its geometry and its behaviour (quantize,
// dequantize, validate, one vector dot per SIMD path), defined in libcommon/quant/bd_pk_<format>.c.
// Packing, loading and the kernels only go through the table.
#ifndef BD_PACKED_H
#define BD_PACKED_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"
#include "bd_model.h"
#include "bd_quant.h"
#include "bd_stream.h"

#define BD_QK 32  // codes come in chunks of 32 weights; GP is G rounded up to this

typedef enum {
    BD_PK_F32 = 0,  // not packed: f32 rows (layers kept in full precision)
    BD_PK_Q2,
    BD_PK_Q3,
    BD_PK_Q8,
    BD_PK_NF3,
    BD_PK_R2Q,
    BD_PK_TQ2,
    BD_PK_Q6,    // after q8: never the format of a spec (bd_pk_type_for), only of a head (--head-format)
    BD_PK_Q2_K,  // llama.cpp's K-quant blocks, verbatim (bd_kquant.h)
    BD_PK_Q3_K,
    BD_PK_Q4_K,
    BD_PK_BF16,  // a frozen model's weights in its file's dtype (never a spec's format, never in bd.packed streams)
    BD_PK_F16,
    BD_PK_COUNT
} bd_pk_type;

// Blocks: the header, then the codes (flexible member). Every block size is a multiple of 4,
// so blocks are 4-byte aligned in a tensor's 64-byte aligned data.
typedef struct {
    float s;
    uint8_t z, pad[3];
    uint8_t qs[];
} bd_block_q2;  // qs[GP/4]
typedef struct {
    float s;
    uint8_t z, pad[3];
    uint8_t qs[];
} bd_block_q3;  // qs[GP/4] low plane, qs[GP/4..] high
typedef struct {
    float s;
    uint8_t z, pad[3];
    uint8_t qs[];
} bd_block_q8;  // qs[GP]
typedef struct {
    float s;
    uint8_t z, pad[3];
    uint8_t qs[];
} bd_block_q6;  // qs[GP/2] low plane, qs[GP/2..] high plane (GP/4)
typedef struct {
    float sp, sn;
    uint8_t qs[];
} bd_block_nf3;  // as q3
typedef struct {
    float lv[4];
    uint8_t qs[];
} bd_block_r2q;  // qs[GP/4]
typedef struct {
    uint8_t qs[BD_QK / 4];
} bd_block_tq2;  // no header: a row is GP/32 of these
static_assert(sizeof(bd_block_q2) == 8 && offsetof(bd_block_q2, qs) == 8, "bd_block_q2 header");
static_assert(sizeof(bd_block_q3) == 8 && offsetof(bd_block_q3, qs) == 8, "bd_block_q3 header");
static_assert(sizeof(bd_block_q8) == 8 && offsetof(bd_block_q8, qs) == 8, "bd_block_q8 header");
static_assert(sizeof(bd_block_q6) == 8 && offsetof(bd_block_q6, qs) == 8, "bd_block_q6 header");
static_assert(sizeof(bd_block_nf3) == 8 && offsetof(bd_block_nf3, qs) == 8, "bd_block_nf3 header");
static_assert(sizeof(bd_block_r2q) == 16 && offsetof(bd_block_r2q, qs) == 16, "bd_block_r2q header");
static_assert(sizeof(bd_block_tq2) == BD_QK / 4, "bd_block_tq2: 32 codes");

// SIMD paths. bd_pk_simd() is the path in use: the best the CPU supports, or the one forced
// by BD_SIMD=scalar|avx2|avx512 in the environment (an unsupported choice falls back).
typedef enum { BD_SIMD_SCALAR = 0, BD_SIMD_AVX2, BD_SIMD_AVX512, BD_SIMD_COUNT } bd_simd;
bd_simd bd_pk_simd(void);
bool bd_pk_simd_supported(bd_simd s);
void bd_pk_set_simd(bd_simd s);  // for tests: force a path (must be supported)
const char *bd_pk_simd_name(bd_simd s);

// One packed matrix.
typedef struct bd_pk_tensor {
    bd_pk_type type;
    int rows, cols;      // OC, C
    int group;           // G (tq2 and f32: C)
    int gpad;            // GP
    int ngroups;         // NG
    size_t block_bytes;  // head + GP * code_bits / 8
    size_t row_bytes;    // NG * block_bytes (f32: 4 C)
    float scale;         // tq2: the per-tensor D; else 0
    uint8_t *data;       // (OC, row_bytes), 64-byte aligned, owned; or, if borrowed, anywhere 2-byte
                         // aligned in a mapping the model holds (bd_model_load_mapped)
    bool borrowed;       // data is not freed by bd_pk_free
} bd_pk_tensor;

// What a format does, given the tensor's geometry (t->cols, group, gpad, ngroups, block_bytes, scale):
// quantize one row of latent weights w (C) into its NG blocks at dst (q: the spec it packs);
typedef void bd_pk_quantize_fn(const float *w, uint8_t *dst, const bd_pk_tensor *t, const bd_qspec *q);
// dequantize one row into out (C floats);
typedef void bd_pk_dequantize_fn(const uint8_t *src, float *out, const bd_pk_tensor *t);
// check the blocks of row r: BD_ERR_VALUE with "row R group G: ..." in why;
typedef int bd_pk_validate_fn(const bd_pk_tensor *t, const uint8_t *row, int r, char *why, size_t why_size);
// dot of one row with padded f32 activations xp (NG * GP, zeros in the padding);
typedef float bd_pk_dot_f32_fn(const bd_pk_tensor *t, const uint8_t *row, const float *xp);
// dot with padded int8 activations xq (NG * GP), their per-group sums xsum (NG) and scale xs.
typedef float bd_pk_dot_i8_fn(const bd_pk_tensor *t, const uint8_t *row, const int8_t *xq, const int32_t *xsum,
                              float xs);
// Integer tiles (int8 activations, N >= 8 tokens; bd_pk_tiles.c): rows [r0, r1) of out (N, OC) for every
// token, from padded int8 activations xq (N, XP) with group sums xsum (N, NG) and scales xs (N); buf
// holds one repacked block of the path's tile rows (r0 is a multiple of them).
typedef void bd_pk_gemm_i8_fn(float *out, const bd_pk_tensor *t, const int8_t *xq, const int32_t *xsum, const float *xs,
                              int N, int r0, int r1, uint8_t *buf);
// Generation's matrix-vector product (int8 activations, N < 8, one token per call): rows [r0, r1) of
// out (OC) from one token's padded xq (XP), xsum (NG) and scale xs; several rows per pass share the
// activation loads. Each result equals the format's scalar int8 row dot bit for bit.
typedef void bd_pk_gemv_i8_fn(float *out, const bd_pk_tensor *t, const int8_t *xq, const int32_t *xsum, float xs,
                              int r0, int r1);
// The same for f32 activations (one token's padded xp): each result equals the format's f32 row
// dot on that path bit for bit.
typedef void bd_pk_gemv_f32_fn(float *out, const bd_pk_tensor *t, const float *xp, int r0, int r1);

typedef struct {
    const char *name;           // "q2", ... as written in bd.packed streams
    int qk;                     // GP, the weights of a block, is G rounded up to a multiple of qk (f32: 1)
    int head_bytes, code_bits;  // a block is head_bytes + GP * code_bits / 8 bytes
    bool row_group;             // one group per row whatever the spec's group (tq2, f32)
    unsigned qkinds;            // the quantizers it holds: bits 1 << bd_qkind ...
    int qbits_min, qbits_max;   // ... with these bit widths (the first row that holds a spec is its format)
    float (*tensor_scale)(const float *w, size_t n);  // the per-tensor scale t->scale (a stream's "scale"), or NULL
    bd_pk_quantize_fn *quantize_row_ref;
    bd_pk_dequantize_fn *dequantize_row;
    bd_pk_validate_fn *validate_row;
    // Vector dots per path (bd_simd): bd_vec_dot_<format>_f32_<path>, bd_vec_dot_<format>_i8_<path>.
    // f32: NULL takes the next lower path. i8: every format has a scalar one; NULL for a SIMD path
    // (no integer kernel) runs that path's f32 dot on the int8 values as floats, times the scale.
    bd_pk_dot_f32_fn *vec_dot_f32[BD_SIMD_COUNT];
    bd_pk_dot_i8_fn *vec_dot_i8[BD_SIMD_COUNT];
    // Integer tiles per path for int8 activations and N >= 8 (bd_gemm_<format>_i8_<path>), or NULL:
    // that path takes its row dots (or matmul_i8_via_f32). Scalar: always NULL.
    bd_pk_gemm_i8_fn *gemm_i8[BD_SIMD_COUNT];
    // Matrix-vector products per path for int8 activations and N < 8 (bd_gemv_<format>_i8_<path>), or
    // NULL: that path takes its row dots. Scalar: always NULL.
    bd_pk_gemv_i8_fn *gemv_i8[BD_SIMD_COUNT];
    // The same for f32 activations and N == 1 (bd_gemv_<format>_f32_<path>), or NULL: row dots.
    bd_pk_gemv_f32_fn *gemv_f32[BD_SIMD_COUNT];
} bd_pk_traits;

extern const bd_pk_traits bd_pk_traits_table[BD_PK_COUNT];
int bd_pk_type_parse(const char *name);  // -1 if unknown

// The packed format for a quantizer, or -1 (BD_Q_NONE gives BD_PK_F32).
int bd_pk_type_for(const bd_qspec *q);

// Fills the geometry of t (no data). BD_ERR_ARG for impossible sizes.
BD_MUST_CHECK int bd_pk_geometry(bd_pk_tensor *t, bd_pk_type type, int rows, int cols, int group);
// Allocates t->data for the geometry (zeroed).
BD_MUST_CHECK int bd_pk_alloc(bd_pk_tensor *t);
void bd_pk_free(bd_pk_tensor *t);

// Row r of t, dequantized (C floats).
void bd_pk_dequantize_row(const bd_pk_tensor *t, int r, float *out);

// Single-threaded f32 products on the f32 tiles (bd_pk_f32_tiles.c) for callers with strided
// operands (attention): out (N, OC) (rows ldo apart) = alpha x (N, C) @ w^T, w's OC rows of C
// ldw apart (nt), or = alpha x (N, C) @ v, v (C, OC) with rows ldv apart (nn). Each output is one
// chain of fused multiply-adds over k in order, times alpha. False, with nothing done, when the
// AVX-512 path is not in use (bd_pk_simd): the caller takes its own route (sgemm).
bool bd_f32_gemm_nt(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw, int N, int OC,
                    int C, float alpha);
bool bd_f32_gemm_nn(float *out, size_t ldo, const float *x, size_t ldx, const float *v, size_t ldv, int N, int OC,
                    int C, float alpha);

// Packs w (OC, C) latent weights with quantizer q into t (allocated here). BD_ERR_VALUE for a
// NaN/inf weight, BD_ERR_ARG if q has no packed format or does not fit C, BD_ERR_NOMEM; why says which.
BD_MUST_CHECK int bd_pk_pack(bd_pk_tensor *t, const float *w, int OC, int C, const bd_qspec *q, char *why,
                             size_t why_size);
// The same in format type, which must hold q (BD_ERR_ARG otherwise): how q6 is reached.
BD_MUST_CHECK int bd_pk_pack_as(bd_pk_tensor *t, bd_pk_type type, const float *w, int OC, int C, const bd_qspec *q,
                                char *why, size_t why_size);
// Checks every block header of t (finite positive scales, zero points and codes in range).
// BD_ERR_VALUE with "row R group G: ..." in why.
BD_MUST_CHECK int bd_pk_validate(const bd_pk_tensor *t, char *why, size_t why_size);

// ---- kernels ----------------------------------------------------------------------------------
// out (N, OC) = inp (N, C) @ dequant(t)^T. f32 activations: the dot products use the exact
// dequantized weights (results differ from an f32 matmul with the fake-quantized weights only
// in summation order). int8 activations (act_int8): each token's row is quantized to int8
// with scale absmax/127 first (BitNet's per-token absmax), then integer dot products.
// N == 1 is the matrix-vector product of generation; N > 1 the matrix-matrix product of
// prompts and evaluation (f32, N >= 8: rows dequantized in panels into sgemm; int8, N >= 8:
// integer tiles where the format and path have them (gemm_i8: q2 tq2 q3 q6 on AVX2/AVX-512, q8
// on AVX-512), whose results equal the scalar int8 row dot's bit for bit; else row dots).
// Rows split over bd_num_threads() threads. Kernels never allocate: scratch holds
// bd_pk_matmul_scratch_bytes(t, N, act_int8) bytes (any alignment), for either twin.
size_t bd_pk_matmul_scratch_bytes(const bd_pk_tensor *t, int N, bool act_int8);
void bd_pk_matmul(float *out /* (N,OC) */, const float *inp /* (N,C) */, const bd_pk_tensor *t, int N, bool act_int8,
                  void *scratch);
// Plain twin: dequantize each row, double accumulators.
void bd_pk_matmul_ref(float *out, const float *inp, const bd_pk_tensor *t, int N, bool act_int8, void *scratch);
// out (N, C) = the dequantized rows tokens[n] of t (a tied model's embedding lookup when its head
// is packed: the very values the head computes with). tokens must lie in [0, OC).
void bd_pk_embedding(float *out, const int32_t *tokens, const bd_pk_tensor *t, int N);
// The int8 quantization of one activation row as the kernels see it: xq (C) and its scale
// (bd_act_quant_row: the rule of a W1.58A8 model's fake-quantized forward).
void bd_pk_quantize_act_ref(const float *x, int8_t *xq, int C, float *scale);

// ---- packed models ------------------------------------------------------------------------------
// The linear layers of a model in packed form: slot l*BD_N_LINEARS + k for layer l and linear k
// (bd_linear), the last slot the head (f32 type when not quantized = use the f32 weight).
#define BD_PK_LINEARS BD_N_LINEARS  // the old name, for code not yet on bd_linear
typedef struct bd_pk_model {
    int n_slots;          // BD_N_LINEARS L + 1
    bd_pk_tensor *slots;  // (n_slots); type BD_PK_F32 with data NULL: the f32 weight in bd_model;
                          // borrowed data (any type, f32 too): rows in a file mapping (or copied
                          // from one: bd_model_copy_mapped)
    bool act_int8;        // kernels quantize activations to int8 per token
    // The head's format when it was quantized after training (bd_pk_model_pack_head, bd-pack
    // --head-format; a bd.packed header's "head_format"), else BD_PK_F32. Such a head takes f32
    // activations whatever act_int8 says (the student's head saw f32 inputs), and a tied model's
    // embedding is its dequantized rows (tok_emb is neither stored nor read).
    bd_pk_type head_format;
} bd_pk_model;

// The head formats: f32 (the head stays as trained), q8 (int 8-bit) and q6 (int 6-bit), each with
// one f32 scale and zero point per group of BD_PK_HEAD_GROUP weights along the row (the
// asymmetric round-to-nearest of bd_quant.h's bd_qgroup_int; a row shorter than the group is
// one group, a short tail group is padded).
#define BD_PK_HEAD_GROUP 64
int bd_pk_head_format_parse(const char *name);  // BD_PK_F32, BD_PK_Q8, BD_PK_Q6, or -1
bd_qspec bd_pk_head_spec(bd_pk_type type);      // the quantizer of a head format
// Whether linear k of a packed model runs with int8 activations.
static inline bool bd_pk_model_act_int8(const bd_pk_model *p, bd_linear k) {
    return p->act_int8 && !(k == BD_HEAD && p->head_format != BD_PK_F32);
}

extern const char *const bd_pk_linear_names[BD_N_LINEARS];  // "wq" ... "w3"
// The packed tensor for linear k of layer l (k = BD_HEAD: the head, l ignored), or NULL.
const bd_pk_tensor *bd_pk_model_slot(const bd_model *m, int l, bd_linear k);
// An empty packed model for config c (every slot f32 with no data), or NULL (no memory).
bd_pk_model *bd_pk_model_new(const bd_config *c);
void bd_pk_model_free(bd_pk_model *p);

// Packs every linear of m covered by its quantization (m->quant, m->qpolicy; m holds latent
// weights) into m->packed. BD_ERR_ARG / BD_ERR_VALUE with why.
BD_MUST_CHECK int bd_pk_model_pack(bd_model *m, char *why, size_t why_size);
// Quantizes the head of a packed model (m->packed from bd_pk_model_pack, or loaded with an f32 head;
// m->w.wcls holds it, = tok_emb when tied) into format type (bd_pk_head_format_parse; BD_PK_F32:
// nothing to do). BD_ERR_ARG (why) when the model's spec already quantizes the head (untied
// --quant-head students), when it already has another head format, or for a non-head format;
// BD_ERR_VALUE for a NaN/inf weight.
BD_MUST_CHECK int bd_pk_model_pack_head(bd_model *m, bd_pk_type type, char *why, size_t why_size);
// Turns a packed model back into a full-precision one holding the values the packed rows decode
// to (every packed linear, and a packed head, dequantized into m's f32 weights; a tied model's
// embedding is its head's rows); m->packed is freed and the quantization spec cleared, so m is
// then the student's fake-quantized weights as plain f32. BD_OK (nothing to do unpacked).
BD_MUST_CHECK int bd_pk_model_unpack(bd_model *m);
// The f32 weights (OC, C) of linear k of layer l (BD_HEAD: the head): m's own where it has them,
// else its packed or mapped rows decoded into buf (OC * C floats); NULL if it has neither.
const float *bd_pk_model_linear_f32(const bd_model *m, int l, bd_linear k, float *buf);
// The packed matrix a tied model's embedding reads (its quantized head), or NULL (tok_emb f32).
const bd_pk_tensor *bd_pk_model_embedding(const bd_model *m);
// Bytes of the packed model's weights: packed linears + f32 tensors that remain.
size_t bd_pk_model_bytes(const bd_model *m);
// Scratch bytes the packed kernels need for any linear of m at N rows (0 without packed layers).
size_t bd_pk_model_scratch_bytes(const bd_model *m, int N);
// The same two from the sizes alone, before anything is allocated (memory plans): what
// bd_pk_model_pack makes of a model of config c with spec q and policy p, its head then in
// head_format (bd_pk_model_pack_head; BD_PK_F32: as the spec leaves it), as bd_pk_model_bytes
// counts it; *scratch (may be NULL) gets bd_pk_model_scratch_bytes at N rows (p->act_bits 8:
// int8 activations, as a loaded model runs); *packed (may be NULL) the packed tensors alone (what
// packing a loaded model adds to it).
size_t bd_pk_plan_bytes(const bd_config *c, const bd_qspec *q, const bd_qpolicy *p, bd_pk_type head_format, int N,
                        size_t *scratch, size_t *packed);

// bd.packed streams (see man/bd-stream.5): written by bd-pack, loaded by bd_model_load (it
// sniffs the schema and hands over the reader r, past the header, which it still closes). The linear layers' f32 storage in m->params is never touched (calloc:
// the pages stay unmapped), so memory is that of the packed weights.
BD_MUST_CHECK int bd_pk_model_save(const bd_model *m, const char *path, const bd_producer *prod, char *why,
                                   size_t why_size);
BD_MUST_CHECK int bd_pk_model_load(bd_reader *r, bd_model *m, char *why, size_t why_size);

#endif
