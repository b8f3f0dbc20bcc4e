// bd stream reader and writer. Reader: zstd streaming decompression into a byte buffer,
// bd_msgpack_scan finds each whole object, msgpack-c unpacks it in place. Writer: msgpack
// into a buffer, zstd streaming compression (checksum on) into an atomic output file.
#include "bd_stream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "bd_msgpack_scan.h"
#include "bd_outfile.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bd streams store tensors little-endian; big-endian hosts are not supported yet"
#endif

#ifndef BD_VERSION
#define BD_VERSION "0"
#endif

// ---- reader ---------------------------------------------------------------------------------

struct bd_reader {
    FILE *f;
    bool own_f;
    char *name;
    ZSTD_DCtx *dctx;
    uint8_t *in;  // compressed input
    size_t in_pos, in_len, in_cap;
    bool in_eof;
    bool out_was_full;  // zstd may hold more output: call it again even without input
    size_t zret;        // last ZSTD_decompressStream result: 0 = frame complete
    bool any_input;
    uint8_t *buf;  // decompressed bytes not yet consumed: buf[start..end)
    size_t start, end, cap;
    msgpack_unpacked cur;
    msgpack_unpacked hdr;
    char *hdr_bytes;
    char schema[64];
    uint64_t records;  // records returned so far
    uint64_t index;    // record index for messages
    bool done;
    char err[512];
};

static int fail(bd_reader *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(bd_reader *r, int code, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->index == 0)
        snprintf(r->err, sizeof r->err, "header: %s", msg);
    else
        snprintf(r->err, sizeof r->err, "record %llu: %s", (unsigned long long)r->index, msg);
    return code;
}

// bd-stream(5) requires a content checksum on every zstd frame: read the frame header's
// descriptor byte (RFC 8878: magic, then Frame_Header_Descriptor, bit 2 = checksum) before
// zstd decodes the frame. Skippable frames carry no content and are let through.
static int check_frame_start(bd_reader *r) {
    if (r->in_len - r->in_pos < 5 && !r->in_eof) {  // the header straddles reads: gather it
        memmove(r->in, r->in + r->in_pos, r->in_len - r->in_pos);
        r->in_len -= r->in_pos;
        r->in_pos = 0;
        while (r->in_len < 5) {
            size_t got = fread(r->in + r->in_len, 1, r->in_cap - r->in_len, r->f);
            if (got == 0) {
                if (ferror(r->f)) return fail(r, BD_ERR_IO, "read error: %s", strerror(errno));
                r->in_eof = true;
                break;
            }
            r->in_len += got;
        }
    }
    const uint8_t *p = r->in + r->in_pos;
    if (r->in_len - r->in_pos < 5) return BD_OK;  // too short: zstd reports the truncation
    uint32_t magic = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) return BD_OK;  // skippable frame
    if (magic == 0xFD2FB528u && !(p[4] & 0x04))
        return fail(r, BD_ERR_CORRUPT, "zstd frame without a content checksum (bd streams are written with one)");
    return BD_OK;
}

// Decompresses more bytes into buf. Returns the number of bytes added, 0 at end of input,
// or an error code.
static int64_t fill(bd_reader *r) {
    const size_t want = ZSTD_DStreamOutSize();
    for (;;) {
        if (r->in_pos == r->in_len && !r->in_eof) {
            r->in_pos = 0;
            r->in_len = fread(r->in, 1, r->in_cap, r->f);
            if (r->in_len == 0) {
                if (ferror(r->f)) return fail(r, BD_ERR_IO, "read error: %s", strerror(errno));
                r->in_eof = true;
            } else if (!r->any_input) {
                r->any_input = true;
                static const uint8_t zmagic[4] = {0x28, 0xb5, 0x2f, 0xfd};
                if (r->in_len >= 4 && memcmp(r->in, zmagic, 4) != 0)
                    return fail(r, BD_ERR_CORRUPT, "not a bd stream (no zstd frame at the start)");
            }
        }
        if (r->in_pos == r->in_len && r->in_eof && !r->out_was_full) return 0;
        if (r->cap - r->end < want) {
            if (r->start > 0 && r->cap - (r->end - r->start) >= want) {
                memmove(r->buf, r->buf + r->start, r->end - r->start);
                r->end -= r->start;
                r->start = 0;
            } else {
                size_t ncap = r->cap ? r->cap * 2 : 2 * want;
                while (ncap - r->end < want) ncap *= 2;
                uint8_t *nb = realloc(r->buf, ncap);
                if (!nb) return fail(r, BD_ERR_NOMEM, "out of memory (record of %zu bytes)", r->end - r->start);
                r->buf = nb;
                r->cap = ncap;
            }
        }
        if (r->zret == 0 && r->in_pos < r->in_len) {  // a frame starts here
            int rc = check_frame_start(r);
            if (rc < 0) return rc;
        }
        ZSTD_outBuffer out = {r->buf + r->end, r->cap - r->end, 0};
        ZSTD_inBuffer inb = {r->in, r->in_len, r->in_pos};
        size_t ret = ZSTD_decompressStream(r->dctx, &out, &inb);
        if (ZSTD_isError(ret)) return fail(r, BD_ERR_CORRUPT, "corrupt zstd data: %s", ZSTD_getErrorName(ret));
        r->in_pos = inb.pos;
        r->end += out.pos;
        r->out_was_full = out.pos == out.size;
        r->zret = ret;
        if (out.pos > 0) return (int64_t)out.pos;
    }
}

