// bd-eval: perplexity of a model on a token stream or text (non-overlapping windows, all
// positions scored: the GPTQ/BitDistiller protocol; or sliding windows with --stride),
// optionally of the fake-quantized model; and greedy generation for a quick look.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_clipfile.h"
#include "bd_filehash.h"
#include "bd_greedy.h"
#include "bd_ids.h"
#include "bd_json.h"
#include "bd_log.h"
#include "bd_mc.h"
#include "bd_model_io.h"
#include "bd_outfile.h"
#include "bd_packed.h"
#include "bd_ppl.h"
#include "bd_runplan.h"
#include "bd_progress.h"
#include "bd_qmodel.h"
#include "bd_threads.h"
#include "bd_tool.h"

static const char help[] =
        "Usage: bd-eval --model M [OPTIONS] [TOKENS]\n"
        "       bd-eval --model M --text FILE [OPTIONS]\n"
        "       bd-eval --model M --max-new N [--prompt TEXT] [OPTIONS]\n"
        "       bd-eval --model M --task FILE [--task-format F] [--limit N] [OPTIONS]\n"
        "Perplexity of model M on a bd.tokens stream (TOKENS, or standard input), or on text;\n"
        "or multiple-choice accuracy (acc, acc_norm) on a task file.\n"
        "The documents' ids are concatenated and cut into non-overlapping windows of --seq-len\n"
        "tokens; every position of every window is scored (the GPTQ/BitDistiller protocol); the\n"
        "tail shorter than a window is dropped (fewer tokens than one --seq-len: an error).\n"
        "\n"
        "  -m, --model M        llama2.c checkpoint, Hugging Face directory, GGUF file, or\n"
        "                       bd.model/bd.packed stream (\"-\": a stream on standard input)\n"
        "  -k, --tokenizer T    tokenizer for --text, --max-new, --task (default: the one the model\n"
        "                       remembers, else the one in the model's directory)\n"
        "      --text FILE      score text: documents separated by blank lines, each with BOS\n"
        "  -T, --seq-len N      window length, at most the model's context (default: the context,\n"
        "                       at most 2048, or all the tokens if fewer)\n"
        "      --stride S       sliding windows: each window advances S tokens and scores only\n"
        "                       the positions not scored before\n"
        "  -b, --batch N        windows per forward pass (default 4)\n"
        "      --json           print one JSON line {\"nll\",\"ppl\",\"tokens\",\"seq_len\",...}\n"
        "  -o, --output FILE    also write the results as a bd.eval stream\n"
        "  Quantization (evaluates the fake-quantized model; see bd-clipsearch(1)):\n" BD_QUANT_HELP
        "      --latent         a student model: use its latent weights, not the quantized ones\n"
        "  Multiple choice (each ending scored by its log-likelihood given the context):\n"
        "      --task FILE      HellaSwag (6-line text or JSONL), PIQA or generic JSONL; .bz2 read\n"
        "                       directly; \"-\" for standard input\n"
        "      --task-format F  auto (default: by content), hellaswag, piqa, jsonl\n"
        "      --labels FILE    PIQA labels, one 0/1 per line (default: <stem>-labels.lst next to\n"
        "                       the task file, or \"label\" fields)\n"
        "  -n, --limit N        only the first N items\n"
        "      --act A          inputs of the quantized linears: f32, or int8 (per-token absmax;\n"
        "                       packed models: the integer kernels, faster). Default: the model's\n"
        "                       own (int8 for a W1.58A8 student, bd-qat --act-quant int8)\n"
        "  Generation:\n"
        "  -K, --max-new N      print a greedy continuation of at most N new tokens instead of\n"
        "                       scoring (--generate N: a deprecated spelling)\n"
        "      --prompt TEXT    the text to continue (default: start from BOS)\n" BD_COMMON_HELP
        "\nExit status: 0 on success, 1 on invalid input or model, 2 on usage errors.\n"
        "See bd-eval(1), bd-tokenize(1), bd-stream(5).\n";

enum {
    OPT_TEXT = BD_OPT_FIRST_TOOL,
    OPT_STRIDE,
    OPT_JSON,
    OPT_GENERATE,
    OPT_MAX_NEW,
    OPT_PROMPT,
    OPT_LATENT,
    OPT_TASK,
    OPT_TASK_FORMAT,
    OPT_LABELS,
    OPT_LIMIT,
    OPT_ACT,
};

