// Stream throughput: write and read a bd.tokens-shaped stream (u32 ids, documents of
// 64..1024 tokens, zstd default level) against plain zstd (libzstd one-shot, same level)
// on the same raw bytes, in the same run. Reports MB/s of raw ids, medians of 3 runs,
// and the peak memory of the streaming read.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zstd.h>

#include "bd_progress.h"
#include "bd_stream.h"

#define BENCH_NAME "bench_stream"
#include "bench_util.h"

#define N_IDS (24u << 20)  // 24M ids = 96 MB raw
#define RUNS 3

// Zipf-like ids over a 32000 vocabulary, deterministic, generated on the fly.
typedef struct {
    uint64_t s;
} rng;
static uint32_t next_u32(rng *r) {
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(r->s >> 33);
}
static uint32_t zipf_id(rng *r) {
    double u = (next_u32(r) + 0.5) / 2147483648.0;       // (0,1)
    return (uint32_t)(32000.0 * u * u * u * u) % 32000;  // heavy head, long tail
}

static void make_ids(uint32_t *ids, size_t n) {
    rng r = {42};
    for (size_t i = 0; i < n; i++) ids[i] = zipf_id(&r);
}

static double write_stream(const char *path, const uint32_t *ids) {
    double t0 = bd_now();
    int err;
    bd_writer *w = bd_writer_open(path, 0, &err);
    if (!w || bd_writer_begin_header(w, "bd.tokens", NULL, 0) < 0 || bd_writer_end_object(w) < 0) {
        fprintf(stderr, "open failed\n");
        exit(1);
    }
    rng r = {7};
    size_t pos = 0;
    int64_t doc = 0;
    while (pos < N_IDS) {
        size_t len = 64 + next_u32(&r) % 961;
        if (len > N_IDS - pos) len = N_IDS - pos;
        msgpack_packer *pk = bd_writer_packer(w);
        msgpack_pack_map(pk, 2);
        bd_pack_str(pk, "ids");
        int64_t shape[1] = {(int64_t)len};
        bd_pack_tensor(pk, "ids", BD_U32, 1, shape, ids + pos);
        bd_pack_kv_int(pk, "doc", doc++);
        if (bd_writer_end_object(w) < 0) {
            fprintf(stderr, "write failed\n");
            exit(1);
        }
        pos += len;
    }
    if (bd_writer_close(w) < 0) {
        fprintf(stderr, "close failed\n");
        exit(1);
    }
    return bd_now() - t0;
}

static double read_stream(const char *path, uint64_t *checksum) {
    double t0 = bd_now();
    char msg[600];
    bd_reader *r = bd_reader_open(path, "bd.tokens", NULL, msg, sizeof msg);
    if (!r) {
        fprintf(stderr, "%s: %s\n", path, msg);
        exit(1);
    }
    const msgpack_object *rec;
    int rc;
    uint64_t sum = 0, n = 0;
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        bd_tensor_view t;
        if (bd_obj_tensor(bd_obj_get(rec, "ids"), &t, NULL, 0) < 0) {
            fprintf(stderr, "bad record\n");
            exit(1);
        }
        const uint8_t *p = t.data;
        for (int64_t i = 0; i < t.numel; i++) sum += p[4 * i];
        n += (uint64_t)t.numel;
    }
    if (rc != BD_EOF || n != N_IDS) {
        fprintf(stderr, "read failed: %s\n", bd_reader_error(r));
        exit(1);
    }
    bd_reader_close(r);
    *checksum = sum;
    return bd_now() - t0;
}