// Makes the next whole msgpack object available at buf[start..start+*len).
static int next_object(bd_reader *r, size_t *len) {
    bd_msgpack_scan sc;
    bd_msgpack_scan_init(&sc, r->start);
    for (;;) {
        int s = bd_msgpack_scan_step(&sc, r->buf, r->end);
        if (s < 0)
            return fail(r, BD_ERR_MALFORMED, "malformed msgpack (invalid type byte or nesting over %d)",
                        BD_SCAN_MAX_DEPTH);
        if (s == 1) {
            *len = sc.pos - r->start;
            return BD_OK;
        }
        if (sc.pos - r->start > BD_MAX_OBJECT_BYTES)
            return fail(r, BD_ERR_MALFORMED, "object larger than %zu bytes", (size_t)BD_MAX_OBJECT_BYTES);
        size_t old_start = r->start;
        int64_t got = fill(r);
        if (got < 0) return (int)got;
        sc.pos -= old_start - r->start;  // fill may have moved the unconsumed bytes to the front
        if (got == 0) {
            if (!r->any_input) return fail(r, BD_ERR_TRUNCATED, "empty input");
            if (r->zret != 0) return fail(r, BD_ERR_TRUNCATED, "truncated stream (input ends inside a zstd frame)");
            if (r->end > r->start)
                return fail(r, BD_ERR_TRUNCATED, "truncated stream (input ends inside a msgpack object)");
            return fail(r, BD_ERR_TRUNCATED, "truncated stream (no trailer)");
        }
    }
}

static int unpack(bd_reader *r, msgpack_unpacked *u, const char *data, size_t len) {
    size_t off = 0;
    msgpack_unpack_return ret = msgpack_unpack_next(u, data, len, &off);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR) return fail(r, BD_ERR_NOMEM, "out of memory unpacking %zu bytes", len);
    if (ret != MSGPACK_UNPACK_SUCCESS || off != len) return fail(r, BD_ERR_MALFORMED, "malformed msgpack");
    if (u->data.type != MSGPACK_OBJECT_MAP) return fail(r, BD_ERR_MALFORMED, "not a msgpack map");
    return BD_OK;
}

static int read_header(bd_reader *r, const char *schema) {
    size_t len;
    int rc = next_object(r, &len);
    if (rc < 0) return rc;
    r->hdr_bytes = malloc(len ? len : 1);
    if (!r->hdr_bytes) return fail(r, BD_ERR_NOMEM, "out of memory");
    memcpy(r->hdr_bytes, r->buf + r->start, len);
    r->start += len;
    if ((rc = unpack(r, &r->hdr, r->hdr_bytes, len)) < 0) return rc;
    const msgpack_object *h = &r->hdr.data;
    if (!bd_obj_is_str(bd_obj_get(h, "magic"), "bd"))
        return fail(r, BD_ERR_MALFORMED, "not a bd stream (header lacks \"magic\":\"bd\")");
    const msgpack_object *v = bd_obj_get(h, "version");
    int64_t major, minor;
    if (!v || v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size < 2 ||
        bd_obj_int(&v->via.array.ptr[0], &major) < 0 || bd_obj_int(&v->via.array.ptr[1], &minor) < 0)
        return fail(r, BD_ERR_MALFORMED, "field \"version\" must be [major, minor]");
    if (major > BD_STREAM_MAJOR)
        return fail(r, BD_ERR_VERSION, "stream format version %lld.%lld is newer than this reader (%d.x); upgrade bd",
                    (long long)major, (long long)minor, BD_STREAM_MAJOR);
    if (bd_obj_strcpy(bd_obj_get(h, "schema"), r->schema, sizeof r->schema) < 0)
        return fail(r, BD_ERR_MALFORMED, "field \"schema\" missing or not a short string");
    if (schema && strcmp(schema, r->schema) != 0)
        return fail(r, BD_ERR_SCHEMA, "schema is \"%s\", expected \"%s\"", r->schema, schema);
    return BD_OK;
}

