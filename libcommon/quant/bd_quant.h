// Weight quantizers for QAT and post-training baselines: fake quantization (quantize then
// dequantize, in f32) with a straight-through backward, per group of G weights along the
// input dimension of a linear layer's (OC, C) weight.
//   OC output channels (rows), C input dim (columns), G group size (G >= C: one group per row;
//   when G does not divide C, the last group of a row holds the C mod G weights left).
// Formulas (BitDistiller, arXiv 2402.10631; BitNet b1.58; R2Q), see man/bd-stream.5 "quant":
//   int (asymmetric, b bits): s = max(max-min, 1e-5)/(2^b-1), z = clamp(-round(min/s), 0, 2^b-1),
//                             wq = (clamp(Round(w/s)+z, 0, 2^b-1) - z)*s
//   sym (symmetric, b bits):  s = max(absmax, 1e-5)/(2^(b-1)-1), wq = clamp(round(w/s), -2^(b-1), 2^(b-1)-1)*s
//   nf3: positives w/max snapped to {0, .1833, .3820, .6230, 1}, negatives w/|min| snapped to
//        {-1, -.5350, -.2469, 0} (at the official code's thresholds, see bd_qlevel_nf3), then
//        scaled back
//   ternary (per tensor): D = mean|W|, wq = D*clamp(round(w/(D+1e-5)), -1, 1)
//   r2q (2 bits): z = mean, a1 = mean|w-z|, r = w-z-a1*sign(w-z), a2 = mean|r|,
//                 wq = z + a1*sign(w-z) + a2*sign(r)   (the lattice {z +- a1 +- a2})
//   q2_K, q3_K, q4_K: llama.cpp's K-quant super-blocks of 256 weights, f16 factors times 4- or
//                 6-bit sub-block scales (and mins); wq = the block ggml would decode
//                 (bd_kquant.h has the layouts and bd's rule for the scales)
// Two roundings, as in BitDistiller's QAT quantizers (quantization/quantizer.py):
//   Round(x) = sign(x)*floor(|x|+0.5) in f32: halves away from zero (2.5 -> 3, -0.5 -> -1), the
//            official custom autograd Round that SteInt2AsymQuantizer applies to w/s (bd_qround);
//            like the official one it also takes 0.49999997f (the float below 0.5) to 1, where
//            0.49999997f + 0.5f rounds to 1.0f.
//   round(x) = rintf: halves to even (2.5 -> 2, -0.5 -> -0), as torch.round, which the official
//            code uses for the zero point; sym and ternary use it too (the official sym branch,
//            which BitDistiller never trains with, and BitNet's weight quantizer use torch.round).
// The official round-to-nearest and clip-search path (pseudo_quantize_tensor) rounds w/s with
// torch.round; bd uses one int quantizer everywhere (QAT, RTN, clip search, packing), the QAT
// one, so the two differ only on a weight exactly halfway between two levels.
#ifndef BD_QUANT_H
#define BD_QUANT_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "bd_error.h"

// q2_K, q3_K, q4_K: llama.cpp's K-quant blocks (bd_kquant.h): 256-weight super-blocks whatever
// the group says, rows a multiple of 256, straight-through backward.
typedef enum {
    BD_Q_NONE = 0,
    BD_Q_INT,
    BD_Q_SYM,
    BD_Q_NF3,
    BD_Q_TERNARY,
    BD_Q_R2Q,
    BD_Q_Q2_K,
    BD_Q_Q3_K,
    BD_Q_Q4_K,
    BD_Q_COUNT
} bd_qkind;
// Whether k is one of llama.cpp's K-quant kinds (their group is always the 256-weight super-block).
static inline bool bd_qkind_is_kquant(bd_qkind k) { return k == BD_Q_Q2_K || k == BD_Q_Q3_K || k == BD_Q_Q4_K; }

typedef struct {
    bd_qkind kind;
    int bits;   // int: 2,3,4,8; sym: 2..8; nf3: 3; ternary: 2 (1.58 bits stored in 2); r2q: 2; qN_K: N
    int group;  // G; <= 0 or >= C means one group per row. Ignored by ternary (per tensor); qN_K: 0 or 256
} bd_qspec;

