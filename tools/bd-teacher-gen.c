// bd-teacher-gen: a model generates completions of prompts (self-distillation data) into a
// bd.samples stream, batched through the KV cache (the loop lives in bd_generate.c);
// interrupting it leaves a valid stream that --resume continues.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_generate.h"
#include "bd_log.h"
#include "bd_model_io.h"
#include "bd_outfile.h"
#include "bd_progress.h"
#include "bd_prompts.h"
#include "bd_runplan.h"
#include "bd_samples.h"
#include "bd_threads.h"
#include "bd_tool.h"

static const char help[] =
        "Usage: bd-teacher-gen --model M [--prompts FILE] [-n N] [OPTIONS] [-o samples.bdz]\n"
        "The model completes prompts: sample i continues prompt i mod P (P prompts read), or BOS\n"
        "when no prompts are given, until EOS (or BOS), --max-new tokens or the model's context.\n"
        "Writes a bd.samples stream {index, prompt, completion, finished} (see bd-stream(5)).\n"
        "\n"
        "  -m, --model M          llama2.c checkpoint, Hugging Face directory, GGUF file, or\n"
        "                         bd.model/bd.packed stream (\"-\": a stream on standard input)\n"
        "  -k, --tokenizer T      tokenizer (default: the one next to the model)\n"
        "  -p, --prompts FILE     prompts: a bd.tokens stream (recognized by content), JSONL with\n"
        "                         --field, or plain text, one prompt per line (blank lines skipped);\n"
        "                         \"-\": standard input\n"
        "      --field NAME       JSONL prompts: the prompt is the string field NAME\n"
        "      --template T       wrap each prompt: \"alpaca\" (the Alpaca instruction format; a\n"
        "                         JSONL field \"input\", if non-empty, becomes its Input section)\n"
        "                         or a string where {} is the prompt, {NAME} a JSONL field, and\n"
        "                         \\n, \\t, \\\\ are escapes\n"
        "      --prompt-len L     bd.tokens prompts: the first L tokens of each document (default 32)\n"
        "  -n, --samples N        samples to generate (default: one per prompt; required without)\n"
        "  -K, --max-new K        at most K new tokens per sample (default 256)\n"
        "      --temperature X    sampling temperature; 0 is greedy (default 0.7)\n"
        "      --top-k K          sample among the K most probable tokens; 0: all (default 0)\n"
        "      --top-p P          then among the smallest set with probability >= P (default 1.0)\n"
        "  -b, --batch B          sequences generated together (default 16)\n"
        "      --unpadded         compute only the batch's rows per step (faster at small batches;\n"
        "                         the samples may then differ with --batch and --threads)\n"
        "      --logits K         also store the top-K log-probabilities (K <= 64) of every\n"
        "                         generated position\n"
        "  -o, --output FILE      write to FILE instead of standard output\n"
        "      --format F         stream (a bd.samples stream, default) or text (readable text;\n"
        "                         --text: a deprecated spelling, --text FILE is bd-eval's text input)\n"
        "      --resume           continue an interrupted --output FILE up to N samples\n"
        "      --shard K/N        generate only samples i with i mod N = K, each bit for bit as the\n"
        "                         whole run (same --batch, --threads) does; bd-cat --merge-shards\n"
        "                         joins the N streams into the whole run's\n" BD_COMMON_HELP
        "\nThe same --seed gives the same samples whatever --batch and --threads are.\n"
        "Exit status: 0 on success, 1 on invalid input, 2 on usage errors, 130 when interrupted\n"
        "(SIGINT/SIGTERM: the finished samples are written as a valid stream).\n"
        "See bd-teacher-gen(1), bd-stream(5).\n";

enum {
    OPT_FIELD = BD_OPT_FIRST_TOOL,
    OPT_TEMPLATE,
    OPT_PROMPT_LEN,
    OPT_TEMPERATURE,
    OPT_TOP_K,
    OPT_TOP_P,
    OPT_LOGITS,
    OPT_TEXT,
    OPT_FORMAT,
    OPT_RESUME,
    OPT_UNPADDED,
    OPT_SHARD,
};

// ---- interruption ----

static volatile sig_atomic_t interrupted = 0;