static void set_why(char *why, size_t why_size, const char *msg) {
    if (why && why_size) snprintf(why, why_size, "%s", msg);
}

bd_reader *bd_reader_open_file(FILE *f, const char *name, const char *schema, int *err_out, char *why,
                               size_t why_size) {
    bd_reader *r = calloc(1, sizeof *r);
    int rc = BD_ERR_NOMEM;
    if (!r) goto fail;
    r->f = f;
    r->name = strdup(name ? name : "-");
    r->dctx = ZSTD_createDCtx();
    r->in_cap = ZSTD_DStreamInSize();
    r->in = malloc(r->in_cap);
    msgpack_unpacked_init(&r->cur);
    msgpack_unpacked_init(&r->hdr);
    if (!r->name || !r->dctx || !r->in) goto fail;
    if ((rc = read_header(r, schema)) < 0) {
        set_why(why, why_size, r->err);
        goto fail;
    }
    if (err_out) *err_out = BD_OK;
    return r;
fail:
    if (rc == BD_ERR_NOMEM) set_why(why, why_size, "out of memory");
    if (err_out) *err_out = rc;
    if (r) {
        r->own_f = false;
        bd_reader_close(r);
    }
    return NULL;
}

bd_reader *bd_reader_open(const char *path, const char *schema, int *err_out, char *why, size_t why_size) {
    bool is_stdin = !path || strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        if (why && why_size) snprintf(why, why_size, "cannot open: %s", strerror(errno));
        if (err_out) *err_out = BD_ERR_IO;
        return NULL;
    }
    bd_reader *r = bd_reader_open_file(f, is_stdin ? "-" : path, schema, err_out, why, why_size);
    if (!r) {
        if (!is_stdin) fclose(f);
        return NULL;
    }
    r->own_f = !is_stdin;
    return r;
}

const msgpack_object *bd_reader_header(const bd_reader *r) { return &r->hdr.data; }
const char *bd_reader_schema(const bd_reader *r) { return r->schema; }
uint64_t bd_reader_record_index(const bd_reader *r) { return r->index; }
const char *bd_reader_error(const bd_reader *r) { return r->err; }
const char *bd_reader_name(const bd_reader *r) { return r->name; }

// After the trailer nothing may follow, and the last zstd frame must be complete.
static int expect_end(bd_reader *r) {
    for (;;) {
        if (r->end > r->start) return fail(r, BD_ERR_MALFORMED, "data after the trailer");
        r->start = r->end = 0;
        int64_t got = fill(r);
        if (got < 0) return (int)got;
        if (got == 0) break;
    }
    if (r->zret != 0) return fail(r, BD_ERR_TRUNCATED, "truncated stream (input ends inside a zstd frame)");
    return BD_OK;
}

int bd_reader_next(bd_reader *r, const msgpack_object **rec) {
    *rec = NULL;
    if (r->done) return BD_EOF;
    if (r->err[0]) return BD_ERR_ARG;  // an earlier error is final
    r->index = r->records + 1;
    size_t len;
    int rc = next_object(r, &len);
    if (rc < 0) return rc;
    const char *data = (const char *)r->buf + r->start;
    r->start += len;
    if ((rc = unpack(r, &r->cur, data, len)) < 0) return rc;
    const msgpack_object *o = &r->cur.data;
    const msgpack_object *end = bd_obj_get(o, "end");
    if (end) {
        int64_t n;
        if (end->type != MSGPACK_OBJECT_BOOLEAN || !end->via.boolean)
            return fail(r, BD_ERR_MALFORMED, "trailer field \"end\" must be true");
        if (bd_obj_int(bd_obj_get(o, "records"), &n) < 0)
            return fail(r, BD_ERR_MALFORMED, "trailer lacks an integer \"records\"");
        if ((uint64_t)n != r->records)
            return fail(r, BD_ERR_MALFORMED, "trailer says %lld records, stream has %llu", (long long)n,
                        (unsigned long long)r->records);
        if ((rc = expect_end(r)) < 0) return rc;
        r->done = true;
        return BD_EOF;
    }
    r->records++;
    *rec = o;
    return BD_OK;
}

