// bd streams: zstd frames (content checksum on) holding msgpack objects:
// a header map, zero or more record maps, and a trailer {"end":true,"records":N}.
// See man/bd-stream.5. Readers stream: memory is bounded by the largest record.
#ifndef BD_STREAM_H
#define BD_STREAM_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bd_dtype.h"
#include "bd_error.h"

#define BD_STREAM_MAJOR 1
#define BD_STREAM_MINOR 0
#define BD_MAX_DIMS 8
// A single msgpack object (header or record) larger than this is refused as malformed.
#define BD_MAX_OBJECT_BYTES ((size_t)1 << 34)
#define BD_MAX_NESTING 64

// ---- reading ----------------------------------------------------------------------------

typedef struct bd_reader bd_reader;

// Opens path ("-" or NULL: stdin) and reads the header. schema: required schema name, or
// NULL to accept any. On failure returns NULL, a code in *err_out (if given) and a message
// without the path in why (if given: "cannot open: No such file or directory",
// "header: schema is ...").
bd_reader *bd_reader_open(const char *path, const char *schema, int *err_out, char *why, size_t why_size);
// Same over an open FILE (not closed by bd_reader_close); name is used in messages.
bd_reader *bd_reader_open_file(FILE *f, const char *name, const char *schema, int *err_out, char *why, size_t why_size);

// The header map, valid until bd_reader_close.
const msgpack_object *bd_reader_header(const bd_reader *r);
const char *bd_reader_schema(const bd_reader *r);  // NUL-terminated copy

// Reads the next record. Returns BD_OK with *rec pointing at the record map (valid until the
// next call), BD_EOF after a verified trailer, or an error code (see bd_reader_error).
BD_MUST_CHECK int bd_reader_next(bd_reader *r, const msgpack_object **rec);
// 1-based index of the record last returned or failed on (0: the header).
uint64_t bd_reader_record_index(const bd_reader *r);
// Human message for the last error: "record 12: truncated stream (no trailer)".
const char *bd_reader_error(const bd_reader *r);
const char *bd_reader_name(const bd_reader *r);
void bd_reader_close(bd_reader *r);

// ---- looking into msgpack objects -------------------------------------------------------

// Value of key in a map, or NULL if absent or obj is not a map.
const msgpack_object *bd_obj_get(const msgpack_object *map, const char *key);
bool bd_obj_is_str(const msgpack_object *o, const char *s);
// Copies a str object into buf (NUL-terminated); BD_ERR_SCHEMA if not a str or too long.
BD_MUST_CHECK int bd_obj_strcpy(const msgpack_object *o, char *buf, size_t size);
// Integer value (positive or negative msgpack int) in *out; BD_ERR_SCHEMA otherwise.
BD_MUST_CHECK int bd_obj_int(const msgpack_object *o, int64_t *out);
// The same, and lo <= *out <= hi: BD_ERR_VALUE outside (*out still set), so that a value
// is never narrowed into the wrong one (2^32 + 4 read as 4).
BD_MUST_CHECK int bd_obj_int_in(const msgpack_object *o, int64_t lo, int64_t hi, int64_t *out);
// Number (int or float) as double.
BD_MUST_CHECK int bd_obj_num(const msgpack_object *o, double *out);

// A tensor inside a record: {"name":str, "dtype":str, "shape":[...], "data":bin}.
typedef struct {
    const char *name;  // not NUL-terminated
    size_t name_len;
    bd_dtype dtype;
    int ndim;
    int64_t shape[BD_MAX_DIMS];
    int64_t numel;
    const void *data;  // little-endian, any alignment; points into the record
    size_t nbytes;
} bd_tensor_view;

// Decodes a tensor map and checks that the byte count matches shape x dtype. On failure
// writes a reason into why (may be NULL) and returns BD_ERR_SCHEMA or BD_ERR_SHAPE.
BD_MUST_CHECK int bd_obj_tensor(const msgpack_object *o, bd_tensor_view *t, char *why, size_t why_size);
bool bd_obj_is_tensor(const msgpack_object *o);
// Checks every tensor inside o (maps with a "dtype" and a "shape" or "data", at any depth)
// with bd_obj_tensor: what a consumer would refuse, a check refuses too.
BD_MUST_CHECK int bd_obj_check_tensors(const msgpack_object *o, char *why, size_t why_size);

// ---- writing ----------------------------------------------------------------------------

typedef struct bd_writer bd_writer;

typedef struct {
    const char *tool;  // producer tool name
    int argc;          // producer argv, recorded in the header
    char *const *argv;
} bd_producer;

// Creates path ("-" or NULL: stdout). A file is written under a temporary name in the same
// directory and renamed in bd_writer_close; on abort (or process exit through the tool
// helper) it is removed. level: zstd level (0 = default).
bd_writer *bd_writer_open(const char *path, int level, int *err_out);
// Writes the header map: magic, schema, version, producer, then n_extra key/value pairs
// that the caller packs right after this call with bd_writer_packer().
BD_MUST_CHECK int bd_writer_begin_header(bd_writer *w, const char *schema, const bd_producer *prod, uint32_t n_extra);
// Every record is one msgpack map packed by the caller, then bd_writer_end_object().
msgpack_packer *bd_writer_packer(bd_writer *w);
// Marks the end of the header or of a record: counts records, compresses when enough has
// accumulated. Returns BD_OK or an I/O error.
BD_MUST_CHECK int bd_writer_end_object(bd_writer *w);
// Appends n records already packed (msgpack maps back to back, e.g. kept from another stream)
// after the header. Returns BD_OK or an I/O error.
BD_MUST_CHECK int bd_writer_put(bd_writer *w, const void *records, size_t len, uint64_t n);
// Flushes compressed data so far to the output (for pipes: the reader sees records now).
BD_MUST_CHECK int bd_writer_flush(bd_writer *w);
uint64_t bd_writer_records(const bd_writer *w);
// Writes the trailer, ends the zstd frame, closes, renames into place. Frees w.
BD_MUST_CHECK int bd_writer_close(bd_writer *w);
// Discards everything: removes the temporary file. Frees w.
void bd_writer_abort(bd_writer *w);

// Packing helpers.
void bd_pack_str(msgpack_packer *pk, const char *s);
void bd_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
void bd_pack_kv_int(msgpack_packer *pk, const char *key, int64_t val);
void bd_pack_kv_double(msgpack_packer *pk, const char *key, double val);
// Packs a tensor map; data is n elements of dtype in host order (little-endian hosts only).
void bd_pack_tensor(msgpack_packer *pk, const char *name, bd_dtype dtype, int ndim, const int64_t *shape,
                    const void *data);

#endif