typedef struct {
    const char *model_path, *tok_path, *text, *output, *prompt, *data;  // data: the token stream
    int seq_len, stride, batch, n_generate;
    bool json, latent;
    int act;  // --act: -1 the model's own, 0 f32, 8 int8
    bd_quant_opts qo;
} eval_opts;

// What a result measured: the model (its path and content hash), its quantization as
// evaluated (--quant, else the model's own: a student's or a packed model's), the data.
typedef struct {
    const char *model, *data, *clip;     // clip: --clip or NULL
    char model_hash[17], data_hash[17];  // "" for standard input
    bd_qspec q;
    int bits, group;  // 32 and 0 for a full-precision model; group: as used on rows of the model's width
    int act_bits;     // 8: int8 activations
    bool packed, latent;
} eval_label;

static eval_label label_run(const eval_opts *o, const bd_model *m, const char *data) {
    eval_label l = {.model = o->model_path, .data = data, .clip = o->qo.clip, .latent = o->latent};
    // A pipe or FIFO was read once and has no hash (null), nor has a file gone since.
    char why[512];
    int rc = bd_hash_path(o->model_path, l.model_hash, why, sizeof why);
    if (rc < 0 && rc != BD_ERR_ARG) bd_log(BD_LOG_WARN, "--model: no content hash: %s", why);
    rc = strcmp(data, "-") ? bd_hash_path(data, l.data_hash, why, sizeof why) : BD_OK;
    if (rc < 0 && rc != BD_ERR_ARG) bd_log(BD_LOG_WARN, "no content hash of the data: %s", why);
    l.q = o->qo.q.kind != BD_Q_NONE || o->latent ? o->qo.q : m->quant;  // a student reports its own
    l.bits = l.q.kind == BD_Q_NONE ? 32 : l.q.bits;
    l.group = l.q.kind == BD_Q_NONE || l.q.kind == BD_Q_TERNARY ? 0 : bd_qspec_group(&l.q, m->cfg.dim);
    l.act_bits = m->qpolicy.act_bits;
    l.packed = m->packed != NULL && !m->mapping;
    return l;
}

static void pack_kv_str_or_nil(msgpack_packer *pk, const char *key, const char *val) {
    if (val && *val) return bd_pack_kv_str(pk, key, val);
    bd_pack_str(pk, key);
    msgpack_pack_nil(pk);
}

static void json_kv_str_or_null(const char *key, const char *val) {
    printf(",\"%s\":", key);
    if (val && *val)
        bd_json_string(stdout, val, strlen(val));
    else
        fputs("null", stdout);
}

// The label's fields at the end of a JSON line (after the line's own, then its closing brace).
static void json_label(const eval_label *l) {
    json_kv_str_or_null("model", l->model);
    json_kv_str_or_null("model_hash", l->model_hash);
    printf(",\"group\":%d", l->group);
    json_kv_str_or_null("clip", l->clip);
    printf(",\"act\":\"%s\",\"packed\":%s,\"latent\":%s", l->act_bits == 8 ? "int8" : "f32",
           l->packed ? "true" : "false", l->latent ? "true" : "false");
    json_kv_str_or_null("data", l->data);
    json_kv_str_or_null("data_hash", l->data_hash);
}

// -o FILE: a bd.eval stream with its header {model, model_hash, quant, bits, group, clip, act,
// packed, latent, data, data_hash, task (or nil), settings}; the caller packs the settings map
// (n_settings pairs) and then writes the records.
static bd_writer *open_eval_stream(const char *path, const eval_label *l, const char *task, int n_settings) {
    bd_writer *w = bd_tool_open_writer(path);
    bd_producer prod = bd_tool_producer();
    if (bd_writer_begin_header(w, "bd.eval", &prod, 13) < 0) bd_fatal("\"%s\": cannot write", path);
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_kv_str(pk, "model", l->model);
    pack_kv_str_or_nil(pk, "model_hash", l->model_hash);
    bd_pack_kv_str(pk, "quant", bd_qkind_name(l->q.kind));
    bd_pack_kv_int(pk, "bits", l->bits);
    bd_pack_kv_int(pk, "group", l->group);
    pack_kv_str_or_nil(pk, "clip", l->clip);
    bd_pack_kv_str(pk, "act", l->act_bits == 8 ? "int8" : "f32");
    bd_pack_str(pk, "packed");
    l->packed ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    bd_pack_str(pk, "latent");
    l->latent ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    bd_pack_kv_str(pk, "data", l->data);
    pack_kv_str_or_nil(pk, "data_hash", l->data_hash);
    pack_kv_str_or_nil(pk, "task", task);
    bd_pack_str(pk, "settings");
    msgpack_pack_map(pk, (size_t)n_settings);
    return w;
}

