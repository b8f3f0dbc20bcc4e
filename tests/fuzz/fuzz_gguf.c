// Fuzz target: a GGUF file given as a model (bd_gguf_read.c). Seeds: tests/fuzz/seeds/gguf
// (tiny llama files of f32, f16 and bf16 tensors, written by make_seeds.c).
#include "bd_model_io.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write("model.gguf", data, size);
    bd_model m;
    char why[512];
    if (bd_model_load(p, &m, why, sizeof why) == BD_OK) bd_model_free(&m);
    return 0;
}
