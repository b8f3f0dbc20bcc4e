// bd-clipsearch: BitDistiller's clipping search. The full-precision model runs over
// calibration windows once, keeping the inputs of every linear layer; a random subsample of
// token positions then scores, per (output channel, group), the 10 x 10 grid of max/min
// shrink factors. Writes a bd.clip stream that bd-eval --clip and bd-qat --clip apply.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_clipfile.h"
#include "bd_clipsearch.h"
#include "bd_ids.h"
#include "bd_log.h"
#include "bd_progress.h"
#include "bd_qmodel.h"
#include "bd_runplan.h"
#include "bd_tool.h"

static const char help[] =
        "Usage: bd-clipsearch --model M --calib TOKENS --bits B --group G [OPTIONS] -o clip.bdz\n"
        "Find per-(output channel, group) clipping ranges for quantizing M's linear layers: for each\n"
        "group choose max' = max*(1-i/20), min' = min*(1-j/20), i, j in 0..9, minimizing the squared\n"
        "error of the group's partial outputs on calibration inputs computed by the full-precision\n"
        "model. q and k projections are not clipped unless --include-qk.\n"
        "\n"
        "  -m, --model M        the full-precision model (\"-\": a bd.model stream on standard input)\n"
        "      --calib TOKENS   calibration data: a bd.tokens stream, or a bd.samples stream (the\n"
        "                       teacher's prompts and completions); \"-\": standard input (-c: a\n"
        "                       deprecated spelling, -c is bd-cat's --check)\n"
        "      --quant KIND     int (default), nf3, or llama.cpp's q2_K, q3_K, q4_K (bits implied;\n"
        "                       one range per 256-weight super-block)\n"
        "      --bits B         bits per weight (int: 2..8; nf3: 3)\n"
        "      --group G        group size along the input dimension (default 128)\n"
        "  -T, --seq-len N      calibration window length (default min(512, model context))\n"
        "      --windows N      calibration windows run through the model (default 8)\n"
        "      --tokens N       token positions subsampled for the error (default 512)\n"
        "      --include-qk     also clip the q and k projections\n"
        "      --exclude PAT    do not search layers matching PAT (they stay unclipped)\n"
        "      --grid N         shrink step 1/N (default 20)\n"
        "      --shrink-steps N shrink factors 0..N-1 for max and min (default 10; --steps N: a\n"
        "                       deprecated spelling, --steps is bd-qat's optimizer steps)\n"
        "  -o, --output FILE    the bd.clip stream (default: standard output)\n" BD_COMMON_HELP
        "\nExit status: 0 on success, 1 on invalid input, 2 on usage errors.\n"
        "See bd-clipsearch(1), bd-eval(1), bd-stream(5).\n";

enum {
    OPT_QUANT = BD_OPT_FIRST_TOOL,
    OPT_CALIB,
    OPT_BITS,
    OPT_GROUP,
    OPT_WINDOWS,
    OPT_TOKENS,
    OPT_QK,
    OPT_EXCLUDE,
    OPT_GRID,
    OPT_SHRINK_STEPS,
    OPT_STEPS
};

typedef struct {
    const char *model_path, *calib, *output;
    int seq_len, windows, n_tokens;
    bd_clip_opts c;
} clip_opts;

