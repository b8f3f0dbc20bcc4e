// bd-eval: perplexity of a model on a token stream or text (non-overlapping windows, all
// positions scored: the GPTQ/BitDistiller protocol; or sliding windows with --stride),
// optionally of the fake-quantized model; and greedy generation for a quick look. A run can
// be split into shards (--shard K/N, partial sums in a bd.eval-part stream) that --combine
// joins into exactly the whole run's results.
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_clipfile.h"
#include "bd_eval_part.h"
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
#include "bd_shard.h"
#include "bd_threads.h"
#include "bd_tool.h"

static const char help[] =
        "Usage: bd-eval --model M [OPTIONS] [TOKENS]\n"
        "       bd-eval --model M --text FILE [OPTIONS]\n"
        "       bd-eval --model M --max-new N [--prompt TEXT] [OPTIONS]\n"
        "       bd-eval --model M --task FILE [--task-format F] [--limit N] [OPTIONS]\n"
        "       bd-eval --combine PART... [--json] [-o FILE]\n"
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
        "      --prompt TEXT    the text to continue (default: start from BOS)\n"
        "  Shards (one run split over machines and joined exactly):\n"
        "      --shard K/N      score only the task items i, or the forward passes i (each of\n"
        "                       --batch windows; --stride: each window), with i mod N = K, as the\n"
        "                       whole run does; write their sums to -o (a bd.eval-part stream) and\n"
        "                       print nothing\n"
        "      --combine        PART... are the N parts of one --shard run: print and write (-o)\n"
        "                       its results as the run without --shard does\n" BD_COMMON_HELP
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
    OPT_SHARD,
    OPT_COMBINE,
};

typedef struct {
    const char *model_path, *tok_path, *text, *output, *prompt, *data;  // data: the token stream
    int seq_len, stride, batch, n_generate;
    bool json, latent, combine;
    int act;  // --act: -1 the model's own, 0 f32, 8 int8
    bd_quant_opts qo;
    bd_tool_shard shard;
} eval_opts;

// What a result measured: the model (its path and content hash), its quantization as
// evaluated (--quant, else the model's own: a student's or a packed model's), the data.
typedef struct {
    const char *model, *data, *clip;     // clip: --clip or NULL
    char model_hash[17], data_hash[17];  // "" for standard input
    const char *quant;                   // bd_qkind_name of q.kind
    bd_qspec q;
    int bits, group;  // 32 and 0 for a full-precision model; group: as used on rows of the model's width
    int act_bits;     // 8: int8 activations
    bool packed, latent;
} eval_label;

// The model's content hash, computed on a thread of its own beside the load and the
// evaluation: reading every byte of a 13.5 GB model takes longer than mapping it (measured:
// 17 s of a 50 s run that scored 6 tokens). Started before the load, joined by label_run.
static struct {
    pthread_t tid;
    bool started, joined;
    const char *path;
    char hex[17];
    int rc;
    char why[512];
} model_hash;

static void *hash_model(void *arg) {
    (void)arg;
    model_hash.rc = bd_hash_path(model_hash.path, model_hash.hex, model_hash.why, sizeof model_hash.why);
    return NULL;
}

static void model_hash_start(const char *path) {
    model_hash.path = path;
    model_hash.started = pthread_create(&model_hash.tid, NULL, hash_model, NULL) == 0;  // else: label_run hashes
}

static int model_hash_join(char out[17], char *why, size_t ws) {
    if (!model_hash.joined) {
        if (model_hash.started)
            pthread_join(model_hash.tid, NULL);
        else
            hash_model(NULL);
        model_hash.joined = true;
    }
    memcpy(out, model_hash.hex, sizeof model_hash.hex);
    snprintf(why, ws, "%s", model_hash.why);
    return model_hash.rc;
}

