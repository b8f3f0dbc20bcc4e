// BitNet Distillation's speed-and-memory table on a randomly initialized 110M-shaped Llama
// (C 768, L 12, NH 12, F 2048, V 32000, tied; bench_model_110m), five configurations:
//   f32        the full-precision model, written as a bd.model stream (f32 tensors);
//   tq2        a ternary student with 8-bit activations (W1.58A8: quant ternary, act_bits 8),
//              packed as bd-pack packs it (bd_pk_model_pack, tq2 blocks) into a bd.packed stream,
//              its tied head/embedding f32 (bd-pack --head-format f32);
//   tq2+SubLN  the same after bd_model_add_subln(BD_SUBLN_PAPER) (norms before wo and w2);
//   tq2 q8/q6 head  tq2 with the tied head/embedding quantized after packing
//              (bd_pk_model_pack_head: bd-pack --head-format q8, q6).
// A builder process writes the files into a temporary directory (BD_TMP or /tmp,
// removed at the end). Then, in each of ROUNDS rounds, one child process per configuration
// loads its file as bd-eval does (bd_qat_load_model: a packed model runs with the int8
// kernels its act_bits asks for) and measures, at 1 and 2 threads:
//   - generation at batch 1: bd_generate (KV cache, one unpadded row per step, as
//     bd-teacher-gen --unpadded -b 1; temperature 0.7) of 64 new tokens after an 8-token
//     prompt; the rate is forward steps per second (8 prompt + 63 new tokens fed, sampling
//     included), i.e. the decoding rate per token; median of GEN_RUNS runs after as many warm-ups;
//   - prompt processing: one bd_forward_prefill of a 512-token prompt at batch 1 (fills the
//     KV cache; logits of the last position only, as generation needs), tokens/s.
// The child sends its figures through a pipe; the parent reads its peak RSS (ru_maxrss) with
// wait4(), so each memory figure is that configuration alone (plus the parent's small RSS at
// fork, printed). Figures are medians over the rounds; ratios are against f32 of the same run.
// Also: the machine's read bandwidth (bench_bandwidth_12, measured in every round, in the
// parent before its children) and the fraction of it each configuration's generation reaches (weight bytes read per token / time per token), and the aims
// with "met" / "not met".
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bd_forward.h"
#include "bd_generate.h"
#include "bd_model_io.h"
#include "bd_packed.h"
#include "bd_progress.h"
#include "bd_qat_setup.h"
#include "bd_qmodel.h"
#include "bd_threads.h"

#define BENCH_NAME "bench_bitnet"
#include "bench_util.h"

#define ROUNDS 3
#define GEN_PROMPT 8
#define GEN_NEW 64
#define GEN_RUNS 3  // generations measured per thread count (after as many warm-ups)
#define PP_T 512
#define NCFG 5

static const char *const cfg_names[NCFG] = {"f32", "tq2 A8", "tq2 A8 SubLN", "tq2 A8 q8 head", "tq2 A8 q6 head"};
static const char *const cfg_files[NCFG] = {"f32.bdz", "tq2.bdz", "tq2_subln.bdz", "tq2_q8.bdz", "tq2_q6.bdz"};
static char tmpdir[4096];
static char paths[NCFG][4200];

// What a child sends back.
typedef struct {
    int ok;
    int act_int8;       // the packed kernels quantize activations to int8
    int n_tq2;          // linears packed as tq2
    int subln;          // the loaded config's SubLN placement
    double load_s;      // bd_qat_load_model
    double wbytes;      // weight bytes read per generated token (block linears + head)
    double head_bytes;  // of which the head
    double gen[3];      // [threads] forward steps/s at batch 1
    double pp[3];       // [threads] prompt tokens/s
} child_result;

static void cleanup(void) {
    for (int c = 0; c < NCFG; c++)
        if (paths[c][0]) unlink(paths[c]);
    if (tmpdir[0]) rmdir(tmpdir);
}

static int count_only(void *ctx, const bd_gen_sample *s, const bd_gen_stats *st) {
    (void)ctx, (void)s, (void)st;
    return 0;
}

// ---- the builder: the three model files ----

static void check(int rc, const char *what, const char *why) {
    if (rc < 0) {
        fprintf(stderr, "%s: %s: %s\n", BENCH_NAME, what, why);
        _exit(1);
    }
}

// The ternary W1.58A8 student spec on m's latent weights, packed as bd-pack packs it with
// --head-format head, saved.
static void save_ternary(bd_model *m, const char *path, const bd_producer *prod, bd_pk_type head) {
    char why[512];
    m->quant = (bd_qspec){BD_Q_TERNARY, 2, 0};
    m->qpolicy = (bd_qpolicy){.act_bits = 8};
    check(bd_qpolicy_check(&m->qpolicy, &m->quant, &m->cfg, why, sizeof why), "qpolicy", why);
    check(bd_pk_model_pack(m, why, sizeof why), "pack", why);
    check(bd_pk_model_pack_head(m, head, why, sizeof why), "pack head", why);
    check(bd_pk_model_save(m, path, prod, why, sizeof why), path, why);
}