// Multiple-choice accuracy of m on the items of a task file.
typedef struct {
    const char *path, *labels, *model_path;
    const eval_label *label;  // set once the model is loaded
    bd_mc_format format;
    long limit;
    bool json;
    const char *output;
    const bd_qspec *q;
} mc_opts;

static void mc_report(const mc_opts *o, const bd_mc_task *task, const bd_mc_result *r, double secs) {
    double rate = secs > 0 ? (double)r->n / secs : 0;
    if (o->output) {
        bd_writer *w = open_eval_stream(o->output, o->label, task->name, 3);
        msgpack_packer *pk = bd_writer_packer(w);
        bd_pack_kv_str(pk, "format", bd_mc_format_name(task->format));
        bd_pack_kv_int(pk, "limit", o->limit);
        pack_kv_str_or_nil(pk, "labels", o->labels);
        if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", o->output);
        const char *names[2] = {"acc", "acc_norm"};
        double values[2] = {r->acc, r->acc_norm}, errs[2] = {r->acc_stderr, r->acc_norm_stderr};
        for (int i = 0; i < 2; i++) {
            msgpack_pack_map(pk, 8);
            bd_pack_kv_str(pk, "metric", names[i]);
            bd_pack_kv_double(pk, "value", values[i]);
            bd_pack_kv_double(pk, "stderr", errs[i]);
            bd_pack_kv_int(pk, "n", r->n);
            bd_pack_kv_str(pk, "task", task->name);
            bd_pack_kv_int(pk, "bits", o->label->bits);
            bd_pack_kv_double(pk, "chance", r->chance);
            bd_pack_kv_str(pk, "data", o->path);
            if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", o->output);
        }
        if (bd_writer_close(w) < 0) bd_fatal("\"%s\": write failed: %s", o->output, strerror(errno));
    }
    if (o->json) {
        // n < 2 has no standard error: null
        char e1[32] = "null", e2[32] = "null";
        if (isfinite(r->acc_stderr)) snprintf(e1, sizeof e1, "%.6f", r->acc_stderr);
        if (isfinite(r->acc_norm_stderr)) snprintf(e2, sizeof e2, "%.6f", r->acc_norm_stderr);
        printf("{\"task\":");
        bd_json_string(stdout, task->name, strlen(task->name));
        printf(",\"acc\":%.6f,\"acc_stderr\":%s,\"acc_norm\":%.6f,\"acc_norm_stderr\":%s,\"n\":%ld,"
               "\"items_per_s\":%.2f,\"chance\":%.6f,\"quant\":\"%s\",\"bits\":%d,\"seconds\":%.3f",
               r->acc, e1, r->acc_norm, e2, r->n, rate, r->chance, bd_qkind_name(o->label->q.kind), o->label->bits,
               secs);
        json_label(o->label);
        printf(",\"format\":\"%s\",\"limit\":%ld}\n", bd_mc_format_name(task->format), o->limit);
    } else {
        printf("task      %s (%s, %s layout), %ld items\n", task->name, o->path, bd_mc_format_name(task->format), r->n);
        printf("acc       %.4f +- %.4f\nacc_norm  %.4f +- %.4f\nchance    %.4f\n", r->acc, r->acc_stderr, r->acc_norm,
               r->acc_norm_stderr, r->chance);
        printf("time      %.2f s (%.1f items/s)\n", secs, rate);
    }
}

static void mc_progress(void *ctx, long done) { bd_progress_update(ctx, (uint64_t)done); }

