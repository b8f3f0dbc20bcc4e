// Training step throughput of a randomly initialized 110M-shaped Llama (dim 768, 12 layers,
// 12 heads, ffn 2048, vocab 32000, tied) at T=512: one AdamW step (forward, cross-entropy,
// backward, optimizer) per micro-batch of B sequences. Prints tokens/s and model FLOP
// utilization (6 x params x tokens / time, over the sgemm rate measured in the same run on
// the (B*T x 768) x (768 x 2048) shape), and the peak resident memory. One line per B;
// with an argument B, only that B and a machine-readable line "bd B tok/s peak_MB".
// Threads: BD_THREADS (default all CPUs). Steps: BD_BENCH_STEPS (default 3, after 1 warm-up).
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bd_progress.h"
#include "bd_threads.h"
#include "bd_train.h"

#define BENCH_NAME "bench_train"
#include "bench_util.h"

#define T_SEQ 512

int main(int argc, char **argv) {
    const char *th = getenv("BD_THREADS"), *se = getenv("BD_BENCH_STEPS");
    bd_set_num_threads(th ? atoi(th) : 0);
    int steps = se ? atoi(se) : 3, only = argc > 1 ? atoi(argv[1]) : 0;
    bool recompute = getenv("BD_RECOMPUTE") && atoi(getenv("BD_RECOMPUTE"));
    bd_model m;
    bench_model_110m(&m);
    const bd_config c = m.cfg;
    double P = (double)m.n_params;
    if (!only)
        printf("bench_train: 110M-shaped Llama (C 768, L 12, NH 12, F 2048, V 32000, tied; %.1fM params), T %d, %d threads%s\n",
               P / 1e6, T_SEQ, bd_num_threads(), recompute ? ", recompute" : "");
    if (!only)
        printf("%2s %10s %12s %7s %9s | %6s %6s %6s %6s\n", "B", "tokens/s", "sgemm GF/s", "MFU", "peak MB", "fwd%",
               "head%", "bwd%", "opt%");
    for (int B = only ? only : 1; B <= (only ? only : 4); B *= 2) {
        bd_trainer tr;
        bd_adamw_cfg oc = {0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, BD_F32};
        bd_schedule sc = {BD_SCHED_CONSTANT, 1e-4f, 0, 0, 100};
        if (bd_trainer_init(&tr, &m, B, T_SEQ, 1, &oc, &sc, recompute) < 0) bench_die("trainer init");
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * T_SEQ);
        for (int i = 0; i < B * T_SEQ; i++) tok[i] = (int32_t)((bench_urand() + 1) * 0.5f * c.vocab) % c.vocab;
        bd_step_stats st;
        if (bd_trainer_step(&tr, tok, NULL, B, T_SEQ, NULL, &st) < 0) bench_die("warm-up step");
        memset(&tr.st.timing, 0, sizeof tr.st.timing);
        double t0 = bd_now();
        for (int s = 0; s < steps; s++)
            if (bd_trainer_step(&tr, tok, NULL, B, T_SEQ, NULL, &st) < 0) bench_die("step");
        double dt = (bd_now() - t0) / steps, tps = B * T_SEQ / dt;
        double sg = bench_sgemm_gflops(B * T_SEQ, c.dim, c.ffn_dim), mfu = 6 * P * tps / (sg * 1e9);
        bd_train_timing *tm = &tr.st.timing;
        double tot = tm->forward + tm->head + tm->backward + tm->optimizer;
        if (only)
            printf("bd %d %.1f %.0f %.1f %.3f\n", B, tps, bench_peak_mb(), sg, mfu);
        else
            printf("%2d %10.0f %12.1f %6.1f%% %9.0f | %5.1f%% %5.1f%% %5.1f%% %5.1f%%\n", B, tps, sg, 100 * mfu,
                   bench_peak_mb(), 100 * tm->forward / tot, 100 * tm->head / tot, 100 * tm->backward / tot,
                   100 * tm->optimizer / tot);
        fflush(stdout);
        free(tok);
        bd_trainer_free(&tr);
    }
    bd_model_free(&m);
    return 0;
}
