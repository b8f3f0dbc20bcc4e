// bd-tokenize: text (plain or JSONL) to a bd.tokens stream, and back with --decode.
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_ids.h"
#include "bd_log.h"
#include "bd_outfile.h"
#include "bd_progress.h"
#include "bd_text.h"
#include "bd_tokenizer.h"
#include "bd_tool.h"

static const char help[] =
        "Usage: bd-tokenize --tokenizer T [OPTIONS] [FILE...]\n"
        "       bd-tokenize --tokenizer T --decode [OPTIONS] [STREAM...]\n"
        "Turn text (FILE, or standard input) into a bd.tokens stream: one record per document\n"
        "{\"ids\": u32 tensor, \"doc\": n}. Documents are separated by blank lines (single newlines\n"
        "stay inside the document) and start with BOS. --decode turns streams back into text.\n"
        "\n"
        "  -k, --tokenizer T   llama2.c tokenizer.bin, HF tokenizer.json, or a directory with one\n"
        "  -o, --output FILE   write to FILE instead of standard output\n"
        "      --field NAME    input is JSONL: one document per line, its text in field NAME\n"
        "      --whole         each input file is one document, newlines and all\n"
        "      --no-bos        do not put BOS before each document\n"
        "      --eos           put EOS after each document (--no-eos: do not, the default)\n"
        "  -d, --decode        read bd.tokens streams, write their text: each document followed\n"
        "                      by a newline (unless it ends with one), a blank line between them\n" BD_COMMON_HELP
        "\nExit status: 0 on success, 1 on bad input (nothing is written), 2 on usage errors.\n"
        "See bd-tokenize(1), bd-stream(5).\n";

enum { OPT_FIELD = BD_OPT_FIRST_TOOL, OPT_WHOLE, OPT_NO_BOS, OPT_EOS, OPT_NO_EOS };

typedef struct {
    const bd_tokenizer *tok;
    unsigned flags;
    bd_writer *w;
    bd_token_buf ids;
    int64_t docs;
    uint64_t tokens;
    bd_progress prog;
    uint64_t bytes_done;
} ctx;

static void emit(ctx *c, const char *name, int64_t line, const char *text, size_t len) {
    int rc = bd_tokenizer_encode(c->tok, text, len, c->flags, &c->ids);
    if (rc < 0) bd_fatal("\"%s\" line %lld: cannot encode: %s", name, (long long)line, bd_strerror(rc));
    msgpack_packer *pk = bd_writer_packer(c->w);
    msgpack_pack_map(pk, 2);
    int64_t shape[1] = {(int64_t)c->ids.n};
    bd_pack_str(pk, "ids");
    bd_pack_tensor(pk, "ids", BD_U32, 1, shape, c->ids.ids);  // ids are >= 0: same bits as u32
    bd_pack_kv_int(pk, "doc", c->docs);
    if ((rc = bd_writer_end_object(c->w)) < 0) bd_fatal("write failed: %s", strerror(errno));
    c->docs++;
    c->tokens += c->ids.n;
}

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n + 1) nc *= 2;
        char *p = realloc(*buf, nc);
        if (!p) bd_fatal("out of memory");
        *buf = p;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
}

static void read_failed(FILE *f, const char *name) {
    if (ferror(f)) bd_fatal("\"%s\": read error: %s", name, strerror(errno));
}

// Text cannot hold a NUL (nor JSONL a \u0000, which cJSON would cut the string at): refused,
// naming the line (counted from line, the first of s).
static void refuse_nul(const char *name, int64_t line, const char *s, size_t n, bool json) {
    long long at = bd_text_nul_line(s, n, json);
    if (at)
        bd_fatal("\"%s\" line %lld: NUL byte%s in text", name, (long long)line + at - 1,
                 json ? " or \\u0000 escape" : "");
}

