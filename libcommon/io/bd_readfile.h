// Whole-file reading for text inputs (evaluation tasks, labels): plain files, standard
// input ("-"), and bzip2-compressed data, recognized by its "BZh" magic (never by the file
// name) and decompressed with libbz2. Concatenated bzip2 streams (pbzip2) are read whole.
#ifndef BD_READFILE_H
#define BD_READFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "bd_error.h"

// True if data[0..len) begins with a bzip2 stream header ("BZh" and a block size 1-9).
bool bd_is_bzip2(const unsigned char *data, size_t len);

// Reads path ("-": standard input) into *data (malloc'd, NUL-terminated after *len bytes;
// the caller frees it), decompressing bzip2. Errors, with a one-line reason naming path:
// BD_ERR_IO (cannot open/read), BD_ERR_TRUNCATED (bzip2 stream ends early),
// BD_ERR_CORRUPT (bzip2 data error or trailing garbage), BD_ERR_NOMEM.
BD_MUST_CHECK int bd_read_file(const char *path, char **data, size_t *len, char *why, size_t why_size);

// Reads a small auxiliary file whole (config.json, tokenizer.json, tokenizer.bin, ...):
// it must be a regular file (a FIFO or a device such as /dev/zero is refused without
// blocking or reading it) of at most max_bytes. *data is malloc'd and NUL-terminated after
// *len bytes. BD_ERR_IO (cannot open or read; errno kept), BD_ERR_ARG (not a regular file),
// BD_ERR_MALFORMED (over the limit), BD_ERR_NOMEM; why names path.
BD_MUST_CHECK int bd_read_small_file(const char *path, size_t max_bytes, char **data, size_t *len, char *why,
                                     size_t why_size);

// Decompresses the bzip2 data src[0..n) into *out (NUL-terminated, *out_len bytes); name
// is used in messages. Same errors as bd_read_file.
BD_MUST_CHECK int bd_bunzip2(const unsigned char *src, size_t n, const char *name, char **out, size_t *out_len,
                             char *why, size_t why_size);

#endif
