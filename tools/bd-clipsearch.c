// bd-clipsearch: BitDistiller's clipping search. The full-precision model runs over
// calibration windows once, keeping the inputs of every linear layer; a random subsample of
// token positions then scores, per (output channel, group), the 10 x 10 grid of max/min
// shrink factors. Writes a bd.clip stream that bd-eval --clip and bd-qat --clip apply.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_clip.h"
#include "bd_clipfile.h"
#include "bd_forward.h"
#include "bd_ids.h"
#include "bd_log.h"
#include "bd_progress.h"
#include "bd_qmodel.h"
#include "bd_tool.h"

static const char help[] =
    "Usage: bd-clipsearch --model M --calib TOKENS --bits B --group G [OPTIONS] -o clip.bdz\n"
    "Find per-(output channel, group) clipping ranges for quantizing M's linear layers: for each\n"
    "group choose max' = max*(1-i/20), min' = min*(1-j/20), i, j in 0..9, minimizing the squared\n"
    "error of the group's partial outputs on calibration inputs computed by the full-precision\n"
    "model. q and k projections are not clipped unless --include-qk.\n"
    "\n"
    "  -m, --model M        the full-precision model\n"
    "  -c, --calib TOKENS   calibration data: a bd.tokens stream, or a bd.samples stream (the\n"
    "                       teacher's prompts and completions); \"-\": standard input\n"
    "      --quant KIND     int (default) or nf3\n"
    "      --bits B         bits per weight (int: 2..8; nf3: 3)\n"
    "      --group G        group size along the input dimension (default 128)\n"
    "  -T, --seq-len N      calibration window length (default min(512, model context))\n"
    "      --windows N      calibration windows run through the model (default 8)\n"
    "      --tokens N       token positions subsampled for the error (default 512)\n"
    "      --include-qk     also clip the q and k projections\n"
    "      --exclude PAT    do not search layers matching PAT (they stay unclipped)\n"
    "      --grid N         shrink step 1/N (default 20)\n"
    "      --steps N        shrink factors 0..N-1 for max and min (default 10)\n"
    "  -o, --output FILE    the bd.clip stream (default: standard output)\n"
    BD_COMMON_HELP
    "\nExit status: 0 on success, 1 on invalid input, 2 on usage errors.\n"
    "See bd-clipsearch(1), bd-eval(1), bd-stream(5).\n";

enum { OPT_QUANT = BD_OPT_FIRST_TOOL, OPT_BITS, OPT_GROUP, OPT_WINDOWS, OPT_TOKENS, OPT_QK, OPT_EXCLUDE, OPT_GRID, OPT_STEPS };

// Concatenated ids (at most max_ids) of a bd.tokens stream, or of the prompts and
// completions of a bd.samples stream (the teacher's own text), checked against the vocabulary.
static int32_t *read_calib(const char *path, int V, size_t max_ids, size_t *n_out) {
    bd_reader *r = bd_tool_open_reader(path, NULL);
    bool samples = strcmp(bd_reader_schema(r), "bd.samples") == 0;
    if (!samples && strcmp(bd_reader_schema(r), "bd.tokens") != 0)
        bd_fatal("\"%s\" header: schema is \"%s\", expected \"bd.tokens\" or \"bd.samples\"", path, bd_reader_schema(r));
    int32_t *ids = malloc(max_ids * sizeof *ids);
    if (!ids) bd_fatal("out of memory");
    size_t n = 0;
    const msgpack_object *rec;
    int rc;
    bd_ids all = {0};
    char why[400];
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        int e = samples ? bd_ids_append(&all, rec, "prompt", V, why, sizeof why) : 0;
        if (e == 0) e = bd_ids_append(&all, rec, samples ? "completion" : "ids", V, why, sizeof why);
        if (e < 0) bd_fatal("\"%s\" record %llu: %s", path, (unsigned long long)bd_reader_record_index(r), why);
        if (all.n > max_ids) all.n = max_ids;  // enough: the rest is only validated
    }
    n = all.n;
    memcpy(ids, all.ids, n * sizeof *ids);
    bd_ids_free(&all);
    if (rc != BD_EOF) bd_tool_reader_fatal(r);  // read to the end: a truncated stream is an error
    bd_reader_close(r);
    *n_out = n;
    return ids;
}