// First signal: finish cleanly (the main loop stops after the current step). A second one:
// the default action, removing unfinished output as the other tools do.
static void on_interrupt(int sig) {
    if (interrupted) {
        bd_outfile_abort_all();
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    interrupted = sig;
}

typedef struct {
    const char *model_path, *tok_path, *output;
    bd_prompt_opts po;
    int64_t n;
    bd_gen_opts go;
    bool text, resume;
    bd_tool_shard shard;
} gen_opts;

static void parse_options(int argc, char **argv, gen_opts *o) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"tokenizer", required_argument, 0, 'k'},
                                             {"prompts", required_argument, 0, 'p'},
                                             {"field", required_argument, 0, OPT_FIELD},
                                             {"template", required_argument, 0, OPT_TEMPLATE},
                                             {"prompt-len", required_argument, 0, OPT_PROMPT_LEN},
                                             {"samples", required_argument, 0, 'n'},
                                             {"max-new", required_argument, 0, 'K'},
                                             {"temperature", required_argument, 0, OPT_TEMPERATURE},
                                             {"top-k", required_argument, 0, OPT_TOP_K},
                                             {"top-p", required_argument, 0, OPT_TOP_P},
                                             {"batch", required_argument, 0, 'b'},
                                             {"logits", required_argument, 0, OPT_LOGITS},
                                             {"output", required_argument, 0, 'o'},
                                             {"unpadded", no_argument, 0, OPT_UNPADDED},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             {"text", no_argument, 0, OPT_TEXT},
                                             {"resume", no_argument, 0, OPT_RESUME},
                                             {"shard", required_argument, 0, OPT_SHARD},
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    *o = (gen_opts){.po = {.kind = "bos", .template_ = "", .prompt_len = 32},
                    .n = -1,
                    .go = {.sampling = {0.7, 0, 1.0}, .max_new = 256, .batch = 16}};
    bd_gen_opts *go = &o->go;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:k:p:n:K:b:o:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': o->model_path = optarg; break;
        case 'k': o->tok_path = optarg; break;
        case 'p': o->po.path = optarg; break;
        case OPT_FIELD: o->po.field = optarg; break;
        case OPT_TEMPLATE: o->po.template_ = optarg; break;
        case OPT_PROMPT_LEN: o->po.prompt_len = (int)bd_arg_int("--prompt-len", optarg, 1, 1 << 20); break;
        case 'n': o->n = bd_arg_int("--samples", optarg, 1, INT64_MAX / 2); break;
        case 'K': go->max_new = (int)bd_arg_int("--max-new", optarg, 1, 1 << 20); break;
        case OPT_TEMPERATURE: go->sampling.temperature = bd_arg_double("--temperature", optarg, 0, 1e6); break;
        case OPT_TOP_K: go->sampling.top_k = (int)bd_arg_int("--top-k", optarg, 0, 1 << 30); break;
        case OPT_TOP_P:
            go->sampling.top_p = bd_arg_double("--top-p", optarg, 0, 1);
            if (go->sampling.top_p == 0) bd_usage_error("--top-p: 0 keeps no token; use a value in (0, 1]");
            break;
        case 'b': go->batch = (int)bd_arg_int("--batch", optarg, 1, 4096); break;
        case OPT_UNPADDED: go->unpadded = true; break;
        case OPT_LOGITS: go->logits_top_k = (int)bd_arg_int("--logits", optarg, 1, BD_GEN_MAX_TOPK); break;
        case 'o': o->output = optarg; break;
        case OPT_TEXT:
            bd_tool_deprecated("--text", "--format text");
            o->text = true;
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "text") && strcmp(optarg, "stream"))
                bd_usage_error("--format: \"%s\" is not stream or text", optarg);
            o->text = !strcmp(optarg, "text");
            break;
        case OPT_RESUME: o->resume = true; break;
        case OPT_SHARD: bd_tool_shard_option(&o->shard, optarg); break;
        default: bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    if (!o->model_path) bd_usage_error("--model is required");
    if (optind < argc) bd_usage_error("unexpected argument \"%s\" (prompts go in --prompts FILE)", argv[optind]);
    if (o->resume && (!o->output || !strcmp(o->output, "-"))) bd_usage_error("--resume needs --output FILE");
    if (o->resume && o->text) bd_usage_error("--resume works on streams, not --format text");
    if (o->text && go->logits_top_k) bd_usage_error("--logits needs stream output, not --format text");
    if (!o->po.path && (o->po.field || o->po.template_[0]))
        bd_usage_error("--field and --template need --prompts FILE");
    if (!o->po.path && o->n < 0) bd_usage_error("give -n N (the number of samples) when generating from BOS");
    go->seed = bd_tool_self.seed;
    go->shard_k = o->shard.s.k, go->shard_n = o->shard.s.n;
    if (o->text)
        bd_tool_writes("-o", o->output);  // with --resume also read: it continues itself
    else
        bd_tool_writes_stream("-o", o->output);
    bd_tool_reads("--model", o->model_path);
    bd_tool_reads_tokenizer(o->tok_path, o->model_path);
    bd_tool_reads("--prompts", o->po.path);
    bd_tool_check_files();
}