static void multiple_choice(const bd_model *m, const bd_tokenizer *tok, const mc_opts *o) {
    bd_mc_task task;
    char why[1024];
    if (bd_mc_load(o->path, o->format, o->labels, o->limit, &task, why, sizeof why) < 0) bd_fatal("%s", why);
    // One padded batch per item: measured faster than a shared-prefix KV cache on
    // HellaSwag and PIQA (see bench/bench_mc.c), and it reads the weights once per item.
    bd_mc_method method = BD_MC_BATCH;
    double *ll = malloc(sizeof(double) * (size_t)task.max_choices * (size_t)task.n);
    if (!ll) bd_fatal("out of memory");
    bd_progress pr;
    double t0 = bd_now();
    bd_progress_start(&pr, task.name, (uint64_t)task.n, "items");
    long bad = -1, truncated = 0;
    int rc = bd_mc_score_all(m, tok, &task, bd_num_threads(), method, ll, mc_progress, &pr, &bad, &truncated);
    if (rc < 0 && bad >= 0)
        bd_fatal("\"%s\" line %ld: cannot score the item: %s", o->path, task.items[bad].line, bd_strerror(rc));
    if (rc < 0) bd_fatal("cannot score: %s", bd_strerror(rc));
    bd_progress_finish(&pr);
    double secs = bd_now() - t0;
    if (truncated)
        bd_log(BD_LOG_WARN, "%ld sequences longer than the model's context of %d lost tokens on the left", truncated,
               m->cfg.max_seq);
    bd_mc_tally tally = {0};
    for (long i = 0; i < task.n; i++)
        bd_mc_tally_add(&tally, &task.items[i], ll + (size_t)i * task.max_choices, NULL, NULL);
    bd_mc_result r = bd_mc_tally_result(&tally);
    mc_report(o, &task, &r, secs);
    bd_tool_note("%s: acc %.4f, acc_norm %.4f on %ld items in %.1f s (%.1f items/s)", task.name, r.acc, r.acc_norm, r.n,
                 secs, secs > 0 ? (double)r.n / secs : 0.0);
    free(ll);
    bd_mc_task_free(&task);
}

// The files of the run: -o must be none of them.
static void check_files(const eval_opts *o, const mc_opts *mc) {
    if (o->output) bd_tool_writes_stream("-o", o->output);
    bd_tool_reads("--model", o->model_path);
    bd_tool_reads("--clip", o->qo.clip);
    if (o->text || o->n_generate >= 0 || mc->path) bd_tool_reads_tokenizer(o->tok_path, o->model_path);
    bd_tool_reads("--text", o->text);
    if (!o->text && o->n_generate < 0 && !mc->path) bd_tool_reads("TOKENS", o->data);
    bd_tool_reads("--task", mc->path);
    char labels[4096];
    if (mc->labels) {
        bd_tool_reads("--labels", mc->labels);
    } else if (mc->path) {
        bd_mc_labels_path(mc->path, labels, sizeof labels);
        bd_tool_reads("the labels next to --task", labels);
    }
    bd_tool_check_files();
}

