// bd-task: labelled classification data (TSV or JSONL) to training samples with the prompt
// masked (--samples) or to bd-eval's multiple-choice task file (--eval-task).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_input.h"
#include "bd_log.h"
#include "bd_outfile.h"
#include "bd_task.h"
#include "bd_tool.h"

static const char help[] =
        "Usage: bd-task --template T --verbalizer V --samples -k TOKENIZER [OPTIONS] [INPUT]\n"
        "       bd-task --template T --verbalizer V --eval-task [OPTIONS] [INPUT]\n"
        "Turn labelled classification data into training samples (a bd.samples stream: prompt =\n"
        "the template applied to a record, completion = its label's word; train with bd-qat\n"
        "--mask-prompt) or into a JSONL task file for bd-eval --task {context, choices, gold}.\n"
        "Both split prompt and word as bd-eval's scorer does, so training scores the same tokens.\n"
        "INPUT (default standard input): TSV with a header line of column names, or JSONL.\n"
        "\n"
        "      --template T     prompt text: {name} a column or field, {N} the N-th TSV column;\n"
        "                       escapes \\n \\t \\\\ \\{ \\}\n"
        "      --verbalizer V   LABEL=word,LABEL=word,... (at least 2; the words are the choices)\n"
        "      --samples        write a bd.samples stream (needs --tokenizer)\n"
        "      --eval-task      write the JSONL multiple-choice task file\n"
        "  -k, --tokenizer T    llama2.c tokenizer.bin, HF tokenizer.json, or a directory with one\n"
        "  -o, --output FILE    write to FILE instead of standard output\n"
        "      --input-format F auto (default: JSONL if the first line starts with {), tsv or jsonl\n"
        "                       (--format F: a deprecated spelling)\n"
        "      --label-field NAME  the label's column or field (default label)\n"
        "  -n, --limit N        keep the first N examples (the whole input is still checked)\n"
        "      --max-len N      --samples: cut longer examples to N tokens, keeping BOS, the end of\n"
        "                       the prompt and the whole label word\n" BD_COMMON_HELP
        "\nExit status: 0 on success, 1 on bad input (nothing is written), 2 on usage errors.\n"
        "See bd-task(1), bd-stream(5), bd-eval(1), bd-qat(1).\n";

enum {
    OPT_TEMPLATE = BD_OPT_FIRST_TOOL,
    OPT_VERBALIZER,
    OPT_SAMPLES,
    OPT_EVAL_TASK,
    OPT_FORMAT,
    OPT_INPUT_FORMAT,
    OPT_LABEL,
    OPT_LIMIT,
    OPT_MAX_LEN
};

typedef struct {
    const char *template_, *verbalizer, *tok_path, *output, *label_field, *input;
    bool samples, eval_task;
    bd_task_format format;
    long limit;
    int max_len;
} task_opts;

