// Training objectives on next-token logits: cross-entropy on given targets, and the
// distillation losses of BitDistiller between student logits s and teacher logits u.
// Dimension key: N positions (B*T flattened), V vocabulary.
//   p_S = softmax(s/tau), p_T = softmax(u/tau)
//   fkl   = KL(p_T || p_S)                       forward KL
//   rkl   = KL(p_S || p_T)                       reverse KL
//   cakld = g*KL(p_S||p_T) + (1-g)*KL(p_T||p_S)  confidence-aware KL, g = teacher's mean top-1 prob
//   jsd   = (KL(p_S||M) + KL(p_T||M))/2, M = (p_S+p_T)/2
//   ce    = -log p_S[target]
#ifndef BD_LOSS_H
#define BD_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"

typedef enum { BD_LOSS_CE = 0, BD_LOSS_FKL, BD_LOSS_RKL, BD_LOSS_CAKLD, BD_LOSS_JSD, BD_LOSS_COUNT } bd_loss_kind;

typedef struct {
    bd_loss_kind kind;
    float gamma;        // cakld's g in [0, 1]
    float temperature;  // tau > 0 (1 for BitDistiller)
} bd_loss_spec;

const char *bd_loss_name(bd_loss_kind k);  // "ce", "fkl", "rkl", "cakld", "jsd"
int bd_loss_parse(const char *name);       // -1 if unknown

// Per-position losses (N) for logits s (N, V) and teacher logits u (N, V; unused by ce) or
// targets (N; ce only, must be in [0, V)). Returns BD_ERR_VALUE on a target out of range.
BD_MUST_CHECK int bd_loss_forward(float *losses, const float *s, const float *u, const int32_t *targets, int N, int V,
                                  const bd_loss_spec *spec);
// ds (N, V) = weight[n] * d loss_n / d s_n (written, not accumulated); weight (N) carries the
// reduction and the mask (0 = position not trained); *sum = sum_n weight[n]*loss_n. Returns
// BD_OK, BD_ERR_VALUE on a ce target out of range at a weighted position (its row of ds is
// zero), or BD_ERR_NOMEM; why (may be NULL) says which.
BD_MUST_CHECK int bd_loss_backward(float *ds, const float *s, const float *u, const int32_t *targets,
                                   const float *weight, int N, int V, const bd_loss_spec *spec, double *sum, char *why,
                                   size_t why_size);

// Sum over positions of the teacher's top-1 probability max_k p_T (no temperature), for
// cakld's g = sum / positions, measured once over the training data.
double bd_top1_prob_sum(const float *u, int N, int V);

#endif
