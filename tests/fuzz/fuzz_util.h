// Helpers shared by the fuzz targets (each target includes this once). A target is a plain C
// function of (data, size): libFuzzer calls it under `make fuzz`; `make test` replays every
// seed and reproducer through it (tests/unit/test_fuzz_replay.c), so helpers stay static.
#ifndef BD_FUZZ_UTIL_H
#define BD_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// A scratch directory of this process, made once.
static inline const char *fz_dir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *base = getenv("BD_TMP");
        snprintf(dir, sizeof dir, "%s/bdfuzz.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) abort();
    }
    return dir;
}

// Writes data to name inside the scratch directory (or sub/name) and returns the path.
static inline const char *fz_write(const char *name, const void *data, size_t n) {
    static char path[8][700];
    static int k;
    k = (k + 1) % 8;
    snprintf(path[k], sizeof path[k], "%s/%s", fz_dir(), name);
    FILE *f = fopen(path[k], "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
    return path[k];
}

// Splits data at the separator "\0BD\0" into at most max parts; returns how many. Lets one
// input carry several files (config.json + safetensors, task + labels).
static inline int fz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max) {
    static const uint8_t sep[4] = {0, 'B', 'D', 0};
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i + 4 <= size && n < max - 1; i++)
        if (memcmp(data + i, sep, 4) == 0) {
            part[n] = data + start, len[n] = i - start, n++;
            start = i + 4;
            i += 3;
        }
    part[n] = data + start, len[n] = size - start, n++;
    return n;
}

// content compressed as a bd stream would be (zstd with a checksum), so the fuzzer works on
// the msgpack layer; written to name. Returns the path, or NULL.
static inline const char *fz_write_zstd(const char *name, const uint8_t *content, size_t n) {
    size_t cap = ZSTD_compressBound(n);
    void *packed = malloc(cap);
    if (!packed) return NULL;
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    size_t z = ZSTD_compress2(c, packed, cap, content, n);
    ZSTD_freeCCtx(c);
    const char *p = ZSTD_isError(z) ? NULL : fz_write(name, packed, z);
    free(packed);
    return p;
}

#endif
