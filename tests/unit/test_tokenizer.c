// Tokenizers: SentencePiece BPE on the real Llama 2 and stories260K vocabularies (expected
// ids worked out by hand from the vocabulary's pieces and scores, see the comment of each
// case), tokenizer.json fixtures (tests/fixtures/tok_*), round trips, the heap merger
// against its rescanning _ref twin, the split patterns, and load errors.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bd_test.h"
#include "bd_tok_internal.h"
#include "bd_readfile.h"
#include "bd_tokenizer.h"

static bd_tokenizer *load_or_fail(const char *path) {
    bd_tokenizer *t = NULL;
    char why[512] = "";
    int rc = bd_tokenizer_load(path, &t, why, sizeof why);
    ck_assert_msg(rc == BD_OK && t, "load %s: %s", path, why);
    return t;
}

static const char *fixture(const char *rel) {
    static char buf[1024];
    const char *root = getenv("BD_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "tests/fixtures", rel);
    return buf;
}

typedef struct {
    const char *text;
    size_t len;  // 0: strlen(text)
    int n;
    int32_t ids[16];
} enc_case;

static void check_cases(const bd_tokenizer *t, const enc_case *cases, size_t n_cases) {
    bd_token_buf ids = {0};
    for (size_t c = 0; c < n_cases; c++) {
        const enc_case *k = &cases[c];
        size_t len = k->len ? k->len : strlen(k->text);
        ck_assert_int_eq(bd_tokenizer_encode(t, k->text, len, 0, &ids), BD_OK);
        char got[512] = "";
        for (size_t i = 0; i < ids.n && strlen(got) < 400; i++) snprintf(got + strlen(got), 20, " %d", ids.ids[i]);
        ck_assert_msg(ids.n == (size_t)k->n, "case %zu \"%s\": %zu ids (%s), expected %d", c, k->text, ids.n, got,
                      k->n);
        for (int i = 0; i < k->n; i++)
            ck_assert_msg(ids.ids[i] == k->ids[i], "case %zu \"%s\": id %d is %d, expected %d (got%s)", c, k->text, i,
                          ids.ids[i], k->ids[i], got);
        // Every case also decodes back to its text.
        bd_text_buf txt = {0};
        ck_assert_int_eq(bd_tokenizer_decode(t, ids.ids, ids.n, 0, &txt), BD_OK);
        ck_assert_msg(txt.len == len && (len == 0 || memcmp(txt.data, k->text, len) == 0),
                      "case %zu \"%s\": decodes to \"%.*s\"", c, k->text, (int)txt.len, txt.data);
        bd_text_buf_free(&txt);
    }
    bd_token_buf_free(&ids);
}

// Llama 2 (tokenizer.bin): pieces use ' ' for U+2581; <0xNN> is id NN+3. Scores relevant
// below (higher merges first): " t" -1, "or" -13, " w" -22, "el" -36, " H" -120, "lo" -158,
// "ld" -171, "orld" -1354, "ello" -2897, " world" -2927, "world" -11267, " Hello" -14784;
// "  " (259), "   " (1678), "    " (268) all -1e9; " " is 29871 (-1e9).
static const enc_case llama2_cases[] = {
        // From the task: " Hello world" merges or, w, el, H, lo, ld, orld, ello, world, Hello.
        {"Hello world", 0, 2, {15043, 3186}},
        // A leading space gives "  Hello": the lone dummy ' ' stays (" H" outscores "  ").
        {" Hello world", 0, 3, {29871, 15043, 3186}},
        // Empty text: no dummy prefix, no ids.
        {"", 0, 0, {0}},
        // " a" (263, score -4) is a piece.
        {"a", 0, 1, {263}},
        // Digits never merge in Llama 2 (split_digits): ' ' 2 0 2 4 stay single pieces.
        {"2024", 0, 5, {29871, 29906, 29900, 29906, 29946}},
        // " H"+"i" -> " Hi" (6324); "!" (29991) has no merge with " Hi".
        {"Hi!", 0, 2, {6324, 29991}},
        // '\n' is not a piece: byte fallback <0x0A> = 13; "b" alone is 29890.
        {"a\nb", 0, 3, {263, 13, 29890}},
        // "  b": " b" (289, -10) beats "  " (-1e9), leaving the middle ' ' (29871).
        {"a  b", 0, 3, {263, 29871, 289}},
        // U+1F600 is not a piece: its four UTF-8 bytes F0 9F 98 80 -> ids 243 162 155 131.
        {"\xf0\x9f\x98\x80", 0, 5, {29871, 243, 162, 155, 131}},
        // CJK characters that are pieces: 中 30275, 文 30333; " 中" is not a piece.
        {"\xe4\xb8\xad\xe6\x96\x87", 0, 3, {29871, 30275, 30333}},
        // A byte that is not UTF-8: byte fallback <0xFF> = 258 (SentencePiece would give U+FFFD).
        {"\xff", 0, 2, {29871, 258}},
        // A truncated 2-byte sequence C3 then 'a': C3 -> <0xC3> = 198; 'a' 29874.
        {"\xc3"
         "a",
         0,
         3,
         {29871, 198, 29874}},
        // Not a word: " Z" (796, -537), "zy" (1537), "va" (1564), then "yz" (12339); no larger pieces.
        {"Zyzzyva", 0, 4, {796, 12339, 1537, 1564}},
        // Tab: <0x09> = 12.
        {"\t", 0, 2, {29871, 12}},
        // "it" (277, -18), then " it" (372, -113); "'" 29915 and "s" 29879 do not merge with it.
        {"it's", 0, 3, {372, 29915, 29879}},
        // "é" is the piece 29948; " é" is the piece 904.
        {"\xc3\xa9", 0, 1, {904}},
        // Control pieces are not matched in text: " <" (529), "s", ">".
        {"<s>", 0, 3, {529, 29879, 29958}},
        // Two newlines are two byte pieces; "world" after '\n' has no ' ': piece 11526.
        {"Hello\n\nworld", 0, 4, {15043, 13, 13, 11526}},
        // A single space: "  " is the only merge (259).
        {" ", 0, 1, {259}},
        // Three spaces: "    " all -1e9, leftmost first: "  "+" " -> "   " (1678), + " " -> "    " (268).
        {"   ", 0, 1, {268}},
        // "ÿ" (U+00FF) is the piece 30370; " ÿ" is not.
        {"\xc3\xbf", 0, 2, {29871, 30370}},
        // "1.5": digits and '.' are single pieces (1 29896, . 29889, 5 29945).
        {"1.5", 0, 4, {29871, 29896, 29889, 29945}},
        // A NUL byte is text like any other: <0x00> = 3.
        {"a\0b", 3, 3, {263, 3, 29890}},
};

START_TEST(test_llama2_cases) {
    bd_tokenizer *t = load_or_fail(bd_test_data("tokenizers/llama2-32k/tokenizer.bin"));
    ck_assert_int_eq(bd_tokenizer_vocab_size(t), 32000);
    ck_assert_int_eq(bd_tokenizer_bos(t), 1);
    ck_assert_int_eq(bd_tokenizer_eos(t), 2);
    check_cases(t, llama2_cases, sizeof llama2_cases / sizeof *llama2_cases);
    size_t len;
    const char *p = bd_tokenizer_piece(t, 15043, &len);
    ck_assert(p && len == 6 && memcmp(p, " Hello", 6) == 0);
    ck_assert_int_eq(bd_tokenizer_lookup(t, " world", 6), 3186);
    ck_assert_int_eq(bd_tokenizer_lookup(t, "<0x0A>", 6), 13);
    ck_assert_int_eq(bd_tokenizer_lookup(t, "no such piece", 13), -1);
    ck_assert_float_eq(bd_tokenizer_score(t, 15043), -14784.0f);
    ck_assert_ptr_null(bd_tokenizer_piece(t, 32000, &len));
    ck_assert_ptr_null(bd_tokenizer_piece(t, -1, &len));
    ck_assert_msg(strncmp(bd_tokenizer_id(t), "llama2c:tokenizer.bin:", 22) == 0 &&
                          strlen(bd_tokenizer_id(t)) == 22 + 16,
                  "id %s", bd_tokenizer_id(t));
    bd_tokenizer_free(t);
}
END_TEST

// stories260K tok512.bin: " t" (259, -0), "he" (260), " a" (261), " the" (265) ...
static const enc_case tok512_cases[] = {
        // " O"+"n" -> " On", "ce" -> " Once" (403); " u"+"p" -> " up"+"on" -> " upon" (407);
        // " a" (261); "im"+"e" -> "ime", " t"+"ime" -> " time" (378).
        {"Once upon a time", 0, 4, {403, 407, 261, 378}},
        // "il"+"y" -> "ily", " L"+"ily" -> " Lily" (317).
        {"Lily", 0, 1, {317}},
        // " t"+"he" -> " the" (265); " c" (280) and "at" (294): " cat" is not among 512 pieces.
        {"the cat", 0, 3, {265, 280, 294}},
        // 中 is not a piece: ' ' (410) then bytes E4 B8 AD -> 231 187 176.
        {"\xe4\xb8\xad", 0, 4, {410, 231, 187, 176}},
        // 'x' (444), <0x0A> (13), 'y' (422).
        {"x\ny", 0, 4, {410, 444, 13, 422}},
};

START_TEST(test_tok512_cases) {
    bd_tokenizer *t = load_or_fail(bd_test_data("models/stories260K/tok512.bin"));
    ck_assert_int_eq(bd_tokenizer_vocab_size(t), 512);
    check_cases(t, tok512_cases, sizeof tok512_cases / sizeof *tok512_cases);
    // A directory with no tokenizer.json/.bin but a tok*.bin finds it.
    bd_tokenizer *d = load_or_fail(bd_test_data("models/stories260K"));
    ck_assert_str_eq(bd_tokenizer_id(d), bd_tokenizer_id(t));
    bd_tokenizer_free(d);
    bd_tokenizer_free(t);
}
END_TEST

START_TEST(test_flags_and_decode) {
    bd_tokenizer *t = load_or_fail(bd_test_data("tokenizers/llama2-32k/tokenizer.bin"));
    bd_token_buf ids = {0};
    ck_assert_int_eq(bd_tokenizer_encode(t, "Hello world", 11, BD_TOK_BOS | BD_TOK_EOS, &ids), BD_OK);
    ck_assert_int_eq(ids.n, 4);
    ck_assert(ids.ids[0] == 1 && ids.ids[1] == 15043 && ids.ids[2] == 3186 && ids.ids[3] == 2);
    ck_assert_int_eq(bd_tokenizer_encode(t, "", 0, BD_TOK_BOS, &ids), BD_OK);
    ck_assert(ids.n == 1 && ids.ids[0] == 1);
    // Control pieces decode to nothing; the dummy space after BOS goes (llama2.c's rule).
    bd_text_buf txt = {0};
    int32_t seq[] = {1, 15043, 3186, 2, 1, 15043};
    ck_assert_int_eq(bd_tokenizer_decode(t, seq, 6, 0, &txt), BD_OK);
    ck_assert_int_eq(txt.len, 16);
    ck_assert(memcmp(txt.data, "Hello worldHello", 16) == 0);
    // Streaming: " world" keeps its space after another piece.
    txt.len = 0;
    ck_assert_int_eq(bd_tokenizer_decode_next(t, 15043, 3186, 0, &txt), BD_OK);
    ck_assert(txt.len == 6 && memcmp(txt.data, " world", 6) == 0);
    txt.len = 0;
    ck_assert_int_eq(bd_tokenizer_decode_next(t, 1, 3186, 0, &txt), BD_OK);
    ck_assert(txt.len == 5 && memcmp(txt.data, "world", 5) == 0);
    // A byte piece after BOS is not stripped: <0x20> is a real space.
    txt.len = 0;
    ck_assert_int_eq(bd_tokenizer_decode_next(t, 1, 0x20 + 3, 0, &txt), BD_OK);
    ck_assert(txt.len == 1 && txt.data[0] == ' ');
    ck_assert_int_eq(bd_tokenizer_decode_next(t, 1, 32000, 0, &txt), BD_ERR_VALUE);
    ck_assert_int_eq(bd_tokenizer_decode_next(t, 1, -5, 0, &txt), BD_ERR_VALUE);
    bd_text_buf_free(&txt);
    bd_token_buf_free(&ids);
    bd_tokenizer_free(t);
}
END_TEST

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void check_roundtrip(const bd_tokenizer *t, const char *text, size_t n, size_t min_ids) {
    bd_token_buf ids = {0};
    bd_text_buf txt = {0};
    unsigned flags = bd_tokenizer_bos(t) >= 0 ? BD_TOK_BOS : 0;  // the BOS must not disturb the text
    ck_assert_int_eq(bd_tokenizer_encode(t, text, n, flags, &ids), BD_OK);
    ck_assert_uint_ge(ids.n, min_ids);
    ck_assert_int_eq(bd_tokenizer_decode(t, ids.ids, ids.n, BD_TOK_SKIP_SPECIAL, &txt), BD_OK);
    ck_assert_uint_eq(txt.len, n);
    for (size_t i = 0; i < n; i++) ck_assert_msg(txt.data[i] == text[i], "round trip differs at byte %zu", i);
    bd_text_buf_free(&txt);
    bd_token_buf_free(&ids);
}

START_TEST(test_roundtrip_tinystories) {
    size_t n;
    char *text = read_file(bd_test_data("eval/tinystories/tinystories_val_a.txt"), &n);
    ck_assert_uint_gt(n, 300000);
    static const char *toks[] = {"tokenizers/llama2-32k/tokenizer.bin", "models/stories260K/tok512.bin"};
    for (int k = 0; k < 2; k++) {
        bd_tokenizer *t = load_or_fail(bd_test_data(toks[k]));
        // Fewer ids than bytes (merges happen), more than one id per 8 bytes.
        check_roundtrip(t, text, n, n / 8);
        bd_tokenizer_free(t);
    }
    free(text);
}
END_TEST

START_TEST(test_roundtrip_bytes) {
    // Every byte value, invalid UTF-8 runs, emoji, CJK, leading/trailing spaces.
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)(255 - i);
    static const char *texts[] = {" leading",
                                  "trailing  ",
                                  "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x91\x8b\xf0\x9f\x8f\xbd!",
                                  "\x80\x80\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80",
                                  "\n\n \n",
                                  "\xe2\x96\x81 U+2581"};
    static const char *toks[] = {"tokenizers/llama2-32k/tokenizer.bin", "models/stories260K/tok512.bin"};
    for (int k = 0; k < 2; k++) {
        bd_tokenizer *t = load_or_fail(bd_test_data(toks[k]));
        check_roundtrip(t, all, sizeof all, 1);
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) check_roundtrip(t, texts[i], strlen(texts[i]), 1);
        bd_tokenizer_free(t);
    }
    bd_tokenizer *b = load_or_fail(fixture("tok_bytelevel/tokenizer.json"));
    check_roundtrip(b, all, sizeof all, 1);
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) check_roundtrip(b, texts[i], strlen(texts[i]), 1);
    bd_tokenizer_free(b);
}
END_TEST

