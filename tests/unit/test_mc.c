// Multiple-choice evaluation: the task readers on hand-written fixtures (tests/fixtures/mc,
// expected items written out by hand below), bzip2 input made here with libbz2, load
// errors naming file and line, the HellaSwag cleaning rules, joint tokenization, the
// log-likelihoods of both scoring methods against bd_forward_ref logits turned into
// log-probabilities in this file, worker-count independence, and acc / acc_norm / stderr
// on a fabricated result set worked by hand.
#include <bzlib.h>
#include <stdio.h>
#include <string.h>

#include "bd_mc.h"
#include "bd_model_io.h"
#include "bd_readfile.h"
#include "bd_test.h"

static const char *fixture(const char *rel) {
    static char buf[1024];
    const char *root = getenv("BD_FIXTURES");
    snprintf(buf, sizeof buf, "%s/mc/%s", root && *root ? root : "tests/fixtures", rel);
    return buf;
}

static void load_ok(const char *path, bd_mc_format f, const char *labels, long limit, bd_mc_task *t) {
    char why[1024] = "";
    int rc = bd_mc_load(path, f, labels, limit, t, why, sizeof why);
    ck_assert_msg(rc == BD_OK, "load %s: %s", path, why);
}

static void check_item(const bd_mc_item *it, const char *ctx, int gold, long line, int nc, const char *const *choices) {
    ck_assert_str_eq(it->context, ctx);
    ck_assert_int_eq(it->gold, gold);
    ck_assert_int_eq(it->line, line);
    ck_assert_int_eq(it->n_choices, nc);
    for (int i = 0; i < nc; i++) ck_assert_str_eq(it->choices[i], choices[i]);
}

static const char *const hs0[] = {"eats the bowl.", "drives a car. away.", "stirs the flour with a spoon.",
                                  "sings a song loudly."};
static const char *const hs1[] = {"keeps running around the track.", "flies to the moon.", "turns into a tree.",
                                  "swims in the sand."};
static const char *const hs2[] = {"was a cat.", "ate the ball.", "went to sleep in the sky.",
                                  "played with the ball in the park."};

static void check_hellaswag_text(const bd_mc_task *t) {
    ck_assert_int_eq(t->format, BD_MC_HELLASWAG);
    ck_assert_str_eq(t->name, "hellaswag");
    ck_assert_int_eq(t->n, 3);
    ck_assert_int_eq(t->max_choices, 4);
    check_item(&t->items[0], "Baking cookies: A woman puts flour in a bowl. she", 2, 1, 4, hs0);
    check_item(&t->items[1], "Running: A man runs on a track. the man", 0, 7, 4, hs1);
    check_item(&t->items[2], "Once upon a time: A little girl named Lily found a ball. she", 3, 13, 4, hs2);
}

START_TEST(test_read_hellaswag_text) {
    bd_mc_task t;
    load_ok(fixture("hellaswag.txt"), BD_MC_AUTO, NULL, 0, &t);
    check_hellaswag_text(&t);
    bd_mc_task_free(&t);
    load_ok(fixture("hellaswag.txt"), BD_MC_HELLASWAG, NULL, 2, &t);
    ck_assert_int_eq(t.n, 2);
    check_item(&t.items[1], "Running: A man runs on a track. the man", 0, 7, 4, hs1);
    bd_mc_task_free(&t);
}
END_TEST

