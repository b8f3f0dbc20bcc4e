// Fuzz target: a llama2.c tokenizer.bin. A loaded tokenizer encodes a fixed text and decodes
// every id up to 300.
#include "bd_tokenizer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write("tokenizer.bin", data, size);
    bd_tokenizer *t;
    char why[512];
    if (bd_tokenizer_load(p, &t, why, sizeof why) != BD_OK) return 0;
    static const char text[] = "Once upon a time \xe2\x80\x94 a cat.\n\x01\xfe";
    bd_token_buf ids = {0};
    bd_text_buf txt = {0};
    if (bd_tokenizer_encode(t, text, sizeof text - 1, BD_TOK_BOS, &ids)) {}
    if (bd_tokenizer_decode(t, ids.ids, ids.n, 0, &txt)) {}
    for (int32_t id = 0; id < bd_tokenizer_vocab_size(t) && id < 300; id++) {
        txt.len = 0;
        if (bd_tokenizer_decode(t, &id, 1, 0, &txt)) {}
    }
    bd_token_buf_free(&ids);
    bd_text_buf_free(&txt);
    bd_tokenizer_free(t);
    return 0;
}
