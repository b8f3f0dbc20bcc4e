// Token ids taken out of stream records (bd.tokens "ids", bd.samples "prompt"/"completion"),
// checked against a model's vocabulary, into one growable array.
#ifndef BD_IDS_H
#define BD_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "bd_stream.h"

typedef struct {
    int32_t *ids;  // (n)
    size_t n, cap;
} bd_ids;

// Appends rec's field (a 1-D u32/i32 tensor) to l. Every id must be in [0, V). On error
// returns BD_ERR_SCHEMA / BD_ERR_SHAPE / BD_ERR_VALUE / BD_ERR_NOMEM with a reason in why
// naming the field (and the position of a bad id); the caller adds the file and record.
BD_MUST_CHECK int bd_ids_append(bd_ids *l, const msgpack_object *rec, const char *field, int V, char *why, size_t why_size);
// Appends n ids (not checked). BD_ERR_NOMEM on failure.
BD_MUST_CHECK int bd_ids_push(bd_ids *l, const int32_t *ids, size_t n);
void bd_ids_free(bd_ids *l);

#endif
