// Generation throughput (bd_generate: KV cache, sampling at temperature 0.7, no early stop)
// in generated tokens/s at batch 1 and 32, against the batched forward pass of the same
// model measured in the same run (bd_forward with logits on B x T tokens): the ratio shows
// what token-at-a-time generation loses to a full-sequence pass. Models: stories260K
// (BD_DATA) and a randomly initialized 110M-shaped Llama (C 768, L 12, NH 12, F 2048,
// V 32000). Medians of RUNS runs. Threads: BD_THREADS (default all CPUs).
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_forward.h"
#include "bd_generate.h"
#include "bd_model_io.h"
#include "bd_progress.h"
#include "bd_threads.h"

#define BENCH_NAME "bench_generate"
#include "bench_util.h"

#define RUNS 3

static int count_only(void *ctx, const bd_gen_sample *s, const bd_gen_stats *st) {
    (void)ctx, (void)s, (void)st;
    return 0;
}

// Generated tokens/s: n samples of K tokens from BOS at batch B (median of RUNS).
static double gen_rate(const bd_model *m, int B, int n, int K, bool unpadded) {
    int32_t bos = 1;
    bd_gen_prompt p = {&bos, 1};
    bd_gen_opts o = {.sampling = {0.7, 0, 1.0}, .max_new = K, .batch = B, .seed = 1, .unpadded = unpadded};
    double r[RUNS];
    for (int i = 0; i < RUNS; i++) {
        bd_gen_stats st;
        char why[512];
        if (bd_generate(m, &p, 1, 0, n, &o, count_only, NULL, &st, why, sizeof why) < 0) {
            fprintf(stderr, "%s: %s\n", BENCH_NAME, why);
            exit(1);
        }
        r[i] = (double)st.new_tokens / st.seconds;
    }
    return bench_median(r, RUNS);
}

// Forward tokens/s on B x T random tokens, logits included (median of RUNS after a warm-up).
static double fwd_rate(const bd_model *m, int B, int T) {
    bd_fwd_state s;
    if (bd_fwd_state_init(&s, &m->cfg, B, T, false) < 0) bench_die("state init");
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * T);
    float *logits = malloc(sizeof(float) * (size_t)B * T * m->cfg.vocab);
    if (!tok || !logits) bench_die("malloc");
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)((bench_urand() + 1.0f) * 0.5f * (m->cfg.vocab - 1));
    if (bd_forward(&s, m, tok, B, T, logits) < 0) bench_die("forward");
    double r[RUNS];
    for (int i = 0; i < RUNS; i++) {
        double t0 = bd_now();
        if (bd_forward(&s, m, tok, B, T, logits) < 0) bench_die("forward");
        r[i] = (double)B * T / (bd_now() - t0);
    }
    free(tok), free(logits);
    bd_fwd_state_free(&s);
    return bench_median(r, RUNS);
}

static void bench(const char *name, const bd_model *m, int fwd_B, int fwd_T, const int *gen_n, const int *gen_K) {
    double fwd = fwd_rate(m, fwd_B, fwd_T);
    // Batch 1 twice: the default step of 32 rows (samples independent of --batch) and the
    // unpadded 1-row step (matrix-vector).
    const int batches[3] = {1, 1, 32}, which[3] = {0, 0, 1};
    const bool unpadded[3] = {false, true, false};
    for (int i = 0; i < 3; i++) {
        int k = which[i];
        double g = gen_rate(m, batches[i], gen_n[k], gen_K[k], unpadded[i]);
        printf("%-14s %5d%s %5d %4d %12.0f %12.0f %8.3f\n", name, batches[i], unpadded[i] ? "u" : " ", gen_n[k],
               gen_K[k], g, fwd, g / fwd);
    }
}

int main(void) {
    const char *th = getenv("BD_THREADS");
    bd_set_num_threads(th ? atoi(th) : 0);
    printf("bench_generate: generated tokens/s (temperature 0.7, %d threads) vs bd_forward tokens/s\n",
           bd_num_threads());
    printf("%-14s %6s %5s %4s %12s %12s %8s   (u: --unpadded)\n", "model", "batch", "n", "K", "gen tok/s", "fwd tok/s",
           "ratio");

    const char *root = getenv("BD_DATA");
    char path[4096], why[512];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", root && *root ? root : "../shared/data");
    bd_model m;
    if (bd_model_load(path, &m, why, sizeof why) < 0) {
        fprintf(stderr, "bench_generate: %s (set BD_DATA)\n", why);
        return 1;
    }
    const int sn[2] = {4, 64}, sk[2] = {256, 256};
    bench("stories260K", &m, 8, 256, sn, sk);
    bd_model_free(&m);

    bench_model_110m(&m);
    const int bn[2] = {1, 32}, bk[2] = {48, 24};
    bench("110M-shaped", &m, 4, 256, bn, bk);
    bd_model_free(&m);
    return 0;
}
