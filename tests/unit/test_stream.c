// Stream library: round trips of every dtype, empty and large records, truncation at every
// byte offset, flipped bytes, wrong schema / newer version, malformed msgpack.
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "bd_stream.h"
#include "bd_test.h"

static char path_buf[4200];
static const char *tmp_path(const char *name) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", bd_test_tmpdir(), name);
    return path_buf;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

// Reads a whole stream from memory; returns the final code (BD_EOF when clean) and the
// number of records seen.
static int read_mem(const void *data, size_t len, const char *schema, uint64_t *nrec) {
    FILE *f = fmemopen((void *)data, len ? len : 1, "rb");
    if (len == 0) {
        fclose(f);
        f = fopen("/dev/null", "rb");
    }
    int err;
    bd_reader *r = bd_reader_open_file(f, "mem", schema, &err, NULL, 0);
    *nrec = 0;
    if (!r) {
        fclose(f);
        return err;
    }
    const msgpack_object *rec;
    int rc;
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) (*nrec)++;
    bd_reader_close(r);
    fclose(f);
    return rc;
}

// A small stream with n records {"i": i, "x": f32 tensor [i]} written to path.
static void write_small(const char *path, int n, int level) {
    int err;
    bd_writer *w = bd_writer_open(path, level, &err);
    ck_assert_ptr_nonnull(w);
    bd_producer prod = {"test", 0, NULL};
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.test", &prod, 1), BD_OK);
    bd_pack_kv_str(bd_writer_packer(w), "note", "small");
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    for (int i = 0; i < n; i++) {
        msgpack_packer *pk = bd_writer_packer(w);
        msgpack_pack_map(pk, 2);
        bd_pack_kv_int(pk, "i", i);
        bd_pack_str(pk, "x");
        float x[3] = {(float)i, 0.5f, -1.0f};
        int64_t shape[1] = {3};
        bd_pack_tensor(pk, "x", BD_F32, 1, shape, x);
        ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
        if (i == n / 2) ck_assert_int_eq(bd_writer_flush(w), BD_OK);  // a second zstd block
    }
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
}

