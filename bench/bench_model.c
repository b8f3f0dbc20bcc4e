// llama-bench's counterpart for a bd model file (bench/side_by_side.sh runs both on the same
// weights): prompt processing and generation at batch 1 in one warm process, measured the way
// llama-bench measures pp and tg:
//   pp T: one bd_forward_prefill of T tokens into an empty KV cache (matrix-matrix products, the
//         head at the last position only);
//   tg K: K bd_forward_step calls from an empty cache (positions 0..K-1), each followed by the
//         argmax of its logits (llama-bench samples nothing; an argmax is the least use of them).
// Each figure is tokens/s, the median of R runs after 2 warm-ups (llama-bench: one warm-up, -r
// runs, the mean). Token ids are fixed and spread over the vocabulary.
// Usage: bench_model MODEL [THREADS 1] [T 512] [K 128] [R 5]; prints "pp T <tok/s>", "tg K <tok/s>"
// and "bytes <B>", the weights a generated token reads (every linear and the head, as stored;
// norms, the embedding's one row and the KV cache left out), one per line. bench_model
// --bandwidth prints "bw 1 <GB/s>" and "bw 2 <GB/s>": the read loop of bench_util.h at 1 and 2
// threads, for the fraction of bandwidth a generation figure reaches (bytes x tok/s / bw).
#define BENCH_NAME "bench_model"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_block.h"
#include "bd_forward.h"
#include "bd_memplan.h"
#include "bd_model_io.h"
#include "bd_packed.h"
#include "bd_qat_setup.h"
#include "bd_threads.h"
#include "bench_util.h"

static int32_t token_at(int i, int vocab) { return (int32_t)(1 + (int64_t)i * 7919 % (vocab - 1)); }

static double prefill_rate(const bd_model *m, int T, int R) {
    bd_fwd_state s;
    bd_kv_cache kv;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)T);
    float *logits = malloc(sizeof(float) * (size_t)m->cfg.vocab);
    if (!tok || !logits) bench_die("malloc");
    for (int i = 0; i < T; i++) tok[i] = token_at(i, m->cfg.vocab);
    if (bd_fwd_state_init(&s, &m->cfg, 1, T, false) < 0 || bd_kv_cache_init(&kv, &m->cfg, 1, T) < 0)
        bench_die("the prompt's state");
    double *v = malloc(sizeof(double) * (size_t)R);
    if (!v) bench_die("malloc");
    for (int r = -2; r < R; r++) {
        double t0 = bd_now();
        if (bd_forward_prefill(&s, &kv, m, tok, 1, T, logits) < 0) bench_die(s.why);
        if (r >= 0) v[r] = T / (bd_now() - t0);
    }
    double med = bench_median(v, R);
    free(v), free(tok), free(logits);
    bd_fwd_state_free(&s);
    bd_kv_cache_free(&kv);
    return med;
}

static double generation_rate(const bd_model *m, int K, int R) {
    bd_kv_cache kv;
    float *logits = malloc(sizeof(float) * (size_t)m->cfg.vocab);
    double *v = malloc(sizeof(double) * (size_t)R);
    if (!logits || !v) bench_die("malloc");
    if (bd_kv_cache_init(&kv, &m->cfg, 1, K) < 0) bench_die("the KV cache");
    for (int r = -2; r < R; r++) {
        int32_t tok = token_at(0, m->cfg.vocab);
        double t0 = bd_now();
        for (int pos = 0; pos < K; pos++) {
            if (bd_forward_step(&kv, m, &tok, &pos, 1, logits) < 0) bench_die(kv.why);
            int best = 0;
            for (int i = 1; i < m->cfg.vocab; i++)
                if (logits[i] > logits[best]) best = i;
            tok = best;
        }
        if (r >= 0) v[r] = K / (bd_now() - t0);
    }
    double med = bench_median(v, R);
    free(v), free(logits);
    bd_kv_cache_free(&kv);
    return med;
}

static double linear_bytes(const bd_model *m, int l, bd_linear k) {
    const bd_pk_tensor *t = bd_pk_model_slot(m, l, k);
    bd_linear_slot s = bd_linear_at(&m->w, &m->cfg, l, k);
    return t ? (double)t->row_bytes * t->rows : s.w ? 4.0 * s.in * s.out : 0;
}

static double bytes_per_token(const bd_model *m) {
    double b = linear_bytes(m, 0, BD_HEAD);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < BD_N_LINEARS; k++) b += linear_bytes(m, l, (bd_linear)k);
    return b;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--bandwidth")) {
        double bw[3];
        bench_bandwidth_12(bw, 5);
        printf("bw 1 %.1f\nbw 2 %.1f\n", bw[1], bw[2]);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: bench_model MODEL [THREADS] [T] [K] [R]\n");
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 1, T = argc > 3 ? atoi(argv[3]) : 512, K = argc > 4 ? atoi(argv[4]) : 128,
        R = argc > 5 ? atoi(argv[5]) : 5;
    if (threads < 1 || T < 0 || K < 0 || R < 1) {
        fprintf(stderr, "bench_model: THREADS >= 1, T >= 0, K >= 0, R >= 1\n");
        return 2;
    }
    bd_set_num_threads(threads);
    bd_model m;
    char why[512];
    if (bd_qat_load_model(argv[1], BD_LOAD_RUN | BD_LOAD_MAPPED, &m, why, sizeof why) < 0) {
        fprintf(stderr, "bench_model: %s\n", why);
        return 1;
    }
    uint64_t copied = 0;  // as the tools do, unless BENCH_MAPPED=1 keeps the file's pages
    const char *keep = getenv("BENCH_MAPPED");
    if (!(keep && !strcmp(keep, "1")) && bd_model_copy_mapped(&m, bd_mem_available() / 4, &copied) < 0) {
        fprintf(stderr, "bench_model: out of memory\n");
        return 1;
    }
    if (T > m.cfg.max_seq || K > m.cfg.max_seq) {
        fprintf(stderr, "bench_model: T and K must fit the model's context of %d\n", m.cfg.max_seq);
        return 1;
    }
    if (T > 0) printf("pp %d %.1f\n", T, prefill_rate(&m, T, R));
    if (K > 0) printf("tg %d %.1f\n", K, generation_rate(&m, K, R));
    printf("bytes %.0f\n", bytes_per_token(&m));
    bd_model_free(&m);
    return 0;
}
