#include "bd_parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

int bd_parse_int64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s || isspace((unsigned char)*s)) return BD_ERR_VALUE;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != 0) return BD_ERR_VALUE;
    if (errno == ERANGE || v < lo || v > hi) return BD_ERR_ARG;
    *out = v;
    return BD_OK;
}

int bd_parse_double(const char *s, double lo, double hi, double *out) {
    if (!s || !*s || isspace((unsigned char)*s)) return BD_ERR_VALUE;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != 0 || !isfinite(v)) return BD_ERR_VALUE;
    if (errno == ERANGE || v < lo || v > hi) return BD_ERR_ARG;
    *out = v;
    return BD_OK;
}
