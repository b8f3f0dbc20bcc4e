// Forward pass throughput of a randomly initialized 110M-shaped Llama (dim 768, 12 layers,
// 12 heads, 12 KV heads, ffn 2048, vocab 32000) at T=512, B=1..4: tokens/s and achieved
// GFLOP/s (matmul FLOPs: 2*linear params*tokens + causal attention 2*2*L*T^2*C/2 per
// sequence + the head), against the sgemm rate of this machine on the same (B*T x 768) x
// (768 x 2048) shape measured in the same run (ratio = model FLOP utilization). Forward: medians of
// RUNS runs; a breakdown of the time per kernel kind; KV-cache generation tokens/s at batch
// 1 and 32. Threads: BD_THREADS (default all CPUs).
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_forward.h"
#include "bd_progress.h"
#include "bd_threads.h"

#define BENCH_NAME "bench_forward"
#include "bench_util.h"

#define RUNS 3
#define T_SEQ 512

int main(void) {
    const char *th = getenv("BD_THREADS");
    bd_set_num_threads(th ? atoi(th) : 0);
    bd_model m;
    bench_model_110m(&m);
    const bd_config c = m.cfg;

    double C = c.dim, L = c.n_layers, F = c.ffn_dim, V = c.vocab, T = T_SEQ;
    double lin_params = L * (4 * C * C + 3 * C * F);  // wq wk wv wo (KV = NH) + w1 w2 w3
    printf("bench_forward: 110M-shaped Llama (C 768, L 12, NH 12, KV 12, F 2048, V 32000), T %d, %d threads\n", T_SEQ,
           bd_num_threads());
    printf("%2s %10s %10s %9s %12s %7s | %6s %6s %6s %6s %6s\n", "B", "tokens/s", "fwd GF/s", "sgemm GF/s",
           "ms/forward", "MFU", "linear", "head", "attn", "norm", "other");
    int32_t *tok = malloc((size_t)4 * T_SEQ * sizeof(int32_t));
    for (int i = 0; i < 4 * T_SEQ; i++) tok[i] = (int32_t)((bench_urand() + 1.0f) * 0.5f * 31999);
    float *logits = malloc((size_t)4 * T_SEQ * c.vocab * sizeof(float));
    if (!tok || !logits) bench_die("malloc");
    for (int B = 1; B <= 4; B++) {
        double peak = bench_sgemm_gflops(B * T_SEQ, c.dim, c.ffn_dim);
        bd_fwd_state s;
        if (bd_fwd_state_init(&s, &c, B, T_SEQ, false) < 0) bench_die("state init");
        if (bd_forward(&s, &m, tok, B, T_SEQ, logits) < 0) bench_die("forward");  // warm-up
        memset(&s.timing, 0, sizeof s.timing);
        double r[RUNS];
        for (int i = 0; i < RUNS; i++) {
            double t0 = bd_now();
            if (bd_forward(&s, &m, tok, B, T_SEQ, logits) < 0) bench_die("forward");
            r[i] = bd_now() - t0;
        }
        double t = bench_median(r, RUNS), tokens = B * T;
        double flops = 2 * lin_params * tokens + B * 2.0 * 2.0 * L * T * T * C / 2 + 2 * C * V * tokens;
        bd_fwd_timing *tm = &s.timing;
        double tot =
                tm->embed + tm->norm + tm->linear + tm->rope + tm->attention + tm->swiglu + tm->residual + tm->head;
        double other = tm->embed + tm->rope + tm->swiglu + tm->residual;
        printf("%2d %10.0f %10.1f %10.1f %12.1f %6.0f%% | %5.1f%% %5.1f%% %5.1f%% %5.1f%% %5.1f%%\n", B, tokens / t,
               flops / t * 1e-9, peak, t * 1e3, 100 * flops / t * 1e-9 / peak, 100 * tm->linear / tot,
               100 * tm->head / tot, 100 * tm->attention / tot, 100 * tm->norm / tot, 100 * other / tot);
        if (B == 4)
            printf("   other = embedding %.1f%%, rope %.1f%%, swiglu %.1f%%, residual %.1f%%\n", 100 * tm->embed / tot,
                   100 * tm->rope / tot, 100 * tm->swiglu / tot, 100 * tm->residual / tot);
        bd_fwd_state_free(&s);
    }

    // Generation through the KV cache: one token per sequence per step from position 0.
    printf("%6s %8s %10s %12s\n", "gen B", "steps", "tokens/s", "ms/step");
    int gen_b[2] = {1, 32}, gen_steps[2] = {64, 32};
    for (int gi = 0; gi < 2; gi++) {
        int B = gen_b[gi], steps = gen_steps[gi];
        bd_kv_cache kv;
        if (bd_kv_cache_init(&kv, &c, B, steps) < 0) bench_die("kv cache init");
        float *lg = malloc((size_t)B * c.vocab * sizeof(float));
        int32_t *in = malloc((size_t)B * sizeof(int32_t));
        int *pos = malloc((size_t)B * sizeof(int));
        if (!lg || !in || !pos) bench_die("malloc");
        double t0 = bd_now();
        for (int t = 0; t < steps; t++) {
            for (int b = 0; b < B; b++) in[b] = tok[(b * 7 + t) % (4 * T_SEQ)], pos[b] = t;
            if (bd_forward_step(&kv, &m, in, pos, B, lg) < 0) bench_die("step");
        }
        double dt = bd_now() - t0;
        printf("%6d %8d %10.1f %12.2f\n", B, steps, B * steps / dt, dt / steps * 1e3);
        free(lg), free(in), free(pos);
        bd_kv_cache_free(&kv);
    }
    free(tok), free(logits);
    bd_model_free(&m);
    return 0;
}