static void parse_options(int argc, char **argv, eval_opts *o, mc_opts *mc) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"tokenizer", required_argument, 0, 'k'},
                                             {"text", required_argument, 0, OPT_TEXT},
                                             {"seq-len", required_argument, 0, 'T'},
                                             {"stride", required_argument, 0, OPT_STRIDE},
                                             {"batch", required_argument, 0, 'b'},
                                             {"json", no_argument, 0, OPT_JSON},
                                             {"output", required_argument, 0, 'o'},
                                             BD_QUANT_LONGOPTS,
                                             {"max-new", required_argument, 0, 'K'},
                                             {"generate", required_argument, 0, OPT_GENERATE},
                                             {"prompt", required_argument, 0, OPT_PROMPT},
                                             {"latent", no_argument, 0, OPT_LATENT},
                                             {"act", required_argument, 0, OPT_ACT},
                                             {"task", required_argument, 0, OPT_TASK},
                                             {"task-format", required_argument, 0, OPT_TASK_FORMAT},
                                             {"labels", required_argument, 0, OPT_LABELS},
                                             {"limit", required_argument, 0, 'n'},
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    *o = (eval_opts){.batch = 4, .n_generate = -1, .act = -1, .qo = bd_quant_opts_default()};
    *mc = (mc_opts){0};
    int opt;
    while ((opt = getopt_long(argc, argv, "m:k:T:b:o:K:n:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': o->model_path = optarg; break;
        case 'k': o->tok_path = optarg; break;
        case OPT_TEXT: o->text = optarg; break;
        case 'T': o->seq_len = (int)bd_arg_int("--seq-len", optarg, 2, 1 << 20); break;
        case OPT_STRIDE: o->stride = (int)bd_arg_int("--stride", optarg, 1, 1 << 20); break;
        case 'b': o->batch = (int)bd_arg_int("--batch", optarg, 1, 4096); break;
        case OPT_JSON: o->json = true; break;
        case 'o': o->output = optarg; break;
        case OPT_GENERATE: bd_tool_deprecated("--generate N", "--max-new N"); /* fall through */
        case 'K': o->n_generate = (int)bd_arg_int("--max-new", optarg, 0, 1 << 20); break;
        case OPT_PROMPT: o->prompt = optarg; break;
        case OPT_LATENT: o->latent = true; break;
        case OPT_TASK: mc->path = optarg; break;
        case OPT_TASK_FORMAT: {
            int f = bd_mc_format_parse(optarg);
            if (f < 0) bd_usage_error("--task-format: \"%s\" is not one of auto, hellaswag, piqa, jsonl", optarg);
            mc->format = (bd_mc_format)f;
            break;
        }
        case OPT_LABELS: mc->labels = optarg; break;
        case 'n': mc->limit = (long)bd_arg_int("--limit", optarg, 1, (int64_t)1 << 40); break;
        case OPT_ACT:
            if (strcmp(optarg, "int8") && strcmp(optarg, "f32"))
                bd_usage_error("--act: \"%s\" is not f32 or int8", optarg);
            o->act = strcmp(optarg, "int8") ? 0 : 8;
            break;
        default: bd_tool_quant_or_common_option(&o->qo, opt, optarg);
        }
    }
    bd_tool_quant_options_done(&o->qo);
    if (!o->model_path) bd_usage_error("--model is required");
    if (o->text && optind < argc) bd_usage_error("give either --text FILE or a token stream, not both");
    if (optind + 1 < argc) bd_usage_error("one token stream at most (got %d)", argc - optind);
    if (o->prompt && o->n_generate < 0) bd_usage_error("--prompt needs --max-new N");
    if (mc->path && (o->text || optind < argc || o->n_generate >= 0 || o->stride || o->seq_len))
        bd_usage_error("--task does not combine with --text, a token stream, --max-new, --stride or --seq-len");
    if (!mc->path && (mc->format || mc->labels || mc->limit))
        bd_usage_error("--task-format, --labels and --limit need --task");
    if (mc->labels && mc->format != BD_MC_AUTO && mc->format != BD_MC_PIQA)
        bd_usage_error("--labels is for PIQA tasks");
    o->data = optind < argc ? argv[optind] : "-";
    if (optind < argc) {
        char hint[600];
        snprintf(hint, sizeof hint,
                 "score it with --text %s, or tokenize it first (bd-tokenize -k TOKENIZER %s | bd-eval -m %s)",
                 argv[optind], argv[optind], o->model_path);
        bd_tool_expect_stream("TOKENS", argv[optind], hint);
    }
    mc->model_path = o->model_path, mc->json = o->json, mc->output = o->output, mc->q = &o->qo.q;
    check_files(o, mc);
}

