// Packed models: packing a model's linear layers, and the bd.packed stream.
//
// bd.packed stream: header {"config": as bd.model, "quant": as bd.model (the spec the weights
// were packed with; "act_bits": 8 makes the kernels quantize activations to int8 by default),
// "formats": [names of the packed formats used], "head_format": "q8" | "q6" (a head
// quantized after training, bd_pk_model_pack_head; absent, as in older files, for an f32 head), "n_params": int}.
// A SubLN model's sub-norm weights are f32 records like the other norms.
// Records:
//   - every non-linear tensor of bd_param_table (tok_emb, norms, biases, an unquantized wcls)
//     as in bd.model: an f32 tensor map, split along axis 0 with "start" past 1 GiB; a tied
//     model with a head_format other than f32 has no tok_emb record (its embedding is the head);
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

#include "bd_hugemem.h"
#include "bd_model_io.h"
#include "bd_model_io_impl.h"
#include "bd_qmodel.h"

const char *const bd_pk_linear_names[BD_N_LINEARS] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};

static int linear_index(const char *name) {
    for (int k = 0; k < BD_N_LINEARS; k++)
        if (strcmp(name, bd_pk_linear_names[k]) == 0) return k;
    return -1;
}

// Shape (OC, C) and f32 weight of linear k in layer l (k == BD_HEAD: the head).
static float *linear_weight(const bd_model *m, int l, bd_linear k, int *OC, int *C) {
    const bd_config *c = &m->cfg;
    int Cm = c->dim, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim, F = c->ffn_dim;
    int shapes[BD_N_LINEARS + 1][2] = {
            [BD_WQ] = {QD, Cm}, [BD_WK] = {KD, Cm}, [BD_WV] = {KD, Cm}, [BD_WO] = {Cm, QD},
            [BD_W1] = {F, Cm},  [BD_W2] = {Cm, F},  [BD_W3] = {F, Cm},  [BD_HEAD] = {c->vocab, Cm}};
    float *base[BD_N_LINEARS + 1] = {[BD_WQ] = m->w.wq, [BD_WK] = m->w.wk, [BD_WV] = m->w.wv, [BD_WO] = m->w.wo,
                                     [BD_W1] = m->w.w1, [BD_W2] = m->w.w2, [BD_W3] = m->w.w3, [BD_HEAD] = m->w.wcls};
    *OC = shapes[k][0];
    *C = shapes[k][1];
    if (k == BD_HEAD) return base[k];
    return base[k] ? base[k] + (size_t)l * (size_t)*OC * (size_t)*C : NULL;
}

// Slots: linear k of layer l at l * BD_N_LINEARS + k, the head last (its layer: n_layers).
// A mapped model's unquantized rows (bd_model_load_mapped): bf16/f16, or f32 in the file or
// copied from it (an f32 slot with no data is the model's own f32 weight). A bd.packed stream
// stores such a layer as an f32 record.
static bool frozen_rows(const bd_pk_tensor *t) {
    return t->type == BD_PK_BF16 || t->type == BD_PK_F16 || (t->type == BD_PK_F32 && t->data);
}

static int slot_index(int n_slots, int l, bd_linear k) {
    return k == BD_HEAD ? n_slots - 1 : l * BD_N_LINEARS + (int)k;
}
static bd_linear slot_linear(int n_slots, int s, int *l) {
    *l = s / BD_N_LINEARS;
    return s == n_slots - 1 ? BD_HEAD : (bd_linear)(s % BD_N_LINEARS);
}
static const char *linear_name(bd_linear k) { return k == BD_HEAD ? "wcls" : bd_pk_linear_names[k]; }

const bd_pk_tensor *bd_pk_model_slot(const bd_model *m, int l, bd_linear k) {
    if (!m->packed) return NULL;
    const bd_pk_tensor *t = &m->packed->slots[slot_index(m->packed->n_slots, l, k)];
    return t->data ? t : NULL;  // no data: the f32 weight in m->w
}

const float *bd_pk_model_linear_f32(const bd_model *m, int l, bd_linear k, float *buf) {
    int OC, C;
    const float *w = linear_weight(m, l, k, &OC, &C);
    if (w) return w;
    const bd_pk_tensor *t = bd_pk_model_slot(m, l, k);
    if (!t) return NULL;
    for (int r = 0; r < OC; r++) bd_pk_dequantize_row(t, r, buf + (size_t)r * C);
    return buf;
}

const bd_pk_tensor *bd_pk_model_embedding(const bd_model *m) {
    if (!m->packed || !m->cfg.tied_embeddings || m->packed->head_format == BD_PK_F32) return NULL;
    return bd_pk_model_slot(m, 0, BD_HEAD);
}

