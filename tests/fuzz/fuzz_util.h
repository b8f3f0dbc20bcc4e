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

#include "bd_tokenizer.h"

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

// A tiny llama2.c tokenizer.bin (made once, loaded once): <unk> <s> </s>, the 256 byte pieces, and a few merges.
static inline const bd_tokenizer *fz_tiny_tokenizer(void) {
    static bd_tokenizer *tok;
    if (tok) return tok;
    static const char *pieces[] = {"<unk>", "<s>", "</s>", "a", "b", " a", "ab", " ab", "\xe2\x96\x81the"};
    char path[700];
    snprintf(path, sizeof path, "%s/tok.bin", fz_dir());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    int32_t maxlen = 6;
    fwrite(&maxlen, 4, 1, f);
    for (int i = 0; i < 256 + 9; i++) {
        char byte[8];
        const char *s = i < 3     ? pieces[i]
                        : i < 259 ? (snprintf(byte, sizeof byte, "<0x%02X>", i - 3), byte)
                                  : pieces[i - 256];
        float score = i < 259 ? 0.0f : -(float)(i - 259);
        int32_t len = (int32_t)strlen(s);
        fwrite(&score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(s, 1, (size_t)len, f);
    }
    fclose(f);
    char why[512];
    if (bd_tokenizer_load(path, &tok, why, sizeof why) != BD_OK) abort();
    return tok;
}

#endif
