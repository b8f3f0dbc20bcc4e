// Packed models: packing a model's linear layers, and the bd.packed stream.
//
// bd.packed stream: header {"config": as bd.model, "quant": as bd.model (the spec the weights
// were packed with), "formats": [names of the packed formats used], "n_params": int}.
// Records:
//   - every non-linear tensor of bd_param_table (tok_emb, norms, biases, an unquantized wcls)
//     as in bd.model: an f32 tensor map, split along axis 0 with "start" past 1 GiB;
//   - one record per linear layer and layer: a tensor map named "layers.L.NAME" (or "wcls"
//     for a quantized head) with "format": a bd_pk_traits name. Packed formats: dtype u8,
//     shape [OC, row_bytes], plus "cols" (C), "group" (G) and, for tq2, "scale" (D, f32).
//     Format "f32" (a layer the policy leaves in full precision): dtype f32, shape [OC, C].
// Loading checks names, shapes, byte counts against the config and the spec, and every
// block header (bd_pk_validate: finite positive scales, zero points and codes in range).
#include "bd_packed.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_log.h"
#include "bd_model_io.h"
#include "bd_model_io_impl.h"
#include "bd_qmodel.h"

const char *const bd_pk_linear_names[BD_PK_LINEARS] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};

static int linear_index(const char *name) {
    for (int k = 0; k < BD_PK_LINEARS; k++)
        if (strcmp(name, bd_pk_linear_names[k]) == 0) return k;
    return -1;
}

// Shape (OC, C) and f32 weight of linear k in layer l (k == BD_PK_LINEARS: the head).
static float *linear_weight(const bd_model *m, int l, int k, int *OC, int *C) {
    const bd_config *c = &m->cfg;
    int Cm = c->dim, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim, F = c->ffn_dim;
    int shapes[8][2] = {{QD, Cm}, {KD, Cm}, {KD, Cm}, {Cm, QD}, {F, Cm}, {Cm, F}, {F, Cm}, {c->vocab, Cm}};
    float *base[8] = {m->w.wq, m->w.wk, m->w.wv, m->w.wo, m->w.w1, m->w.w2, m->w.w3, m->w.wcls};
    *OC = shapes[k][0];
    *C = shapes[k][1];
    if (k == BD_PK_LINEARS) return base[k];
    return base[k] ? base[k] + (size_t)l * (size_t)*OC * (size_t)*C : NULL;
}

const bd_pk_tensor *bd_pk_model_slot(const bd_model *m, int l, int k) {
    if (!m->packed) return NULL;
    int i = k == BD_PK_LINEARS ? m->packed->n_slots - 1 : l * BD_PK_LINEARS + k;
    const bd_pk_tensor *t = &m->packed->slots[i];
    return t->type == BD_PK_F32 || !t->data ? NULL : t;
}

void bd_pk_model_free(bd_pk_model *p) {
    if (!p) return;
    for (int i = 0; i < p->n_slots; i++) bd_pk_free(&p->slots[i]);
    free(p->slots);
    free(p);
}

static bd_pk_model *model_new(const bd_config *c) {
    bd_pk_model *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_slots = c->n_layers * BD_PK_LINEARS + 1;
    p->slots = calloc((size_t)p->n_slots, sizeof *p->slots);
    if (!p->slots) { free(p); return NULL; }
    return p;
}

int bd_pk_model_pack(bd_model *m, char *why, size_t ws) {
    if (m->quant.kind == BD_Q_NONE) return bd_fail(why, ws, BD_ERR_ARG, "the model has no quantization spec to pack with");
    if (bd_pk_type_for(&m->quant) < 0) return bd_fail(why, ws, BD_ERR_ARG, "no packed format for %s %d-bit", bd_qkind_name(m->quant.kind), m->quant.bits);
    int rc = bd_qpolicy_check(&m->qpolicy, &m->quant, &m->cfg, why, ws);
    if (rc < 0) return rc;
    bd_pk_model *p = model_new(&m->cfg);
    if (!p) return BD_ERR_NOMEM;
    for (int l = 0; l <= m->cfg.n_layers; l++)
        for (int k = 0; k < BD_PK_LINEARS; k++) {
            bool head = l == m->cfg.n_layers;
            if (head && k > 0) break;
            int kk = head ? BD_PK_LINEARS : k, OC, C;
            float *w = linear_weight(m, l, kk, &OC, &C);
            bd_pk_tensor *t = &p->slots[head ? p->n_slots - 1 : l * BD_PK_LINEARS + k];
            if (!bd_qpolicy_covers(&m->qpolicy, head ? "wcls" : bd_pk_linear_names[k], head ? -1 : l)) {
                t->type = BD_PK_F32;  // stays in m->params
                t->rows = OC;
                t->cols = C;
                continue;
            }
            if ((rc = bd_pk_pack(t, w, OC, C, &m->quant)) < 0) {
                bd_pk_model_free(p);
                return bd_fail(why, ws, rc, "%s of layer %d: %s", head ? "wcls" : bd_pk_linear_names[k], l,
                                  rc == BD_ERR_VALUE ? "NaN or infinite weight" : "cannot be packed");
            }
        }
    bd_pk_model_free(m->packed);
    m->packed = p;
    return BD_OK;
}