// Whether the f32 tensor NAME of the parameter table has no record of its own in a bd.packed
// stream: linear layers, a packed head, and a tied model's embedding when the head is packed.
static bool not_f32_record(const bd_param_entry *e, bool head_packed, bool emb_packed) {
    return e->is_linear || (head_packed && strcmp(e->name, "wcls") == 0) ||
           (emb_packed && strcmp(e->name, "tok_emb") == 0);
}

void bd_pk_model_free(bd_pk_model *p) {
    if (!p) return;
    for (int i = 0; i < p->n_slots; i++) bd_pk_free(&p->slots[i]);
    free(p->slots);
    free(p);
}

bd_pk_model *bd_pk_model_new(const bd_config *c) {
    bd_pk_model *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_slots = c->n_layers * BD_N_LINEARS + 1;
    p->slots = calloc((size_t)p->n_slots, sizeof *p->slots);
    if (!p->slots) {
        free(p);
        return NULL;
    }
    return p;
}

int bd_pk_model_pack(bd_model *m, char *why, size_t ws) {
    if (m->quant.kind == BD_Q_NONE)
        return bd_fail(why, ws, BD_ERR_ARG, "the model has no quantization spec to pack with");
    if (bd_pk_type_for(&m->quant) < 0)
        return bd_fail(why, ws, BD_ERR_ARG, "no packed format for %s %d-bit", bd_qkind_name(m->quant.kind),
                       m->quant.bits);
    int rc = bd_qpolicy_check(&m->qpolicy, &m->quant, &m->cfg, why, ws);
    if (rc < 0) return rc;
    bd_pk_model *p = bd_pk_model_new(&m->cfg);
    if (!p) return bd_fail(why, ws, BD_ERR_NOMEM, "no memory for the packed model");
    for (int s = 0; s < p->n_slots; s++) {
        int l, OC, C;
        bd_linear k = slot_linear(p->n_slots, s, &l);
        float *w = linear_weight(m, l, k, &OC, &C), *rows = NULL;
        bd_pk_tensor *t = &p->slots[s], *mapped = m->packed ? &m->packed->slots[s] : NULL;
        if (!bd_qpolicy_covers(&m->qpolicy, linear_name(k), k == BD_HEAD ? -1 : l)) {
            if (!w && mapped) {  // a mapped model's layer left unquantized: keep borrowing its rows
                *t = *mapped;
                mapped->borrowed = true;  // (owned copies move to t)
                continue;
            }
            t->type = BD_PK_F32;  // stays in m->params
            t->rows = OC;
            t->cols = C;
            continue;
        }
        if (!w) {  // a mapped model: one matrix widened to f32 at a time
            if (!(rows = malloc(sizeof(float) * (size_t)OC * C))) {
                bd_pk_model_free(p);
                return bd_fail(why, ws, BD_ERR_NOMEM, "%s of layer %d: out of memory", linear_name(k), l);
            }
            w = (float *)bd_pk_model_linear_f32(m, l, k, rows);
        }
        rc = w ? bd_pk_pack(t, w, OC, C, &m->quant, NULL, 0) : BD_ERR_ARG;
        free(rows);
        if (rc < 0) {
            bd_pk_model_free(p);
            return bd_fail(why, ws, rc, "%s of layer %d: %s", linear_name(k), l,
                           rc == BD_ERR_VALUE ? "NaN or infinite weight" : "cannot be packed");
        }
    }
    p->act_int8 = m->qpolicy.act_bits == 8;
    bd_pk_model_free(m->packed);
    m->packed = p;
    return BD_OK;
}

int bd_pk_model_unpack(bd_model *m) {
    if (!m->packed) return BD_OK;
    if (!m->w.wq) {  // loaded without f32 storage for its linears (bd_model_alloc_frozen): give it some
        bd_model full;
        if (bd_model_alloc(&full, &m->cfg) < 0) return BD_ERR_NOMEM;
        bd_param_entry t[BD_MAX_PARAMS];
        int nt = bd_param_table(&m->cfg, t, NULL);
        for (int i = 0; i < nt; i++) {
            const float *src = bd_weights_get(&m->w, t[i].name);
            if (src) memcpy(bd_weights_get(&full.w, t[i].name), src, t[i].numel * sizeof(float));
        }
        full.quant = m->quant, full.qpolicy = m->qpolicy, full.packed = m->packed, full.mapping = m->mapping;
        memcpy(full.tok_path, m->tok_path, sizeof full.tok_path);
        memcpy(full.tok_id, m->tok_id, sizeof full.tok_id);
        bd_huge_free(m->params);
        *m = full;
    }
    bd_pk_model *p = m->packed;
    for (int s = 0; s < p->n_slots; s++) {
        int l, OC, C;
        bd_linear k = slot_linear(p->n_slots, s, &l);
        const bd_pk_tensor *t = bd_pk_model_slot(m, l, k);
        float *w = linear_weight(m, l, k, &OC, &C);
        if (!t || !w) continue;  // an f32 layer: already in m->params
        for (int r = 0; r < OC; r++) bd_pk_dequantize_row(t, r, w + (size_t)r * C);
    }
    bd_pk_model_free(p);
    m->packed = NULL;
    m->quant = (bd_qspec){BD_Q_NONE, 0, 0};
    m->qpolicy = (bd_qpolicy){0};
    return BD_OK;
}

