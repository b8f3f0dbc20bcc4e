// The bd.metrics log of a training run, kept in memory for checkpoints (see bd_metrics.h).
#include "bd_metrics.h"

#include <errno.h>
#include <string.h>

static int io_fail(const bd_metrics *m, int rc, char *why, size_t ws) {
    if (rc == BD_ERR_NOMEM) return bd_fail(why, ws, rc, "\"%s\": out of memory", m->path);
    return bd_fail(why, ws, rc, "\"%s\": write failed: %s", m->path,
                   rc == BD_ERR_IO ? strerror(errno) : bd_strerror(rc));
}

static void pack_head(msgpack_packer *pk, const bd_metrics_head *h) {
    bd_pack_kv_str(pk, "model", h->model);
    bd_pack_kv_str(pk, "loss", h->loss);
    bd_pack_kv_int(pk, "batch", h->batch);
    bd_pack_kv_int(pk, "seq_len", h->seq_len);
    bd_pack_kv_int(pk, "grad_accum", h->grad_accum);
    bd_pack_kv_int(pk, "steps", h->steps);
}

// Appends records already packed to the stream (if any) and to the kept ones.
static int put(bd_metrics *m, const void *data, size_t len, uint64_t n, char *why, size_t ws) {
    int rc;
    if (m->w && ((rc = bd_writer_put(m->w, data, len, n)) < 0 || (rc = bd_writer_flush(m->w)) < 0))
        return io_fail(m, rc, why, ws);
    if (msgpack_sbuffer_write(&m->kept, data, len) != 0) return io_fail(m, BD_ERR_NOMEM, why, ws);
    m->records += n;
    return BD_OK;
}

int bd_metrics_open(bd_metrics *m, const char *path, const bd_metrics_head *h, const bd_producer *prod,
                    const bd_ckpt_log *prior, char *why, size_t ws) {
    *m = (bd_metrics){.path = path};
    msgpack_sbuffer_init(&m->kept);
    int rc;
    if (path) {
        if (!(m->w = bd_writer_open(path, 0, &rc)))
            return bd_fail(why, ws, rc, "\"%s\": cannot create: %s", path, strerror(errno));
        if ((rc = bd_writer_begin_header(m->w, "bd.metrics", prod, 6)) < 0) return io_fail(m, rc, why, ws);
        pack_head(bd_writer_packer(m->w), h);
        if ((rc = bd_writer_end_object(m->w)) < 0) return io_fail(m, rc, why, ws);
    }
    return prior && prior->records ? put(m, prior->data, prior->len, prior->records, why, ws) : BD_OK;
}

int bd_metrics_add(bd_metrics *m, const bd_metrics_rec *r, char *why, size_t ws) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, r->eval ? 9 : 8);
    bd_pack_kv_int(&pk, "step", r->step);
    bd_pack_kv_double(&pk, "loss", r->loss);
    bd_pack_kv_double(&pk, "lr", r->lr);
    bd_pack_kv_double(&pk, "grad_norm", r->grad_norm);
    bd_pack_kv_double(&pk, "tokens_per_s", r->tokens_per_s);
    bd_pack_kv_int(&pk, "tokens", r->tokens);
    bd_pack_kv_int(&pk, "epoch", r->epoch);
    bd_pack_kv_double(&pk, "seconds", r->seconds);
    if (r->eval) bd_pack_kv_double(&pk, "eval_loss", r->eval_loss);
    int rc = sb.data ? put(m, sb.data, sb.size, 1, why, ws) : io_fail(m, BD_ERR_NOMEM, why, ws);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

bd_ckpt_log bd_metrics_kept(const bd_metrics *m) { return (bd_ckpt_log){m->kept.data, m->kept.size, m->records}; }

int bd_metrics_close(bd_metrics *m, char *why, size_t ws) {
    if (!m->w) return BD_OK;
    int rc = bd_writer_close(m->w);
    m->w = NULL;
    return rc < 0 ? io_fail(m, rc, why, ws) : BD_OK;
}

void bd_metrics_free(bd_metrics *m) {
    bd_writer_abort(m->w);
    msgpack_sbuffer_destroy(&m->kept);
    *m = (bd_metrics){0};
}