size_t bd_pk_model_bytes(const bd_model *m) {
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&m->cfg, t, NULL);
    size_t bytes = 0;
    for (int i = 0; i < nt; i++)
        if (!t[i].is_linear && !(m->packed && strcmp(t[i].name, "wcls") == 0 && bd_pk_model_slot(m, 0, BD_PK_LINEARS)))
            bytes += t[i].numel * 4;
    for (int l = 0; l <= m->cfg.n_layers; l++)
        for (int k = 0; k < BD_PK_LINEARS; k++) {
            bool head = l == m->cfg.n_layers;
            if (head && k > 0) break;
            int OC, C;
            linear_weight(m, l, head ? BD_PK_LINEARS : k, &OC, &C);
            const bd_pk_tensor *p = bd_pk_model_slot(m, l, head ? BD_PK_LINEARS : k);
            if (p) bytes += p->row_bytes * (size_t)p->rows;
            else if (!head) bytes += (size_t)OC * (size_t)C * 4;
        }
    return bytes;
}

// ---- writing ----------------------------------------------------------------------------------------

static void pack_tensor_head(msgpack_packer *pk, int extra, const char *name, bd_dtype dt, int64_t d0, int64_t d1, int ndim) {
    msgpack_pack_map(pk, (size_t)(4 + extra));
    bd_pack_kv_str(pk, "name", name);
    bd_pack_kv_str(pk, "dtype", bd_dtype_name(dt));
    bd_pack_str(pk, "shape");
    msgpack_pack_array(pk, (size_t)ndim);
    msgpack_pack_int64(pk, d0);
    if (ndim > 1) msgpack_pack_int64(pk, d1);
}

