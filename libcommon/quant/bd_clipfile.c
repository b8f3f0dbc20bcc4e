#include "bd_clipfile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_log.h"

int bd_clipfile_write_record(bd_writer *w, const char *tensor, int layer, const float *mx, const float *mn, int OC,
                             int NG) {
    msgpack_packer *pk = bd_writer_packer(w);
    char name[96];
    snprintf(name, sizeof name, "layers.%d.%s", layer, tensor);
    int64_t shape[2] = {OC, NG};
    msgpack_pack_map(pk, 5);
    bd_pack_kv_str(pk, "name", name);
    bd_pack_kv_str(pk, "tensor", tensor);
    bd_pack_kv_int(pk, "layer", layer);
    bd_pack_str(pk, "max");
    bd_pack_tensor(pk, "max", BD_F32, 2, shape, mx);
    bd_pack_str(pk, "min");
    bd_pack_tensor(pk, "min", BD_F32, 2, shape, mn);
    return bd_writer_end_object(w);
}

static int read_range(const msgpack_object *rec, const char *key, int OC, int NG, float *dst, char *why, size_t n) {
    bd_tensor_view t;
    char reason[200];
    if (bd_obj_tensor(bd_obj_get(rec, key), &t, reason, sizeof reason) < 0) {
        snprintf(why, n, "field \"%s\": %s", key, reason);
        return BD_ERR_SCHEMA;
    }
    if (t.dtype != BD_F32 || t.ndim != 2 || t.shape[0] != OC || t.shape[1] != NG) {
        snprintf(why, n, "field \"%s\" must be f32 [%d, %d] for this layer", key, OC, NG);
        return BD_ERR_SHAPE;
    }
    memcpy(dst, t.data, t.nbytes);
    for (int i = 0; i < OC * NG; i++)
        if (!isfinite(dst[i])) {
            snprintf(why, n, "field \"%s\" holds a NaN or infinite value at %d", key, i);
            return BD_ERR_VALUE;
        }
    return BD_OK;
}

// The ranges belong to one quantizer, bit width and group: all three must match q.
static int check_header(bd_reader *r, const char *path, const bd_qspec *q, int64_t *hgroup, char *why, size_t ws) {
    const msgpack_object *h = bd_reader_header(r);
    int64_t hbits = 0;
    char hquant[16];
    if (bd_obj_int(bd_obj_get(h, "group"), hgroup) < 0 || bd_obj_int(bd_obj_get(h, "bits"), &hbits) < 0 ||
        bd_obj_strcpy(bd_obj_get(h, "quant"), hquant, sizeof hquant) < 0) {
        snprintf(why, ws, "\"%s\" header: expected \"quant\" (string), \"bits\" and \"group\" (integers)", path);
        return BD_ERR_SCHEMA;
    }
    if (strcmp(hquant, bd_qkind_name(q->kind)) != 0 || hbits != q->bits) {
        snprintf(why, ws, "\"%s\": ranges were searched for %s %lld-bit, but the quantizer is %s %d-bit", path, hquant,
                 (long long)hbits, bd_qkind_name(q->kind), q->bits);
        return BD_ERR_ARG;
    }
    return BD_OK;
}

// Which linear of which layer a record is for: its tensor, layer and name must agree, and
// each (layer, linear) may appear once (seen[] marks them).
static int record_target(const msgpack_object *rec, const bd_model *m, const bd_param_entry *t, int nt, bool *seen,
                         const bd_param_entry **e, int64_t *layer, char *reason, size_t rs) {
    char tensor[32];
    if (bd_obj_strcpy(bd_obj_get(rec, "tensor"), tensor, sizeof tensor) < 0 ||
        bd_obj_int(bd_obj_get(rec, "layer"), layer) < 0) {
        snprintf(reason, rs, "fields \"tensor\" (string) and \"layer\" (int) are required");
        return BD_ERR_SCHEMA;
    }
    *e = NULL;
    for (int i = 0; i < nt; i++)
        if (t[i].is_linear && strcmp(t[i].name, tensor) == 0) *e = &t[i];
    if (!*e || *layer < 0 || *layer >= m->cfg.n_layers) {
        snprintf(reason, rs, "\"%s\" of layer %lld is not a linear layer of this model", tensor, (long long)*layer);
        return BD_ERR_SCHEMA;
    }
    char name[96], want[96];
    snprintf(want, sizeof want, "layers.%lld.%s", (long long)*layer, tensor);
    if (bd_obj_strcpy(bd_obj_get(rec, "name"), name, sizeof name) < 0 || strcmp(name, want) != 0) {
        snprintf(reason, rs, "field \"name\" must be \"%s\" (its tensor and layer)", want);
        return BD_ERR_SCHEMA;
    }
    bool *once = &seen[(size_t)*layer * BD_N_LINEARS + (size_t)bd_linear_parse(tensor)];
    if (*once) {
        snprintf(reason, rs, "a second record for %s", want);
        return BD_ERR_SCHEMA;
    }
    *once = true;
    return BD_OK;
}