// Which layers of a model are quantized (functions in bd_qmodel.h). Default (all zero):
// every linear layer of the blocks; embeddings, norms and the output head stay full precision.
#define BD_QPOLICY_MAX_EXCLUDE 16

typedef struct {
    bool include_head;  // also quantize wcls (needs untied embeddings)
    // Activations: 0 (full precision) or 8: the input of every linear the policy quantizes is
    // quantized to int8 per token in every forward pass (W1.58A8; bd_act_quant.h).
    int act_bits;
    int n_exclude;
    char exclude[BD_QPOLICY_MAX_EXCLUDE][64];  // fnmatch patterns on "layers.N.NAME" or "NAME"
} bd_qpolicy;

const char *bd_qkind_name(bd_qkind k);  // "none", "int", "sym", "nf3", "ternary", "r2q", "q2_K", "q3_K", "q4_K"
int bd_qkind_parse(const char *name);   // -1 if unknown
// Checks the spec against a row length C; BD_ERR_ARG with a reason otherwise.
BD_MUST_CHECK int bd_qspec_check(const bd_qspec *q, int C, char *why, size_t why_size);
// The group size actually used for rows of length C. Groups are consecutive runs of G
// weights along a row; when G does not divide C the last group of each row is shorter.
int bd_qspec_group(const bd_qspec *q, int C);
// Groups per row: ceil(C / G).
int bd_qspec_ngroups(int C, int G);

// The NF3 grid of BitDistiller, ascending, and the thresholds between neighbours (edge[k] lies
// between grid[k] and grid[k+1]; the official constants rounded to f32).
extern const float bd_nf3_grid[8];
extern const float bd_nf3_edge[7];

// Fake quantization of w (OC, C) into wq (OC, C); wq may equal w (in place).
// BD_ERR_VALUE if w holds NaN or inf, BD_ERR_ARG for a bad spec.
BD_MUST_CHECK int bd_fakequant_forward(float *wq, const float *w, int OC, int C, const bd_qspec *q);
// Straight-through backward: dw (OC, C) += dL/dw given dwq = dL/dwq (OC, C) and the latent w.
// int and nf3 give what autograd gives on BitDistiller's QAT quantizers (SteInt2AsymQuantizer,
// SteN2F3Quantizer in quantization/quantizer.py), whose scales are not detached:
//   int: Round passes the gradient straight through, clamp blocks it outside [0, 2^b-1], and the
//        scale s = (max - min)/(2^b-1) is differentiated: dL/ds = sum dwq*(Round(w/s) - w/s)
//        inside the range, sum dwq*(level - z) where clamped; max gets +dL/ds/(2^b-1), min
//        -dL/ds/(2^b-1) (the zero point, through torch.round, has no gradient; no gradient to
//        max/min while max - min is below the 1e-5 floor).
//   nf3: the snap to the grid passes the gradient straight through (every weight gets dwq), and
//        the two scales sp = |max|, sn = |min| are differentiated: with y the snapped value
//        (in [-1, 1]) of each weight, max gets sum over w >= 0 of dwq*(y - w/sp), min gets
//        -sum over w < 0 of dwq*(y - w/sn) (no gradient to a scale at its 1e-5 floor).
//   Tied maxima (minima) share the gradient equally, as torch.amax/amin do: after clipping
//   every weight beyond the clip range sits at the max (min).
// sym, ternary, r2q, qN_K: identity (w + (wq - w).detach()); BitDistiller has no QAT quantizer
// of these kinds (see the note in bd_quant.c).
void bd_fakequant_backward(float *dw, const float *dwq, const float *w, int OC, int C, const bd_qspec *q);

// Plain single-threaded twins of the two calls above (the fast ones split rows over threads).
BD_MUST_CHECK int bd_fakequant_forward_ref(float *wq, const float *w, int OC, int C, const bd_qspec *q);
void bd_fakequant_backward_ref(float *dw, const float *dwq, const float *w, int OC, int C, const bd_qspec *q);

// Fake-quantizes one group of n weights (ternary: D from these n weights).
void bd_quantize_group(float *out, const float *w, int n, const bd_qspec *q);