static void pack_data(msgpack_packer *pk, const void *p, size_t n) {
    bd_pack_str(pk, "data");
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

int bd_pk_model_save(const bd_model *m, const char *path, const bd_producer *prod, char *why, size_t ws) {
    if (!m->packed) return bd_fail(why, ws, BD_ERR_ARG, "%s: the model is not packed", path);
    int rc;
    bd_writer *w = bd_writer_open(path, 0, &rc);
    if (!w) return bd_fail(why, ws, rc, "%s: cannot create: %s", path, strerror(errno));
    if ((rc = bd_writer_begin_header(w, "bd.packed", prod, 4)) < 0) goto fail;
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_str(pk, "config");
    bd_io_pack_config(pk, &m->cfg);
    bd_pack_str(pk, "quant");
    bd_io_pack_quant(pk, &m->quant, &m->qpolicy);
    bd_pack_str(pk, "formats");
    int type = bd_pk_type_for(&m->quant);
    msgpack_pack_array(pk, 1);
    bd_pack_str(pk, bd_pk_traits_table[type < 0 ? 0 : type].name);
    size_t total;
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&m->cfg, t, &total);
    bd_pack_kv_int(pk, "n_params", (int64_t)total);
    if ((rc = bd_writer_end_object(w)) < 0) goto fail;
    bool head_packed = bd_pk_model_slot(m, 0, BD_PK_LINEARS) != NULL;
    for (int i = 0; i < nt; i++) {  // non-linear tensors, as bd.model records
        if (t[i].is_linear || (head_packed && strcmp(t[i].name, "wcls") == 0)) continue;
        if ((rc = bd_io_check_finite(m->params + t[i].offset, t[i].numel, path, t[i].name, why, ws)) < 0) goto fail_msg;
        size_t row = t[i].numel / (size_t)t[i].shape[0], rows_per = BD_MODEL_RECORD_BYTES / (row * 4);
        if (rows_per == 0) rows_per = 1;
        bool sliced = rows_per < (size_t)t[i].shape[0];
        for (size_t r0 = 0; r0 < (size_t)t[i].shape[0]; r0 += rows_per) {
            size_t nr = (size_t)t[i].shape[0] - r0 < rows_per ? (size_t)t[i].shape[0] - r0 : rows_per;
            pack_tensor_head(pk, sliced, t[i].name, BD_F32, (int64_t)nr, t[i].shape[1], t[i].ndim);
            pack_data(pk, m->params + t[i].offset + r0 * row, nr * row * 4);
            if (sliced) bd_pack_kv_int(pk, "start", (int64_t)r0);
            if ((rc = bd_writer_end_object(w)) < 0) goto fail;
        }
    }
    for (int l = 0; l <= m->cfg.n_layers; l++)
        for (int k = 0; k < BD_PK_LINEARS; k++) {
            bool head = l == m->cfg.n_layers;
            if (head && (k > 0 || !head_packed)) break;
            int kk = head ? BD_PK_LINEARS : k, OC, C;
            const float *wf = linear_weight(m, l, kk, &OC, &C);
            const bd_pk_tensor *p = bd_pk_model_slot(m, l, kk);
            char name[64];
            if (head) snprintf(name, sizeof name, "wcls");
            else snprintf(name, sizeof name, "layers.%d.%s", l, bd_pk_linear_names[k]);
            if (!p) {
                if ((rc = bd_io_check_finite(wf, (size_t)OC * C, path, name, why, ws)) < 0) goto fail_msg;
                pack_tensor_head(pk, 1, name, BD_F32, OC, C, 2);
                pack_data(pk, wf, (size_t)OC * C * 4);
                bd_pack_kv_str(pk, "format", "f32");
            } else {
                if (p->row_bytes * (size_t)p->rows > BD_MODEL_RECORD_BYTES) {
                    rc = bd_fail(why, ws, BD_ERR_ARG, "%s: %s: %zu packed bytes exceed the record limit", path, name, p->row_bytes * (size_t)p->rows);
                    goto fail_msg;
                }
                pack_tensor_head(pk, p->type == BD_PK_TQ2 ? 4 : 3, name, BD_U8, p->rows, (int64_t)p->row_bytes, 2);
                pack_data(pk, p->data, p->row_bytes * (size_t)p->rows);
                bd_pack_kv_str(pk, "format", bd_pk_traits_table[p->type].name);
                bd_pack_kv_int(pk, "cols", p->cols);
                bd_pack_kv_int(pk, "group", p->group);
                if (p->type == BD_PK_TQ2) {
                    bd_pack_str(pk, "scale");
                    msgpack_pack_float(pk, p->scale);
                }
            }
            if ((rc = bd_writer_end_object(w)) < 0) goto fail;
        }
    if ((rc = bd_writer_close(w)) < 0) return bd_fail(why, ws, rc, "%s: write failed: %s", path, strerror(errno));
    return BD_OK;
fail:
    bd_fail(why, ws, rc, "%s: write failed: %s", path, rc == BD_ERR_IO ? strerror(errno) : bd_strerror(rc));
fail_msg:
    bd_writer_abort(w);
    return rc;
}

// ---- reading ----------------------------------------------------------------------------------------

// "layers.L.NAME" -> (L, k); "wcls" -> (-1, 7). -1 if not a linear record name.
static int parse_linear_name(const char *name, int L, int *layer, int *k) {
    if (strcmp(name, "wcls") == 0) { *layer = -1; *k = BD_PK_LINEARS; return 0; }
    int l, pos = 0;
    char nm[16];
    if (sscanf(name, "layers.%d.%15[a-z0-9]%n", &l, nm, &pos) != 2 || name[pos] != 0 || l < 0 || l >= L) return -1;
    if ((*k = linear_index(nm)) < 0) return -1;
    *layer = l;
    return 0;
}

