// Return codes shared by every library call: >= 0 success, -1 clean end of stream,
// < -1 distinct errors. bd_strerror() names them for messages.
#ifndef BD_ERROR_H
#define BD_ERROR_H

#define BD_MUST_CHECK __attribute__((warn_unused_result))

enum {
    BD_OK = 0,
    BD_EOF = -1,            // clean end: the trailer was read and verified
    BD_ERR_TRUNCATED = -2,  // input ended before the trailer (or mid zstd frame)
    BD_ERR_CORRUPT = -3,    // zstd refused the data (bad frame, checksum mismatch)
    BD_ERR_MALFORMED = -4,  // msgpack structure invalid, or not what the format requires
    BD_ERR_SCHEMA = -5,     // valid stream, wrong schema or wrong/missing field
    BD_ERR_VERSION = -6,    // stream has a newer major version than this reader
    BD_ERR_IO = -7,         // read/write/open failed (errno kept)
    BD_ERR_NOMEM = -8,
    BD_ERR_ARG = -9,     // invalid argument from the caller
    BD_ERR_SHAPE = -10,  // tensor dtype/shape/byte count mismatch
    BD_ERR_VALUE = -11,  // a value out of range (NaN weight, bad id, ...)
};

const char *bd_strerror(int code);

#include <stddef.h>
// Writes a printf-style reason into why (if given) and returns code: `return bd_fail(why,
// n, BD_ERR_SHAPE, "%s: tensor %s ...", ...)`.
int bd_fail(char *why, size_t why_size, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
