// Training checkpoints: PATH (bd.trainstate) + PATH.wSTEP (bd.model), see bd_ckpt.h.
#include "bd_ckpt.h"

#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bd_log.h"
#include "bd_msgpack_scan.h"
#include "bd_model_io.h"
#include "bd_outfile.h"

#define SLICE_ELEMS ((size_t)1 << 24)  // 64 MiB of f32 per record: each is built whole in the writer's buffer


uint64_t bd_ckpt_hash(const float *p, size_t n) {
    // FNV-1a over 32-bit words, then a final avalanche.
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, p + i, 4);
        h = (h ^ u) * 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static void test_delay(void) {
    const char *e = getenv("BD_CKPT_TEST_DELAY_MS");
    long ms = e ? atol(e) : 0;
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

// dir of path (with its slash) + name.
static void sibling(char *out, size_t size, const char *path, const char *name) {
    const char *s = strrchr(path, '/');
    int dl = s ? (int)(s - path + 1) : 0;
    snprintf(out, size, "%.*s%s", dl, path, name);
}

// Removes older generations PATH.wN other than keep, and the temporaries of PATH and of its
// generations left by killed runs (bd_outfile_sweep: never those of a live writer).
static void remove_stale(const char *path, const char *keep) {
    char pat[4200];
    size_t j = bd_glob_escape(pat, sizeof pat - 16, path);
    snprintf(pat + j, sizeof pat - j, ".w*");
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (!strstr(g.gl_pathv[i] + j, ".tmp.") && strcmp(g.gl_pathv[i], keep) != 0) unlink(g.gl_pathv[i]);
        globfree(&g);
    }
    snprintf(pat + j, sizeof pat - j, ".w*.tmp.*");
    bd_outfile_sweep_matching(pat);
    bd_outfile_sweep(path);
}

// Elements [start, start+n) of a moment stored as dt.
static void pack_slice(msgpack_packer *pk, const char *name, bd_dtype dt, const void *data, size_t n, size_t start) {
    size_t es = bd_dtype_size(dt);
    msgpack_pack_map(pk, 5);
    bd_pack_kv_str(pk, "name", name);
    bd_pack_kv_str(pk, "dtype", bd_dtype_name(dt));
    bd_pack_str(pk, "shape");
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint64(pk, n);
    bd_pack_str(pk, "data");
    msgpack_pack_bin(pk, n * es);
    msgpack_pack_bin_body(pk, (const char *)data + start * es, n * es);
    bd_pack_kv_int(pk, "start", (int64_t)start);
}

// The record {"log": bin, "records": N} of the metrics records so far.
static void pack_log(msgpack_packer *pk, const bd_ckpt_log *log) {
    msgpack_pack_map(pk, 2);
    bd_pack_str(pk, "log");
    msgpack_pack_bin(pk, log->len);
    msgpack_pack_bin_body(pk, log->data, log->len);
    bd_pack_kv_int(pk, "records", (int64_t)log->records);
}

