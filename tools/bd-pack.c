// bd-pack: a student (or a full-precision model quantized here by round-to-nearest) into a
// runnable packed model (bd.packed, low-bit blocks the kernels compute with), or a GGUF file.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bd_clipfile.h"
#include "bd_gguf.h"
#include "bd_log.h"
#include "bd_model_io.h"
#include "bd_outfile.h"
#include "bd_packed.h"
#include "bd_qmodel.h"
#include "bd_runplan.h"
#include "bd_tool.h"

// The default --head-format (see bd-pack(1), "Head formats", for the measurements behind it).
#define HEAD_DEFAULT BD_PK_Q8
#define HEAD_DEFAULT_NAME "q8"

static const char help[] =
        "Usage: bd-pack --model M [-o OUT] [OPTIONS]\n"
        "       bd-pack --model M --format gguf [--gguf-type T] -o OUT.gguf [OPTIONS]\n"
        "       bd-pack --model M --format hf [--hf-dtype D] -o NEWDIR [OPTIONS]\n"
        "Stores every quantized linear layer of a student model (a bd.model with a quantization\n"
        "spec) in a packed block format that bd-eval and bd-teacher-gen run directly, or writes a\n"
        "GGUF v3 file for llama.cpp: architecture \"llama\", or \"bitnet\" for a SubLN student\n"
        "(--subln=paper, tied head, n_heads*head_dim == dim; its sub-norms run with the model's\n"
        "epsilon there, and activations are not bd's per-token int8). A full-precision model is\n"
        "quantized first by round-to-nearest with --quant (optionally after --clip).\n"
        "\n"
        "  -m, --model M        student (bd.model with quant), packed model, or any model with --quant\n"
        "                       (\"-\": a stream on standard input)\n"
        "  -o, --output FILE    output (default: standard output; GGUF needs a file)\n"
        "      --format F       packed (bd.packed stream, default), gguf, or hf (a new Hugging Face\n"
        "                       directory -o DIR: config.json, model.safetensors, the tokenizer)\n"
        "      --gguf-type T    f32 or f16 (any model); q2_K, q3_K, q4_K (students of that --quant,\n"
        "                       exact); tq2_0 or tq1_0 (ternary, mainline llama.cpp) or iq2_bn\n"
        "                       (ternary, ik_llama.cpp); default: the student's own type (tq2_0 for ternary),\n"
        "                       else f32. Ternary rows that are not whole blocks go out as f16\n"
        "      --hf-dtype D     --format hf: f32 (default, exact) or bf16 (every weight rounded)\n"
        "      --head-format F  the output head (and a tied embedding) in the packed model: f32, q8 or q6\n"
        "                       (8/6-bit codes, a scale and zero point per 64 weights; default " HEAD_DEFAULT_NAME ")\n"
        "  -k, --tokenizer T    the tokenizer the output remembers, and GGUF's metadata (default: the\n"
        "                       one the model remembers, else the one in the model's directory)\n"
        "  Round-to-nearest packing of a full-precision model:\n" BD_QUANT_HELP BD_COMMON_HELP
        "\nExit status: 0 on success, 1 on invalid input or model, 2 on usage errors.\n"
        "See bd-pack(1), bd-eval(1), bd-stream(5).\n";

enum { OPT_FORMAT = BD_OPT_FIRST_TOOL, OPT_GGUF_TYPE, OPT_HEAD_FORMAT, OPT_HF_DTYPE };

typedef struct {
    const char *model_path, *output, *tok_path;
    bool gguf, hf;
    int gguf_type;  // -1: by the model
    bd_dtype hf_dtype;
    int head_format;  // a bd_pk_type (f32, q8, q6); -1: not given (HEAD_DEFAULT when packing here)
    bd_quant_opts qo;
} pack_opts;