static void parse_options(int argc, char **argv, task_opts *o) {
    static const struct option longopts[] = {{"template", required_argument, 0, OPT_TEMPLATE},
                                             {"verbalizer", required_argument, 0, OPT_VERBALIZER},
                                             {"samples", no_argument, 0, OPT_SAMPLES},
                                             {"eval-task", no_argument, 0, OPT_EVAL_TASK},
                                             {"tokenizer", required_argument, 0, 'k'},
                                             {"output", required_argument, 0, 'o'},
                                             {"input-format", required_argument, 0, OPT_INPUT_FORMAT},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             {"label-field", required_argument, 0, OPT_LABEL},
                                             {"limit", required_argument, 0, 'n'},
                                             {"max-len", required_argument, 0, OPT_MAX_LEN},
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    *o = (task_opts){.output = "-", .label_field = "label", .input = "-"};
    int opt, f;
    while ((opt = getopt_long(argc, argv, "k:o:n:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_TEMPLATE: o->template_ = optarg; break;
        case OPT_VERBALIZER: o->verbalizer = optarg; break;
        case OPT_SAMPLES: o->samples = true; break;
        case OPT_EVAL_TASK: o->eval_task = true; break;
        case 'k': o->tok_path = optarg; break;
        case 'o': o->output = optarg; break;
        case OPT_FORMAT: bd_tool_deprecated("--format", "--input-format"); /* fall through */
        case OPT_INPUT_FORMAT:
            if ((f = bd_task_format_parse(optarg)) < 0)
                bd_usage_error("%s: \"%s\" is not auto, tsv or jsonl",
                               opt == OPT_FORMAT ? "--format" : "--input-format", optarg);
            o->format = (bd_task_format)f;
            break;
        case OPT_LABEL: o->label_field = optarg; break;
        case 'n': o->limit = (long)bd_arg_int("--limit", optarg, 1, 1000000000); break;
        case OPT_MAX_LEN: o->max_len = (int)bd_arg_int("--max-len", optarg, 2, 1 << 24); break;
        default: bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    if (o->samples == o->eval_task) bd_usage_error("give one of --samples and --eval-task");
    if (!o->template_) bd_usage_error("--template is required");
    if (!o->verbalizer) bd_usage_error("--verbalizer is required");
    if (!*o->label_field) bd_usage_error("--label-field: empty name");
    if (o->samples && !o->tok_path) bd_usage_error("--samples needs --tokenizer");
    if (o->eval_task && o->tok_path) bd_usage_error("--tokenizer is only used with --samples");
    if (o->eval_task && o->max_len) bd_usage_error("--max-len is only used with --samples");
    if (argc - optind > 1) bd_usage_error("one INPUT at most (got %d)", argc - optind);
    if (optind < argc) o->input = argv[optind];
    if (o->samples)
        bd_tool_writes_stream("-o", o->output);
    else
        bd_tool_writes("-o", o->output);
    bd_tool_reads("INPUT", o->input);
    if (o->samples) bd_tool_reads_tokenizer(o->tok_path, NULL);
    bd_tool_check_files();
}

int main(int argc, char **argv) {
    bd_tool_init("bd-task", help, argc, argv);
    task_opts o;
    parse_options(argc, argv, &o);
    char why[1600];
    bd_task_template t;
    bd_task_verbalizer v;
    if (bd_task_template_parse(&t, o.template_, why, sizeof why) < 0) bd_usage_error("%s", why);
    if (bd_task_verbalizer_parse(&v, o.verbalizer, why, sizeof why) < 0) bd_usage_error("%s", why);
    bd_tokenizer *tok = o.samples ? bd_tool_load_tokenizer(o.tok_path, NULL, NULL) : NULL;

    bd_input in;
    bd_task_set set;
    if (bd_input_open(&in, o.input, why, sizeof why) < 0) bd_fatal("%s", why);
    if (bd_task_read(&in, o.format, &t, o.label_field, &v, o.limit, &set, why, sizeof why) < 0) bd_fatal("%s", why);
    bd_input_close(&in);

    if (o.samples) {
        bd_writer *w = bd_tool_open_writer(o.output);
        bd_producer prod = bd_tool_producer();
        bd_task_samples_opts so = {.input = o.input,
                                   .output = o.output,
                                   .template_ = o.template_,
                                   .verbalizer = o.verbalizer,
                                   .label_field = o.label_field,
                                   .max_len = o.max_len,
                                   .threads = bd_tool_self.threads};
        long cut;
        if (bd_task_write_samples(w, &prod, &so, &set, &v, tok, &cut, why, sizeof why) < 0) bd_fatal("%s", why);
        if (bd_writer_close(w) < 0) bd_fatal("\"%s\": write failed: %s", o.output, strerror(errno));
        if (cut) bd_log(BD_LOG_WARN, "%ld of %ld examples were cut to --max-len %d tokens", cut, set.n, o.max_len);
    } else {
        bd_outfile *out = bd_outfile_open(o.output, "w");
        if (!out) bd_fatal("\"%s\": cannot create: %s", o.output, strerror(errno));
        if (bd_task_write_mc(bd_outfile_fp(out), o.input, o.output, &set, &v, why, sizeof why) < 0) bd_fatal("%s", why);
        if (bd_outfile_commit(out) != BD_OK) bd_fatal("\"%s\": write failed: %s", o.output, strerror(errno));
    }
    // Per-label counts, a check at a glance that the verbalizer matches the data.
    long *count = calloc((size_t)v.n, sizeof *count);
    for (long i = 0; count && i < set.n; i++) count[set.ex[i].gold]++;
    for (int k = 0; count && k < v.n; k++)
        bd_log(BD_LOG_INFO, "label %s (\"%s\"): %ld examples", v.labels[k], v.words[k], count[k]);
    bd_log(BD_LOG_INFO, "%ld examples (%s) from \"%s\"", set.n, bd_task_format_name(set.format), o.input);
    free(count);
    bd_task_set_free(&set);
    bd_task_verbalizer_free(&v);
    bd_task_template_free(&t);
    bd_tokenizer_free(tok);
    return 0;
}
