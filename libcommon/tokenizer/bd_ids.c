#include "bd_ids.h"

#include <stdlib.h>
#include <string.h>

static int reserve(bd_ids *l, size_t more) {
    if (l->n + more <= l->cap) return BD_OK;
    size_t cap = l->cap ? l->cap : 4096;
    while (cap < l->n + more) cap *= 2;
    int32_t *p = realloc(l->ids, cap * sizeof *p);
    if (!p) return BD_ERR_NOMEM;
    l->ids = p;
    l->cap = cap;
    return BD_OK;
}

int bd_ids_push(bd_ids *l, const int32_t *ids, size_t n) {
    if (reserve(l, n) < 0) return BD_ERR_NOMEM;
    memcpy(l->ids + l->n, ids, n * sizeof *ids);
    l->n += n;
    return BD_OK;
}

int bd_ids_append(bd_ids *l, const msgpack_object *rec, const char *field, int V, char *why, size_t ws) {
    bd_tensor_view t;
    char reason[300];
    int rc = bd_obj_tensor(bd_obj_get(rec, field), &t, reason, sizeof reason);
    if (rc < 0) return bd_fail(why, ws, rc, "field \"%s\": %s", field, reason);
    if ((t.dtype != BD_U32 && t.dtype != BD_I32) || t.ndim != 1)
        return bd_fail(why, ws, BD_ERR_SHAPE, "field \"%s\" must be a 1-D u32 tensor", field);
    size_t n = (size_t)t.numel;
    if (reserve(l, n) < 0) return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory for %zu ids", l->n + n);
    int32_t *dst = l->ids + l->n;
    memcpy(dst, t.data, t.nbytes);  // little-endian hosts: the stored bytes are the ints
    for (size_t i = 0; i < n; i++)
        if (dst[i] < 0 || dst[i] >= V)
            return bd_fail(why, ws, BD_ERR_VALUE, "field \"%s\": id %u at position %zu is outside the model's vocabulary of %d",
                           field, (unsigned)dst[i], i, V);
    l->n += n;
    return BD_OK;
}

void bd_ids_free(bd_ids *l) {
    free(l->ids);
    memset(l, 0, sizeof *l);
}