static eval_label label_run(const eval_opts *o, const bd_model *m, const char *data) {
    eval_label l = {.model = o->model_path, .data = data, .clip = o->qo.clip, .latent = o->latent};
    // A pipe or FIFO was read once and has no hash (null), nor has a file gone since.
    char why[512];
    int rc = model_hash_join(l.model_hash, why, sizeof why);
    if (rc < 0 && rc != BD_ERR_ARG) bd_log(BD_LOG_WARN, "--model: no content hash: %s", why);
    rc = strcmp(data, "-") ? bd_hash_path(data, l.data_hash, why, sizeof why) : BD_OK;
    if (rc < 0 && rc != BD_ERR_ARG) bd_log(BD_LOG_WARN, "no content hash of the data: %s", why);
    l.q = o->qo.q.kind != BD_Q_NONE || o->latent ? o->qo.q : m->quant;  // a student reports its own
    l.quant = bd_qkind_name(l.q.kind);
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

// -o FILE: a bd.eval stream (a shard's: bd.eval-part) with its header {model, model_hash,
// quant, bits, group, clip, act, packed, latent, data, data_hash, task (or nil), settings[,
// shard]}; the caller packs the settings map (n_settings pairs) [and the shard pair], ends the
// header and then writes the records.
static bd_writer *open_eval_stream(const char *path, const char *schema, const eval_label *l, const char *task,
                                   int n_settings, bool shard) {
    bd_writer *w = bd_tool_open_writer(path);
    bd_producer prod = bd_tool_producer();
    if (bd_writer_begin_header(w, schema, &prod, shard ? 14 : 13) < 0) bd_fatal("\"%s\": cannot write", path);
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_kv_str(pk, "model", l->model);
    pack_kv_str_or_nil(pk, "model_hash", l->model_hash);
    bd_pack_kv_str(pk, "quant", l->quant);
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

// --combine's -o: the header the whole run writes (a part's, without its shard).
static bd_writer *open_combined_stream(const char *path, const msgpack_object *part) {
    bd_writer *w = bd_tool_open_writer(path);
    bd_shard_pack_merged_header(bd_writer_packer(w), part, "bd.eval");
    if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", path);
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
    const bd_tool_shard *shard;
} mc_opts;

static void mc_settings(msgpack_packer *pk, const mc_opts *o, bd_mc_format format) {
    bd_pack_kv_str(pk, "format", bd_mc_format_name(format));
    bd_pack_kv_int(pk, "limit", o->limit);
    pack_kv_str_or_nil(pk, "labels", o->labels);
}

// The results: a bd.eval stream (-o; --combine: with the header of part, a part's), then a
// JSON line (--json) or a readable report.
static void mc_report(const mc_opts *o, const char *task_name, bd_mc_format format, const bd_mc_result *r, double secs,
                      const msgpack_object *part) {
    double rate = secs > 0 ? (double)r->n / secs : 0;
    if (o->output) {
        bd_writer *w;
        msgpack_packer *pk;
        if (part) {
            w = open_combined_stream(o->output, part);
            pk = bd_writer_packer(w);
        } else {
            w = open_eval_stream(o->output, "bd.eval", o->label, task_name, 3, false);
            mc_settings(pk = bd_writer_packer(w), o, format);
            if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", o->output);
        }
        const char *names[2] = {"acc", "acc_norm"};
        double values[2] = {r->acc, r->acc_norm}, errs[2] = {r->acc_stderr, r->acc_norm_stderr};
        for (int i = 0; i < 2; i++) {
            msgpack_pack_map(pk, 8);
            bd_pack_kv_str(pk, "metric", names[i]);
            bd_pack_kv_double(pk, "value", values[i]);
            bd_pack_kv_double(pk, "stderr", errs[i]);
            bd_pack_kv_int(pk, "n", r->n);
            bd_pack_kv_str(pk, "task", task_name);
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
        bd_json_string(stdout, task_name, strlen(task_name));
        printf(",\"acc\":%.6f,\"acc_stderr\":%s,\"acc_norm\":%.6f,\"acc_norm_stderr\":%s,\"n\":%ld,"
               "\"items_per_s\":%.2f,\"chance\":%.6f,\"quant\":\"%s\",\"bits\":%d,\"seconds\":%.3f",
               r->acc, e1, r->acc_norm, e2, r->n, rate, r->chance, o->label->quant, o->label->bits, secs);
        json_label(o->label);
        printf(",\"format\":\"%s\",\"limit\":%ld}\n", bd_mc_format_name(format), o->limit);
    } else {
        printf("task      %s (%s, %s layout), %ld items\n", task_name, o->path, bd_mc_format_name(format), r->n);
        printf("acc       %.4f +- %.4f\nacc_norm  %.4f +- %.4f\nchance    %.4f\n", r->acc, r->acc_stderr, r->acc_norm,
               r->acc_norm_stderr, r->chance);
        printf("time      %.2f s (%.1f items/s)\n", secs, rate);
    }
}

static void mc_progress(void *ctx, long done) { bd_progress_update(ctx, (uint64_t)done); }

// A shard's stats: its own time (the parts differ in nothing else).
static void pack_stats(msgpack_packer *pk, double secs) {
    bd_pack_str(pk, "stats");
    msgpack_pack_map(pk, 1);
    bd_pack_kv_double(pk, "seconds", secs);
}

// --shard: a bd.eval-part stream of the shard's items (mine, of task), in order.
static void mc_write_part(const mc_opts *o, const bd_mc_task *task, const bd_mc_task *mine, const double *ll,
                          double secs) {
    const char *out = o->output ? o->output : "-";
    bd_writer *w = open_eval_stream(o->output, "bd.eval-part", o->label, task->name, 3, true);
    msgpack_packer *pk = bd_writer_packer(w);
    mc_settings(pk, o, task->format);
    bd_shard_pack(pk, &o->shard->s, task->n, o->shard->argc, o->shard->argv, 1);
    pack_stats(pk, secs);
    if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", out);
    bd_mc_tally tally = {0};
    for (long j = 0; j < mine->n; j++) {
        int pred, pred_norm;
        const bd_mc_item *it = &mine->items[j];
        bd_mc_tally_add(&tally, it, ll + (size_t)j * task->max_choices, &pred, &pred_norm);
        bd_eval_part_pack_item(pk, bd_shard_unit(&o->shard->s, j), it->n_choices, it->gold, pred, pred_norm);
        if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", out);
    }
    if (bd_writer_close(w) < 0) bd_fatal("\"%s\": write failed: %s", out, strerror(errno));
    bd_tool_note("shard %lld/%lld of %s: %ld of %ld items (acc %.4f on these) in %.1f s; bd-eval --combine joins the "
                 "parts",
                 (long long)o->shard->s.k, (long long)o->shard->s.n, task->name, mine->n, task->n,
                 mine->n ? (double)tally.correct / (double)mine->n : 0.0, secs);
}

// The task file, read before the model: the memory plan needs its longest item.
static void load_task(const mc_opts *o, bd_mc_task *task) {
    char why[1024];
    if (bd_mc_load(o->path, o->format, o->labels, o->limit, task, why, sizeof why) < 0) bd_fatal("%s", why);
}

// One padded batch per item: measured faster than a shared-prefix KV cache on HellaSwag and
// PIQA (see bench/bench_mc.c), and it reads the weights once per item.
static const bd_mc_method mc_method = BD_MC_BATCH;

// Scores task (freed here).
static void multiple_choice(const bd_model *m, const bd_tokenizer *tok, const mc_opts *o, bd_mc_task task) {
    // A shard scores only its items (i mod N = K), each as the whole run does: an item's
    // log-likelihoods depend on the item alone.
    bd_mc_task mine = task;
    const bd_shard *sh = &o->shard->s;
    if (sh->n > 0) {
        mine.n = (long)bd_shard_count(sh, task.n);
        if (!(mine.items = malloc(sizeof *mine.items * (size_t)(mine.n ? mine.n : 1)))) bd_fatal("out of memory");
        for (long j = 0; j < mine.n; j++) mine.items[j] = task.items[bd_shard_unit(sh, j)];
    }
    bd_mc_method method = mc_method;
    double *ll = malloc(sizeof(double) * (size_t)task.max_choices * (size_t)(mine.n ? mine.n : 1));
    if (!ll) bd_fatal("out of memory");
    bd_progress pr;
    double t0 = bd_now();
    bd_progress_start(&pr, task.name, (uint64_t)mine.n, "items");
    long bad = -1, truncated = 0;
    int rc = bd_mc_score_all(m, tok, &mine, bd_num_threads(), method, ll, mc_progress, &pr, &bad, &truncated);
    if (rc < 0 && bad >= 0)
        bd_fatal("\"%s\" line %ld: cannot score the item: %s", o->path, mine.items[bad].line, bd_strerror(rc));
    if (rc < 0) bd_fatal("cannot score: %s", bd_strerror(rc));
    bd_progress_finish(&pr);
    double secs = bd_now() - t0;
    if (truncated)
        bd_log(BD_LOG_WARN, "%ld sequences longer than the model's context of %d lost tokens on the left", truncated,
               m->cfg.max_seq);
    if (sh->n > 0) {
        mc_write_part(o, &task, &mine, ll, secs);
        free(mine.items);
    } else {
        bd_mc_tally tally = {0};
        for (long i = 0; i < task.n; i++)
            bd_mc_tally_add(&tally, &task.items[i], ll + (size_t)i * task.max_choices, NULL, NULL);
        bd_mc_result r = bd_mc_tally_result(&tally);
        mc_report(o, task.name, task.format, &r, secs, NULL);
        bd_tool_note("%s: acc %.4f, acc_norm %.4f on %ld items in %.1f s (%.1f items/s)", task.name, r.acc, r.acc_norm,
                     r.n, secs, secs > 0 ? (double)r.n / secs : 0.0);
    }
    free(ll);
    bd_mc_task_free(&task);
}

// The files of the run: -o must be none of them.
static void check_files(const eval_opts *o, const mc_opts *mc, int argc, char **argv) {
    if (o->output || o->shard.s.n > 0) bd_tool_writes_stream("-o", o->output);  // a shard: its part
    if (o->combine) {
        for (int i = optind; i < argc; i++) bd_tool_reads("PART", argv[i]);
        bd_tool_check_files();
        return;
    }
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
                                             {"shard", required_argument, 0, OPT_SHARD},
                                             {"combine", no_argument, 0, OPT_COMBINE},
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
        case OPT_SHARD: bd_tool_shard_option(&o->shard, optarg); break;
        case OPT_COMBINE: o->combine = true; break;
        default: bd_tool_quant_or_common_option(&o->qo, opt, optarg);
        }
    }
    bd_tool_quant_options_done(&o->qo);
    if (o->combine) {
        // The parts hold everything else: only the output options go with them.
        if (o->model_path || o->tok_path || o->text || o->n_generate >= 0 || o->prompt || mc->path ||
            o->shard.s.n > 0 || o->seq_len || o->stride || o->latent || o->act >= 0 || o->qo.q.kind != BD_Q_NONE ||
            mc->format || mc->labels || mc->limit)
            bd_usage_error(
                    "--combine takes the parts and --json, -o only (the parts hold the model, data and settings)");
        if (optind == argc) bd_usage_error("--combine needs the parts (the -o streams of bd-eval --shard K/N)");
        mc->json = o->json, mc->output = o->output, mc->shard = &o->shard;
        check_files(o, mc, argc, argv);
        return;
    }
    if (!o->model_path) bd_usage_error("--model is required");
    if (o->shard.s.n > 0 && o->n_generate >= 0) bd_usage_error("--shard splits scoring, not --max-new generation");
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
    mc->shard = &o->shard;
    check_files(o, mc, argc, argv);
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
    bd_greedy_stats st;
    double t0 = bd_now();
    if (bd_greedy(m, p.ids, (int)p.n, n_new, bd_tokenizer_eos(tok), print_token, &g, &st, why, sizeof why) < 0)
        bd_fatal("%s", why);
    fputc('\n', stdout);
    double secs = bd_now() - t0 - st.prefill_seconds, ps = st.prefill_seconds;
    long n_new_done = g.n - (long)p.n;  // the prompt's tokens were printed too
    bd_tool_note("read a prompt of %zu tokens in %.3f s (%.1f tok/s), then generated %ld tokens in %.2f s (%.1f tok/s)",
                 p.n, ps, ps > 0 ? (double)p.n / ps : 0.0, n_new_done, secs,
                 secs > 0 ? (double)n_new_done / secs : 0.0);
    bd_text_buf_free(&g.out);
    bd_token_buf_free(&p);
}

static void progress_start(void *ctx, uint64_t total, const char *unit) {
    bd_progress_start(ctx, "perplexity", total, unit);
}
static void progress_update(void *ctx, uint64_t done) { bd_progress_update(ctx, done); }

// The first lines of the readable perplexity report: the model and its quantization.
// Returns a malloc'd string.
static char *ppl_head(const eval_opts *o, const bd_model *m) {
    char *buf = NULL, desc[256];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) bd_fatal("out of memory");
    bd_qspec q = o->qo.q;
    if (q.kind == BD_Q_NONE && m->quant.kind != BD_Q_NONE && !o->latent) q = m->quant;  // a student: report its spec
    bd_model_describe(m, desc, sizeof desc);
    fprintf(f, "model     %s\n          %s\n", o->model_path, desc);
    if (q.kind != BD_Q_NONE)
        fprintf(f, "quant     %s %d-bit, group %d%s%s\n", bd_qkind_name(q.kind), q.bits, q.group,
                o->qo.clip ? ", clipped" : "",
                m->packed                  ? m->packed->act_int8 ? ", packed, int8 activations" : ", packed"
                : m->qpolicy.act_bits == 8 ? ", int8 activations"
                                           : "");
    else if (m->quant.kind != BD_Q_NONE)
        fprintf(f, "student   %s %d-bit, group %d%s\n", bd_qkind_name(m->quant.kind), m->quant.bits, m->quant.group,
                o->latent                  ? " (latent weights shown)"
                : m->packed                ? m->packed->act_int8 ? " (packed, int8 activations)" : " (packed)"
                : m->qpolicy.act_bits == 8 ? " (int8 activations)"
                                           : "");
    if (fclose(f) != 0 || !buf) bd_fatal("out of memory");
    return buf;
}