void bd_reader_close(bd_reader *r) {
    if (!r) return;
    if (r->own_f && r->f) fclose(r->f);
    msgpack_unpacked_destroy(&r->cur);
    msgpack_unpacked_destroy(&r->hdr);
    ZSTD_freeDCtx(r->dctx);
    free(r->hdr_bytes);
    free(r->in);
    free(r->buf);
    free(r->name);
    free(r);
}

// ---- object access ------------------------------------------------------------------------

const msgpack_object *bd_obj_get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

bool bd_obj_is_str(const msgpack_object *o, const char *s) {
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

int bd_obj_strcpy(const msgpack_object *o, char *buf, size_t size) {
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= size) return BD_ERR_SCHEMA;
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = 0;
    return BD_OK;
}

int bd_obj_int_in(const msgpack_object *o, int64_t lo, int64_t hi, int64_t *out) {
    int rc = bd_obj_int(o, out);
    return rc < 0 ? rc : *out < lo || *out > hi ? BD_ERR_VALUE : BD_OK;
}

int bd_obj_int(const msgpack_object *o, int64_t *out) {
    if (!o) return BD_ERR_SCHEMA;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX) return BD_ERR_SCHEMA;
        *out = (int64_t)o->via.u64;
        return BD_OK;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return BD_OK;
    }
    return BD_ERR_SCHEMA;
}

int bd_obj_num(const msgpack_object *o, double *out) {
    if (!o) return BD_ERR_SCHEMA;
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) {
        *out = o->via.f64;
        return BD_OK;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = (double)o->via.u64;
        return BD_OK;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = (double)o->via.i64;
        return BD_OK;
    }
    return BD_ERR_SCHEMA;
}

bool bd_obj_is_tensor(const msgpack_object *o) {
    const msgpack_object *d = bd_obj_get(o, "data"), *s = bd_obj_get(o, "shape");
    return d && d->type == MSGPACK_OBJECT_BIN && s && s->type == MSGPACK_OBJECT_ARRAY && bd_obj_get(o, "dtype") != NULL;
}

int bd_obj_check_tensors(const msgpack_object *o, char *why, size_t why_size) {
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            int rc = bd_obj_check_tensors(&o->via.array.ptr[i], why, why_size);
            if (rc < 0) return rc;
        }
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        // Anything with a dtype and a shape or data is meant as a tensor: it must be a valid one.
        if (bd_obj_get(o, "dtype") && (bd_obj_get(o, "shape") || bd_obj_get(o, "data"))) {
            bd_tensor_view t;
            return bd_obj_tensor(o, &t, why, why_size);
        }
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            int rc = bd_obj_check_tensors(&o->via.map.ptr[i].val, why, why_size);
            if (rc < 0) return rc;
        }
    }
    return BD_OK;
}

