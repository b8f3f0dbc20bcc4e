// bd-pack: a student (or a full-precision model quantized here by round-to-nearest) into a
// runnable packed model (bd.packed, low-bit blocks the kernels compute with), or a GGUF file.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_clipfile.h"
#include "bd_gguf.h"
#include "bd_log.h"
#include "bd_model_io.h"
#include "bd_packed.h"
#include "bd_qmodel.h"
#include "bd_tool.h"

// The default --head-format (see bd-pack(1), "Head formats", for the measurements behind it).
#define HEAD_DEFAULT BD_PK_Q8
#define HEAD_DEFAULT_NAME "q8"

static const char help[] =
        "Usage: bd-pack --model M [-o OUT] [OPTIONS]\n"
        "       bd-pack --model M --format gguf [--gguf-type T] -o OUT.gguf [OPTIONS]\n"
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
        "      --format F       packed (bd.packed stream, default) or gguf\n"
        "      --gguf-type T    f32 or f16 (any model); q2_K, q3_K, q4_K (students of that --quant,\n"
        "                       exact); tq2_0 (ternary, mainline llama.cpp) or iq2_bn (ternary,\n"
        "                       ik_llama.cpp); default: the student's own type (tq2_0 for ternary),\n"
        "                       else f32. Ternary rows that are not whole blocks go out as f16\n"
        "      --head-format F  the output head (and a tied embedding) in the packed model: f32, q8 or q6\n"
        "                       (8/6-bit codes, a scale and zero point per 64 weights; default " HEAD_DEFAULT_NAME ")\n"
        "  -k, --tokenizer T    the tokenizer the output remembers, and GGUF's metadata (default: the\n"
        "                       one the model remembers, else the one in the model's directory)\n"
        "  Round-to-nearest packing of a full-precision model:\n" BD_QUANT_HELP BD_COMMON_HELP
        "\nExit status: 0 on success, 1 on invalid input or model, 2 on usage errors.\n"
        "See bd-pack(1), bd-eval(1), bd-stream(5).\n";

enum { OPT_FORMAT = BD_OPT_FIRST_TOOL, OPT_GGUF_TYPE, OPT_HEAD_FORMAT };

typedef struct {
    const char *model_path, *output, *tok_path;
    bool gguf;
    int gguf_type;    // -1: by the model
    int head_format;  // a bd_pk_type (f32, q8, q6); -1: not given (HEAD_DEFAULT when packing here)
    bd_quant_opts qo;
} pack_opts;

static void parse_options(int argc, char **argv, pack_opts *o) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"output", required_argument, 0, 'o'},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             {"gguf-type", required_argument, 0, OPT_GGUF_TYPE},
                                             {"head-format", required_argument, 0, OPT_HEAD_FORMAT},
                                             {"tokenizer", required_argument, 0, 'k'},
                                             BD_QUANT_LONGOPTS,
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    *o = (pack_opts){.output = "-", .gguf_type = -1, .head_format = -1, .qo = bd_quant_opts_default()};
    int opt;
    while ((opt = getopt_long(argc, argv, "m:o:k:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': o->model_path = optarg; break;
        case 'o': o->output = optarg; break;
        case 'k': o->tok_path = optarg; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "gguf") == 0)
                o->gguf = true;
            else if (strcmp(optarg, "packed") != 0)
                bd_usage_error("--format: \"%s\" is not packed or gguf", optarg);
            break;
        case OPT_GGUF_TYPE:
            if ((o->gguf_type = bd_gguf_wtype_parse(optarg)) < 0)
                bd_usage_error("--gguf-type: \"%s\" is not f32, f16, q2_K, q3_K, q4_K, tq2_0 or iq2_bn", optarg);
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
    bd_tool_writes_stream("-o", o->output);
    bd_tool_reads("--model", o->model_path);
    bd_tool_reads("--clip", o->qo.clip);
    if (o->gguf || o->tok_path) bd_tool_reads_tokenizer(o->tok_path, o->model_path);
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

int main(int argc, char **argv) {
    bd_tool_init("bd-pack", help, argc, argv);
    pack_opts o;
    parse_options(argc, argv, &o);
    bd_model m;
    char why[512];
    if (bd_model_load(o.model_path, &m, why, sizeof why) < 0) bd_fatal("--model: %s", why);
    if (o.qo.q.kind != BD_Q_NONE) quantize(&o, &m);
    if (!o.gguf || bd_gguf_wtype_packed(gguf_type(&o, &m)) >= 0) {  // a packed file, or GGUF of packed rows
        if (m.quant.kind == BD_Q_NONE)
            bd_fatal("--model: \"%s\" is a full-precision model: give --quant (round-to-nearest) or a student",
                     o.model_path);
        bool packed_here = !m.packed;
        if (!m.packed && bd_pk_model_pack(&m, why, sizeof why) < 0)
            bd_fatal("\"%s\": cannot pack: %s", o.model_path, why);
        if (!o.gguf) pack_head(&o, &m, packed_here);
    }
    char what[300] = "";
    if (m.packed) {
        size_t f32 = m.n_params * sizeof(float), bytes = bd_pk_model_bytes(&m);
        snprintf(what, sizeof what, "%s %d-bit group %d, head %s: %.2f MB packed, %.2f MB as f32 (%.2fx smaller)",
                 bd_qkind_name(m.quant.kind), m.quant.bits, m.quant.group,
                 bd_pk_model_slot(&m, 0, BD_HEAD) ? bd_pk_traits_table[bd_pk_model_slot(&m, 0, BD_HEAD)->type].name
                                                  : "f32",
                 bytes / 1e6, f32 / 1e6, (double)f32 / (double)bytes);
    }
    bd_producer prod = bd_tool_producer();
    if (!o.gguf) bd_tool_remember_tokenizer(&m, o.tok_path, o.model_path);
    if (o.gguf)
        write_gguf(&o, &m);
    else if (bd_pk_model_save(&m, o.output, &prod, why, sizeof why) < 0)
        bd_fatal("-o: %s", why);
    bd_tool_note("%s%swrote %s%s", what, what[0] ? "; " : "", o.gguf ? "GGUF " : "",
                 strcmp(o.output, "-") ? o.output : "standard output");
    bd_model_free(&m);
    return 0;
}