START_TEST(test_roundtrip_dtypes) {
    const char *p = tmp_path("dtypes.bdz");
    int err;
    bd_writer *w = bd_writer_open(p, 0, &err);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.test", NULL, 0), BD_OK);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    // Each dtype gets values whose bytes we know: element k of dtype d is byte pattern
    // (d*16 + k) repeated, so a reader that swaps, shifts or truncates is caught.
    uint8_t bytes[BD_DTYPE_COUNT][6 * 4];
    for (int d = 0; d < BD_DTYPE_COUNT; d++) {
        size_t es = bd_dtype_size((bd_dtype)d);
        for (size_t k = 0; k < 6; k++)
            for (size_t b = 0; b < es; b++) bytes[d][k * es + b] = (uint8_t)(d * 16 + k + b);
        msgpack_packer *pk = bd_writer_packer(w);
        msgpack_pack_map(pk, 1);
        bd_pack_str(pk, "t");
        int64_t shape[2] = {2, 3};
        bd_pack_tensor(pk, bd_dtype_name((bd_dtype)d), (bd_dtype)d, 2, shape, bytes[d]);
        ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    }
    ck_assert_int_eq(bd_writer_close(w), BD_OK);

    bd_reader *r = bd_reader_open(p, "bd.test", &err, NULL, 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(bd_reader_schema(r), "bd.test");
    ck_assert(bd_obj_is_str(bd_obj_get(bd_reader_header(r), "magic"), "bd"));
    const msgpack_object *rec;
    for (int d = 0; d < BD_DTYPE_COUNT; d++) {
        ck_assert_int_eq(bd_reader_next(r, &rec), BD_OK);
        bd_tensor_view t;
        char why[200];
        ck_assert_int_eq(bd_obj_tensor(bd_obj_get(rec, "t"), &t, why, sizeof why), BD_OK);
        ck_assert_int_eq(t.dtype, d);
        ck_assert_int_eq(t.ndim, 2);
        ck_assert_int_eq(t.shape[0], 2);
        ck_assert_int_eq(t.shape[1], 3);
        ck_assert_int_eq(t.numel, 6);
        ck_assert_uint_eq(t.nbytes, 6 * bd_dtype_size((bd_dtype)d));
        ck_assert_mem_eq(t.data, bytes[d], t.nbytes);
        ck_assert_uint_eq(t.name_len, strlen(bd_dtype_name((bd_dtype)d)));
    }
    ck_assert_int_eq(bd_reader_next(r, &rec), BD_EOF);
    ck_assert_int_eq(bd_reader_next(r, &rec), BD_EOF);  // stays at the end
    bd_reader_close(r);
}
END_TEST

START_TEST(test_empty_and_large_records) {
    const char *p = tmp_path("large.bdz");
    int err;
    bd_writer *w = bd_writer_open(p, 1, &err);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.test", NULL, 0), BD_OK);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    msgpack_pack_map(bd_writer_packer(w), 0);  // an empty record
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    // A 24 MB record (bigger than every internal buffer), incompressible-ish content.
    size_t n = 6u << 20;
    uint32_t *big = malloc(n * 4);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        big[i] = x;
    }
    msgpack_packer *pk = bd_writer_packer(w);
    msgpack_pack_map(pk, 1);
    bd_pack_str(pk, "ids");
    int64_t shape[1] = {(int64_t)n};
    bd_pack_tensor(pk, "ids", BD_U32, 1, shape, big);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    int64_t zero[1] = {0};
    pk = bd_writer_packer(w);
    msgpack_pack_map(pk, 1);
    bd_pack_str(pk, "ids");
    bd_pack_tensor(pk, "empty", BD_U32, 1, zero, big);  // zero-element tensor
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    ck_assert_uint_eq(bd_writer_records(w), 3);
    ck_assert_int_eq(bd_writer_close(w), BD_OK);

    bd_reader *r = bd_reader_open(p, NULL, &err, NULL, 0);
    ck_assert_ptr_nonnull(r);
    const msgpack_object *rec;
    ck_assert_int_eq(bd_reader_next(r, &rec), BD_OK);
    ck_assert_int_eq(rec->type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(rec->via.map.size, 0);
    ck_assert_int_eq(bd_reader_next(r, &rec), BD_OK);
    bd_tensor_view t;
    ck_assert_int_eq(bd_obj_tensor(bd_obj_get(rec, "ids"), &t, NULL, 0), BD_OK);
    ck_assert_int_eq(t.numel, (int64_t)n);
    ck_assert_mem_eq(t.data, big, n * 4);
    ck_assert_int_eq(bd_reader_next(r, &rec), BD_OK);
    ck_assert_int_eq(bd_obj_tensor(bd_obj_get(rec, "ids"), &t, NULL, 0), BD_OK);
    ck_assert_int_eq(t.numel, 0);
    ck_assert_uint_eq(t.nbytes, 0);
    ck_assert_int_eq(bd_reader_next(r, &rec), BD_EOF);
    ck_assert_uint_eq(bd_reader_record_index(r), 4);
    bd_reader_close(r);
    free(big);
}
END_TEST

START_TEST(test_truncated_at_every_offset) {
    const char *p = tmp_path("small.bdz");
    write_small(p, 20, 0);
    size_t len;
    char *data = read_all(p, &len);
    uint64_t n;
    ck_assert_int_eq(read_mem(data, len, "bd.test", &n), BD_EOF);
    ck_assert_uint_eq(n, 20);
    for (size_t cut = 0; cut < len; cut++) {
        int rc = read_mem(data, cut, "bd.test", &n);
        ck_assert_msg(rc == BD_ERR_TRUNCATED || rc == BD_ERR_CORRUPT,
                      "cut at %zu of %zu: got %d (%s), expected truncated", cut, len, rc, bd_strerror(rc));
    }
    free(data);
}
END_TEST

START_TEST(test_flipped_bytes) {
    const char *p = tmp_path("flip.bdz");
    write_small(p, 20, 0);
    size_t len;
    char *data = read_all(p, &len);
    size_t plain_cap = 1 << 16;
    char *plain = malloc(plain_cap), *plain2 = malloc(plain_cap);
    size_t plain_len = ZSTD_decompress(plain, plain_cap, data, len);
    ck_assert(!ZSTD_isError(plain_len));
    int harmless = 0, tried = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            data[i] ^= (char)(1 << bit);
            uint64_t n;
            int rc = read_mem(data, len, "bd.test", &n);
            tried++;
            if (rc == BD_EOF) {
                // Some bits do not change what zstd decodes (window size, padding bits of
                // the entropy-coded sections); then the content must be exactly the original.
                size_t n2 = ZSTD_decompress(plain2, plain_cap, data, len);
                ck_assert_msg(!ZSTD_isError(n2) && n2 == plain_len && memcmp(plain, plain2, n2) == 0,
                              "flip at byte %zu bit %d changed the content but read as clean", i, bit);
                ck_assert_uint_eq(n, 20);
                harmless++;
            } else {
                ck_assert_msg(rc < -1, "flip at byte %zu: code %d", i, rc);
            }
            data[i] ^= (char)(1 << bit);
        }
    }
    ck_assert_msg(harmless * 20 < tried, "%d of %d flips went unnoticed", harmless, tried);
    free(data);
    free(plain);
    free(plain2);
}
END_TEST