int bd_pk_model_pack_head(bd_model *m, bd_pk_type type, char *why, size_t ws) {
    if (!m->packed) return bd_fail(why, ws, BD_ERR_ARG, "the model is not packed");
    if (type != BD_PK_F32 && type != BD_PK_Q8 && type != BD_PK_Q6)
        return bd_fail(why, ws, BD_ERR_ARG, "%s is not a head format (f32, q8, q6)",
                       (unsigned)type < BD_PK_COUNT ? bd_pk_traits_table[type].name : "?");
    bd_pk_model *p = m->packed;
    if (p->head_format == type) return BD_OK;
    if (p->head_format != BD_PK_F32)
        return bd_fail(why, ws, BD_ERR_ARG, "the head is already stored as %s",
                       bd_pk_traits_table[p->head_format].name);
    if (bd_pk_model_slot(m, 0, BD_HEAD))
        return bd_fail(why, ws, BD_ERR_ARG,
                       "the head is already quantized by the model's spec (%s %d-bit, --quant-head)",
                       bd_qkind_name(m->quant.kind), m->quant.bits);
    if (type == BD_PK_F32) return BD_OK;
    int OC, C, rc;
    const float *w = linear_weight(m, 0, BD_HEAD, &OC, &C);
    bd_qspec q = bd_pk_head_spec(type);
    bd_pk_tensor t;
    char pwhy[200];
    if ((rc = bd_pk_pack_as(&t, type, w, OC, C, &q, pwhy, sizeof pwhy)) < 0)
        return bd_fail(why, ws, rc, "the head (%s): %s", m->cfg.tied_embeddings ? "tok_emb, tied" : "wcls", pwhy);
    p->slots[slot_index(p->n_slots, 0, BD_HEAD)] = t;
    p->head_format = type;
    return BD_OK;
}

size_t bd_pk_model_scratch_bytes(const bd_model *m, int N) {
    size_t most = 0;
    for (int s = 0; m->packed && s < m->packed->n_slots; s++) {
        const bd_pk_tensor *t = &m->packed->slots[s];
        if (!t->data) continue;  // the f32 weight in m->w
        int l;
        size_t b = bd_pk_matmul_scratch_bytes(t, N,
                                              bd_pk_model_act_int8(m->packed, slot_linear(m->packed->n_slots, s, &l)));
        if (b > most) most = b;
    }
    return most;
}

size_t bd_pk_plan_bytes(const bd_config *c, const bd_qspec *q, const bd_qpolicy *pol, bd_pk_type head_format, int N,
                        size_t *scratch, size_t *packed) {
    bd_model m = {.cfg = *c};  // no weights: linear_weight gives the shapes only
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(c, t, NULL), n_slots = c->n_layers * BD_N_LINEARS + 1, type = bd_pk_type_for(q);
    bool head_packed = bd_qpolicy_covers(pol, "wcls", -1) || head_format != BD_PK_F32;
    bool emb_packed = head_format != BD_PK_F32 && c->tied_embeddings;
    size_t bytes = 0, most = 0, pk = 0;
    for (int i = 0; i < nt; i++)
        if (!not_f32_record(&t[i], head_packed, emb_packed)) bytes += t[i].numel * 4;
    for (int s = 0; s < n_slots; s++) {  // as bd_pk_model_pack, then bd_pk_model_pack_head
        int l, OC, C;
        bd_linear k = slot_linear(n_slots, s, &l);
        linear_weight(&m, l, k, &OC, &C);
        bool covered = type > BD_PK_F32 && bd_qpolicy_covers(pol, linear_name(k), k == BD_HEAD ? -1 : l);
        bd_qspec hq = bd_pk_head_spec(head_format);
        bd_pk_tensor g;
        if ((covered && bd_pk_geometry(&g, (bd_pk_type)type, OC, C, bd_qspec_group(q, C)) == BD_OK) ||
            (!covered && k == BD_HEAD && head_format != BD_PK_F32 &&
             bd_pk_geometry(&g, head_format, OC, C, bd_qspec_group(&hq, C)) == BD_OK)) {
            pk += g.row_bytes * (size_t)g.rows;
        } else {
            if (k != BD_HEAD) bytes += (size_t)OC * (size_t)C * 4;
            continue;
        }
        bool act_int8 = pol->act_bits == 8 && !(k == BD_HEAD && head_format != BD_PK_F32);
        size_t b = bd_pk_matmul_scratch_bytes(&g, N, act_int8);
        if (b > most) most = b;
    }
    if (scratch) *scratch = most;
    if (packed) *packed = pk;
    return bytes + pk;
}

