// What every bd tool shares: common options (--threads --seed --verbosity --version
// --help), strict option values, one-line fatal errors that remove unfinished output,
// and the final check that stdout was written.
#ifndef BD_TOOL_H
#define BD_TOOL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdnoreturn.h>

#include "bd_memplan.h"
#include "bd_model.h"
#include "bd_model_io.h"
#include "bd_shard.h"
#include "bd_stream.h"
#include "bd_tokenizer.h"

enum {
    BD_OPT_THREADS = 0x1000,
    BD_OPT_SEED,
    BD_OPT_VERBOSITY,
    BD_OPT_VERSION,
    BD_OPT_FIRST_TOOL,  // tools number their own long-only options from here
};

// The quantization options of bd-eval, bd-qat and bd-pack (numbered apart from the tools' own).
enum { BD_OPT_QUANT = 0x1100, BD_OPT_BITS, BD_OPT_GROUP, BD_OPT_QCLIP, BD_OPT_QHEAD, BD_OPT_EXCLUDE, BD_OPT_ACTQ };
#define BD_QUANT_LONGOPTS                                                                                     \
    {"quant", required_argument, 0, BD_OPT_QUANT}, {"bits", required_argument, 0, BD_OPT_BITS},               \
            {"group", required_argument, 0, BD_OPT_GROUP}, {"clip", required_argument, 0, BD_OPT_QCLIP},      \
            {"quant-head", no_argument, 0, BD_OPT_QHEAD}, {"act-quant", required_argument, 0, BD_OPT_ACTQ}, { \
        "exclude", required_argument, 0, BD_OPT_EXCLUDE                                                       \
    }
#define BD_QUANT_HELP                                                                             \
    "      --quant KIND     int, sym, nf3, ternary, r2q, or llama.cpp's q2_K, q3_K, q4_K\n"       \
    "      --bits B         bits per weight (int/sym: 2..8, default 4; nf3: 3; ternary/r2q: 2;\n" \
    "                       qN_K: N)\n"                                                           \
    "      --group G        group size along the input dimension (default 128; qN_K: 256)\n"      \
    "      --clip FILE      clamp weights to the ranges of a bd.clip stream first\n"              \
    "      --quant-head     also quantize the output head (untied models only)\n"                 \
    "      --act-quant A    f32 (default) or int8: the inputs of the quantized linears are\n"     \
    "                       quantized to int8 per token (absmax) in every forward (W1.58A8)\n"    \
    "      --exclude PAT    keep layers matching PAT in full precision (e.g. 'layers.0.*', 'w2')\n"

typedef struct {
    bd_qspec q;  // kind BD_Q_NONE unless --quant
    bd_qpolicy policy;
    const char *clip;  // --clip FILE or NULL
    bool bits_given, group_given;
} bd_quant_opts;

// {none, group 128, default policy}.
bd_quant_opts bd_quant_opts_default(void);
// Handles one of the BD_QUANT_LONGOPTS; returns 1 if it was one.
int bd_tool_quant_option(bd_quant_opts *o, int opt, const char *arg);
// After parsing: the options other than --quant need it; --bits defaults by kind.
void bd_quant_opts_done(bd_quant_opts *o);
// For getopt's default branch of a tool with quantization options: one of BD_QUANT_LONGOPTS
// or a common option (bd_tool_common_option: an unknown one is a usage error).
void bd_tool_quant_or_common_option(bd_quant_opts *o, int opt, const char *arg);
// After parsing: bd_tool_options_done, then bd_quant_opts_done.
void bd_tool_quant_options_done(bd_quant_opts *o);

// Put inside a tool's struct option array, before its terminating {0}.
#define BD_COMMON_LONGOPTS                                                                                      \
    {"threads", required_argument, 0, BD_OPT_THREADS}, {"seed", required_argument, 0, BD_OPT_SEED},             \
            {"verbosity", required_argument, 0, BD_OPT_VERBOSITY}, {"version", no_argument, 0, BD_OPT_VERSION}, \
            {"help", no_argument, 0, 'h'}, {                                                                    \
        "quiet", no_argument, 0, 'q'                                                                            \
    }

// The help text for the common options, for tools' --help.
#define BD_COMMON_HELP                                                                     \
    "  -t, --threads N     threads for OpenBLAS and bd kernels (default: all CPUs)\n"      \
    "      --seed N        random seed (default 1234)\n"                                   \
    "      --verbosity N   0 errors, 1 warnings and progress (default), 2 info, 3 debug\n" \
    "  -q, --quiet         same as --verbosity 0\n"                                        \
    "  -h, --help          this help\n"                                                    \
    "      --version       version and build flags\n"

typedef struct {
    const char *name;  // "bd-cat"
    const char *help;  // full --help text; its first line is "Usage: ..."
    int argc;
    char **argv;
    int threads;  // 0 = all CPUs
    uint64_t seed;
    int verbosity;
} bd_tool;

extern bd_tool bd_tool_self;

// Sets the log prefix, removes unfinished outputs on SIGINT/SIGTERM, and checks at exit
// that stdout was flushed and closed without error.
void bd_tool_init(const char *name, const char *help, int argc, char **argv);
// Handles a common option returned by getopt_long; returns 1 if it was one, 0 if not.
// --help and --version print to stdout and exit 0; a bad value is a usage error.
int bd_tool_common_option(int opt, const char *arg);
// Applies --threads and --verbosity after option parsing, and warns (at the default verbosity)
// of the deprecated spellings used.
void bd_tool_options_done(void);
// Notes that the deprecated spelling old (kept for one release) was used for now.
void bd_tool_deprecated(const char *old, const char *now);
// Getopt's short options that the common set adds: "t:qh".
#define BD_COMMON_SHORTOPTS "t:qh"