// The fixture compressed here with libbz2 (twice, concatenated, as pbzip2 writes) reads
// the same; cut short, it is a truncation error.
START_TEST(test_read_bzip2) {
    char *plain;
    size_t n;
    char why[512];
    ck_assert_int_eq(bd_read_file(fixture("hellaswag.txt"), &plain, &n, why, sizeof why), BD_OK);
    ck_assert(!bd_is_bzip2((const unsigned char *)plain, n));
    unsigned cap = (unsigned)n * 2 + 600, clen = cap;
    char *z = malloc(2 * (size_t)cap);
    ck_assert_int_eq(BZ2_bzBuffToBuffCompress(z, &clen, plain, (unsigned)n, 9, 0, 0), BZ_OK);
    ck_assert(bd_is_bzip2((const unsigned char *)z, clen));
    char path[1024];
    snprintf(path, sizeof path, "%s/mc_task.any_name", bd_test_tmpdir());
    FILE *f = fopen(path, "wb");
    ck_assert(f && fwrite(z, 1, clen, f) == clen && fclose(f) == 0);
    bd_mc_task t;
    load_ok(path, BD_MC_AUTO, NULL, 0, &t);
    check_hellaswag_text(&t);
    bd_mc_task_free(&t);
    // two streams: the text twice
    char *both;
    size_t bn;
    memcpy(z + clen, z, clen);
    ck_assert_int_eq(bd_bunzip2((unsigned char *)z, 2 * (size_t)clen, "x", &both, &bn, why, sizeof why), BD_OK);
    ck_assert_uint_eq(bn, 2 * n);
    ck_assert(memcmp(both, plain, n) == 0 && memcmp(both + n, plain, n) == 0 && both[bn] == '\0');
    free(both);
    // truncated: every cut inside the stream fails
    for (unsigned cut = 4; cut < clen; cut += clen / 7 + 1) {
        int rc = bd_bunzip2((unsigned char *)z, cut, "x.bz2", &both, &bn, why, sizeof why);
        ck_assert_msg(rc == BD_ERR_TRUNCATED || rc == BD_ERR_CORRUPT, "cut %u: rc %d", cut, rc);
        ck_assert_ptr_null(both);
        ck_assert(strstr(why, "x.bz2"));
    }
    // garbage after the stream
    memcpy(z + clen, "junk", 4);
    ck_assert_int_eq(bd_bunzip2((unsigned char *)z, clen + 4, "x", &both, &bn, why, sizeof why), BD_ERR_CORRUPT);
    free(z);
    free(plain);
}
END_TEST

START_TEST(test_read_hellaswag_jsonl) {
    bd_mc_task t;
    load_ok(fixture("hellaswag.jsonl"), BD_MC_AUTO, NULL, 0, &t);
    ck_assert_int_eq(t.format, BD_MC_HELLASWAG);
    ck_assert_int_eq(t.n, 2);
    static const char *const e0[] = {", the man adds wax to the windshield and cuts it.",
                                     (", a person board a ski lift, while two men supporting the head of the person "
                                      "wearing winter clothes snow as the we girls sled."),
                                     ", the man puts on a christmas coat, knitted with netting.",
                                     ", the man continues removing the snow on his car."};
    check_item(&t.items[0],
               "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman "
               "wearing winter clothes smiles. Then",
               3, 1, 4, e0);
    // capitalize() lowers the rest of ctx_b; "[title]" becomes ". ", other [..] go, "  " -> " "
    static const char *const e1[] = {"smiles back.", "runs away."};
    check_item(&t.items[1], "Family Life: How to play.. Ask the toddler. The toddler", 0, 2, 2, e1);
    ck_assert_int_eq(t.max_choices, 4);
    bd_mc_task_free(&t);
}
END_TEST

START_TEST(test_read_piqa) {
    bd_mc_task t;
    static const char *const p0[] = {"Wear thick wool socks.", "Put your feet in the freezer."};
    static const char *const p2[] = {"eat it", "throw it"};
    // labels from piqa-labels.lst next to piqa.jsonl
    load_ok(fixture("piqa.jsonl"), BD_MC_AUTO, NULL, 0, &t);
    ck_assert_int_eq(t.format, BD_MC_PIQA);
    ck_assert_str_eq(t.name, "piqa");
    ck_assert_int_eq(t.n, 3);
    check_item(&t.items[0], "Question: How do I keep my feet warm?\nAnswer:", 0, 1, 2, p0);
    ck_assert_int_eq(t.items[1].gold, 1);
    check_item(&t.items[2],
               "Question: caf\xc3\xa9 \xc3\xa9"
               "clair\nAnswer:",
               0, 3, 2, p2);
    bd_mc_task_free(&t);
    // explicit labels file (any name)
    char path[1024];
    snprintf(path, sizeof path, "%s/other.lst", bd_test_tmpdir());
    FILE *f = fopen(path, "w");
    ck_assert(f && fputs("1\n1\n0\n\n", f) >= 0 && fclose(f) == 0);
    load_ok(fixture("piqa.jsonl"), BD_MC_PIQA, path, 0, &t);
    ck_assert_int_eq(t.items[0].gold, 1);
    ck_assert_int_eq(t.items[1].gold, 1);
    ck_assert_int_eq(t.items[2].gold, 0);
    bd_mc_task_free(&t);
    // labels inside the records need no file
    const char *inl = "{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\",\"label\":1}\n";
    char why[512];
    ck_assert_int_eq(bd_mc_parse(inl, strlen(inl), "in.jsonl", BD_MC_AUTO, NULL, 0, NULL, 0, &t, why, sizeof why),
                     BD_OK);
    ck_assert_int_eq(t.items[0].gold, 1);
    bd_mc_task_free(&t);
}
END_TEST