// The heap merger and the rescanning reference agree on random symbol strings.
START_TEST(test_merge_matches_ref) {
    bd_tokenizer *t = load_or_fail(bd_test_data("models/stories260K/tok512.bin"));
    static const char alphabet[] = "  abcdehilnorstuwy.,";
    uint64_t s = 42;
    bd_bpe_work w1 = {0}, w2 = {0};
    for (int trial = 0; trial < 300; trial++) {
        w1.n_sym = w2.n_sym = 0;
        int n = 1 + trial % 97;
        for (int i = 0; i < n; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            char c = alphabet[(s >> 33) % (sizeof alphabet - 1)];
            int32_t id = bd_tokenizer_lookup(t, &c, 1);
            ck_assert_int_ge(bd_bpe_push_sym(&w1, id, (uint32_t)i, 1), 0);
            ck_assert_int_ge(bd_bpe_push_sym(&w2, id, (uint32_t)i, 1), 0);
        }
        ck_assert_int_eq(bd_bpe_merge(&t->merges, &w1), BD_OK);
        bd_bpe_merge_ref(&t->merges, &w2);
        int32_t i = 0, j = 0;
        for (; i >= 0 && j >= 0; i = w1.sym[i].next, j = w2.sym[j].next) ck_assert_int_eq(w1.sym[i].id, w2.sym[j].id);
        ck_assert(i < 0 && j < 0);
    }
    bd_bpe_work_free(&w1);
    bd_bpe_work_free(&w2);
    bd_tokenizer_free(t);
}
END_TEST