int main(void) {
    const char *dir = getenv("BD_TMP") ? getenv("BD_TMP") : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_stream.%d.bdz", dir, (int)getpid());
    const double mb = N_IDS * 4.0 / 1e6;
    uint32_t *ids = malloc(N_IDS * 4u);
    make_ids(ids, N_IDS);

    double tw[RUNS], tr[RUNS], zw[RUNS], zr[RUNS];
    uint64_t sum = 0;
    long rss_before_read = 0, rss_after_read = 0;
    for (int i = 0; i < RUNS; i++) tw[i] = write_stream(path, ids);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    rss_before_read = ru.ru_maxrss;
    for (int i = 0; i < RUNS; i++) tr[i] = read_stream(path, &sum);
    getrusage(RUSAGE_SELF, &ru);
    rss_after_read = ru.ru_maxrss;
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long stream_bytes = ftell(f);
    fclose(f);
    remove(path);

    size_t cap = ZSTD_compressBound(N_IDS * 4u);
    void *z = malloc(cap), *back = malloc(N_IDS * 4u);
    size_t zn = 0;
    for (int i = 0; i < RUNS; i++) {
        double t0 = bd_now();
        zn = ZSTD_compress(z, cap, ids, N_IDS * 4u, ZSTD_CLEVEL_DEFAULT);
        zw[i] = bd_now() - t0;
        t0 = bd_now();
        size_t bn = ZSTD_decompress(back, N_IDS * 4u, z, zn);
        zr[i] = bd_now() - t0;
        if (ZSTD_isError(zn) || bn != N_IDS * 4u || memcmp(back, ids, bn)) {
            fprintf(stderr, "zstd round trip failed\n");
            return 1;
        }
    }
    // The zstd command-line tool on the same raw bytes (file to file, as a user would).
    char raw[4200], cmd[9000];
    snprintf(raw, sizeof raw, "%s/bench_stream.%d.raw", dir, (int)getpid());
    f = fopen(raw, "wb");
    fwrite(ids, 4, N_IDS, f);
    fclose(f);
    double cw[RUNS], cr[RUNS];
    for (int i = 0; i < RUNS; i++) {
        snprintf(cmd, sizeof cmd, "zstd -q -f -%d '%s' -o '%s.zst'", ZSTD_CLEVEL_DEFAULT, raw, raw);
        double t0 = bd_now();
        if (system(cmd) != 0) {
            fprintf(stderr, "zstd command failed\n");
            return 1;
        }
        cw[i] = bd_now() - t0;
        snprintf(cmd, sizeof cmd, "zstd -q -d -c '%s.zst' >/dev/null", raw);
        t0 = bd_now();
        if (system(cmd) != 0) {
            fprintf(stderr, "zstd -d failed\n");
            return 1;
        }
        cr[i] = bd_now() - t0;
    }
    remove(raw);
    snprintf(cmd, sizeof cmd, "%s.zst", raw);
    remove(cmd);
    double mcw = bench_median(cw, RUNS), mcr = bench_median(cr, RUNS);
    double mtw = bench_median(tw, RUNS), mtr = bench_median(tr, RUNS), mzw = bench_median(zw, RUNS),
           mzr = bench_median(zr, RUNS);
    printf("token stream: %u u32 ids (%.1f MB raw), zstd level %d, medians of %d runs\n", N_IDS, mb,
           ZSTD_CLEVEL_DEFAULT, RUNS);
    printf("| operation | bd stream MB/s | libzstd one-shot MB/s | bd / libzstd | zstd command MB/s | bd / command |\n");
    printf("|---|---|---|---|---|---|\n");
    printf("| write (compress) | %.0f | %.0f | %.2f | %.0f | %.2f |\n", mb / mtw, mb / mzw, mzw / mtw, mb / mcw,
           mcw / mtw);
    printf("| read (decompress) | %.0f | %.0f | %.2f | %.0f | %.2f |\n", mb / mtr, mb / mzr, mzr / mtr, mb / mcr,
           mcr / mtr);
    printf("compressed size: bd stream %.1f MB, plain zstd %.1f MB (ratio %.3f)\n", stream_bytes / 1e6, zn / 1e6,
           (double)stream_bytes / (double)zn);
    printf("peak RSS: %.1f MB before reading, %.1f MB after 3 streaming reads (the %.0f MB id array is resident throughout)\n",
           rss_before_read / 1e3, rss_after_read / 1e3, mb);
    printf("(checksum %llu)\n", (unsigned long long)sum);
    free(ids);
    free(z);
    free(back);
    return 0;
}
