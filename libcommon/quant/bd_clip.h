// BitDistiller's clipping search for one linear layer: for every (output channel, group)
// choose max' = max*(1-i/grid), min' = min*(1-j/grid), i, j in 0..steps-1, minimizing the
// squared error of the group's partial output X_g (Q(clamp(w_g, min', max')) - w_g) over the
// calibration inputs X. Dimension key: N calibration tokens, OC output channels, C input dim,
// G group size, NG = ceil(C/G) groups per row (the last group of a row may be shorter).
#ifndef BD_CLIP_H
#define BD_CLIP_H

#include "bd_error.h"
#include "bd_quant.h"

typedef struct {
    int grid;   // shrink step 1/grid (BitDistiller: 20)
    int steps;  // i, j in 0..steps-1 (BitDistiller: 10)
} bd_clip_grid;

// mx, mn: (OC, NG) outputs, the chosen ranges. W: (OC, C). X: (N, C), the layer's inputs.
// Ties keep the smaller shrink (i, j) = (0, 0) first. Returns BD_ERR_ARG on a bad spec
// (ternary has no per-group range) and BD_ERR_NOMEM.
BD_MUST_CHECK int bd_clip_search(float *mx, float *mn, const float *W, const float *X, int N, int OC, int C,
                                 const bd_qspec *q, bd_clip_grid grid);
// The same by plain loops (one candidate at a time, output error computed directly).
// Bytes bd_clip_search allocates for N positions of rows of C weights (for memory plans).
size_t bd_clip_search_bytes(int N, int C, const bd_qspec *q, bd_clip_grid grid);
BD_MUST_CHECK int bd_clip_search_ref(float *mx, float *mn, const float *W, const float *X, int N, int OC, int C,
                                     const bd_qspec *q, bd_clip_grid grid);

#endif