static void tokenize_file(ctx *c, FILE *f, const char *name, const char *field, bool whole) {
    char *line = NULL, *doc = NULL;
    size_t line_cap = 0, doc_len = 0, doc_cap = 0;
    ssize_t n;
    int64_t lineno = 0, doc_line = 0;
    if (whole) {
        char chunk[1 << 16];
        size_t k;
        while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
            append(&doc, &doc_len, &doc_cap, chunk, k);
            c->bytes_done += k;
            bd_progress_update(&c->prog, c->bytes_done);
        }
        read_failed(f, name);
        refuse_nul(name, 1, doc, doc_len, false);
        emit(c, name, 1, doc ? doc : "", doc_len);
        free(doc);
        return;
    }
    while ((n = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        c->bytes_done += (uint64_t)n;
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n') len--;
        refuse_nul(name, lineno, line, len, field != NULL);
        if (field) {
            size_t k = 0;
            while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
            if (k == len) continue;  // blank lines between JSON records are allowed
            cJSON *o = cJSON_ParseWithLength(line, len);
            if (!o || !cJSON_IsObject(o)) {
                const char *at = cJSON_GetErrorPtr();
                long col = at && at >= line && at <= line + len ? (long)(at - line) + 1 : 1;
                bd_fatal("\"%s\" line %lld: invalid JSON%s (column %ld)", name, (long long)lineno,
                         o ? ": not an object" : "", col);
            }
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
            if (!v) bd_fatal("\"%s\" line %lld: field \"%s\" is missing", name, (long long)lineno, field);
            if (!cJSON_IsString(v))
                bd_fatal("\"%s\" line %lld: field \"%s\" is not a string", name, (long long)lineno, field);
            emit(c, name, lineno, v->valuestring, strlen(v->valuestring));
            cJSON_Delete(o);
        } else if (len == 0) {
            if (doc_len > 0) emit(c, name, doc_line, doc, doc_len);
            doc_len = 0;
        } else {
            if (doc_len > 0)
                append(&doc, &doc_len, &doc_cap, "\n", 1);
            else
                doc_line = lineno;
            append(&doc, &doc_len, &doc_cap, line, len);
        }
        bd_progress_update(&c->prog, c->bytes_done);
    }
    read_failed(f, name);
    if (doc_len > 0) emit(c, name, doc_line, doc, doc_len);
    free(doc);
    free(line);
}

// The hash part of a tokenizer id ("llama2c:tok512.bin:<hash>" -> "<hash>").
static const char *id_hash(const char *id) {
    const char *p = strrchr(id, ':');
    return p ? p + 1 : id;
}

static int header_bool(const msgpack_object *h, const char *key) {
    const msgpack_object *v = bd_obj_get(h, key);
    if (v && v->type == MSGPACK_OBJECT_BOOLEAN) return v->via.boolean;
    return -1;
}