static void parse_options(int argc, char **argv, clip_opts *o) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"calib", required_argument, 0, OPT_CALIB},
                                             {"quant", required_argument, 0, OPT_QUANT},
                                             {"bits", required_argument, 0, OPT_BITS},
                                             {"group", required_argument, 0, OPT_GROUP},
                                             {"seq-len", required_argument, 0, 'T'},
                                             {"windows", required_argument, 0, OPT_WINDOWS},
                                             {"tokens", required_argument, 0, OPT_TOKENS},
                                             {"include-qk", no_argument, 0, OPT_QK},
                                             {"exclude", required_argument, 0, OPT_EXCLUDE},
                                             {"grid", required_argument, 0, OPT_GRID},
                                             {"shrink-steps", required_argument, 0, OPT_SHRINK_STEPS},
                                             {"steps", required_argument, 0, OPT_STEPS},
                                             {"output", required_argument, 0, 'o'},
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    *o = (clip_opts){.output = "-", .windows = 8, .n_tokens = 512, .c = {.q = {BD_Q_INT, 0, 128}, .grid = {20, 10}}};
    bd_qspec *q = &o->c.q;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:c:T:o:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': o->model_path = optarg; break;
        case 'c': bd_tool_deprecated("-c", "--calib"); /* fall through */
        case OPT_CALIB: o->calib = optarg; break;
        case OPT_QUANT:
            q->kind = (bd_qkind)bd_qkind_parse(optarg);
            if (q->kind != BD_Q_INT && q->kind != BD_Q_NF3 && !bd_qkind_is_kquant(q->kind))
                bd_usage_error("--quant: \"%s\": clipping applies to int, nf3, q2_K, q3_K and q4_K", optarg);
            break;
        case OPT_BITS: q->bits = (int)bd_arg_int("--bits", optarg, 2, 8); break;
        case OPT_GROUP: q->group = (int)bd_arg_int("--group", optarg, 1, 1 << 24); break;
        case 'T': o->seq_len = (int)bd_arg_int("--seq-len", optarg, 2, 1 << 16); break;
        case OPT_WINDOWS: o->windows = (int)bd_arg_int("--windows", optarg, 1, 4096); break;
        case OPT_TOKENS: o->n_tokens = (int)bd_arg_int("--tokens", optarg, 1, 1 << 20); break;
        case OPT_QK: o->c.include_qk = true; break;
        case OPT_EXCLUDE:
            if (bd_qpolicy_exclude(&o->c.policy, optarg) < 0)
                bd_usage_error("--exclude: too many patterns or \"%s\" too long", optarg);
            break;
        case OPT_GRID: o->c.grid.grid = (int)bd_arg_int("--grid", optarg, 1, 1000); break;
        case OPT_STEPS: bd_tool_deprecated("--steps", "--shrink-steps"); /* fall through */
        case OPT_SHRINK_STEPS: o->c.grid.steps = (int)bd_arg_int("--shrink-steps", optarg, 1, 1000); break;
        case 'o': o->output = optarg; break;
        default: bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    if (!o->model_path) bd_usage_error("--model is required");
    if (!o->calib) bd_usage_error("--calib is required");
    if (bd_qkind_is_kquant(q->kind)) {  // the kind says the bits; one clip range per 256-weight super-block
        if (q->bits == 0) q->bits = q->kind == BD_Q_Q2_K ? 2 : q->kind == BD_Q_Q3_K ? 3 : 4;
        q->group = 256;
    }
    if (q->bits == 0) bd_usage_error("--bits is required");
    if (o->c.grid.steps > o->c.grid.grid)
        bd_usage_error("--shrink-steps %d exceeds --grid %d (shrinking past zero)", o->c.grid.steps, o->c.grid.grid);
    if (optind < argc) bd_usage_error("unexpected argument \"%s\"", argv[optind]);
    bd_tool_writes_stream("-o", o->output);
    bd_tool_reads("--model", o->model_path);
    bd_tool_reads("--calib", o->calib);
    bd_tool_expect_stream("--calib", o->calib, "tokenize it first (bd-tokenize -k TOKENIZER FILE -o calib.bdz)");
    bd_tool_check_files();
}

// The bd.clip stream and the progress of the search.
typedef struct {
    bd_writer *w;
    const char *path;
    bd_progress pr;
} clip_out;

static int write_layer(void *ctx, const char *tensor, int layer, const float *mx, const float *mn, int OC, int NG) {
    clip_out *out = ctx;
    if (bd_clipfile_write_record(out->w, tensor, layer, mx, mn, OC, NG) < 0)
        bd_fatal("\"%s\": write failed: %s", out->path, strerror(errno));
    return BD_OK;
}

static void show_progress(void *ctx, uint64_t done) { bd_progress_update(&((clip_out *)ctx)->pr, done); }

