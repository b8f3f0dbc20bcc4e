// Strict number parsing: the whole string must be a number in range, no trailing junk.
#ifndef BD_PARSE_H
#define BD_PARSE_H

#include <stdint.h>

#include "bd_error.h"

// BD_OK, or BD_ERR_VALUE (not a number, trailing junk, empty) / BD_ERR_ARG (out of [lo, hi]).
BD_MUST_CHECK int bd_parse_int64(const char *s, int64_t lo, int64_t hi, int64_t *out);
// Finite numbers only; NaN and inf are rejected as BD_ERR_VALUE.
BD_MUST_CHECK int bd_parse_double(const char *s, double lo, double hi, double *out);

#endif
