// Fuzz target: a Hugging Face tokenizer directory. The input is tokenizer.json, then
// (optional) tokenizer_config.json, separated by "\0BD\0". A loaded tokenizer encodes a
// fixed text and decodes every id up to 300.
#include <sys/stat.h>

#include "bd_tokenizer.h"
#include "fuzz_util.h"

static void exercise(const bd_tokenizer *t) {
    static const char text[] = "Hello world, \xe4\xb8\xad\xe6\x96\x87 12345!! \n\n  x\xff";
    bd_token_buf ids = {0};
    bd_text_buf txt = {0};
    if (bd_tokenizer_encode(t, text, sizeof text - 1, BD_TOK_BOS | BD_TOK_EOS, &ids)) {}
    if (bd_tokenizer_encode(t, text, sizeof text - 1, 0, &ids)) {}
    if (bd_tokenizer_decode(t, ids.ids, ids.n, 0, &txt)) {}
    int32_t V = bd_tokenizer_vocab_size(t);
    for (int32_t id = 0; id < V && id < 300; id++) {
        txt.len = 0;
        if (bd_tokenizer_decode(t, &id, 1, 0, &txt)) {}
        if (bd_tokenizer_decode_next(t, id - 1, id, BD_TOK_SKIP_SPECIAL, &txt)) {}
    }
    bd_token_buf_free(&ids);
    bd_text_buf_free(&txt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    int n = fz_split(data, size, part, len, 2);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/tok", fz_dir());
    mkdir(dir, 0700);
    fz_write("tok/tokenizer.json", part[0], len[0]);
    if (n > 1)
        fz_write("tok/tokenizer_config.json", part[1], len[1]);
    else
        unlink(fz_write("tok/tokenizer_config.json", "", 0));
    bd_tokenizer *t;
    char why[512];
    if (bd_tokenizer_load(dir, &t, why, sizeof why) != BD_OK) return 0;
    exercise(t);
    bd_tokenizer_free(t);
    return 0;
}