static void parse_options(int argc, char **argv, pack_opts *o) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"output", required_argument, 0, 'o'},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             {"gguf-type", required_argument, 0, OPT_GGUF_TYPE},
                                             {"head-format", required_argument, 0, OPT_HEAD_FORMAT},
                                             {"hf-dtype", required_argument, 0, OPT_HF_DTYPE},
                                             {"tokenizer", required_argument, 0, 'k'},
                                             BD_QUANT_LONGOPTS,
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    *o = (pack_opts){
            .output = "-", .gguf_type = -1, .head_format = -1, .hf_dtype = BD_F32, .qo = bd_quant_opts_default()};
    bool dtype_given = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:o:k:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': o->model_path = optarg; break;
        case 'o': o->output = optarg; break;
        case 'k': o->tok_path = optarg; break;
        case OPT_FORMAT:
            o->gguf = strcmp(optarg, "gguf") == 0;
            o->hf = strcmp(optarg, "hf") == 0;
            if (!o->gguf && !o->hf && strcmp(optarg, "packed") != 0)
                bd_usage_error("--format: \"%s\" is not packed, gguf or hf", optarg);
            break;
        case OPT_HF_DTYPE:
            if (strcmp(optarg, "f32") && strcmp(optarg, "bf16"))
                bd_usage_error("--hf-dtype: \"%s\" is not f32 or bf16", optarg);
            o->hf_dtype = strcmp(optarg, "f32") ? BD_BF16 : BD_F32;
            dtype_given = true;
            break;
        case OPT_GGUF_TYPE:
            if ((o->gguf_type = bd_gguf_wtype_parse(optarg)) < 0)
                bd_usage_error("--gguf-type: \"%s\" is not f32, f16, q2_K, q3_K, q4_K, tq1_0, tq2_0 or iq2_bn", optarg);
            break;
        case OPT_HEAD_FORMAT:
            if ((o->head_format = bd_pk_head_format_parse(optarg)) < 0)
                bd_usage_error("--head-format: \"%s\" is not f32, q8 or q6", optarg);
            break;
        default: bd_tool_quant_or_common_option(&o->qo, opt, optarg);
        }
    }
    bd_tool_quant_options_done(&o->qo);
    if (!o->model_path) bd_usage_error("--model is required");
    if (optind < argc) bd_usage_error("unexpected argument \"%s\"", argv[optind]);
    if (o->gguf_type >= 0 && !o->gguf) bd_usage_error("--gguf-type needs --format gguf");
    if (o->head_format >= 0 && o->gguf) bd_usage_error("--head-format is for packed output, not --format gguf");
    if (o->gguf && strcmp(o->output, "-") == 0) bd_usage_error("--format gguf needs -o FILE");
    if (dtype_given && !o->hf) bd_usage_error("--hf-dtype needs --format hf");
    if (o->hf && o->head_format >= 0) bd_usage_error("--head-format is for packed output, not --format hf");
    if (o->hf && strcmp(o->output, "-") == 0) bd_usage_error("--format hf needs -o DIR (a new directory)");
    if (!o->hf) bd_tool_writes_stream("-o", o->output);
    bd_tool_reads("--model", o->model_path);
    bd_tool_reads("--clip", o->qo.clip);
    if (o->gguf || o->hf || o->tok_path) bd_tool_reads_tokenizer(o->tok_path, o->model_path);
    bd_tool_check_files();
}

// --quant: a full-precision model gets the spec (round-to-nearest), after --clip.
static void quantize(const pack_opts *o, bd_model *m) {
    bd_quant_opts qo = o->qo;
    char why[512];
    if (m->quant.kind != BD_Q_NONE)
        bd_fatal("--quant: \"%s\" already carries a quantization (%s %d-bit)%s", o->model_path,
                 bd_qkind_name(m->quant.kind), m->quant.bits,
                 m->packed ? " and is packed" : "; pack it without --quant");
    if (qo.clip && bd_clipfile_apply(qo.clip, m, &qo.q, why, sizeof why) < 0) bd_fatal("--clip: %s", why);
    if (bd_qpolicy_check(&qo.policy, &qo.q, &m->cfg, why, sizeof why) < 0) bd_fatal("--quant: %s", why);
    m->quant = qo.q;
    m->qpolicy = qo.policy;
}

// --head-format: the head of the packed model. Not given: HEAD_DEFAULT when this run packs the
// model, and a packed input keeps its head; a student whose spec quantizes the head keeps it.
static void pack_head(const pack_opts *o, bd_model *m, bool packed_here) {
    char why[512];
    bool by_spec = bd_pk_model_slot(m, 0, BD_HEAD) && m->packed->head_format == BD_PK_F32;
    if (o->head_format < 0 && (!packed_here || by_spec)) return;
    if (by_spec)
        bd_fatal("--head-format: \"%s\": its spec already quantizes the head (%s %d-bit, --quant-head)", o->model_path,
                 bd_qkind_name(m->quant.kind), m->quant.bits);
    int hf = o->head_format >= 0 ? o->head_format : HEAD_DEFAULT;
    if (bd_pk_model_pack_head(m, (bd_pk_type)hf, why, sizeof why) < 0)
        bd_fatal("--head-format %s: \"%s\": %s", bd_pk_traits_table[hf].name, o->model_path, why);
}