int bd_pk_model_load(const char *path, bd_model *m, char *why, size_t ws) {
    memset(m, 0, sizeof *m);
    int rc;
    char msg[600];
    bd_reader *r = bd_reader_open(path, "bd.packed", &rc, msg, sizeof msg);
    if (!r) return bd_fail(why, ws, rc, "%s: %s", path, msg);
    bd_config cfg;
    size_t *filled = NULL;
    bool *seen = NULL;
    if ((rc = bd_io_parse_config(bd_reader_header(r), &cfg, path, why, ws)) < 0) goto out;
    // calloc'd: the f32 storage of packed linears is never written, so it is never mapped.
    if ((rc = bd_model_alloc(m, &cfg)) < 0) { bd_fail(why, ws, rc, "%s: cannot allocate the model", path); goto out; }
    if ((rc = bd_io_parse_quant(bd_reader_header(r), &m->quant, &m->qpolicy, path, why, ws)) < 0) goto out;
    int want_type = bd_pk_type_for(&m->quant);
    if (m->quant.kind == BD_Q_NONE || want_type < 0) {
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: \"quant\" must name a quantizer with a packed format", path);
        goto out;
    }
    char cwhy[300];
    if (bd_qpolicy_check(&m->qpolicy, &m->quant, &cfg, cwhy, sizeof cwhy) < 0) {
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: quant: %s", path, cwhy);
        goto out;
    }
    if (!(m->packed = model_new(&cfg))) { rc = BD_ERR_NOMEM; goto out; }
    bd_pk_model *pm = m->packed;
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&cfg, t, NULL);
    filled = calloc(BD_MAX_PARAMS, sizeof *filled);
    seen = calloc((size_t)pm->n_slots, sizeof *seen);
    if (!filled || !seen) { rc = BD_ERR_NOMEM; goto out; }
    bool head_packed = m->qpolicy.include_head && bd_qpolicy_covers(&m->qpolicy, "wcls", -1);
    const msgpack_object *rec;
    char tw[300], name[64];
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        unsigned long long ri = (unsigned long long)bd_reader_record_index(r);
        bd_tensor_view v;
        if ((rc = bd_obj_tensor(rec, &v, tw, sizeof tw)) < 0) { bd_fail(why, ws, rc, "%s: record %llu: %s", path, ri, tw); goto out; }
        snprintf(name, sizeof name, "%.*s", (int)(v.name_len < 60 ? v.name_len : 60), v.name ? v.name : "");
        const msgpack_object *fo = bd_obj_get(rec, "format");
        int layer, k;
        if (fo || (strcmp(name, "wcls") != 0 && parse_linear_name(name, cfg.n_layers, &layer, &k) == 0)) {
            // A linear layer.
            char fmt[16];
            int type;
            if (parse_linear_name(name, cfg.n_layers, &layer, &k) < 0 || (k == BD_PK_LINEARS && !head_packed)) {
                rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: \"%s\" is not a packed linear layer of this model", path, ri, name);
                goto out;
            }
            if (!fo || bd_obj_strcpy(fo, fmt, sizeof fmt) < 0 || (type = bd_pk_type_parse(fmt)) < 0) {
                rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: \"format\" missing or unknown", path, ri, name);
                goto out;
            }
            int slot = k == BD_PK_LINEARS ? pm->n_slots - 1 : layer * BD_PK_LINEARS + k;
            if (seen[slot]) { rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s appears twice", path, ri, name); goto out; }
            seen[slot] = true;
            int OC, C;
            float *wf = linear_weight(m, layer < 0 ? 0 : layer, k, &OC, &C);
            bool covered = bd_qpolicy_covers(&m->qpolicy, k == BD_PK_LINEARS ? "wcls" : bd_pk_linear_names[k], layer);
            int expect = covered ? want_type : BD_PK_F32;
            if (type != expect) {
                rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s has format %s, the header's quant implies %s", path, ri, name,
                                fmt, bd_pk_traits_table[expect].name);
                goto out;
            }
            bd_pk_tensor *pt = &pm->slots[slot];
            if (type == BD_PK_F32) {
                if (v.dtype != BD_F32 || v.ndim != 2 || v.shape[0] != OC || v.shape[1] != C) {
                    rc = bd_fail(why, ws, BD_ERR_SHAPE, "%s: record %llu: tensor %s must be f32 [%d, %d]", path, ri, name, OC, C);
                    goto out;
                }
                memcpy(wf, v.data, v.nbytes);
                if ((rc = bd_io_check_finite(wf, (size_t)OC * C, path, name, why, ws)) < 0) goto out;
                pt->type = BD_PK_F32;
                pt->rows = OC;
                pt->cols = C;
                continue;
            }
            int64_t cols, group;
            if (bd_obj_int(bd_obj_get(rec, "cols"), &cols) < 0 || bd_obj_int(bd_obj_get(rec, "group"), &group) < 0) {
                rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: \"cols\" or \"group\" missing", path, ri, name);
                goto out;
            }
            int G = bd_qspec_group(&m->quant, C);
            if (type == BD_PK_TQ2) G = C;
            if (cols != C || group != G) {
                rc = bd_fail(why, ws, BD_ERR_SHAPE, "%s: record %llu: tensor %s: %lld columns in groups of %lld, expected %d in groups of %d",
                                path, ri, name, (long long)cols, (long long)group, C, G);
                goto out;
            }
            if ((rc = bd_pk_geometry(pt, (bd_pk_type)type, OC, C, G)) < 0) goto out;
            if (v.dtype != BD_U8 || v.ndim != 2 || v.shape[0] != OC || (size_t)v.shape[1] != pt->row_bytes) {
                rc = bd_fail(why, ws, BD_ERR_SHAPE, "%s: record %llu: tensor %s: expected u8 [%d, %zu] (%d rows of %d blocks of %zu bytes)", path, ri,
                                name, OC, pt->row_bytes, OC, pt->ngroups, pt->block_bytes);
                goto out;
            }
            if (type == BD_PK_TQ2) {
                double d;
                if (bd_obj_num(bd_obj_get(rec, "scale"), &d) < 0) {
                    rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: tq2 needs \"scale\"", path, ri, name);
                    goto out;
                }
                pt->scale = (float)d;
            }
            if ((rc = bd_pk_alloc(pt)) < 0) goto out;
            memcpy(pt->data, v.data, v.nbytes);
            char vwhy[200];
            if (bd_pk_validate(pt, vwhy, sizeof vwhy) < 0) {
                rc = bd_fail(why, ws, BD_ERR_VALUE, "%s: record %llu: tensor %s (%s): %s", path, ri, name, fmt, vwhy);
                goto out;
            }
            continue;
        }
        // A non-linear tensor, as in bd.model.
        const bd_param_entry *e = bd_io_entry(t, nt, name);
        if (!e || e->is_linear || (head_packed && strcmp(name, "wcls") == 0)) {
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: unexpected tensor \"%s\"", path, ri, name);
            goto out;
        }
        size_t ki = (size_t)(e - t);
        int64_t start = 0;
        const msgpack_object *so = bd_obj_get(rec, "start");
        if (so && (bd_obj_int(so, &start) < 0 || start < 0)) { rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: bad \"start\"", path, ri, name); goto out; }
        if ((size_t)start != filled[ki] || filled[ki] == (size_t)e->shape[0]) {
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: %s", path, ri, name, filled[ki] == (size_t)e->shape[0] ? "appears twice" : "slice out of order");
            goto out;
        }
        bool ok = v.dtype == BD_F32 && v.ndim == e->ndim && v.shape[0] >= 1 && (uint64_t)start + (uint64_t)v.shape[0] <= (uint64_t)e->shape[0];
        for (int d = 1; ok && d < e->ndim; d++) ok = v.shape[d] == e->shape[d];
        if (!ok) { rc = bd_fail(why, ws, BD_ERR_SHAPE, "%s: record %llu: tensor %s: dtype or shape disagrees with the config", path, ri, name); goto out; }
        size_t row = e->numel / (size_t)e->shape[0];
        float *dst = m->params + e->offset + (size_t)start * row;
        memcpy(dst, v.data, v.nbytes);
        if ((rc = bd_io_check_finite(dst, (size_t)v.numel, path, name, why, ws)) < 0) goto out;
        filled[ki] += (size_t)v.shape[0];
    }
    if (rc != BD_EOF) { bd_fail(why, ws, rc, "%s: %s", path, bd_reader_error(r)); goto out; }
    rc = BD_OK;
    for (int i = 0; i < nt && rc == BD_OK; i++)
        if (!t[i].is_linear && !(head_packed && strcmp(t[i].name, "wcls") == 0) && filled[i] != (size_t)t[i].shape[0])
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: tensor %s is %s", path, t[i].name, filled[i] ? "incomplete" : "missing");
    for (int s = 0; s < pm->n_slots && rc == BD_OK; s++) {
        bool head = s == pm->n_slots - 1;
        if (seen[s] || (head && !head_packed)) continue;
        if (head) rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: tensor wcls is missing", path);
        else rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: tensor layers.%d.%s is missing", path, s / BD_PK_LINEARS, bd_pk_linear_names[s % BD_PK_LINEARS]);
    }
out:
    if (rc < 0) bd_model_free(m);
    free(filled);
    free(seen);
    bd_reader_close(r);
    return rc;
}
