#include "bd_threads.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

// OpenBLAS-internal (exported by its pthread builds); weak, so other BLAS builds still link.
extern int blas_thread_shutdown_(void) __attribute__((weak));

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

// ---- the pool -----------------------------------------------------------------------------
// Workers are started once (again only when the thread count grows) and woken per call:
// starting a thread team per call cost more than a 768x768 matrix-vector product. A call
// publishes its job and bumps `generation`; the caller and the woken workers then claim the
// job's chunks one at a time (chunk t is always [n*t/nt, n*(t+1)/nt): results do not depend on
// which thread runs it), and the caller returns when every chunk is done. So a worker the OS
// has not run yet (a shared machine) delays nothing: the caller takes its chunk (measured: 2
// threads of generation ran 4x slower than 1 while another process held a core, each call
// waiting for the descheduled worker). Waiting spins briefly (calls come in bursts, one per
// matrix) and then sleeps, so idle workers do not take cores from OpenBLAS's own threads.
#define MAX_WORKERS 64
#define SPIN_ROUNDS 4000  // about 0.1-0.5 ms of pause instructions

typedef struct {
    void (*fn)(void *ctx, int start, int end);
    void *ctx;
    int n, nt;
} pool_job;

// The claim word: generation (high 32 bits), nt (bits 16-31), chunks claimed (bits 0-15).
// A chunk is claimed by a CAS that keeps the generation, so a late worker never claims a
// chunk of a later job; it reads the job only after a successful claim (the job cannot end,
// nor be replaced, before its claimed chunk is done).
#define CLAIM(gen, nt, next) ((uint64_t)(gen) << 32 | (uint64_t)(nt) << 16 | (uint64_t)(next))

static struct {
    pthread_mutex_t lock;  // held by the one caller using the pool
    pthread_mutex_t wake_mu;
    pthread_cond_t wake, done_cv;
    atomic_uint generation;
    _Atomic uint64_t claim;
    atomic_int chunks_done;
    pool_job job;
    int n_workers;  // started so far: workers 1..n_workers
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake_mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done_cv = PTHREAD_COND_INITIALIZER};

static _Thread_local bool in_worker;  // a nested call runs inline

static void cpu_relax(void) {
#if defined(__SSE2__)
    _mm_pause();
#endif
}

static void run_chunk(const pool_job *j, int t) {
    int start = (int)((long long)j->n * t / j->nt), end = (int)((long long)j->n * (t + 1) / j->nt);
    if (end > start) j->fn(j->ctx, start, end);
}

// Claims and runs chunks of generation gen until none is left; returns how many it ran.
static int run_claimed(unsigned gen) {
    int ran = 0;
    uint64_t c = atomic_load_explicit(&pool.claim, memory_order_acquire);
    for (;;) {
        unsigned nt = (unsigned)(c >> 16) & 0xffff, next = (unsigned)c & 0xffff;
        if ((unsigned)(c >> 32) != gen || next >= nt) return ran;
        if (!atomic_compare_exchange_weak_explicit(&pool.claim, &c, c + 1, memory_order_acq_rel, memory_order_acquire))
            continue;  // c now holds the current word
        run_chunk(&pool.job, (int)next);
        ran++;
        if (atomic_fetch_add_explicit(&pool.chunks_done, 1, memory_order_acq_rel) + 1 == (int)nt) {
            pthread_mutex_lock(&pool.wake_mu);  // the last chunk: the caller may be asleep
            pthread_cond_broadcast(&pool.done_cv);
            pthread_mutex_unlock(&pool.wake_mu);
        }
        c = atomic_load_explicit(&pool.claim, memory_order_acquire);
    }
}

static unsigned wait_generation(unsigned seen) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned g = atomic_load_explicit(&pool.generation, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&pool.wake_mu);
    unsigned g;
    while ((g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen)
        pthread_cond_wait(&pool.wake, &pool.wake_mu);
    pthread_mutex_unlock(&pool.wake_mu);
    return g;
}

// A worker's first job is the one after the generation current when it was started (read
// by the starter: the worker itself might start after that job was published).
static unsigned start_generation[MAX_WORKERS];

static void *worker_main(void *arg) {
    int t = (int)(long)arg;
    in_worker = true;
    unsigned seen = start_generation[t];
    for (;;) {
        seen = wait_generation(seen);
        run_claimed(seen);
    }
    return NULL;
}

// Starts workers up to want-1 (the caller is worker 0).
static void grow_pool(int want) {
    while (pool.n_workers < want - 1 && pool.n_workers < MAX_WORKERS - 1) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        // Kernels keep their tiles' operands on the stack (the f32 tiles: 1.6 MB): a
        // fixed size, whatever the process's stack limit says.
        pthread_attr_setstacksize(&attr, (size_t)8 << 20);
        start_generation[pool.n_workers + 1] = atomic_load_explicit(&pool.generation, memory_order_relaxed);
        int rc = pthread_create(&tid, &attr, worker_main, (void *)(long)(pool.n_workers + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool.n_workers++;
    }
}

static void wait_done(int nt) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(&pool.chunks_done, memory_order_acquire) == nt) return;
        cpu_relax();
    }
    pthread_mutex_lock(&pool.wake_mu);
    while (atomic_load_explicit(&pool.chunks_done, memory_order_acquire) != nt)
        pthread_cond_wait(&pool.done_cv, &pool.wake_mu);
    pthread_mutex_unlock(&pool.wake_mu);
}

void bd_parallel_for(int n, int min_per_thread, void (*fn)(void *ctx, int start, int end), void *ctx) {
    int nt = num_threads;
    if (min_per_thread < 1) min_per_thread = 1;
    if (nt > n / min_per_thread) nt = n / min_per_thread;
    if (nt > MAX_WORKERS) nt = MAX_WORKERS;
    // Inline: one chunk, a call from inside a worker, or another thread holds the pool.
    if (nt <= 1 || in_worker || pthread_mutex_trylock(&pool.lock) != 0) {
        if (n > 0) fn(ctx, 0, n);
        return;
    }
    grow_pool(nt);
    // The chunks depend only on n and nt; a failed thread start leaves more chunks to the caller.
    pool.job = (pool_job){fn, ctx, n, nt};
    atomic_store_explicit(&pool.chunks_done, 0, memory_order_relaxed);
    unsigned gen = atomic_load_explicit(&pool.generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&pool.claim, CLAIM(gen, nt, 0), memory_order_release);
    if (pool.n_workers > 0) {
        pthread_mutex_lock(&pool.wake_mu);
        atomic_store_explicit(&pool.generation, gen, memory_order_release);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.wake_mu);
    } else {
        atomic_store_explicit(&pool.generation, gen, memory_order_release);
    }
    run_claimed(gen);
    wait_done(nt);
    pthread_mutex_unlock(&pool.lock);
}

void bd_parallel_for_blas(int n, int min_per_thread, void (*fn)(void *ctx, int start, int end), void *ctx) {
    if (num_threads <= 1 || in_worker) {
        bd_parallel_for(n, min_per_thread, fn, ctx);
        return;
    }
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
    bd_parallel_for(n, min_per_thread, fn, ctx);
    openblas_set_num_threads(num_threads);
}