START_TEST(test_read_generic) {
    bd_mc_task t;
    load_ok(fixture("generic.jsonl"), BD_MC_AUTO, NULL, 0, &t);
    ck_assert_int_eq(t.format, BD_MC_JSONL);
    ck_assert_str_eq(t.name, "generic");
    ck_assert_int_eq(t.n, 3);
    ck_assert_int_eq(t.max_choices, 4);
    static const char *const g0[] = {"mat.", "moon.", "idea."};
    static const char *const g1[] = {"ball.", "car engine."};
    static const char *const g2[] = {"yes", "no", "maybe", "never"};
    check_item(&t.items[0], "The cat sat on the", 0, 1, 3, g0);
    check_item(&t.items[1], "Lily and Ben went to the park. They played with a", 0, 3, 2, g1);
    check_item(&t.items[2], "Answer: ", 3, 4, 4, g2);
    bd_mc_task_free(&t);
    load_ok(fixture("generic.jsonl"), BD_MC_JSONL, NULL, 2, &t);
    ck_assert_int_eq(t.n, 2);
    ck_assert_int_eq(t.max_choices, 3);
    bd_mc_task_free(&t);
}
END_TEST

// Invalid inputs: the error names the file and the line (and what was expected).
static void expect_error(const char *text, bd_mc_format f, const char *labels, int code, const char *want) {
    bd_mc_task t;
    char why[1024] = "";
    int rc = bd_mc_parse(text, strlen(text), "task.txt", f, labels, labels ? strlen(labels) : 0, "lab.lst", 0, &t, why,
                         sizeof why);
    ck_assert_msg(rc == code, "\"%s\": rc %d, expected %d (%s)", text, rc, code, why);
    ck_assert_msg(strstr(why, want) != NULL, "message \"%s\" lacks \"%s\"", why, want);
    ck_assert_ptr_null(t.items);
}

