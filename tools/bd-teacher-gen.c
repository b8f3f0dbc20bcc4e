// bd-teacher-gen: a model generates completions of prompts (self-distillation data) into a
// bd.samples stream, batched through the KV cache (the loop lives in bd_generate.c);
// interrupting it leaves a valid stream that --resume continues.
#include <cJSON.h>
#include <errno.h>
#include <libgen.h>
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
#include "bd_threads.h"
#include "bd_tool.h"

static const char help[] =
    "Usage: bd-teacher-gen --model M [--prompts FILE] [-n N] [OPTIONS] [-o samples.bdz]\n"
    "The model completes prompts: sample i continues prompt i mod P (P prompts read), or BOS\n"
    "when no prompts are given, until EOS (or BOS), --max-new tokens or the model's context.\n"
    "Writes a bd.samples stream {index, prompt, completion, finished} (see bd-stream(5)).\n"
    "\n"
    "  -m, --model M          llama2.c checkpoint, Hugging Face directory, or bd.model stream\n"
    "  -k, --tokenizer T      tokenizer (default: the one next to the model)\n"
    "  -p, --prompts FILE     prompts: a bd.tokens stream (recognized by content), JSONL with\n"
    "                         --field, or plain text, one prompt per line (blank lines skipped)\n"
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
    "      --text             write readable text instead of a stream\n"
    "      --resume           continue an interrupted --output FILE up to N samples\n"
    BD_COMMON_HELP
    "\nThe same --seed gives the same samples whatever --batch and --threads are.\n"
    "Exit status: 0 on success, 1 on invalid input, 2 on usage errors, 130 when interrupted\n"
    "(SIGINT/SIGTERM: the finished samples are written as a valid stream).\n"
    "See bd-teacher-gen(1), bd-stream(5).\n";

enum {
    OPT_FIELD = BD_OPT_FIRST_TOOL, OPT_TEMPLATE, OPT_PROMPT_LEN, OPT_TEMPERATURE, OPT_TOP_K, OPT_TOP_P, OPT_LOGITS,
    OPT_TEXT, OPT_RESUME, OPT_UNPADDED,
};

static const char alpaca_input[] =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n{}\n\n### Input:\n{input}\n\n"
    "### Response:\n";
static const char alpaca_plain[] =
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{}\n\n### Response:\n";

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

// ---- prompts ----

typedef struct {
    int32_t *ids;       // all prompts back to back
    size_t n_ids, cap_ids;
    size_t *start;      // (count + 1) offsets into ids
    int count, cap;
    int truncated;      // prompts cut to fit the context
} prompt_set;

static void prompt_add(prompt_set *ps, const int32_t *ids, size_t n) {
    if (ps->n_ids + n > ps->cap_ids) {
        size_t cap = ps->cap_ids ? ps->cap_ids : 4096;
        while (cap < ps->n_ids + n) cap *= 2;
        if (!(ps->ids = realloc(ps->ids, cap * sizeof *ps->ids))) bd_fatal("out of memory");
        ps->cap_ids = cap;
    }
    if (ps->count + 2 > ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 256;
        if (!(ps->start = realloc(ps->start, (size_t)ps->cap * sizeof *ps->start))) bd_fatal("out of memory");
    }
    if (ps->count == 0) ps->start[0] = 0;
    memcpy(ps->ids + ps->n_ids, ids, n * sizeof *ids);
    ps->n_ids += n;
    ps->start[++ps->count] = ps->n_ids;
}

// A prompt that leaves no room for a new token keeps its last max_seq/2 tokens (after the
// BOS it began with, if any), so that half the context remains for the completion.
static void prompt_fit_add(prompt_set *ps, const int32_t *ids, size_t n, int max_seq, int32_t bos) {
    if (n + 1 <= (size_t)max_seq) {
        prompt_add(ps, ids, n);
        return;
    }
    size_t keep = (size_t)max_seq / 2;
    int32_t *tmp = malloc(keep * sizeof *tmp);
    if (!tmp) bd_fatal("out of memory");
    size_t k = 0;
    if (bos >= 0 && ids[0] == bos) tmp[k++] = bos;
    memcpy(tmp + k, ids + n - (keep - k), (keep - k) * sizeof *tmp);
    prompt_add(ps, tmp, keep);
    free(tmp);
    ps->truncated++;
}