static void build_files(void) {
    char why[512];
    char *argv[] = {(char *)BENCH_NAME, NULL};
    bd_producer prod = {BENCH_NAME, 1, argv};
    bd_model m;
    bench_seed(1);
    bench_model_110m(&m);
    check(bd_model_save(&m, paths[0], &prod, BD_F32, why, sizeof why), paths[0], why);
    save_ternary(&m, paths[1], &prod, BD_PK_F32);
    save_ternary(&m, paths[3], &prod, BD_PK_Q8);  // packs again: the head from the f32 weights each time
    save_ternary(&m, paths[4], &prod, BD_PK_Q6);
    bd_model_free(&m);
    bench_seed(1);  // the same weights, with SubLN norms (ones) before wo and w2
    bench_model_110m(&m);
    check(bd_model_add_subln(&m, BD_SUBLN_PAPER, 1e-8f, why, sizeof why), "subln", why);
    save_ternary(&m, paths[2], &prod, BD_PK_F32);
    bd_model_free(&m);
}

// ---- a measuring child ----

static double gen_rate(const bd_model *m, const int32_t *prompt, int K) {
    bd_gen_prompt p = {prompt, GEN_PROMPT};
    bd_gen_opts o = {.sampling = {0.7, 0, 1.0}, .max_new = K, .batch = 1, .seed = 1, .unpadded = true};
    bd_gen_stats st;
    char why[512];
    if (bd_generate(m, &p, 1, 0, 1, &o, count_only, NULL, &st, why, sizeof why) < 0) return NAN;
    return (double)st.steps / st.seconds;
}

static double pp_rate(bd_fwd_state *s, bd_kv_cache *kv, const bd_model *m, const int32_t *tok, int T, float *logits) {
    double t0 = bd_now();
    if (bd_forward_prefill(s, kv, m, tok, 1, T, logits) < 0) return NAN;
    return T / (bd_now() - t0);
}

static void run_child(int c, int fd) {
    child_result r = {0};
    char why[600];
    bd_model m;
    double t0 = bd_now();
    if (bd_qat_load_model(paths[c], false, &m, why, sizeof why) < 0) {
        fprintf(stderr, "%s: %s\n", BENCH_NAME, why);
        _exit(1);
    }
    r.load_s = bd_now() - t0;
    const bd_config *cfg = &m.cfg;
    r.act_int8 = m.packed && m.packed->act_int8;
    r.subln = cfg->subln;
    bd_param_entry tab[BD_MAX_PARAMS];
    size_t total;
    int np = bd_param_table(cfg, tab, &total);
    for (int i = 0; i < np; i++) {
        int k = bd_linear_parse(tab[i].name);
        if (!tab[i].is_linear || k < 0) continue;
        for (int l = 0; l < cfg->n_layers; l++) {
            const bd_pk_tensor *t = bd_pk_model_slot(&m, l, (bd_linear)k);
            r.n_tq2 += t && t->type == BD_PK_TQ2;
            r.wbytes += t ? (double)t->row_bytes * t->rows : 4.0 * (double)tab[i].numel / cfg->n_layers;
        }
    }
    const bd_pk_tensor *h = bd_pk_model_slot(&m, 0, BD_HEAD);
    r.head_bytes = h ? (double)h->row_bytes * h->rows : 4.0 * cfg->vocab * cfg->dim;
    r.wbytes += r.head_bytes;

    int32_t prompt[GEN_PROMPT], *tok = malloc(sizeof(int32_t) * PP_T);
    float *logits = malloc(sizeof(float) * cfg->vocab);
    if (!tok || !logits) _exit(1);
    for (int i = 0; i < PP_T; i++) tok[i] = (int32_t)((bench_urand() + 1.0f) * 0.5f * (cfg->vocab - 1));
    prompt[0] = cfg->bos;
    for (int i = 1; i < GEN_PROMPT; i++) prompt[i] = tok[i];
    bd_fwd_state s;
    bd_kv_cache kv;
    if (bd_fwd_state_init(&s, cfg, 1, PP_T, false) < 0 || bd_kv_cache_init(&kv, cfg, 1, PP_T) < 0) _exit(1);
    for (int th = 1; th <= 2; th++) {
        bd_set_num_threads(th);
        // Warm-ups (thread start-up, first touch of buffers: bd_generate allocates its cache and
        // logits per call, and the first calls of a process fault their pages in), then the
        // median of GEN_RUNS generations and one prompt.
        if (isnan(pp_rate(&s, &kv, &m, tok, 64, logits))) _exit(1);
        for (int w = 0; w < GEN_RUNS; w++)
            if (isnan(gen_rate(&m, prompt, GEN_NEW))) _exit(1);
        double g[GEN_RUNS];
        for (int k = 0; k < GEN_RUNS; k++) g[k] = gen_rate(&m, prompt, GEN_NEW);
        r.gen[th] = bench_median(g, GEN_RUNS);
        r.pp[th] = pp_rate(&s, &kv, &m, tok, PP_T, logits);
        if (isnan(r.gen[th]) || isnan(r.pp[th])) _exit(1);
    }
    r.ok = 1;
    ssize_t n = write(fd, &r, sizeof r);
    _exit(n == (ssize_t)sizeof r ? 0 : 1);
}