START_TEST(test_read_errors) {
    const char *hs = "ctx\n1\na\nb\nc\nd\n";
    expect_error("ctx\n4\na\nb\nc\nd\n", BD_MC_AUTO, NULL, BD_ERR_MALFORMED, "\"task.txt\": cannot tell");
    expect_error("ctx\n4\na\nb\nc\nd\n", BD_MC_HELLASWAG, NULL, BD_ERR_VALUE,
                 "\"task.txt\" line 2: expected the gold index 0..3");
    expect_error("ctx\n1\na\nb\nc\nd\nctx2\n0\na\nb\n", BD_MC_AUTO, NULL, BD_ERR_TRUNCATED,
                 "line 11: item 2 is truncated: 2 of 4 endings");
    expect_error("ctx\n1\na\n \nc\nd\n", BD_MC_AUTO, NULL, BD_ERR_VALUE, "line 1: choice 1 is empty");
    expect_error(hs, BD_MC_AUTO, "0\n", BD_ERR_ARG, "only used with PIQA");
    expect_error("{\"context\":\"c\",\"choices\":[\"a\",\"b\"],\"gold\":2}\n", BD_MC_AUTO, NULL, BD_ERR_VALUE,
                 "\"task.txt\" line 1: \"gold\" is 2, expected an index in [0, 2)");
    expect_error(
            "{\"context\":\"c\",\"choices\":[\"a\",\"b\"],\"gold\":0}\n{\"context\":\"c\",\"choices\":[\"a\"],\"gold\":0}\n",
            BD_MC_AUTO, NULL, BD_ERR_MALFORMED, "line 2: field \"choices\" needs at least 2 strings");
    expect_error("{\"context\":\"c\",\"choices\":[\"a\",\"b\"],\"gold\":0.5}\n", BD_MC_JSONL, NULL, BD_ERR_MALFORMED,
                 "line 1: field \"gold\" is not an integer");
    expect_error("{\"context\":\"c\",\"choices\":[\"a\",\"b\"],\"gold\":0}\n{\"context\": \n", BD_MC_JSONL, NULL,
                 BD_ERR_MALFORMED, "line 2: not a JSON object");
    expect_error("{\"context\":\"c\",\"choices\":[\"a\",\"b\"],\"gold\":0} x\n", BD_MC_JSONL, NULL, BD_ERR_MALFORMED,
                 "line 1: not a JSON object");
    const char *piqa =
            "{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n";
    expect_error(piqa, BD_MC_AUTO, NULL, BD_ERR_MALFORMED, "\"task.txt\" line 1: field \"label\" is missing");
    expect_error(piqa, BD_MC_PIQA, "1\n", BD_ERR_VALUE,
                 "\"lab.lst\" line 2: only 1 labels for the 2 items of \"task.txt\"");
    expect_error(piqa, BD_MC_PIQA, "1\n0\n1\n", BD_ERR_VALUE, "\"lab.lst\" line 3: more labels than the 2 items");
    expect_error(piqa, BD_MC_PIQA, "1\n2\n", BD_ERR_VALUE, "\"lab.lst\" line 2: expected a label 0 or 1, got \"2\"");
    expect_error("{\"goal\":\"g\",\"sol1\":\"a\"}\n", BD_MC_PIQA, "0\n", BD_ERR_MALFORMED,
                 "line 1: field \"sol2\" is missing");
    expect_error("", BD_MC_JSONL, NULL, BD_ERR_VALUE, "no items");
    // "gold" must be a JSON integer (HellaSwag's "label" may be a string, as in its files).
    expect_error("{\"context\":\"c\",\"choices\":[\"a\",\"b\"],\"gold\":\"0\"}\n", BD_MC_JSONL, NULL, BD_ERR_MALFORMED,
                 "line 1: field \"gold\" is a string, expected an integer");
    // An item may not have unbounded choices or text (the scorer holds them all at once).
    {
        size_t cap = 200000, n = 0;
        char *big = malloc(cap);
        ck_assert_ptr_nonnull(big);
        n += (size_t)snprintf(big + n, cap - n, "{\"context\":\"c\",\"choices\":[");
        for (int i = 0; i < 100; i++) n += (size_t)snprintf(big + n, cap - n, "%s\"x\"", i ? "," : "");
        snprintf(big + n, cap - n, "],\"gold\":0}\n");
        expect_error(big, BD_MC_JSONL, NULL, BD_ERR_VALUE, "line 1: 100 choices, more than the 64");
        free(big);
        cap = (1 << 20) + 1000;
        big = malloc(cap);
        ck_assert_ptr_nonnull(big);
        n = (size_t)snprintf(big, cap, "{\"context\":\"");
        memset(big + n, 'w', (size_t)1 << 20);
        n += (size_t)1 << 20;
        snprintf(big + n, cap - n, "\",\"choices\":[\"a\",\"b\"],\"gold\":0}\n");
        expect_error(big, BD_MC_JSONL, NULL, BD_ERR_VALUE,
                     "line 1: the item has 1048578 bytes of text, more than 1048576");
        free(big);
    }
    expect_error("{\"a\":1}\n", BD_MC_AUTO, NULL, BD_ERR_MALFORMED, "cannot tell the task layout");
    // A NUL would end an item's string: refused with its line, a byte or a JSON \u0000.
    {
        static const char nul[] = "ctx\n1\na\nb\0x\nc\nd\n";
        bd_mc_task t;
        char why[1024] = "";
        ck_assert_int_eq(bd_mc_parse(nul, sizeof nul - 1, "task.txt", BD_MC_HELLASWAG, NULL, 0, NULL, 0, &t, why,
                                     sizeof why),
                         BD_ERR_MALFORMED);
        ck_assert_msg(strstr(why, "\"task.txt\" line 4: NUL byte"), "%s", why);
    }
    expect_error("{\"context\":\"c\\u0000d\",\"choices\":[\"a\",\"b\"],\"gold\":0}\n", BD_MC_JSONL, NULL,
                 BD_ERR_MALFORMED, "\"task.txt\" line 1: NUL byte or \\u0000 escape");
    // Missing labels file: the message says where it was looked for.
    bd_mc_task t;
    char why[1024], path[1024];
    snprintf(path, sizeof path, "%s/nolabels.jsonl", bd_test_tmpdir());
    FILE *f = fopen(path, "w");
    ck_assert(f && fputs(piqa, f) >= 0 && fclose(f) == 0);
    ck_assert_int_eq(bd_mc_load(path, BD_MC_AUTO, NULL, 0, &t, why, sizeof why), BD_ERR_MALFORMED);
    ck_assert_msg(strstr(why, "nolabels.jsonl\" line 1") && strstr(why, "nolabels-labels.lst"), "%s", why);
    ck_assert_int_eq(bd_mc_load(path, BD_MC_AUTO, "/nonexistent/l.lst", 0, &t, why, sizeof why), BD_ERR_IO);
    ck_assert_msg(strstr(why, "/nonexistent/l.lst"), "%s", why);
    ck_assert_int_eq(bd_mc_load("/nonexistent/task.jsonl", BD_MC_AUTO, NULL, 0, &t, why, sizeof why), BD_ERR_IO);
}
END_TEST

