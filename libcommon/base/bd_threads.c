#include "bd_threads.h"

#include <cblas.h>
#include <stdbool.h>
#include <unistd.h>

static int num_threads = 1;

void bd_set_num_threads(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    num_threads = n;
    openblas_set_num_threads(n);
}

int bd_num_threads(void) { return num_threads; }

#include <pthread.h>

typedef struct {
    void (*fn)(void *ctx, int start, int end);
    void *ctx;
    int start, end;
} chunk_job;

static void *run_chunk(void *arg) {
    chunk_job *j = arg;
    j->fn(j->ctx, j->start, j->end);
    return NULL;
}

void bd_parallel_for(int n, int min_per_thread, void (*fn)(void *ctx, int start, int end), void *ctx) {
    int nt = num_threads;
    if (min_per_thread < 1) min_per_thread = 1;
    if (nt > n / min_per_thread) nt = n / min_per_thread;
    if (nt > 64) nt = 64;
    if (nt <= 1) {
        if (n > 0) fn(ctx, 0, n);
        return;
    }
    pthread_t tid[64];
    chunk_job jobs[64];
    bool started[64] = {false};
    for (int t = 0; t < nt; t++) {
        jobs[t] = (chunk_job){fn, ctx, (int)((long long)n * t / nt), (int)((long long)n * (t + 1) / nt)};
        // Chunk 0 runs on the calling thread; a failed thread start runs inline too.
        if (t > 0) started[t] = pthread_create(&tid[t], NULL, run_chunk, &jobs[t]) == 0;
    }
    run_chunk(&jobs[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            run_chunk(&jobs[t]);
    }
}