size_t bd_pk_model_bytes(const bd_model *m) {
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&m->cfg, t, NULL), n_slots = m->cfg.n_layers * BD_N_LINEARS + 1;
    size_t bytes = 0;
    bool head_packed = bd_pk_model_slot(m, 0, BD_HEAD) != NULL, emb_packed = bd_pk_model_embedding(m) != NULL;
    for (int i = 0; i < nt; i++)
        if (!not_f32_record(&t[i], head_packed, emb_packed)) bytes += t[i].numel * 4;
    for (int s = 0; s < n_slots; s++) {
        int l, OC, C;
        bd_linear k = slot_linear(n_slots, s, &l);
        linear_weight(m, l, k, &OC, &C);
        const bd_pk_tensor *p = bd_pk_model_slot(m, l, k);
        if (p)
            bytes += p->row_bytes * (size_t)p->rows;
        else if (k != BD_HEAD)
            bytes += (size_t)OC * (size_t)C * 4;
    }
    return bytes;
}

// ---- writing ----------------------------------------------------------------------------------------

static void pack_tensor_head(msgpack_packer *pk, int extra, const char *name, bd_dtype dt, int64_t d0, int64_t d1,
                             int ndim) {
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

static int write_failed(int rc, const char *path, char *why, size_t ws) {
    return bd_fail(why, ws, rc, "%s: write failed: %s", path, rc == BD_ERR_IO ? strerror(errno) : bd_strerror(rc));
}

// The tensors that are not linear layers (nor a packed head, nor the embedding a packed tied
// head serves): f32 records as in bd.model.
static int write_tensors(bd_writer *w, const bd_model *m, bool head_packed, const char *path, char *why, size_t ws) {
    msgpack_packer *pk = bd_writer_packer(w);
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(&m->cfg, t, NULL), rc;
    bool emb_packed = bd_pk_model_embedding(m) != NULL;
    for (int i = 0; i < nt; i++) {
        if (not_f32_record(&t[i], head_packed, emb_packed)) continue;
        const float *src = bd_weights_get(&m->w, t[i].name);
        if ((rc = bd_io_check_finite(src, t[i].numel, path, t[i].name, why, ws)) < 0) return rc;
        size_t row = t[i].numel / (size_t)t[i].shape[0], rows_per = BD_MODEL_SLICE_BYTES / (row * 4);
        if (rows_per == 0) rows_per = 1;
        bool sliced = rows_per < (size_t)t[i].shape[0];
        for (size_t r0 = 0; r0 < (size_t)t[i].shape[0]; r0 += rows_per) {
            size_t nr = (size_t)t[i].shape[0] - r0 < rows_per ? (size_t)t[i].shape[0] - r0 : rows_per;
            pack_tensor_head(pk, sliced, t[i].name, BD_F32, (int64_t)nr, t[i].shape[1], t[i].ndim);
            pack_data(pk, src + r0 * row, nr * row * 4);
            if (sliced) bd_pack_kv_int(pk, "start", (int64_t)r0);
            if ((rc = bd_writer_end_object(w)) < 0) return write_failed(rc, path, why, ws);
        }
    }
    return BD_OK;
}

// Linear k of layer l: its packed blocks, or its f32 weight (format "f32").
static int write_linear(bd_writer *w, const bd_model *m, int l, bd_linear k, const char *path, char *why, size_t ws) {
    msgpack_packer *pk = bd_writer_packer(w);
    int OC, C, rc;
    const float *wf = linear_weight(m, l, k, &OC, &C);
    const bd_pk_tensor *p = bd_pk_model_slot(m, l, k);
    char name[64];
    if (k == BD_HEAD)
        snprintf(name, sizeof name, "wcls");
    else
        snprintf(name, sizeof name, "layers.%d.%s", l, bd_pk_linear_names[k]);
    if (!p || frozen_rows(p)) {  // an f32 layer; a mapped model's unquantized rows are one too
        float *rows = NULL;
        if (p) {
            if (!(rows = malloc(sizeof(float) * (size_t)OC * C)))
                return bd_fail(why, ws, BD_ERR_NOMEM, "%s: out of memory for %s", path, name);
            for (int r = 0; r < OC; r++) bd_pk_dequantize_row(p, r, rows + (size_t)r * C);
            wf = rows;
        }
        rc = bd_io_check_finite(wf, (size_t)OC * C, path, name, why, ws);
        if (rc == BD_OK) {
            pack_tensor_head(pk, 1, name, BD_F32, OC, C, 2);
            pack_data(pk, wf, (size_t)OC * C * 4);
            bd_pack_kv_str(pk, "format", "f32");
        }
        free(rows);
        if (rc < 0) return rc;
    } else {
        const bd_pk_traits *tr = &bd_pk_traits_table[p->type];
        size_t bytes = p->row_bytes * (size_t)p->rows;
        if (bytes > BD_MODEL_RECORD_BYTES)
            return bd_fail(why, ws, BD_ERR_ARG, "%s: %s: %zu packed bytes exceed the record limit", path, name, bytes);
        pack_tensor_head(pk, tr->tensor_scale ? 4 : 3, name, BD_U8, p->rows, (int64_t)p->row_bytes, 2);
        pack_data(pk, p->data, bytes);
        bd_pack_kv_str(pk, "format", tr->name);
        bd_pack_kv_int(pk, "cols", p->cols);
        bd_pack_kv_int(pk, "group", p->group);
        if (tr->tensor_scale) {
            bd_pack_str(pk, "scale");
            msgpack_pack_float(pk, p->scale);
        }
    }
    if ((rc = bd_writer_end_object(w)) < 0) return write_failed(rc, path, why, ws);
    return BD_OK;
}

int bd_pk_model_save(const bd_model *m, const char *path, const bd_producer *prod, char *why, size_t ws) {
    if (!m->packed) return bd_fail(why, ws, BD_ERR_ARG, "%s: the model is not packed", path);
    int rc;
    bd_writer *w = bd_writer_open(path, 0, &rc);
    if (!w) return bd_fail(why, ws, rc, "%s: cannot create: %s", path, strerror(errno));
    int hf = m->packed->head_format;  // "head_format" only when not f32: such files are the older format
    if ((rc = bd_writer_begin_header(w, "bd.packed", prod, (hf != BD_PK_F32 ? 5 : 4) + bd_io_has_tokenizer(m))) < 0)
        goto fail;
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_str(pk, "config");
    bd_io_pack_config(pk, &m->cfg);
    bd_pack_str(pk, "quant");
    bd_io_pack_quant(pk, &m->quant, &m->qpolicy);
    bd_pack_str(pk, "formats");
    int type = bd_pk_type_for(&m->quant);
    type = type < 0 ? 0 : type;
    msgpack_pack_array(pk, hf != BD_PK_F32 && hf != type ? 2 : 1);
    bd_pack_str(pk, bd_pk_traits_table[type].name);
    if (hf != BD_PK_F32 && hf != type) bd_pack_str(pk, bd_pk_traits_table[hf].name);
    if (hf != BD_PK_F32) bd_pack_kv_str(pk, "head_format", bd_pk_traits_table[hf].name);
    size_t total;
    bd_param_entry t[BD_MAX_PARAMS];
    bd_param_table(&m->cfg, t, &total);
    bd_pack_kv_int(pk, "n_params", (int64_t)total);
    if (bd_io_has_tokenizer(m)) bd_io_pack_tokenizer(pk, m);
    if ((rc = bd_writer_end_object(w)) < 0) goto fail;
    bool head_packed = bd_pk_model_slot(m, 0, BD_HEAD) != NULL;
    if ((rc = write_tensors(w, m, head_packed, path, why, ws)) < 0) goto abort;
    for (int s = 0; s < m->packed->n_slots; s++) {
        int l;
        bd_linear k = slot_linear(m->packed->n_slots, s, &l);
        if ((k != BD_HEAD || head_packed) && (rc = write_linear(w, m, l, k, path, why, ws)) < 0) goto abort;
    }
    if ((rc = bd_writer_close(w)) < 0) return bd_fail(why, ws, rc, "%s: write failed: %s", path, strerror(errno));
    return BD_OK;
fail:
    write_failed(rc, path, why, ws);
abort:
    bd_writer_abort(w);
    return rc;
}

// ---- reading ----------------------------------------------------------------------------------------

// "layers.L.NAME" -> (L, k); "wcls" -> (-1, BD_HEAD). -1 if not a linear record name.
static int parse_linear_name(const char *name, int L, int *layer, bd_linear *k) {
    if (strcmp(name, "wcls") == 0) {
        *layer = -1;
        *k = BD_HEAD;
        return 0;
    }
    int l, pos = 0, i;
    char nm[16];
    if (sscanf(name, "layers.%d.%15[a-z0-9]%n", &l, nm, &pos) != 2 || name[pos] != 0 || l < 0 || l >= L) return -1;
    if ((i = linear_index(nm)) < 0) return -1;
    *k = (bd_linear)i;
    *layer = l;
    return 0;
}

// What loading checks records against, and what it has read so far.
typedef struct {
    const char *path;
    bd_model *m;
    bd_param_entry t[BD_MAX_PARAMS];
    int nt, want_type;      // the model's tensors; the packed format of its quantizer
    bool head_packed;       // a wcls record in a packed format: the spec's (--quant-head) or head_format's
    bool emb_packed;        // tied, head_format not f32: no tok_emb record
    bool *seen;             // (n_slots) linear records read
    size_t *filled;         // (BD_MAX_PARAMS) rows read of each other tensor
    unsigned long long ri;  // the record being read
    char *why;
    size_t ws;
} loader;

// A linear layer's record: packed blocks in the format the header's quant implies, or the f32
// rows of a layer the policy leaves in full precision.
static int load_linear(loader *L, const msgpack_object *rec, const bd_tensor_view *v, const char *name,
                       const msgpack_object *fo) {
    bd_model *m = L->m;
    const char *path = L->path;
    char *why = L->why, fmt[16];
    size_t ws = L->ws;
    unsigned long long ri = L->ri;
    int layer, type, rc;
    bd_linear k;
    if (parse_linear_name(name, m->cfg.n_layers, &layer, &k) < 0 || (k == BD_HEAD && !L->head_packed))
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: \"%s\" is not a packed linear layer of this model",
                       path, ri, name);
    if (!fo || bd_obj_strcpy(fo, fmt, sizeof fmt) < 0 || (type = bd_pk_type_parse(fmt)) < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: \"format\" missing or unknown", path, ri,
                       name);
    int slot = slot_index(m->packed->n_slots, layer, k);
    if (L->seen[slot])
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s appears twice", path, ri, name);
    L->seen[slot] = true;
    int OC, C;
    float *wf = linear_weight(m, layer < 0 ? 0 : layer, k, &OC, &C);
    bool head_fmt = k == BD_HEAD && m->packed->head_format != BD_PK_F32;
    int expect = head_fmt                                                ? (int)m->packed->head_format
                 : bd_qpolicy_covers(&m->qpolicy, linear_name(k), layer) ? L->want_type
                                                                         : BD_PK_F32;
    if (type != expect)
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "%s: record %llu: tensor %s has format %s, the header's quant implies %s", path, ri, name, fmt,
                       bd_pk_traits_table[expect].name);
    bd_pk_tensor *pt = &m->packed->slots[slot];
    if (type == BD_PK_F32) {  // into the model's own f32 weight
        if (v->dtype != BD_F32 || v->ndim != 2 || v->shape[0] != OC || v->shape[1] != C)
            return bd_fail(why, ws, BD_ERR_SHAPE, "%s: record %llu: tensor %s must be f32 [%d, %d]", path, ri, name, OC,
                           C);
        memcpy(wf, v->data, v->nbytes);
        if ((rc = bd_io_check_finite(wf, (size_t)OC * C, path, name, why, ws)) < 0) return rc;
        pt->type = BD_PK_F32;
        pt->rows = OC;
        pt->cols = C;
        return BD_OK;
    }
    const bd_pk_traits *tr = &bd_pk_traits_table[type];
    int64_t cols, group;
    if (bd_obj_int(bd_obj_get(rec, "cols"), &cols) < 0 || bd_obj_int(bd_obj_get(rec, "group"), &group) < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: \"cols\" or \"group\" missing", path, ri,
                       name);
    // A head_format head: any group that fits the row (the format fixes the quantizer, not G).
    int G = tr->row_group ? C : head_fmt ? (group >= 1 && group <= C ? (int)group : C) : bd_qspec_group(&m->quant, C);
    if (cols != C || group != G)
        return bd_fail(why, ws, BD_ERR_SHAPE,
                       "%s: record %llu: tensor %s: %lld columns in groups of %lld, expected %d in groups of %d", path,
                       ri, name, (long long)cols, (long long)group, C, G);
    if ((rc = bd_pk_geometry(pt, (bd_pk_type)type, OC, C, G)) < 0)
        return bd_fail(why, ws, rc, "%s: record %llu: tensor %s: no %s geometry for [%d, %d]", path, ri, name, fmt, OC,
                       C);
    if (v->dtype != BD_U8 || v->ndim != 2 || v->shape[0] != OC || (size_t)v->shape[1] != pt->row_bytes)
        return bd_fail(why, ws, BD_ERR_SHAPE,
                       "%s: record %llu: tensor %s: expected u8 [%d, %zu] (%d rows of %d blocks of %zu bytes)", path,
                       ri, name, OC, pt->row_bytes, OC, pt->ngroups, pt->block_bytes);
    if (tr->tensor_scale) {
        double d;
        if (bd_obj_num(bd_obj_get(rec, "scale"), &d) < 0)
            return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: %s needs \"scale\"", path, ri, name,
                           fmt);
        pt->scale = (float)d;
    }
    if ((rc = bd_pk_alloc(pt)) < 0)
        return bd_fail(why, ws, rc, "%s: record %llu: tensor %s: no memory for its blocks", path, ri, name);
    memcpy(pt->data, v->data, v->nbytes);
    char vwhy[200];
    if (bd_pk_validate(pt, vwhy, sizeof vwhy) < 0)
        return bd_fail(why, ws, BD_ERR_VALUE, "%s: record %llu: tensor %s (%s): %s", path, ri, name, fmt, vwhy);
    return BD_OK;
}