// The prompts (--prompts FILE, or BOS alone) with the tokenizer that reads them: text prompts and
// --text need one; otherwise the one next to the model, if any, only names ids in the header.
// Sets o->go's stop ids (EOS, and BOS: llama2.c models start the next document with it).
static bd_tokenizer *read_prompts(gen_opts *o, const bd_model *m, bd_prompt_set *ps, int32_t *bos, int32_t *eos) {
    int V = m->cfg.vocab, max_seq = m->cfg.max_seq;
    char why[4600];
    bd_input in = {0};  // read once: sniffed from its first bytes, so FIFOs and pipes work
    if (o->po.path && bd_input_open(&in, o->po.path, why, sizeof why) < 0) bd_fatal("--prompts: %s", why);
    bool tokens_in = o->po.path && bd_input_is_zstd(&in);
    if (tokens_in && (o->po.field || o->po.template_[0]))
        bd_usage_error("--field and --template apply to text prompts, not bd.tokens");
    bd_tokenizer *tok = NULL;
    if (o->tok_path || o->text || (o->po.path && !tokens_in))
        tok = bd_tool_load_tokenizer(o->tok_path, o->model_path, m);
    else
        tok = bd_tool_try_tokenizer(o->model_path, m);
    if (tok && bd_tokenizer_vocab_size(tok) > V)
        bd_fatal("--tokenizer has %d tokens, the model's vocabulary only %d", bd_tokenizer_vocab_size(tok), V);
    *bos = tok ? bd_tokenizer_bos(tok) : m->cfg.bos, *eos = tok ? bd_tokenizer_eos(tok) : m->cfg.eos;
    if (*eos >= 0 && *eos < V) o->go.stop_ids[o->go.n_stop++] = *eos;
    if (*bos >= 0 && *bos < V && *bos != *eos) o->go.stop_ids[o->go.n_stop++] = *bos;
    if (!o->po.path) {
        if (*bos < 0 || *bos >= V) bd_fatal("no BOS id (tokenizer or model) to start from; give --prompts");
        if (bd_prompts_add(ps, bos, 1) < 0) bd_fatal("out of memory");
    } else {
        int rc = bd_prompts_read(ps, &o->po, &in, tok, V, o->n, max_seq, *bos, why, sizeof why);
        if (rc == BD_ERR_ARG) bd_usage_error("%s", why);  // a malformed --template
        if (rc < 0) bd_fatal("%s", why);
        bd_input_close(&in);
    }
    if (ps->count == 0) bd_fatal("\"%s\": no prompts", o->po.path);
    if (ps->truncated)
        bd_log(BD_LOG_WARN, "%d prompt%s longer than the context (%d) cut to their last %d tokens", ps->truncated,
               ps->truncated > 1 ? "s" : "", max_seq, max_seq / 2);
    return tok;
}

// ---- output ----

typedef struct {
    bd_writer *w;     // stream output, or
    bd_outfile *txt;  // --text output
    const bd_tokenizer *tok;
    const char *out_name;
    int tk;
    bd_progress prog;
    char label[64];
    int64_t first;
    bd_text_buf buf;
} out_ctx;