// What a perplexity report says besides the numbers: from the run, or (--combine) from the
// parts' header.
typedef struct {
    const char *output;  // -o FILE or NULL
    bool json;
    const eval_label *l;
    const char *head;  // ppl_head
    int T, stride;
    bool text;                   // --text input, not tokens
    const msgpack_object *part;  // --combine: a part's header, for -o
} ppl_out;

static void ppl_settings(msgpack_packer *pk, int T, int stride, bool text) {
    bd_pack_kv_int(pk, "seq_len", T);
    bd_pack_kv_int(pk, "stride", stride);
    bd_pack_kv_str(pk, "input", text ? "text" : "tokens");
}

// The results: a bd.eval stream (-o), then a JSON line (--json) or a readable report.
static void ppl_report(const ppl_out *p, const bd_ppl_result *r, double secs) {
    double nll = r->scored ? r->nll_sum / (double)r->scored : NAN, ppl = exp(nll);
    const eval_label *l = p->l;
    if (!isfinite(nll)) bd_fatal("the loss is not finite (NaN or inf weights or logits?)");
    if (p->output) {
        bd_writer *w;
        msgpack_packer *pk;
        if (p->part) {
            w = open_combined_stream(p->output, p->part);
            pk = bd_writer_packer(w);
        } else {
            w = open_eval_stream(p->output, "bd.eval", l, NULL, 3, false);
            ppl_settings(pk = bd_writer_packer(w), p->T, p->stride, p->text);
            if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", p->output);
        }
        const char *names[2] = {"nll", "ppl"};
        double values[2] = {nll, ppl};
        for (int i = 0; i < 2; i++) {
            msgpack_pack_map(pk, 7);
            bd_pack_kv_str(pk, "metric", names[i]);
            bd_pack_kv_double(pk, "value", values[i]);
            bd_pack_kv_int(pk, "n", r->scored);
            bd_pack_kv_int(pk, "seq_len", p->T);
            bd_pack_kv_int(pk, "bits", l->bits);
            bd_pack_kv_int(pk, "group", l->group);
            bd_pack_kv_str(pk, "data", l->data);
            if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", p->output);
        }
        if (bd_writer_close(w) < 0) bd_fatal("\"%s\": write failed: %s", p->output, strerror(errno));
    }
    if (p->json) {
        printf("{\"nll\":%.6f,\"ppl\":%.6f,\"tokens\":%lld,\"seq_len\":%d,\"windows\":%d,\"stride\":%d,\"quant\":\"%s\",\"bits\":%d,\"seconds\":%.3f",
               nll, ppl, r->scored, p->T, r->windows, p->stride, l->quant, l->bits, secs);
        json_label(l);
        printf("}\n");
        return;
    }
    fputs(p->head, stdout);
    printf("tokens    %lld scored in %d windows of %d", r->scored, r->windows, p->T);
    if (p->stride) printf(" (stride %d)", p->stride);
    if (r->dropped) printf(", %lld tail tokens dropped", r->dropped);
    printf("\nnll       %.4f nats/token\nppl       %.4f\ntime      %.2f s (%.0f tokens/s)\n", nll, ppl, secs,
           (double)r->scored / secs);
}