// Writes raw msgpack bytes as one checksummed zstd frame to path.
static void write_raw(const char *path, const void *msg, size_t n) {
    size_t cap = ZSTD_compressBound(n);
    void *z = malloc(cap);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    size_t zn = ZSTD_compress2(c, z, cap, msg, n);
    ck_assert(!ZSTD_isError(zn));
    FILE *f = fopen(path, "wb");
    fwrite(z, 1, zn, f);
    fclose(f);
    ZSTD_freeCCtx(c);
    free(z);
}

// msgpack written by hand (independent of msgpack-c's packer).
// {"magic":"bd","schema":"bd.x","version":[MAJ,0]}
#define HDR(maj)        \
    "\x83\xa5magic\xa2" \
    "bd"                \
    "\xa6schema\xa4"    \
    "bd.x"              \
    "\xa7version\x92" maj "\x00"
#define TRAILER(n) \
    "\x82\xa3"     \
    "end"          \
    "\xc3\xa7records" n

static int read_raw(const char *msg, size_t n, const char *schema, char *err_out) {
    const char *p = tmp_path("raw.bdz");
    write_raw(p, msg, n);
    int err;
    bd_reader *r = bd_reader_open(p, schema, &err, err_out, 600);
    if (!r) return err;
    const msgpack_object *rec;
    int rc;
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {}
    strcpy(err_out, bd_reader_error(r));
    bd_reader_close(r);
    return rc;
}