static int write_text(out_ctx *c, const bd_gen_sample *s) {
    FILE *f = bd_outfile_fp(c->txt);
    bd_text_buf *b = &c->buf;
    b->len = 0;
    if (bd_tokenizer_decode(c->tok, s->prompt, (size_t)s->prompt_len, BD_TOK_SKIP_SPECIAL, b) < 0) return BD_ERR_VALUE;
    fprintf(f, "=== sample %lld: %d prompt tokens, %d new tokens, %s\n", (long long)s->index, s->prompt_len, s->n_new,
            bd_gen_end_name(s->end));
    fwrite(b->data ? b->data : "", 1, b->len, f);
    fputs(b->len && b->data[b->len - 1] == '\n' ? "--- completion\n" : "\n--- completion\n", f);
    b->len = 0;
    int32_t prev = s->prompt[s->prompt_len - 1];
    for (int i = 0; i < s->n_new; prev = s->completion[i++])
        if (bd_tokenizer_decode_next(c->tok, prev, s->completion[i], BD_TOK_SKIP_SPECIAL, b) < 0) return BD_ERR_VALUE;
    fwrite(b->data ? b->data : "", 1, b->len, f);
    fputs("\n\n", f);
    return ferror(f) ? BD_ERR_IO : BD_OK;
}

static int emit(void *vctx, const bd_gen_sample *s, const bd_gen_stats *st) {
    out_ctx *c = vctx;
    int rc;
    if (c->txt) {
        rc = write_text(c, s);
    } else {
        rc = bd_samples_write(c->w, s, c->tk);
    }
    if (rc < 0) bd_log(BD_LOG_ERROR, "\"%s\": write failed: %s", c->out_name, strerror(errno));
    snprintf(c->label, sizeof c->label, "generate %.0f tok/s", st->seconds > 0 ? st->new_tokens / st->seconds : 0.0);
    bd_progress_update(&c->prog, (uint64_t)st->samples);
    return rc;
}

// The output with its header; with --resume, the samples an interrupted run wrote are checked
// (against the header fields and the limits of this run) and copied first. Returns how many
// that was.
static int64_t open_output(const gen_opts *o, const msgpack_object *fields, const bd_samples_limits *lim, out_ctx *oc) {
    bd_reader *old = NULL;
    char why[1200];
    FILE *probe;
    if (o->resume && (probe = fopen(o->output, "rb"))) {
        fclose(probe);
        int err;
        char msg[600];
        unsigned differs;
        if (!(old = bd_reader_open(o->output, "bd.samples", &err, msg, sizeof msg)))
            bd_fatal("\"%s\" %s; cannot resume from it", o->output, msg);
        if (bd_samples_check_resume(bd_reader_header(old), fields, bd_reader_name(old), &differs, why, sizeof why) < 0)
            bd_fatal("%s", why);
        for (int i = 0; i < 2; i++)
            if (differs & (i ? BD_SAMPLES_OTHER_THREADS : BD_SAMPLES_OTHER_BATCH))
                bd_log(BD_LOG_WARN,
                       "\"%s\" was started with another %s; in rare cases a sample may then differ from "
                       "an uninterrupted run (see bd-teacher-gen(1))",
                       bd_reader_name(old), i ? "--threads" : "--batch");
    } else if (o->resume) {
        bd_log(BD_LOG_INFO, "\"%s\" does not exist yet: starting from sample 0", o->output);
    }
    if (o->text) {
        if (!(oc->txt = bd_outfile_open(o->output ? o->output : "-", "w")))
            bd_fatal("\"%s\": cannot create: %s", oc->out_name, strerror(errno));
        return 0;
    }
    oc->w = bd_tool_open_writer(o->output);
    bd_producer prod = bd_tool_producer();
    if (bd_writer_begin_header(oc->w, "bd.samples", &prod, fields->via.map.size) < 0)
        bd_fatal("\"%s\": write failed: %s", oc->out_name, strerror(errno));
    msgpack_packer *pk = bd_writer_packer(oc->w);
    for (uint32_t i = 0; i < fields->via.map.size; i++) {
        msgpack_pack_object(pk, fields->via.map.ptr[i].key);
        msgpack_pack_object(pk, fields->via.map.ptr[i].val);
    }
    if (bd_writer_end_object(oc->w) < 0) bd_fatal("\"%s\": write failed: %s", oc->out_name, strerror(errno));
    int64_t first = 0;
    if (old) {
        int64_t count = bd_shard_count(&o->shard.s, o->n);
        if (bd_samples_copy(old, oc->w, count, &o->shard.s, lim, &first, why, sizeof why) < 0) bd_fatal("%s", why);
        bd_reader_close(old);
        bd_log(BD_LOG_INFO, "resuming at sample %lld of %lld", (long long)first, (long long)count);
    }
    return first;
}