// The GGUF weight type: --gguf-type, else the student's own (K-quants: theirs; ternary: TQ2_0),
// else f32.
static bd_gguf_wtype gguf_type(const pack_opts *o, const bd_model *m) {
    if (o->gguf_type >= 0) return (bd_gguf_wtype)o->gguf_type;
    switch (m->quant.kind) {
    case BD_Q_TERNARY: return BD_GGUF_TQ2_0;
    case BD_Q_Q2_K: return BD_GGUF_Q2_K;
    case BD_Q_Q3_K: return BD_GGUF_Q3_K;
    case BD_Q_Q4_K: return BD_GGUF_Q4_K;
    default: return BD_GGUF_F32;
    }
}

static void write_gguf(const pack_opts *o, bd_model *m) {
    char why[512];
    bd_gguf_wtype type = gguf_type(o, m);
    const char *tn = bd_gguf_wtype_name(type);
    int need = bd_gguf_wtype_packed(type);
    if (need < 0 && !m->packed && m->quant.kind != BD_Q_NONE &&
        bd_model_fakequant(m, m, &m->quant, &m->qpolicy, why, sizeof why) < 0)
        bd_fatal("\"%s\": cannot apply its quantization: %s", o->model_path, why);
    if (need >= 0 && bd_pk_type_for(&m->quant) != need)
        bd_fatal(
                "--gguf-type %s: \"%s\": its quantization is %s %d-bit, not %s (train or round it with --quant %s); f32 "
                "and f16 hold any model",
                tn, o->model_path, bd_qkind_name(m->quant.kind), m->quant.bits,
                need == BD_PK_TQ2 ? "ternary" : bd_pk_traits_table[need].name,
                need == BD_PK_TQ2 ? "ternary" : bd_pk_traits_table[need].name);
    bd_tokenizer *tok = bd_tool_load_tokenizer(o->tok_path, o->model_path, m);
    bd_gguf_report rep;
    if (bd_gguf_write(m, tok, o->output, type, &rep, why, sizeof why) < 0) bd_fatal("-o: \"%s\": %s", o->output, why);
    bd_tokenizer_free(tok);
    if (rep.n_tq2_f16)
        bd_log(BD_LOG_WARN,
               "%d of %d ternary linears written as f16, not %s (rows of %d weights; %s): "
               "the same values, 16 bits per weight",
               rep.n_tq2_f16, rep.n_tq2_f16 + rep.n_typed, tn, rep.tq2_f16_cols,
               type == BD_GGUF_TQ2_0 ? "TQ2_0 needs a multiple of 256" : "IQ2_BN needs a multiple of 64, at least 512");
    if (rep.eps_differs)
        bd_log(BD_LOG_WARN,
               "llama.cpp's bitnet runs every RMSNorm with one epsilon (%g, the model's); the sub-norms were trained "
               "with %g, so its results differ slightly (train with --subln-eps %g for an exact file)",
               (double)m->cfg.norm_eps, (double)m->cfg.subln_eps, (double)m->cfg.norm_eps);
    bd_log(BD_LOG_INFO, "GGUF architecture %s, %d linears %s%s", rep.arch, rep.n_typed, tn,
           rep.permuted_qk ? ", q/k rows permuted to the architecture's RoPE layout" : "");
}

// Copies src to dst (atomically). BD_OK, or exits with one line.
static void copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) bd_fatal("tokenizer file \"%s\": cannot open: %s", src, strerror(errno));
    bd_outfile *o = bd_outfile_open(dst, "wb");
    if (!o) bd_fatal("-o: \"%s\": cannot create: %s", dst, strerror(errno));
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, bd_outfile_fp(o));
    bool bad = ferror(in) || ferror(bd_outfile_fp(o));
    fclose(in);
    if (bad) {
        bd_outfile_abort(o);
        bd_fatal("copying \"%s\" to \"%s\" failed", src, dst);
    }
    if (bd_outfile_commit(o) < 0) bd_fatal("-o: \"%s\": write failed: %s", dst, strerror(errno));
}

// out = a/b, or exit: a path that long is a mistake.
static void join(char *out, size_t n, const char *a, const char *b) {
    if ((size_t)snprintf(out, n, "%s/%s", a, b) >= n) bd_fatal("path too long: %s/%s", a, b);
}

