// Multiple-choice scoring rate (items/s) of the two exact methods of bd_mc.h: one padded
// batch per item (BATCH, what bd-eval uses) and a shared-prefix KV cache continued token by
// token (SHARED); on stories260K (HellaSwag and PIQA from BD_DATA) and on a randomly
// initialized 110M-shaped Llama with the Llama 2 vocabulary (HellaSwag; the accuracy is
// meaningless there, the shapes are what count). Then BATCH on all threads (items on
// workers). One worker = one thread. Ratios against BATCH on one worker.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_mc.h"
#include "bd_model_io.h"
#include "bd_progress.h"
#include "bd_threads.h"

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_mc: %s: %s\n", what, why);
    exit(1);
}

static const char *data(const char *rel) {
    static char buf[4][1024];
    static int k;
    const char *root = getenv("BD_DATA");
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root && *root ? root : "../shared/data", rel);
    return buf[k];
}

// Best items/s of 2 runs.
static double rate(const bd_model *m, const bd_tokenizer *tok, const bd_mc_task *t, int workers, bd_mc_method meth) {
    double *ll = malloc(sizeof(double) * (size_t)t->n * t->max_choices), best = 0;
    long bad, tr;
    for (int r = 0; r < 2; r++) {
        double t0 = bd_now();
        if (bd_mc_score_all(m, tok, t, workers, meth, ll, NULL, NULL, &bad, &tr) < 0) die("score", "failed");
        double v = (double)t->n / (bd_now() - t0);
        best = v > best ? v : best;
    }
    free(ll);
    return best;
}

static void row(const char *model, const char *task, const bd_model *m, const bd_tokenizer *tok, const bd_mc_task *t) {
    int nt = bd_num_threads();
    double base = rate(m, tok, t, 1, BD_MC_BATCH);
    double shared = rate(m, tok, t, 1, BD_MC_SHARED);
    double par = nt > 1 ? rate(m, tok, t, nt, BD_MC_BATCH) : base;
    printf("%-12s %-10s %6ld %12.1f %12.1f %6.2fx %14.1f %6.2fx\n", model, task, t->n, base, shared, shared / base, par,
           par / base);
}

static uint64_t rs = 12345;
static float urand(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rs >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

int main(void) {
    const char *th = getenv("BD_THREADS");
    bd_set_num_threads(th ? atoi(th) : 0);
    char why[1024];
    bd_model m;
    bd_tokenizer *tok;
    if (bd_model_load(data("models/stories260K/stories260K.bin"), &m, why, sizeof why) < 0) die("model", why);
    if (bd_tokenizer_load(data("models/stories260K/tok512.bin"), &tok, why, sizeof why) < 0) die("tokenizer", why);
    bd_mc_task hs, pq;
    if (bd_mc_load(data("eval/hellaswag/hellaswag_val_full.txt.bz2"), BD_MC_AUTO, NULL, 300, &hs, why, sizeof why) < 0)
        die("hellaswag", why);
    if (bd_mc_load(data("eval/piqa/dev.jsonl"), BD_MC_AUTO, NULL, 300, &pq, why, sizeof why) < 0) die("piqa", why);
    printf("bench_mc: items/s, best of 2; %d threads\n", bd_num_threads());
    printf("%-12s %-10s %6s %12s %12s %7s %14s %7s\n", "model", "task", "items", "batch 1 thr", "shared 1 thr", "ratio",
           "batch all thr", "ratio");
    row("stories260K", "hellaswag", &m, tok, &hs);
    row("stories260K", "piqa", &m, tok, &pq);
    bd_model_free(&m);
    bd_tokenizer_free(tok);
    bd_mc_task_free(&pq);
    bd_mc_task_free(&hs);

    bd_config c = {0};
    snprintf(c.arch, sizeof c.arch, "llama");
    c.dim = 768, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 12, c.head_dim = 64, c.ffn_dim = 2048;
    c.vocab = 32000, c.max_seq = 1024, c.norm_eps = 1e-5f, c.rope_theta = 10000.0f, c.rope = BD_ROPE_INTERLEAVED;
    c.tied_embeddings = true, c.bos = 1, c.eos = 2;
    if (bd_model_alloc(&m, &c) < 0) die("model alloc", "out of memory");
    for (size_t i = 0; i < m.n_params; i++) m.params[i] = 0.02f * urand();
    for (int i = 0; i < c.n_layers * c.dim; i++) m.w.rms_att[i] = m.w.rms_ffn[i] = 1.0f;
    for (int i = 0; i < c.dim; i++) m.w.rms_final[i] = 1.0f;
    if (bd_tokenizer_load(data("tokenizers/llama2-32k/tokenizer.bin"), &tok, why, sizeof why) < 0)
        die("tokenizer", why);
    if (bd_mc_load(data("eval/hellaswag/hellaswag_val_full.txt.bz2"), BD_MC_AUTO, NULL, 20, &hs, why, sizeof why) < 0)
        die("hellaswag", why);
    row("random 110M", "hellaswag", &m, tok, &hs);
    bd_model_free(&m);
    bd_tokenizer_free(tok);
    bd_mc_task_free(&hs);
    return 0;
}