static void decode_stream(const bd_tokenizer *tok, const char *path, FILE *out, bool *first_doc) {
    bd_tokens t;
    char why[600];
    if (bd_tokens_open(&t, path, "bd.tokens", bd_tokenizer_vocab_size(tok), false, why, sizeof why) < 0)
        bd_fatal("%s", why);
    t.vocab = "the tokenizer's";
    const msgpack_object *h = bd_reader_header(t.r);
    char id[256];
    const msgpack_object *hv = bd_obj_get(h, "tokenizer");
    if (hv && bd_obj_strcpy(hv, id, sizeof id) == BD_OK && strcmp(id_hash(id), id_hash(bd_tokenizer_id(tok))) != 0)
        bd_fatal("\"%s\" header: made with tokenizer %s, but --tokenizer is %s", bd_tokens_name(&t), id,
                 bd_tokenizer_id(tok));
    int add_bos = header_bool(h, "add_bos"), add_eos = header_bool(h, "add_eos");
    int32_t bos = bd_tokenizer_bos(tok), eos = bd_tokenizer_eos(tok);
    int rc;
    bd_text_buf txt = {0};
    while ((rc = bd_tokens_next(&t, why, sizeof why)) == BD_OK) {
        // Drop the BOS/EOS that bd-tokenize added (when the header does not say, any
        // leading BOS / trailing EOS).
        const int32_t *ids = t.doc.ids;
        size_t a = 0, b = t.doc.n;
        if (add_bos != 0 && b > a && ids[a] == bos) a++;
        if (add_eos != 0 && b > a && ids[b - 1] == eos) b--;
        txt.len = 0;
        if ((rc = bd_tokenizer_decode(tok, ids + a, b - a, 0, &txt)) < 0)
            bd_fatal("\"%s\" record %llu: cannot decode: %s", bd_tokens_name(&t),
                     (unsigned long long)bd_reader_record_index(t.r), bd_strerror(rc));
        if (!*first_doc) fputc('\n', out);
        *first_doc = false;
        fwrite(txt.data ? txt.data : "", 1, txt.len, out);
        if (txt.len == 0 || txt.data[txt.len - 1] != '\n') fputc('\n', out);
    }
    if (rc != BD_EOF) bd_fatal("%s", why);
    bd_text_buf_free(&txt);
    bd_tokens_close(&t);
}

typedef struct {
    const char *tok_path, *output, *field;
    bool whole, add_bos, add_eos, decode;
    char **files;  // nfiles names, "-" for standard input
    int nfiles;
} tok_opts;