// The memory plan (bd_runplan.h) from the model's header, before it is loaded (m NULL), or from m
// once loaded when it came through standard input: --windows of -T kept for every layer. False
// if not made.
static bool plan_memory(const clip_opts *o, const bd_model *m) {
    bd_model_info mi;
    if (!bd_tool_model_info(o->model_path, m, &mi)) return false;
    mi.mapped = true;  // bd_tool_load_model_latent_mapped
    int ctx = mi.cfg.max_seq, T = o->seq_len && o->seq_len <= ctx ? o->seq_len : ctx < 512 ? ctx : 512;
    long long BT = (long long)o->windows * T;
    bd_memplan p = {0};
    bd_runplan_clipsearch(&p, &mi, o->windows, T, o->n_tokens < BT ? o->n_tokens : (int)BT, &o->c);
    bd_tool_memplan(&p, m ? bd_memplan_weights(&mi) : 0);
    return true;
}

int main(int argc, char **argv) {
    bd_tool_init("bd-clipsearch", help, argc, argv);
    clip_opts o;
    parse_options(argc, argv, &o);
    char why[600];
    bd_model m;
    bool planned = plan_memory(&o, NULL);
    bd_tool_load_model_latent_mapped(o.model_path, &m);
    if (!planned) plan_memory(&o, &m);
    if (bd_qpolicy_check(&o.c.policy, &o.c.q, &m.cfg, why, sizeof why) < 0) bd_fatal("%s", why);
    int T = o.seq_len ? o.seq_len : (m.cfg.max_seq < 512 ? m.cfg.max_seq : 512);
    if (T > m.cfg.max_seq) bd_usage_error("--seq-len %d exceeds the model's context %d", T, m.cfg.max_seq);
    bd_ids ids = {0};
    if (bd_tokens_read(o.calib, NULL, m.cfg.vocab, false, (size_t)o.windows * T, &ids, why, sizeof why) < 0)
        bd_fatal("%s", why);
    int B = (int)(ids.n / (size_t)T);
    if (B == 0) bd_fatal("\"%s\": %zu calibration tokens, fewer than one window of %d", o.calib, ids.n, T);
    if (B < o.windows) bd_log(BD_LOG_WARN, "\"%s\" holds %d windows of %d tokens, not %d", o.calib, B, T, o.windows);
    int N = o.n_tokens < B * T ? o.n_tokens : B * T;

    // One forward pass keeps the inputs of every linear layer; the same random positions serve every layer.
    double t0 = bd_now();
    bd_fwd_state st;
    if (bd_clip_calibrate(&st, &m, ids.ids, B, T, why, sizeof why) < 0) bd_fatal("%s", why);
    int *pos = malloc(sizeof(int) * (size_t)B * T);
    if (!pos) bd_fatal("out of memory");
    bd_clip_positions(pos, B * T, N, bd_tool_self.seed);

    clip_out out = {.w = bd_tool_open_writer(o.output), .path = o.output};
    bd_producer prod = bd_tool_producer();
    if (bd_writer_begin_header(out.w, "bd.clip", &prod, 7) < 0) bd_fatal("cannot write the header");
    msgpack_packer *pk = bd_writer_packer(out.w);
    bd_pack_kv_str(pk, "model", o.model_path);
    bd_pack_kv_str(pk, "quant", bd_qkind_name(o.c.q.kind));
    bd_pack_kv_int(pk, "bits", o.c.q.bits);
    bd_pack_kv_int(pk, "group", o.c.q.group);
    bd_pack_kv_int(pk, "grid", o.c.grid.grid);
    bd_pack_kv_int(pk, "steps", o.c.grid.steps);
    bd_pack_kv_int(pk, "calib_tokens", N);
    if (bd_writer_end_object(out.w) < 0) bd_fatal("write failed");
    bd_progress_start(&out.pr, "clip search", (uint64_t)m.cfg.n_layers * 7, "layers");
    int searched;
    if (bd_clip_model(&m, &st, pos, N, &o.c, write_layer, show_progress, &out, &searched, why, sizeof why) < 0)
        bd_fatal("%s", why);
    bd_progress_finish(&out.pr);
    if (bd_writer_close(out.w) < 0) bd_fatal("\"%s\": write failed: %s", o.output, strerror(errno));
    bd_tool_note("searched %d layers on %d of %d calibration tokens in %.2f s", searched, N, B * T, bd_now() - t0);
    free(pos);
    bd_ids_free(&ids);
    bd_fwd_state_free(&st);
    bd_model_free(&m);
    return 0;
}
