// dtype conversions against values worked by hand, strict number parsing, the msgpack
// object scanner, progress formatting, content hashes of files.
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_dtype.h"
#include "bd_filehash.h"
#include "bd_hugemem.h"
#include "bd_log.h"
#include "bd_msgpack_scan.h"
#include "bd_parse.h"
#include "bd_progress.h"
#include "bd_test.h"
#include "bd_threads.h"

START_TEST(test_half_floats) {
    // f16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff (max), 2^-24 = 0x0001 (min subnormal),
    // 0.1 -> 0x2e66 (0.0999755859375), inf = 0x7c00.
    ck_assert_uint_eq(bd_f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(bd_f32_to_f16(-2.0f), 0xc000);
    ck_assert_uint_eq(bd_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(bd_f32_to_f16(70000.0f), 0x7c00);
    ck_assert_uint_eq(bd_f32_to_f16(5.9604644775390625e-08f), 0x0001);
    ck_assert_uint_eq(bd_f32_to_f16(0.1f), 0x2e66);
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties to even gives 1.0.
    ck_assert_uint_eq(bd_f32_to_f16(1.00048828125f), 0x3c00);
    ck_assert_uint_eq(bd_f32_to_f16(1.00146484375f), 0x3c02);  // 1 + 3*2^-11 -> up to even
    ck_assert_close(bd_f16_to_f32(0x3c00), 1.0, 0);
    ck_assert_close(bd_f16_to_f32(0x2e66), 0.0999755859375, 0);
    ck_assert_close(bd_f16_to_f32(0x0001), 5.9604644775390625e-08, 0);
    ck_assert_close(bd_f16_to_f32(0x8400), -6.103515625e-05, 0);
    ck_assert(isinf(bd_f16_to_f32(0x7c00)));
    ck_assert(isnan(bd_f16_to_f32(0x7e00)));
    // bf16: 1.0 = 0x3f80, 3.140625 = 0x4049; 1 + 2^-8 is a tie -> even (0x3f80).
    ck_assert_uint_eq(bd_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(bd_f32_to_bf16(1.00390625f), 0x3f80);
    ck_assert_uint_eq(bd_f32_to_bf16(1.01171875f), 0x3f82);  // 1 + 3*2^-8 -> up to even
    ck_assert_close(bd_bf16_to_f32(0x4049), 3.140625, 0);
    ck_assert(isnan(bd_bf16_to_f32(bd_f32_to_bf16(NAN))));
    // Every f16 value survives f16 -> f32 -> f16.
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaNs
        ck_assert_uint_eq(bd_f32_to_f16(bd_f16_to_f32((uint16_t)h)), h);
    }
}
END_TEST

START_TEST(test_convert_to_f32) {
    const uint8_t b[8] = {0x00, 0x00, 0x80, 0x3f, 0xff, 0xff, 0xff, 0xff};  // 1.0f; -1 as i32
    float out[2];
    bd_convert_to_f32(out, b, BD_F32, 1);
    ck_assert_close(out[0], 1.0, 0);
    bd_convert_to_f32(out, b + 4, BD_I32, 1);
    ck_assert_close(out[0], -1.0, 0);
    bd_convert_to_f32(out, b + 4, BD_U32, 1);
    ck_assert_close(out[0], 4294967296.0, 0);  // 2^32-1 rounds to 2^32 in f32
    bd_convert_to_f32(out, b + 4, BD_I8, 2);
    ck_assert_close(out[1], -1.0, 0);
    bd_convert_to_f32(out, b + 2, BD_BF16, 1);
    ck_assert_close(out[0], 1.0, 0);  // 0x3f80
    ck_assert_int_eq(bd_dtype_parse("bf16", 4), BD_BF16);
    ck_assert_int_eq(bd_dtype_parse("f64", 3), -1);
}
END_TEST

START_TEST(test_parse_numbers) {
    int64_t v;
    double d;
    ck_assert_int_eq(bd_parse_int64("42", 0, 100, &v), BD_OK);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(bd_parse_int64("-3", -5, 5, &v), BD_OK);
    ck_assert_int_eq(v, -3);
    ck_assert_int_eq(bd_parse_int64("42x", 0, 100, &v), BD_ERR_VALUE);
    ck_assert_int_eq(bd_parse_int64("", 0, 100, &v), BD_ERR_VALUE);
    ck_assert_int_eq(bd_parse_int64(" 4", 0, 100, &v), BD_ERR_VALUE);
    ck_assert_int_eq(bd_parse_int64("101", 0, 100, &v), BD_ERR_ARG);
    ck_assert_int_eq(bd_parse_int64("99999999999999999999", 0, INT64_MAX, &v), BD_ERR_ARG);
    ck_assert_int_eq(bd_parse_double("0.7", 0, 2, &d), BD_OK);
    ck_assert_close(d, 0.7, 0);
    ck_assert_int_eq(bd_parse_double("1e-5", 0, 1, &d), BD_OK);
    ck_assert_close(d, 1e-5, 0);
    ck_assert_int_eq(bd_parse_double("nan", 0, 1, &d), BD_ERR_VALUE);
    ck_assert_int_eq(bd_parse_double("inf", 0, 1, &d), BD_ERR_VALUE);
    ck_assert_int_eq(bd_parse_double("0.5.", 0, 1, &d), BD_ERR_VALUE);
    ck_assert_int_eq(bd_parse_double("3", 0, 2, &d), BD_ERR_ARG);
}
END_TEST

START_TEST(test_msgpack_scan) {
    // {"a":[1,{"b":"xy"}],"c":1.5(f32)} = 0x82 a1 61 92 01 81 a1 62 a2 78 79 a1 63 ca 3fc00000
    static const uint8_t obj[] = {0x82, 0xa1, 'a', 0x92, 0x01, 0x81, 0xa1, 'b',  0xa2, 'x',
                                  'y',  0xa1, 'c', 0xca, 0x3f, 0xc0, 0x00, 0x00, 0x07};
    bd_msgpack_scan s;
    // Fed one byte at a time, it completes exactly after byte 18 (the trailing 0x07 is the
    // next object).
    bd_msgpack_scan_init(&s, 0);
    for (size_t n = 1; n <= sizeof obj; n++) {
        int r = bd_msgpack_scan_step(&s, obj, n);
        if (n < 18)
            ck_assert_int_eq(r, 0);
        else {
            ck_assert_int_eq(r, 1);
            break;
        }
    }
    ck_assert_uint_eq(s.pos, 18);
    // bin32 declaring 4 GB: needs more data, no overflow.
    static const uint8_t bin[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    bd_msgpack_scan_init(&s, 0);
    ck_assert_int_eq(bd_msgpack_scan_step(&s, bin, sizeof bin), 0);
    static const uint8_t bad[] = {0x91, 0xc1};
    bd_msgpack_scan_init(&s, 0);
    ck_assert_int_eq(bd_msgpack_scan_step(&s, bad, sizeof bad), -1);
    static const uint8_t empty_map[] = {0x80};
    bd_msgpack_scan_init(&s, 0);
    ck_assert_int_eq(bd_msgpack_scan_step(&s, empty_map, 1), 1);
    ck_assert_uint_eq(s.pos, 1);
}
END_TEST

START_TEST(test_progress_format) {
    char buf[200];
    // 250 of 1000 in 2 s: 125/s, 750 left -> 6 s.
    bd_progress_format(buf, sizeof buf, "eval", 250, 1000, "tok", 2.0);
    ck_assert_str_eq(buf, "eval 250/1000 tok (25.0%) 125.0 tok/s ETA 0:00:06");
    bd_progress_format(buf, sizeof buf, "gen", 5000, 0, "tok", 2.0);
    ck_assert_str_eq(buf, "gen 5000 tok 2.50k tok/s");
}
END_TEST

// How progress is shown: live on a terminal, plain lines elsewhere, BD_PROGRESS's seconds or 0.
START_TEST(test_progress_mode) {
    double every;
    ck_assert_int_eq(bd_progress_mode(NULL, true, BD_LOG_WARN, &every), BD_PROGRESS_LIVE);
    ck_assert_int_eq(bd_progress_mode(NULL, false, BD_LOG_WARN, &every), BD_PROGRESS_PLAIN);
    ck_assert(every == BD_PROGRESS_EVERY);
    ck_assert_int_eq(bd_progress_mode("", false, BD_LOG_INFO, &every), BD_PROGRESS_PLAIN);
    ck_assert_int_eq(bd_progress_mode(NULL, true, BD_LOG_ERROR, &every), BD_PROGRESS_OFF);  // -q
    ck_assert_int_eq(bd_progress_mode("0", true, BD_LOG_WARN, &every), BD_PROGRESS_OFF);
    ck_assert_int_eq(bd_progress_mode("2.5", true, BD_LOG_WARN, &every), BD_PROGRESS_PLAIN);
    ck_assert(every == 2.5);
    ck_assert_int_eq(bd_progress_mode("1", false, BD_LOG_WARN, &every), BD_PROGRESS_PLAIN);
    ck_assert(every == 1.0);
    // Malformed: as if unset.
    ck_assert_int_eq(bd_progress_mode("yes", true, BD_LOG_WARN, &every), BD_PROGRESS_LIVE);
    ck_assert(every == BD_PROGRESS_EVERY);
    ck_assert_int_eq(bd_progress_mode("-3", false, BD_LOG_WARN, &every), BD_PROGRESS_PLAIN);
    ck_assert(every == BD_PROGRESS_EVERY);
}
END_TEST

// bd_parallel_for: every index once, chunks contiguous and set by n and the thread count
// alone, nested calls and calls from two threads at once (these run inline).
typedef struct {
    int *hits;
    int *chunk_of;  // which call's chunk covered the index: its start
    int nested;
} pf_ctx;

static void pf_mark(void *arg, int start, int end) {
    pf_ctx *c = arg;
    for (int i = start; i < end; i++) {
        __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
        c->chunk_of[i] = start;
    }
    if (c->nested) {
        pf_ctx inner = {c->hits + start, c->chunk_of + start, 0};
        bd_parallel_for(end - start, 1, pf_mark, &inner);  // adds a second hit in place
    }
}

static void *pf_other_thread(void *arg) {
    int *hits = arg;
    int chunk[1000];
    pf_ctx c = {hits, chunk, 0};
    for (int r = 0; r < 20; r++) bd_parallel_for(1000, 1, pf_mark, &c);
    return NULL;
}

START_TEST(test_parallel_for) {
    int hits[1000], chunk_of[1000];
    for (int nt = 1; nt <= 5; nt++) {
        bd_set_num_threads(nt);
        int sizes[] = {0, 1, 2, 3, 7, 64, 999, 1000};
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
            for (int rep = 0; rep < 3; rep++) {
                int n = sizes[k];
                memset(hits, 0, sizeof hits);
                pf_ctx c = {hits, chunk_of, 0};
                bd_parallel_for(n, 1, pf_mark, &c);
                int parts = nt < n ? nt : (n > 0 ? n : 1);
                for (int i = 0; i < n; i++) {
                    ck_assert_int_eq(hits[i], 1);
                    // The chunk holding i starts at floor(n*t/parts) for t = floor of i's share.
                    int t = 0;
                    while ((long long)n * (t + 1) / parts <= i) t++;
                    ck_assert_int_eq(chunk_of[i], (int)((long long)n * t / parts));
                }
            }
        // min_per_thread: 10 items with at least 4 per thread give 2 chunks.
        memset(hits, 0, sizeof hits);
        pf_ctx c = {hits, chunk_of, 0};
        bd_parallel_for(10, 4, pf_mark, &c);
        for (int i = 0; i < 10; i++) ck_assert_int_eq(chunk_of[i], nt >= 2 ? (i < 5 ? 0 : 5) : 0);
        // Nested: the inner call runs inline over its chunk, so every index gets two hits.
        memset(hits, 0, sizeof hits);
        c.nested = 1;
        bd_parallel_for(100, 1, pf_mark, &c);
        for (int i = 0; i < 100; i++) ck_assert_int_eq(hits[i], 2);
    }
    // Two threads calling at once: every call still covers every index once.
    bd_set_num_threads(2);
    static int other_hits[1000];
    memset(other_hits, 0, sizeof other_hits);
    pthread_t tid;
    ck_assert_int_eq(pthread_create(&tid, NULL, pf_other_thread, other_hits), 0);
    memset(hits, 0, sizeof hits);
    pf_ctx c = {hits, chunk_of, 0};
    for (int r = 0; r < 20; r++) bd_parallel_for(1000, 1, pf_mark, &c);
    pthread_join(tid, NULL);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(hits[i], 20);
        ck_assert_int_eq(other_hits[i], 20);
    }
    bd_set_num_threads(1);
}
END_TEST

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

// FNV-1a 64 against its published test vectors; a file hashes as its bytes; a model directory
// as its config.json and *.safetensors (names and bytes), nothing else in it.
START_TEST(test_huge_alloc) {
    // bd_huge_alloc: zeroed, 64-byte aligned, disjoint blocks of any size (0, odd, larger than an
    // arena), freed in any order and allocated again; an impossible size gives NULL.
    size_t sizes[] = {0, 1, 63, 64, 4097, (size_t)3 << 20, (size_t)40 << 20, 777};
    enum { N = sizeof sizes / sizeof sizes[0] };
    uint8_t *p[N];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            p[i] = bd_huge_alloc(sizes[i]);
            ck_assert_ptr_nonnull(p[i]);
            ck_assert_uint_eq((uintptr_t)p[i] % 64, 0);
            for (size_t k = 0; k < sizes[i]; k += 4093) ck_assert_uint_eq(p[i][k], 0);
            if (sizes[i]) ck_assert_uint_eq(p[i][sizes[i] - 1], 0);
            memset(p[i], 0xA5, sizes[i]);  // a block overlapping another would break the checks below
        }
        for (int i = 0; i < N; i++)
            for (size_t k = 0; k < sizes[i]; k += 4093) ck_assert_uint_eq(p[i][k], 0xA5);
        for (int i = N - 1; i >= 0; i -= 2) bd_huge_free(p[i]);  // every other one, from the end
        for (int i = N - 2; i >= 0; i -= 2) bd_huge_free(p[i]);
    }
    ck_assert_ptr_null(bd_huge_alloc(SIZE_MAX - 10));
    bd_huge_free(NULL);
    // A small block freed and asked for again (a KV cache per item beside a long-lived model):
    // the same memory, zeroed again, however many times.
    uint8_t *keep = bd_huge_alloc(100), *first = bd_huge_alloc(5000);
    for (int i = 0; i < 1000; i++) {
        uint8_t *b = i ? bd_huge_alloc(5000) : first;
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(b[0], 0);
        ck_assert_uint_eq(b[4999], 0);
#if !defined(__SANITIZE_ADDRESS__)
        ck_assert_ptr_eq(b, first);
#endif
        memset(b, 7, 5000);
        bd_huge_free(b);
    }
    bd_huge_free(keep);
}
END_TEST