typedef struct {
    const char *kind;   // "bos", "text", "jsonl", "tokens"
    const char *path;
    const char *field;
    const char *template_;  // as given ("" none)
    int prompt_len;
} prompt_opts;

static void grow_text(bd_text_buf *b, size_t extra) {
    if (b->len + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + extra + 1) cap *= 2;
        if (!(b->data = realloc(b->data, cap))) bd_fatal("out of memory");
        b->cap = cap;
    }
}
static void put_text(bd_text_buf *b, const char *s, size_t n) {
    grow_text(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

// Fills out with template t: {} is text, {NAME} the string field NAME of json (NULL for
// text prompts), \n \t \\ escapes (custom templates only). Errors name where.
static void apply_template(const char *t, bool escapes, const char *text, const cJSON *json, const char *where,
                           bd_text_buf *out) {
    out->len = 0;
    for (const char *p = t; *p;) {
        if (escapes && p[0] == '\\' && p[1]) {
            char c = p[1] == 'n' ? '\n' : p[1] == 't' ? '\t' : p[1];
            put_text(out, &c, 1);
            p += 2;
        } else if (p[0] == '{') {
            const char *e = strchr(p, '}');
            if (!e) bd_usage_error("--template: \"{\" without \"}\"");
            if (e == p + 1) {
                put_text(out, text, strlen(text));
            } else {
                char name[128];
                if ((size_t)(e - p - 1) >= sizeof name) bd_usage_error("--template: field name too long");
                memcpy(name, p + 1, (size_t)(e - p - 1));
                name[e - p - 1] = 0;
                if (!json) bd_usage_error("--template: {%s} needs JSONL prompts (--field)", name);
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(json, name);
                if (!v) bd_fatal("%s: field \"%s\" (used by --template) is missing", where, name);
                if (!cJSON_IsString(v)) bd_fatal("%s: field \"%s\" is not a string", where, name);
                put_text(out, v->valuestring, strlen(v->valuestring));
            }
            p = e + 1;
        } else {
            put_text(out, p, 1);
            p++;
        }
    }
}

// One text prompt (a line, or a JSONL field) through the template and the tokenizer.
static void add_text_prompt(prompt_set *ps, const prompt_opts *po, const bd_tokenizer *tok, const char *text,
                            const cJSON *json, const char *where, int max_seq, bd_text_buf *tb, bd_token_buf *ids) {
    const char *t = po->template_;
    bool escapes = true;
    if (!strcmp(t, "alpaca")) {
        const cJSON *in = json ? cJSON_GetObjectItemCaseSensitive(json, "input") : NULL;
        t = in && cJSON_IsString(in) && in->valuestring[0] ? alpaca_input : alpaca_plain;
        escapes = false;
    }
    const char *s = text;
    size_t len = strlen(text);
    if (*t) {
        apply_template(t, escapes, text, json, where, tb);
        s = tb->data ? tb->data : "", len = tb->len;
    }
    int32_t bos = bd_tokenizer_bos(tok);
    int rc = bd_tokenizer_encode(tok, s, len, bos >= 0 ? BD_TOK_BOS : 0, ids);
    if (rc < 0) bd_fatal("%s: cannot encode: %s", where, bd_strerror(rc));
    if (ids->n == 0) bd_fatal("%s: the prompt is empty (and the tokenizer has no BOS)", where);
    prompt_fit_add(ps, ids->ids, ids->n, max_seq, bos);
}

static void read_text_prompts(prompt_set *ps, const prompt_opts *po, const bd_tokenizer *tok, int64_t max_n,
                              int max_seq) {
    FILE *f = fopen(po->path, "rb");
    if (!f) bd_fatal("\"%s\": cannot open: %s", po->path, strerror(errno));
    char *line = NULL, where[4200];
    size_t cap = 0;
    ssize_t n;
    long long lineno = 0;
    bd_text_buf tb = {0};
    bd_token_buf ids = {0};
    while ((max_n < 0 || ps->count < max_n) && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        line[len] = 0;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == len) continue;  // blank line
        snprintf(where, sizeof where, "\"%s\" line %lld", po->path, lineno);
        if (!po->field) {
            add_text_prompt(ps, po, tok, line, NULL, where, max_seq, &tb, &ids);
            continue;
        }
        cJSON *o = cJSON_ParseWithLength(line, len);
        if (!o || !cJSON_IsObject(o)) bd_fatal("%s: invalid JSON%s", where, o ? ": not an object" : "");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, po->field);
        if (!v) bd_fatal("%s: field \"%s\" is missing", where, po->field);
        if (!cJSON_IsString(v)) bd_fatal("%s: field \"%s\" is not a string", where, po->field);
        add_text_prompt(ps, po, tok, v->valuestring, o, where, max_seq, &tb, &ids);
        cJSON_Delete(o);
    }
    if (ferror(f)) bd_fatal("\"%s\": read error: %s", po->path, strerror(errno));
    fclose(f);
    free(line);
    bd_text_buf_free(&tb);
    bd_token_buf_free(&ids);
}