// Splitting SentencePiece text into space-led words (the fast path) changes no id: compared
// with BPE over each whole document on the stories text.
START_TEST(test_split_words_matches_whole) {
    size_t n;
    char *text = read_file(bd_test_data("eval/tinystories/tinystories_val_a.txt"), &n);
    n = n > 60000 ? 60000 : n;  // the whole-text merge is slower; a part is enough
    bd_tokenizer *t = load_or_fail(bd_test_data("tokenizers/llama2-32k/tokenizer.bin"));
    ck_assert(t->split_words);
    bd_token_buf a = {0}, b = {0};
    ck_assert_int_eq(bd_tokenizer_encode(t, text, n, 0, &a), BD_OK);
    t->split_words = false;
    ck_assert_int_eq(bd_tokenizer_encode(t, text, n, 0, &b), BD_OK);
    ck_assert_uint_eq(a.n, b.n);
    ck_assert(memcmp(a.ids, b.ids, a.n * sizeof *a.ids) == 0);
    bd_token_buf_free(&a);
    bd_token_buf_free(&b);
    bd_tokenizer_free(t);
    free(text);
}
END_TEST

// Split patterns: the expected word ends were worked out from the regex alternatives.
static void check_split(int style, const char *s, const size_t *ends, int n_ends) {
    size_t n = strlen(s), i = 0;
    int k = 0;
    while (i < n) {
        size_t e = bd_pretok_next(style, (const uint8_t *)s, n, i);
        ck_assert_msg(k < n_ends && e == ends[k], "style %d \"%s\": word %d ends at %zu, expected %zu", style, s, k, e,
                      k < n_ends ? ends[k] : 0);
        i = e;
        k++;
    }
    ck_assert_int_eq(k, n_ends);
}