START_TEST(test_hellaswag_clean) {
    struct {
        const char *in, *out;
    } c[] = {
            {"  plain text  ", "plain text"},
            {"a [title] b", "a. b"},             // ". " + " b" then "  " -> " "
            {"a [header] b [step] c", "a b c"},  // removed brackets leave double spaces, then one pass
            {"x [a [b] c] y", "x c] y"},         // shortest match from the first '['
            {"unclosed [ bracket", "unclosed [ bracket"},
            {"three   spaces", "three  spaces"},  // Python's replace: one left-to-right pass
            {"[only]", ""},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", c[i].in);
        ck_assert_str_eq(bd_mc_hellaswag_clean(buf), c[i].out);
    }
}
END_TEST

// ---- scoring on stories260K ----

static bd_model model;
static bd_tokenizer *tok;

static void load_model(void) {
    char why[512] = "";
    ck_assert_msg(bd_model_load(bd_test_data("models/stories260K/stories260K.bin"), &model, why, sizeof why) == BD_OK,
                  "%s (set BD_DATA)", why);
    ck_assert_msg(bd_tokenizer_load(bd_test_data("models/stories260K/tok512.bin"), &tok, why, sizeof why) == BD_OK,
                  "%s", why);
}

static void free_model(void) {
    bd_model_free(&model);
    bd_tokenizer_free(tok);
}

// The joint encoding starts with the context's own encoding (SentencePiece splits at the
// space), decodes back to context + " " + ending, and the split falls after the context.
START_TEST(test_tokenize_joint) {
    load_model();
    bd_token_buf ids = {0}, ctx = {0};
    bd_text_buf txt = {0};
    const char *cases[][2] = {{"Once upon a time, there was a", "little girl."}, {"Answer: ", "yes"}, {"", "hello"}};
    for (int c = 0; c < 3; c++) {
        int start = -1;
        ck_assert_int_eq(bd_mc_tokenize(tok, cases[c][0], cases[c][1], &ids, &start), BD_OK);
        size_t cl = strlen(cases[c][0]);
        while (cl && cases[c][0][cl - 1] == ' ') cl--;
        ck_assert_int_eq(bd_tokenizer_encode(tok, cases[c][0], cl, BD_TOK_BOS, &ctx), BD_OK);
        ck_assert_int_eq(start, (int)ctx.n);
        ck_assert_int_eq(ids.ids[0], bd_tokenizer_bos(tok));
        ck_assert(memcmp(ids.ids, ctx.ids, ctx.n * sizeof(int32_t)) == 0);
        txt.len = 0;
        ck_assert_int_eq(bd_tokenizer_decode(tok, ids.ids, ids.n, BD_TOK_SKIP_SPECIAL, &txt), BD_OK);
        char want[128];
        snprintf(want, sizeof want, "%s %s", cases[c][0], cases[c][1]);
        ck_assert_msg(txt.len == strlen(want) && memcmp(txt.data, want, txt.len) == 0, "decoded \"%.*s\"", (int)txt.len,
                      txt.data);
    }
    bd_token_buf_free(&ids), bd_token_buf_free(&ctx), bd_text_buf_free(&txt);
    free_model();
}
END_TEST

