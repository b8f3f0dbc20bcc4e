// Prompts (bd_prompts): fitting to the context worked by hand, the hash against FNV-1a written
// out byte by byte, text and JSONL prompts through templates against the tokenizer's encoding
// of the expected strings, token prompts cut to their first L ids, and the errors' codes.
#include <string.h>

#include "bd_prompts.h"
#include "bd_test_streams.h"

START_TEST(test_prompts_fit) {
    bd_prompt_set ps = {0};
    int32_t a[12];
    for (int i = 0; i < 12; i++) a[i] = i + 1;                          // starts with BOS 1
    ck_assert_int_eq(bd_prompts_fit_add(&ps, a, 7, 8, 1), BD_OK);       // 7 + 1 fits a context of 8
    ck_assert_int_eq(bd_prompts_fit_add(&ps, a, 12, 8, 1), BD_OK);      // keeps BOS and the last 3
    ck_assert_int_eq(bd_prompts_fit_add(&ps, a + 1, 11, 8, 1), BD_OK);  // no BOS: the last 4
    ck_assert_int_eq(ps.count, 3);
    ck_assert_int_eq(ps.truncated, 2);
    int32_t want[7 + 4 + 4] = {1, 2, 3, 4, 5, 6, 7, 1, 10, 11, 12, 9, 10, 11, 12};
    size_t start[4] = {0, 7, 11, 15};
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(ps.start[i], start[i]);
    for (int i = 0; i < 15; i++) ck_assert_int_eq(ps.ids[i], want[i]);
    // FNV-1a 64 over (length, ids...) of each prompt as little-endian 32-bit words.
    uint64_t h = 0xcbf29ce484222325ull;
    for (int p = 0; p < 3; p++) {
        uint32_t words[8];
        int n = 0;
        words[n++] = (uint32_t)(start[p + 1] - start[p]);
        for (size_t j = start[p]; j < start[p + 1]; j++) words[n++] = (uint32_t)want[j];
        const unsigned char *b = (const unsigned char *)words;
        for (int k = 0; k < 4 * n; k++) h = (h ^ b[k]) * 0x100000001b3ull;
    }
    char hex[17], got[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    bd_prompts_hash(&ps, got);
    ck_assert_str_eq(got, hex);
    bd_prompts_free(&ps);
}
END_TEST

static bd_tokenizer *tok512(void) {
    bd_tokenizer *tok;
    char why[600];
    ck_assert_msg(bd_tokenizer_load(bd_test_data("models/stories260K/tok512.bin"), &tok, why, sizeof why) == BD_OK,
                  "%s", why);
    return tok;
}

// The prompt i of ps is text encoded with BOS.
static void expect_prompt(const bd_prompt_set *ps, int i, const bd_tokenizer *tok, const char *text) {
    bd_token_buf b = {0};
    ck_assert_int_eq(bd_tokenizer_encode(tok, text, strlen(text), BD_TOK_BOS, &b), BD_OK);
    ck_assert_uint_eq(ps->start[i + 1] - ps->start[i], b.n);
    for (size_t j = 0; j < b.n; j++) ck_assert_int_eq(ps->ids[ps->start[i] + j], b.ids[j]);
    bd_token_buf_free(&b);
}

// bd_prompts_read over po->path, opened as the tools open it.
static int read_path(bd_prompt_set *ps, bd_prompt_opts *po, const bd_tokenizer *tok, int V, int64_t max_n, int max_seq,
                     char *why, size_t ws) {
    bd_input in;
    int rc = bd_input_open(&in, po->path, why, ws);
    if (rc < 0) return rc;
    rc = bd_prompts_read(ps, po, &in, tok, V, max_n, max_seq, 1, why, ws);
    bd_input_close(&in);
    return rc;
}

static const char *write_file(const char *name, const char *text) {
    const char *p = bd_test_path(name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

START_TEST(test_prompts_text) {
    bd_tokenizer *tok = tok512();
    char why[600];
    bd_prompt_set ps = {0};
    bd_prompt_opts po = {.path = write_file("p.txt", "A cat\n\n  \nA dog\r\n"), .template_ = "Q: {}\\nA:"};
    ck_assert_int_eq(read_path(&ps, &po, tok, 512, -1, 512, why, sizeof why), BD_OK);
    ck_assert_str_eq(po.kind, "text");
    ck_assert_int_eq(ps.count, 2);
    expect_prompt(&ps, 0, tok, "Q: A cat\nA:");
    expect_prompt(&ps, 1, tok, "Q: A dog\nA:");
    bd_prompts_free(&ps);
    // JSONL: the Alpaca template, with an Input section only when "input" is not empty; at most 1.
    po = (bd_prompt_opts){.path = write_file("p.jsonl",
                                             "{\"q\":\"Hi\",\"input\":\"x\"}\n{\"q\":\"Go\",\"input\":\"\"}\n"),
                          .field = "q",
                          .template_ = "alpaca"};
    ck_assert_int_eq(read_path(&ps, &po, tok, 512, 1, 512, why, sizeof why), BD_OK);
    ck_assert_str_eq(po.kind, "jsonl");
    ck_assert_int_eq(ps.count, 1);
    expect_prompt(
            &ps, 0, tok,
            "Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response that appropriately completes the request.\n\n### Instruction:\nHi\n\n### Input:\nx\n\n"
            "### Response:\n");
    bd_prompts_free(&ps);
    // A {NAME} field of the JSON object.
    po.template_ = "{input}/{}";
    ck_assert_int_eq(read_path(&ps, &po, tok, 512, -1, 512, why, sizeof why), BD_OK);
    expect_prompt(&ps, 0, tok, "x/Hi");
    expect_prompt(&ps, 1, tok, "/Go");
    bd_prompts_free(&ps);
    bd_tokenizer_free(tok);
}
END_TEST

START_TEST(test_prompts_errors) {
    bd_tokenizer *tok = tok512();
    char why[600] = "";
    bd_prompt_set ps = {0};
    const char *txt = write_file("e.txt", "A cat\n"), *js = write_file("e.jsonl", "{\"q\":\"a\"}\n{\"r\":\"b\"}\n");
    // Template errors are the caller's (BD_ERR_ARG); data errors name the file and line.
    struct {
        const char *path, *field, *tmpl;
        int rc;
        const char *msg;
    } cases[] = {
            {txt, NULL, "x {", BD_ERR_ARG, "--template: \"{\" without \"}\""},
            {txt, NULL, "{input}", BD_ERR_ARG, "--template: {input} needs JSONL prompts (--field)"},
            {js, "q", "{r}", BD_ERR_SCHEMA, "e.jsonl\" line 1: field \"r\" (used by --template) is missing"},
            {js, "q", "", BD_ERR_SCHEMA, "e.jsonl\" line 2: field \"q\" is missing"},
            {write_file("n.jsonl", "{\"q\":3}\n"), "q", "", BD_ERR_SCHEMA, "line 1: field \"q\" is not a string"},
            {write_file("b.jsonl", "{\"q\":\n"), "q", "", BD_ERR_VALUE, "line 1: invalid JSON"},
            {write_file("a.jsonl", "[1]\n"), "q", "", BD_ERR_VALUE, "line 1: invalid JSON: not an object"},
            {bd_test_path("none.txt"), NULL, "", BD_ERR_IO, "none.txt\": cannot open"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bd_prompt_opts po = {.path = cases[i].path, .field = cases[i].field, .template_ = cases[i].tmpl};
        ck_assert_int_eq(read_path(&ps, &po, tok, 512, -1, 512, why, sizeof why), cases[i].rc);
        ck_assert_msg(strstr(why, cases[i].msg), "case %zu: %s", i, why);
        bd_prompts_free(&ps);
    }
    bd_tokenizer_free(tok);
}
END_TEST

static const char *write_bytes(const char *name, const char *data, size_t n) {
    const char *p = bd_test_path(name);
    FILE *f = fopen(p, "wb");
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return p;
}

// A NUL would end the C string of a prompt: refused, naming the line (a line of NULs was BOS alone).
START_TEST(test_prompts_nul) {
    bd_tokenizer *tok = tok512();
    char why[600] = "";
    bd_prompt_set ps = {0};
    static const char text[] = "A cat\nA d\0og\n", zeros[] = "A cat\n\0\0\0\n";
    bd_prompt_opts po = {.path = write_bytes("n0.txt", text, sizeof text - 1), .template_ = ""};
    ck_assert_int_eq(read_path(&ps, &po, tok, 512, -1, 512, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "n0.txt\" line 2: NUL byte in a text prompt"), "%s", why);
    bd_prompts_free(&ps);
    po.path = write_bytes("n1.txt", zeros, sizeof zeros - 1);
    ck_assert_int_eq(read_path(&ps, &po, tok, 512, -1, 512, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "n1.txt\" line 2: NUL byte"), "%s", why);
    bd_prompts_free(&ps);
    // JSONL: a \u0000 escape is a NUL too; an escaped backslash before "u0000" is not.
    po = (bd_prompt_opts){.path = write_file("n.jsonl", "{\"q\":\"a\"}\n{\"q\":\"a\\u0000b\"}\n"),
                          .field = "q",
                          .template_ = ""};
    ck_assert_int_eq(read_path(&ps, &po, tok, 512, -1, 512, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "n.jsonl\" line 2: NUL byte or \\u0000 escape in a text prompt"), "%s", why);
    bd_prompts_free(&ps);
    po.path = write_file("b.jsonl", "{\"q\":\"a\\\\u0000b\"}\n");
    ck_assert_int_eq(read_path(&ps, &po, tok, 512, -1, 512, why, sizeof why), BD_OK);
    expect_prompt(&ps, 0, tok, "a\\u0000b");
    bd_prompts_free(&ps);
    bd_tokenizer_free(tok);
}
END_TEST

START_TEST(test_prompts_tokens) {
    // Documents of 5, 0, 3 and 4 ids: the first 2 of each non-empty one; the id 40 past them is not read.
    int32_t docs[] = {1, 5, 40, 41, 42, 1, 7, 8, 9, 10, 11, 12};
    int lens[] = {5, 0, 3, 4};
    const char *p = bd_test_path("pt.bdz");
    bd_test_write_tokens(p, docs, lens, 4, 30);
    char why[600];
    bd_prompt_set ps = {0};
    bd_prompt_opts po = {.path = p, .template_ = "", .prompt_len = 2};
    ck_assert_int_eq(read_path(&ps, &po, NULL, 30, -1, 64, why, sizeof why), BD_OK);
    ck_assert_str_eq(po.kind, "tokens");
    int32_t want[6] = {1, 5, 1, 7, 9, 10};
    ck_assert_int_eq(ps.count, 3);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(ps.ids[i], want[i]);
    bd_prompts_free(&ps);
    // At most 2 prompts: the reader stops there.
    ck_assert_int_eq(read_path(&ps, &po, NULL, 30, 2, 64, why, sizeof why), BD_OK);
    ck_assert_int_eq(ps.count, 2);
    bd_prompts_free(&ps);
    // All of each document: id 40 is outside a vocabulary of 30, and the header's 30 is over 20.
    po.prompt_len = 100;
    ck_assert_int_eq(read_path(&ps, &po, NULL, 30, -1, 64, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "pt.bdz\" record 1: field \"ids\": id 40 at position 2"), "%s", why);
    bd_prompts_free(&ps);
    ck_assert_int_eq(read_path(&ps, &po, NULL, 20, -1, 64, why, sizeof why), BD_ERR_SCHEMA);
    ck_assert_msg(strstr(why, "tokens from a vocabulary of 30, the model has 20"), "%s", why);
    bd_prompts_free(&ps);
}
END_TEST

Suite *suite_prompts(void) {
    Suite *s = suite_create("prompts");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_prompts_fit);
    tcase_add_test(tc, test_prompts_text);
    tcase_add_test(tc, test_prompts_errors);
    tcase_add_test(tc, test_prompts_tokens);
    tcase_add_test(tc, test_prompts_nul);
    suite_add_tcase(s, tc);
    return s;
}