static void read_token_prompts(prompt_set *ps, const prompt_opts *po, int V, int64_t max_n, int max_seq, int32_t bos) {
    bd_reader *r = bd_tool_open_reader(po->path, "bd.tokens");
    int64_t hv;
    if (bd_obj_int(bd_obj_get(bd_reader_header(r), "vocab_size"), &hv) == BD_OK && hv > V)
        bd_fatal("\"%s\" header: tokens from a vocabulary of %lld, the model has %d", bd_reader_name(r), (long long)hv, V);
    const msgpack_object *rec;
    int rc = BD_OK;
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)po->prompt_len);
    if (!buf) bd_fatal("out of memory");
    while ((max_n < 0 || ps->count < max_n) && (rc = bd_reader_next(r, &rec)) == BD_OK) {
        unsigned long long ri = (unsigned long long)bd_reader_record_index(r);
        bd_tensor_view t;
        char why[300];
        if (bd_obj_tensor(bd_obj_get(rec, "ids"), &t, why, sizeof why) < 0)
            bd_fatal("\"%s\" record %llu: field \"ids\": %s", bd_reader_name(r), ri, why);
        if ((t.dtype != BD_U32 && t.dtype != BD_I32) || t.ndim != 1)
            bd_fatal("\"%s\" record %llu: field \"ids\" must be a 1-D u32 tensor", bd_reader_name(r), ri);
        size_t n = (size_t)t.numel < (size_t)po->prompt_len ? (size_t)t.numel : (size_t)po->prompt_len;
        if (n == 0) continue;  // empty document
        memcpy(buf, t.data, n * sizeof *buf);  // little-endian hosts: the stored bytes are the ints
        for (size_t i = 0; i < n; i++)
            if (buf[i] < 0 || buf[i] >= V)
                bd_fatal("\"%s\" record %llu: id %u at position %zu is outside the model's vocabulary of %d",
                         bd_reader_name(r), ri, (unsigned)buf[i], i, V);
        prompt_fit_add(ps, buf, n, max_seq, bos);
    }
    if (rc != BD_OK && rc != BD_EOF) bd_tool_reader_fatal(r);
    free(buf);
    bd_reader_close(r);
}

static uint64_t fnv_word(uint64_t h, uint32_t w) {
    for (int b = 0; b < 4; b++) h = (h ^ ((w >> (8 * b)) & 0xff)) * 0x100000001b3ull;
    return h;
}

