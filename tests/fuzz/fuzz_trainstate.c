// Fuzz target: a training checkpoint. The input is the msgpack content of the bd.trainstate
// stream, then "\0BD\0", then the content of the bd.model weights file it names (the state
// must name "ck.w1"); both are compressed here.
#include "bd_ckpt.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    int n = fz_split(data, size, part, len, 2);
    const char *p = fz_write_zstd("ck", part[0], len[0]);
    if (n > 1)
        fz_write_zstd("ck.w1", part[1], len[1]);
    else
        unlink(fz_write("ck.w1", "", 0));
    if (!p) return 0;
    bd_model m;
    bd_ckpt_info info;
    bd_ckpt_moments mom;
    bd_ckpt_log log;
    char why[512];
    if (bd_ckpt_load(p, &m, &info, &mom, &log, why, sizeof why) == BD_OK) {
        bd_model_free(&m);
        free(mom.data);
        free(log.data);
    }
    return 0;
}
