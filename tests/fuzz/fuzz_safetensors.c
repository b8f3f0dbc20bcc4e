// Fuzz target: a safetensors file read directly (header JSON, offsets, dtypes), every
// tensor converted to f32.
#include "bd_safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write("x.safetensors", data, size);
    bd_safetensors st;
    char why[512];
    if (bd_safetensors_open(&st, p, why, sizeof why) != BD_OK) return 0;
    for (int i = 0; i < st.n; i++) {
        const bd_st_tensor *t = &st.tensors[i];
        if (t->numel > (1 << 20)) continue;
        float *v = malloc(((size_t)t->numel + 1) * sizeof *v);
        if (v && bd_safetensors_read_f32(&st, t, v, why, sizeof why) == BD_OK) {
            volatile float s = 0;
            for (size_t k = 0; k < (size_t)t->numel; k++) s += v[k];
        }
        free(v);
    }
    bd_safetensors_close(&st);
    return 0;
}