// FNV-1a 64 over every prompt's length and ids: identifies the prompt set for --resume.
static void prompt_hash(const prompt_set *ps, char out[17]) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < ps->count; i++) {
        h = fnv_word(h, (uint32_t)(ps->start[i + 1] - ps->start[i]));
        for (size_t j = ps->start[i]; j < ps->start[i + 1]; j++) h = fnv_word(h, (uint32_t)ps->ids[j]);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

// The tokenizer next to the model, if there is one (it only names ids in the header).
static bd_tokenizer *try_tokenizer(const char *model_path) {
    char dir[4096], tmp[4096], why[512];
    struct stat st;
    snprintf(dir, sizeof dir, "%s", model_path);
    if (stat(model_path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(tmp, sizeof tmp, "%s", model_path);
        snprintf(dir, sizeof dir, "%s", dirname(tmp));
    }
    bd_tokenizer *t = NULL;
    if (bd_tokenizer_load(dir, &t, why, sizeof why) < 0) {
        bd_log(BD_LOG_INFO, "no tokenizer next to the model (%s): ids only", why);
        return NULL;
    }
    return t;
}

static bool is_zstd(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) bd_fatal("\"%s\": cannot open: %s", path, strerror(errno));
    unsigned char m[4] = {0};
    size_t k = fread(m, 1, 4, f);
    fclose(f);
    return k == 4 && m[0] == 0x28 && m[1] == 0xB5 && m[2] == 0x2F && m[3] == 0xFD;
}

// ---- header ----

typedef struct {
    const char *model_path;
    char desc[256];
    const char *tok_id;
    int vocab, bos, eos;
    prompt_opts po;
    int n_prompts;
    char hash[17];
    bd_gen_opts go;
    int64_t n;
} run_info;

// The schema fields of the header, packed into sb as one map.
static void pack_header_fields(msgpack_sbuffer *sb, const run_info *ri) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 14);
    bd_pack_str(&pk, "teacher");
    msgpack_pack_map(&pk, 2);
    bd_pack_kv_str(&pk, "path", ri->model_path);
    bd_pack_kv_str(&pk, "description", ri->desc);
    bd_pack_kv_str(&pk, "tokenizer", ri->tok_id);
    bd_pack_kv_int(&pk, "vocab_size", ri->vocab);
    bd_pack_kv_int(&pk, "bos", ri->bos);
    bd_pack_kv_int(&pk, "eos", ri->eos);
    bd_pack_str(&pk, "prompt_source");
    msgpack_pack_map(&pk, 6);
    bd_pack_kv_str(&pk, "kind", ri->po.kind);
    bd_pack_kv_str(&pk, "path", ri->po.path ? ri->po.path : "");
    bd_pack_kv_str(&pk, "field", ri->po.field ? ri->po.field : "");
    bd_pack_kv_int(&pk, "prompt_len", !strcmp(ri->po.kind, "tokens") ? ri->po.prompt_len : 0);
    bd_pack_kv_int(&pk, "prompts", ri->n_prompts);
    bd_pack_kv_str(&pk, "hash", ri->hash);
    bd_pack_kv_str(&pk, "template", ri->po.template_);
    bd_pack_str(&pk, "sampling");
    msgpack_pack_map(&pk, 4);
    bd_pack_kv_double(&pk, "temperature", ri->go.sampling.temperature);
    bd_pack_kv_int(&pk, "top_k", ri->go.sampling.top_k);
    bd_pack_kv_double(&pk, "top_p", ri->go.sampling.top_p);
    bd_pack_kv_int(&pk, "max_new", ri->go.max_new);
    bd_pack_kv_int(&pk, "seed", (int64_t)ri->go.seed);
    bd_pack_str(&pk, "stop_ids");
    msgpack_pack_array(&pk, (size_t)ri->go.n_stop);
    for (int i = 0; i < ri->go.n_stop; i++) msgpack_pack_int32(&pk, ri->go.stop_ids[i]);
    bd_pack_kv_int(&pk, "n", ri->n);
    bd_pack_kv_int(&pk, "logits_top_k", ri->go.logits_top_k);
    // Not part of the result, but bit-exact resumption needs the same batch shape.
    bd_pack_kv_int(&pk, "batch", ri->go.batch);
    bd_pack_kv_int(&pk, "threads", bd_num_threads());
}

