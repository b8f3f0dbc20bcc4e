// libFuzzer target for the stream reader: any input must end in a clean result or a
// reported error, never a crash, leak or undefined behaviour. `make fuzz` runs it.
#include <stdint.h>
#include <stdio.h>

#include <stdlib.h>
#include <zstd.h>

#include "bd_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// The first byte picks the mode: odd = the rest is the decompressed content (msgpack), which
// is compressed here so the fuzzer reaches the msgpack layer past zstd's checksum; even = the
// rest is the raw stream bytes.
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    void *packed = NULL;
    if (size > 0 && (data[0] & 1)) {
        size_t cap = ZSTD_compressBound(size);
        packed = malloc(cap);
        ZSTD_CCtx *c = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
        size_t n = ZSTD_compress2(c, packed, cap, data + 1, size - 1);
        ZSTD_freeCCtx(c);
        if (ZSTD_isError(n)) {
            free(packed);
            return 0;
        }
        data = packed;
        size = n;
    } else if (size > 0) {
        data++;
        size--;
    }
    FILE *f = size ? fmemopen((void *)data, size, "rb") : fopen("/dev/null", "rb");
    if (!f) {
        free(packed);
        return 0;
    }
    int err;
    bd_reader *r = bd_reader_open_file(f, "fuzz", NULL, &err, NULL, 0);
    if (r) {
        const msgpack_object *rec;
        while (bd_reader_next(r, &rec) == BD_OK) {
            bd_tensor_view t;
            const msgpack_object *o = bd_obj_get(rec, "t");
            if (o && bd_obj_tensor(o, &t, NULL, 0) == BD_OK) {
                volatile uint8_t sum = 0;  // touch every byte the view claims
                for (size_t i = 0; i < t.nbytes; i++) sum += ((const uint8_t *)t.data)[i];
            }
        }
        bd_reader_close(r);
    }
    fclose(f);
    free(packed);
    return 0;
}