START_TEST(test_split_patterns) {
    // GPT-2: "Hello" | " world" | "'s" | " 123" | "!!" | "  " (the run keeps its last space
    // for " x") | " x".
    check_split(BD_PRETOK_GPT2, "Hello world's 123!!   x", (size_t[]){5, 11, 13, 17, 19, 21, 23}, 7);
    // GPT-2: contractions are case-sensitive: "'S" is punctuation "'" then "S".
    check_split(BD_PRETOK_GPT2, "I'S", (size_t[]){1, 2, 3}, 3);
    // GPT-2: a trailing space run is one word; "\n" before a letter stands alone.
    check_split(BD_PRETOK_GPT2, "a\nb  ", (size_t[]){1, 2, 3, 5}, 4);
    // Qwen2: digits one by one; "'S" is a contraction (case-insensitive); ",x" joins punctuation
    // to the letters ([^\r\n\p{L}\p{N}]?\p{L}+).
    check_split(BD_PRETOK_QWEN2, "123 I'S,x", (size_t[]){1, 2, 3, 5, 7, 9}, 6);
    // Qwen2: " \n\n" up to the last line break is one word, then " x".
    check_split(BD_PRETOK_QWEN2, "a \n\n x", (size_t[]){1, 4, 6}, 3);
    // Qwen2: " ?!" then the line breaks that follow punctuation stay with it.
    check_split(BD_PRETOK_QWEN2, "a ?!\n\nb", (size_t[]){1, 6, 7}, 3);
    // Llama 3: numbers in groups of up to three.
    check_split(BD_PRETOK_LLAMA3, "12345", (size_t[]){3, 5}, 2);
    // Non-ASCII letters (é, 中) and numbers (² is \p{N}); U+3000 is whitespace.
    check_split(BD_PRETOK_QWEN2, "\xc3\xa9t\xc3\xa9\xe3\x80\x80\xe4\xb8\xad\xc2\xb2", (size_t[]){5, 11, 13}, 3);
}
END_TEST

