// Data-parallel training over MPI ranks (bd-qat under mpirun): the world a process belongs to,
// and the few collectives training needs. Built with MPI when the Makefile finds Open MPI's
// mpicc (BD_MPI); without it, or when the process was not started by mpirun, the world is one
// rank and every collective is a no-op, so a single process never touches MPI. Collectives
// return BD_OK or BD_ERR_IO (an MPI error; MPI's default handler aborts the job before that).
// Dimension key: P parameters (floats), R ranks.
#ifndef BD_DIST_H
#define BD_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"

typedef struct {
    int rank, size;     // this process's rank and the number of ranks R (0 and 1 alone)
    bool mpi;           // MPI was initialized (bd_dist_finalize ends it)
    double bytes_sent;  // bytes this rank contributed to collectives so far (reports)
} bd_dist;

// Whether this build has MPI.
bool bd_dist_built_with_mpi(void);
// Joins the job when the environment says mpirun started the process (Open MPI, PMIx or PMI
// variables) and bd has MPI; else d is one rank. BD_ERR_ARG, with why, when mpirun started
// several ranks of a build without MPI (each would train alone).
BD_MUST_CHECK int bd_dist_init(bd_dist *d, int *argc, char ***argv, char *why, size_t why_size);
// Ends MPI after a successful run (every rank must call it).
void bd_dist_finalize(bd_dist *d);
// Ends every rank of the job now with exit status code (after a one-line error of this rank).
void bd_dist_abort(const bd_dist *d, int code);
// Blocks until the job is aborted by another rank (which reports the reason), or returns at once alone.
void bd_dist_wait_abort(const bd_dist *d);

// The contiguous shard [*lo, *hi) of n elements that rank r owns: n*r/R to n*(r+1)/R.
void bd_dist_shard(const bd_dist *d, int r, size_t n, size_t *lo, size_t *hi);

// In-place sums over the ranks. Floats go in buckets of BD_DIST_BUCKET elements (one
// MPI_Allreduce each, in order); the order of a sum over ranks is MPI's (Open MPI: fixed for
// a given R and size, so every rank gets the same bits).
#define BD_DIST_BUCKET ((size_t)1 << 22)  // 16 MiB of f32
BD_MUST_CHECK int bd_dist_sum_f32(bd_dist *d, float *buf, size_t n);
BD_MUST_CHECK int bd_dist_sum_f64(bd_dist *d, double *buf, int n);
// all (R) gets every rank's v (rank order).
BD_MUST_CHECK int bd_dist_allgather_u64(bd_dist *d, const uint64_t *v, int n, uint64_t *all);
// buf holds n elements of elem_size bytes; rank r's shard (bd_dist_shard) is filled on rank r.
// Allgather: every rank gets every shard. Gather: rank 0 does (the others' buf may be their own
// shard only: they pass buf NULL and their shard's data in shard).
BD_MUST_CHECK int bd_dist_allgather_shards(bd_dist *d, void *buf, size_t n, size_t elem_size);
BD_MUST_CHECK int bd_dist_gather_shards(bd_dist *d, void *buf, const void *shard, size_t n, size_t elem_size);

#endif