// Any other tensor, as in bd.model: f32, possibly in slices along axis 0.
static int load_tensor(loader *L, const msgpack_object *rec, const bd_tensor_view *v, const char *name) {
    const char *path = L->path;
    char *why = L->why;
    size_t ws = L->ws;
    unsigned long long ri = L->ri;
    const bd_param_entry *e = bd_io_entry(L->t, L->nt, name);
    if (!e || not_f32_record(e, L->head_packed, L->emb_packed))
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: unexpected tensor \"%s\"", path, ri, name);
    size_t ki = (size_t)(e - L->t), *filled = &L->filled[ki];
    int64_t start = 0;
    const msgpack_object *so = bd_obj_get(rec, "start");
    if (so && (bd_obj_int(so, &start) < 0 || start < 0))
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: bad \"start\"", path, ri, name);
    if ((size_t)start != *filled || *filled == (size_t)e->shape[0])
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: record %llu: tensor %s: %s", path, ri, name,
                       *filled == (size_t)e->shape[0] ? "appears twice" : "slice out of order");
    bool ok = v->dtype == BD_F32 && v->ndim == e->ndim && v->shape[0] >= 1 &&
              (uint64_t)start + (uint64_t)v->shape[0] <= (uint64_t)e->shape[0];
    for (int d = 1; ok && d < e->ndim; d++) ok = v->shape[d] == e->shape[d];
    if (!ok)
        return bd_fail(why, ws, BD_ERR_SHAPE, "%s: record %llu: tensor %s: dtype or shape disagrees with the config",
                       path, ri, name);
    size_t row = e->numel / (size_t)e->shape[0];
    float *dst = bd_weights_get(&L->m->w, e->name) + (size_t)start * row;
    memcpy(dst, v->data, v->nbytes);
    int rc = bd_io_check_finite(dst, (size_t)v->numel, path, name, why, ws);
    if (rc < 0) return rc;
    *filled += (size_t)v->shape[0];
    return BD_OK;
}