// After SIGINT/SIGTERM: how far the run got (of count, its share), exit status 130.
static int interrupted_exit(const gen_opts *o, bool stream, int64_t done, int64_t count) {
    if (stream && o->output && strcmp(o->output, "-"))
        fprintf(stderr,
                "%s: interrupted: wrote %lld of %lld samples to \"%s\"; run the same command with "
                "--resume to continue\n",
                bd_tool_self.name, (long long)done, (long long)count, o->output);
    else
        fprintf(stderr, "%s: interrupted: wrote %lld of %lld samples\n", bd_tool_self.name, (long long)done,
                (long long)count);
    return 130;
}

// An upper bound on the tokens of the longest prompt before they are read: 1 (BOS) without
// --prompts; --prompt-len for a bd.tokens file; for a text or JSONL file one token per byte of
// its longest line, as often as the template repeats it, plus the template and BOS; the context
// for standard input or a pipe (read once).
static long long prompt_bound(const gen_opts *o, int ctx) {
    struct stat sb;
    if (!o->po.path) return 1;
    FILE *f = strcmp(o->po.path, "-") && stat(o->po.path, &sb) == 0 && S_ISREG(sb.st_mode) ? fopen(o->po.path, "rb")
                                                                                           : NULL;
    if (!f) return ctx;
    unsigned char magic[4] = {0};
    bool tokens =
            fread(magic, 1, 4, f) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd;
    long long longest = 0, len = 0;
    rewind(f);
    for (int c; !tokens && (c = getc(f)) != EOF;)
        len = c == '\n' ? (longest = len > longest ? len : longest, 0) : len + 1;
    fclose(f);
    if (tokens) return o->po.prompt_len;
    longest = len > longest ? len : longest;
    const char *tp = o->po.template_;
    long long uses = 1;
    for (const char *s = tp; *s; s++) uses += *s == '{';
    return longest * uses + (long long)strlen(tp) + (strcmp(tp, "alpaca") ? 0 : 512) + 2;
}

// The memory plan (bd_runplan.h) from the model's header, before it is loaded (m NULL), or from m
// once loaded when it came through standard input. False if not made.
static bool plan_memory(const gen_opts *o, const bd_model *m) {
    bd_model_info mi;
    if (!bd_tool_model_info(o->model_path, m, &mi)) return false;
    mi.mapped = true;  // bd_tool_load_model_mapped
    int ctx = mi.cfg.max_seq;
    long long P = prompt_bound(o, ctx), T = P + o->go.max_new - 1;
    int B = o->n >= 0 && o->n < o->go.batch ? (int)(o->n ? o->n : 1) : o->go.batch;
    bd_memplan p = {0};
    bd_runplan_generate(&p, &mi, B, T < ctx ? (int)T : ctx, &o->go);
    bd_tool_memplan(&p, m ? bd_memplan_weights(&mi) : 0);
    return true;
}

// A shard keeps the whole run's batch rows (so its samples are the whole run's, bit for bit)
// and only the rows b = K mod gcd(B, N) are its own: say so when that leaves rows idle while
// samples wait.
static void shard_batch_note(const gen_opts *o) {
    int64_t B = o->go.batch < o->n ? o->go.batch : o->n, g = B, r = o->shard.s.n;
    while (r) {
        int64_t t = g % r;
        g = r, r = t;
    }
    if (o->shard.s.n > 1 && g > 1 && bd_shard_count(&o->shard.s, o->n) > B / g)
        bd_log(BD_LOG_WARN,
               "--shard %lld/%lld with a batch of %lld: only %lld of the batch's rows are this shard's (they "
               "share the factor %lld); a --batch coprime with %lld, the same for every shard, keeps all busy",
               (long long)o->shard.s.k, (long long)o->shard.s.n, (long long)B, (long long)(B / g), (long long)g,
               (long long)o->shard.s.n);
}

