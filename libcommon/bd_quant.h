// Weight quantizers for QAT and post-training baselines: fake quantization (quantize then
// dequantize, in f32) with a straight-through backward, per group of G weights along the
// input dimension of a linear layer's (OC, C) weight.
//   OC output channels (rows), C input dim (columns), G group size (G >= C: one group per row;
//   when G does not divide C, the last group of a row holds the C mod G weights left).
// Formulas (BitDistiller, arXiv 2402.10631; BitNet b1.58; R2Q), see man/bd-stream.5 "quant":
//   int (asymmetric, b bits): s = max(max-min, 1e-5)/(2^b-1), z = clamp(-round(min/s), 0, 2^b-1),
//                             wq = (clamp(round(w/s)+z, 0, 2^b-1) - z)*s
//   sym (symmetric, b bits):  s = max(absmax, 1e-5)/(2^(b-1)-1), wq = clamp(round(w/s), -2^(b-1), 2^(b-1)-1)*s
//   nf3: positives w/max snapped to {0, .1833, .3820, .6230, 1}, negatives w/|min| snapped to
//        {-1, -.5350, -.2469, 0}, then scaled back
//   ternary (per tensor): D = mean|W|, wq = D*clamp(round(w/(D+1e-5)), -1, 1)
//   r2q (2 bits): z = mean, a1 = mean|w-z|, r = w-z-a1*sign(w-z), a2 = mean|r|,
//                 wq = z + a1*sign(w-z) + a2*sign(r)   (the lattice {z +- a1 +- a2})
// round() is round-half-to-even, as torch.round.
#ifndef BD_QUANT_H
#define BD_QUANT_H

#include <stdbool.h>
#include <stddef.h>

#include "bd_error.h"

typedef enum { BD_Q_NONE = 0, BD_Q_INT, BD_Q_SYM, BD_Q_NF3, BD_Q_TERNARY, BD_Q_R2Q, BD_Q_COUNT } bd_qkind;

typedef struct {
    bd_qkind kind;
    int bits;   // int: 2,3,4,8; sym: 2..8; nf3: 3; ternary: 2 (1.58 bits stored in 2); r2q: 2
    int group;  // G; <= 0 or >= C means one group per row. Ignored by ternary (per tensor).
} bd_qspec;

// Which layers of a model are quantized (functions in bd_qmodel.h). Default (all zero):
// every linear layer of the blocks; embeddings, norms and the output head stay full precision.
#define BD_QPOLICY_MAX_EXCLUDE 16

typedef struct {
    bool include_head;                          // also quantize wcls (needs untied embeddings)
    int n_exclude;
    char exclude[BD_QPOLICY_MAX_EXCLUDE][64];   // fnmatch patterns on "layers.N.NAME" or "NAME"
} bd_qpolicy;

const char *bd_qkind_name(bd_qkind k);  // "none", "int", "sym", "nf3", "ternary", "r2q"
int bd_qkind_parse(const char *name);   // -1 if unknown
// Checks the spec against a row length C; BD_ERR_ARG with a reason otherwise.
BD_MUST_CHECK int bd_qspec_check(const bd_qspec *q, int C, char *why, size_t why_size);
// The group size actually used for rows of length C. Groups are consecutive runs of G
// weights along a row; when G does not divide C the last group of each row is shorter.
int bd_qspec_group(const bd_qspec *q, int C);
// Groups per row: ceil(C / G).
int bd_qspec_ngroups(int C, int G);

// The NF3 grid of BitDistiller, ascending.
extern const float bd_nf3_grid[8];

// Fake quantization of w (OC, C) into wq (OC, C); wq may equal w (in place).
// BD_ERR_VALUE if w holds NaN or inf, BD_ERR_ARG for a bad spec.
BD_MUST_CHECK int bd_fakequant_forward(float *wq, const float *w, int OC, int C, const bd_qspec *q);
// Straight-through backward: dw (OC, C) += dL/dw given dwq = dL/dwq (OC, C) and the latent w.
// int: round() passes the gradient straight through, clamp() blocks it outside the range, and
// the scale's dependence on the group's max and min is differentiated (as autograd does in
// BitDistiller's reference code; the zero point has no gradient). sym, nf3, ternary, r2q:
// identity (w + (wq - w).detach()).
void bd_fakequant_backward(float *dw, const float *dwq, const float *w, int OC, int C, const bd_qspec *q);

// Plain single-threaded twins of the two calls above (the fast ones split rows over threads).
BD_MUST_CHECK int bd_fakequant_forward_ref(float *wq, const float *w, int OC, int C, const bd_qspec *q);
void bd_fakequant_backward_ref(float *dw, const float *dwq, const float *w, int OC, int C, const bd_qspec *q);

// Fake-quantizes one group of n weights (not ternary, which is per tensor).
void bd_quantize_group(float *out, const float *w, int n, const bd_qspec *q);

// Clamps w (OC, C) per (row, group) to [mn, mx], both (OC, ceil(C/G)): the clipping of
// bd-clipsearch, applied once before QAT or RTN.
void bd_clip_apply(float *w, int OC, int C, int G, const float *mx, const float *mn);

#endif
