// Labelled task data (bd_task): templates and verbalizers parsed against hand-written parts,
// TSV and JSONL records against the contexts written out by hand, each error's code and the
// words of its message, and both outputs read back by their consumers (bd_mc_load for the
// JSONL task file, bd_seqs_from_samples with --mask-prompt for the samples).
#include <string.h>

#include "bd_mc.h"
#include "bd_seqs.h"
#include "bd_task.h"
#include "bd_test_streams.h"

START_TEST(test_task_template) {
    bd_task_template t;
    char why[600];
    ck_assert_int_eq(bd_task_template_parse(&t, "Review: {sentence}\\n\\{{2}\\}\\t\\\\", why, sizeof why), BD_OK);
    ck_assert_int_eq(t.n, 5);
    ck_assert_int_eq(t.n_fields, 2);
    ck_assert(!t.parts[0].field);
    ck_assert_str_eq(t.parts[0].text, "Review: ");
    ck_assert(t.parts[1].field);
    ck_assert_str_eq(t.parts[1].text, "sentence");
    ck_assert_int_eq(t.parts[1].column, 0);
    ck_assert(!t.parts[2].field);
    ck_assert_str_eq(t.parts[2].text, "\n{");
    ck_assert(t.parts[3].field);
    ck_assert_str_eq(t.parts[3].text, "2");
    ck_assert_int_eq(t.parts[3].column, 2);
    ck_assert(!t.parts[4].field);
    ck_assert_str_eq(t.parts[4].text, "}\t\\");
    bd_task_template_free(&t);
    // Trailing literal text; a name with digits and letters is a name.
    ck_assert_int_eq(bd_task_template_parse(&t, "{2a}:", why, sizeof why), BD_OK);
    ck_assert_int_eq(t.n, 2);
    ck_assert_int_eq(t.parts[0].column, 0);
    ck_assert_str_eq(t.parts[1].text, ":");
    bd_task_template_free(&t);

    struct {
        const char *spec, *msg;
    } bad[] = {
            {"Review: text\\nSentiment:", "has no field"},
            {"", "has no field"},
            {"\\{x\\}", "has no field"},
            {"a {x", "\"{\" without \"}\""},
            {"a {x{y}}", "\"{\" without \"}\""},
            {"a x} {y}", "\"}\" without \"{\""},
            {"a {} b", "empty field name"},
            {"{x}\\q", "unknown escape \"\\q\""},
            {"{x}\\", "unknown escape"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = 0;
        ck_assert_int_eq(bd_task_template_parse(&t, bad[i].spec, why, sizeof why), BD_ERR_ARG);
        ck_assert_msg(strstr(why, bad[i].msg) && !strncmp(why, "--template: ", 12), "case %zu: %s", i, why);
        ck_assert_ptr_null(t.parts);
    }
}
END_TEST

START_TEST(test_task_verbalizer) {
    bd_task_verbalizer v;
    char why[600];
    ck_assert_int_eq(bd_task_verbalizer_parse(&v, "0=negative,1=positive,neutral=so = so", why, sizeof why), BD_OK);
    ck_assert_int_eq(v.n, 3);
    ck_assert_str_eq(v.labels[0], "0");
    ck_assert_str_eq(v.words[0], "negative");
    ck_assert_str_eq(v.labels[2], "neutral");
    ck_assert_str_eq(v.words[2], "so = so");
    ck_assert_int_eq(bd_task_verbalizer_find(&v, "1"), 1);
    ck_assert_int_eq(bd_task_verbalizer_find(&v, "neutral"), 2);
    ck_assert_int_eq(bd_task_verbalizer_find(&v, "2"), -1);
    ck_assert_int_eq(bd_task_verbalizer_find(&v, "0 "), -1);
    bd_task_verbalizer_free(&v);

    struct {
        const char *spec, *msg;
    } bad[] = {
            {"0=negative", "has one label"},
            {"0=negative,", "\"\" has no \"=\""},
            {"0=negative,,1=positive", "\"\" has no \"=\""},
            {"0negative,1=positive", "\"0negative\" has no \"=\""},
            {"0=,1=positive", "has an empty word"},
            {"=negative,1=positive", "has an empty label"},
            {"0=a,0=b", "label \"0\" appears twice"},
            {"0=a,1=a", "word \"a\" appears twice"},
            {"0= negative,1=positive", "starts or ends with whitespace"},
            {"0=negative,1=positive ", "starts or ends with whitespace"},
            {"0=negative, 1=positive", "starts or ends with whitespace"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = 0;
        ck_assert_int_eq(bd_task_verbalizer_parse(&v, bad[i].spec, why, sizeof why), BD_ERR_ARG);
        ck_assert_msg(strstr(why, bad[i].msg) && !strncmp(why, "--verbalizer: ", 14), "case %zu: %s", i, why);
        ck_assert_ptr_null(v.labels);
    }
}
END_TEST

static const char *write_file(const char *name, const char *text, size_t n) {
    const char *p = bd_test_path(name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(text, 1, n, f);
    fclose(f);
    return p;
}

// bd_task_read of text (written to the file name) as the tool opens it.
static int read_text(const char *name, const char *text, bd_task_format fmt, const char *tmpl, long limit,
                     bd_task_set *set, char *why, size_t ws) {
    bd_task_template t;
    bd_task_verbalizer v;
    ck_assert_int_eq(bd_task_template_parse(&t, tmpl, why, ws), BD_OK);
    ck_assert_int_eq(bd_task_verbalizer_parse(&v, "0=negative,1=positive", why, ws), BD_OK);
    bd_input in;
    ck_assert_int_eq(bd_input_open(&in, write_file(name, text, strlen(text)), why, ws), BD_OK);
    int rc = bd_task_read(&in, fmt, &t, "label", &v, limit, set, why, ws);
    bd_input_close(&in);
    bd_task_verbalizer_free(&v);
    bd_task_template_free(&t);
    return rc;
}

static void expect_example(const bd_task_set *s, long i, const char *context, int gold, long line) {
    ck_assert_int_lt(i, s->n);
    ck_assert_str_eq(s->ex[i].context, context);
    ck_assert_int_eq(s->ex[i].gold, gold);
    ck_assert_int_eq(s->ex[i].line, line);
}

START_TEST(test_task_read) {
    bd_task_set s;
    char why[1600];
    // TSV: columns by name and number, a blank line skipped, CRLF and a byte order mark dropped.
    const char *tsv = "\xEF\xBB\xBFlabel\tsentence\r\n0\tgood \"fun\"\r\n\r\n1\t{x}\\n\r\n";
    ck_assert_int_eq(read_text("a.tsv", tsv, BD_TASK_AUTO, "S: {sentence}|{1}\\n", 0, &s, why, sizeof why), BD_OK);
    ck_assert_int_eq(s.format, BD_TASK_TSV);
    ck_assert_int_eq(s.n, 2);
    expect_example(&s, 0, "S: good \"fun\"|0\n", 0, 2);
    expect_example(&s, 1, "S: {x}\\n|1\n", 1, 4);
    bd_task_set_free(&s);
    // --limit keeps the first examples.
    ck_assert_int_eq(read_text("a.tsv", tsv, BD_TASK_TSV, "{2}", 1, &s, why, sizeof why), BD_OK);
    ck_assert_int_eq(s.n, 1);
    expect_example(&s, 0, "good \"fun\"", 0, 2);
    bd_task_set_free(&s);
    // JSONL (by content): integer and string labels, escapes decoded, blank lines skipped; {2} is the field "2".
    const char *js =
            "  {\"label\": 1, \"text\": \"a\\\"b\\u00e9\", \"2\": \"two\"}\n \n{\"2\":\"\",\"text\":\"c\",\"label\":\"0\"}";
    ck_assert_int_eq(read_text("a.jsonl", js, BD_TASK_AUTO, "<{text}>{2}", 0, &s, why, sizeof why), BD_OK);
    ck_assert_int_eq(s.format, BD_TASK_JSONL);
    ck_assert_int_eq(s.n, 2);
    expect_example(&s, 0, "<a\"b\xC3\xA9>two", 1, 1);
    expect_example(&s, 1, "<c>", 0, 3);
    bd_task_set_free(&s);
}
END_TEST

START_TEST(test_task_read_errors) {
    bd_task_set s;
    char why[1600];
    struct {
        const char *text;
        bd_task_format fmt;
        const char *tmpl;
        long limit;
        int rc;
        const char *msg;
    } bad[] = {
            {"label\tsentence\n0\tok\n2\tbad\n", BD_TASK_AUTO, "{sentence}", 0, BD_ERR_VALUE,
             "e.txt\" line 3: label \"2\" is not in the verbalizer (its labels: 0, 1)"},
            // The whole input is checked even past --limit.
            {"label\tsentence\n0\tok\n2\tbad\n", BD_TASK_AUTO, "{sentence}", 1, BD_ERR_VALUE, "line 3: label \"2\""},
            {"label\tsentence\n0\tok\n", BD_TASK_AUTO, "{text}", 0, BD_ERR_SCHEMA,
             "e.txt\" line 1: template field \"text\" is not a column of the header; the columns are: label, sentence"},
            {"label\tsentence\n0\tok\n", BD_TASK_AUTO, "{3}", 0, BD_ERR_SCHEMA,
             "line 1: template field {3} is past the header's 2 columns (label, sentence)"},
            {"lab\tsentence\n0\tok\n", BD_TASK_AUTO, "{2}", 0, BD_ERR_SCHEMA,
             "line 1: label field \"label\" is not a column of the header; the columns are: lab, sentence"},
            {"label\tx\tx\n0\ta\tb\n", BD_TASK_AUTO, "{x}", 0, BD_ERR_SCHEMA,
             "line 1: template field \"x\" names two columns"},
            {"label\tsentence\n0\tok\n1\tno\textra\n", BD_TASK_AUTO, "{2}", 0, BD_ERR_VALUE,
             "e.txt\" line 3: 3 tab-separated columns, expected 2 as in the header"},
            {"label\tsentence\n1\n", BD_TASK_AUTO, "{2}", 0, BD_ERR_VALUE,
             "line 2: 1 tab-separated columns, expected 2"},
            {"", BD_TASK_AUTO, "{2}", 0, BD_ERR_VALUE, "e.txt\": empty input"},
            {"\n\n", BD_TASK_AUTO, "{2}", 0, BD_ERR_VALUE, "e.txt\": empty input"},
            {"label\tsentence\n", BD_TASK_AUTO, "{2}", 0, BD_ERR_VALUE, "no labelled records after the TSV header"},
            {"{\"label\":0,\"text\":\"a\"}\n{\"label\":0,\"text\":\"a\"\n", BD_TASK_AUTO, "{text}", 0, BD_ERR_VALUE,
             "e.txt\" line 2: invalid JSON at column"},
            {"{\"label\":0,\"text\":\"a\"}\n[1]\n", BD_TASK_JSONL, "{text}", 0, BD_ERR_VALUE,
             "line 2: not a JSON object"},
            {"{\"label\":0,\"txt\":\"a\"}\n", BD_TASK_AUTO, "{text}", 0, BD_ERR_SCHEMA,
             "line 1: template field \"text\" is missing; the record has fields: label, txt"},
            {"{\"label\":0,\"text\":5}\n", BD_TASK_AUTO, "{text}", 0, BD_ERR_SCHEMA,
             "line 1: template field \"text\" is not a string"},
            {"{\"text\":\"a\"}\n", BD_TASK_AUTO, "{text}", 0, BD_ERR_SCHEMA,
             "line 1: label field \"label\" is missing"},
            {"{\"label\":0.5,\"text\":\"a\"}\n", BD_TASK_AUTO, "{text}", 0, BD_ERR_SCHEMA,
             "is not a string or an integer"},
            {"{\"label\":true,\"text\":\"a\"}\n", BD_TASK_AUTO, "{text}", 0, BD_ERR_SCHEMA,
             "is not a string or an integer"},
            {"{\"label\":3,\"text\":\"a\"}\n", BD_TASK_AUTO, "{text}", 0, BD_ERR_VALUE,
             "line 1: label \"3\" is not in"},
            {"{\"label\":0,\"text\":\"a\\u0000b\"}\n", BD_TASK_AUTO, "{text}", 0, BD_ERR_VALUE,
             "line 1: NUL byte or \\u0000 escape"},
            // JSONL read as TSV (--format tsv): its line is the header, which lacks the field.
            {"{\"label\":0,\"text\":\"a\"}\n", BD_TASK_TSV, "{text}", 0, BD_ERR_SCHEMA,
             "is not a column of the header"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = 0;
        ck_assert_int_eq(read_text("e.txt", bad[i].text, bad[i].fmt, bad[i].tmpl, bad[i].limit, &s, why, sizeof why),
                         bad[i].rc);
        ck_assert_msg(strstr(why, bad[i].msg), "case %zu: %s", i, why);
        ck_assert_ptr_null(s.ex);
    }
    // A NUL byte in TSV text, named by its line.
    bd_task_template t;
    bd_task_verbalizer v;
    ck_assert_int_eq(bd_task_template_parse(&t, "{2}", why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_task_verbalizer_parse(&v, "0=no,1=yes", why, sizeof why), BD_OK);
    bd_input in;
    static const char nul[] = "label\ts\n0\ta\n1\tb\0c\n";
    ck_assert_int_eq(bd_input_open(&in, write_file("nul.tsv", nul, sizeof nul - 1), why, sizeof why), BD_OK);
    ck_assert_int_eq(bd_task_read(&in, BD_TASK_AUTO, &t, "label", &v, 0, &s, why, sizeof why), BD_ERR_VALUE);
    ck_assert_msg(strstr(why, "nul.tsv\" line 3: NUL byte in text"), "%s", why);
    bd_input_close(&in);
    bd_task_verbalizer_free(&v);
    bd_task_template_free(&t);
}
END_TEST

static bd_tokenizer *tok512(void) {
    bd_tokenizer *tok;
    char why[600];
    ck_assert_msg(bd_tokenizer_load(bd_test_data("models/stories260K/tok512.bin"), &tok, why, sizeof why) == BD_OK,
                  "%s", why);
    return tok;
}

START_TEST(test_task_encode) {
    bd_tokenizer *tok = tok512();
    const char *ctx = "Review: a fine film .\nSentiment:";
    bd_token_buf want = {0}, got = {0};
    int wstart, start;
    bool cut;
    ck_assert_int_eq(bd_mc_tokenize(tok, ctx, "positive", &want, &wstart), BD_OK);
    ck_assert_int_eq(bd_task_encode(tok, ctx, "positive", 0, &got, &start, &cut), BD_OK);
    ck_assert(!cut);
    ck_assert_int_eq(start, wstart);
    ck_assert_uint_eq(got.n, want.n);
    ck_assert_mem_eq(got.ids, want.ids, want.n * sizeof *want.ids);
    // The completion is the word (after the space the scorer puts before it).
    bd_text_buf txt = {0};
    ck_assert_int_eq(bd_tokenizer_decode(tok, want.ids + wstart, want.n - (size_t)wstart, 0, &txt), BD_OK);
    size_t sp = txt.len && txt.data[0] == ' ';  // a decoder may drop the leading space of a first piece
    ck_assert_uint_eq(txt.len - sp, 8);
    ck_assert_mem_eq(txt.data + sp, "positive", 8);
    bd_text_buf_free(&txt);
    ck_assert_int_eq(want.ids[0], bd_tokenizer_bos(tok));
    // --max-len: BOS, the prompt's last tokens and the whole word, max_len in all.
    size_t K = want.n - (size_t)wstart;
    int max_len = (int)K + 4;
    ck_assert_int_eq(bd_task_encode(tok, ctx, "positive", max_len, &got, &start, &cut), BD_OK);
    ck_assert(cut);
    ck_assert_uint_eq(got.n, (size_t)max_len);
    ck_assert_int_eq(start, 4);
    ck_assert_int_eq(got.ids[0], bd_tokenizer_bos(tok));
    ck_assert_mem_eq(got.ids + 1, want.ids + wstart - 3, (3 + K) * sizeof *want.ids);
    // Exactly long enough: unchanged; BOS + word: the prompt is the BOS alone; shorter: refused.
    ck_assert_int_eq(bd_task_encode(tok, ctx, "positive", (int)want.n, &got, &start, &cut), BD_OK);
    ck_assert(!cut);
    ck_assert_int_eq(bd_task_encode(tok, ctx, "positive", (int)K + 1, &got, &start, &cut), BD_OK);
    ck_assert(cut);
    ck_assert_int_eq(start, 1);
    ck_assert_int_eq(bd_task_encode(tok, ctx, "positive", (int)K, &got, &start, &cut), BD_ERR_VALUE);
    bd_token_buf_free(&want);
    bd_token_buf_free(&got);
    bd_tokenizer_free(tok);
}
END_TEST

// A set of three examples with texts that need JSON escaping.
static void three(bd_task_set *s, bd_task_verbalizer *v) {
    char why[600];
    ck_assert_int_eq(bd_task_verbalizer_parse(v, "0=neg \"x\",1=pos\\tab", why, sizeof why), BD_OK);
    static const char *ctx[] = {"Review: \"quoted\" \\ back\nSentiment:", "tab\there \xC3\xA9", "plain"};
    s->n = 3;
    s->format = BD_TASK_TSV;
    s->ex = calloc(3, sizeof *s->ex);
    for (int i = 0; i < 3; i++) s->ex[i] = (bd_task_example){strdup(ctx[i]), i == 1, i + 2};
}

START_TEST(test_task_write_mc) {
    bd_task_set s;
    bd_task_verbalizer v;
    three(&s, &v);
    char why[600];
    const char *p = bd_test_path("mc.jsonl");
    FILE *f = fopen(p, "w");
    ck_assert_int_eq(bd_task_write_mc(f, "in.tsv", p, &s, &v, why, sizeof why), BD_OK);
    fclose(f);
    // bd-eval's own loader reads back every context, choice and gold.
    bd_mc_task task;
    ck_assert_msg(bd_mc_load(p, BD_MC_JSONL, NULL, 0, &task, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(task.n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(task.items[i].context, s.ex[i].context);
        ck_assert_int_eq(task.items[i].n_choices, 2);
        ck_assert_str_eq(task.items[i].choices[0], "neg \"x\"");
        ck_assert_str_eq(task.items[i].choices[1], "pos\\tab");
        ck_assert_int_eq(task.items[i].gold, s.ex[i].gold);
    }
    bd_mc_task_free(&task);
    bd_task_set_free(&s);
    bd_task_verbalizer_free(&v);
}
END_TEST

START_TEST(test_task_write_samples) {
    bd_tokenizer *tok = tok512();
    bd_task_set s;
    bd_task_verbalizer v;
    three(&s, &v);
    char why[600];
    const char *p = bd_test_path("task.bdz");
    bd_writer *w = bd_writer_open(p, 0, NULL);
    ck_assert_ptr_nonnull(w);
    bd_task_samples_opts o = {
            .input = "in.tsv", .output = p, .template_ = "{1}", .verbalizer = "v", .label_field = "label"};
    long cut;
    ck_assert_msg(bd_task_write_samples(w, NULL, &o, &s, &v, tok, &cut, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(cut, 0);
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
    // bd-qat's reader with --mask-prompt scores exactly the word's tokens, as bd_mc_tokenize splits them.
    bd_seqs q;
    ck_assert_msg(bd_seqs_from_samples(&q, p, 512, 64, true, false, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(q.n, 3);
    for (int i = 0; i < 3; i++) {
        bd_token_buf ids = {0};
        int start;
        ck_assert_int_eq(bd_mc_tokenize(tok, s.ex[i].context, v.words[s.ex[i].gold], &ids, &start), BD_OK);
        for (int t = 0; t < 64; t++) {
            int32_t tok_want = t < (int)ids.n ? ids.ids[t] : 0;
            int32_t tgt_want = t + 1 >= start && t + 1 < (int)ids.n ? ids.ids[t + 1] : -1;
            ck_assert_int_eq(q.tok[i * 64 + t], tok_want);
            ck_assert_msg(q.tgt[i * 64 + t] == tgt_want, "example %d position %d: target %d, expected %d", i, t,
                          q.tgt[i * 64 + t], tgt_want);
        }
        bd_token_buf_free(&ids);
    }
    bd_seqs_free(&q);
    // The header says what the samples are: no sampling, the input as the "teacher".
    bd_reader *r = bd_reader_open(p, "bd.samples", NULL, why, sizeof why);
    ck_assert_msg(r != NULL, "%s", why);
    const msgpack_object *h = bd_reader_header(r), *rec;
    int64_t n = 0;
    ck_assert(bd_obj_is_str(bd_obj_get(h, "schema"), "bd.samples"));
    ck_assert(bd_obj_is_str(bd_obj_get(bd_obj_get(h, "teacher"), "path"), "in.tsv"));
    ck_assert(bd_obj_is_str(bd_obj_get(bd_obj_get(h, "teacher"), "description"), "labelled data"));
    ck_assert(bd_obj_is_str(bd_obj_get(h, "template"), "{1}"));
    ck_assert(bd_obj_is_str(bd_obj_get(h, "verbalizer"), "v"));
    ck_assert(bd_obj_is_str(bd_obj_get(bd_obj_get(h, "prompt_source"), "kind"), "tsv"));
    ck_assert_int_eq(bd_obj_int(bd_obj_get(bd_obj_get(h, "sampling"), "max_new"), &n), BD_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(bd_obj_int(bd_obj_get(h, "n"), &n), BD_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(bd_reader_next(r, &rec), BD_OK);
    ck_assert(bd_obj_is_str(bd_obj_get(rec, "finished"), "label"));
    bd_reader_close(r);
    bd_task_set_free(&s);
    bd_task_verbalizer_free(&v);
    bd_tokenizer_free(tok);
}
END_TEST

Suite *suite_task(void) {
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_task_template);
    tcase_add_test(tc, test_task_verbalizer);
    tcase_add_test(tc, test_task_read);
    tcase_add_test(tc, test_task_read_errors);
    tcase_add_test(tc, test_task_encode);
    tcase_add_test(tc, test_task_write_mc);
    tcase_add_test(tc, test_task_write_samples);
    suite_add_tcase(s, tc);
    return s;
}
