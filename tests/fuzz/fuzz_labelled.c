// Fuzz target: labelled classification data as bd-task reads it (bd_task.h): TSV or JSONL
// records through a template and a verbalizer, then each example encoded as training samples
// are (the scorer's split, cut to a length). The first byte: bits 0-1 the format (auto, tsv,
// jsonl), bits 2-3 the template ("{sentence}", "{2}: {1}", "R {label}\n{text}", the input's
// own), bits 4-7 the --max-len (0: none, else 2 + k); then the data, and after "\0BD\0" the
// template, and after another the verbalizer (default "0=neg,1=pos").
#include "bd_task.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const bd_tokenizer *tok = fz_tiny_tokenizer();
    uint8_t flags = data[0];
    const uint8_t *part[3];
    size_t len[3];
    int n = fz_split(data + 1, size - 1, part, len, 3);
    char *text[3] = {NULL, NULL, NULL};  // the template and verbalizer parts as strings
    for (int i = 1; i < 3; i++) {
        if (!(text[i] = calloc(1, i < n ? len[i] + 1 : 1))) abort();
        if (i < n) memcpy(text[i], part[i], len[i]);
    }
    const char *templates[4] = {"{sentence}", "{2}: {1}", "R {label}\\n{text}", text[1]};
    const char *verbalizer = n > 2 ? text[2] : "0=neg,1=pos";
    int max_len = flags >> 4 ? 2 + (flags >> 4) : 0;
    char why[512];
    bd_task_template t;
    bd_task_verbalizer v;
    if (bd_task_template_parse(&t, templates[(flags >> 2) & 3], why, sizeof why) == BD_OK) {
        if (bd_task_verbalizer_parse(&v, verbalizer, why, sizeof why) == BD_OK) {
            bd_input in;
            if (bd_input_open(&in, fz_write("labelled", part[0], len[0]), why, sizeof why) == BD_OK) {
                bd_task_set set;
                if (bd_task_read(&in, (bd_task_format)((flags & 3) % 3), &t, "label", &v, 0, &set, why, sizeof why) ==
                    BD_OK) {
                    bd_token_buf ids = {0};
                    for (long i = 0; i < set.n; i++) {
                        int start;
                        bool cut;
                        if (bd_task_encode(tok, set.ex[i].context, v.words[set.ex[i].gold], max_len, &ids, &start,
                                           &cut) < 0)
                            continue;
                    }
                    bd_token_buf_free(&ids);
                    bd_task_set_free(&set);
                }
                bd_input_close(&in);
            }
            bd_task_verbalizer_free(&v);
        }
        bd_task_template_free(&t);
    }
    free(text[1]), free(text[2]);
    return 0;
}
