// Internal to the model loaders (bd_model_io.c, bd_llama2c.c, bd_hf.c, bd_gguf_read.c): shared helpers.
#ifndef BD_MODEL_IO_IMPL_H
#define BD_MODEL_IO_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "bd_model.h"
#include "bd_stream.h"

// BD_ERR_VALUE naming file, tensor and the first non-finite element's index.
int bd_io_check_finite(const float *p, size_t n, const char *file, const char *tensor, char *why, size_t why_size);
// Every tensor of m finite (names the bd tensor, its layer and index within the layer).
int bd_io_check_model_finite(const bd_model *m, const char *file, char *why, size_t why_size);
// The entry called name, or NULL.
const bd_param_entry *bd_io_entry(const bd_param_entry *t, int n, const char *name);

// The bd.model header pieces, shared with bd.packed streams (bd_packed_io.c).
int bd_io_parse_config(const msgpack_object *h, bd_config *cfg, const char *path, char *why, size_t why_size);
int bd_io_parse_quant(const msgpack_object *h, bd_qspec *q, bd_qpolicy *p, const char *path, char *why,
                      size_t why_size);
void bd_io_pack_config(msgpack_packer *pk, const bd_config *c);
// The optional "tokenizer": {"path": str, "id": str} into m->tok_path/tok_id (left empty when
// absent). BD_ERR_SCHEMA when present but not such a map of strings.
int bd_io_parse_tokenizer(const msgpack_object *h, bd_model *m, const char *path, char *why, size_t why_size);
// Whether m has a tokenizer to remember, and packing it as the "tokenizer" key and value.
bool bd_io_has_tokenizer(const bd_model *m);
void bd_io_pack_tokenizer(msgpack_packer *pk, const bd_model *m);
void bd_io_pack_quant(msgpack_packer *pk, const bd_qspec *q, const bd_qpolicy *p);

int bd_load_llama2c(const char *path, bd_model *m, char *why, size_t why_size);
// A GGUF file (llama or bitnet architecture), every weight dequantized to f32 (bd_gguf_read.c).
int bd_load_gguf(const char *path, bd_model *m, char *why, size_t why_size);
// mapped: the linears stay in the files' dtype, mapped (bd_model_load_mapped).
int bd_load_hf(const char *dir, bool mapped, bd_model *m, char *why, size_t why_size);
// Their configs alone, read from the headers (config.json and the safetensors headers) without
// the weights: bd_model_peek.
int bd_llama2c_peek(const char *path, bd_config *cfg, char *why, size_t why_size);
int bd_gguf_peek(const char *path, bd_config *cfg, char *why, size_t why_size);
int bd_hf_peek(const char *dir, bd_config *cfg, char *why, size_t why_size);

#endif