int bd_ckpt_save(const char *path, const bd_model *model, const bd_adamw *opt, const bd_ckpt_info *info,
                 const bd_ckpt_log *log, const bd_producer *prod, char *why, size_t ws) {
    if (!path || !strcmp(path, "-"))
        return bd_fail(why, ws, BD_ERR_ARG, "a checkpoint needs a file name, not standard output");
    if (opt->n != model->n_params) return bd_fail(why, ws, BD_ERR_ARG, "%s: optimizer and model sizes differ", path);
    char wpath[4200], wname[512];
    snprintf(wname, sizeof wname, "%s.w%lld", base_name(path), info->step);
    sibling(wpath, sizeof wpath, path, wname);
    int rc = bd_model_save(model, wpath, prod, BD_F32, why, ws);
    if (rc < 0) return rc;
    test_delay();
    bd_writer *w = bd_writer_open(path, 1, &rc);
    if (!w) return bd_fail(why, ws, rc, "%s: cannot create: %s", path, strerror(errno));
    if ((rc = bd_writer_begin_header(w, "bd.trainstate", prod, 19)) < 0) goto io;
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_kv_int(pk, "step", info->step);
    bd_pack_kv_int(pk, "epoch", info->epoch);
    bd_pack_kv_int(pk, "pos", info->pos);
    bd_pack_kv_int(pk, "tokens", info->tokens);
    bd_pack_str(pk, "seed");
    msgpack_pack_uint64(pk, info->seed);
    bd_pack_kv_int(pk, "batch", info->batch);
    bd_pack_kv_int(pk, "seq_len", info->seq_len);
    bd_pack_kv_int(pk, "grad_accum", info->grad_accum);
    bd_pack_kv_double(pk, "gamma", info->gamma);
    bd_pack_kv_double(pk, "seconds", info->seconds);
    bd_pack_str(pk, "data_hash");
    msgpack_pack_uint64(pk, info->data_hash);
    bd_pack_kv_int(pk, "adam_t", opt->t);
    bd_pack_kv_int(pk, "n_params", (int64_t)opt->n);
    bd_pack_kv_str(pk, "moments_dtype", bd_dtype_name(opt->cfg.moments));
    bd_pack_kv_str(pk, "objective", info->objective);
    bd_pack_kv_str(pk, "weights", wname);
    bd_pack_str(pk, "weights_hash");
    msgpack_pack_uint64(pk, bd_ckpt_hash(model->params, model->n_params));
    bd_pack_str(pk, "adam");
    msgpack_pack_map(pk, 5);
    bd_pack_kv_double(pk, "beta1", opt->cfg.beta1);
    bd_pack_kv_double(pk, "beta2", opt->cfg.beta2);
    bd_pack_kv_double(pk, "eps", opt->cfg.eps);
    bd_pack_kv_double(pk, "weight_decay", opt->cfg.weight_decay);
    bd_pack_kv_double(pk, "grad_clip", opt->cfg.grad_clip);
    bd_pack_kv_str(pk, "note", "moments in the parameter layout of the weights file");
    if ((rc = bd_writer_end_object(w)) < 0) goto io;
    for (int which = 0; which < 2; which++)
        for (size_t s = 0; s < opt->n; s += SLICE_ELEMS) {
            size_t n = opt->n - s < SLICE_ELEMS ? opt->n - s : SLICE_ELEMS;
            pack_slice(pk, which ? "adam_v" : "adam_m", opt->cfg.moments, bd_adamw_moment(opt, which), n, s);
            if ((rc = bd_writer_end_object(w)) < 0) goto io;
            test_delay();
        }
    if (log && log->records) {
        pack_log(pk, log);
        if ((rc = bd_writer_end_object(w)) < 0) goto io;
    }
    if ((rc = bd_writer_close(w)) < 0) return bd_fail(why, ws, rc, "%s: write failed: %s", path, strerror(errno));
    remove_stale(path, wpath);
    return BD_OK;
io:
    bd_fail(why, ws, rc, "%s: write failed: %s", path, rc == BD_ERR_IO ? strerror(errno) : bd_strerror(rc));
    bd_writer_abort(w);
    return rc;
}

static int get_int(const msgpack_object *h, const char *key, long long *out, const char *path, char *why, size_t ws) {
    int64_t v;
    if (bd_obj_int(bd_obj_get(h, key), &v) < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: field \"%s\" missing or not an integer", path, key);
    *out = v;
    return BD_OK;
}