// --resume: the fields that must match (paths and n may differ).
static void check_resume_header(const bd_reader *r, const msgpack_object *mine) {
    const msgpack_object *old = bd_reader_header(r);
    static const char *keys[] = {"tokenizer", "vocab_size", "bos", "eos", "template", "sampling", "seed",
                                 "stop_ids", "logits_top_k"};
    static const char *src_keys[] = {"kind", "field", "prompt_len", "prompts", "hash"};
    const char *what = NULL;
    for (size_t i = 0; !what && i < sizeof keys / sizeof *keys; i++) {
        const msgpack_object *a = bd_obj_get(old, keys[i]), *b = bd_obj_get(mine, keys[i]);
        if (!a || !msgpack_object_equal(*a, *b)) what = keys[i];
    }
    const msgpack_object *ta = bd_obj_get(bd_obj_get(old, "teacher"), "description");
    if (!what && (!ta || !msgpack_object_equal(*ta, *bd_obj_get(bd_obj_get(mine, "teacher"), "description"))))
        what = "teacher";
    for (size_t i = 0; !what && i < sizeof src_keys / sizeof *src_keys; i++) {
        const msgpack_object *a = bd_obj_get(bd_obj_get(old, "prompt_source"), src_keys[i]);
        if (!a || !msgpack_object_equal(*a, *bd_obj_get(bd_obj_get(mine, "prompt_source"), src_keys[i])))
            what = "prompt_source";
    }
    for (int i = 0; !what && i < 2; i++) {
        const char *k = i ? "threads" : "batch";
        const msgpack_object *a = bd_obj_get(old, k);
        if (a && !msgpack_object_equal(*a, *bd_obj_get(mine, k)))
            bd_log(BD_LOG_WARN, "\"%s\" was started with another %s; in rare cases a sample may then differ from "
                   "an uninterrupted run (see bd-teacher-gen(1))", bd_reader_name(r), i ? "--threads" : "--batch");
    }
    if (what)
        bd_fatal("\"%s\" header: its \"%s\" differs from this run's; --resume needs the same model, tokenizer, "
                 "prompts and sampling settings",
                 bd_reader_name(r), what);
}

// ---- output ----

typedef struct {
    bd_writer *w;             // stream output, or
    bd_outfile *txt;          // --text output
    const bd_tokenizer *tok;
    const char *out_name;
    int tk;
    bd_progress prog;
    char label[64];
    int64_t first;
    bd_text_buf buf;
} out_ctx;

static void pack_ids(msgpack_packer *pk, const char *name, const int32_t *ids, int n) {
    int64_t shape[1] = {n};
    bd_pack_str(pk, name);
    bd_pack_tensor(pk, name, BD_U32, 1, shape, ids);  // ids are >= 0: same bits as u32
}

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
        msgpack_packer *pk = bd_writer_packer(c->w);
        msgpack_pack_map(pk, c->tk ? 6 : 4);
        bd_pack_kv_int(pk, "index", s->index);
        pack_ids(pk, "prompt", s->prompt, s->prompt_len);
        pack_ids(pk, "completion", s->completion, s->n_new);
        bd_pack_kv_str(pk, "finished", bd_gen_end_name(s->end));
        if (c->tk) {
            int64_t shape[2] = {s->n_new, c->tk};
            bd_pack_str(pk, "top_ids");
            bd_pack_tensor(pk, "top_ids", BD_U32, 2, shape, s->top_ids);
            bd_pack_str(pk, "top_logprobs");
            bd_pack_tensor(pk, "top_logprobs", BD_F32, 2, shape, s->top_logprobs);
        }
        rc = bd_writer_end_object(c->w);
    }
    if (rc < 0) bd_log(BD_LOG_ERROR, "\"%s\": write failed: %s", c->out_name, strerror(errno));
    snprintf(c->label, sizeof c->label, "generate %.0f tok/s", st->seconds > 0 ? st->new_tokens / st->seconds : 0.0);
    bd_progress_update(&c->prog, (uint64_t)st->samples);
    return rc;
}