// A shard's forward passes, kept for its part stream (written once its time is known).
typedef struct {
    bd_ppl_unit *u;
    int64_t n, cap;
} unit_list;

static int keep_unit(void *ctx, const bd_ppl_unit *u) {
    unit_list *l = ctx;
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 64;
        bd_ppl_unit *p = realloc(l->u, sizeof *p * (size_t)cap);
        if (!p) return BD_ERR_NOMEM;
        l->u = p, l->cap = cap;
    }
    l->u[l->n++] = *u;
    return BD_OK;
}

// --shard: a bd.eval-part stream of the shard's forward passes; the shard field also carries
// what the combined report needs and every part shares (batch, threads, dropped tail, report
// head).
static void ppl_write_part(const eval_opts *o, const ppl_out *p, const bd_ppl_result *r, const unit_list *units,
                           double secs) {
    const char *out = o->output ? o->output : "-";
    if (!isfinite(r->nll_sum)) bd_fatal("the loss is not finite (NaN or inf weights or logits?)");
    bd_writer *w = open_eval_stream(o->output, "bd.eval-part", p->l, NULL, 3, true);
    msgpack_packer *pk = bd_writer_packer(w);
    ppl_settings(pk, p->T, p->stride, p->text);
    bd_shard_pack(pk, &o->shard.s, r->units, o->shard.argc, o->shard.argv, 5);
    bd_pack_kv_int(pk, "batch", o->stride ? 1 : o->batch);
    bd_pack_kv_int(pk, "threads", bd_num_threads());  // OpenBLAS's sums: the same bits need the same
    bd_pack_kv_int(pk, "dropped", r->dropped);
    bd_pack_kv_str(pk, "report", p->head);
    pack_stats(pk, secs);
    if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", out);
    for (int64_t i = 0; i < units->n; i++) {
        bd_eval_part_pack_unit(pk, &units->u[i]);
        if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed", out);
    }
    if (bd_writer_close(w) < 0) bd_fatal("\"%s\": write failed: %s", out, strerror(errno));
    bd_tool_note("shard %lld/%lld: %lld of %lld forward passes, %lld tokens (nll %.4f on these) in %.1f s; bd-eval "
                 "--combine joins the parts",
                 (long long)o->shard.s.k, (long long)o->shard.s.n, (long long)units->n, (long long)r->units, r->scored,
                 r->scored ? r->nll_sum / (double)r->scored : 0.0, secs);
}