// tests/fixtures/tok_spm: SentencePiece-style tokenizer.json. Vocab: <unk>0 <s>1 </s>2,
// <0x0A>3 <0xC3>4 <0xA9>5 <0xFF>6, ▁7 a8 b9 c10 h11 t12 e13, ▁t14 he15 ▁the16 ab17 ▁a18
// ▁ab19 bc20; merges by rank: 0 "▁ t", 1 "h e", 2 "▁t he", 3 "a b", 4 "▁ a", 5 "▁a b", 6 "b c".
static const enc_case hf_spm_cases[] = {
        // ▁ t h e: ▁t (rank 0), he (1), then ▁t+he (2) -> ▁the.
        {"the", 0, 1, {16}},
        // ▁ a b c: "a b" (3) goes before "▁ a" (4); then no merge joins ▁ + ab or ab + c.
        {"abc", 0, 3, {7, 17, 10}},
        // ▁ a ▁ b c: "▁ a" (4) then "b c" (6); the middle ▁ stays alone.
        {"a bc", 0, 3, {18, 7, 20}},
        // é is not in the vocab: both its bytes have pieces -> <0xC3> <0xA9>.
        {"\xc3\xa9", 0, 3, {7, 4, 5}},
        // Newline: <0x0A>.
        {"\n", 0, 2, {7, 3}},
        // "<s>" in the text is the special token; the rest is a new segment that gets its own ▁.
        {"<s>the", 0, 2, {1, 16}},
        {"", 0, 0, {0}},
};