int bd_obj_tensor(const msgpack_object *o, bd_tensor_view *t, char *why, size_t why_size) {
    char dummy[8];
    if (!why) {
        why = dummy;
        why_size = sizeof dummy;
    }
    memset(t, 0, sizeof *t);
    if (!o || o->type != MSGPACK_OBJECT_MAP) {
        snprintf(why, why_size, "tensor is not a map");
        return BD_ERR_SCHEMA;
    }
    const msgpack_object *name = bd_obj_get(o, "name"), *dt = bd_obj_get(o, "dtype"), *shape = bd_obj_get(o, "shape"),
                         *data = bd_obj_get(o, "data");
    if (name) {
        if (name->type != MSGPACK_OBJECT_STR) {
            snprintf(why, why_size, "tensor field \"name\" is not a string");
            return BD_ERR_SCHEMA;
        }
        t->name = name->via.str.ptr;
        t->name_len = name->via.str.size;
    }
    int d = dt && dt->type == MSGPACK_OBJECT_STR ? bd_dtype_parse(dt->via.str.ptr, dt->via.str.size) : -1;
    if (d < 0) {
        snprintf(why, why_size, "tensor field \"dtype\" missing or unknown");
        return BD_ERR_SCHEMA;
    }
    t->dtype = (bd_dtype)d;
    if (!shape || shape->type != MSGPACK_OBJECT_ARRAY || shape->via.array.size > BD_MAX_DIMS) {
        snprintf(why, why_size, "tensor field \"shape\" missing or over %d dims", BD_MAX_DIMS);
        return BD_ERR_SCHEMA;
    }
    t->ndim = (int)shape->via.array.size;
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        const msgpack_object *e = &shape->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 > ((uint64_t)1 << 40)) {
            snprintf(why, why_size, "tensor shape[%d] is not a non-negative integer", i);
            return BD_ERR_SCHEMA;
        }
        t->shape[i] = (int64_t)e->via.u64;
        // Checked before multiplying: [2^32, 2^32] must not wrap around to 0 elements.
        if (e->via.u64 && numel > ((uint64_t)1 << 40) / e->via.u64) {
            snprintf(why, why_size, "tensor has too many elements");
            return BD_ERR_SHAPE;
        }
        numel *= e->via.u64;
    }
    t->numel = (int64_t)numel;
    if (!data || data->type != MSGPACK_OBJECT_BIN) {
        snprintf(why, why_size, "tensor field \"data\" missing or not binary");
        return BD_ERR_SCHEMA;
    }
    size_t expect = (size_t)numel * bd_dtype_size(t->dtype);
    if (data->via.bin.size != expect) {
        snprintf(why, why_size, "tensor data has %u bytes, expected %zu for %s with %llu elements", data->via.bin.size,
                 expect, bd_dtype_name(t->dtype), (unsigned long long)numel);
        return BD_ERR_SHAPE;
    }
    t->data = data->via.bin.ptr;
    t->nbytes = expect;
    return BD_OK;
}

// ---- writer ---------------------------------------------------------------------------------

#define BD_WRITER_CHUNK (1u << 20)  // compress whenever this much msgpack has accumulated

struct bd_writer {
    bd_outfile *out;
    ZSTD_CCtx *cctx;
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    uint8_t *zout;
    size_t zout_cap;
    bool header_done;
    uint64_t records;
};

bd_writer *bd_writer_open(const char *path, int level, int *err_out) {
    bd_writer *w = calloc(1, sizeof *w);
    int rc = BD_ERR_NOMEM;
    if (!w) goto fail;
    msgpack_sbuffer_init(&w->sbuf);
    msgpack_packer_init(&w->pk, &w->sbuf, msgpack_sbuffer_write);
    w->cctx = ZSTD_createCCtx();
    w->zout_cap = ZSTD_CStreamOutSize();
    w->zout = malloc(w->zout_cap);
    if (!w->cctx || !w->zout) goto fail;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level ? level : ZSTD_CLEVEL_DEFAULT))) {
        rc = BD_ERR_ARG;
        goto fail;
    }
    if (!(w->out = bd_outfile_open(path, "wb"))) {
        rc = BD_ERR_IO;
        goto fail;
    }
    if (err_out) *err_out = BD_OK;
    return w;
fail:;
    int e = errno;
    if (err_out) *err_out = rc;
    bd_writer_abort(w);
    errno = e;
    return NULL;
}

static int compress(bd_writer *w, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in = {w->sbuf.data, w->sbuf.size, 0};
    FILE *f = bd_outfile_fp(w->out);
    for (;;) {
        ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        if (ZSTD_isError(left)) return BD_ERR_CORRUPT;
        if (out.pos && fwrite(w->zout, 1, out.pos, f) != out.pos) return BD_ERR_IO;
        bool finished = mode == ZSTD_e_continue ? in.pos == in.size : left == 0;
        if (finished) break;
    }
    msgpack_sbuffer_clear(&w->sbuf);
    return BD_OK;
}

