// Fuzz target: a bd.clip stream applied to a tiny model (C=16, L=2, F=24) for int 2-bit
// group 8. The input is the msgpack content; compressed here.
#include "bd_clipfile.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bd_model m;
    static bool ready;
    if (!ready) {
        bd_config c = {.arch = "llama",
                       .dim = 16,
                       .n_layers = 2,
                       .n_heads = 2,
                       .n_kv_heads = 1,
                       .head_dim = 8,
                       .ffn_dim = 24,
                       .vocab = 32,
                       .max_seq = 64,
                       .norm_eps = 1e-5f,
                       .rope_theta = 10000.0f,
                       .tied_embeddings = true,
                       .bos = 1,
                       .eos = 2};
        if (bd_model_alloc(&m, &c) != BD_OK) abort();
        ready = true;
    }
    const char *p = fz_write_zstd("clip.bdz", data, size);
    bd_qspec q = {BD_Q_INT, 2, 8};
    char why[512];
    if (p && bd_clipfile_apply(p, &m, &q, why, sizeof why)) {}
    return 0;
}
