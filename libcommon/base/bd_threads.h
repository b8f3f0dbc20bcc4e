// The thread count every parallel part of bd uses (OpenBLAS and bd's own kernels).
#ifndef BD_THREADS_H
#define BD_THREADS_H

void bd_set_num_threads(int n);  // n <= 0: all online CPUs
int bd_num_threads(void);

// Runs fn(ctx, start, end) over [0, n) split into contiguous chunks, one per thread
// (bd_num_threads()), each run by whichever pool thread claims it first (the caller too), and
// waits for all. Runs inline when n is small (min_per_thread items
// or fewer per thread) or when one thread is configured. Chunks depend only on n and the
// thread count, so results are reproducible for a fixed thread count.
void bd_parallel_for(int n, int min_per_thread, void (*fn)(void *ctx, int start, int end), void *ctx);

// bd_parallel_for for chunks that call BLAS themselves: OpenBLAS runs single-threaded inside
// them, and its own idle pool, which busy-waits after each threaded call and would take the
// cores from these threads (measured: attention 1.8x slower), is shut down first; OpenBLAS
// restarts it at its next threaded call.
void bd_parallel_for_blas(int n, int min_per_thread, void (*fn)(void *ctx, int start, int end), void *ctx);

#endif