START_TEST(test_hf_spm_fixture) {
    bd_tokenizer *t = load_or_fail(fixture("tok_spm/tokenizer.json"));
    ck_assert_int_eq(bd_tokenizer_vocab_size(t), 21);
    ck_assert_int_eq(bd_tokenizer_bos(t), 1);  // from the post-processor template
    ck_assert_int_eq(bd_tokenizer_eos(t), 2);  // by name
    ck_assert_msg(strncmp(bd_tokenizer_id(t), "hf:", 3) == 0, "id %s", bd_tokenizer_id(t));
    check_cases(t, hf_spm_cases, sizeof hf_spm_cases / sizeof *hf_spm_cases);
    bd_token_buf ids = {0};
    // 'x' has no piece and its byte 0x78 has no <0x78>: unk; fuse_unk makes "xx" one unk.
    ck_assert_int_eq(bd_tokenizer_encode(t, "xx", 2, 0, &ids), BD_OK);
    ck_assert(ids.n == 2 && ids.ids[0] == 7 && ids.ids[1] == 0);
    ck_assert_int_eq(bd_tokenizer_encode(t, "the", 3, BD_TOK_BOS | BD_TOK_EOS, &ids), BD_OK);
    ck_assert(ids.n == 3 && ids.ids[0] == 1 && ids.ids[1] == 16 && ids.ids[2] == 2);
    // Special tokens decode to their text unless skipped.
    bd_text_buf txt = {0};
    ck_assert_int_eq(bd_tokenizer_decode(t, ids.ids, ids.n, 0, &txt), BD_OK);
    ck_assert(txt.len == 10 && memcmp(txt.data, "<s>the</s>", 10) == 0);
    txt.len = 0;
    ck_assert_int_eq(bd_tokenizer_decode(t, ids.ids, ids.n, BD_TOK_SKIP_SPECIAL, &txt), BD_OK);
    ck_assert(txt.len == 3 && memcmp(txt.data, "the", 3) == 0);
    bd_text_buf_free(&txt);
    bd_token_buf_free(&ids);
    // The directory form finds tokenizer.json.
    bd_tokenizer *d = load_or_fail(fixture("tok_spm"));
    ck_assert_str_eq(bd_tokenizer_id(d), bd_tokenizer_id(t));
    bd_tokenizer_free(d);
    bd_tokenizer_free(t);
}
END_TEST