// --resume: copies the records of the existing output into w; returns how many.
static int64_t copy_records(bd_reader *r, bd_writer *w, int64_t n) {
    const msgpack_object *rec;
    int rc;
    int64_t k = 0;
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        int64_t idx;
        if (bd_obj_int(bd_obj_get(rec, "index"), &idx) < 0 || idx != k)
            bd_fatal("\"%s\" record %lld: field \"index\" should be %lld", bd_reader_name(r), (long long)k + 1,
                     (long long)k);
        if (k >= n) bd_fatal("\"%s\" already holds more than %lld samples (-n)", bd_reader_name(r), (long long)n);
        msgpack_pack_object(bd_writer_packer(w), *rec);
        if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed: %s", bd_reader_name(r), strerror(errno));
        k++;
    }
    if (rc != BD_EOF) bd_fatal("\"%s\" %s; cannot resume from it", bd_reader_name(r), bd_reader_error(r));
    return k;
}

int main(int argc, char **argv) {
    bd_tool_init("bd-teacher-gen", help, argc, argv);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"tokenizer", required_argument, 0, 'k'},
        {"prompts", required_argument, 0, 'p'}, {"field", required_argument, 0, OPT_FIELD},
        {"template", required_argument, 0, OPT_TEMPLATE}, {"prompt-len", required_argument, 0, OPT_PROMPT_LEN},
        {"samples", required_argument, 0, 'n'}, {"max-new", required_argument, 0, 'K'},
        {"temperature", required_argument, 0, OPT_TEMPERATURE}, {"top-k", required_argument, 0, OPT_TOP_K},
        {"top-p", required_argument, 0, OPT_TOP_P}, {"batch", required_argument, 0, 'b'},
        {"logits", required_argument, 0, OPT_LOGITS}, {"output", required_argument, 0, 'o'},
        {"unpadded", no_argument, 0, OPT_UNPADDED},
        {"text", no_argument, 0, OPT_TEXT}, {"resume", no_argument, 0, OPT_RESUME},
        BD_COMMON_LONGOPTS, {0, 0, 0, 0}};
    const char *model_path = NULL, *tok_path = NULL, *output = NULL;
    prompt_opts po = {.kind = "bos", .template_ = "", .prompt_len = 32};
    int64_t n = -1;
    bd_gen_opts go = {.sampling = {0.7, 0, 1.0}, .max_new = 256, .batch = 16};
    bool text = false, resume = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:k:p:n:K:b:o:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_path = optarg; break;
        case 'k': tok_path = optarg; break;
        case 'p': po.path = optarg; break;
        case OPT_FIELD: po.field = optarg; break;
        case OPT_TEMPLATE: po.template_ = optarg; break;
        case OPT_PROMPT_LEN: po.prompt_len = (int)bd_arg_int("--prompt-len", optarg, 1, 1 << 20); break;
        case 'n': n = bd_arg_int("--samples", optarg, 1, INT64_MAX / 2); break;
        case 'K': go.max_new = (int)bd_arg_int("--max-new", optarg, 1, 1 << 20); break;
        case OPT_TEMPERATURE: go.sampling.temperature = bd_arg_double("--temperature", optarg, 0, 1e6); break;
        case OPT_TOP_K: go.sampling.top_k = (int)bd_arg_int("--top-k", optarg, 0, 1 << 30); break;
        case OPT_TOP_P:
            go.sampling.top_p = bd_arg_double("--top-p", optarg, 0, 1);
            if (go.sampling.top_p == 0) bd_usage_error("--top-p: 0 keeps no token; use a value in (0, 1]");
            break;
        case 'b': go.batch = (int)bd_arg_int("--batch", optarg, 1, 4096); break;
        case OPT_UNPADDED: go.unpadded = true; break;
        case OPT_LOGITS: go.logits_top_k = (int)bd_arg_int("--logits", optarg, 1, BD_GEN_MAX_TOPK); break;
        case 'o': output = optarg; break;
        case OPT_TEXT: text = true; break;
        case OPT_RESUME: resume = true; break;
        default: bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    if (!model_path) bd_usage_error("--model is required");
    if (optind < argc) bd_usage_error("unexpected argument \"%s\" (prompts go in --prompts FILE)", argv[optind]);
    if (resume && (!output || !strcmp(output, "-"))) bd_usage_error("--resume needs --output FILE");
    if (resume && text) bd_usage_error("--resume works on streams, not --text output");
    if (text && go.logits_top_k) bd_usage_error("--logits needs stream output, not --text");
    if (!po.path && (po.field || po.template_[0])) bd_usage_error("--field and --template need --prompts FILE");
    if (!po.path && n < 0) bd_usage_error("give -n N (the number of samples) when generating from BOS");
    go.seed = bd_tool_self.seed;

    bd_model m;
    bd_tool_load_model(model_path, &m);
    int V = m.cfg.vocab, max_seq = m.cfg.max_seq;
    if (max_seq < 2) bd_fatal("--model: context of %d tokens leaves no room to generate", max_seq);
    if (go.logits_top_k > V) bd_usage_error("--logits %d is more than the vocabulary (%d)", go.logits_top_k, V);

    // The tokenizer is needed for text prompts and --text; otherwise it only names ids.
    bool tokens_in = po.path && is_zstd(po.path);
    if (tokens_in && (po.field || po.template_[0])) bd_usage_error("--field and --template apply to text prompts, not bd.tokens");
    bd_tokenizer *tok = NULL;
    if (tok_path || text || (po.path && !tokens_in)) tok = bd_tool_load_tokenizer(tok_path, model_path);
    else tok = try_tokenizer(model_path);
    if (tok && bd_tokenizer_vocab_size(tok) > V)
        bd_fatal("--tokenizer has %d tokens, the model's vocabulary only %d", bd_tokenizer_vocab_size(tok), V);
    int32_t bos = tok ? bd_tokenizer_bos(tok) : m.cfg.bos, eos = tok ? bd_tokenizer_eos(tok) : m.cfg.eos;
    // EOS ends a sample, and so does BOS: llama2.c models start the next document with it.
    if (eos >= 0 && eos < V) go.stop_ids[go.n_stop++] = eos;
    if (bos >= 0 && bos < V && bos != eos) go.stop_ids[go.n_stop++] = bos;

    prompt_set ps = {0};
    if (!po.path) {
        if (bos < 0 || bos >= V) bd_fatal("no BOS id (tokenizer or model) to start from; give --prompts");
        prompt_add(&ps, &bos, 1);
    } else if (tokens_in) {
        po.kind = "tokens";
        read_token_prompts(&ps, &po, V, n, max_seq, bos);
    } else {
        po.kind = po.field ? "jsonl" : "text";
        read_text_prompts(&ps, &po, tok, n, max_seq);
    }
    if (ps.count == 0) bd_fatal("\"%s\": no prompts", po.path);
    if (ps.truncated)
        bd_log(BD_LOG_WARN, "%d prompt%s longer than the context (%d) cut to their last %d tokens", ps.truncated,
               ps.truncated > 1 ? "s" : "", max_seq, max_seq / 2);
    if (n < 0) n = ps.count;
    bd_gen_prompt *prompts = malloc(sizeof *prompts * (size_t)ps.count);
    if (!prompts) bd_fatal("out of memory");
    for (int i = 0; i < ps.count; i++)
        prompts[i] = (bd_gen_prompt){ps.ids + ps.start[i], (int)(ps.start[i + 1] - ps.start[i])};

    run_info ri = {.model_path = model_path, .tok_id = tok ? bd_tokenizer_id(tok) : "", .vocab = V, .bos = bos,
                   .eos = eos, .po = po, .n_prompts = ps.count, .go = go, .n = n};
    bd_model_describe(&m, ri.desc, sizeof ri.desc);
    prompt_hash(&ps, ri.hash);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_header_fields(&sb, &ri);
    msgpack_unpacked hdr;
    msgpack_unpacked_init(&hdr);
    if (msgpack_unpack_next(&hdr, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS) bd_fatal("internal: header");
    const msgpack_object *fields = &hdr.data;

    out_ctx oc = {.tok = tok, .tk = go.logits_top_k, .out_name = output ? output : "-"};
    bd_reader *old = NULL;
    FILE *probe;
    if (resume && (probe = fopen(output, "rb"))) {
        fclose(probe);
        int err;
        char msg[600];
        if (!(old = bd_reader_open(output, "bd.samples", &err, msg, sizeof msg)))
            bd_fatal("\"%s\" %s; cannot resume from it", output, msg);
        check_resume_header(old, fields);
    } else if (resume) {
        bd_log(BD_LOG_INFO, "\"%s\" does not exist yet: starting from sample 0", output);
    }
    if (text) {
        if (!(oc.txt = bd_outfile_open(output ? output : "-", "w")))
            bd_fatal("\"%s\": cannot create: %s", oc.out_name, strerror(errno));
    } else {
        oc.w = bd_tool_open_writer(output);
        bd_producer prod = bd_tool_producer();
        if (bd_writer_begin_header(oc.w, "bd.samples", &prod, fields->via.map.size) < 0)
            bd_fatal("\"%s\": write failed: %s", oc.out_name, strerror(errno));
        msgpack_packer *pk = bd_writer_packer(oc.w);
        for (uint32_t i = 0; i < fields->via.map.size; i++) {
            msgpack_pack_object(pk, fields->via.map.ptr[i].key);
            msgpack_pack_object(pk, fields->via.map.ptr[i].val);
        }
        if (bd_writer_end_object(oc.w) < 0) bd_fatal("\"%s\": write failed: %s", oc.out_name, strerror(errno));
    }
    int64_t first = 0;
    if (old) {
        first = copy_records(old, oc.w, n);
        bd_reader_close(old);
        bd_log(BD_LOG_INFO, "resuming at sample %lld of %lld", (long long)first, (long long)n);
    }

    go.stop = &interrupted;
    snprintf(oc.label, sizeof oc.label, "generate");
    bd_progress_start(&oc.prog, oc.label, (uint64_t)(n - first), "samples");
    bd_gen_stats st;
    char gwhy[512];
    int rc = bd_generate(&m, prompts, ps.count, first, n, &go, emit, &oc, &st, gwhy, sizeof gwhy);
    bd_progress_finish(&oc.prog);
    if (rc < 0) bd_fatal("generation failed: %s", gwhy[0] ? gwhy : bd_strerror(rc));
    int64_t done = first + st.samples;
    bd_log(BD_LOG_INFO, "%lld samples, %lld new tokens in %.1f s (%.0f tokens/s, %lld steps)", (long long)st.samples,
           (long long)st.new_tokens, st.seconds, st.seconds > 0 ? st.new_tokens / st.seconds : 0.0,
           (long long)st.steps);
    if (oc.w && bd_writer_close(oc.w) < 0) bd_fatal("\"%s\": write failed: %s", oc.out_name, strerror(errno));
    if (oc.txt && bd_outfile_commit(oc.txt) < 0) bd_fatal("\"%s\": write failed: %s", oc.out_name, strerror(errno));

    bd_text_buf_free(&oc.buf);
    msgpack_unpacked_destroy(&hdr);
    msgpack_sbuffer_destroy(&sb);
    free(prompts);
    free(ps.ids);
    free(ps.start);
    bd_tokenizer_free(tok);
    bd_model_free(&m);
    if (interrupted && done < n) {
        if (oc.w && output && strcmp(output, "-"))
            fprintf(stderr, "%s: interrupted: wrote %lld of %lld samples to \"%s\"; run the same command with "
                            "--resume to continue\n", bd_tool_self.name, (long long)done, (long long)n, output);
        else
            fprintf(stderr, "%s: interrupted: wrote %lld of %lld samples\n", bd_tool_self.name, (long long)done,
                    (long long)n);
        return 130;
    }
    return 0;
}