int main(int argc, char **argv) {
    bd_tool_init("bd-clipsearch", help, argc, argv);
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"calib", required_argument, 0, 'c'},
        {"quant", required_argument, 0, OPT_QUANT}, {"bits", required_argument, 0, OPT_BITS},
        {"group", required_argument, 0, OPT_GROUP}, {"seq-len", required_argument, 0, 'T'},
        {"windows", required_argument, 0, OPT_WINDOWS}, {"tokens", required_argument, 0, OPT_TOKENS},
        {"include-qk", no_argument, 0, OPT_QK}, {"exclude", required_argument, 0, OPT_EXCLUDE},
        {"grid", required_argument, 0, OPT_GRID}, {"steps", required_argument, 0, OPT_STEPS},
        {"output", required_argument, 0, 'o'}, BD_COMMON_LONGOPTS, {0, 0, 0, 0}};
    const char *model_path = NULL, *calib = NULL, *output = "-";
    bd_qspec q = {BD_Q_INT, 0, 128};
    bd_qpolicy policy = {0};
    int seq_len = 0, windows = 8, n_tokens = 512;
    bool include_qk = false;
    bd_clip_grid grid = {20, 10};
    int opt;
    while ((opt = getopt_long(argc, argv, "m:c:T:o:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_path = optarg; break;
        case 'c': calib = optarg; break;
        case OPT_QUANT:
            if (strcmp(optarg, "int") == 0) q.kind = BD_Q_INT;
            else if (strcmp(optarg, "nf3") == 0) q.kind = BD_Q_NF3;
            else bd_usage_error("--quant: \"%s\": clipping applies to int and nf3", optarg);
            break;
        case OPT_BITS: q.bits = (int)bd_arg_int("--bits", optarg, 2, 8); break;
        case OPT_GROUP: q.group = (int)bd_arg_int("--group", optarg, 1, 1 << 24); break;
        case 'T': seq_len = (int)bd_arg_int("--seq-len", optarg, 2, 1 << 16); break;
        case OPT_WINDOWS: windows = (int)bd_arg_int("--windows", optarg, 1, 4096); break;
        case OPT_TOKENS: n_tokens = (int)bd_arg_int("--tokens", optarg, 1, 1 << 20); break;
        case OPT_QK: include_qk = true; break;
        case OPT_EXCLUDE:
            if (bd_qpolicy_exclude(&policy, optarg) < 0) bd_usage_error("--exclude: too many patterns or \"%s\" too long", optarg);
            break;
        case OPT_GRID: grid.grid = (int)bd_arg_int("--grid", optarg, 1, 1000); break;
        case OPT_STEPS: grid.steps = (int)bd_arg_int("--steps", optarg, 1, 1000); break;
        case 'o': output = optarg; break;
        default: bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    if (!model_path) bd_usage_error("--model is required");
    if (!calib) bd_usage_error("--calib is required");
    if (q.bits == 0) bd_usage_error("--bits is required");
    if (grid.steps > grid.grid) bd_usage_error("--steps %d exceeds --grid %d (shrinking past zero)", grid.steps, grid.grid);
    if (optind < argc) bd_usage_error("unexpected argument \"%s\"", argv[optind]);
    char why[512];

    bd_model m;
    bd_tool_load_model_latent(model_path, &m);
    if (bd_qpolicy_check(&policy, &q, &m.cfg, why, sizeof why) < 0) bd_fatal("%s", why);
    int T = seq_len ? seq_len : (m.cfg.max_seq < 512 ? m.cfg.max_seq : 512);
    if (T > m.cfg.max_seq) bd_usage_error("--seq-len %d exceeds the model's context %d", T, m.cfg.max_seq);
    size_t n_ids;
    int32_t *ids = read_calib(calib, m.cfg.vocab, (size_t)windows * T, &n_ids);
    int B = (int)(n_ids / (size_t)T);
    if (B == 0) bd_fatal("\"%s\": %zu calibration tokens, fewer than one window of %d", calib, n_ids, T);
    if (B < windows) bd_log(BD_LOG_WARN, "\"%s\" holds %d windows of %d tokens, not %d", calib, B, T, windows);
    int N = n_tokens < B * T ? n_tokens : B * T;

    // One forward pass keeps the inputs of every linear layer.
    double t0 = bd_now();
    bd_fwd_state st;
    if (bd_fwd_state_init(&st, &m.cfg, B, T, true) < 0) bd_fatal("out of memory for %d x %d calibration activations", B, T);
    if (bd_forward(&st, &m, ids, B, T, NULL) < 0) bd_fatal("forward pass failed");

    // The same random positions for every layer (as one calibration subsample).
    int *pos = malloc(sizeof(int) * (size_t)B * T);
    for (int i = 0; i < B * T; i++) pos[i] = i;
    uint64_t rng = bd_tool_self.seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < N; i++) {  // partial Fisher-Yates: the first N entries are the sample
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        int j = i + (int)(rng % (uint64_t)(B * T - i));
        int tmp = pos[i]; pos[i] = pos[j]; pos[j] = tmp;
    }

    bd_writer *w = bd_tool_open_writer(output);
    bd_producer prod = bd_tool_producer();
    if (bd_writer_begin_header(w, "bd.clip", &prod, 7) < 0) bd_fatal("cannot write the header");
    msgpack_packer *pk = bd_writer_packer(w);
    bd_pack_kv_str(pk, "model", model_path);
    bd_pack_kv_str(pk, "quant", bd_qkind_name(q.kind));
    bd_pack_kv_int(pk, "bits", q.bits);
    bd_pack_kv_int(pk, "group", q.group);
    bd_pack_kv_int(pk, "grid", grid.grid);
    bd_pack_kv_int(pk, "steps", grid.steps);
    bd_pack_kv_int(pk, "calib_tokens", N);
    if (bd_writer_end_object(w) < 0) bd_fatal("write failed");

    const bd_config *c = &m.cfg;
    int QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    struct { const char *name; float *weights; float *inputs; int OC, C; } lin[7] = {
        {"wq", m.w.wq, st.xn_att, QD, c->dim}, {"wk", m.w.wk, st.xn_att, KD, c->dim},
        {"wv", m.w.wv, st.xn_att, KD, c->dim}, {"wo", m.w.wo, st.att, c->dim, QD},
        {"w1", m.w.w1, st.xn_ffn, c->ffn_dim, c->dim}, {"w3", m.w.w3, st.xn_ffn, c->ffn_dim, c->dim},
        {"w2", m.w.w2, st.hg, c->dim, c->ffn_dim}};
    size_t maxC = (size_t)(c->dim > c->ffn_dim ? c->dim : c->ffn_dim);
    if ((size_t)QD > maxC) maxC = (size_t)QD;
    float *X = malloc(sizeof(float) * (size_t)N * maxC);
    float *mx = malloc(sizeof(float) * (size_t)(c->ffn_dim > QD ? c->ffn_dim : QD) * maxC);
    float *mn = malloc(sizeof(float) * (size_t)(c->ffn_dim > QD ? c->ffn_dim : QD) * maxC);
    if (!X || !mx || !mn) bd_fatal("out of memory");
    bd_progress pr;
    bd_progress_start(&pr, "clip search", (uint64_t)c->n_layers * 7, "layers");
    int searched = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < 7; k++) {
            bd_progress_update(&pr, (uint64_t)(l * 7 + k));
            bool qk = k < 2;
            if ((qk && !include_qk) || !bd_qpolicy_covers(&policy, lin[k].name, l)) continue;
            int OC = lin[k].OC, C = lin[k].C, G = bd_qspec_group(&q, C);
            const float *act = bd_fwd_layer(&st, lin[k].inputs, l, (size_t)C);
            for (int i = 0; i < N; i++) memcpy(X + (size_t)i * C, act + (size_t)pos[i] * C, sizeof(float) * (size_t)C);
            const float *W = lin[k].weights + (size_t)l * OC * C;
            int rc = bd_clip_search(mx, mn, W, X, N, OC, C, &q, grid);
            if (rc < 0) bd_fatal("layer %d %s: clip search failed: %s", l, lin[k].name, bd_strerror(rc));
            if (bd_clipfile_write_record(w, lin[k].name, l, mx, mn, OC, bd_qspec_ngroups(C, G)) < 0)
                bd_fatal("\"%s\": write failed: %s", output, strerror(errno));
            searched++;
        }
    bd_progress_finish(&pr);
    if (bd_writer_close(w) < 0) bd_fatal("\"%s\": write failed: %s", output, strerror(errno));
    bd_log(BD_LOG_INFO, "searched %d layers on %d of %d calibration tokens in %.2f s", searched, N, B * T, bd_now() - t0);
    free(X); free(mx); free(mn); free(pos); free(ids);
    bd_fwd_state_free(&st);
    bd_model_free(&m);
    return 0;
}