// log P(ending | context) the long way: encode here, bd_forward_ref logits of the whole
// sequence (last max_T + 1 tokens), log-softmax written out in double.
static double reference_ll(const char *ctx, const char *ending, int max_T) {
    char joint[2048];
    snprintf(joint, sizeof joint, "%s %s", ctx, ending);
    size_t cl = strlen(ctx);
    while (cl && ctx[cl - 1] == ' ') cl--;
    bd_token_buf a = {0}, b = {0};
    ck_assert_int_eq(bd_tokenizer_encode(tok, ctx, cl, BD_TOK_BOS, &a), BD_OK);
    ck_assert_int_eq(bd_tokenizer_encode(tok, joint, strlen(joint), BD_TOK_BOS, &b), BD_OK);
    int n = (int)b.n, first = (int)a.n, off = n - 1 > max_T ? n - 1 - max_T : 0;
    if (first - off < 1) first = off + 1;
    int T = n - 1 - off, V = model.cfg.vocab;
    float *logits = malloc(sizeof(float) * (size_t)T * V);
    ck_assert_int_eq(bd_forward_ref(&model, b.ids + off, 1, T, logits, NULL, 0), BD_OK);
    double ll = 0;
    for (int t = first; t < n; t++) {  // token t predicted at input position t - 1 - off
        const float *row = logits + (size_t)(t - 1 - off) * V;
        double mx = row[0], z = 0;
        for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
        for (int v = 0; v < V; v++) z += exp(row[v] - mx);
        ll += row[b.ids[t]] - mx - log(z);
    }
    free(logits);
    bd_token_buf_free(&a), bd_token_buf_free(&b);
    return ll;
}

static void check_scores(const bd_mc_task *t, int max_T) {
    for (int method = BD_MC_SHARED; method <= BD_MC_BATCH; method++) {
        bd_mc_scorer s;
        ck_assert_int_eq(bd_mc_scorer_init(&s, &model, tok, t->max_choices, max_T, (bd_mc_method)method), BD_OK);
        for (long i = 0; i < t->n; i++) {
            const bd_mc_item *it = &t->items[i];
            double ll[8];
            int nt[8];
            ck_assert_int_eq(bd_mc_score_item(&s, it, ll, nt), BD_OK);
            for (int c = 0; c < it->n_choices; c++) {
                double want = reference_ll(it->context, it->choices[c], max_T > 0 ? max_T : model.cfg.max_seq);
                ck_assert_msg(want < 0 && nt[c] >= 1, "item %ld choice %d", i, c);
                ck_assert_close(ll[c], want, 2e-4 * fabs(want) + 1e-4);
            }
        }
        if (max_T == 0) {  // the memory plan's bound on positions, and the activations it counts
            int bound = bd_mc_task_max_positions(t);
            for (int c = 0; c < t->items[t->n - 1].n_choices; c++) ck_assert_int_le((int)s.ids[c].n - 1, bound);
            int cap = 2 * bound > 128 ? 2 * bound : 128;
            ck_assert_int_le(s.cap_T, cap < model.cfg.max_seq ? cap : model.cfg.max_seq);
            size_t rows = method == BD_MC_BATCH ? (size_t)t->max_choices : 1;
            ck_assert_uint_ge(bd_mc_scorer_bytes(&model.cfg, t->max_choices, bound, (bd_mc_method)method),
                              bd_fwd_state_bytes(&model.cfg, (int)rows, s.cap_T, false) +
                                      (size_t)t->max_choices * model.cfg.vocab * sizeof(float));
        }
        bd_mc_scorer_free(&s);
    }
}

