// Writes msgpack objects as JSON (for bd-cat and tools' --json output).
#ifndef BD_JSON_H
#define BD_JSON_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>

// Tensor maps (see bd_obj_is_tensor) are summarized as {"name","dtype","shape"} unless
// full is set; then "data" holds the values as one flat row-major array. Other binary
// values print as {"bin":bytes} (full: hex string). NaN and inf print as null.
void bd_json_write(FILE *f, const msgpack_object *o, bool full);
// A JSON string literal for s[0..n), invalid UTF-8 bytes as \ufffd.
void bd_json_string(FILE *f, const char *s, size_t n);

#endif