START_TEST(test_hand_written_streams) {
    char err[600];
    // Valid: header, one record {"a":1}, trailer.
    static const char ok[] = HDR("\x01") "\x81\xa1"
                                         "a"
                                         "\x01" TRAILER("\x01");
    ck_assert_int_eq(read_raw(ok, sizeof ok - 1, "bd.x", err), BD_EOF);
    // Wrong schema.
    ck_assert_int_eq(read_raw(ok, sizeof ok - 1, "bd.tokens", err), BD_ERR_SCHEMA);
    ck_assert_ptr_nonnull(strstr(err, "expected \"bd.tokens\""));
    // Newer major version.
    static const char v2[] = HDR("\x02") TRAILER("\x00");
    ck_assert_int_eq(read_raw(v2, sizeof v2 - 1, NULL, err), BD_ERR_VERSION);
    ck_assert_ptr_nonnull(strstr(err, "newer"));
    // Trailer count disagrees.
    static const char badcount[] = HDR("\x01") "\x81\xa1"
                                               "a"
                                               "\x01" TRAILER("\x02");
    ck_assert_int_eq(read_raw(badcount, sizeof badcount - 1, NULL, err), BD_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err, "record 2"));
    // No trailer.
    static const char notrailer[] = HDR("\x01") "\x81\xa1"
                                                "a"
                                                "\x01";
    ck_assert_int_eq(read_raw(notrailer, sizeof notrailer - 1, NULL, err), BD_ERR_TRUNCATED);
    ck_assert_ptr_nonnull(strstr(err, "record 2: truncated"));
    // A record that is not a map.
    static const char notmap[] = HDR("\x01") "\x93\x01\x02\x03" TRAILER("\x01");
    ck_assert_int_eq(read_raw(notmap, sizeof notmap - 1, NULL, err), BD_ERR_MALFORMED);
    // The never-used type byte 0xc1.
    static const char c1[] = HDR("\x01") "\x81\xa1"
                                         "a"
                                         "\xc1" TRAILER("\x01");
    ck_assert_int_eq(read_raw(c1, sizeof c1 - 1, NULL, err), BD_ERR_MALFORMED);
    // An array claiming 2^32-1 elements with 3 present: truncated, never a huge allocation.
    static const char huge[] = HDR("\x01") "\x81\xa1"
                                           "a"
                                           "\xdd\xff\xff\xff\xff\x01\x02\x03";
    ck_assert_int_eq(read_raw(huge, sizeof huge - 1, NULL, err), BD_ERR_TRUNCATED);
    // Data after the trailer.
    static const char after[] = HDR("\x01") TRAILER("\x00") "\x80";
    ck_assert_int_eq(read_raw(after, sizeof after - 1, NULL, err), BD_ERR_MALFORMED);
    // Header without magic.
    static const char nomagic[] = "\x81\xa6schema\xa4"
                                  "bd.x" TRAILER("\x00");
    ck_assert_int_eq(read_raw(nomagic, sizeof nomagic - 1, NULL, err), BD_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err, "magic"));
    // Nesting deeper than the limit.
    char deep[400];
    size_t n = sizeof HDR("\x01") - 1;
    memcpy(deep, HDR("\x01"), n);
    deep[n++] = (char)0x81;
    deep[n++] = (char)0xa1;
    deep[n++] = 'a';
    for (int i = 0; i < 100; i++) deep[n++] = (char)0x91;
    deep[n++] = 0;
    ck_assert_int_eq(read_raw(deep, n, NULL, err), BD_ERR_MALFORMED);
}
END_TEST