START_TEST(test_score_vs_reference) {
    load_model();
    bd_mc_task t;
    load_ok(fixture("hellaswag.txt"), BD_MC_AUTO, NULL, 0, &t);
    check_scores(&t, 0);
    check_scores(&t, 12);  // sequences cut on the left
    bd_mc_task_free(&t);
    load_ok(fixture("generic.jsonl"), BD_MC_AUTO, NULL, 0, &t);
    check_scores(&t, 0);
    bd_mc_task_free(&t);
    load_ok(fixture("piqa.jsonl"), BD_MC_AUTO, NULL, 0, &t);
    check_scores(&t, 0);
    bd_mc_task_free(&t);
    free_model();
}
END_TEST

// Items on 1 and 2 workers: the same bits.
START_TEST(test_score_all_workers) {
    load_model();
    bd_mc_task t;
    load_ok(bd_test_data("eval/hellaswag/hellaswag_val_full.txt.bz2"), BD_MC_AUTO, NULL, 24, &t);
    size_t n = (size_t)t.n * t.max_choices;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    long bad, tr;
    ck_assert_int_eq(bd_mc_score_all(&model, tok, &t, 1, BD_MC_BATCH, a, NULL, NULL, &bad, &tr), BD_OK);
    ck_assert_int_eq(bd_mc_score_all(&model, tok, &t, 2, BD_MC_BATCH, b, NULL, NULL, &bad, &tr), BD_OK);
    ck_assert(memcmp(a, b, n * sizeof *a) == 0);
    for (size_t i = 0; i < n; i++) ck_assert(a[i] < 0 && isfinite(a[i]));
    free(a), free(b);
    bd_mc_task_free(&t);
    free_model();
}
END_TEST

// A context of 2^31-1 positions (as a config may claim): the scorers size their rows and
// caches by the items, so both methods score in 1 GB more address space, and as before.
typedef struct {
    const bd_mc_task *t;
    const double *want;
} long_run;

static int score_long(void *ctx) {
    const long_run *r = ctx;
    model.cfg.max_seq = 2147483647;
    for (int method = BD_MC_SHARED; method <= BD_MC_BATCH; method++) {
        bd_mc_scorer s;
        if (bd_mc_scorer_init(&s, &model, tok, r->t->max_choices, 0, (bd_mc_method)method) < 0) return 1;
        for (long i = 0; i < r->t->n; i++) {
            double ll[8];
            int nt[8];
            if (bd_mc_score_item(&s, &r->t->items[i], ll, nt) < 0) return 1;
            for (int c = 0; c < r->t->items[i].n_choices; c++)
                if (fabs(ll[c] - r->want[i * 8 + c]) > 1e-4 * fabs(ll[c]) + 1e-4) return 2;
        }
        bd_mc_scorer_free(&s);
    }
    return 0;
}

START_TEST(test_score_long_context) {
    load_model();
    bd_mc_task t;
    load_ok(fixture("generic.jsonl"), BD_MC_AUTO, NULL, 0, &t);
    ck_assert_int_le(t.max_choices, 8);
    double want[64 * 8];
    ck_assert_int_le(t.n, 64);
    bd_mc_scorer s;
    ck_assert_int_eq(bd_mc_scorer_init(&s, &model, tok, t.max_choices, 0, BD_MC_BATCH), BD_OK);
    int nt[8];
    for (long i = 0; i < t.n; i++) ck_assert_int_eq(bd_mc_score_item(&s, &t.items[i], want + i * 8, nt), BD_OK);
    bd_mc_scorer_free(&s);
    long_run r = {&t, want};
    ck_assert_int_eq(bd_test_run_limited((size_t)1 << 30, score_long, &r), 0);
    bd_mc_task_free(&t);
    free_model();
}
END_TEST

