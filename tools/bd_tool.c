#include "bd_packed.h"
#include "bd_tool.h"

#include <errno.h>
#include <libgen.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bd_kquant.h"
#include "bd_log.h"
#include "bd_qat_setup.h"
#include "bd_qmodel.h"
#include "bd_tokenizer.h"
#include "bd_outfile.h"
#include "bd_parse.h"
#include "bd_runfiles.h"
#include "bd_threads.h"

#ifndef BD_BUILD_FLAGS
#define BD_BUILD_FLAGS "unknown"
#endif

bd_tool bd_tool_self = {.name = "bd", .seed = 1234, .verbosity = BD_LOG_WARN};

static void on_signal(int sig) {
    bd_outfile_abort_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static bool error_reported;  // the run already failed with its one-line message

static void check_stdout(void) {
    // A full disk or closed pipe must not pass silently as success.
    if (fclose(stdout) != 0) {
        if (!error_reported)
            fprintf(stderr, "%s: error writing standard output: %s\n", bd_tool_self.name, strerror(errno));
        bd_outfile_abort_all();
        _exit(1);
    }
}

void bd_tool_init(const char *name, const char *help, int argc, char **argv) {
    bd_tool_self.name = name;
    bd_tool_self.help = help;
    bd_tool_self.argc = argc;
    bd_tool_self.argv = argv;
    bd_log_set_prefix(name);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    atexit(check_stdout);
    opterr = 0;  // getopt's own messages are replaced by bd_usage_error
}

noreturn void bd_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bd_tool_self.name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    bd_outfile_abort_all();
    error_reported = true;
    exit(1);
}

noreturn void bd_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bd_tool_self.name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", bd_tool_self.name);
    va_end(ap);
    bd_outfile_abort_all();
    exit(2);
}

