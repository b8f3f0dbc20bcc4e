// The cost of BitDistiller's training step: on a randomly initialized 110M-shaped Llama
// (dim 768, 12 layers, 12 heads, ffn 2048, vocab 32000, tied) at T=512, the plain
// full-precision training step (forward, cross-entropy, backward, AdamW) against the QAT
// step (fake-quantize the latent weights at 2 bits, group 128; teacher forward; student
// forward with CAKLD on the head against the teacher's logits; backward; straight-through
// routing to the latent weights; AdamW), both measured in this run. Medians of BD_BENCH_STEPS
// steps (default 3) after one warm-up. Threads: BD_THREADS (default all CPUs).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_forward.h"
#include "bd_progress.h"
#include "bd_qat.h"
#include "bd_threads.h"
#include "bd_train.h"

#define BENCH_NAME "bench_qat"
#include "bench_util.h"

#define T_SEQ 512

int main(void) {
    bench_seed(777);
    const char *th = getenv("BD_THREADS"), *se = getenv("BD_BENCH_STEPS");
    bd_set_num_threads(th ? atoi(th) : 0);
    int steps = se ? atoi(se) : 3;
    if (steps < 1 || steps > 64) steps = 3;
    bd_model teacher, student;
    bench_model_110m(&teacher);
    const bd_config c = teacher.cfg;
    if (bd_model_alloc(&student, &c) < 0) bench_die("model");
    memcpy(student.params, teacher.params, teacher.n_params * sizeof(float));

    printf("bench_qat: 110M-shaped Llama, T %d, %d threads, median of %d steps\n", T_SEQ, bd_num_threads(), steps);
    printf("| B | plain step s | plain tok/s | QAT step s | QAT tok/s | QAT / plain |\n|---|---|---|---|---|---|\n");
    for (int B = 1; B <= 2; B++) {
        int N = B * T_SEQ, V = c.vocab;
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)N), *tgt = malloc(sizeof(int32_t) * (size_t)N);
        for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 7919u + 13u) % (unsigned)V);
        for (int i = 0; i < N; i++) tgt[i] = i % T_SEQ + 1 < T_SEQ ? tok[i + 1] : -1;
        bd_adamw_cfg ocfg = {0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, BD_F32};
        bd_schedule sched = {BD_SCHED_CONSTANT, 1e-5f, 1e-5f, 0, 1000};
        double plain[64], qat[64];
        // Plain full-precision step.
        bd_trainer tr;
        if (bd_trainer_init(&tr, &student, B, T_SEQ, 1, &ocfg, &sched, false) < 0) bench_die("trainer");
        for (int s = 0; s <= steps; s++) {
            bd_step_stats st;
            double t0 = bd_now();
            if (bd_trainer_step(&tr, tok, tgt, B, T_SEQ, NULL, &st) < 0) bench_die("plain step");
            if (s > 0) plain[s - 1] = bd_now() - t0;
        }
        bd_trainer_free(&tr);
        // QAT step: teacher forward + fake-quantized student with CAKLD.
        if (bd_trainer_init(&tr, &student, B, T_SEQ, 1, &ocfg, &sched, false) < 0) bench_die("trainer");
        bd_qat_hooks hooks;
        bd_qspec q = {BD_Q_INT, 2, 128};
        bd_qpolicy pol = {0};
        if (bd_qat_hooks_attach(&hooks, &tr, &q, &pol) < 0) bench_die("hooks");
        bd_distill d;
        bd_loss_spec spec = {BD_LOSS_CAKLD, 0.67f, 1.0f};
        if (bd_distill_init(&d, &spec, B, T_SEQ, V, 0, 1) < 0) bench_die("distill");
        bd_head_loss head = {bd_distill_head, &d};
        bd_fwd_state tst;
        if (bd_fwd_state_init(&tst, &c, B, T_SEQ, false) < 0) bench_die("teacher state");
        float *tl = malloc(sizeof(float) * (size_t)N * V);
        if (!tl) bench_die("teacher logits");
        long long scored = 0;
        for (int i = 0; i < N; i++) scored += tgt[i] >= 0;
        for (int s = 0; s <= steps; s++) {
            bd_step_stats st;
            double t0 = bd_now();
            if (bd_forward(&tst, &teacher, tok, B, T_SEQ, tl) < 0) bench_die("teacher forward");
            bd_distill_begin_step(&d, tl, tgt, (float)(1.0 / (double)scored));
            if (bd_trainer_step(&tr, tok, tgt, B, T_SEQ, &head, &st) < 0) bench_die("QAT step");
            if (s > 0) qat[s - 1] = bd_now() - t0;
        }


        double p = bench_median(plain, steps), qq = bench_median(qat, steps);
        printf("| %d | %.2f | %.0f | %.2f | %.0f | %.2fx |\n", B, p, N / p, qq, N / qq, qq / p);
        fflush(stdout);
        free(tl);
        bd_fwd_state_free(&tst);
        bd_distill_free(&d);
        bd_trainer_free(&tr);
        bd_qat_hooks_free(&hooks);
        free(tok), free(tgt);
    }
    bd_model_free(&teacher);
    bd_model_free(&student);
    return 0;
}