// ---- --combine ----

// What --combine holds (file-scope, so that what an error exits with is reachable, not a
// leak): the readers and their headers, the strings copied from a part's header.
static struct {
    bd_reader **rs;
    const msgpack_object **hdrs;
    const char **names;
    int *order;
    char *strs[16];
    int n_strs;
} comb;

// A string field of a part's header (nil: NULL if nil_ok), copied until the end of
// --combine; exits naming the file.
static char *hdr_str(const msgpack_object *o, const char *key, bool nil_ok, const char *name) {
    const msgpack_object *v = bd_obj_get(o, key);
    if (v && v->type == MSGPACK_OBJECT_NIL && nil_ok) return NULL;
    if (!v || v->type != MSGPACK_OBJECT_STR) bd_fatal("\"%s\" header: field \"%s\" must be a string", name, key);
    char *s = strndup(v->via.str.ptr, v->via.str.size);
    if (!s || comb.n_strs == 16) bd_fatal("out of memory");
    return comb.strs[comb.n_strs++] = s;
}

static int64_t hdr_int(const msgpack_object *o, const char *key, int64_t lo, int64_t hi, const char *name) {
    int64_t v;
    if (bd_obj_int_in(bd_obj_get(o, key), lo, hi, &v) < 0)
        bd_fatal("\"%s\" header: field \"%s\" must be an integer in [%lld, %lld]", name, key, (long long)lo,
                 (long long)hi);
    return v;
}