// The header's fields into info, mom's dtype and step count, *n (P), the weights file's name and hash.
static int read_header(const msgpack_object *h, const char *path, bd_ckpt_info *info, bd_ckpt_moments *mom, size_t *n,
                       char *wname, size_t wsize, uint64_t *whash, char *why, size_t ws) {
    long long v[9];
    const char *keys[] = {"step", "epoch", "pos", "tokens", "batch", "seq_len", "grad_accum", "adam_t", "n_params"};
    int rc;
    for (int i = 0; i < 9; i++)
        if ((rc = get_int(h, keys[i], &v[i], path, why, ws)) < 0) return rc;
    const msgpack_object *so = bd_obj_get(h, "seed"), *ho = bd_obj_get(h, "weights_hash");
    if (!so || so->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !ho || ho->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        bd_obj_strcpy(bd_obj_get(h, "weights"), wname, wsize) < 0 || strchr(wname, '/'))
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "%s: header: fields \"seed\", \"weights\" and \"weights_hash\" are required", path);
    double gamma = -1, seconds = 0;
    if (bd_obj_get(h, "gamma") && bd_obj_num(bd_obj_get(h, "gamma"), &gamma) < 0) gamma = -1;
    if (bd_obj_get(h, "seconds") && (bd_obj_num(bd_obj_get(h, "seconds"), &seconds) < 0 || !(seconds >= 0)))
        seconds = 0;                                        // absent in checkpoints before it was recorded
    const msgpack_object *dh = bd_obj_get(h, "data_hash");  // absent in checkpoints before it was recorded
    if (dh && dh->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: \"data_hash\" must be a non-negative integer", path);
    if (v[8] <= 0 || v[4] <= 0 || v[4] > INT32_MAX || v[5] <= 0 || v[5] > INT32_MAX || v[6] <= 0 || v[6] > INT32_MAX)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: n_params, batch, seq_len and grad_accum must be positive",
                       path);
    *info = (bd_ckpt_info){.step = v[0],
                           .epoch = v[1],
                           .pos = v[2],
                           .tokens = v[3],
                           .seed = so->via.u64,
                           .batch = (int)v[4],
                           .seq_len = (int)v[5],
                           .grad_accum = (int)v[6],
                           .gamma = gamma,
                           .data_hash = dh ? dh->via.u64 : 0,
                           .seconds = seconds};
    const msgpack_object *ob = bd_obj_get(h, "objective");  // absent in checkpoints before it was recorded
    if (ob && bd_obj_strcpy(ob, info->objective, sizeof info->objective) < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: \"objective\" must be a string of under %zu bytes", path,
                       sizeof info->objective);
    char dt[16] = "f32";  // absent in checkpoints before bf16 moments
    if (bd_obj_get(h, "moments_dtype") && bd_obj_strcpy(bd_obj_get(h, "moments_dtype"), dt, sizeof dt) < 0) dt[0] = 0;
    int d = bd_dtype_parse(dt, strlen(dt));
    if (d != BD_F32 && d != BD_BF16)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: header: \"moments_dtype\" must be \"f32\" or \"bf16\"", path);
    mom->dtype = (bd_dtype)d;
    mom->t = v[7];
    *n = (size_t)v[8];
    *whash = ho->via.u64;
    return BD_OK;
}

// The next slice of adam_m or adam_v into mom (2n of its dtype); filled counts what each holds.
static int read_slice(const msgpack_object *rec, bd_ckpt_moments *mom, size_t n, size_t filled[2], char *why,
                      size_t ws) {
    bd_tensor_view t;
    int64_t start;
    int rc = bd_obj_tensor(rec, &t, why, ws);
    if (rc < 0) return rc;
    int which = t.name_len == 6 && !memcmp(t.name, "adam_m", 6)   ? 0
                : t.name_len == 6 && !memcmp(t.name, "adam_v", 6) ? 1
                                                                  : -1;
    if (which < 0 || t.dtype != mom->dtype || t.ndim != 1 || bd_obj_int(bd_obj_get(rec, "start"), &start) < 0 ||
        (size_t)start != filled[which] || (size_t)t.numel > n - filled[which])
        return bd_fail(why, ws, BD_ERR_SCHEMA, "expected the next %s slice of adam_m or adam_v",
                       bd_dtype_name(mom->dtype));
    size_t es = bd_dtype_size(mom->dtype);
    memcpy((char *)mom->data + ((size_t)which * n + filled[which]) * es, t.data, t.nbytes);
    filled[which] += (size_t)t.numel;
    return BD_OK;
}