// tests/fixtures/tok_bytelevel: byte-level BPE with the Qwen2 split. Ids 0..255 are the
// single-byte pieces (id = byte value; ' ' is "Ġ" 32, '\n' is "Ċ" 10); merges by rank:
// 0 "Ġ t"->256, 1 "h e"->257, 2 "Ġt he"->258, 3 "i n"->259, 4 "in g"->260, 5 "1 2"->261,
// 6 "! !"->262, 7 "Ċ Ċ"->263; special <|endoftext|> 264.
static const enc_case hf_byte_cases[] = {
        // Words "the" | " thing". "the": h+e (1), t+he is no merge -> t, he.
        // " thing": Ġ+t (0), i+n (3), in+g (4) -> Ġt, h, ing.
        {"the thing", 0, 5, {116, 257, 256, 104, 260}},
        // " the": Ġt (0), he (1), Ġt+he (2).
        {" the", 0, 1, {258}},
        // Digits are split one by one before BPE, so "1 2" never applies.
        {"12", 0, 2, {49, 50}},
        // "wow" | "!!!": the leftmost "! !" first -> !!, !.
        {"wow!!!", 0, 5, {119, 111, 119, 262, 33}},
        // "a" | "\n\n" | "b": ĊĊ (7).
        {"a\n\nb", 0, 3, {97, 263, 98}},
        // The special token is matched before splitting.
        {"hi<|endoftext|>the", 0, 5, {104, 105, 264, 116, 257}},
        // é is bytes C3 A9 -> pieces 195, 169.
        {"\xc3\xa9", 0, 2, {195, 169}},
        // An invalid byte is just its byte piece.
        {"\xff", 0, 1, {255}},
        // "  x": the space run leaves its last space to " x": " " | " x" -> 32, 32, 120.
        {"  x", 0, 3, {32, 32, 120}},
        // Contractions are case-insensitive in Qwen2: "I" | "'M".
        {"I'M", 0, 3, {73, 39, 77}},
        {"", 0, 0, {0}},
};

START_TEST(test_hf_bytelevel_fixture) {
    bd_tokenizer *t = load_or_fail(fixture("tok_bytelevel/tokenizer.json"));
    ck_assert_int_eq(bd_tokenizer_vocab_size(t), 265);
    ck_assert_int_eq(bd_tokenizer_bos(t), -1);
    ck_assert_int_eq(bd_tokenizer_eos(t), 264);
    check_cases(t, hf_byte_cases, sizeof hf_byte_cases / sizeof *hf_byte_cases);
    bd_token_buf ids = {0};
    ck_assert_int_eq(bd_tokenizer_encode(t, "a", 1, BD_TOK_BOS, &ids), BD_ERR_ARG);
    ck_assert_int_eq(bd_tokenizer_encode(t, "a", 1, BD_TOK_EOS, &ids), BD_OK);
    ck_assert(ids.n == 2 && ids.ids[0] == 97 && ids.ids[1] == 264);
    bd_token_buf_free(&ids);
    size_t len;
    const char *p = bd_tokenizer_piece(t, 258, &len);
    ck_assert(p && len == 5 && memcmp(p, "\xc4\xa0the", 5) == 0);  // "Ġthe"
    bd_tokenizer_free(t);
}
END_TEST

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert_int_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void expect_load_error(const char *path, int code, const char *needle) {
    bd_tokenizer *t = (bd_tokenizer *)1;
    char why[512] = "";
    int rc = bd_tokenizer_load(path, &t, why, sizeof why);
    ck_assert_msg(rc == code, "load %s: rc %d, expected %d (%s)", path, rc, code, why);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(why, needle) != NULL, "load %s: message \"%s\" lacks \"%s\"", path, why, needle);
}

