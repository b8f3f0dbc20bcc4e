// Fuzz target: a llama2.c checkpoint (v0, ak42 v1/v2) given as a model file. Seeds:
// tests/fuzz/seeds/llama2c (tiny checkpoints); replayed with the real stories260K.bin.
#include "bd_model_io.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write("model.bin", data, size);
    bd_model m;
    char why[512];
    if (bd_model_load(p, &m, why, sizeof why) == BD_OK) bd_model_free(&m);
    return 0;
}