START_TEST(test_file_hash) {
    ck_assert_uint_eq(bd_fnv1a64(BD_FNV1A64_INIT, "", 0), UINT64_C(0xcbf29ce484222325));
    ck_assert_uint_eq(bd_fnv1a64(BD_FNV1A64_INIT, "a", 1), UINT64_C(0xaf63dc4c8601ec8c));
    ck_assert_uint_eq(bd_fnv1a64(BD_FNV1A64_INIT, "foobar", 6), UINT64_C(0x85944171f73967e8));
    ck_assert_uint_eq(bd_fnv1a64(bd_fnv1a64(BD_FNV1A64_INIT, "foo", 3), "bar", 3), UINT64_C(0x85944171f73967e8));
    char path[700], dir[600], h1[17], h2[17], why[800];
    snprintf(path, sizeof path, "%s/hash_foobar.txt", bd_test_tmpdir());
    write_text(path, "foobar");
    ck_assert_int_eq(bd_hash_path(path, h1, why, sizeof why), BD_OK);
    ck_assert_str_eq(h1, "85944171f73967e8");
    snprintf(dir, sizeof dir, "%s/hash_model", bd_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, "{}");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_text(path, "weights");
    ck_assert_int_eq(bd_hash_path(dir, h1, why, sizeof why), BD_OK);
    uint64_t h = bd_fnv1a64(BD_FNV1A64_INIT, "config.json", 12);
    h = bd_fnv1a64(h, "{}", 2);
    h = bd_fnv1a64(h, "model.safetensors", 18);
    h = bd_fnv1a64(h, "weights", 7);
    snprintf(h2, sizeof h2, "%016llx", (unsigned long long)h);
    ck_assert_str_eq(h1, h2);
    snprintf(path, sizeof path, "%s/README.md", dir);
    write_text(path, "not the model");
    ck_assert_int_eq(bd_hash_path(dir, h2, why, sizeof why), BD_OK);
    ck_assert_str_eq(h1, h2);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_text(path, "Weights");
    ck_assert_int_eq(bd_hash_path(dir, h2, why, sizeof why), BD_OK);
    ck_assert_str_ne(h1, h2);
    ck_assert_int_eq(bd_hash_path("-", h1, why, sizeof why), BD_ERR_ARG);
    snprintf(path, sizeof path, "%s/no_such_file", bd_test_tmpdir());
    ck_assert_int_eq(bd_hash_path(path, h1, why, sizeof why), BD_ERR_IO);
    ck_assert_ptr_nonnull(strstr(why, "no_such_file"));
}
END_TEST

Suite *suite_basics(void) {
    Suite *s = suite_create("basics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_half_floats);
    tcase_add_test(tc, test_convert_to_f32);
    tcase_add_test(tc, test_parse_numbers);
    tcase_add_test(tc, test_msgpack_scan);
    tcase_add_test(tc, test_progress_format);
    tcase_add_test(tc, test_progress_mode);
    tcase_add_test(tc, test_parallel_for);
    tcase_add_test(tc, test_file_hash);
    tcase_add_test(tc, test_huge_alloc);
    suite_add_tcase(s, tc);
    return s;
}
