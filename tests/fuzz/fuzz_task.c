// Fuzz target: multiple-choice task files. The first byte picks the format (auto,
// hellaswag, piqa, jsonl); the rest is the task text (plain or bzip2), then optionally
// "\0BD\0" and a PIQA labels text.
#include "bd_mc.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    bd_mc_format fmt = (bd_mc_format)(data[0] % 4);
    const uint8_t *part[2];
    size_t len[2];
    int n = fz_split(data + 1, size - 1, part, len, 2);
    const char *task = fz_write("task.txt", part[0], len[0]);
    const char *labels = n > 1 ? fz_write("labels.lst", part[1], len[1]) : NULL;
    bd_mc_task t;
    char why[512];
    if (bd_mc_load(task, fmt, labels, 0, &t, why, sizeof why) == BD_OK) bd_mc_task_free(&t);
    return 0;
}