// The metrics records {"log": bin, "records": N}: N msgpack maps back to back (checked without
// unpacking them), copied into log (if not NULL).
static int read_log(const msgpack_object *rec, bd_ckpt_log *log, char *why, size_t ws) {
    const msgpack_object *b = bd_obj_get(rec, "log");
    int64_t count;
    if (b->type != MSGPACK_OBJECT_BIN || bd_obj_int(bd_obj_get(rec, "records"), &count) < 0 || count < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "a log record needs \"log\": bin and \"records\": int");
    const uint8_t *p = (const uint8_t *)b->via.bin.ptr;
    size_t len = b->via.bin.size;
    int64_t k = 0;
    for (bd_msgpack_scan sc = {0}; sc.pos < len; k++) {
        bd_msgpack_scan_init(&sc, sc.pos);
        bool is_map = (p[sc.pos] & 0xf0) == 0x80 || p[sc.pos] == 0xde || p[sc.pos] == 0xdf;
        if (!is_map || bd_msgpack_scan_step(&sc, p, len) != 1)
            return bd_fail(why, ws, BD_ERR_SCHEMA, "log: record %lld is not a whole msgpack map", (long long)k + 1);
    }
    if (k != count)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "log: %lld records, the field says %lld", (long long)k,
                       (long long)count);
    if (!log) return BD_OK;
    if (log->data) return bd_fail(why, ws, BD_ERR_SCHEMA, "a second log record");
    if (len && !(log->data = malloc(len))) return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    if (len) memcpy(log->data, p, len);
    log->len = len, log->records = (uint64_t)count;
    return BD_OK;
}

// The records: the moments (2n, all of them) and the metrics log.
static int read_records(bd_reader *r, const char *path, bd_ckpt_moments *mom, size_t n, bd_ckpt_log *log, char *why,
                        size_t ws) {
    size_t filled[2] = {0, 0};
    const msgpack_object *rec;
    int rc;
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        char tw[300];
        rc = bd_obj_get(rec, "log") ? read_log(rec, log, tw, sizeof tw)
                                    : read_slice(rec, mom, n, filled, tw, sizeof tw);
        if (rc < 0)
            return bd_fail(why, ws, rc, "%s: record %llu: %s", path, (unsigned long long)bd_reader_record_index(r), tw);
    }
    if (rc != BD_EOF) return bd_fail(why, ws, rc, "%s: %s", path, bd_reader_error(r));
    if (filled[0] != n || filled[1] != n)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "%s: the AdamW moments are incomplete", path);
    return BD_OK;
}

int bd_ckpt_load(const char *path, bd_model *model, bd_ckpt_info *info, bd_ckpt_moments *mom, bd_ckpt_log *log,
                 char *why, size_t ws) {
    memset(model, 0, sizeof *model);
    memset(info, 0, sizeof *info);
    if (log) *log = (bd_ckpt_log){0};
    *mom = (bd_ckpt_moments){0};
    int rc;
    char msg[600], wname[512], wpath[4200];
    size_t n = 0;
    uint64_t whash = 0;
    bd_reader *r = bd_reader_open(path, "bd.trainstate", &rc, msg, sizeof msg);
    if (!r) return bd_fail(why, ws, rc, "%s: %s", path, msg);
    if ((rc = read_header(bd_reader_header(r), path, info, mom, &n, wname, sizeof wname, &whash, why, ws)) < 0)
        goto out;
    sibling(wpath, sizeof wpath, path, wname);
    if ((rc = bd_model_load(wpath, model, why, ws)) < 0) goto out;
    if (model->n_params != n || bd_ckpt_hash(model->params, n) != whash) {
        rc = bd_fail(why, ws, BD_ERR_SCHEMA, "%s: the weights file %s does not match this state (size or hash)", path,
                     wpath);
        goto out;
    }
    if (!(mom->data = calloc(2 * n, bd_dtype_size(mom->dtype)))) {
        rc = BD_ERR_NOMEM;
        goto out;
    }
    rc = read_records(r, path, mom, n, log, why, ws);
out:
    if (rc < 0) {
        bd_model_free(model);
        free(mom->data);
        mom->data = NULL;
        if (log) free(log->data), *log = (bd_ckpt_log){0};
    }
    bd_reader_close(r);
    return rc;
}