// Forks the builder (c < 0: build_files) or the measuring child of configuration c, reads a child_result when want_result, and
// returns the child's peak RSS in MB (wait4); exits on any failure.
static double run_forked(int c, bool want_result, child_result *out) {
    int fds[2];
    if (pipe(fds) < 0) bench_die("pipe");
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) bench_die("fork");
    if (pid == 0) {
        close(fds[0]);
        if (want_result) run_child(c, fds[1]);
        build_files();
        _exit(0);
    }
    close(fds[1]);
    child_result r = {0};
    size_t got = 0;
    while (want_result && got < sizeof r) {
        ssize_t n = read(fds[0], (char *)&r + got, sizeof r - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) bench_die("wait4");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || (want_result && (got != sizeof r || !r.ok))) {
        fprintf(stderr, "%s: the %s process for %s failed\n", BENCH_NAME, want_result ? "measuring" : "builder",
                want_result ? cfg_names[c] : "the model files");
        exit(1);
    }
    if (out) *out = r;
    return (double)ru.ru_maxrss / 1024.0;
}

// Resident memory of this process now, in MB.
static double rss_now_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static void row(const char *label, const double v[NCFG], const char *fmt) {
    printf("%-34s", label);
    for (int c = 0; c < NCFG; c++) {
        char buf[32];
        snprintf(buf, sizeof buf, fmt, v[c]);
        printf(" %14s", buf);
        if (c > 0) printf(" %7.2fx", v[c] / v[0]);
    }
    printf("\n");
}

static const char *met(bool ok) { return ok ? "met" : "not met"; }

