// Fuzz target: prompts as bd-teacher-gen reads them (bd_prompts): plain text, JSONL (field
// "q") or a bd.tokens stream, text through a template, encoded by a tiny byte-fallback
// tokenizer, fitted to a context. The first byte: bit 0 JSONL, bits 1-2 the template (0 none,
// 1 alpaca, 2 the input's own, 3 "{input}: {}\n"), bits 4-7 the context (2 + 8k); then the
// prompts file, and after "\0BD\0" the template.
#include "bd_prompts.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const bd_tokenizer *tok = fz_tiny_tokenizer();
    uint8_t flags = data[0];
    const uint8_t *part[2];
    size_t len[2];
    int n = fz_split(data + 1, size - 1, part, len, 2);
    char *own = malloc(n > 1 ? len[1] + 1 : 1);
    if (!own) abort();
    if (n > 1) memcpy(own, part[1], len[1]);
    own[n > 1 ? len[1] : 0] = 0;
    const char *templates[4] = {"", "alpaca", own, "{input}: {}\\n"};
    bd_prompt_opts po = {.path = fz_write("prompts", part[0], len[0]),
                         .field = flags & 1 ? "q" : NULL,
                         .template_ = templates[(flags >> 1) & 3]};
    bd_input in;
    char why[512];
    if (bd_input_open(&in, po.path, why, sizeof why) == BD_OK) {
        bd_prompt_set ps = {0};
        int V = bd_tokenizer_vocab_size(tok);
        if (bd_prompts_read(&ps, &po, &in, tok, V, -1, 2 + 8 * (flags >> 4), 1, why, sizeof why) == BD_OK) {
            char hash[17];
            bd_prompts_hash(&ps, hash);
        }
        bd_prompts_free(&ps);
        bd_input_close(&in);
    }
    free(own);
    return 0;
}