// --model as it runs (or its latent weights), then fake-quantized with --quant (after --clip).
static void load_model(const eval_opts *o, bd_model *m) {
    if (o->latent)
        bd_tool_load_model_latent(o->model_path, m);
    else if (o->qo.q.kind != BD_Q_NONE)
        bd_tool_load_model(o->model_path, m);  // --quant re-quantizes its f32 weights
    else
        bd_tool_load_model_mapped(o->model_path, m);
    char why[512];
    bd_quant_opts qo = o->qo;
    if (qo.q.kind != BD_Q_NONE && m->quant.kind != BD_Q_NONE && !o->latent)
        bd_fatal(
                "--quant: \"%s\" is a student with its own quantization (%s %d-bit); use --latent to re-quantize its latent weights",
                o->model_path, bd_qkind_name(m->quant.kind), m->quant.bits);
    if (qo.q.kind != BD_Q_NONE) {
        if (qo.clip && bd_clipfile_apply(qo.clip, m, &qo.q, why, sizeof why) < 0) bd_fatal("--clip: %s", why);
        if (bd_model_fakequant(m, m, &qo.q, &qo.policy, why, sizeof why) < 0) bd_fatal("--quant: %s", why);
        m->quant = qo.q;  // its weights are quantized now; the policy carries --act-quant
        m->qpolicy = qo.policy;
    }
    // --act: int8 or f32 inputs of the quantized linears (packed kernels or the fake-quantized forward).
    if (o->act == 8 && m->quant.kind == BD_Q_NONE)
        bd_fatal("--act int8: \"%s\" is a full-precision model, not a packed model or a student (or give --quant)",
                 o->model_path);
    if (o->latent && qo.q.kind == BD_Q_NONE) m->qpolicy.act_bits = 0;  // the latent model: f32 activations too
    if (o->act >= 0) m->qpolicy.act_bits = o->act;
    if (m->packed) m->packed->act_int8 = m->qpolicy.act_bits == 8;
}

// The tokenizer for text, generation and tasks; its ids must fit the model's vocabulary.
static bd_tokenizer *load_tokenizer(const eval_opts *o, const bd_model *m, bool check) {
    bd_tokenizer *tok = bd_tool_load_tokenizer(o->tok_path, o->model_path, m);
    if (check && bd_tokenizer_vocab_size(tok) > m->cfg.vocab)
        bd_fatal("--tokenizer has %d tokens, the model's vocabulary only %d", bd_tokenizer_vocab_size(tok),
                 m->cfg.vocab);
    return tok;
}

typedef struct {
    const bd_tokenizer *tok;
    bd_text_buf out;
    long n;  // tokens printed (the prompt's, then the new ones)
} gen_out;

// Prints each token as it comes.
static int print_token(void *ctx, int32_t prev, int32_t cur) {
    gen_out *g = ctx;
    g->n++;
    g->out.len = 0;
    if (bd_tokenizer_decode_next(g->tok, prev, cur, BD_TOK_SKIP_SPECIAL, &g->out) < 0)
        bd_fatal("cannot decode id %d", cur);
    if (g->out.len) fwrite(g->out.data, 1, g->out.len, stdout);
    fflush(stdout);
    return BD_OK;
}

static void generate(const bd_model *m, const bd_tokenizer *tok, const char *prompt, int n_new) {
    bd_token_buf p = {0};
    int32_t bos = bd_tokenizer_bos(tok);
    if (prompt && *prompt) {
        if (bd_tokenizer_encode(tok, prompt, strlen(prompt), bos >= 0 ? BD_TOK_BOS : 0, &p) < 0)
            bd_fatal("cannot encode --prompt");
    } else {
        if (bos < 0) bd_fatal("the tokenizer has no BOS; give --prompt");
        if (!(p.ids = malloc(sizeof(int32_t)))) bd_fatal("out of memory");
        p.ids[0] = bos;
        p.n = 1;
    }
    if ((int)p.n >= m->cfg.max_seq) bd_fatal("--prompt is %zu tokens, the model's context is %d", p.n, m->cfg.max_seq);
    gen_out g = {tok, {0}, 0};
    char why[300];
    double t0 = bd_now();
    if (bd_greedy(m, p.ids, (int)p.n, n_new, bd_tokenizer_eos(tok), print_token, &g, why, sizeof why) < 0)
        bd_fatal("%s", why);
    fputc('\n', stdout);
    double secs = bd_now() - t0;
    long n_new_done = g.n - (long)p.n;  // the prompt's tokens were printed too
    bd_tool_note("generated %ld tokens after a prompt of %zu in %.2f s (%.0f tok/s)", n_new_done, p.n, secs,
                 secs > 0 ? (double)n_new_done / secs : 0.0);
    bd_text_buf_free(&g.out);
    bd_token_buf_free(&p);
}

static void progress_start(void *ctx, uint64_t total, const char *unit) {
    bd_progress_start(ctx, "perplexity", total, unit);
}
static void progress_update(void *ctx, uint64_t done) { bd_progress_update(ctx, done); }