// The tokenizer files of an HF export: the tokenizer bd reads (tokenizer.json as is, a llama2.c
// .bin as tokenizer.bin), a SentencePiece .model of the same name beside it as tokenizer.model,
// and the tokenizer_config.json / special_tokens_map.json / tokenizer.model of its directory.
// Returns how many files were copied.
static int copy_tokenizer(const char *tok_file, const char *dir) {
    char dst[4096], src[4096], tdir[4096];
    struct stat sb;
    bool json = strlen(tok_file) > 5 && strcmp(tok_file + strlen(tok_file) - 5, ".json") == 0;
    join(dst, sizeof dst, dir, json ? "tokenizer.json" : "tokenizer.bin");
    copy_file(tok_file, dst);
    int n = 1;
    bd_tool_model_dir(tok_file, tdir, sizeof tdir);
    static const char *const extra[] = {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        join(src, sizeof src, tdir, extra[i]);
        if (stat(src, &sb) == 0 && S_ISREG(sb.st_mode)) {
            join(dst, sizeof dst, dir, extra[i]);
            copy_file(src, dst);
            n++;
        }
    }
    snprintf(src, sizeof src, "%s", tok_file);
    char *dot = strrchr(src, '.');
    join(dst, sizeof dst, dir, "tokenizer.model");
    if (!json && dot && (size_t)(dot - src) + 7 < sizeof src && stat(dst, &sb) != 0) {
        strcpy(dot, ".model");
        if (stat(src, &sb) == 0 && S_ISREG(sb.st_mode)) {
            copy_file(src, dst);
            n++;
        }
    }
    return n;
}

// --format hf: the model's values in f32 (a student's fake-quantized weights, a packed model's
// decoded rows) as config.json + model.safetensors + its tokenizer, built in a temporary
// directory that is renamed to -o DIR when complete.
static void write_hf(const pack_opts *o, bd_model *m) {
    char why[512], tmp[4096];
    struct stat sb;
    if (stat(o->output, &sb) == 0) bd_fatal("-o: \"%s\" exists; --format hf writes a new directory", o->output);
    if (m->packed) {
        if (bd_pk_model_unpack(m) < 0) bd_fatal("\"%s\": cannot unpack", o->model_path);
    } else if (m->quant.kind != BD_Q_NONE) {
        if (bd_model_fakequant(m, m, &m->quant, &m->qpolicy, why, sizeof why) < 0)
            bd_fatal("\"%s\": cannot apply its quantization: %s", o->model_path, why);
        m->quant = (bd_qspec){BD_Q_NONE, 0, 0};
    }
    bd_tokenizer *tok = bd_tool_load_tokenizer(o->tok_path, o->model_path, m);
    if (bd_tokenizer_vocab_size(tok) != m->cfg.vocab)
        bd_fatal("the tokenizer has %d tokens, the model's vocabulary %d", bd_tokenizer_vocab_size(tok), m->cfg.vocab);
    bd_tokenizer_free(tok);
    // The tokenizer's file: -k, the one the model remembers, else the one in the model's directory.
    char mdir[4096], tok_file[4096], twhy[300];
    bool has_dir = bd_tool_model_dir(o->model_path, mdir, sizeof mdir);
    const char *tok_src = o->tok_path ? o->tok_path : m->tok_path[0] ? m->tok_path : has_dir ? mdir : NULL;
    if (!tok_src || bd_tokenizer_file(tok_src, tok_file, sizeof tok_file, twhy, sizeof twhy) < 0) tok_file[0] = 0;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", o->output, (long)getpid()) >= sizeof tmp)
        bd_fatal("-o: path too long");
    if (mkdir(tmp, 0777) != 0) bd_fatal("-o: \"%s\": cannot create: %s", tmp, strerror(errno));
    int rc = bd_model_save_hf(m, tmp, o->hf_dtype, why, sizeof why);
    int ntok = 0;
    if (rc == BD_OK && tok_file[0] && stat(tok_file, &sb) == 0 && S_ISREG(sb.st_mode))
        ntok = copy_tokenizer(tok_file, tmp);
    if (rc == BD_OK && rename(tmp, o->output) != 0) {
        snprintf(why, sizeof why, "cannot rename the finished directory into place: %s", strerror(errno));
        rc = BD_ERR_IO;
    }
    if (rc < 0) {
        static const char *const files[] = {
                "config.json",     "model.safetensors",     "tokenizer.json",         "tokenizer.bin",
                "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"};
        char f[4200];
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            join(f, sizeof f, tmp, files[i]);
            unlink(f);
        }
        rmdir(tmp);
        bd_fatal("-o: \"%s\": %s", o->output, why);
    }
    if (!ntok) bd_log(BD_LOG_WARN, "no tokenizer file known for \"%s\": the directory has none (give -k)", o->output);
}