// Four 4-choice items (gold 0, 1, 2, 3) with endings of 1, 2, 4 and 8 bytes:
//   item 0: ll {-1,-2,-3,-4}    acc -> 0 (right); norm {-1,-1,-0.75,-0.5} -> 3 (wrong)
//   item 1: ll {-4,-2,-3,-16}   acc -> 1 (right); norm {-4,-1,-0.75,-2}   -> 2 (wrong)
//   item 2: ll {-2,-3,-8,-1}    acc -> 3 (wrong); norm {-2,-1.5,-2,-0.125} -> 3 (wrong)
//   item 3: ll {-1,-2,-4,-4}    acc -> 0 (wrong); norm {-1,-1,-1,-0.5}    -> 3 (right)
// acc = 2/4, acc_norm = 1/4; stderr sqrt(.5*.5/3) = 0.288675..., sqrt(.25*.75/3) = 0.25.
// A tie picks the first index: ll {-2,-2} -> 0.
START_TEST(test_tally) {
    char *ends[4] = {"a", "bb", "cccc", "dddddddd"};
    double ll[4][4] = {{-1, -2, -3, -4}, {-4, -2, -3, -16}, {-2, -3, -8, -1}, {-1, -2, -4, -4}};
    int want_pred[4] = {0, 1, 3, 0}, want_norm[4] = {3, 2, 3, 3};
    bd_mc_tally t = {0};
    for (int i = 0; i < 4; i++) {
        bd_mc_item it = {.context = "c", .choices = ends, .n_choices = 4, .gold = i};
        int p, pn;
        bd_mc_tally_add(&t, &it, ll[i], &p, &pn);
        ck_assert_int_eq(p, want_pred[i]);
        ck_assert_int_eq(pn, want_norm[i]);
    }
    bd_mc_result r = bd_mc_tally_result(&t);
    ck_assert_int_eq(r.n, 4);
    ck_assert_close(r.acc, 0.5, 1e-12);
    ck_assert_close(r.acc_norm, 0.25, 1e-12);
    ck_assert_close(r.acc_stderr, sqrt(1.0 / 12.0), 1e-12);
    ck_assert_close(r.acc_norm_stderr, 0.25, 1e-12);
    ck_assert_close(r.chance, 0.25, 1e-12);
    // acc_norm counts characters, not bytes: "\xc3\xa9" is one character. Per character
    // {-1.5, -1.25} -> 1; per byte it would be {-0.75, -1.25} -> 0.
    char *utf[2] = {"\xc3\xa9", "ab"};
    bd_mc_item u = {.context = "c", .choices = utf, .n_choices = 2, .gold = 1};
    bd_mc_tally t2 = {0};
    int pn;
    bd_mc_tally_add(&t2, &u, (const double[]){-1.5, -2.5}, NULL, &pn);
    ck_assert_int_eq(pn, 1);
    ck_assert_int_eq(bd_mc_utf8_len("caf\xc3\xa9 \xe2\x82\xac"), 6);
    double tie[2] = {-2, -2};
    ck_assert_int_eq(bd_mc_argmax(tie, 2), 0);
    ck_assert(isnan(bd_mc_stderr(1, 1)));
    ck_assert_close(bd_mc_stderr(0, 10), 0, 0);
    ck_assert_close(bd_mc_logprob((const float[]){0, 0, 0, 0}, 4, 2), -log(4.0), 1e-12);
    ck_assert_close(bd_mc_logprob((const float[]){1000, 0}, 2, 1), -1000, 1e-9);
}
END_TEST

Suite *suite_mc(void) {
    Suite *s = suite_create("mc");
    TCase *tc = tcase_create("mc");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_read_hellaswag_text);
    tcase_add_test(tc, test_read_bzip2);
    tcase_add_test(tc, test_read_hellaswag_jsonl);
    tcase_add_test(tc, test_read_piqa);
    tcase_add_test(tc, test_read_generic);
    tcase_add_test(tc, test_read_errors);
    tcase_add_test(tc, test_hellaswag_clean);
    tcase_add_test(tc, test_tokenize_joint);
    tcase_add_test(tc, test_score_vs_reference);
    tcase_add_test(tc, test_score_all_workers);
    tcase_add_test(tc, test_score_long_context);
    tcase_add_test(tc, test_tally);
    suite_add_tcase(s, tc);
    return s;
}