static bool hdr_bool(const msgpack_object *o, const char *key, const char *name) {
    const msgpack_object *v = bd_obj_get(o, key);
    if (!v || v->type != MSGPACK_OBJECT_BOOLEAN)
        bd_fatal("\"%s\" header: field \"%s\" must be true or false", name, key);
    return v->via.boolean;
}

// The label a part's header records (open_eval_stream's fields).
static eval_label label_of_part(const msgpack_object *h, const char *name) {
    eval_label l = {0};
    l.model = hdr_str(h, "model", false, name), l.data = hdr_str(h, "data", false, name);
    l.clip = hdr_str(h, "clip", true, name), l.quant = hdr_str(h, "quant", false, name);
    char *hashes[2] = {hdr_str(h, "model_hash", true, name), hdr_str(h, "data_hash", true, name)};
    snprintf(l.model_hash, sizeof l.model_hash, "%s", hashes[0] ? hashes[0] : "");
    snprintf(l.data_hash, sizeof l.data_hash, "%s", hashes[1] ? hashes[1] : "");
    l.bits = (int)hdr_int(h, "bits", 1, 32, name);
    l.group = (int)hdr_int(h, "group", 0, INT32_MAX, name);
    l.act_bits = strcmp(hdr_str(h, "act", false, name), "int8") ? 0 : 8;
    l.packed = hdr_bool(h, "packed", name), l.latent = hdr_bool(h, "latent", name);
    return l;
}