int main(void) {
    const char *base = getenv("BD_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/bench_bitnet.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "%s: cannot create a directory in %s: %s\n", BENCH_NAME, base && *base ? base : "/tmp",
                strerror(errno));
        return 1;
    }
    for (int c = 0; c < NCFG; c++) snprintf(paths[c], sizeof paths[c], "%s/%s", tmpdir, cfg_files[c]);
    atexit(cleanup);

    double load[3] = {0};
    if (getloadavg(load, 3) < 0) load[0] = NAN;
    printf("bench_bitnet: 110M-shaped random Llama (C 768, L 12, NH 12, F 2048, V 32000, tied head), "
           "kernels %s,\nmedians of %d rounds (each: one process per configuration, loading its file); "
           "load average %.2f at start\n\n",
           bd_pk_simd_name(bd_pk_simd()), ROUNDS, load[0]);

    double t0 = bd_now();
    double build_rss = run_forked(-1, false, NULL);
    double fsize[NCFG];
    for (int c = 0; c < NCFG; c++) {
        struct stat st;
        if (stat(paths[c], &st) < 0) bench_die("stat");
        fsize[c] = (double)st.st_size / 1e6;
    }
    printf("model files written in %.1f s (builder peak RSS %.0f MB)\n", bd_now() - t0, build_rss);

    child_result res[ROUNDS][NCFG];
    double rss[NCFG][ROUNDS];
    bool tty = isatty(STDERR_FILENO);
    double bwr[3][ROUNDS], fork_rss = 0;  // [threads][round] read bandwidth, measured in every round
    for (int k = 0; k < ROUNDS; k++) {
        double b[3];
        bench_bandwidth_12(b, 3);  // its buffer is unmapped again before the children fork
        bwr[1][k] = b[1], bwr[2][k] = b[2];
        if (rss_now_mb() > fork_rss) fork_rss = rss_now_mb();
        for (int c = 0; c < NCFG; c++) {
            if (tty) fprintf(stderr, "\rround %d/%d: %-14s", k + 1, ROUNDS, cfg_names[c]);
            rss[c][k] = run_forked(c, true, &res[k][c]);
        }
    }
    if (tty) fprintf(stderr, "\r%40s\r", "");

    // Medians over the rounds.
    double bw[3] = {0}, bwlo[3] = {0}, bwhi[3] = {0};
    for (int th = 1; th <= 2; th++) {
        bw[th] = bench_median(bwr[th], ROUNDS);  // sorts: [0] lowest, [ROUNDS-1] highest
        bwlo[th] = bwr[th][0], bwhi[th] = bwr[th][ROUNDS - 1];
    }
    printf("parent RSS at fork %.1f MB (in every child's peak)\n", fork_rss);
    printf("memory read bandwidth (median of the rounds, range): %.1f GB/s (%.1f-%.1f) at 1 thread, %.1f GB/s "
           "(%.1f-%.1f) at 2 threads\n\n",
           bw[1], bwlo[1], bwhi[1], bw[2], bwlo[2], bwhi[2]);
    double gen[3][NCFG], pp[3][NCFG], mrss[NCFG], ld[NCFG], wb[NCFG], hb[NCFG];
    for (int c = 0; c < NCFG; c++) {
        double v[ROUNDS];
        for (int th = 1; th <= 2; th++) {
            for (int k = 0; k < ROUNDS; k++) v[k] = res[k][c].gen[th];
            gen[th][c] = bench_median(v, ROUNDS);
            for (int k = 0; k < ROUNDS; k++) v[k] = res[k][c].pp[th];
            pp[th][c] = bench_median(v, ROUNDS);
        }
        for (int k = 0; k < ROUNDS; k++) v[k] = res[k][c].load_s;
        ld[c] = bench_median(v, ROUNDS);
        mrss[c] = bench_median(rss[c], ROUNDS);
        wb[c] = res[0][c].wbytes / 1e6, hb[c] = res[0][c].head_bytes / 1e6;
    }

    printf("%-34s %14s", "figure", cfg_names[0]);
    for (int c = 1; c < NCFG; c++) printf(" %14s %7s", cfg_names[c], "x f32");
    printf("\n");
    row("model file (MB)", fsize, "%.1f");
    row("peak RSS: load + both runs (MB)", mrss, "%.1f");
    row("weights read per token (MB)", wb, "%.1f");
    row("  of which the head (MB)", hb, "%.1f");
    row("load time (s)", ld, "%.2f");
    double frac[3][NCFG];
    for (int th = 1; th <= 2; th++) {
        char label[64];
        snprintf(label, sizeof label, "generation tok/s, batch 1, %dt", th);
        row(label, gen[th], "%.1f");
        snprintf(label, sizeof label, "prompt 512 tok/s, %dt", th);
        row(label, pp[th], "%.1f");
        for (int c = 0; c < NCFG; c++) frac[th][c] = 100.0 * wb[c] * 1e6 * gen[th][c] / (bw[th] * 1e9);
        snprintf(label, sizeof label, "generation %% of read bandwidth, %dt", th);
        row(label, frac[th], "%.0f%%");
    }
    printf("\nchecks: tq2 linears %d / %d / %d / %d (of %d), int8 activations %s / %s / %s / %s, SubLN %s / %s\n",
           res[0][1].n_tq2, res[0][2].n_tq2, res[0][3].n_tq2, res[0][4].n_tq2, 12 * BD_N_LINEARS,
           res[0][1].act_int8 ? "yes" : "NO", res[0][2].act_int8 ? "yes" : "NO", res[0][3].act_int8 ? "yes" : "NO",
           res[0][4].act_int8 ? "yes" : "NO", bd_subln_name((bd_subln)res[0][1].subln),
           bd_subln_name((bd_subln)res[0][2].subln));
    printf("generation: forward steps/s of bd_generate (%d-token prompt + %d new, unpadded batch 1, sampling); "
           "prompt: one bd_forward_prefill, last-position logits only\n",
           GEN_PROMPT, GEN_NEW);
    printf("bound if bandwidth-bound: f32 bytes / tq2 bytes per token = %.2fx with the f32 head, %.2fx with q8, %.2fx "
           "with q6\n\n",
           wb[0] / wb[1], wb[0] / wb[3], wb[0] / wb[4]);

    printf("aims of the BitNet Distillation issue (not tuned for):\n");
    for (int c = 1; c < NCFG; c++)
        for (int th = 1; th <= 2; th++) {
            double g = gen[th][c] / gen[th][0], p = pp[th][c] / pp[th][0];
            printf("  %-12s %dt: generation >= 4x f32: %.2fx %-7s | >= 70%% of bandwidth: %.0f%% %-7s | prompt >= "
                   "1.5x f32: %.2fx %s\n",
                   cfg_names[c], th, g, met(g >= 4.0), frac[th][c], met(frac[th][c] >= 70.0), p, met(p >= 1.5));
        }
    getloadavg(load, 3);
    printf("load average %.2f at the end (the machine has %ld CPUs; other work inflates every figure's noise)\n",
           load[0], sysconf(_SC_NPROCESSORS_ONLN));
    return 0;
}