// Every tensor whole, every linear layer there.
static int check_complete(const loader *L) {
    const bd_param_entry *t = L->t;
    for (int i = 0; i < L->nt; i++)
        if (!not_f32_record(&t[i], L->head_packed, L->emb_packed) && L->filled[i] != (size_t)t[i].shape[0])
            return bd_fail(L->why, L->ws, BD_ERR_SCHEMA, "%s: tensor %s is %s", L->path, t[i].name,
                           L->filled[i] ? "incomplete" : "missing");
    int n_slots = L->m->packed->n_slots;
    for (int s = 0; s < n_slots; s++) {
        int l;
        bd_linear k = slot_linear(n_slots, s, &l);
        if (L->seen[s] || (k == BD_HEAD && !L->head_packed)) continue;
        if (k == BD_HEAD) return bd_fail(L->why, L->ws, BD_ERR_SCHEMA, "%s: tensor wcls is missing", L->path);
        return bd_fail(L->why, L->ws, BD_ERR_SCHEMA, "%s: tensor layers.%d.%s is missing", L->path, l,
                       bd_pk_linear_names[k]);
    }
    return BD_OK;
}

int bd_pk_model_load(bd_reader *r, bd_model *m, char *why, size_t ws) {
    memset(m, 0, sizeof *m);
    int rc;
    const char *path = bd_reader_name(r);
    loader L = {.path = path, .m = m, .why = why, .ws = ws};
    bd_config cfg;
    if ((rc = bd_io_parse_config(bd_reader_header(r), &cfg, path, why, ws)) < 0) goto out;
    // When the spec packs every block linear, none needs f32 storage (a 7B model's would not
    // even be granted); otherwise calloc'd: the storage of packed linears is never written, so
    // it is never mapped.
    bd_qspec q0;
    bd_qpolicy p0;
    if ((rc = bd_io_parse_quant(bd_reader_header(r), &q0, &p0, path, why, ws)) < 0) goto out;
    bool all_packed = q0.kind != BD_Q_NONE;
    for (int l = 0; all_packed && l < cfg.n_layers; l++)
        for (int k = 0; k < BD_N_LINEARS; k++) all_packed = all_packed && bd_qpolicy_covers(&p0, linear_name(k), l);
    if ((rc = all_packed ? bd_model_alloc_frozen(m, &cfg) : bd_model_alloc(m, &cfg)) < 0) {
        bd_fail(why, ws, rc, "%s: cannot allocate the model", path);
        goto out;
    }
    if ((rc = bd_io_parse_quant(bd_reader_header(r), &m->quant, &m->qpolicy, path, why, ws)) < 0) goto out;
    if ((rc = bd_io_parse_tokenizer(bd_reader_header(r), m, path, why, ws)) < 0) goto out;
    L.want_type = bd_pk_type_for(&m->quant);
    if (m->quant.kind == BD_Q_NONE || L.want_type < 0) {
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: \"quant\" must name a quantizer with a packed format", path);
        goto out;
    }
    char cwhy[300];
    if (bd_qpolicy_check(&m->qpolicy, &m->quant, &cfg, cwhy, sizeof cwhy) < 0) {
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: quant: %s", path, cwhy);
        goto out;
    }
    m->packed = bd_pk_model_new(&cfg);
    if (m->packed) m->packed->act_int8 = m->qpolicy.act_bits == 8;  // a W1.58A8 model runs as it was trained
    L.nt = bd_param_table(&cfg, L.t, NULL);
    L.filled = calloc(BD_MAX_PARAMS, sizeof *L.filled);
    L.seen = m->packed ? calloc((size_t)m->packed->n_slots, sizeof *L.seen) : NULL;
    if (!L.filled || !L.seen) {
        rc = bd_fail(why, ws, BD_ERR_NOMEM, "%s: no memory for the packed model", path);
        goto out;
    }
    L.head_packed = m->qpolicy.include_head && bd_qpolicy_covers(&m->qpolicy, "wcls", -1);
    const msgpack_object *hfo = bd_obj_get(bd_reader_header(r), "head_format");
    char hfs[16];
    int hf = BD_PK_F32;
    if (hfo && (bd_obj_strcpy(hfo, hfs, sizeof hfs) < 0 || (hf = bd_pk_head_format_parse(hfs)) < 0)) {
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: \"head_format\" must be f32, q8 or q6", path);
        goto out;
    }
    if (hf != BD_PK_F32 && L.head_packed) {
        rc = bd_fail(why, ws, BD_ERR_SCHEMA,
                     "%s: header: \"head_format\" %s, but quant already quantizes the head (include_head)", path, hfs);
        goto out;
    }
    m->packed->head_format = (bd_pk_type)hf;
    L.head_packed |= hf != BD_PK_F32;
    L.emb_packed = hf != BD_PK_F32 && cfg.tied_embeddings;
    const msgpack_object *rec;
    char tw[300], name[64];
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        L.ri = (unsigned long long)bd_reader_record_index(r);
        bd_tensor_view v;
        if ((rc = bd_obj_tensor(rec, &v, tw, sizeof tw)) < 0) {
            bd_fail(why, ws, rc, "%s: record %llu: %s", path, L.ri, tw);
            goto out;
        }
        snprintf(name, sizeof name, "%.*s", (int)(v.name_len < 60 ? v.name_len : 60), v.name ? v.name : "");
        const msgpack_object *fo = bd_obj_get(rec, "format");
        int layer;
        bd_linear k;
        bool linear = fo || (strcmp(name, "wcls") != 0 && parse_linear_name(name, cfg.n_layers, &layer, &k) == 0);
        if ((rc = linear ? load_linear(&L, rec, &v, name, fo) : load_tensor(&L, rec, &v, name)) < 0) goto out;
    }
    if (rc != BD_EOF) {
        bd_fail(why, ws, rc, "%s: %s", path, bd_reader_error(r));
        goto out;
    }
    rc = check_complete(&L);
out:
    if (rc < 0) bd_model_free(m);
    free(L.filled);
    free(L.seen);
    return rc;
}
