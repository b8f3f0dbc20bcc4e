// BitDistiller's clipping search over a whole model: one forward pass over calibration windows
// keeps the inputs of every linear layer; a random subsample of token positions, the same for
// every layer, then scores each layer's grid of shrunk ranges (bd_clip_search). Dimension key:
// B calibration windows of T tokens, N positions subsampled, OC output channels, NG groups.
#ifndef BD_CLIPSEARCH_H
#define BD_CLIPSEARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "bd_clip.h"
#include "bd_forward.h"
#include "bd_qmodel.h"

// The forward pass over ids (B, T) into st, allocated here with every layer kept (free it
// with bd_fwd_state_free). BD_ERR_NOMEM, or the forward pass's error.
BD_MUST_CHECK int bd_clip_calibrate(bd_fwd_state *st, const bd_model *m, const int32_t *ids, int B, int T, char *why,
                                    size_t why_size);
// pos (n) gets a permutation of 0..n-1 whose first N entries are a uniform random sample of
// positions (a partial Fisher-Yates shuffle by xorshift64 from seed).
void bd_clip_positions(int *pos, int n, int N, uint64_t seed);

typedef struct {
    bd_qspec q;
    bd_qpolicy policy;  // layers it does not cover are not searched
    bd_clip_grid grid;
    bool include_qk;  // also the q and k projections
} bd_clip_opts;

// Receives the ranges mx, mn (OC, NG) of one layer ("wq".."w2", layer l); a negative return
// stops the search, which returns it.
typedef int (*bd_clip_emit_fn)(void *ctx, const char *tensor, int layer, const float *mx, const float *mn, int OC,
                               int NG);

// Searches every linear layer of m (layers in order; wq wk wv wo w1 w3 w2 in each) on the
// inputs kept in st at positions pos[0..N-1]; progress (may be NULL) gets l*7 + k before each.
// *searched counts the layers searched. Errors: BD_ERR_NOMEM, bd_clip_search's, emit's.
BD_MUST_CHECK int bd_clip_model(const bd_model *m, const bd_fwd_state *st, const int *pos, int N, const bd_clip_opts *o,
                                bd_clip_emit_fn emit, void (*progress)(void *ctx, uint64_t done), void *ctx,
                                int *searched, char *why, size_t why_size);

// Bytes bd_clip_model allocates for N positions (its buffers and bd_clip_search's), for memory
// plans; the calibration activations are bd_fwd_state_bytes(cfg, B, T, true).
size_t bd_clip_model_bytes(const bd_config *c, int N, const bd_clip_opts *o);

#endif