int bd_writer_begin_header(bd_writer *w, const char *schema, const bd_producer *prod, uint32_t n_extra) {
    if (w->header_done || w->sbuf.size) return BD_ERR_ARG;
    msgpack_packer *pk = &w->pk;
    msgpack_pack_map(pk, 4 + n_extra);
    bd_pack_kv_str(pk, "magic", "bd");
    bd_pack_kv_str(pk, "schema", schema);
    bd_pack_str(pk, "version");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, BD_STREAM_MAJOR);
    msgpack_pack_int(pk, BD_STREAM_MINOR);
    bd_pack_str(pk, "producer");
    msgpack_pack_map(pk, 3);
    bd_pack_kv_str(pk, "tool", prod && prod->tool ? prod->tool : "libbd");
    bd_pack_kv_str(pk, "version", BD_VERSION);
    bd_pack_str(pk, "argv");
    int argc = prod && prod->argv ? prod->argc : 0;
    msgpack_pack_array(pk, (size_t)argc);
    for (int i = 0; i < argc; i++) bd_pack_str(pk, prod->argv[i]);
    return BD_OK;
}

msgpack_packer *bd_writer_packer(bd_writer *w) { return &w->pk; }
uint64_t bd_writer_records(const bd_writer *w) { return w->records; }

int bd_writer_end_object(bd_writer *w) {
    if (w->header_done) w->records++;
    w->header_done = true;
    return w->sbuf.size >= BD_WRITER_CHUNK ? compress(w, ZSTD_e_continue) : BD_OK;
}

int bd_writer_put(bd_writer *w, const void *records, size_t len, uint64_t n) {
    if (!w->header_done) return BD_ERR_ARG;
    if (msgpack_sbuffer_write(&w->sbuf, records, len) != 0) return BD_ERR_NOMEM;
    w->records += n;
    return w->sbuf.size >= BD_WRITER_CHUNK ? compress(w, ZSTD_e_continue) : BD_OK;
}

int bd_writer_flush(bd_writer *w) {
    int rc = compress(w, ZSTD_e_flush);
    if (rc == BD_OK && fflush(bd_outfile_fp(w->out)) != 0) rc = BD_ERR_IO;
    return rc;
}

int bd_writer_close(bd_writer *w) {
    if (!w->header_done) {
        bd_writer_abort(w);
        return BD_ERR_ARG;
    }
    msgpack_pack_map(&w->pk, 2);
    bd_pack_str(&w->pk, "end");
    msgpack_pack_true(&w->pk);
    bd_pack_kv_int(&w->pk, "records", (int64_t)w->records);
    int rc = compress(w, ZSTD_e_end);
    if (rc != BD_OK) {
        int e = errno;
        bd_writer_abort(w);
        errno = e;
        return rc;
    }
    rc = bd_outfile_commit(w->out);
    w->out = NULL;
    int e = errno;
    bd_writer_abort(w);
    errno = e;
    return rc;
}

void bd_writer_abort(bd_writer *w) {
    if (!w) return;
    bd_outfile_abort(w->out);
    ZSTD_freeCCtx(w->cctx);
    msgpack_sbuffer_destroy(&w->sbuf);
    free(w->zout);
    free(w);
}

void bd_pack_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void bd_pack_kv_str(msgpack_packer *pk, const char *key, const char *val) {
    bd_pack_str(pk, key);
    bd_pack_str(pk, val);
}

void bd_pack_kv_int(msgpack_packer *pk, const char *key, int64_t val) {
    bd_pack_str(pk, key);
    msgpack_pack_int64(pk, val);
}

void bd_pack_kv_double(msgpack_packer *pk, const char *key, double val) {
    bd_pack_str(pk, key);
    msgpack_pack_double(pk, val);
}

void bd_pack_tensor(msgpack_packer *pk, const char *name, bd_dtype dtype, int ndim, const int64_t *shape,
                    const void *data) {
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
    msgpack_pack_map(pk, 4);
    bd_pack_kv_str(pk, "name", name ? name : "");
    bd_pack_kv_str(pk, "dtype", bd_dtype_name(dtype));
    bd_pack_str(pk, "shape");
    msgpack_pack_array(pk, (size_t)ndim);
    for (int i = 0; i < ndim; i++) msgpack_pack_int64(pk, shape[i]);
    bd_pack_str(pk, "data");
    size_t nbytes = numel * bd_dtype_size(dtype);
    msgpack_pack_bin(pk, nbytes);
    msgpack_pack_bin_body(pk, data, nbytes);
}
