#include "bd_error.h"

#include <stdarg.h>
#include <stdio.h>

const char *bd_strerror(int code) {
    switch (code) {
    case BD_OK: return "ok";
    case BD_EOF: return "end of stream";
    case BD_ERR_TRUNCATED: return "truncated";
    case BD_ERR_CORRUPT: return "corrupt";
    case BD_ERR_MALFORMED: return "malformed";
    case BD_ERR_SCHEMA: return "schema mismatch";
    case BD_ERR_VERSION: return "unsupported version";
    case BD_ERR_IO: return "I/O error";
    case BD_ERR_NOMEM: return "out of memory";
    case BD_ERR_ARG: return "invalid argument";
    case BD_ERR_SHAPE: return "shape mismatch";
    case BD_ERR_VALUE: return "invalid value";
    default: return "unknown error";
    }
}

int bd_fail(char *why, size_t why_size, int code, const char *fmt, ...) {
    if (why && why_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
    }
    return code;
}
