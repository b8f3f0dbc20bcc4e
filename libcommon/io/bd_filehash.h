// Content identity of input files: the 64-bit FNV-1a hash (the tokenizer ids' hash) of a
// file's bytes, or of a Hugging Face model directory's config.json and *.safetensors files
// (each file's name, then its bytes, in name order). Results name the model they measured by
// it: two paths to the same bytes give the same hash, a retrained file another.
#ifndef BD_FILEHASH_H
#define BD_FILEHASH_H

#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"

#define BD_FNV1A64_INIT UINT64_C(0xcbf29ce484222325)
// h updated with n bytes (start from BD_FNV1A64_INIT).
uint64_t bd_fnv1a64(uint64_t h, const void *data, size_t n);

// The hash of path (a regular file, or a directory as above) as 16 lowercase hex digits in
// out. BD_ERR_IO (cannot open or read; why names the file), BD_ERR_ARG (not a regular file or
// directory: standard input, a FIFO, a device), BD_ERR_NOMEM.
BD_MUST_CHECK int bd_hash_path(const char *path, char out[17], char *why, size_t why_size);

#endif