static void parse_options(int argc, char **argv, tok_opts *o) {
    static const struct option longopts[] = {{"tokenizer", required_argument, 0, 'k'},
                                             {"output", required_argument, 0, 'o'},
                                             {"field", required_argument, 0, OPT_FIELD},
                                             {"whole", no_argument, 0, OPT_WHOLE},
                                             {"no-bos", no_argument, 0, OPT_NO_BOS},
                                             {"eos", no_argument, 0, OPT_EOS},
                                             {"no-eos", no_argument, 0, OPT_NO_EOS},
                                             {"decode", no_argument, 0, 'd'},
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    *o = (tok_opts){.output = "-", .add_bos = true};
    int opt;
    while ((opt = getopt_long(argc, argv, "k:o:d" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'k': o->tok_path = optarg; break;
        case 'o': o->output = optarg; break;
        case OPT_FIELD: o->field = optarg; break;
        case OPT_WHOLE: o->whole = true; break;
        case OPT_NO_BOS: o->add_bos = false; break;
        case OPT_EOS: o->add_eos = true; break;
        case OPT_NO_EOS: o->add_eos = false; break;
        case 'd': o->decode = true; break;
        default: bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    if (!o->tok_path) bd_usage_error("--tokenizer is required");
    if (o->field && o->whole) bd_usage_error("--field and --whole cannot be combined");
    if (o->field && !*o->field) bd_usage_error("--field: empty field name");
    if (o->decode && (o->field || o->whole)) bd_usage_error("--decode cannot be combined with --field or --whole");
    static char *std_in[] = {"-"};
    o->nfiles = optind < argc ? argc - optind : 1;
    o->files = optind < argc ? argv + optind : std_in;
    if (o->decode)
        bd_tool_writes("-o", o->output);
    else
        bd_tool_writes_stream("-o", o->output);
    bd_tool_reads_tokenizer(o->tok_path, NULL);
    for (int i = 0; i < o->nfiles; i++) bd_tool_reads(o->decode ? "STREAM" : "FILE", o->files[i]);
    bd_tool_check_files();
}

// Opens every input first, so that an unreadable file fails before any output exists; *total
// gets the bytes of the regular files (for the progress).
static FILE **open_inputs(const tok_opts *o, uint64_t *total) {
    FILE **in = calloc((size_t)o->nfiles, sizeof *in);
    if (!in) bd_fatal("out of memory");
    *total = 0;
    for (int i = 0; i < o->nfiles; i++) {
        const char *name = o->files[i];
        in[i] = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
        struct stat st;
        if (!in[i] || fstat(fileno(in[i]), &st) != 0) bd_fatal("\"%s\": cannot open: %s", name, strerror(errno));
        if (S_ISDIR(st.st_mode)) bd_fatal("\"%s\": is a directory", name);
        if (S_ISREG(st.st_mode)) *total += (uint64_t)st.st_size;
    }
    return in;
}

static bd_writer *open_stream(const tok_opts *o, const bd_tokenizer *tok) {
    bd_writer *w = bd_tool_open_writer(o->output);
    bd_producer prod = bd_tool_producer();
    if (bd_writer_begin_header(w, "bd.tokens", &prod, 6) < 0)
        bd_fatal("\"%s\": write failed: %s", o->output, strerror(errno));
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_kv_str(pk, "tokenizer", bd_tokenizer_id(tok));
    bd_pack_kv_int(pk, "vocab_size", bd_tokenizer_vocab_size(tok));
    bd_pack_kv_int(pk, "bos", bd_tokenizer_bos(tok));
    bd_pack_kv_int(pk, "eos", bd_tokenizer_eos(tok));
    bd_pack_str(pk, "add_bos");
    o->add_bos ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    bd_pack_str(pk, "add_eos");
    o->add_eos ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    if (bd_writer_end_object(w) < 0) bd_fatal("\"%s\": write failed: %s", o->output, strerror(errno));
    return w;
}

int main(int argc, char **argv) {
    bd_tool_init("bd-tokenize", help, argc, argv);
    tok_opts o;
    parse_options(argc, argv, &o);
    bd_tokenizer *tok;
    char why[600];
    if (bd_tokenizer_load(o.tok_path, &tok, why, sizeof why) < 0) bd_fatal("--tokenizer: %s", why);

    if (o.decode) {
        bd_outfile *out = bd_outfile_open(o.output, "w");
        if (!out) bd_fatal("\"%s\": cannot create: %s", o.output, strerror(errno));
        bool first = true;
        for (int i = 0; i < o.nfiles; i++) decode_stream(tok, o.files[i], bd_outfile_fp(out), &first);
        if (bd_outfile_commit(out) != BD_OK) bd_fatal("\"%s\": write failed: %s", o.output, strerror(errno));
        bd_tokenizer_free(tok);
        return 0;
    }

    if (o.add_bos && bd_tokenizer_bos(tok) < 0) bd_fatal("--tokenizer: %s has no BOS token; use --no-bos", o.tok_path);
    if (o.add_eos && bd_tokenizer_eos(tok) < 0) bd_fatal("--tokenizer: %s has no EOS token", o.tok_path);
    uint64_t total;
    FILE **in = open_inputs(&o, &total);
    ctx c = {.tok = tok, .flags = (o.add_bos ? BD_TOK_BOS : 0u) | (o.add_eos ? BD_TOK_EOS : 0u)};
    c.w = open_stream(&o, tok);
    double t0 = bd_now();
    bd_progress_start(&c.prog, "tokenize", total, "bytes");
    for (int i = 0; i < o.nfiles; i++) {
        tokenize_file(&c, in[i], o.files[i], o.field, o.whole);
        if (in[i] != stdin) fclose(in[i]);
    }
    free(in);  // before the writes that may fail and exit
    bd_progress_finish(&c.prog);
    if (bd_writer_close(c.w) < 0) bd_fatal("\"%s\": write failed: %s", o.output, strerror(errno));
    double dt = bd_now() - t0;
    bd_tool_note("%lld documents, %llu tokens from %llu bytes in %.2f s (%.2f MB/s)", (long long)c.docs,
                 (unsigned long long)c.tokens, (unsigned long long)c.bytes_done, dt,
                 dt > 0 ? (double)c.bytes_done / dt / 1e6 : 0.0);
    bd_token_buf_free(&c.ids);
    bd_tokenizer_free(tok);
    return 0;
}