// The results: a bd.eval stream (-o), then a JSON line (--json) or a readable report.
static void report(const eval_opts *o, const bd_model *m, const eval_label *l, const bd_ppl_result *r, int T,
                   double secs) {
    double nll = r->scored ? r->nll_sum / (double)r->scored : NAN, ppl = exp(nll);
    bd_qspec q = o->qo.q,
             shown = q.kind != BD_Q_NONE || o->latent ? q : m->quant;  // a student reports its own quantization
    if (!isfinite(nll)) bd_fatal("the loss is not finite (NaN or inf weights or logits?)");
    if (q.kind == BD_Q_NONE && m->quant.kind != BD_Q_NONE && !o->latent) q = m->quant;  // a student: report its spec
    if (o->output) {
        bd_writer *w = open_eval_stream(o->output, l, NULL, 3);
        msgpack_packer *pk = bd_writer_packer(w);
        bd_pack_kv_int(pk, "seq_len", T);
        bd_pack_kv_int(pk, "stride", o->stride);
        bd_pack_kv_str(pk, "input", o->text ? "text" : "tokens");
        if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", o->output);
        const char *names[2] = {"nll", "ppl"};
        double values[2] = {nll, ppl};
        for (int i = 0; i < 2; i++) {
            msgpack_pack_map(pk, 7);
            bd_pack_kv_str(pk, "metric", names[i]);
            bd_pack_kv_double(pk, "value", values[i]);
            bd_pack_kv_int(pk, "n", r->scored);
            bd_pack_kv_int(pk, "seq_len", T);
            bd_pack_kv_int(pk, "bits", l->bits);
            bd_pack_kv_int(pk, "group", l->group);
            bd_pack_kv_str(pk, "data", o->text ? o->text : o->data);
            if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", o->output);
        }
        if (bd_writer_close(w) < 0) bd_fatal("\"%s\": write failed: %s", o->output, strerror(errno));
    }
    if (o->json) {
        printf("{\"nll\":%.6f,\"ppl\":%.6f,\"tokens\":%lld,\"seq_len\":%d,\"windows\":%d,\"stride\":%d,\"quant\":\"%s\",\"bits\":%d,\"seconds\":%.3f",
               nll, ppl, r->scored, T, r->windows, o->stride, bd_qkind_name(shown.kind),
               shown.kind == BD_Q_NONE ? 32 : shown.bits, secs);
        json_label(l);
        printf("}\n");
        return;
    }
    char desc[256];
    bd_model_describe(m, desc, sizeof desc);
    printf("model     %s\n          %s\n", o->model_path, desc);
    if (q.kind != BD_Q_NONE)
        printf("quant     %s %d-bit, group %d%s%s\n", bd_qkind_name(q.kind), q.bits, q.group,
               o->qo.clip ? ", clipped" : "",
               m->packed                  ? m->packed->act_int8 ? ", packed, int8 activations" : ", packed"
               : m->qpolicy.act_bits == 8 ? ", int8 activations"
                                          : "");
    else if (m->quant.kind != BD_Q_NONE)
        printf("student   %s %d-bit, group %d%s\n", bd_qkind_name(m->quant.kind), m->quant.bits, m->quant.group,
               o->latent                  ? " (latent weights shown)"
               : m->packed                ? m->packed->act_int8 ? " (packed, int8 activations)" : " (packed)"
               : m->qpolicy.act_bits == 8 ? " (int8 activations)"
                                          : "");
    printf("tokens    %lld scored in %d windows of %d", r->scored, r->windows, T);
    if (o->stride) printf(" (stride %d)", o->stride);
    if (r->dropped) printf(", %lld tail tokens dropped", r->dropped);
    printf("\nnll       %.4f nats/token\nppl       %.4f\ntime      %.2f s (%.0f tokens/s)\n", nll, ppl, secs,
           (double)r->scored / secs);
}

// The window: --seq-len (at most the model's context), by default the context, at most 2048.
static int window_len(const eval_opts *o, const bd_model *m) {
    if (o->seq_len > m->cfg.max_seq)
        bd_usage_error("--seq-len %d exceeds the model's context %d", o->seq_len, m->cfg.max_seq);
    int T = o->seq_len ? o->seq_len : (m->cfg.max_seq < 2048 ? m->cfg.max_seq : 2048);
    if (o->stride > T) bd_usage_error("--stride %d is longer than --seq-len %d", o->stride, T);
    return T;
}