// Auxiliary files that are FIFOs or devices are neither waited on nor read without end: a FIFO
// tokenizer_config.json (no writer: opening it would block) and one that links to /dev/zero
// are skipped with a warning; a FIFO or device as the tokenizer file itself is refused.
START_TEST(test_aux_files_not_regular) {
    char dir[1100], path[1200], src[1200];
    snprintf(dir, sizeof dir, "%s/tok_fifo", bd_test_tmpdir());
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    snprintf(src, sizeof src, "%s", fixture("tok_spm/tokenizer.json"));
    char *json;
    size_t jn;
    char jwhy[600];
    ck_assert_int_eq(bd_read_small_file(src, 1 << 20, &json, &jn, jwhy, sizeof jwhy), BD_OK);
    write_file(path, json, jn);
    free(json);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    bd_tokenizer *t = load_or_fail(dir);
    bd_tokenizer_free(t);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(symlink("/dev/zero", path), 0);
    t = load_or_fail(dir);
    bd_tokenizer_free(t);
    expect_load_error(path, BD_ERR_ARG, "not a regular file (a device)");
    snprintf(path, sizeof path, "%s/fifo.bin", bd_test_tmpdir());
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    expect_load_error(path, BD_ERR_ARG, "a FIFO");
    // The size limit of bd_read_small_file.
    char *data;
    size_t n;
    char why[600];
    ck_assert_int_eq(bd_read_small_file(src, 100, &data, &n, why, sizeof why), BD_ERR_MALFORMED);
    ck_assert_msg(strstr(why, "more than the 100"), "%s", why);
    ck_assert_int_eq(bd_read_small_file(src, 1 << 20, &data, &n, why, sizeof why), BD_OK);
    ck_assert(n > 100 && data[n] == 0 && data[0] == '{');
    free(data);
}
END_TEST

START_TEST(test_load_errors) {
    char path[1200];
    const char *dir = bd_test_tmpdir();
    snprintf(path, sizeof path, "%s/none.bin", dir);
    expect_load_error(path, BD_ERR_IO, "none.bin");
    snprintf(path, sizeof path, "%s/junk.bin", dir);
    write_file(path, "hello, this is not a tokenizer", 30);
    expect_load_error(path, BD_ERR_MALFORMED, "unknown tokenizer format");
    // A llama2.c file cut inside its third record.
    size_t n;
    char *tb = read_file(bd_test_data("models/stories260K/tok512.bin"), &n);
    snprintf(path, sizeof path, "%s/cut.bin", dir);
    write_file(path, tb, 4 + 13 + 12 + 3);
    expect_load_error(path, BD_ERR_MALFORMED, "token 2");
    free(tb);
    static const struct {
        const char *json, *needle;
    } bad[] = {
            {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram"},
            {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "merges[0]"},
            {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}", "merges[0]"},
            {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", "vocab"},
            {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0},\n \"merges\": [}", "line 2"},
            {"{\"no_model\": 1}", "model"},
            {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Digits\"}}",
             "Digits"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.json", dir, i);
        write_file(path, bad[i].json, strlen(bad[i].json));
        expect_load_error(path, BD_ERR_MALFORMED, bad[i].needle);
    }
    // A directory with nothing usable.
    snprintf(path, sizeof path, "%s/emptydir", dir);
    mkdir(path, 0777);
    expect_load_error(path, BD_ERR_MALFORMED, "no tokenizer.json");
}
END_TEST

Suite *suite_tokenizer(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_llama2_cases);
    tcase_add_test(tc, test_tok512_cases);
    tcase_add_test(tc, test_flags_and_decode);
    tcase_add_test(tc, test_roundtrip_tinystories);
    tcase_add_test(tc, test_roundtrip_bytes);
    tcase_add_test(tc, test_merge_matches_ref);
    tcase_add_test(tc, test_split_words_matches_whole);
    tcase_add_test(tc, test_split_patterns);
    tcase_add_test(tc, test_hf_spm_fixture);
    tcase_add_test(tc, test_hf_bytelevel_fixture);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_aux_files_not_regular);
    suite_add_tcase(s, tc);
    return s;
}
