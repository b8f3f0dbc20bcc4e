// bd.clip streams: the clipping ranges bd-clipsearch finds, one record per quantized linear
// layer: {"name": "layers.N.wq", "tensor": "wq", "layer": N, "max": f32 (OC, NG),
// "min": f32 (OC, NG)}; the header records quant, bits, group, grid, steps and the model.
// A consumer checks that quant, bits and group are those it quantizes with.
#ifndef BD_CLIPFILE_H
#define BD_CLIPFILE_H

#include "bd_model.h"
#include "bd_quant.h"
#include "bd_stream.h"

// Packs and ends one record.
BD_MUST_CHECK int bd_clipfile_write_record(bd_writer *w, const char *tensor, int layer, const float *mx,
                                           const float *mn, int OC, int NG);
// Clamps the latent weights of m to the ranges in path (applied once, before QAT or RTN).
// The stream's group must be q's group for these rows; every record must name a linear
// layer of m with matching shape. Errors name the file and record.
BD_MUST_CHECK int bd_clipfile_apply(const char *path, bd_model *m, const bd_qspec *q, char *why, size_t why_size);

#endif