// ---- one group's maths ------------------------------------------------------------------------------
// The fake quantizer and the packer (bd_packed.h) both quantize with these, so packed codes decode to
// exactly the fake-quantized values. bd_qgroup_* compute a group's parameters from its weights,
// bd_qlevel_* one weight's level; bd_qvalue_* turn a level back into a weight. Levels are
// integer-valued floats (sym and ternary keep round()'s -0, so level * s has the sign the fake
// quantizer has always given; the packed value of that weight is +0):
//   int      level = clamp(Round(w/s) + z, 0, 2^b-1) = the code     value (level - z) * s
//   sym      level = clamp(round(w/s), -2^(b-1), 2^(b-1)-1)       value level * s; code level + z, z = 2^(b-1)
//   nf3      level = index of the grid value = the code           value grid[level] * (level >= 3 ? sp : sn)
//   r2q      level = 2 [w - m >= 0] + [r >= 0] = the code           value lv[level]
//   ternary  level = clamp(round(w/(D+1e-5)), -1, 1)              value level * D; code level + 1
#define BD_QSCALE_MIN 1e-5f  // floor of every scale (a constant group)
#define BD_QTERNARY_EPS 1e-5f

typedef struct {
    float mn, mx;      // the group's extremes (int, nf3)
    float s, z, qmax;  // int, sym: scale, zero point (sym: 2^(b-1), the code of level 0), top level
    float sp, sn;      // nf3: scales of the positive and negative halves
    double m, a1;      // r2q: mean, mean |w - m|
    float lv[4];       // r2q: the value of each code
} bd_qgroup;

// By value: a local copy never escapes, so its fields stay in registers in the per-weight loops.
bd_qgroup bd_qgroup_int(const float *w, int n, int bits);
bd_qgroup bd_qgroup_sym(const float *w, int n, int bits);
bd_qgroup bd_qgroup_nf3(const float *w, int n);
bd_qgroup bd_qgroup_r2q(const float *w, int n);
double bd_ternary_scale(const float *w, size_t n);  // D = mean |W| over the whole matrix

static inline float bd_qclampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }
static inline float bd_qsign(float x) { return x >= 0 ? 1.0f : -1.0f; }  // sign(0) = +1: two levels

// BitDistiller's QAT Round, sign(x)*floor(|x|+0.5) in f32 (see the top of this file).
static inline float bd_qround(float x) { return copysignf(floorf(fabsf(x) + 0.5f), x); }

static inline float bd_qlevel_int(const bd_qgroup *g, float w) {
    return bd_qclampf(bd_qround(w / g->s) + g->z, 0, g->qmax);
}
static inline float bd_qlevel_sym(const bd_qgroup *g, float w) {
    return bd_qclampf(rintf(w / g->s), -g->qmax - 1, g->qmax);
}
static inline float bd_qlevel_ternary(float w, float D) { return bd_qclampf(rintf(w / (D + BD_QTERNARY_EPS)), -1, 1); }
// The grid value of w scaled into [-1, 1] (w/sp for w >= 0, w/sn below), chosen as the official
// SteN2F3Quantizer does: x >= edge[k] moves x above grid[k], with the official thresholds (about
// the midpoints of neighbouring grid values) rounded to f32, as torch compares an f32 tensor with
// a Python float. A weight at a threshold takes the upper value.
static inline int bd_qlevel_nf3(const bd_qgroup *g, float w) {
    int level = 0;
    if (w >= 0) {
        float x = w / g->sp;
        level = 3;
        for (int k = 3; k < 7; k++) level += x >= bd_nf3_edge[k];
    } else {
        float x = w / g->sn;
        for (int k = 0; k < 3; k++) level += x >= bd_nf3_edge[k];
    }
    return level;
}
static inline int bd_qlevel_r2q(const bd_qgroup *g, float w) {
    double d = w - g->m, r = d - g->a1 * bd_qsign((float)d);
    return (bd_qsign((float)d) > 0) * 2 + (bd_qsign((float)r) > 0);
}

static inline float bd_qvalue_affine(float level, float z, float s) { return (level - z) * s; }
static inline float bd_qvalue_nf3(int level, float sp, float sn) { return bd_nf3_grid[level] * (level >= 3 ? sp : sn); }

// Clamps w (OC, C) per (row, group) to [mn, mx], both (OC, ceil(C/G)): the clipping of
// bd-clipsearch, applied once before QAT or RTN.
void bd_clip_apply(float *w, int OC, int C, int G, const float *mx, const float *mn);

#endif
