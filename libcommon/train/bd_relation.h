// Attention-relation distillation (MiniLMv2, as BitNet Distillation's code computes it): the
// relation of a state X (L positions, rows of A*d floats: A relation heads of d floats each,
// the head split of the hidden vector, not the model's attention heads) is, per head a,
//   R[a] = softmax_rows(Xh[a] Xh[a]^T),  Xh[a] = X[a] with each d-vector L2-normalized
// (cosine similarities, no 1/sqrt(d), temperature 1; normalization x / max(|x|, 1e-12) as
// torch's F.normalize), and the loss of a student state S against the teacher's state U is
//   sum over heads a and rows t of KL(R_U[a,t,:] || R_S[a,t,:]).
// Teacher and student may differ in width (A must divide both); L x L relations compare them.
// Dimension key: L positions, A relation heads, DS / DU floats per student / teacher row.
#ifndef BD_RELATION_H
#define BD_RELATION_H

#include <stddef.h>

#include "bd_error.h"

// weight * the loss of student rows xs (L, DS; row stride lds floats) against teacher rows xu
// (L, DU; stride ldu). dxs (rows of stride lds, may be NULL) += weight * d loss / d xs.
// Returns the weighted loss, or NAN when out of memory. A must divide DS and DU.
double bd_relation_kl(float *dxs, const float *xs, int DS, size_t lds, const float *xu, int DU, size_t ldu, int L,
                      int A, double weight);
// The naive twin: every relation and the gradient formed in double from the definitions above
// (the gradient through the softmax, the Gram matrix and the normalization separately).
double bd_relation_kl_ref(float *dxs, const float *xs, int DS, size_t lds, const float *xu, int DU, size_t ldu, int L,
                          int A, double weight);

#endif