// A stream shorter than one window: refused for a --seq-len given, else one window of it all.
static int fit_window(const eval_opts *o, int T, size_t n) {
    if ((size_t)T <= n) return T;
    if (o->seq_len)
        bd_fatal("\"%s\": %zu tokens, fewer than one window of --seq-len %d", o->text ? o->text : o->data, n, T);
    return (int)n;
}

// The memory plan (bd_runplan.h) of perplexity or generation from the model's header, before it
// is loaded (m NULL), or from m once loaded when it came through standard input. The scorers of
// --task, sized by the longest item as they go, are not planned. False if not made.
static bool plan_memory(const eval_opts *o, const mc_opts *mc, const bd_model *m) {
    bd_model_info mi;
    if (!bd_tool_model_info(o->model_path, m, &mi)) return false;
    mi.mapped = !o->latent && o->qo.q.kind == BD_Q_NONE;  // as load_model loads it
    if (o->act >= 0) mi.qpolicy.act_bits = o->act;
    int ctx = mi.cfg.max_seq;
    bd_memplan p = {0};
    if (o->n_generate >= 0 && !mc->path) {  // a prompt has at most one token per byte, and BOS
        long long end = (o->prompt ? (long long)strlen(o->prompt) : 0) + 2 + o->n_generate;
        bd_runplan_greedy(&p, &mi, end < ctx ? (int)end : ctx);
    } else if (!mc->path) {
        int T = o->seq_len && o->seq_len < ctx ? o->seq_len : ctx < 2048 ? ctx : 2048;  // too long: a usage error later
        bd_runplan_ppl(&p, &mi, o->stride ? 1 : o->batch, T);
    } else {
        bd_memplan_add(&p, "weights", bd_memplan_weights(&mi), NULL);
    }
    bd_tool_memplan(&p, m ? bd_memplan_weights(&mi) : 0);
    return true;
}

int main(int argc, char **argv) {
    bd_tool_init("bd-eval", help, argc, argv);
    eval_opts o;
    mc_opts mc;
    parse_options(argc, argv, &o, &mc);
    bd_model m;
    bool planned = plan_memory(&o, &mc, NULL);
    load_model(&o, &m);
    if (!planned) plan_memory(&o, &mc, &m);
    if (o.n_generate >= 0 || mc.path) {
        bd_tokenizer *tok = load_tokenizer(&o, &m, !!mc.path);
        if (mc.path) {
            eval_label l = label_run(&o, &m, mc.path);
            mc.label = &l;
            multiple_choice(&m, tok, &mc);
        } else {
            generate(&m, tok, o.prompt, o.n_generate);
        }
        bd_tokenizer_free(tok);
        bd_model_free(&m);
        return 0;
    }
    int T = window_len(&o, &m);
    bd_ids ids = {0};
    char why[600];
    if (o.text) {
        bd_tokenizer *tok = load_tokenizer(&o, &m, true);
        if (bd_ids_read_text(o.text, tok, &ids, why, sizeof why) < 0) bd_fatal("%s", why);
        bd_tokenizer_free(tok);
    } else if (bd_tokens_read(o.data, "bd.tokens", m.cfg.vocab, true, SIZE_MAX, &ids, why, sizeof why) < 0) {
        bd_fatal("%s", why);
    }
    T = fit_window(&o, T, ids.n);
    bd_progress pr;
    bd_ppl_progress prog = {progress_start, progress_update, &pr};
    bd_ppl_result r;
    double t0 = bd_now();
    if (bd_ppl(&m, ids.ids, ids.n, T, o.stride, o.batch, &prog, &r, why, sizeof why) < 0) bd_fatal("%s", why);
    bd_progress_finish(&pr);
    double secs = bd_now() - t0;
    eval_label l = label_run(&o, &m, o.text ? o.text : o.data);
    report(&o, &m, &l, &r, T, secs);
    bd_tool_note("perplexity %.4f on %lld tokens (%d windows of %d) in %.1f s (%.0f tok/s)",
                 exp(r.nll_sum / (double)r.scored), r.scored, r.windows, T, secs,
                 secs > 0 ? (double)r.scored / secs : 0.0);
    bd_ids_free(&ids);
    bd_model_free(&m);
    return 0;
}
