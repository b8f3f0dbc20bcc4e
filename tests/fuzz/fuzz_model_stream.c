// Fuzz target: the schema-level readers of bd.model and bd.packed streams (bd_model_load
// tells them apart by the schema). The input is the decompressed msgpack content (header,
// records, trailer); it is compressed here so the fuzzer works past zstd's checksum.
#include "bd_model_io.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write_zstd("model.bdz", data, size);
    bd_model m;
    char why[512];
    if (p && bd_model_load(p, &m, why, sizeof why) == BD_OK) bd_model_free(&m);
    return 0;
}