int main(int argc, char **argv) {
    bd_tool_init("bd-teacher-gen", help, argc, argv);
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    gen_opts o;
    parse_options(argc, argv, &o);
    bd_model m;
    bool planned = plan_memory(&o, NULL);
    bd_tool_load_model_mapped(o.model_path, &m);
    if (!planned) plan_memory(&o, &m);
    bd_tool_copy_mapped(&m);
    if (m.cfg.max_seq < 2) bd_fatal("--model: context of %d tokens leaves no room to generate", m.cfg.max_seq);
    if (o.go.logits_top_k > m.cfg.vocab)
        bd_usage_error("--logits %d is more than the vocabulary (%d)", o.go.logits_top_k, m.cfg.vocab);
    bd_prompt_set ps = {0};
    int32_t bos, eos;
    bd_tokenizer *tok = read_prompts(&o, &m, &ps, &bos, &eos);
    if (o.n < 0) o.n = ps.count;
    bd_gen_prompt *prompts = malloc(sizeof *prompts * (size_t)ps.count);
    if (!prompts) bd_fatal("out of memory");
    for (int i = 0; i < ps.count; i++)
        prompts[i] = (bd_gen_prompt){ps.ids + ps.start[i], (int)(ps.start[i + 1] - ps.start[i])};

    bd_samples_run run = {.model_path = o.model_path,
                          .tok_id = tok ? bd_tokenizer_id(tok) : "",
                          .vocab = m.cfg.vocab,
                          .bos = bos,
                          .eos = eos,
                          .po = &o.po,
                          .n_prompts = ps.count,
                          .go = &o.go,
                          .n = o.n,
                          .threads = bd_num_threads(),
                          .shard = o.shard.s,
                          .shard_argc = o.shard.argc,
                          .shard_argv = o.shard.argv};
    bd_model_describe(&m, run.desc, sizeof run.desc);
    bd_prompts_hash(&ps, run.hash);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    bd_samples_pack_header(&sb, &run);
    msgpack_unpacked hdr;
    msgpack_unpacked_init(&hdr);
    if (msgpack_unpack_next(&hdr, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS) bd_fatal("internal: header");
    out_ctx oc = {.tok = tok, .tk = o.go.logits_top_k, .out_name = o.output ? o.output : "-"};
    bd_samples_limits lim = {m.cfg.vocab, m.cfg.max_seq, o.go.max_new, o.go.logits_top_k, prompts, ps.count};
    int64_t first = open_output(&o, &hdr.data, &lim, &oc);

    o.go.stop = &interrupted;
    int64_t count = bd_shard_count(&o.shard.s, o.n);  // this run's samples: all, or its shard's
    shard_batch_note(&o);
    snprintf(oc.label, sizeof oc.label, "generate");
    bd_progress_start(&oc.prog, oc.label, (uint64_t)(count - first), "samples");
    bd_gen_stats st;
    char gwhy[512];
    int rc = bd_generate(&m, prompts, ps.count, first, o.n, &o.go, emit, &oc, &st, gwhy, sizeof gwhy);
    bd_progress_finish(&oc.prog);
    if (rc < 0) bd_fatal("generation failed: %s", gwhy[0] ? gwhy : bd_strerror(rc));
    if (oc.w && bd_writer_close(oc.w) < 0) bd_fatal("\"%s\": write failed: %s", oc.out_name, strerror(errno));
    if (oc.txt && bd_outfile_commit(oc.txt) < 0) bd_fatal("\"%s\": write failed: %s", oc.out_name, strerror(errno));
    bool stopped = interrupted && first + st.samples < count;
    if (!stopped)
        bd_tool_note("%lld samples, %lld new tokens in %.1f s (%.0f tokens/s, %lld steps)", (long long)st.samples,
                     (long long)st.new_tokens, st.seconds, st.seconds > 0 ? st.new_tokens / st.seconds : 0.0,
                     (long long)st.steps);
    bd_text_buf_free(&oc.buf);
    msgpack_unpacked_destroy(&hdr);
    msgpack_sbuffer_destroy(&sb);
    free(prompts);
    bd_prompts_free(&ps);
    bd_tokenizer_free(tok);
    bd_model_free(&m);
    return stopped ? interrupted_exit(&o, oc.w != NULL, first + st.samples, count) : 0;
}
