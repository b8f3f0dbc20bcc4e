// Safetensors files (Hugging Face): u64 little-endian header length N, N bytes of JSON
// {"__metadata__":{str:str}, name:{"dtype":"F32","shape":[...],"data_offsets":[b,e]}, ...},
// then the data block; offsets are relative to the start of the data block.
// The reader maps the file and checks every entry (known dtype, byte count = shape x dtype,
// offsets inside the file, no two tensors overlapping) before any data is touched.
#ifndef BD_SAFETENSORS_H
#define BD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "bd_dtype.h"
#include "bd_error.h"

#define BD_ST_MAX_DIMS 8
// Headers larger than this are refused (the reference implementation uses the same cap).
#define BD_ST_MAX_HEADER ((uint64_t)100 << 20)

typedef struct {
    char *name;
    char dtype_name[12];  // as in the file: "F32", "BF16", "I64", ...
    int dtype;            // the bd_dtype, or -1 if bd has no equivalent (F64, I64, BOOL, ...)
    int ndim;
    int64_t shape[BD_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;  // absolute byte offsets in the file
} bd_st_tensor;

typedef struct {
    char *path;
    const uint8_t *map;  // the whole file, read-only
    size_t size;
    bd_st_tensor *tensors;  // sorted by name
    int n;
    char **meta;  // __metadata__ as key, value, key, value, ...
    int n_meta;
} bd_safetensors;

// Opens and validates path. Errors (one line naming the file, in why): BD_ERR_IO (open/map),
// BD_ERR_TRUNCATED (file shorter than its header or offsets say), BD_ERR_MALFORMED (bad JSON,
// bad fields, overlapping tensors), BD_ERR_SHAPE (byte count does not match shape x dtype).
BD_MUST_CHECK int bd_safetensors_open(bd_safetensors *st, const char *path, char *why, size_t why_size);
void bd_safetensors_close(bd_safetensors *st);
// The tensor called name, or NULL.
const bd_st_tensor *bd_safetensors_find(const bd_safetensors *st, const char *name);
// Value of a __metadata__ key, or NULL.
const char *bd_safetensors_meta(const bd_safetensors *st, const char *key);
// Raw little-endian bytes of t (t->end - t->begin of them).
const void *bd_safetensors_data(const bd_safetensors *st, const bd_st_tensor *t);
// Converts t (F32, BF16 or F16 only) into dst (t->numel floats). BD_ERR_SHAPE for other dtypes.
BD_MUST_CHECK int bd_safetensors_read_f32(const bd_safetensors *st, const bd_st_tensor *t, float *dst, char *why,
                                          size_t why_size);

// ---- writing ----------------------------------------------------------------------------

typedef struct {
    const char *name;
    bd_dtype dtype;  // F32, BF16, F16, I8, U8, I32, U32
    int ndim;
    int64_t shape[BD_ST_MAX_DIMS];
    const void *data;  // numel elements of dtype, little-endian
} bd_st_write_tensor;

// Writes n tensors (in the given order) with optional metadata (meta[2i] key, meta[2i+1]
// value, n_meta pairs) to path, atomically (bd_outfile). The header is padded with spaces
// to a multiple of 8 bytes so that the data block is aligned. Names must be unique.
BD_MUST_CHECK int bd_safetensors_write(const char *path, const bd_st_write_tensor *t, int n, const char *const *meta,
                                       int n_meta, char *why, size_t why_size);

// "F32" for BD_F32, ...; NULL if safetensors has no name for it.
const char *bd_st_dtype_name(bd_dtype t);

#endif