// "bd-x: message" on stderr, removes unfinished output files, exits 1.
noreturn void bd_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// "bd-x: message" plus a hint to --help, exits 2.
noreturn void bd_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// A line on stderr ("bd-x: message") shown at the default verbosity (not with -q): the run's
// one-line summary at the end (what was done, how much, how fast), or what a long phase
// without progress is doing.
void bd_tool_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Strict option values: usage error naming the option and the value otherwise.
int64_t bd_arg_int(const char *opt, const char *s, int64_t lo, int64_t hi);
double bd_arg_double(const char *opt, const char *s, double lo, double hi);

// Before any work: a token stream input (opt names it) that is a regular file holding text, not
// a bd stream, fails with what to do instead (hint, e.g. "score it with --text FILE, or ...").
void bd_tool_expect_stream(const char *opt, const char *path, const char *hint);

// Opens a stream reader or exits with "bd-x: "file" header: ..." on failure.
bd_reader *bd_tool_open_reader(const char *path, const char *schema);
// Reports a reader error: "bd-x: "file" record 12: ...", exits 1.
noreturn void bd_tool_reader_fatal(const bd_reader *r);
// Opens a stream writer or exits; the header is packed by the caller.
bd_writer *bd_tool_open_writer(const char *path);
// Loads --model PATH (any format bd_model_load knows) or exits naming the file and reason.
// A student (a bd.model with a quantization spec) comes back fake-quantized, as it will run:
// nobody can forget to apply its quantizer.
void bd_tool_load_model(const char *path, bd_model *m);
// The same, but a student's latent (unquantized) weights as stored: for training and debugging.
void bd_tool_load_model_latent(const char *path, bd_model *m);
// As bd_tool_load_model, for computing only (evaluation, generation, a teacher): a Hugging Face
// model's linears stay memory-mapped in the file's dtype (bd_model_load_mapped).
void bd_tool_load_model_mapped(const char *path, bd_model *m);
// Latent weights, mapped where the format allows: for tools that read the weights once (clip search).
void bd_tool_load_model_latent_mapped(const char *path, bd_model *m);
// After the memory plan (bd_tool_memplan): a mapped model's linears copied into memory of its
// own when they take at most a quarter of what the plan leaves free (bd_model_copy_mapped).
void bd_tool_copy_mapped(bd_model *m);
// The directory of a model (or any file): path itself if it is a directory, else the directory
// holding it. false for standard input ("-").
bool bd_tool_model_dir(const char *model_path, char *dir, size_t size);
// Loads --tokenizer PATH; with PATH NULL, the tokenizer the model remembers (m, a loaded model
// or NULL: a bd.model/bd.packed header's "tokenizer"), else the one next to the model (the
// model's directory, or the directory holding the model file). Exits on failure, and when the
// remembered file has changed (another hash) or the one next to the model is not it.
bd_tokenizer *bd_tool_load_tokenizer(const char *path, const char *model_path, const bd_model *m);
// The same without --tokenizer, if there is one (NULL, said at --verbosity 2, if not).
bd_tokenizer *bd_tool_try_tokenizer(const char *model_path, const bd_model *m);
// Before saving m: the tokenizer it will remember: --tokenizer PATH if given, else the one it
// already remembers, else the one next to model_path (if any; otherwise none).
void bd_tool_remember_tokenizer(bd_model *m, const char *tok_path, const char *model_path);

// The files of a run, checked before any work (see bd_runfiles.h): an output that is the same
// file as an input or another output is refused. NULL and "-" are ignored.
// An input (a directory: the files in it). Two different inputs reading standard input ("-")
// are a usage error.
void bd_tool_reads(const char *opt, const char *path);
void bd_tool_writes(const char *opt, const char *path);  // an output
// An output that is a binary bd stream: standard output (path NULL or "-") on a terminal is
// refused, as zstd does (a usage error naming -o).
void bd_tool_writes_stream(const char *opt, const char *path);
// The files named PREFIX* that the run writes and removes (bd-qat's OUT.state.wSTEP).
void bd_tool_writes_family(const char *opt, const char *prefix);
// The tokenizer the run reads: --tokenizer PATH, or with PATH NULL the one next to the model.
void bd_tool_reads_tokenizer(const char *path, const char *model_path);
// After the files are added: exits 1 naming both when two are the same file, or when another
// live process is writing an output (removing the outputs' stale temporaries first).
void bd_tool_check_files(void);

// Memory plans (bd_memplan.h, bd_runplan.h). The config of the model at path from its header
// (bd_model_peek) when m is NULL, else m's (a model already loaded); false when the header
// cannot be read ahead (standard input, a pipe: plan after loading) or is bad (the load says why).
bool bd_tool_model_info(const char *path, const bd_model *m, bd_model_info *info);
// Shows plan p at --verbosity 2 and refuses a run that cannot fit in the memory available
// (bd_mem_available): "bd-x: not enough memory: needs ... (largest: ..., shrink with ...), ...
// available", exit 1, before any output exists. in_use: bytes of the plan already allocated (a
// model loaded before planning), which the memory available no longer holds.
void bd_tool_memplan(const bd_memplan *p, uint64_t in_use);

// Producer information (this tool, argv) for stream headers.
bd_producer bd_tool_producer(void);

// --shard K/N (bd-teacher-gen, bd-eval): the shard, and the option's arguments as given, which
// the shard's header records so that a merge can drop them from the producer's argv.
typedef struct {
    bd_shard s;  // n == 0: no --shard
    int argc;    // 1 ("--shard=K/N") or 2 ("--shard" "K/N")
    char *argv[2];
} bd_tool_shard;
// Call when getopt_long returns the --shard option (optarg: its value): a bad K/N is a usage
// error naming it.
void bd_tool_shard_option(bd_tool_shard *o, char *arg);

#endif