// Reads one record's ranges (checked: shape, finite, min <= max) and clips the layer's weights.
static int apply_record(const msgpack_object *rec, bd_model *m, const bd_param_entry *e, int64_t layer,
                        const bd_qspec *q, int64_t hgroup, char *reason, size_t rs) {
    int OC = (int)e->shape[1], C = (int)e->shape[2], G = bd_qspec_group(q, C);
    int hG = hgroup <= 0 || hgroup >= C ? C : (int)hgroup;
    if (hG != G) {
        snprintf(reason, rs, "ranges were searched for group %d, but the quantizer uses group %d", hG, G);
        return BD_ERR_ARG;
    }
    int NG = bd_qspec_ngroups(C, G);
    float *mx = malloc(sizeof(float) * (size_t)OC * NG), *mn = malloc(sizeof(float) * (size_t)OC * NG);
    int rc = mx && mn ? BD_OK : BD_ERR_NOMEM;
    if (rc < 0) snprintf(reason, rs, "out of memory");
    if (rc == BD_OK) rc = read_range(rec, "max", OC, NG, mx, reason, rs);
    if (rc == BD_OK) rc = read_range(rec, "min", OC, NG, mn, reason, rs);
    for (int i = 0; i < OC * NG && rc == BD_OK; i++)
        if (mn[i] > mx[i]) {
            snprintf(reason, rs, "row %d group %d: min %g is above max %g", i / NG, i % NG, mn[i], mx[i]);
            rc = BD_ERR_VALUE;
        }
    float *w = bd_weights_get(&m->w, e->name);
    if (rc == BD_OK && !w) {
        snprintf(reason, rs, "the model's %s weights are mapped from its file, not in memory", e->name);
        rc = BD_ERR_ARG;
    }
    if (rc == BD_OK) bd_clip_apply(w + (size_t)layer * OC * C, OC, C, G, mx, mn);
    free(mx);
    free(mn);
    return rc;
}

int bd_clipfile_apply(const char *path, bd_model *m, const bd_qspec *q, char *why, size_t why_size) {
    int rc;
    char msg[600];
    bd_reader *r = bd_reader_open(path, "bd.clip", &rc, msg, sizeof msg);
    if (!r) {
        snprintf(why, why_size, "\"%s\" %s", path, msg);
        return rc;
    }
    int64_t hgroup = 0;
    if ((rc = check_header(r, path, q, &hgroup, why, why_size)) < 0) {
        bd_reader_close(r);
        return rc;
    }
    bool *seen = calloc((size_t)m->cfg.n_layers * BD_N_LINEARS, sizeof *seen);
    if (!seen) {
        bd_reader_close(r);
        return bd_fail(why, why_size, BD_ERR_NOMEM, "out of memory");
    }
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&m->cfg, t, NULL);
    const msgpack_object *rec;
    char reason[300];
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        const bd_param_entry *e;
        int64_t layer;
        if ((rc = record_target(rec, m, t, nt, seen, &e, &layer, reason, sizeof reason)) < 0) break;
        if ((rc = apply_record(rec, m, e, layer, q, hgroup, reason, sizeof reason)) < 0) break;
    }
    free(seen);
    if (rc == BD_EOF) {
        bd_reader_close(r);
        return BD_OK;
    }
    if (bd_reader_error(r)[0])
        snprintf(why, why_size, "\"%s\" %s", path, bd_reader_error(r));
    else
        snprintf(why, why_size, "\"%s\" record %llu: %s", path, (unsigned long long)bd_reader_record_index(r), reason);
    bd_reader_close(r);
    return rc;
}
