// Which layers of a model are quantized (the policy; its act_bits says whether their inputs
// are too, applied by bd_block_linear) and fake quantization of a whole model's weights.
// Default policy (BitDistiller): every linear layer of the blocks (wq wk wv wo w1 w2 w3);
// embeddings, norms and the output head stay in full precision.
#ifndef BD_QMODEL_H
#define BD_QMODEL_H

#include <stdbool.h>

#include "bd_model.h"
#include "bd_quant.h"

// Adds a --exclude pattern; BD_ERR_ARG if too many or too long.
BD_MUST_CHECK int bd_qpolicy_exclude(bd_qpolicy *p, const char *pattern);
// Whether tensor NAME ("wq", ..., "wcls") of layer L (-1 for non-layer tensors) is quantized.
bool bd_qpolicy_covers(const bd_qpolicy *p, const char *name, int layer);
// Checks the policy and spec against a model (bits valid for the quantizer, head untied, ...);
// any group size is valid: the last group of a row may be shorter.
BD_MUST_CHECK int bd_qpolicy_check(const bd_qpolicy *p, const bd_qspec *q, const bd_config *cfg, char *why,
                                   size_t why_size);

// dst gets src's parameters with every covered linear weight fake-quantized. dst must be
// allocated with the same config (it may be src itself: in place). Ternary scales are per
// layer matrix. BD_ERR_VALUE (NaN/inf weight; why names the tensor and layer), BD_ERR_ARG.
BD_MUST_CHECK int bd_model_fakequant(bd_model *dst, const bd_model *src, const bd_qspec *q, const bd_qpolicy *p,
                                     char *why, size_t why_size);

#endif