typedef struct {
    bd_mc_tally tally;
    bd_ppl_result r;
} combined;

static int add_item(void *ctx, const msgpack_object *rec, int64_t u, const char *where, char *why, size_t ws) {
    return bd_eval_part_add_item(&((combined *)ctx)->tally, rec, where, why, ws);
}

static int add_unit(void *ctx, const msgpack_object *rec, int64_t u, const char *where, char *why, size_t ws) {
    return bd_eval_part_add_unit(&((combined *)ctx)->r, rec, where, why, ws);
}

// --combine PART...: the parts of one --shard run, checked to be that, their units added in
// the whole run's order, reported as the whole run reports (its time: the parts' sum).
static void combine(const eval_opts *o, const mc_opts *mc0, int n, char **paths) {
    bd_reader **rs = comb.rs = calloc((size_t)n, sizeof *rs);
    const msgpack_object **hdrs = comb.hdrs = calloc((size_t)n, sizeof *hdrs);
    const char **names = comb.names = calloc((size_t)n, sizeof *names);
    int *order = comb.order = calloc((size_t)n, sizeof *order);
    if (!rs || !hdrs || !names || !order) bd_fatal("out of memory");
    for (int i = 0; i < n; i++) {
        rs[i] = bd_tool_open_reader(paths[i], "bd.eval-part");
        hdrs[i] = bd_reader_header(rs[i]), names[i] = bd_reader_name(rs[i]);
    }
    char why[1200];
    if (bd_shards_check(hdrs, names, n, order, why, sizeof why) < 0) bd_fatal("%s", why);
    const msgpack_object *h = hdrs[order[0]], *settings = bd_obj_get(h, "settings"), *shard = bd_obj_get(h, "shard");
    const char *name = names[order[0]];
    bd_shard s;
    int64_t units;
    if (bd_shard_read(h, name, &s, &units, why, sizeof why) < 0) bd_fatal("%s", why);
    eval_label l = label_of_part(h, name);
    double secs = 0;  // the parts' own times added
    for (int i = 0; i < n; i++) {
        double t;
        if (bd_obj_num(bd_obj_get(bd_obj_get(bd_obj_get(hdrs[i], "shard"), "stats"), "seconds"), &t) == BD_OK)
            secs += t;
    }
    combined acc = {0};
    const msgpack_object *task = bd_obj_get(h, "task");
    if (task && task->type == MSGPACK_OBJECT_STR) {
        char *task_name = hdr_str(h, "task", false, name), *format = hdr_str(settings, "format", false, name);
        mc_opts mo = *mc0;
        mo.path = l.data, mo.label = &l, mo.labels = hdr_str(settings, "labels", true, name);
        mo.limit = (long)hdr_int(settings, "limit", 0, (int64_t)1 << 40, name);
        int f = bd_mc_format_parse(format);
        if (f <= BD_MC_AUTO) bd_fatal("\"%s\" header: settings.format \"%s\" is not a task layout", name, format);
        if (bd_shards_each(rs, order, s.n, units, add_item, &acc, why, sizeof why) < 0) bd_fatal("%s", why);
        bd_mc_result r = bd_mc_tally_result(&acc.tally);
        mc_report(&mo, task_name, (bd_mc_format)f, &r, secs, h);
        bd_tool_note("%s: acc %.4f, acc_norm %.4f on %ld items from %lld parts", task_name, r.acc, r.acc_norm, r.n,
                     (long long)s.n);
    } else {
        char *head = hdr_str(shard, "report", false, name), *input = hdr_str(settings, "input", false, name);
        ppl_out po = {.output = o->output,
                      .json = o->json,
                      .l = &l,
                      .head = head,
                      .T = (int)hdr_int(settings, "seq_len", 2, 1 << 20, name),
                      .stride = (int)hdr_int(settings, "stride", 0, 1 << 20, name),
                      .text = !strcmp(input, "text"),
                      .part = h};
        if (bd_shards_each(rs, order, s.n, units, add_unit, &acc, why, sizeof why) < 0) bd_fatal("%s", why);
        acc.r.dropped = hdr_int(shard, "dropped", 0, INT64_MAX / 4, name);
        ppl_report(&po, &acc.r, secs);
        bd_tool_note("perplexity %.4f on %lld tokens (%d windows of %d) from %lld parts",
                     exp(acc.r.nll_sum / (double)acc.r.scored), acc.r.scored, acc.r.windows, po.T, (long long)s.n);
    }
    for (int i = 0; i < comb.n_strs; i++) free(comb.strs[i]);
    for (int i = 0; i < n; i++) bd_reader_close(rs[i]);
    free(rs), free(hdrs), free(names), free(order);
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
static bool plan_memory(const eval_opts *o, const mc_opts *mc, const bd_mc_task *task, const bd_model *m) {
    bd_model_info mi;
    if (!bd_tool_model_info(o->model_path, m, &mi)) return false;
    mi.mapped = !o->latent && o->qo.q.kind == BD_Q_NONE;  // as load_model loads it
    if (o->act >= 0) mi.qpolicy.act_bits = o->act;
    int ctx = mi.cfg.max_seq;
    bd_memplan p = {0};
    if (o->n_generate >= 0 && !mc->path) {  // a prompt has at most one token per byte, and BOS
        long long P = (o->prompt ? (long long)strlen(o->prompt) : 0) + 1, end = P + 1 + o->n_generate;
        bd_runplan_greedy(&p, &mi, P < ctx ? (int)P : ctx, end < ctx ? (int)end : ctx);
    } else if (!mc->path) {
        int T = o->seq_len && o->seq_len < ctx ? o->seq_len : ctx < 2048 ? ctx : 2048;  // too long: a usage error later
        bd_runplan_ppl(&p, &mi, o->stride ? 1 : o->batch, T);
    } else {  // bd_mc_score_all's workers: one per thread, at most one per item
        int W = bd_num_threads() < task->n ? bd_num_threads() : (int)(task->n > 0 ? task->n : 1);
        bd_runplan_mc(&p, &mi, W, task->max_choices, bd_mc_task_max_positions(task), mc_method);
    }
    bd_tool_memplan(&p, m ? bd_memplan_weights(&mi) : 0);
    return true;
}

int main(int argc, char **argv) {
    bd_tool_init("bd-eval", help, argc, argv);
    eval_opts o;
    mc_opts mc;
    parse_options(argc, argv, &o, &mc);
    if (o.combine) {
        combine(&o, &mc, argc - optind, argv + optind);
        return 0;
    }
    bd_model m;
    bd_mc_task task = {0};
    if (mc.path) load_task(&mc, &task);
    bool planned = plan_memory(&o, &mc, &task, NULL);
    if (mc.path || o.n_generate < 0) model_hash_start(o.model_path);  // what will be labelled
    load_model(&o, &m);
    if (!planned) plan_memory(&o, &mc, &task, &m);
    bd_tool_copy_mapped(&m);
    if (o.n_generate >= 0 || mc.path) {
        bd_tokenizer *tok = load_tokenizer(&o, &m, !!mc.path);
        if (mc.path) {
            eval_label l = label_run(&o, &m, mc.path);
            mc.label = &l;
            multiple_choice(&m, tok, &mc, task);
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
    unit_list units = {0};
    bd_ppl_part part = {o.shard.s.k, o.shard.s.n, keep_unit, &units};  // a shard keeps its units
    double t0 = bd_now();
    if (bd_ppl_shard(&m, ids.ids, ids.n, T, o.stride, o.batch, o.shard.s.n > 0 ? &part : NULL, &prog, &r, why,
                     sizeof why) < 0)
        bd_fatal("%s", why);
    bd_progress_finish(&pr);
    double secs = bd_now() - t0;
    eval_label l = label_run(&o, &m, o.text ? o.text : o.data);
    char *head = ppl_head(&o, &m);
    ppl_out po = {o.output, o.json, &l, head, T, o.stride, o.text != NULL, NULL};
    if (o.shard.s.n > 0) {
        ppl_write_part(&o, &po, &r, &units, secs);
    } else {
        ppl_report(&po, &r, secs);
        bd_tool_note("perplexity %.4f on %lld tokens (%d windows of %d) in %.1f s (%.0f tok/s)",
                     exp(r.nll_sum / (double)r.scored), r.scored, r.windows, T, secs,
                     secs > 0 ? (double)r.scored / secs : 0.0);
    }
    free(head);
    free(units.u);
    bd_ids_free(&ids);
    bd_model_free(&m);
    return 0;
}