void bd_tool_note(const char *fmt, ...) {
    if (bd_tool_self.verbosity < BD_LOG_WARN) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bd_tool_self.name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool bd_tool_model_info(const char *path, const bd_model *m, bd_model_info *info) {
    char why[600];
    if (m) {
        bd_model_info_of(m, info);
        return true;
    }
    return path && bd_model_peek(path, info, why, sizeof why) == BD_OK;
}

static uint64_t plan_headroom;  // what the last plan leaves of the memory available (0: unknown)

void bd_tool_memplan(const bd_memplan *p, uint64_t in_use) {
    uint64_t avail = bd_mem_available();
    if (avail) avail += in_use;
    uint64_t total = bd_memplan_total(p);
    plan_headroom = avail > total ? avail - total : 0;
    char table[4096];
    bd_memplan_format(p, avail, table, sizeof table);
    for (char *line = table, *nl; *line; line = nl + 1) {  // at --verbosity 2, a line each
        if (!(nl = strchr(line, '\n'))) break;
        *nl = 0;
        bd_log(BD_LOG_INFO, "%s", line);
    }
    char why[600];
    if (bd_memplan_check(p, avail, why, sizeof why) < 0) bd_fatal("not enough memory: %s", why);
}

int64_t bd_arg_int(const char *opt, const char *s, int64_t lo, int64_t hi) {
    int64_t v;
    int rc = bd_parse_int64(s, lo, hi, &v);
    if (rc == BD_ERR_VALUE) bd_usage_error("%s: \"%s\" is not an integer", opt, s);
    if (rc < 0) bd_usage_error("%s: %s is out of range [%lld, %lld]", opt, s, (long long)lo, (long long)hi);
    return v;
}

double bd_arg_double(const char *opt, const char *s, double lo, double hi) {
    double v;
    int rc = bd_parse_double(s, lo, hi, &v);
    if (rc == BD_ERR_VALUE) bd_usage_error("%s: \"%s\" is not a finite number", opt, s);
    if (rc < 0) bd_usage_error("%s: %s is out of range [%g, %g]", opt, s, lo, hi);
    return v;
}

int bd_tool_common_option(int opt, const char *arg) {
    switch (opt) {
    case 't':
    case BD_OPT_THREADS: bd_tool_self.threads = (int)bd_arg_int("--threads", arg, 0, 1024); return 1;
    case BD_OPT_SEED: bd_tool_self.seed = (uint64_t)bd_arg_int("--seed", arg, 0, INT64_MAX); return 1;
    case BD_OPT_VERBOSITY: bd_tool_self.verbosity = (int)bd_arg_int("--verbosity", arg, 0, 3); return 1;
    case 'q': bd_tool_self.verbosity = BD_LOG_ERROR; return 1;
    case 'h': fputs(bd_tool_self.help, stdout); exit(0);
    case BD_OPT_VERSION:  // kernels: the SIMD path this CPU runs (bd_pk_simd; BD_SIMD may lower it)
        printf("%s (bd) %s\nbuild: %s\nkernels: %s\n", bd_tool_self.name, BD_VERSION, BD_BUILD_FLAGS,
               bd_pk_simd_name(bd_pk_simd()));
        exit(0);
    case '?':
        if (optopt > ' ' && optopt < 127) bd_usage_error("unknown option, or option without its value: '-%c'", optopt);
        bd_usage_error("unknown option, or option without its value: '%s'", bd_tool_self.argv[optind - 1]);
    default: return 0;
    }
}

static struct { const char *old, *now; } deprecated[8];
static int n_deprecated;

void bd_tool_deprecated(const char *old, const char *now) {
    for (int i = 0; i < n_deprecated; i++)
        if (!strcmp(deprecated[i].old, old)) return;
    if (n_deprecated < 8) deprecated[n_deprecated].old = old, deprecated[n_deprecated++].now = now;
}

void bd_tool_options_done(void) {
    bd_log_set_level(bd_tool_self.verbosity);
    for (int i = 0; i < n_deprecated; i++)
        bd_log(BD_LOG_WARN, "%s is a deprecated spelling of %s (kept for this release only)", deprecated[i].old,
               deprecated[i].now);
    bd_set_num_threads(bd_tool_self.threads);
}

void bd_tool_expect_stream(const char *opt, const char *path, const char *hint) {
    struct stat st;
    if (!path || !strcmp(path, "-") || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return;
    FILE *f = fopen(path, "rb");
    if (!f) return;  // the reader names the error
    unsigned char b[64];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) return;
    bool text = n > 0;
    for (size_t i = 0; i < n; i++) text = text && (b[i] >= 0x20 || b[i] == '\n' || b[i] == '\t' || b[i] == '\r');
    if (text) bd_fatal("%s \"%s\" is text, not a bd stream: %s", opt, path, hint);
}

bd_reader *bd_tool_open_reader(const char *path, const char *schema) {
    int err;
    char msg[600];
    bd_reader *r = bd_reader_open(path, schema, &err, msg, sizeof msg);
    if (!r) bd_fatal("\"%s\" %s", path ? path : "-", msg);
    return r;
}

noreturn void bd_tool_reader_fatal(const bd_reader *r) { bd_fatal("\"%s\" %s", bd_reader_name(r), bd_reader_error(r)); }

bd_writer *bd_tool_open_writer(const char *path) {
    int err;
    bd_writer *w = bd_writer_open(path, 0, &err);
    if (!w) bd_fatal("\"%s\": cannot create: %s", path ? path : "-", strerror(errno));
    return w;
}

bd_producer bd_tool_producer(void) {
    return (bd_producer){.tool = bd_tool_self.name, .argc = bd_tool_self.argc, .argv = bd_tool_self.argv};
}

void bd_tool_shard_option(bd_tool_shard *o, char *arg) {
    char why[200];
    if (bd_shard_parse(arg, &o->s, why, sizeof why) < 0) bd_usage_error("--shard: %s", why);
    // Right after getopt_long returns, argv[optind - 1] holds the value: alone ("--shard"
    // "K/N", getopt's optarg is that very string) or after "--shard=" (optarg points into it).
    char **argv = bd_tool_self.argv;
    bool apart = optind >= 2 && argv[optind - 1] == arg;
    o->argc = apart ? 2 : 1;
    o->argv[0] = argv[optind - o->argc];
    o->argv[1] = apart ? arg : NULL;
}

static void load(const char *path, int mode, bd_model *m) {
    char why[600];
    if (!path) bd_usage_error("--model is required");
    double t0 = bd_now();
    if (bd_qat_load_model(path, mode, m, why, sizeof why) < 0) bd_fatal("--model: %s", why);
    bd_log(BD_LOG_INFO, "--model: loaded in %.2f s", bd_now() - t0);
}

void bd_tool_load_model_latent(const char *path, bd_model *m) { load(path, BD_LOAD_LATENT, m); }

void bd_tool_load_model(const char *path, bd_model *m) { load(path, BD_LOAD_RUN, m); }

void bd_tool_load_model_mapped(const char *path, bd_model *m) { load(path, BD_LOAD_MAPPED, m); }

void bd_tool_copy_mapped(bd_model *m) {
    uint64_t copied;
    double t0 = bd_now();
    // A quarter of the headroom: tools run side by side in a Make graph plan alone.
    if (bd_model_copy_mapped(m, plan_headroom / 4, &copied) < 0) return;  // out of memory: stays mapped
    if (copied)
        bd_log(BD_LOG_INFO, "--model: linears copied into memory (%.0f MB in 2 MB pages) in %.2f s", copied / 1e6,
               bd_now() - t0);
}

void bd_tool_load_model_latent_mapped(const char *path, bd_model *m) { load(path, BD_LOAD_LATENT | BD_LOAD_MAPPED, m); }

// The directory a model's tokenizer would be in: the model's directory, or the one holding the
// model file; false for a model read from standard input.
bool bd_tool_model_dir(const char *model_path, char *dir, size_t size) {
    struct stat st;
    if (!model_path || !strcmp(model_path, "-")) return false;
    snprintf(dir, size, "%s", model_path);
    if (stat(model_path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", model_path);
        snprintf(dir, size, "%s", dirname(tmp));
    }
    return true;
}

// The hash that ends a tokenizer id (bd_tokenizer_id: "...:<16 hex>").
static const char *id_hash(const char *id) {
    size_t n = strlen(id);
    return n >= 16 ? id + n - 16 : id;
}

// The tokenizer a bd.model/bd.packed header remembers: loaded if the file is still there (NULL
// if not, *gone set), fatal if it has changed since.
static bd_tokenizer *remembered(const char *model_path, const bd_model *m, bool *gone) {
    char why[512];
    bd_tokenizer *t = NULL;
    *gone = false;
    if (!m || !m->tok_path[0]) return NULL;
    if (access(m->tok_path, R_OK) != 0) {
        *gone = true;
        return NULL;
    }
    if (bd_tokenizer_load(m->tok_path, &t, why, sizeof why) < 0)
        bd_fatal("the tokenizer \"%s\" that --model \"%s\" remembers: %s; give --tokenizer", m->tok_path,
                 model_path ? model_path : "-", why);
    if (strcmp(id_hash(bd_tokenizer_id(t)), id_hash(m->tok_id)) != 0)
        bd_fatal("the tokenizer \"%s\" that --model \"%s\" remembers has changed since (its id is %s, the model "
                 "recorded %s); give --tokenizer",
                 m->tok_path, model_path ? model_path : "-", bd_tokenizer_id(t), m->tok_id);
    bd_log(BD_LOG_INFO, "the tokenizer: \"%s\", remembered by the model", m->tok_path);
    return t;
}

bd_tokenizer *bd_tool_load_tokenizer(const char *path, const char *model_path, const bd_model *m) {
    char why[512], dir[4096];
    bd_tokenizer *t;
    if (path) {
        if (bd_tokenizer_load(path, &t, why, sizeof why) < 0) bd_fatal("--tokenizer: %s", why);
        return t;
    }
    if (!model_path) bd_usage_error("--tokenizer is required");
    bool gone;
    if ((t = remembered(model_path, m, &gone))) return t;
    if (!bd_tool_model_dir(model_path, dir, sizeof dir)) {
        if (gone) bd_fatal("the tokenizer \"%s\" that the model remembers is gone; give --tokenizer", m->tok_path);
        bd_fatal("the model on standard input remembers no tokenizer; give --tokenizer");
    }
    if (bd_tokenizer_load(dir, &t, why, sizeof why) < 0) {
        if (gone)
            bd_fatal("the tokenizer \"%s\" that --model \"%s\" remembers is gone, and none is next to it; give "
                     "--tokenizer",
                     m->tok_path, model_path);
        bd_fatal("no tokenizer found next to the model (%s); give --tokenizer", why);
    }
    if (m && m->tok_id[0] && strcmp(id_hash(bd_tokenizer_id(t)), id_hash(m->tok_id)) != 0)
        bd_fatal("the tokenizer next to --model \"%s\" (%s) is not the one the model remembers (%s, \"%s\"); give "
                 "--tokenizer",
                 model_path, bd_tokenizer_id(t), m->tok_id, m->tok_path);
    return t;
}

bd_tokenizer *bd_tool_try_tokenizer(const char *model_path, const bd_model *m) {
    char dir[4096], why[512];
    bool gone;
    bd_tokenizer *t = remembered(model_path, m, &gone);
    if (t) return t;
    if (!bd_tool_model_dir(model_path, dir, sizeof dir)) return NULL;
    if (bd_tokenizer_load(dir, &t, why, sizeof why) < 0) {
        bd_log(BD_LOG_INFO, "no tokenizer next to the model (%s): ids only", why);
        return NULL;
    }
    if (m && m->tok_id[0] && strcmp(id_hash(bd_tokenizer_id(t)), id_hash(m->tok_id)) != 0) {
        bd_tokenizer_free(t);
        return NULL;
    }
    return t;
}

void bd_tool_remember_tokenizer(bd_model *m, const char *tok_path, const char *model_path) {
    char dir[4096], file[4096], why[512];
    bd_tokenizer *t = NULL;
    const char *p = tok_path;
    if (!p && m->tok_path[0]) return;  // it keeps the one it remembers
    if (!p) {
        if (!bd_tool_model_dir(model_path, dir, sizeof dir)) return;
        p = dir;
    }
    if (bd_tokenizer_file(p, file, sizeof file, why, sizeof why) < 0 ||
        bd_tokenizer_load(file, &t, why, sizeof why) < 0) {
        if (tok_path) bd_fatal("--tokenizer: %s", why);
        return;  // none next to the model: nothing to remember
    }
    char *abs = realpath(file, NULL);
    const char *keep = abs ? abs : file, *id = bd_tokenizer_id(t);
    if (strlen(keep) < sizeof m->tok_path && strlen(id) < sizeof m->tok_id) {  // else too long to keep
        memcpy(m->tok_path, keep, strlen(keep) + 1);
        memcpy(m->tok_id, id, strlen(id) + 1);
    }
    free(abs);
    bd_tokenizer_free(t);
}

static bd_runfiles run_files;

static void add_file(bd_rf_role role, const char *opt, const char *path) {
    if (bd_runfiles_add(&run_files, role, opt, path) < 0) bd_fatal("out of memory");
}

void bd_tool_reads(const char *opt, const char *path) {
    static const char *stdin_opt;  // the input that reads standard input
    if (path && !strcmp(path, "-")) {
        if (stdin_opt && strcmp(stdin_opt, opt))
            bd_usage_error("%s and %s both read standard input (\"-\"); give one of them as a file", stdin_opt, opt);
        stdin_opt = opt;
    }
    add_file(BD_RF_INPUT, opt, path);
}
void bd_tool_writes(const char *opt, const char *path) { add_file(BD_RF_OUTPUT, opt, path); }
void bd_tool_writes_stream(const char *opt, const char *path) {
    if ((!path || !strcmp(path, "-")) && isatty(STDOUT_FILENO))
        bd_usage_error("refusing to write a binary bd stream to the terminal: give %s FILE, or pipe it (| bd-cat "
                       "shows it as JSON)",
                       opt);
    bd_tool_writes(opt, path);
}
void bd_tool_writes_family(const char *opt, const char *prefix) { add_file(BD_RF_FAMILY, opt, prefix); }

void bd_tool_reads_tokenizer(const char *path, const char *model_path) {
    char dir[4096], file[4096], why[512];
    const char *p = path;
    if (!p && bd_tool_model_dir(model_path, dir, sizeof dir)) p = dir;
    if (p && bd_tokenizer_file(p, file, sizeof file, why, sizeof why) == BD_OK)
        bd_tool_reads(path ? "--tokenizer" : "the tokenizer next to --model", file);
}

void bd_tool_check_files(void) {
    char why[9000];
    if (bd_runfiles_check(&run_files, why, sizeof why) < 0) bd_fatal("%s", why);
    for (size_t i = 0; i < run_files.n; i++) {
        const bd_runfile *f = &run_files.f[i];
        if (f->role == BD_RF_OUTPUT && bd_outfile_prepare(f->path) > 0)
            bd_fatal("%s \"%s\": busy: another live process is writing it", f->opt, f->path);
    }
    bd_runfiles_free(&run_files);
}

bd_quant_opts bd_quant_opts_default(void) {
    bd_quant_opts o;
    memset(&o, 0, sizeof o);
    o.q = (bd_qspec){BD_Q_NONE, 0, 128};
    return o;
}

int bd_tool_quant_option(bd_quant_opts *o, int opt, const char *arg) {
    switch (opt) {
    case BD_OPT_QUANT: {
        int k = bd_qkind_parse(arg);
        if (k < 0)
            bd_usage_error("--quant: \"%s\" is not one of none, int, sym, nf3, ternary, r2q, q2_K, q3_K, q4_K", arg);
        o->q.kind = (bd_qkind)k;
        return 1;
    }
    case BD_OPT_BITS:
        o->q.bits = (int)bd_arg_int("--bits", arg, 2, 8);
        o->bits_given = true;
        return 1;
    case BD_OPT_GROUP:
        o->q.group = (int)bd_arg_int("--group", arg, 1, 1 << 24);
        o->group_given = true;
        return 1;
    case BD_OPT_QCLIP: o->clip = arg; return 1;
    case BD_OPT_QHEAD: o->policy.include_head = true; return 1;
    case BD_OPT_ACTQ:
        if (strcmp(arg, "int8") && strcmp(arg, "f32")) bd_usage_error("--act-quant: \"%s\" is not f32 or int8", arg);
        o->policy.act_bits = strcmp(arg, "int8") ? 0 : 8;
        return 1;
    case BD_OPT_EXCLUDE:
        if (bd_qpolicy_exclude(&o->policy, arg) < 0)
            bd_usage_error("--exclude: too many patterns or \"%s\" too long", arg);
        return 1;
    default: return 0;
    }
}

void bd_quant_opts_done(bd_quant_opts *o) {
    if (o->q.kind == BD_Q_NONE &&
        (o->bits_given || o->clip || o->policy.include_head || o->policy.n_exclude || o->policy.act_bits))
        bd_usage_error("--bits, --clip, --quant-head, --exclude and --act-quant int8 need --quant");
    static const int default_bits[BD_Q_COUNT] = {[BD_Q_INT] = 4, [BD_Q_SYM] = 4,  [BD_Q_NF3] = 3,  [BD_Q_TERNARY] = 2,
                                                 [BD_Q_R2Q] = 2, [BD_Q_Q2_K] = 2, [BD_Q_Q3_K] = 3, [BD_Q_Q4_K] = 4};
    if (o->q.kind != BD_Q_NONE && !o->bits_given) o->q.bits = default_bits[o->q.kind];
    if (bd_qkind_is_kquant(o->q.kind) && !o->group_given) o->q.group = BD_QK_K;
}

void bd_tool_quant_or_common_option(bd_quant_opts *o, int opt, const char *arg) {
    if (!bd_tool_quant_option(o, opt, arg)) bd_tool_common_option(opt, arg);
}

void bd_tool_quant_options_done(bd_quant_opts *o) {
    bd_tool_options_done();
    bd_quant_opts_done(o);
}