// The memory plan (bd_runplan.h) from the model's header, before it is loaded (m NULL), or from m
// once loaded when it came through standard input: the model and its packed copy. False if not made.
static bool plan_memory(const pack_opts *o, const bd_model *m) {
    bd_model_info mi;
    if (!bd_tool_model_info(o->model_path, m, &mi)) return false;
    mi.mapped = !o->hf && !o->gguf && !o->qo.clip;  // as main loads it
    bd_model shell = {.cfg = mi.cfg, .quant = mi.quant, .qpolicy = mi.qpolicy};
    if (o->qo.q.kind != BD_Q_NONE) shell.quant = o->qo.q, shell.qpolicy = o->qo.policy;
    bool pack = !o->hf && (!o->gguf || bd_gguf_wtype_packed(gguf_type(o, &shell)) >= 0);
    int hf = o->gguf                                         ? BD_PK_F32
             : o->head_format >= 0                           ? o->head_format
             : bd_qpolicy_covers(&shell.qpolicy, "wcls", -1) ? BD_PK_F32
                                                             : HEAD_DEFAULT;
    bd_memplan p = {0};
    bd_runplan_pack(&p, &mi, pack && shell.quant.kind != BD_Q_NONE, &shell.quant, &shell.qpolicy, hf);
    bd_tool_memplan(&p, m ? bd_memplan_weights(&mi) : 0);
    return true;
}

int main(int argc, char **argv) {
    bd_tool_init("bd-pack", help, argc, argv);
    pack_opts o;
    parse_options(argc, argv, &o);
    bd_model m;
    char why[512];
    // Packing reads each matrix once: a Hugging Face model's linears can stay mapped in their
    // dtype (bd(7)), widened one matrix at a time. Clipping and the f32/HF exports need them in memory.
    bool mapped = !o.hf && !o.gguf && !o.qo.clip;
    bool planned = plan_memory(&o, NULL);
    int rc = mapped ? bd_model_load_mapped(o.model_path, &m, why, sizeof why)
                    : bd_model_load(o.model_path, &m, why, sizeof why);
    if (rc < 0) bd_fatal("--model: %s", why);
    if (!planned) plan_memory(&o, &m);
    if (o.qo.q.kind != BD_Q_NONE) quantize(&o, &m);
    if (!o.hf && (!o.gguf || bd_gguf_wtype_packed(gguf_type(&o, &m)) >= 0)) {  // packed, or GGUF of packed rows
        if (m.quant.kind == BD_Q_NONE)
            bd_fatal("--model: \"%s\" is a full-precision model: give --quant (round-to-nearest) or a student",
                     o.model_path);
        bool packed_here = !m.packed || m.mapping;  // a mapped model's slots are its f16/bf16 rows, not packed
        if (packed_here && bd_pk_model_pack(&m, why, sizeof why) < 0)
            bd_fatal("\"%s\": cannot pack: %s", o.model_path, why);
        if (!o.gguf) pack_head(&o, &m, packed_here);
    }
    char what[300] = "";
    if (m.packed) {
        size_t params, bytes = bd_pk_model_bytes(&m);
        bd_param_table(&m.cfg, (bd_param_entry[BD_MAX_PARAMS]){0}, &params);
        size_t f32 = params * sizeof(float);
        snprintf(what, sizeof what, "%s %d-bit group %d, head %s: %.2f MB packed, %.2f MB as f32 (%.2fx smaller)",
                 bd_qkind_name(m.quant.kind), m.quant.bits, m.quant.group,
                 bd_pk_model_slot(&m, 0, BD_HEAD) ? bd_pk_traits_table[bd_pk_model_slot(&m, 0, BD_HEAD)->type].name
                                                  : "f32",
                 bytes / 1e6, f32 / 1e6, (double)f32 / (double)bytes);
    }
    bd_producer prod = bd_tool_producer();
    if (!o.gguf && !o.hf) bd_tool_remember_tokenizer(&m, o.tok_path, o.model_path);
    if (o.hf)
        write_hf(&o, &m);
    else if (o.gguf)
        write_gguf(&o, &m);
    else if (bd_pk_model_save(&m, o.output, &prod, why, sizeof why) < 0)
        bd_fatal("-o: %s", why);
    bd_tool_note("%s%swrote %s%s", what, what[0] ? "; " : "",
                 o.gguf ? "GGUF "
                 : o.hf ? "Hugging Face directory "
                        : "",
                 strcmp(o.output, "-") ? o.output : "standard output");
    bd_model_free(&m);
    return 0;
}
