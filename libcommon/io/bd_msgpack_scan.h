// Finds where one msgpack object ends in a growing byte buffer, without allocating.
// The stream reader hands msgpack-c only whole objects, so a forged element count can
// never make it allocate more than the bytes actually present.
#ifndef BD_MSGPACK_SCAN_H
#define BD_MSGPACK_SCAN_H

#include <stddef.h>
#include <stdint.h>

#define BD_SCAN_MAX_DEPTH 64

typedef struct {
    size_t pos;                            // offset of the next byte to examine
    int depth;                             // open containers
    uint64_t need[BD_SCAN_MAX_DEPTH + 1];  // elements still expected at each level
} bd_msgpack_scan;

void bd_msgpack_scan_init(bd_msgpack_scan *s, size_t start);
// Advances over buf[0..len). Returns 1 when the object is complete (it ends at s->pos),
// 0 if more bytes are needed, -1 on an invalid type byte or nesting deeper than the limit.
int bd_msgpack_scan_step(bd_msgpack_scan *s, const uint8_t *buf, size_t len);

#endif
