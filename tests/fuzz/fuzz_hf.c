// Fuzz target: a Hugging Face model directory. The input is config.json, then
// model.safetensors, then (optional) model.safetensors.index.json, separated by "\0BD\0".
#include <sys/stat.h>

#include "bd_model_io.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[3];
    size_t len[3];
    int n = fz_split(data, size, part, len, 3);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/hf", fz_dir());
    mkdir(dir, 0700);
    unlink(fz_write("hf/model.safetensors.index.json", "", 0));
    fz_write("hf/config.json", part[0], len[0]);
    if (n > 1)
        fz_write("hf/model.safetensors", part[1], len[1]);
    else
        unlink(fz_write("hf/model.safetensors", "", 0));
    if (n > 2) fz_write("hf/model.safetensors.index.json", part[2], len[2]);
    bd_model m;
    char why[512];
    if (bd_model_load(dir, &m, why, sizeof why) == BD_OK) bd_model_free(&m);
    return 0;
}