START_TEST(test_tensor_checks) {
    // {"name":"w","dtype":"f32","shape":[2,2],"data":bin(12)} has 12 bytes for 4 floats.
    static const char bad[] = "\x84\xa4name\xa1w\xa5"
                              "dtype\xa3"
                              "f32\xa5shape\x92\x02\x02\xa4"
                              "data\xc4\x0c"
                              "012345678901";
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, bad, sizeof bad - 1, &off), MSGPACK_UNPACK_SUCCESS);
    bd_tensor_view t;
    char why[200];
    ck_assert_int_eq(bd_obj_tensor(&u.data, &t, why, sizeof why), BD_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(why, "12 bytes, expected 16"));
    static const char baddt[] = "\x84\xa4name\xa1w\xa5"
                                "dtype\xa3"
                                "f64\xa5shape\x91\x01\xa4"
                                "data\xc4\x08"
                                "01234567";
    off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, baddt, sizeof baddt - 1, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(bd_obj_tensor(&u.data, &t, why, sizeof why), BD_ERR_SCHEMA);
    ck_assert_ptr_nonnull(strstr(why, "dtype"));
    // shape [2^32, 2^32]: 2^64 elements must not wrap around to 0 and pass with empty data.
    static const char huge[] = "\x83\xa5"
                               "dtype\xa3"
                               "f32\xa5shape\x92\xcf\x00\x00\x00\x01\x00\x00\x00\x00"
                               "\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa4"
                               "data\xc4\x00";
    off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, huge, sizeof huge - 1, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(bd_obj_tensor(&u.data, &t, why, sizeof why), BD_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(why, "too many elements"));
    // bd_obj_check_tensors finds a bad tensor at any depth: {"a": [1, {"w": <12 bytes for 4 floats>}]};
    // a map with a dtype and a non-array shape is a broken tensor, not a plain map.
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    bd_pack_str(&pk, "a");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_map(&pk, 1);
    bd_pack_str(&pk, "w");
    msgpack_sbuffer_write(&sb, bad, sizeof bad - 1);
    off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(bd_obj_check_tensors(&u.data, why, sizeof why), BD_ERR_SHAPE);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    bd_pack_kv_str(&pk, "dtype", "f32");
    bd_pack_kv_str(&pk, "shape", "2x2");
    off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(bd_obj_check_tensors(&u.data, why, sizeof why), BD_ERR_SCHEMA);
    msgpack_sbuffer_clear(&sb);
    float two[2] = {1, 2};
    int64_t shp[1] = {2};
    msgpack_pack_map(&pk, 2);
    bd_pack_kv_str(&pk, "note", "ok");
    bd_pack_str(&pk, "t");
    bd_pack_tensor(&pk, "t", BD_F32, 1, shp, two);
    off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(bd_obj_check_tensors(&u.data, why, sizeof why), BD_OK);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
}
END_TEST

START_TEST(test_writer_abort_leaves_nothing) {
    const char *p = tmp_path("aborted.bdz");
    remove(p);
    int err;
    bd_writer *w = bd_writer_open(p, 0, &err);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.test", NULL, 0), BD_OK);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_null(f);  // nothing under the final name while writing
    bd_writer_abort(w);
    f = fopen(p, "rb");
    ck_assert_ptr_null(f);
    // And no temporary file is left in the directory.
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q 'aborted.bdz.tmp'", bd_test_tmpdir());
    ck_assert_int_ne(system(cmd), 0);
}
END_TEST

START_TEST(test_multi_frame_concatenation) {
    // Two zstd frames (a writer may emit several): header+record in one, trailer in another.
    static const char part1[] = HDR("\x01") "\x81\xa1"
                                            "a"
                                            "\x01";
    static const char part2[] = TRAILER("\x01");
    const char *p1 = tmp_path("f1.zst");
    write_raw(p1, part1, sizeof part1 - 1);
    size_t n1, n2;
    char *a = read_all(p1, &n1);
    const char *p2 = tmp_path("f2.zst");
    write_raw(p2, part2, sizeof part2 - 1);
    char *b = read_all(p2, &n2);
    char *both = malloc(n1 + n2);
    memcpy(both, a, n1);
    memcpy(both + n1, b, n2);
    uint64_t n;
    ck_assert_int_eq(read_mem(both, n1 + n2, NULL, &n), BD_EOF);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(read_mem(both, n1, NULL, &n), BD_ERR_TRUNCATED);  // first frame alone
    free(a);
    free(b);
    free(both);
}
END_TEST

Suite *suite_stream(void) {
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roundtrip_dtypes);
    tcase_add_test(tc, test_empty_and_large_records);
    tcase_add_test(tc, test_truncated_at_every_offset);
    tcase_add_test(tc, test_flipped_bytes);
    tcase_add_test(tc, test_hand_written_streams);
    tcase_add_test(tc, test_tensor_checks);
    tcase_add_test(tc, test_writer_abort_leaves_nothing);
    tcase_add_test(tc, test_multi_frame_concatenation);
    suite_add_tcase(s, tc);
    return s;
}
